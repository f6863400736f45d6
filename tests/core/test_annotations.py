"""SongExplorer's interval CSVs: naming, validation naming file and line, atomic writes."""

import os

import pandas as pd
import pytest

from songexplorer_core import annotations as A
from songexplorer_core.atomic import atomic_write

TICS = {"rec.wav": 10_000}


def write(path, text):
    path.write_text(text)
    return path


def test_round_trip_keeps_rows_order_and_inclusive_tics(tmp_path):
    frame = A.intervals_frame("rec.wav", [5013, 10], [10972, 10], "annotated", ["ambient", "mel-pulse"])
    path = A.write_intervals_csv(frame, tmp_path / "rec.wav-annotated-person1.csv")
    assert path.read_text() == "rec.wav,5013,10972,annotated,ambient\nrec.wav,10,10,annotated,mel-pulse\n"
    back = A.read_intervals_csv(path)
    pd.testing.assert_frame_equal(back, frame)
    assert list(back.columns) == list(A.COLUMNS)
    assert str(back["start"].dtype) == "int64" and "pyarrow" in str(back["label"].dtype.storage)


def test_reads_songexplorer_sample_rows():
    # Two real rows in SongExplorer's format (its 5-column interval CSV: wav,start,stop,kind,label): a range and a point.
    import io, tempfile, pathlib
    d = pathlib.Path(tempfile.mkdtemp())
    p = write(d / "PS.wav-annotated-person1.csv",
              "PS_20130625111709_ch3.wav,5013,10972,annotated,ambient\n"
              "PS_20130625111709_ch3.wav,471673,471673,annotated,mel-pulse\n")
    frame = A.read_intervals_csv(p)
    assert frame["label"].tolist() == ["ambient", "mel-pulse"]
    assert (frame["stop"] - frame["start"]).tolist() == [5959, 0]


@pytest.mark.parametrize(
    "name, expected",
    [
        ("PS.wav-annotated-person1.csv", A.CsvName("PS.wav", "annotated", "person1")),
        ("PS-annotated-person1.csv", A.CsvName("PS.wav", "annotated", "person1")),
        ("PS.wav-20230102T030405-annotated-bob.csv", A.CsvName("PS.wav", "annotated", "bob")),
        ("PS.wav-annotated-20230102T030405.csv", A.CsvName("PS.wav", "annotated", "20230102T030405")),
        ("PS.wav-detected.csv", A.CsvName("PS.wav", "detected", "")),
        ("PS-detected.csv", A.CsvName("PS.wav", "detected", "")),
        ("PS.wav-predicted.csv", A.CsvName("PS.wav", "predicted", "")),
        ("PS.wav-predicted-1.0pr.csv", A.CsvName("PS.wav", "predicted", "1.0pr")),
        ("PS.wav-missed.csv", A.CsvName("PS.wav", "missed", "")),
        ("PS.wav-mistakes.csv", A.CsvName("PS.wav", "mistakes", "")),
        ("PS.wav-disjoint-everyone.csv", A.CsvName("PS.wav", "disjoint", "everyone")),
        ("notes.csv", None),
        ("thresholds.ckpt-300.csv", None),
    ],
)
def test_both_naming_styles_and_every_kind_parse(name, expected):
    assert A.parse_csv_name(name) == expected


def test_missing_column_names_file_and_line(tmp_path):
    path = write(tmp_path / "rec.wav-annotated-p.csv", "rec.wav,1,2,annotated,pulse\nrec.wav,3,4,annotated\n")
    with pytest.raises(A.AnnotationError, match=r"(?s)rec\.wav-annotated-p\.csv.*line 2: has 4 column"):
        A.read_intervals_csv(path)


def test_non_numeric_tic_names_line(tmp_path):
    path = write(tmp_path / "rec.wav-annotated-p.csv", "rec.wav,1,2,annotated,pulse\nrec.wav,abc,4,annotated,pulse\n")
    with pytest.raises(A.AnnotationError, match=r"(?s)line 2: start/stop tics must be whole numbers.*'abc'"):
        A.read_intervals_csv(path)


def test_stop_before_start_names_line(tmp_path):
    path = write(tmp_path / "rec.wav-annotated-p.csv", "rec.wav,10,4,annotated,pulse\n")
    with pytest.raises(A.AnnotationError, match=r"(?s)line 1: stop tic 4 is before start tic 10"):
        A.read_intervals_csv(path)


def test_unknown_kind_names_line(tmp_path):
    path = write(tmp_path / "rec.wav-annotated-p.csv", "rec.wav,1,4,anotated,pulse\n")
    with pytest.raises(A.AnnotationError, match=r"(?s)line 1: unknown kind 'anotated'"):
        A.read_intervals_csv(path)
    # congruence kinds are known
    write(path, "rec.wav,1,4,tic-onlyperson1,pulse\n")
    assert len(A.read_intervals_csv(path)) == 1


