"""The ``songexplorer`` command line as a package of its own: every command is listed, the
commands that need Panel or Dagster import them only when run, and the commands that are thin
over core (init, demo, register, misses, summaries) do what they say. Commands whose tests need a
trained model or synthetic song fixtures are tested beside those fixtures in ``tests/core``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile

from songexplorer_cli import COMMANDS, build_parser, main
from songexplorer_core.annotations import intervals_frame, read_intervals_csv, write_intervals_csv


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS) and "register" in COMMANDS


def test_the_rooms_import_only_what_they_may():
    """Core never imports the command line, the annotator, Panel or Dagster; the command line
    parses and runs a core command without loading Panel, Dagster or TensorFlow."""
    code = (
        "import sys, importlib, pkgutil, songexplorer_core\n"
        "for m in pkgutil.walk_packages(songexplorer_core.__path__, 'songexplorer_core.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('songexplorer_cli', 'songexplorer_annotator', 'songexplorer_dagster', 'panel', 'dagster'))\n"
        "assert not bad, bad\n"
        "from songexplorer_cli import build_parser\n"
        "build_parser().parse_args(['init', 'x'])\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('songexplorer_annotator', 'songexplorer_dagster', 'panel', 'dagster', 'tensorflow'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_version_names_the_package_and_its_libraries(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("songexplorer-dagster ") and "dagster 1.13" in out and "tensorflow " in out


def test_add_recording_twice_gives_two_different_recordings(tmp_path, capsys):
    root = tmp_path / "p"
    assert main(["demo", str(root), "--recordings", "2", "--duration", "4", "--no-dense"]) == 0
    for _ in range(2):
        assert main(["demo", str(root), "--add-recording", "--duration", "4"]) == 0
    wavs = {p.name: p.read_bytes() for p in sorted((root / "groundtruth").glob("demo-*.wav"))}
    assert list(wavs) == ["demo-1.wav", "demo-2.wav", "demo-3.wav", "demo-4.wav"]
    assert len(set(wavs.values())) == 4  # new song each time, never a copy of another recording


def test_status_of_a_new_project_says_what_is_still_to_do(tmp_path, capsys):
    root = tmp_path / "p"
    assert main(["demo", str(root), "--recordings", "2", "--duration", "20", "--annotations-per-label", "3"]) == 0
    capsys.readouterr()
    assert main(["status", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"project {root.resolve()}: 2 recording(s), 2500 Hz, 1 channel(s)")
    assert "annotations: " in out and "  mel-pulse: " in out and "dense annotators: dense" in out
    assert "champion: none yet" in out and "2 recording(s) not detected yet: demo-1.wav, demo-2.wav" in out
    assert main(["status", str(tmp_path / "nothing")]) == 2


def test_init_copies_a_groundtruth_folder_and_reads_its_rate(tmp_path, capsys):
    source = tmp_path / "lab-data"
    (source / "round1").mkdir(parents=True)
    soundfile.write(str(source / "round1" / "a.wav"), np.zeros(2500, np.int16), 5000, subtype="PCM_16")
    soundfile.write(str(source / "b.wav"), np.zeros(2500, np.int16), 5000, subtype="PCM_16")
    assert main(["init", str(tmp_path / "p"), "--from", str(source)]) == 0
    assert "2 recording(s), 5000 Hz" in capsys.readouterr().out
    assert (tmp_path / "p" / "dagster_home" / "dagster.yaml").is_file()


def test_register_adds_every_recording_as_a_partition_once(tmp_path, monkeypatch, capsys):
    import dagster as dg

    assert main(["demo", str(tmp_path / "p"), "--recordings", "2", "--duration", "5", "--no-dense"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("SONGEXPLORER_PROJECT", str(tmp_path / "p"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["register"]) == 2
    assert "DAGSTER_HOME is not set" in capsys.readouterr().err
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "p" / "dagster_home"))
    assert main(["register"]) == 0
    out = capsys.readouterr()
    assert out.out.split() == ["demo-1.wav", "demo-2.wav"] and "2 new, 2 recording(s)" in out.err
    assert main(["register"]) == 0
    assert "0 new, 2 recording(s)" in capsys.readouterr().err
    with dg.DagsterInstance.get() as instance:
        assert sorted(instance.get_dynamic_partitions("recordings")) == ["demo-1.wav", "demo-2.wav"]


def test_misses_takes_songexplorers_comma_separated_list(tmp_path, capsys):
    def table(rows, kind):
        start, stop, label = zip(*rows)
        return intervals_frame("r.wav", list(start), list(stop), kind, list(label))

    detected = write_intervals_csv(table([(0, 9, "time"), (20, 29, "neither")], "detected"),
                                   tmp_path / "r.wav-detected.csv")
    predicted = write_intervals_csv(table([(20, 29, "x")], "predicted"), tmp_path / "r.wav-predicted.csv")

    def spans():
        frame = read_intervals_csv(tmp_path / "r.wav-missed.csv")
        return list(zip(frame["start"].tolist(), frame["stop"].tolist()))

    assert main(["misses", f"{detected},{predicted}"]) == 0
    assert spans() == [(0, 9)]
    assert main(["misses", str(detected), str(predicted), "--quirks"]) == 0
    assert spans() == []  # run at tic 0 dropped
    assert "r.wav-missed.csv: 0 misses" in capsys.readouterr().out


def test_summaries_reads_durations_from_the_wavs(tmp_path, capsys):
    from songexplorer_core.synth import dense_annotations, make_song, write_song

    song = make_song(30, seed=8, wav="s.wav")
    write_song(song, tmp_path / "s.wav")
    csv = write_intervals_csv(dense_annotations(song), tmp_path / "s.wav-annotated-truth.csv")
    assert main(["summaries", str(csv), "--out-dir", str(tmp_path / "out"), "--no-plot"]) == 0
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("label")
    assert summary.loc["mel-pulse", "duration_s"] == 30.0
    assert summary.loc["mel-pulse", "events_per_min"] == pytest.approx(len(song.pulse_centres) / 0.5)
    assert "mel-pulse" in capsys.readouterr().out
    missing = write_intervals_csv(intervals_frame("gone.wav", [1], [2], "annotated", "x"), tmp_path / "g.csv")
    assert main(["summaries", str(missing), "--out-dir", str(tmp_path / "out")]) == 2
    assert "--wav-dir" in capsys.readouterr().err
