"""Other tools' annotation files (songexplorer_core.formats): SongExplorer CSV -> each format ->
SongExplorer CSV is exact (points, ranges, overlaps, odd labels, any rate), files written the
way Raven, Audacity, Praat and DAS write them are read to the expected tics, and bad rows are
refused naming the file and line."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import soundfile

from songexplorer_core.annotations import (
    AnnotationError,
    annotated_csv_name,
    intervals_frame,
    parse_csv_name,
    read_intervals_csv,
    write_intervals_csv,
)
from songexplorer_core.formats import (
    FORMATS,
    FormatError,
    decimals_for,
    export_csv,
    export_csvs,
    find_annotation_files,
    foreign_files_for_recording,
    format_named,
    format_of_file,
    import_file,
    name_info,
    parse_seconds,
    read_annotation_file,
    seconds_text,
    tic_of,
)
from songexplorer_core.project import Project, ProjectError, ProjectSettings, write_settings

SAMPLES = Path(__file__).parent / "format_samples"
RATES = (2500, 8000, 22050, 44100, 48000, 96000, 250000, 300001)
#: Labels a SongExplorer CSV may hold that trip careless readers: spaces, scripts, quotes, CSV and
#: TextGrid syntax, words pandas reads as missing, numbers, an emoji.
ODD_LABELS = ["mel pulse", "canto del ñandú", "鳥の歌", 'say "hi"', "semi;colon", "#hash", "NA", "null", "nan",
              "1.5", "'single'", "🐦 call", "a!b", "<exists>", '""', "x\\y".replace("\\", "=")]


def sorted_rows(frame):
    return frame.sort_values(["wav", "start", "stop", "kind", "label"]).reset_index(drop=True)


def odd_table(wav="rec.wav", kind="annotated"):
    """Points and ranges of every odd label; ranges of one label that overlap, touch, or nest;
    a range from tic 0 and one ending at a large tic."""
    starts, stops, labels = [], [], []
    for i, label in enumerate(ODD_LABELS):
        start = 1000 * i + 7
        starts += [start, start + 3]
        stops += [start, start + 3 + 37 * (i + 1)]
        labels += [label, label]
    starts += [0, 5, 5, 40, 10**9]
    stops += [30, 20, 60, 45, 10**9 + 12345]
    labels += ["mel pulse"] * 5
    return intervals_frame(wav, starts, stops, kind, labels)


# -- the rounding rule ----------------------------------------------------------------------------------------


def test_seconds_text_is_exact_short_and_plain():
    assert seconds_text(10, 2500) == "0.004"
    assert seconds_text(0, 44100) == "0" and seconds_text(2500, 2500) == "1"
    assert seconds_text(1, 44100) == "0.00002268"  # 8 decimals at 44.1 kHz
    assert seconds_text(10**12, 2500) == "400000000"  # no exponent
    assert decimals_for(2500) == 7 and decimals_for(44100) == 8 and decimals_for(250000) == 9
    assert decimals_for(8) == 6


def test_seconds_to_tics_rounds_to_nearest_halves_up_from_the_text_as_written():
    assert tic_of(parse_seconds("0.0002"), 2500) == 1  # 0.5 tic: up
    assert tic_of(parse_seconds("0.0006"), 2500) == 2  # 1.5 tics: up
    assert tic_of(parse_seconds("0.00059999"), 2500) == 1
    assert tic_of(parse_seconds("2.0004000000000004"), 2500) == 5001  # pandas' float repr
    assert tic_of(parse_seconds("1e-3"), 2500) == 3 and tic_of(parse_seconds(".4"), 2500) == 1000
    assert tic_of(parse_seconds("-0.0002"), 2500) == 0  # halves go up for negative times too
    for text in ("nan", "inf", "", "1,5", "0x10", "1.2.3", "1e"):
        assert parse_seconds(text) is None, text


@pytest.mark.parametrize("rate", RATES)
def test_every_tic_comes_back_at_every_rate(rate):
    rng = np.random.default_rng(rate)
    tics = [0, 1, rate - 1, rate, rate + 1, 2**31, 2**40, *rng.integers(0, 2**45, 2000).tolist()]
    for tic in tics:
        assert tic_of(parse_seconds(seconds_text(tic, rate)), rate) == tic, (tic, rate)
        exact = Decimal(tic) / Decimal(rate)
        assert abs(Decimal(seconds_text(tic, rate)) - exact) * rate <= Decimal("0.0005")


# -- round trips ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FORMATS))
@pytest.mark.parametrize("rate", [2500, 44100, 300001])
def test_round_trip_is_exact(tmp_path, name, rate):
    """CSV -> format -> CSV gives the same rows (and, for a sorted CSV, the same bytes) and the
    same file name back; the recording's length bounds the rows."""
    fmt = format_named(name)
    table = sorted_rows(odd_table())
    csv = write_intervals_csv(table, tmp_path / "rec.wav-annotated-person1.csv")
    exported = export_csv(csv, fmt, rate=rate, out_dir=tmp_path / "out", duration_tics=10**9 + 20000)
    assert exported.name == "rec.wav-annotated-person1" + fmt.suffix
    assert format_of_file(exported) is fmt
    back, csv_name = import_file(exported, fmt, rate=rate, recording_tics={"rec.wav": 10**9 + 20000})
    assert csv_name == csv.name
    assert sorted_rows(back).equals(table)
    again = write_intervals_csv(sorted_rows(back), tmp_path / "again" / csv_name)
    assert again.read_bytes() == csv.read_bytes()


