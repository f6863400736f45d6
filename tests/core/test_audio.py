"""Reading recordings, and refusing the ones that cannot be trusted."""

import numpy as np
import pytest
import soundfile

from songexplorer_core.audio import RecordingError, check_recording, read_recording, recording_info


def write_wav(path, samples, rate=2500):
    soundfile.write(str(path), np.asarray(samples, dtype=np.int16), rate, subtype="PCM_16")
    return path


def test_reads_whole_recording_and_spans_as_int16_and_float(tmp_path):
    samples = np.arange(-500, 500, dtype=np.int16)
    path = write_wav(tmp_path / "r.wav", samples)
    rate, whole = read_recording(path)
    assert rate == 2500 and whole.shape == (1000, 1) and whole.dtype == np.int16
    np.testing.assert_array_equal(whole[:, 0], samples)
    _, span = read_recording(path, 10, 20)
    np.testing.assert_array_equal(span[:, 0], samples[10:20])
    _, floats = read_recording(path, 0, 4, dtype="float32")
    np.testing.assert_allclose(floats[:, 0], samples[:4] / 32768.0)
    # spans are clamped to the recording, as SongExplorer's loader does
    _, clamped = read_recording(path, -5, 5000)
    assert clamped.shape == (1000, 1)


def test_info_reports_rate_channels_and_duration(tmp_path):
    path = write_wav(tmp_path / "r.wav", np.zeros(5000), rate=2500)
    info = recording_info(path)
    assert (info.rate, info.channels, info.frames) == (2500, 1, 5000)
    assert info.duration_s == pytest.approx(2.0)


def test_truncated_wav_is_refused_with_the_file_named(tmp_path):
    path = write_wav(tmp_path / "cut.wav", np.ones(10000))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordingError, match=r"cut\.wav.*truncated"):
        recording_info(path)


def test_non_wav_named_wav_is_refused(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are my field notes, not audio\n")
    with pytest.raises(RecordingError, match=r"notes\.wav.*not a readable audio file"):
        recording_info(path)


def test_stereo_in_a_mono_project_is_refused(tmp_path):
    path = tmp_path / "stereo.wav"
    soundfile.write(str(path), np.zeros((100, 2), dtype=np.int16), 2500, subtype="PCM_16")
    with pytest.raises(RecordingError, match=r"stereo\.wav.*2 channel.*expects 1"):
        check_recording(path, expected_rate=2500, expected_channels=1)


def test_wrong_sample_rate_is_refused_with_the_fix(tmp_path):
    path = write_wav(tmp_path / "fast.wav", np.zeros(100), rate=44100)
    with pytest.raises(RecordingError, match=r"fast\.wav.*44100 Hz.*expects 2500 Hz.*Resample"):
        check_recording(path, expected_rate=2500)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(RecordingError, match="gone.wav"):
        recording_info(tmp_path / "gone.wav")


def test_reading_never_modifies_the_recording(tmp_path):
    path = write_wav(tmp_path / "r.wav", np.arange(100))
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    read_recording(path)
    check_recording(path, expected_rate=2500, expected_channels=1)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
