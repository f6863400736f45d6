"""Gathering ground truth never drops, doubles or misreads an annotation row silently: the CSV
reader's checks apply (unknown kind, empty label, a row past the end of its recording, a wav
column reaching outside the folder, each refused naming file and line), exact duplicates are
counted once and said so, and Excel's CSVs (byte-order mark, CRLF) read as they should
(docs/reliability.md, Inputs)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from songexplorer_core import dataset as D
from songexplorer_core.annotations import AnnotationError, AnnotationWarning, intervals_frame, read_intervals_csv

RATE = 2500
NTICS = 30000
GEOMETRY = D.Geometry(context_tics=512, shiftby_tics=0, stride_tics=4, parallelize=2)
ROWS = [f"a.wav,{2000 + 300 * i},{2000 + 300 * i},annotated,{label}"
        for i, label in enumerate(["pulse", "sine"] * 10)]


def recording(folder: Path, name: str = "a.wav", ntics: int = NTICS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(folder / name), np.zeros(ntics, np.int16), RATE, subtype="PCM_16")
    return folder / name


def annotations(folder: Path, lines: list[str], name: str = "a.wav-annotated-person1.csv", *,
                newline: str = "\n", bom: bool = False) -> Path:
    path = folder / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + (newline.join(lines) + newline).encode("utf-8"))
    return path


def dataset(folder: Path):
    return D.make_dataset(folder, labels_to_use=["pulse", "sine"], geometry=GEOMETRY, validation_percentage=0)


@pytest.mark.parametrize("row, message", [
    ("a.wav,9000,9000,anotated,pulse", r"line 21: unknown kind 'anotated'"),
    ("a.wav,9000,9000,annotated,", r"line 21: label '' is empty"),
    ("a.wav,29990,30000,annotated,pulse", r"line 21: stop tic 30000 is past the end of a.wav \(30000 tics"),
    ("a.wav,40000,40000,annotated,pulse", r"line 21: stop tic 40000 is past the end of a.wav"),
    ("../other/a.wav,9000,9000,annotated,pulse", r"line 21: wav '\.\./other/a\.wav' is not a recording's file name"),
    ("/elsewhere/a.wav,9000,9000,annotated,pulse", r"line 21: wav '/elsewhere/a\.wav' is not a recording's file name"),
    ("a.wav,9000,9000,annotated,mel/pulse", r"line 21: label 'mel/pulse' holds a path separator"),
    ("a.wav,9e3,9000,annotated,pulse", r"line 21: start/stop tics must be whole numbers"),
    ("a.wav,99999999999999999999999,99999999999999999999999,annotated,pulse", r"line 21: start/stop tics"),
])
def test_a_bad_row_is_refused_naming_file_and_line_and_nothing_trains(tmp_path, row, message):
    recording(tmp_path)
    # a copy of the recording outside the ground-truth folder must not be reachable from a CSV
    recording(tmp_path.parent / "other")
    annotations(tmp_path, ROWS + [row])
    with pytest.raises(AnnotationError, match=rf"(?s)a\.wav-annotated-person1\.csv: 1 bad line.*{message}"):
        dataset(tmp_path)


def test_exact_duplicate_rows_in_one_file_count_once_and_are_reported(tmp_path):
    recording(tmp_path)
    annotations(tmp_path, ROWS + [ROWS[3], ROWS[3], ROWS[5]])
    with pytest.warns(AnnotationWarning, match=r"a\.wav-annotated-person1\.csv: 3 exact duplicate row\(s\) counted "
                                               r"once \(line 21 repeats line 4; line 22 repeats line 4; line 23 "
                                               r"repeats line 6\)"):
        read_intervals_csv(tmp_path / "a.wav-annotated-person1.csv")
    data = dataset(tmp_path)
    assert len(data.sounds) == 20
    assert any("3 exact duplicate row(s) counted once" in note for note in data.notes)


def test_a_sound_in_two_files_counts_once_naming_both(tmp_path):
    """Two files of one recording (two annotators, or one annotator's file under both naming
    styles after a copy) holding the same row: the sound is one sound."""
    recording(tmp_path)
    annotations(tmp_path, ROWS)
    annotations(tmp_path, [ROWS[0], "a.wav,9100,9100,annotated,pulse"], name="a-annotated-person1.csv")
    data = dataset(tmp_path)
    assert len(data.sounds) == 21
    note = next(note for note in data.notes if "more than once" in note)
    assert "1 annotation(s) appear more than once" in note
    assert "a.wav 2000-2000 annotated pulse (a.wav-annotated-person1.csv line 1, as a-annotated-person1.csv line 1)" in note
    truth = D.GroundTruth.from_folder(tmp_path)
    assert len(truth.intervals) == 21 and list(truth.intervals.columns) == ["wav", "start", "stop", "kind", "label",
                                                                          "recording"]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("bom", [False, True])
def test_excel_csvs_with_a_byte_order_mark_and_crlf_read_as_written(tmp_path, newline, bom):
    recording(tmp_path)
    annotations(tmp_path, ROWS, newline=newline, bom=bom)
    frame = read_intervals_csv(tmp_path / "a.wav-annotated-person1.csv")
    assert frame["wav"].tolist() == ["a.wav"] * 20 and frame["label"].tolist() == ["pulse", "sine"] * 10
    assert len(dataset(tmp_path).sounds) == 20


def test_other_encodings_are_named_with_the_fix(tmp_path):
    path = tmp_path / "a.wav-annotated-person1.csv"
    path.write_bytes("a.wav,1,2,annotated,chant-é\n".encode("cp1252"))
    with pytest.raises(AnnotationError, match=r"a\.wav-annotated-person1\.csv: not UTF-8 text.*CSV UTF-8"):
        read_intervals_csv(path)
    path.write_bytes("a.wav,1,2,annotated,chant-é\n".encode("utf-16"))  # with its byte-order mark
    assert read_intervals_csv(path)["label"].tolist() == ["chant-é"]
    path.write_text("a.wav;1;2;annotated;pulse\n")  # Excel in a locale whose list separator is ';'
    with pytest.raises(AnnotationError, match=r"line 1: has 1 column\(s\).*use ';' between columns"):
        read_intervals_csv(path)
    path.write_bytes(b"a.wav,1,2,annotated,pu\x00lse\n")
    with pytest.raises(AnnotationError, match=r"(?s)a\.wav-annotated-person1\.csv: .*line 1: .*U\+0000"):
        read_intervals_csv(path)


def test_a_table_row_past_the_end_of_its_recording_is_refused_not_skipped(tmp_path):
    """Ground truth from a table (the Dagster ground_truth asset's Parquet) is checked too."""
    path = recording(tmp_path)
    table = intervals_frame("a.wav", [2000, 2300, 31000], [2000, 2300, 31000], "annotated", ["pulse", "sine", "pulse"])
    truth = D.GroundTruth.from_tables(table, {"a.wav": path})
    with pytest.raises(D.DatasetError, match=r"1 annotation\(s\) reach past the end of their recording: "
                                             r"a\.wav 31000-31000 annotated pulse"):
        D.make_dataset(truth, labels_to_use=["pulse", "sine"], geometry=GEOMETRY)


def test_a_duplicate_row_of_a_table_counts_once(tmp_path):
    path = recording(tmp_path)
    table = intervals_frame("a.wav", [2000, 2000, 2300], [2000, 2000, 2300], "annotated", ["pulse", "pulse", "sine"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        truth = D.GroundTruth.from_tables(table, {"a.wav": path})
    assert len(truth.intervals) == 2 and "counted once" in truth.notes[0]
    pd.testing.assert_series_equal(truth.intervals["start"], pd.Series([2000, 2300], name="start"))


def test_a_folder_with_nothing_wrong_reads_as_before(tmp_path):
    recording(tmp_path)
    annotations(tmp_path, ROWS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = dataset(tmp_path)
    assert len(data.sounds) == 20 and data.notes == []
