"""Misses: detected stretches no prediction covers, on hand-made cases, with and without
SongExplorer's edge quirk."""

from __future__ import annotations

import numpy as np
import pytest

from songexplorer_core.annotations import concat_intervals, intervals_frame, read_intervals_csv, \
    write_intervals_csv
from songexplorer_core.misses import MissesError, find_misses, misses_from_csvs


def table(rows, *, kind, wav="r.wav"):
    if not rows:
        return intervals_frame([], [], [], [], [])
    start, stop, label = zip(*[r if len(r) == 3 else (*r, "x") for r in rows])
    return intervals_frame(wav, list(start), list(stop), kind, list(label))


def spans(frame):
    return list(zip(frame["start"].tolist(), frame["stop"].tolist()))


def test_detected_tics_no_prediction_covers_become_missed_rows():
    detected = table([(10, 19, "time"), (30, 39, "frequency"), (50, 59, "neither")], kind="detected")
    predicted = table([(12, 15, "mel-pulse"), (30, 39, "mel-sine"), (55, 70, "ambient")], kind="predicted")
    missed = find_misses(detected, predicted)
    assert spans(missed) == [(10, 11), (16, 19), (50, 54)]
    assert set(missed["kind"]) == {"missed"} and set(missed["label"]) == {"other"}
    assert set(missed["wav"]) == {"r.wav"}


def test_overlapping_and_adjacent_detections_form_one_miss():
    detected = table([(1, 1), (2, 2), (5, 9), (8, 12)], kind="detected")
    missed = find_misses(detected, table([], kind="predicted"))
    assert spans(missed) == [(1, 2), (5, 12)]


def test_misses_at_the_edges_are_kept_unlike_songexplorer():
    detected = table([(0, 5), (20, 25), (90, 99)], kind="detected")
    predicted = table([(50, 60)], kind="predicted")
    assert spans(find_misses(detected, predicted)) == [(0, 5), (20, 25), (90, 99)]
    # SongExplorer: the mask ends at tic 98 (the largest stop, exclusive) and runs touching its
    # first or last tic are dropped
    assert spans(find_misses(detected, predicted, quirks=True)) == [(20, 25)]


def test_stops_are_clipped_to_the_recording_when_its_length_is_known():
    detected = table([(3, 4), (95, 104), (120, 130)], kind="detected")
    predicted = table([(50, 50)], kind="predicted")
    assert spans(find_misses(detected, predicted, ntics=100)) == [(3, 4), (95, 99)]
    assert spans(find_misses(detected, predicted, ntics={"r.wav": 100})) == [(3, 4), (95, 99)]
    assert spans(find_misses(detected, predicted, ntics={"other.wav": 100})) == [(3, 4), (95, 104), (120, 130)]


def test_both_modes_agree_away_from_the_edges():
    rng = np.random.default_rng(0)
    for _ in range(50):
        d = [(int(s), int(s + rng.integers(0, 20))) for s in rng.integers(10, 900, 15)]
        p = [(int(s), int(s + rng.integers(0, 20))) for s in rng.integers(10, 900, 15)]
        d += [(0, 0), (999, 999)]  # edge runs SongExplorer drops; everything else is inside
        p += [(0, 0), (999, 1000)]
        fixed = find_misses(table(d, kind="detected"), table(p, kind="predicted"))
        quirky = find_misses(table(d, kind="detected"), table(p, kind="predicted"), quirks=True)
        assert spans(fixed) == spans(quirky)
        mask = np.zeros(1001, bool)
        for s, e in d:
            mask[s:e + 1] = True
        for s, e in p:
            mask[s:e + 1] = False
        assert sum(e - s + 1 for s, e in spans(fixed)) == mask.sum()


def test_recordings_are_kept_apart_and_detected_labels_can_be_chosen():
    detected = concat_intervals([table([(10, 19, "time")], kind="detected", wav="a.wav"),
                                 table([(10, 19, "time"), (40, 49, "neither")], kind="detected", wav="b.wav")])
    predicted = table([(10, 19)], kind="predicted", wav="a.wav")
    missed = find_misses(detected, predicted)
    assert list(zip(missed["wav"], missed["start"], missed["stop"])) == [("b.wav", 10, 19), ("b.wav", 40, 49)]
    sounds = find_misses(detected, predicted, detected_labels=["time", "frequency"])
    assert list(zip(sounds["wav"], sounds["start"])) == [("b.wav", 10)]


def test_csvs_in_csvs_out_next_to_the_first(tmp_path):
    (tmp_path / "sub").mkdir()
    detected = write_intervals_csv(table([(10, 19, "time"), (30, 39, "neither")], kind="detected"),
                                   tmp_path / "sub" / "r.wav-detected.csv")
    predicted = write_intervals_csv(table([(12, 39, "mel-sine")], kind="predicted"), tmp_path / "r.wav-predicted.csv")
    written = misses_from_csvs([detected, predicted])
    assert written == [tmp_path / "sub" / "r.wav-missed.csv"]
    assert spans(read_intervals_csv(written[0])) == [(10, 11)]
    assert (tmp_path / "sub" / "r.wav-missed.csv").read_text() == "r.wav,10,11,missed,other\n"


def test_csv_errors_name_the_problem(tmp_path):
    annotated = write_intervals_csv(table([(1, 2)], kind="annotated"), tmp_path / "r.wav-annotated-x.csv")
    with pytest.raises(MissesError, match="no rows of kind 'detected'"), pytest.warns(UserWarning, match="annotated"):
        misses_from_csvs([annotated])
    with pytest.raises(FileNotFoundError, match="nothing.csv"):
        misses_from_csvs([tmp_path / "nothing.csv"])
    with pytest.raises(MissesError, match="give the CSVs"):
        misses_from_csvs([])
