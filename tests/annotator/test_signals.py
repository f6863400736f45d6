"""What the recording view draws and plays: only the visible window, reduced to what the screen
can show, without losing the loudest tic; playback resampled so that browsers accept it."""

import io

import numpy as np
import pytest
import soundfile

import songexplorer_annotator.signals as signals
from songexplorer_annotator.signals import playback_rate, playback_wav, waveform_trace, window_spectrogram

RATE = 2500


@pytest.fixture
def recording(tmp_path):
    """60 s of quiet noise with a 300 Hz tone from 10 s to 11 s and one click at tic 100 000."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 50, 60 * RATE)
    t = np.arange(RATE) / RATE
    x[10 * RATE:11 * RATE] += 4000 * np.sin(2 * np.pi * 300 * t)
    x[100_000] = 20_000
    path = tmp_path / "rec.wav"
    soundfile.write(str(path), np.round(x).astype(np.int16), RATE, subtype="PCM_16")
    return path


def test_a_short_window_is_drawn_sample_for_sample(recording):
    trace = waveform_trace(recording, 100, 400, max_points=1000)
    raw = soundfile.read(str(recording), start=100, stop=400, dtype="int16")[0]
    assert trace.tics.tolist() == list(range(100, 400))
    np.testing.assert_allclose(trace.values * trace.scale, raw)
    assert trace.scale == np.abs(raw).max()


def test_a_long_window_keeps_its_extremes_within_the_point_budget(recording, monkeypatch):
    trace = waveform_trace(recording, 0, 60 * RATE, max_points=2000, scale=20_000)
    assert len(trace.values) <= 2000
    assert trace.values.max() == 1.0  # the one-tic click survives the reduction
    click = trace.tics[np.argmax(trace.values)]
    assert abs(click - 100_000) <= 60 * RATE / 1000  # within one bin of where it is
    monkeypatch.setattr(signals, "CHUNK_TICS", 5000)  # read in many chunks: the same picture
    chunked = waveform_trace(recording, 0, 60 * RATE, max_points=2000, scale=20_000)
    np.testing.assert_array_equal(chunked.values, trace.values)


def test_spectrogram_finds_the_tone_and_respects_the_column_budget(recording, monkeypatch):
    spec = window_spectrogram(recording, 9 * RATE, 12 * RATE, rate=RATE, max_columns=300)
    assert spec.power.shape[1] <= 300 and spec.nyquist == RATE / 2
    freqs = np.linspace(0, spec.nyquist, spec.power.shape[0])
    columns = np.linspace(spec.first_tic, spec.last_tic, spec.power.shape[1])
    inside = (columns > 10.1 * RATE) & (columns < 10.9 * RATE)
    outside = columns < 9.9 * RATE
    assert abs(freqs[spec.power[:, inside].mean(axis=1).argmax()] - 300) < RATE / 64
    assert spec.power[:, inside].max() > spec.power[:, outside].max() + 30  # dB
    monkeypatch.setattr(signals, "CHUNK_TICS", 1000)  # zoomed far out: frames read one by one
    whole = window_spectrogram(recording, 0, 60 * RATE, rate=RATE, max_columns=200)
    columns = np.linspace(whole.first_tic, whole.last_tic, whole.power.shape[1])
    inside = (columns > 10.1 * RATE) & (columns < 10.9 * RATE)
    assert whole.power.shape[1] == 200 and inside.any()
    assert abs(freqs[whole.power[:, inside].mean(axis=1).argmax()] - 300) < RATE / 64


@pytest.mark.parametrize("rate, expected", [(2500, 10000), (3000, 9000), (8000, 8000), (44100, 44100),
                                            (250000, 96000)])
def test_playback_rate_is_one_browsers_accept(rate, expected):
    assert playback_rate(rate) == expected


def test_playback_of_a_2500_hz_window_is_resampled_keeping_pitch_and_duration(recording):
    data, rate = playback_wav(recording, 10 * RATE, 11 * RATE, rate=RATE)
    audio, file_rate = soundfile.read(io.BytesIO(data), dtype="float64")
    assert rate == file_rate == 10000 and rate >= 8000
    assert len(audio) == 4 * RATE  # one second of recording, one second of sound
    spectrum = np.abs(np.fft.rfft(audio))
    assert np.fft.rfftfreq(len(audio), 1 / rate)[spectrum.argmax()] == pytest.approx(300, abs=1)
