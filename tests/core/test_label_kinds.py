"""One label, one kind: a label annotated both as ranges and as points is reported with file,
line and fix, taken for its majority, and the ethogram's treatment follows that majority."""

import math

import pandas as pd
import pytest

from songexplorer_core.annotations import intervals_frame, read_intervals_csv
from songexplorer_core.ethogram import event_refractory, min_segment_durations
from songexplorer_core.label_kinds import (
    POINTS, RANGES, KindGuard, label_kinds, majority_kind, mixed_kind_notes, read_label_kinds,
)


def write(path, rows):
    path.write_text("".join(f"{wav},{start},{stop},annotated,{label}\n" for wav, start, stop, label in rows))
    return path


@pytest.fixture
def groundtruth(tmp_path):
    """mel-sine: five ranges by ann, then one point (line 3 of ben's file); mel-pulse: points,
    one range (line 2 of ben's file)."""
    root = tmp_path / "groundtruth"
    root.mkdir()
    write(root / "a.wav-annotated-ann.csv",
          [("a.wav", 100 * i, 100 * i + 50, "mel-sine") for i in range(1, 6)]
          + [("a.wav", 1000 + 10 * i, 1000 + 10 * i, "mel-pulse") for i in range(4)])
    write(root / "b.wav-annotated-ben.csv",
          [("b.wav", 5, 5, "mel-pulse"), ("b.wav", 20, 60, "mel-pulse"), ("b.wav", 300, 300, "mel-sine")])
    return root


def test_the_majority_decides_and_ties_have_no_kind():
    assert majority_kind(1, 41) == RANGES and majority_kind(40, 1) == POINTS
    assert majority_kind(3, 3) is None and majority_kind(0, 0) is None


def test_the_csv_reader_gives_line_numbers(groundtruth):
    frame = read_intervals_csv(groundtruth / "b.wav-annotated-ben.csv", with_lines=True)
    assert frame["line"].tolist() == [1, 2, 3]
    assert "line" not in read_intervals_csv(groundtruth / "b.wav-annotated-ben.csv").columns


def test_an_odd_row_is_reported_with_file_line_and_fix(groundtruth):
    kinds = read_label_kinds(groundtruth)
    sine, pulse = kinds["mel-sine"], kinds["mel-pulse"]
    assert (sine.kind, sine.ranges, sine.points, sine.mixed) == (RANGES, 5, 1, True)
    assert (pulse.kind, pulse.points, pulse.ranges) == (POINTS, 5, 1)
    (problem,) = sine.problems()
    assert problem.startswith(f"{groundtruth / 'b.wav-annotated-ben.csv'}: line 3: ")
    assert "label 'mel-sine' is annotated as ranges elsewhere (5 ranges, 1 point)" in problem
    assert "make row 3 a range (drag across the sound in the annotator), or give it another label" in problem
    (problem,) = pulse.problems()
    assert ": line 2: " in problem and "make row 2 a point (double-click" in problem
    assert not read_label_kinds(groundtruth, labels=["mel-sine"]).get("mel-pulse")


def test_a_tie_is_neither_and_says_so():
    frame = intervals_frame("a.wav", [0, 10, 20, 30], [0, 15, 20, 40], "annotated", "song")
    (kind,) = label_kinds(frame).values()
    assert kind.kind is None and kind.mixed
    (problem,) = kind.problems()
    assert "equally (2 ranges, 2 points)" in problem and "split it into two labels" in problem


def test_training_notes_name_the_mixed_label_and_its_odd_rows(groundtruth):
    frame = pd.concat([read_intervals_csv(p) for p in sorted(groundtruth.glob("*.csv"))], ignore_index=True)
    notes = mixed_kind_notes(frame, ["mel-sine"], groundtruth)
    assert len(notes) == 2
    assert notes[0].startswith("label 'mel-sine' is annotated as ranges (5 ranges, 1 point): treated as ranges")
    assert ": line 3: " in notes[1]
    assert mixed_kind_notes(frame[frame["start"] != 300], ["mel-sine"], groundtruth) == []


def test_one_point_on_a_range_label_keeps_its_short_segment_filter():
    # the regression of issue 12: one double-click on mel-sine (41 ranges) turned its filter off
    durations = pd.DataFrame({"label": ["mel-pulse", "mel-sine"], "points": [40, 1], "ranges": [1, 41],
                              "shortest_range_s": [0.01, 0.112], "median_range_s": [0.01, 0.4],
                              "shortest_gap_s": [0.03, math.nan]})
    assert min_segment_durations(durations, 0.5) == {"mel-sine": pytest.approx(0.056)}
    assert event_refractory(durations) == {"mel-pulse": pytest.approx(0.015)}
    tied = durations.assign(points=[2, 1], ranges=[2, 1])
    assert min_segment_durations(tied, 0.5) == {} and event_refractory(tied) == {}


def test_the_annotator_guard_offers_the_other_gesture(groundtruth):
    guard = KindGuard(groundtruth)
    point_on_sine = intervals_frame("a.wav", [700], [700], "annotated", "mel-sine")
    notice = guard.notice(point_on_sine)
    assert "label 'mel-sine' is annotated as ranges elsewhere (5 ranges, 1 point)" in notice
    assert "is a point: drag across the sound to make a range instead" in notice
    range_on_pulse = intervals_frame("a.wav", [700], [760], "annotated", "mel-pulse")
    assert "double-click the sound in the lower half to make a point" in guard.notice(range_on_pulse)
    assert guard.notice(intervals_frame("a.wav", [700, 5], [760, 5], "annotated", ["mel-sine", "new"])) == ""
    write(groundtruth / "c.wav-annotated-cy.csv", [("c.wav", i, i, "mel-sine") for i in range(0, 100, 10)])
    assert "annotated as ranges" in guard.notice(point_on_sine)  # cached until forgotten
    guard.forget()
    assert guard.notice(point_on_sine) == ""  # 11 points, 5 ranges: points now
