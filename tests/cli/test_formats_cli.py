"""``songexplorer import`` / ``songexplorer export``: other tools' annotation files in and out,
exact round trips through the command line, and one-line errors naming the file and the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import soundfile

from songexplorer_cli import main
from songexplorer_core.annotations import intervals_frame, read_intervals_csv, write_intervals_csv

SAMPLES = Path(__file__).parents[1] / "core" / "format_samples"


def recording(folder: Path, name="rec.wav", rate=2500, seconds=5) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    soundfile.write(str(path), np.zeros(rate * seconds, np.int16), rate, subtype="PCM_16")
    return path


def test_export_then_import_gives_the_csv_back_byte_for_byte(tmp_path, capsys):
    wav = recording(tmp_path / "gt", rate=44100)
    # sorted by start, stop, label, as a TextGrid gives its rows back
    table = intervals_frame("rec.wav", [0, 100, 100, 44099, 200000], [0, 100, 5000, 44200, 220499], "annotated",
                            ["mel pulse", 'say "hi"', "canto del ñandú", "NA", "1.5"])
    csv = write_intervals_csv(table, wav.parent / "rec.wav-annotated-anna.csv")
    original = csv.read_bytes()
    assert main(["export", str(csv), "--format", "raven,audacity,textgrid,das", "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "44100 Hz" in out
    for exported in sorted((tmp_path / "out").iterdir()):
        shutil.copy(exported, wav.parent / exported.name)
        csv.unlink()
        assert main(["import", str(wav.parent / exported.name)]) == 0, exported.name
        assert "rec.wav-annotated-anna.csv: 5 row(s) (2 point(s), 3 range(s))" in capsys.readouterr().out
        assert csv.read_bytes() == original, exported.name


def test_import_tools_files_with_wav_or_rate_and_output_names(tmp_path, capsys):
    wav = recording(tmp_path / "gt", name="song.wav")
    assert main(["import", str(SAMPLES / "song.Table.1.selections.txt"), "--wav", str(wav),
                 "-o", str(tmp_path / "gt" / "song.wav-annotated-raven.csv")]) == 0
    table = read_intervals_csv(tmp_path / "gt" / "song.wav-annotated-raven.csv", recording_tics={"song.wav": 12500})
    assert table["start"].tolist() == [1000, 3086, 5001]
    assert "repeat a selection in another view" in capsys.readouterr().out
    assert main(["import", str(SAMPLES / "song.txt"), str(SAMPLES / "song_annotations.csv"), "--rate", "2500",
                 "-o", str(tmp_path / "many")]) == 0
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == ["song.wav-annotated-audacity.csv",
                                                                   "song.wav-annotated-das.csv"]
    assert main(["import", str(SAMPLES / "song_short.TextGrid"), "--rate", "2500", "--kind", "predicted",
                 "-o", str(tmp_path / "many")]) == 0
    assert set(read_intervals_csv(tmp_path / "many" / "song_short.wav-predicted-textgrid.csv")["kind"]) == {
        "predicted"}


def test_errors_name_the_file_and_the_fix(tmp_path, capsys):
    wav = recording(tmp_path, rate=2500, seconds=1)
    bad = tmp_path / "rec.txt"
    bad.write_text("0.1\t0.2\tok\n0.5\t0.4\ty\n0.6\t3.0\tlate\n", encoding="utf-8")
    assert main(["import", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "line 2: stop 0.4 s is before start 0.5 s" in err and "past the end of rec.wav" in err
    assert not list(tmp_path.glob("*.csv"))
    assert main(["import", str(bad), "--rate", "8000", "--wav", str(wav)]) == 2
    assert "is 2500 Hz but --rate says 8000 Hz" in capsys.readouterr().err
    lonely = tmp_path / "elsewhere" / "x.TextGrid"
    lonely.parent.mkdir()
    lonely.write_text('File type = "ooTextFile"\nObject class = "TextGrid"\n0\n1\n<absent>\n')
    assert main(["import", str(lonely)]) == 2
    assert "give --wav PATH" in capsys.readouterr().err
    odd = tmp_path / "notes.dat"
    odd.write_text("")
    assert main(["import", str(odd), "--rate", "2500"]) == 2
    assert "give --format" in capsys.readouterr().err
    good = tmp_path / "ok.txt"
    good.write_text("0.1\t0.2\tok\n")
    assert main(["import", str(good), "--wav", str(wav)]) == 0
    assert main(["import", str(good), "--wav", str(wav)]) == 2
    assert "exists already" in capsys.readouterr().err
    csv = write_intervals_csv(intervals_frame("gone.wav", [1], [2], "annotated", "x"), tmp_path / "gone.wav-annotated-a.csv")
    assert main(["export", str(csv), "--format", "raven"]) == 2
    assert "--rate HZ" in capsys.readouterr().err
    assert main(["export", str(csv), "--format", "excel", "--rate", "2500"]) == 2
    assert "unknown annotation format 'excel'" in capsys.readouterr().err