@pytest.mark.parametrize("name", list(FORMATS))
def test_round_trip_keeps_the_kind_and_order_of_an_ethogram(tmp_path, name):
    """A predicted CSV in file order (not sorted): the kind comes back from the name; the
    line-based formats keep the order, a TextGrid gives the rows sorted by time."""
    fmt = format_named(name)
    table = odd_table(kind="predicted").iloc[::-1].reset_index(drop=True)
    csv = write_intervals_csv(table, tmp_path / "rec.wav-predicted-1.0pr.csv")
    back, csv_name = import_file(export_csv(csv, fmt, rate=2500), fmt, rate=2500)
    assert csv_name == csv.name and set(back["kind"]) == {"predicted"}
    if name == "textgrid":
        assert back.equals(sorted_rows(back))
        assert sorted_rows(back).equals(sorted_rows(table))
    else:
        assert back.equals(table)


def test_textgrid_packs_overlapping_ranges_into_tiers_and_points_into_a_point_tier(tmp_path):
    table = intervals_frame("rec.wav", [0, 5, 5, 30, 7], [30, 20, 60, 45, 7], "annotated",
                            ["sine", "sine", "sine", "sine", "sine"])
    text = format_named("textgrid").module.render(
        [(seconds_text(a, 2500), seconds_text(b, 2500), c) for a, b, c in
         table[["start", "stop", "label"]].itertuples(index=False)], duration="1")
    assert text.count('class = "IntervalTier"') == 3 and text.count('class = "TextTier"') == 1
    assert 'name = "sine 2"' in text and 'name = "sine points"' in text


def test_empty_csv_exports_and_imports_as_empty(tmp_path):
    csv = tmp_path / "rec.wav-annotated-a.csv"
    csv.write_text("")
    for fmt in FORMATS.values():
        back, _ = import_file(export_csv(csv, fmt, rate=2500), fmt, rate=2500)
        assert len(back) == 0


# -- files the tools wrote ------------------------------------------------------------------------------------

#: The sounds of the samples at 2500 Hz (see format_samples/README.md).
SINE, PULSE, NANDU = (1000, 2000, "mel-sine"), (3086, 3086, "mel-pulse"), (5001, 8750, "canto del ñandú")


def rows_of(frame):
    return [(int(a), int(b), str(c)) for a, b, c in frame[["start", "stop", "label"]].itertuples(index=False)]


