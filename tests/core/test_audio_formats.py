"""Every sample format libsndfile writes into a WAV is read at SongExplorer's int16 scale, and
samples that are not numbers are refused with the file named (docs/reliability.md, Inputs)."""

import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile

from songexplorer_core.audio import RecordingError, RecordingReader, RecordingWarning, read_recording
from songexplorer_core.detect import detect_recording

RATE = 2500
#: A signal in full-scale units (+-1), what every format below is written from.
SIGNAL = 0.5 * np.sin(2 * np.pi * 100 * np.arange(2000) / RATE)
#: WAV subtypes soundfile writes, with the largest error (int16 units) the format's resolution
#: and the conversion to int16 allow.
SUBTYPES = {"PCM_U8": 256.0, "PCM_16": 1.0, "PCM_24": 0.5, "PCM_32": 0.5, "FLOAT": 0.5, "DOUBLE": 0.5,
            "ULAW": 600.0, "ALAW": 600.0, "IMA_ADPCM": 800.0, "MS_ADPCM": 800.0}


def write(path, samples, subtype):
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), samples, RATE, subtype=subtype, format="WAV")
    return path


@pytest.mark.parametrize("subtype", sorted(SUBTYPES))
def test_every_subtype_is_read_at_the_int16_scale(tmp_path, subtype):
    path = write(tmp_path / f"{subtype}.wav", SIGNAL, subtype)
    expected = SIGNAL * 32768
    _, counts = read_recording(path, dtype="int16")
    # ADPCM pads its last block and its decoder takes a few samples to settle
    adpcm = "ADPCM" in subtype
    assert counts.dtype == np.int16 and counts.shape[1] == 1 and (adpcm or len(counts) == len(SIGNAL))
    counts = counts[: len(SIGNAL)]
    settle = 64 if adpcm else 0
    assert np.abs(counts[settle:, 0] - expected[settle:]).max() <= SUBTYPES[subtype]
    _, floats = read_recording(path, dtype="float32")
    floats = floats[: len(SIGNAL)]
    assert floats.dtype == np.float32
    assert np.abs(floats[settle:, 0] - SIGNAL[settle:]).max() <= SUBTYPES[subtype] / 32768 + 1e-6
    # a float WAV (Audacity's default) was read as silence: int16 without scaling
    assert np.abs(counts).max() > 10000


@pytest.mark.parametrize("subtype", ["PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_high_resolution_formats_keep_their_precision_for_the_networks(tmp_path, subtype):
    quiet = SIGNAL * 1e-3  # 16 int16 counts: 16-bit rounding would lose most of it
    path = write(tmp_path / "quiet.wav", quiet, subtype)
    _, floats = read_recording(path, dtype="float32")
    assert np.abs(floats[:, 0] - quiet).max() < 1e-6


def test_spans_of_a_float_recording_match_the_whole(tmp_path):
    path = write(tmp_path / "f.wav", SIGNAL, "FLOAT")
    _, whole = read_recording(path)
    _, span = read_recording(path, 123, 1500)
    np.testing.assert_array_equal(span, whole[123:1500])
    with RecordingReader(path) as reader:
        np.testing.assert_array_equal(reader.read(-5, 40, "float32"), read_recording(path, 0, 40, dtype="float32")[1])


def test_float_and_16_bit_exports_detect_the_same_song(tmp_path):
    song = np.zeros(RATE * 2)
    song[2000:2600] = 0.6 * np.sin(2 * np.pi * 300 * np.arange(600) / RATE)
    song += 0.002 * np.random.default_rng(0).standard_normal(len(song))
    counts = np.round(song * 32768).astype(np.int16)  # the same samples in every format below
    pcm = detect_recording(write(tmp_path / "song.wav", counts, "PCM_16"))
    exports = {"FLOAT": counts / 32768.0, "DOUBLE": counts / 32768.0, "PCM_24": counts.astype(np.int32) << 16}
    for subtype, samples in exports.items():
        other = detect_recording(write(tmp_path / f"{subtype}" / "song.wav", samples, subtype))
        assert (other["label"] == "time").any(), subtype
        pd.testing.assert_frame_equal(other, pcm)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_samples_that_are_not_numbers_are_refused_naming_file_and_tic(tmp_path, subtype, bad):
    samples = SIGNAL.copy()
    samples[777] = bad
    path = write(tmp_path / "broken.wav", samples, subtype)
    for dtype in ("int16", "float32"):
        with pytest.raises(RecordingError, match=r"broken\.wav: sample .* at tic 777 .*not a number.*Re-export"):
            read_recording(path, dtype=dtype)
    # spans without the bad sample read fine
    assert read_recording(path, 0, 700)[1].shape == (700, 1)


def test_float_samples_beyond_full_scale_are_clipped_for_detection_with_a_warning(tmp_path):
    path = write(tmp_path / "loud.wav", SIGNAL * 3, "FLOAT")
    with pytest.warns(RecordingWarning, match=r"loud\.wav.*beyond full scale"):
        _, counts = read_recording(path)
    assert counts.max() == 32767 and counts.min() == -32768
    with pytest.warns(RecordingWarning):
        _, floats = read_recording(path, dtype="float32")
    assert floats.max() == pytest.approx(3 * SIGNAL.max(), abs=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_recording(write(tmp_path / "fine.wav", SIGNAL, "FLOAT"))  # within full scale: no warning


def test_multichannel_float_recordings_keep_their_channels(tmp_path):
    stereo = np.stack([SIGNAL, -0.25 * SIGNAL], axis=1)
    path = write(tmp_path / "stereo.wav", stereo, "FLOAT")
    _, counts = read_recording(path)
    assert counts.shape == (len(SIGNAL), 2)
    assert np.abs(counts - stereo * 32768).max() <= 0.5
