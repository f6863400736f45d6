"""Audio readers (songexplorer_core.audio_readers): the high-pass filter, the channel map that
makes several recordings of one file, settings from songexplorer.toml, and the plug-in registry's
answers for the built-in reader (docs/plugins.md)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from scipy.signal import sosfiltfilt

from songexplorer_core import plugins
from songexplorer_core.annotations import parse_csv_name
from songexplorer_core.audio import RecordingError, RecordingReader, read_recording, recording_info, source_file
from songexplorer_core.audio_readers import (
    AUDIO_ENV, AudioSettings, audio_settings, configure_audio, expand_recordings, highpass_sos, split_channel_path,
)
from songexplorer_core.project import Project, ProjectError, find_recordings

RATE = 2500


@pytest.fixture(autouse=True)
def default_audio(monkeypatch):
    """Each test starts and ends with the default settings (configure_audio is per process)."""
    monkeypatch.setenv(AUDIO_ENV, AudioSettings().to_json())
    configure_audio(AudioSettings())
    yield
    configure_audio(AudioSettings())


def two_tones(seconds: float = 4.0) -> np.ndarray:
    """A 5 Hz hum (0.4 of full scale) under a 400 Hz tone (0.2), full-scale floats."""
    t = np.arange(int(seconds * RATE)) / RATE
    return 0.4 * np.sin(2 * np.pi * 5 * t) + 0.2 * np.sin(2 * np.pi * 400 * t)


def test_highpass_removes_the_hum_and_a_span_reads_as_the_whole_filtered_recording(tmp_path):
    signal = two_tones()
    path = tmp_path / "hum.wav"
    soundfile.write(str(path), signal, RATE, subtype="FLOAT")
    configure_audio(AudioSettings.make(highpass_hz=100))
    _, whole = read_recording(path, dtype="float32")
    expected = sosfiltfilt(highpass_sos(100, 2, RATE), signal[:, None], axis=0, padtype=None)
    middle = slice(RATE, 3 * RATE)  # away from the recording's ends, where the zero-phase filter settles
    np.testing.assert_allclose(whole[middle], expected[middle], atol=1e-5)
    tone = 0.2 * np.sin(2 * np.pi * 400 * np.arange(len(signal)) / RATE)
    assert np.abs(whole[middle, 0] - tone[middle]).max() < 0.01  # the hum is gone, the tone kept
    with RecordingReader(path) as reader:  # spans read with their own padding match the whole
        span = reader.read(4000, 4500, dtype="float32")
        assert np.abs(span - whole[4000:4500]).max() < 1e-4
        counts = reader.read(4000, 4500)  # int16 units for detection
        assert counts.dtype == np.int16 and np.abs(counts / 32768 - whole[4000:4500]).max() < 1e-4
    configure_audio(AudioSettings())
    assert np.abs(read_recording(path, dtype="float32")[1][:, 0] - signal).max() < 1e-6  # the file is unchanged
    with pytest.raises(RecordingError, match="Nyquist"):
        configure_audio(AudioSettings.make(highpass_hz=2000))
        read_recording(path)


def test_a_two_channel_file_becomes_two_recordings(tmp_path):
    left = (np.arange(3000) % 200 - 100).astype(np.int16)
    right = (-3 * left).astype(np.int16)
    root = tmp_path / "groundtruth"
    (root / "day1").mkdir(parents=True)
    soundfile.write(str(root / "day1" / "rig.wav"), np.stack([left, right], axis=1), RATE, subtype="PCM_16")
    soundfile.write(str(root / "mono.wav"), left, RATE, subtype="PCM_16")
    assert list(find_recordings(root)) == ["day1%2Frig.wav", "mono.wav"]  # no map: one recording per file
    configure_audio(AudioSettings.make(channel_map={"left": [0], "right": [1], "both": [1, 0]}))
    found = find_recordings(root)
    # a file with fewer channels than the map names stays one recording
    assert list(found) == ["day1%2Frig.wav-both", "day1%2Frig.wav-left", "day1%2Frig.wav-right", "mono.wav"]
    assert found["day1%2Frig.wav-left"] == root / "day1" / "rig.wav-left"
    assert source_file(found["day1%2Frig.wav-right"]) == root / "day1" / "rig.wav"
    info = recording_info(found["day1%2Frig.wav-right"])
    assert (info.channels, info.frames, info.file_channels) == (1, 3000, (1,))
    assert np.array_equal(read_recording(found["day1%2Frig.wav-right"])[1][:, 0], right)
    assert np.array_equal(read_recording(found["day1%2Frig.wav-both"], 10, 20)[1], np.stack([right, left], 1)[10:20])
    with pytest.raises(RecordingError, match="holds no recording 'middle'.*names \\['both', 'left', 'right'\\]"):
        recording_info(root / "day1" / "rig.wav-middle")
    with pytest.raises(RecordingError, match="its file .*gone.wav is missing"):
        recording_info(root / "gone.wav-left")
    # SongExplorer's names: <file>-<name>, annotations <file>-<name>-annotated-<who>.csv
    assert split_channel_path("x/rig.wav-left")[1] == "left" and split_channel_path("x/rig.wav")[1] is None
    assert parse_csv_name("rig.wav-left-annotated-ann.csv").recording == "rig.wav-left"
    assert parse_csv_name("rig.wav-20240101T101010-annotated-ann.csv").recording == "rig.wav"
    assert parse_csv_name("song.flac-detected.csv").recording == "song.flac"
    assert parse_csv_name("PS-annotated-ann.csv").recording == "PS.wav"
    # a channel the file does not have is named
    configure_audio(AudioSettings.make(channel_map={"a": [0], "b": [5]}))
    with pytest.raises(RecordingError, match="channel\\(s\\) \\[5\\], but the file has 2"):
        recording_info(root / "day1" / "rig.wav-b")


def test_settings_come_from_songexplorer_toml_and_travel_to_child_processes(tmp_path):
    project = Project(tmp_path)
    project.settings_path.write_text('audio_tic_rate = 2500\naudio_highpass_hz = 50\n'
                                     'audio_channel_map = {left = [0], right = 1}\n')
    settings = project.settings().audio
    assert settings.highpass_hz == 50 and settings.channel_map == (("left", (0,)), ("right", (1,)))
    chosen = project.use_audio(highpass_hz=0.0)  # an override (the CLI's flag, Dagster's resource) wins
    assert chosen.highpass_hz == 0 and audio_settings() == chosen
    import os

    assert AudioSettings.from_json(os.environ[AUDIO_ENV]) == chosen
    for text, error in [('audio_highpass_hz = -1\n', "cut-off in Hz"),
                        ('audio_channel_map = {"a-b" = [0]}\n', "letters, digits"),
                        ('audio_channel_map = {left = ["zero"]}\n', "0-based channel numbers"),
                        ('audio_reader = "nope"\n', None)]:
        project.settings_path.write_text(text)
        if error is None:
            with pytest.raises(plugins.PluginError, match="no audio reader named 'nope'.*soundfile"):
                project.use_audio()
        else:
            with pytest.raises(ProjectError, match=error):
                project.settings()


def test_every_libsndfile_container_is_a_recording(tmp_path):
    signal = 0.25 * np.sin(2 * np.pi * 100 * np.arange(2500) / RATE)
    formats = {"a.flac": ("FLAC", "PCM_24"), "b.ogg": ("OGG", "VORBIS"), "c.aiff": ("AIFF", "PCM_16"),
               "d.w64": ("W64", "FLOAT")}
    for name, (container, subtype) in formats.items():
        soundfile.write(str(tmp_path / name), signal, RATE, format=container, subtype=subtype)
    (tmp_path / "notes.txt").write_text("not audio")
    assert list(find_recordings(tmp_path)) == sorted(formats)
    for name, (container, _) in formats.items():
        _, samples = read_recording(tmp_path / name, dtype="float32")
        tolerance = 0.05 if container == "OGG" else 1e-4  # Vorbis is lossy
        assert np.abs(samples[:2500, 0] - signal[: len(samples)]).max() < tolerance, name
    assert expand_recordings({"a.flac": tmp_path / "a.flac"}) == {"a.flac": tmp_path / "a.flac"}