def test_raven_table_with_two_views_reads_each_selection_once():
    notes = []
    table = read_annotation_file(SAMPLES / "song.Table.1.selections.txt", format_named("raven"), rate=2500,
                                 notes=notes)
    assert rows_of(table) == [SINE, PULSE, NANDU]
    assert set(table["wav"]) == {"song.wav"} and set(table["kind"]) == {"annotated"}
    assert any("3 row(s) repeat a selection" in note for note in notes)


def test_audacity_label_track_reads_points_ranges_and_skips_frequency_lines():
    table = read_annotation_file(SAMPLES / "song.txt", format_named("audacity"), rate=2500,
                                 recording_tics={"song.wav": 12500})
    assert rows_of(table) == [SINE, PULSE, NANDU, (10000, 10001, '"quoted" call')]


@pytest.mark.parametrize("sample", ["song.TextGrid", "song_short.TextGrid"])
def test_praat_textgrids_long_and_short_read_intervals_with_text_and_points(sample):
    table = read_annotation_file(SAMPLES / sample, format_named("textgrid"), rate=2500, wav="song.wav")
    expected = [SINE, PULSE, NANDU, (10001, 10001, 'say "hi"')]
    assert rows_of(table) == (expected if sample == "song.TextGrid" else [SINE, PULSE])


def test_praat_textgrid_in_utf16_and_latin1_reads_the_same(tmp_path):
    text = (SAMPLES / "song.TextGrid").read_text(encoding="utf-8")
    utf16 = tmp_path / "song.TextGrid"
    utf16.write_bytes(b"\xfe\xff" + text.replace("\n", "\r\n").encode("utf-16-be"))
    latin1 = tmp_path / "latin.TextGrid"
    latin1.write_bytes(text.encode("latin-1"))
    fmt = format_named("textgrid")
    expected = read_annotation_file(SAMPLES / "song.TextGrid", fmt, rate=2500)
    assert read_annotation_file(utf16, fmt, rate=2500).equals(expected)
    assert rows_of(read_annotation_file(latin1, fmt, rate=2500)) == rows_of(expected)


def test_das_csv_reads_events_segments_quotes_and_notes_empty_song_types():
    notes = []
    table = read_annotation_file(SAMPLES / "song_annotations.csv", format_named("das"), rate=2500, notes=notes)
    assert rows_of(table) == [PULSE, (5001, 5001, "mel-pulse"), SINE, (5001, 8750, 'sine "slow"')]
    assert set(table["wav"]) == {"song.wav"}
    assert any("vibration" in note for note in notes)


# -- refusals -------------------------------------------------------------------------------------------------


def test_bad_rows_are_listed_with_their_lines_and_nothing_is_loaded(tmp_path):
    path = tmp_path / "rec.txt"
    path.write_text("0.1\t0.2\tok\nabc\t0.3\tx\n0.5\t0.4\ty\n0.6\t0.7\ta, b\n0.8\t0.9\t\n1,5\t2\tz\n1\t9\tlong\n",
                    encoding="utf-8")
    with pytest.raises(FormatError) as caught:
        read_annotation_file(path, format_named("audacity"), rate=2500, recording_tics={"rec.wav": 12500})
    message = str(caught.value)
    assert str(path) in message and "was not loaded" in message
    for expected in ("line 2: start 'abc'", "line 3: stop 0.4 s is before start 0.5 s", "line 4: label 'a, b'",
                     "line 5: label '' is empty", "line 6: start '1,5' uses a comma as the decimal mark",
                     "line 7: stop 9 s (tic 22500) is past the end of rec.wav"):
        assert expected in message, expected
    assert isinstance(caught.value, AnnotationError)