def test_csv_naming_a_missing_recording_is_refused(tmp_path):
    path = write(tmp_path / "rec.wav-annotated-p.csv", "other.wav,1,4,annotated,pulse\n")
    with pytest.raises(A.AnnotationError, match=r"(?s)line 1: names recording 'other.wav'.*not in the ground-truth"):
        A.read_intervals_csv(path, recording_tics=TICS)


def test_annotation_past_the_end_of_its_recording_is_refused(tmp_path):
    path = write(tmp_path / "rec.wav-annotated-p.csv", "rec.wav,9990,9999,annotated,a\nrec.wav,9995,10000,annotated,b\n")
    with pytest.raises(A.AnnotationError, match=r"(?s)line 2: stop tic 10000 is past the end of rec.wav \(10000 tics"):
        A.read_intervals_csv(path, recording_tics=TICS)


def test_every_bad_line_is_reported_and_nothing_loads(tmp_path):
    lines = ["rec.wav,1,2,annotated,ok"] + [f"rec.wav,{i},x,annotated,bad" for i in range(30)]
    path = write(tmp_path / "rec.wav-annotated-p.csv", "\n".join(lines) + "\n")
    with pytest.raises(A.AnnotationError) as info:
        A.read_intervals_csv(path)
    assert "30 bad line(s)" in str(info.value) and "and 10 more" in str(info.value)


def test_six_column_mistakes_files_keep_both_labels(tmp_path):
    path = write(tmp_path / "rec.wav-mistakes.csv", "rec.wav,1,4,mistaken,sine,pulse\n")
    frame = A.read_intervals_csv(path)
    assert frame.loc[0, "label"] == "sine" and frame.loc[0, A.ANNOTATED_LABEL] == "pulse"
    A.write_intervals_csv(frame, tmp_path / "copy.csv")
    assert (tmp_path / "copy.csv").read_text() == path.read_text()


def test_blank_and_empty_files_give_empty_tables(tmp_path):
    assert len(A.read_intervals_csv(write(tmp_path / "a.csv", ""))) == 0
    assert len(A.read_intervals_csv(write(tmp_path / "b.csv", "\n\n"))) == 0


def test_failed_write_leaves_previous_file_intact(tmp_path):
    path = tmp_path / "rec.wav-annotated-p.csv"
    A.write_intervals_csv(A.intervals_frame("rec.wav", 1, 2, "annotated", "a"), path)
    before = path.read_text()
    with pytest.raises(RuntimeError):
        with atomic_write(path) as handle:
            handle.write("half a fi")
            raise RuntimeError("disk full")
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind


def test_bad_table_is_not_written(tmp_path):
    frame = A.intervals_frame("rec.wav", 5, 1, "annotated", "a")
    with pytest.raises(A.AnnotationError):
        A.write_intervals_csv(frame, tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


def test_find_skips_oldfiles_and_congruence_folders_at_any_depth(tmp_path):
    (tmp_path / "round1" / "oldfiles-20230101T000000").mkdir(parents=True)
    (tmp_path / "congruence-20230101T000000").mkdir()
    for rel in ["round1/a.wav-annotated-p.csv", "round1/oldfiles-20230101T000000/a.wav-predicted.csv",
                "congruence-20230101T000000/a.wav-disjoint-everyone.csv", "b.wav-detected.csv", "notes.csv"]:
        write(tmp_path / rel, "")
    found = [p.relative_to(tmp_path).as_posix() for p in A.find_interval_csvs(tmp_path)]
    assert found == ["b.wav-detected.csv", "round1/a.wav-annotated-p.csv"]
    assert A.find_interval_csvs(tmp_path, kinds=["annotated"])[0].name == "a.wav-annotated-p.csv"


def test_annotator_names_must_be_file_name_safe():
    assert A.annotated_csv_name("dir/rec.wav", "person1") == "rec.wav-annotated-person1.csv"
    with pytest.raises(A.AnnotationError):
        A.annotated_csv_name("rec.wav", "../../etc")


def test_songexplorer_detected_rows_load_as_they_are(tmp_path):
    # SongExplorer's detector: a frequency row starting before tic 0, a time row whose exclusive
    # stop is one past the last tic of the recording (quirks 1-2)
    path = write(tmp_path / "rec.wav-detected.csv",
                 "rec.wav,-16,112,detected,frequency\nrec.wav,9990,10000,detected,time\n")
    frame = A.read_intervals_csv(path, recording_tics=TICS)
    assert frame["start"].tolist() == [-16, 9990]
    # the same rows as annotations are refused
    write(path, "rec.wav,-16,112,annotated,pulse\n")
    with pytest.raises(A.AnnotationError, match="negative"):
        A.read_intervals_csv(path, recording_tics=TICS)
