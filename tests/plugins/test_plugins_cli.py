"""Each plug-in seam used from the command line with the example package installed
(tests/plugins/example_plugin/), and the registry's answers for unknown and broken plug-ins
(docs/plugins.md)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile

from songexplorer_cli import main
from songexplorer_core import plugins
from songexplorer_core.annotations import read_intervals_csv
from songexplorer_core.synth import make_song

RATE = 2500


def song_samples(seconds: float = 4.0, seed: int = 3) -> np.ndarray:
    """Synthetic fly song as int16 samples (ntics,)."""
    return make_song(seconds, RATE, seed=seed).samples.astype(np.int16).reshape(-1)


def write_wav(path, samples, subtype="PCM_16"):
    soundfile.write(str(path), samples, RATE, subtype=subtype, format="WAV")
    return path


def test_plugins_lists_every_group_with_package_version_and_object(example_plugin, capsys):
    assert main(["plugins", "--json"]) == 0
    rows = {(row["group"], row["name"]): row for row in json.loads(capsys.readouterr().out)}
    builtin = {("audio_readers", "soundfile"), ("detectors", "time-freq-threshold"),
               ("architectures", "convolutional"), ("ethograms", "threshold"), ("ethograms", "maxprob"),
               ("actions", "point"), ("actions", "snap-to")}
    example = {("audio_readers", "example-raw"), ("detectors", "example-loud"), ("architectures", "example-tiny"),
               ("ethograms", "example-half"), ("actions", "example-range")}
    assert builtin | example <= set(rows)
    assert {rows[key]["package"] for key in builtin} == {"songexplorer-dagster"}
    assert {(rows[key]["package"], rows[key]["version"]) for key in example} == {("songexplorer-example-plugin",
                                                                                    "0.1.0")}
    assert rows[("detectors", "example-loud")]["object"] == "songexplorer_example_plugin:loud"
    assert {row["status"] for row in rows.values()} == {"ok"}
    assert main(["plugins", "--group", "detectors"]) == 0
    table = capsys.readouterr().out
    assert "example-loud" in table and "songexplorer-example-plugin" in table and "example-raw" not in table


def test_an_unknown_name_is_refused_naming_the_installed_ones(example_plugin, tmp_path, capsys):
    wav = write_wav(tmp_path / "a.wav", song_samples())
    assert main(["detect", str(wav), "--out-dir", str(tmp_path / "out"), "--detector", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no detector named 'nope' is installed" in err
    assert "example-loud (songexplorer-example-plugin)" in err and "time-freq-threshold (songexplorer-dagster)" in err
    assert not (tmp_path / "out").exists()


def test_a_broken_plugin_is_reported_with_its_package_and_the_others_still_load(broken_plugin, tmp_path, capsys):
    assert main(["plugins", "--json"]) == 1  # a broken plug-in makes the listing fail
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["broken"]["package"] == "songexplorer-broken-plugin"
    assert rows["broken"]["status"].startswith("broken: ImportError: this lab forgot a dependency")
    assert rows["example-loud"]["status"] == "ok"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = plugins.load_group("detectors")
    assert set(loaded) >= {"example-loud", "time-freq-threshold"} and "broken" not in loaded
    assert any("songexplorer-broken-plugin" in str(w.message) for w in caught)
    wav = write_wav(tmp_path / "a.wav", song_samples())
    assert main(["detect", str(wav), "--out-dir", str(tmp_path / "out"), "--detector", "broken"]) == 2
    assert "package songexplorer-broken-plugin 0.0.1" in capsys.readouterr().err
    # the other detectors of the group are unaffected
    assert main(["detect", str(wav), "--out-dir", str(tmp_path / "out"), "--detector", "example-loud"]) == 0


def test_detector_plugin_from_the_command_line(example_plugin, tmp_path):
    samples = song_samples()
    wav = write_wav(tmp_path / "a.wav", samples)
    out = tmp_path / "out"
    assert main(["detect", str(wav), "--out-dir", str(out), "--detector", "example-loud",
                 "--detector-parameter", "threshold=2000", "--no-progress"]) == 0
    rows = read_intervals_csv(out / "a.wav-detected.csv")
    loud = np.abs(samples.astype(np.int64)) > 2000
    assert set(rows["label"]) == {"loud"} and len(rows) > 0
    assert int(sum(rows["stop"] - rows["start"] + 1)) == int(loud.sum())  # every loud tic, once
    assert all(loud[start] and loud[stop] for start, stop in zip(rows["start"], rows["stop"]))
    # SongExplorer's detector takes its own flags, not a plug-in's parameters
    assert main(["detect", str(wav), "--out-dir", str(out), "--detector-parameter", "threshold=1"]) == 2


def test_audio_reader_plugin_by_suffix_and_by_name(example_plugin, tmp_path):
    samples = song_samples()
    wav = write_wav(tmp_path / "a.wav", samples)
    raw = tmp_path / "a.f32raw"
    (samples.astype("<f4") / 32768).tofile(raw)
    out = tmp_path / "out"
    assert main(["detect", str(wav), str(raw), "--out-dir", str(out), "--no-progress"]) == 0  # by suffix
    wav_rows = (out / "a.wav-detected.csv").read_text().replace("a.wav,", "X,")
    raw_rows = (out / "a.f32raw-detected.csv").read_text().replace("a.f32raw,", "X,")
    assert wav_rows == raw_rows and len(wav_rows.splitlines()) > 3
    # by name: the reader's options (here its rate) come from the project's songexplorer.toml
    (out / "a.f32raw-detected.csv").unlink()
    assert main(["detect", str(raw), "--out-dir", str(out), "--audio-reader", "example-raw", "--no-progress",
                 "--audio-tic-rate", str(RATE)]) == 0
    assert (out / "a.f32raw-detected.csv").read_text().replace("a.f32raw,", "X,") == wav_rows
    # a reader that does not exist is refused before anything is read
    assert main(["detect", str(raw), "--out-dir", str(out), "--audio-reader", "nope"]) == 2


def test_architecture_and_ethogram_plugins_from_the_command_line(example_plugin, tmp_path):
    from songexplorer_core.demo import make_demo_project
    from songexplorer_core.ethogram import write_thresholds_csv

    project = make_demo_project(tmp_path / "demo", nrecordings=1, nannotated=1, duration_s=20, annotations_per_label=6,
                                dense=False)
    logs = tmp_path / "logs"
    assert main(["train", "--groundtruth", str(project.groundtruth), "--out", str(logs),
                 "--labels", "mel-pulse,mel-sine,ambient", "--nsteps", "4", "--validate-period", "2",
                 "--mini-batch", "8", "--architecture", "example-tiny", "--no-progress", "--device", "cpu"]) == 0
    recorded = json.loads((logs / "train_1r" / "train.json").read_text())
    assert recorded["model"]["architecture"] == "example-tiny"
    checkpoint = logs / "train_1r" / "ckpt-4"
    wav = project.groundtruth / "demo-1.wav"
    out = tmp_path / "classified"
    assert main(["classify", str(wav), "--model", str(checkpoint), "--out-dir", str(out), "--no-progress",
                 "--device", "cpu"]) == 0
    thresholds = write_thresholds_csv({"mel-pulse": 0.9, "mel-sine": 0.9, "ambient": 0.9},
                                      logs / "train_1r" / "thresholds.ckpt-4.csv")
    assert main(["ethogram", str(wav), "--thresholds", str(thresholds), "--probabilities-dir", str(out),
                 "--method", "example-half", "--min-segment-fraction", "0", "--event-refractory-fraction", "0",
                 "--no-progress"]) == 0
    from songexplorer_core.classify import read_probabilities
    from songexplorer_core.ethogram import ethogram_threshold

    probs = read_probabilities(out / "demo-1.wav-probabilities.npz")
    expected = ethogram_threshold(probs, {label: 0.5 for label in probs.labels}, wav="demo-1.wav")
    predicted = read_intervals_csv(out / "demo-1.wav-predicted.csv")
    pd.testing.assert_frame_equal(predicted, expected.sort_values(["start", "label"], kind="stable")
                                  .reset_index(drop=True))
    assert "method: example-half" in (out / "demo-1.wav-ethogram.log").read_text()
    assert main(["ethogram", str(wav), "--thresholds", str(thresholds), "--probabilities-dir", str(out),
                 "--method", "nope"]) == 2


def test_double_click_action_plugin_from_the_command_line_and_the_session(example_plugin, tmp_path, capsys):
    from songexplorer_core.annotation_actions import load_action, place
    from songexplorer_core.annotation_session import AnnotationSession

    # the annotator refuses an action nobody installed before it serves anything
    assert main(["annotate", "--project", str(tmp_path), "--action", "nope", "--port", "0"]) == 2
    assert "example-range (songexplorer-example-plugin)" in capsys.readouterr().err
    samples = song_samples()
    write_wav(tmp_path / "a.wav", samples)
    session = AnnotationSession(tmp_path, "person", label="pulse")
    session.open_recording("a.wav", ntics=len(samples))
    action = load_action("example-range")
    session.double_click_lower("a.wav", 1000, place=lambda tic: place(
        action, lambda a, b: samples[a:b, None], tic, RATE, {"width_ms": "8"}, len(samples)))
    (added,) = session._state("a.wav").annotations
    assert (added.start, added.stop) == (990, 1010)  # 8 ms at 2500 Hz = 20 tics around the click
    # the built-in snap-to finds the loudest tic near the click
    loudest = int(np.argmax(np.abs(samples[900:1100].astype(int)))) + 900
    assert place(load_action("snap-to"), lambda a, b: samples[a:b, None], 1000, RATE,
                 {"search_ms": "40", "range_ms": "0"}, len(samples)) == (loudest, loudest)