def test_raven_without_the_label_column_names_the_option_and_another_column_works(tmp_path):
    path = tmp_path / "rec.Table.1.selections.txt"
    path.write_text("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tSpecies\n"
                    "1\tSpectrogram 1\t1\t0.1\t0.2\tEATO\n", encoding="utf-8")
    with pytest.raises(FormatError, match="label-column"):
        read_annotation_file(path, format_named("raven"), rate=2500)
    table = read_annotation_file(path, format_named("raven"), rate=2500, label_column="Species")
    assert rows_of(table) == [(250, 500, "EATO")]


def test_raven_views_that_disagree_and_tables_of_several_files_are_refused(tmp_path):
    path = tmp_path / "rec.Table.1.selections.txt"
    path.write_text("Selection\tView\tBegin Time (s)\tEnd Time (s)\tAnnotation\n1\tWaveform 1\t0.1\t0.2\ta\n"
                    "1\tSpectrogram 1\t0.1\t0.3\ta\n", encoding="utf-8")
    with pytest.raises(FormatError, match="line 3: selection 1 repeats line 2"):
        read_annotation_file(path, format_named("raven"), rate=2500)
    path.write_text("Selection\tBegin File\tBegin Time (s)\tEnd Time (s)\tAnnotation\n1\ta.wav\t0.1\t0.2\ta\n"
                    "2\tb.wav\t0.1\t0.3\ta\n", encoding="utf-8")
    with pytest.raises(FormatError, match="one selection table per sound file"):
        read_annotation_file(path, format_named("raven"), rate=2500)


@pytest.mark.parametrize("text, expected", [
    ("ooBinaryFile\x00TextGrid", "Save as text file"),
    ('File type = "ooTextFile"\nObject class = "TextGrid"\n0\n5\n<exists>\n1\n"IntervalTier"\n"a"\n0\n5\n2\n0\n1\n"x"\n',
     "the file ends where an interval's xmin was expected"),
    ('File type = "ooTextFile"\nObject class = "Sound"\n', "not a TextGrid"),
    ('File type = "ooTextFile"\nObject class = "TextGrid"\n0\n5\n<exists>\n1\n"Tier"\n"a"\n0\n5\n0\n',
     "line 7: unknown tier class 'Tier'"),
])
def test_malformed_textgrids_are_refused(tmp_path, text, expected):
    path = tmp_path / "rec.TextGrid"
    path.write_bytes(text.encode("utf-8"))
    with pytest.raises(FormatError, match=expected):
        read_annotation_file(path, format_named("textgrid"), rate=2500)


def test_das_without_its_header_is_refused(tmp_path):
    path = tmp_path / "rec_annotations.csv"
    path.write_text("label,start,stop\npulse,0.1,0.1\n")
    with pytest.raises(FormatError, match="name,start_seconds,stop_seconds"):
        read_annotation_file(path, format_named("das"), rate=2500)


def test_export_refuses_what_a_format_cannot_hold_and_existing_files_when_asked(tmp_path):
    two = write_intervals_csv(intervals_frame(["a.wav", "b.wav"], [1, 2], [3, 4], "annotated", "x"),
                              tmp_path / "two.csv")
    with pytest.raises(FormatError, match="2 recordings"):
        export_csv(two, format_named("raven"), rate=2500)
    kinds = write_intervals_csv(intervals_frame("a.wav", [1, 2], [3, 4], ["annotated", "predicted"], "x"),
                                tmp_path / "kinds.csv")
    with pytest.raises(FormatError, match="2 kinds"):
        export_csv(kinds, format_named("audacity"), rate=2500)
    one = write_intervals_csv(intervals_frame("a.wav", [1], [3], "annotated", "x"), tmp_path / "a.wav-annotated-p.csv")
    export_csv(one, format_named("das"), rate=2500)
    with pytest.raises(FormatError, match="exists already"):
        export_csv(one, format_named("das"), rate=2500, overwrite=False)
    with pytest.raises(FormatError, match="unknown annotation format 'excel'"):
        export_csvs([one], ["excel"], rate=2500)


# -- names, the registry, the project setting -----------------------------------------------------------------


def test_file_names_choose_the_format_and_say_recording_kind_and_annotator():
    assert format_of_file("x.Table.1.selections.txt").name == "raven"
    assert format_of_file("x.Table.2.selections.txt").name == "raven"
    assert format_of_file("x.txt").name == "audacity" and format_of_file("x.textgrid").name == "textgrid"
    assert format_of_file("x_annotations.csv").name == "das" and format_of_file("x.wav-annotated-a.csv") is None
    raven = format_named("RAVEN")
    assert name_info("PS.Table.1.selections.txt", raven) == parse_csv_name("PS.wav-annotated-raven.csv")
    assert name_info("PS.wav-predicted-1.0pr.Table.1.selections.txt", raven).kind == "predicted"
    assert name_info("PS.wav.TextGrid", format_named("textgrid")).recording == "PS.wav"
    with pytest.raises(FormatError, match="the formats are raven, textgrid, das, audacity"):
        format_named("excel")


def test_das_files_are_never_taken_for_songexplorer_csvs():
    assert parse_csv_name("rec.wav-annotated-bob_annotations.csv") is None
    with pytest.raises(AnnotationError, match="_annotations"):
        annotated_csv_name("rec.wav", "bob_annotations")


def test_project_setting_names_formats_and_refuses_unknown_ones(tmp_path):
    project = Project(tmp_path)
    write_settings(project, ProjectSettings(annotation_formats=("raven", "textgrid")))
    assert project.settings().annotation_formats == ("raven", "textgrid")
    text = project.settings_path.read_text().replace('["raven", "textgrid"]', '["Raven", "excel"]')
    project.settings_path.write_text(text)
    with pytest.raises(ProjectError, match="annotation_formats must be a list of format names"):
        project.settings()


def test_files_beside_a_recording_in_the_configured_formats_are_found(tmp_path):
    folder = tmp_path / "gt" / "day1"
    folder.mkdir(parents=True)
    soundfile.write(str(folder / "rec.wav"), np.zeros(100, np.int16), 2500)
    for name in ("rec.TextGrid", "rec.Table.1.selections.txt", "rec.txt", "rec.wav-annotated-anna.txt",
                 "rec.wav-predicted-1.0pr.TextGrid", "README.txt", "other.TextGrid", "rec_annotations.csv"):
        (folder / name).write_text("")
    found = foreign_files_for_recording(folder / "rec.wav", ["textgrid", "raven", "audacity"])
    assert [(p.name, f.name, i.tag) for p, f, i in found] == [
        ("rec.Table.1.selections.txt", "raven", "raven"), ("rec.TextGrid", "textgrid", "textgrid"),
        ("rec.txt", "audacity", "audacity"), ("rec.wav-annotated-anna.txt", "audacity", "anna")]
    assert foreign_files_for_recording(folder / "rec.wav", []) == []
    assert [p.name for p in find_annotation_files(tmp_path / "gt", ["das", "textgrid"])] == [
        "rec.TextGrid", "rec_annotations.csv"]


def test_exported_csv_reads_back_with_the_csv_reader(tmp_path):
    """An import written as a CSV is an ordinary SongExplorer CSV (the CSV reader's checks pass)."""
    table, name = import_file(SAMPLES / "song.txt", format_named("audacity"), rate=2500)
    path = write_intervals_csv(table, tmp_path / name)
    assert name == "song.wav-annotated-audacity.csv"
    assert read_intervals_csv(path, recording_tics={"song.wav": 12500}).equals(table)


def test_exact_duplicates_are_kept_once_with_a_note_naming_the_lines(tmp_path):
    path = tmp_path / "rec.txt"
    path.write_text("0.1\t0.2\tx\n0.3\t0.3\ty\n0.1\t0.2\tx\n", encoding="utf-8")
    notes = []
    table = read_annotation_file(path, format_named("audacity"), rate=2500, notes=notes)
    assert rows_of(table) == [(250, 500, "x"), (750, 750, "y")]
    assert len(notes) == 1 and "line 3" in notes[0] and "line 1" in notes[0]
