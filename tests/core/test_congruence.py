"""Congruence of predictions with dense annotations: hand-computed cases at tic and label level,
one to three annotators, union and intersection, convolve; a brute-force restatement of
SongExplorer's algorithm on random cases; synthetic song with known truth; files and errors;
and SongExplorer's own congruence fixture when ../shared is present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from songexplorer_core.annotations import concat_intervals, intervals_frame, read_intervals_csv
from songexplorer_core.classify import Probabilities
from songexplorer_core.congruence import (
    CongruenceError,
    congruence,
    congruence_sweep,
    congruence_sweep_tables,
    convolve_tics,
    greedy_match,
    songexplorer_table,
    sweep_thresholds,
    threshold_at_ratio,
    write_congruence_report,
    write_dense_thresholds,
    write_disjoint_csvs,
)
from songexplorer_core.ethogram import ethogram_threshold, read_thresholds_csv
from songexplorer_core.synth import PULSE_LABEL, SINE_LABEL, make_song

FIXTURE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "songexplorer-congruence-fixture"


def table(rows, *, wav="r.wav", label="song", kind="annotated"):
    """Interval table from ``[(start, stop), ...]`` or ``[(start, stop, label), ...]``."""
    rows = [r if len(r) == 3 else (r[0], r[1], label) for r in rows]
    if not rows:
        return intervals_frame([], [], [], [], [])
    start, stop, labels = zip(*rows)
    return intervals_frame(wav, list(start), list(stop), kind, list(labels))


def count(result, measure, column, label="song"):
    totals = result.totals(measure)
    return totals.loc[label, column]


def score(result, measure, reference, label="song"):
    s = result.scores
    row = s[(s["label"] == label) & (s["measure"] == measure) & (s["reference"] == reference)]
    assert len(row) == 1
    return tuple(int(row.iloc[0][c]) for c in ("tp", "fp", "fn"))


def disjoint_rows(result, kind):
    d = result.disjoint
    d = d[d["kind"] == kind]
    return sorted(zip(d["start"].tolist(), d["stop"].tolist()))


# ---------------------------------------------------------------------------------------------
# one annotator


def test_one_annotator_tic_and_label_level_by_hand():
    human = table([(10, 19), (40, 40), (60, 69)])
    predicted = table([(15, 24), (40, 42), (50, 54)], kind="predicted")
    result = congruence({"A": human}, predicted)
    # tic: S∩H = 15..19 and 40 -> 6; S-H = 20..24, 41..42, 50..54 -> 12; H-S = 10..14, 60..69 -> 15
    assert (count(result, "tic", "everyone"), count(result, "tic", "only songex"), count(result, "tic", "only A")) \
        == (6, 12, 15)
    assert score(result, "tic", "songexplorer") == score(result, "tic", "A") == (6, 12, 15)
    # label: intersection pieces [15,19], [40,40]; [50,54] matched nothing; [60,69] matched nothing
    assert score(result, "label", "songexplorer") == (2, 1, 1)
    s = result.scores.set_index(["label", "measure", "reference"])
    assert s.loc[("song", "tic", "A"), "precision"] == pytest.approx(6 / 18)
    assert s.loc[("song", "tic", "A"), "recall"] == pytest.approx(6 / 21)
    assert s.loc[("song", "label", "A"), "f1"] == pytest.approx(2 / 3)
    # with two keys there is no "not" set
    assert pd.isna(count(result, "tic", "not songex"))
    assert disjoint_rows(result, "tic-onlysongex") == [(20, 24), (41, 42), (50, 54)]
    assert disjoint_rows(result, "label-onlyA") == [(60, 69)]
    assert disjoint_rows(result, "everyone") == [(15, 19), (40, 40)]


def test_predictions_outside_the_annotated_span_are_ignored_per_recording_or_per_label():
    human = table([(100, 109, "a"), (300, 309, "b")])
    predicted = table([(10, 19, "a"), (200, 209, "a"), (400, 409, "a")], kind="predicted")
    # default span: the annotator's first to last annotation of any label (100..309)
    result = congruence({"A": human}, predicted, labels=["a"])
    assert score(result, "tic", "A", label="a") == (0, 10, 10)
    # SongExplorer's per-label span (100..109 for "a") ignores the prediction at 200..209 too
    result = congruence({"A": human}, predicted, labels=["a"], span="label")
    assert score(result, "tic", "A", label="a") == (0, 0, 10)


def test_points_one_tic_apart_are_separate_events_but_touching_ranges_merge():
    human = table([(10, 10), (11, 11), (20, 25), (25, 30)])
    predicted = table([(10, 11), (20, 30)], kind="predicted")
    result = congruence({"A": human}, predicted)
    # events: human {10}, {11}, [20,30]; prediction [10,11], [20,30]
    assert score(result, "label", "A") == (3, 0, 1)  # {11} is left over after {10} took [10,11]
    assert score(result, "tic", "A") == (13, 0, 0)


def test_convolve_widens_every_interval_by_half_the_tolerance_at_each_end():
    human = table([(100, 100)])
    predicted = table([(104, 110)], kind="predicted")
    plain = congruence({"A": human}, predicted)
    assert score(plain, "label", "A") == (0, 0, 1)  # prediction outside the 100..100 span
    assert convolve_tics(0.0032, 2500) == 4
    widened = congruence({"A": human}, predicted, convolve_s=0.0032, rate=2500)
    # human 96..104, prediction 100..114 clipped to the span 96..104 -> 100..104
    assert score(widened, "label", "A") == (1, 0, 0)
    assert score(widened, "tic", "A") == (5, 0, 4)
    assert widened.convolve_tics == 4


# ---------------------------------------------------------------------------------------------
# two annotators

A = [(0, 9), (20, 29), (40, 49)]
B = [(5, 14), (20, 29), (60, 69)]
S = [(0, 4), (25, 34), (60, 64)]


@pytest.fixture(scope="module")
def two():
    return congruence({"A": table(A), "B": table(B)}, table(S, kind="predicted"))


def test_two_annotators_tic_level_by_hand(two):
    tic = {c: count(two, "tic", c) for c in ("everyone", "only songex", "only A", "only B", "not songex", "not A",
                                             "not B")}
    assert tic == {"everyone": 5, "only songex": 5, "only A": 10, "only B": 10, "not songex": 10, "not A": 5,
                   "not B": 5}
    assert score(two, "tic", "songexplorer") == (5, 5, 10)
    assert score(two, "tic", "A") == (10, 10, 20)
    assert score(two, "tic", "union") == (15, 5, 30)
    assert score(two, "tic", "intersection") == (5, 15, 10)
    assert disjoint_rows(two, "tic-notsongex") == [(5, 9), (20, 24)]
    assert disjoint_rows(two, "tic-onlyB") == [(10, 14), (65, 69)]
    assert disjoint_rows(two, "everyone") == [(25, 29)]


def test_two_annotators_label_level_by_hand(two):
    label = {c: count(two, "label", c) for c in ("everyone", "only songex", "only A", "only B", "not songex",
                                                 "not A", "not B")}
    assert label == {"everyone": 1, "only songex": 0, "only A": 1, "only B": 0, "not songex": 0, "not A": 1,
                     "not B": 1}
    assert score(two, "label", "songexplorer") == (1, 0, 0)
    assert score(two, "label", "A") == (2, 1, 1)
    assert score(two, "label", "union") == (3, 0, 1)
    assert score(two, "label", "intersection") == (1, 2, 1)
    assert disjoint_rows(two, "label-onlyA") == [(40, 49)]
    assert disjoint_rows(two, "label-notA") == [(60, 64)]
    assert disjoint_rows(two, "label-notB") == [(0, 4)]


def test_intersection_clips_everyone_to_the_common_span():
    result = congruence({"A": table(A), "B": table(B)}, table(S, kind="predicted"), portion="intersection")
    # A spans 0..49, B 5..69: common 5..49. Inside: A 5..9, 20..29, 40..49; B 5..14, 20..29; S 25..34
    assert score(result, "tic", "A") == (5, 5, 20)
    assert count(result, "tic", "only B") == 5  # 10..14
    assert count(result, "tic", "not songex") == 10  # 5..9, 20..24


def test_intersection_of_spans_that_do_not_overlap_is_refused():
    with pytest.raises(CongruenceError, match=r"do not overlap .*A tics 0\.\.9; B tics 50\.\.59"):
        congruence({"A": table([(0, 9)]), "B": table([(50, 59)])}, table([(0, 5)], kind="predicted"),
                   portion="intersection")


def test_intersection_with_an_annotator_absent_from_a_recording_is_refused_unless_skipped():
    a = concat_intervals([table([(0, 9)]), table([(0, 9)], wav="r2.wav")])
    b = table([(0, 9)])
    predicted = concat_intervals([table([(0, 9)], kind="predicted"), table([(0, 9)], wav="r2.wav", kind="predicted")])
    with pytest.raises(CongruenceError, match=r"recording r2\.wav: B annotated nothing here.*absent_annotators='skip'"):
        congruence({"A": a, "B": b}, predicted, portion="intersection")
    skipped = congruence({"A": a, "B": b}, predicted, portion="intersection", absent_annotators="skip")
    assert score(skipped, "tic", "A") == (20, 0, 0)


# ---------------------------------------------------------------------------------------------
# three annotators


def test_three_annotators_not_set_follows_greedy_removal_across_all_other_annotators():
    # not songex: events of A (the first annotator) that overlap no prediction and find an
    # unmatched event in B *and* C; only then are those removed. a1 takes b1 and c1; a2 finds b2
    # but c1 is gone, so it fails and removes nothing; a3 then still finds b2, and c2.
    a = [(0, 9), (20, 29), (40, 49)]
    b = [(0, 0), (25, 45)]
    c = [(9, 20), (45, 45)]
    result = congruence({"A": table(a), "B": table(b), "C": table(c)}, table([], kind="predicted"),
                        recordings=["r.wav"])
    assert count(result, "label", "not songex") == 2
    assert disjoint_rows(result, "label-notsongex") == [(0, 9), (40, 49)]
    # tic level: A∩B = {0}, 25..29, 40..45; with C only tic 45 is left
    assert count(result, "tic", "not songex") == 1
    assert score(result, "label", "songexplorer") == (0, 0, 2)


# ---------------------------------------------------------------------------------------------
# a brute-force restatement of SongExplorer's algorithm, on random cases


def ref_cells(intervals):
    """Cells of a union of closed intervals: 2t is tic t, 2t+1 the gap after it."""
    return {c for s, e in intervals for c in range(2 * s, 2 * e + 1)}


def ref_components(cells):
    out, run = [], []
    for c in sorted(cells):
        if run and c != run[-1] + 1:
            out.append((run[0], run[-1]))
            run = []
        run.append(c)
    if run:
        out.append((run[0], run[-1]))
    return out


def ref_overlap(x, y):
    return x[0] <= y[1] and y[0] <= x[1]


def ref_first(event, events, removed):
    for i, other in enumerate(events):
        if i not in removed and ref_overlap(event, other):
            return i
    return None


def ref_congruence(keyed):
    """SongExplorer's counts for one recording and label; ``keyed`` is a list of interval lists,
    the model first, already clipped."""
    cells = [ref_cells(k) for k in keyed]
    events = [ref_components(c) for c in cells]
    n = len(keyed)
    tics = lambda cs: sum(1 for c in cs if c % 2 == 0)  # noqa: E731
    everyone = set.intersection(*cells)
    out = {"tic everyone": tics(everyone), "label everyone": len(ref_components(everyone))}
    for k in range(n):
        others = set().union(*(cells[j] for j in range(n) if j != k))
        out[f"tic only {k}"] = tics(cells[k] - others)
        if n > 2:
            all_others = set.intersection(*(cells[j] for j in range(n) if j != k))
            out[f"tic not {k}"] = tics(all_others - cells[k])
        removed = {j: set() for j in range(n)}
        alone = 0
        for a in events[k]:
            found = {j: ref_first(a, events[j], removed[j]) for j in range(n) if j != k}
            if all(v is None for v in found.values()):
                alone += 1
            for j, i in found.items():
                if i is not None:
                    removed[j].add(i)
        out[f"label only {k}"] = alone
        if n > 2:
            k1 = next(j for j in range(n) if j != k)
            removed = {j: set() for j in range(n)}
            missed = 0
            for b in events[k1]:
                found = {j: ref_first(b, events[j], removed[j]) for j in range(n) if j != k1}
                found = {j: i for j, i in found.items() if i is not None}
                if len(found) == n - 2 and k not in found:
                    missed += 1
                    for j, i in found.items():
                        removed[j].add(i)
            out[f"label not {k}"] = missed
    return out


def random_intervals(rng, n, length=300, longest=25):
    start = rng.integers(0, length, n)
    return [(int(s), int(s + rng.integers(0, longest))) for s in start]


@pytest.mark.parametrize("nhumans", [1, 2, 3])
def test_random_cases_agree_with_a_brute_force_restatement_of_songexplorer(nhumans):
    rng = np.random.default_rng(nhumans)
    for trial in range(25):
        humans = [random_intervals(rng, int(rng.integers(1, 12))) for _ in range(nhumans)]
        model = random_intervals(rng, int(rng.integers(0, 12)))
        left = min(s for h in humans for s, _ in h)
        right = max(e for h in humans for _, e in h)
        clipped = [(max(s, left), min(e, right)) for s, e in model if e >= left and s <= right]
        expected = ref_congruence([clipped] + humans)
        names = [f"P{i}" for i in range(nhumans)]
        result = congruence({name: table(h) for name, h in zip(names, humans)}, table(model, kind="predicted"),
                            recordings=["r.wav"])
        keys = ["songex"] + names
        for measure in ("tic", "label"):
            totals = result.totals(measure).loc["song"]
            assert totals["everyone"] == expected[f"{measure} everyone"], (trial, measure)
            for k, key in enumerate(keys):
                assert totals[f"only {key}"] == expected[f"{measure} only {k}"], (trial, measure, key)
                if nhumans >= 2:
                    assert totals[f"not {key}"] == expected[f"{measure} not {k}"], (trial, measure, key)


def ref_greedy(a, b):
    removed, out = set(), []
    for event in a:
        i = ref_first(event, b, removed)
        out.append(-1 if i is None else i)
        if i is not None:
            removed.add(i)
    return out


def test_vectorised_greedy_matching_equals_the_loop_it_replaces():
    rng = np.random.default_rng(5)
    for _ in range(300):
        a = ref_components(ref_cells(random_intervals(rng, int(rng.integers(0, 15)), 200, 30)))
        b = ref_components(ref_cells(random_intervals(rng, int(rng.integers(0, 15)), 200, 30)))
        as_arrays = lambda ev: (np.array([e[0] for e in ev], np.int64), np.array([e[1] for e in ev], np.int64))  # noqa: E731
        assert greedy_match(as_arrays(a), as_arrays(b)).tolist() == ref_greedy(a, b)


# ---------------------------------------------------------------------------------------------
# several recordings and labels; annotators absent from a recording


def test_counts_are_summed_over_recordings_and_absent_annotators_can_be_skipped():
    a = concat_intervals([table([(0, 9)], wav="r1.wav"), table([(0, 9)], wav="r2.wav")])
    b = table([(0, 4)], wav="r1.wav")
    predicted = concat_intervals([table([(0, 9)], wav="r1.wav", kind="predicted"),
                                  table([(5, 9)], wav="r2.wav", kind="predicted")])
    # SongExplorer: B marked nothing in r2, so r2's A-only tics 0..4 are also "not B"
    result = congruence({"A": a, "B": b}, predicted)
    assert count(result, "tic", "not B") == 5 + 5
    assert list(result.counts["recording"].unique()) == ["r1.wav", "r2.wav"]
    # skip: r2 is compared between the model and A only
    skipped = congruence({"A": a, "B": b}, predicted, absent_annotators="skip")
    assert count(skipped, "tic", "not B") == 5
    assert score(skipped, "tic", "A") == (15, 0, 5)


def test_each_label_is_compared_separately():
    human = table([(0, 9, "x"), (20, 29, "y")])
    predicted = table([(0, 9, "y"), (20, 29, "y")], kind="predicted")
    result = congruence({"A": human}, predicted)
    assert score(result, "tic", "A", label="x") == (0, 0, 10)
    assert score(result, "tic", "A", label="y") == (10, 10, 0)


# ---------------------------------------------------------------------------------------------
# synthetic song with dense truth


@pytest.fixture(scope="module")
def song():
    return make_song(40, seed=3)


def ethogram_like(song, rng):
    """Predictions that each overlap at most one true event and vice versa: true events shifted
    a little, 10 % of them left out, plus spurious ones in the gaps."""
    truth = concat_intervals([song.pulses, song.sines]).sort_values("start").reset_index(drop=True)
    keep = rng.random(len(truth)) > 0.1
    for label in (PULSE_LABEL, SINE_LABEL):  # at least one miss of each label
        keep[np.flatnonzero(truth["label"].to_numpy() == label)[1]] = False
    shift = rng.integers(-2, 3, len(truth))
    start = (truth["start"].to_numpy() + shift)[keep]
    stop = (truth["stop"].to_numpy() + shift)[keep]
    label = truth["label"].to_numpy()[keep]
    # spurious: in song-free stretches between the first and last event
    gaps_start = truth["stop"].to_numpy()[:-1] + 20
    gaps_stop = truth["start"].to_numpy()[1:] - 20
    wide = np.flatnonzero(gaps_stop - gaps_start > 30)
    chosen = rng.choice(wide, 15, replace=False)
    spurious_start = gaps_start[chosen]
    spurious_label = np.where(rng.random(15) < 0.5, PULSE_LABEL, SINE_LABEL)
    return truth, concat_intervals([
        intervals_frame(song.wav, start, stop, "predicted", label),
        intervals_frame(song.wav, spurious_start, spurious_start + 8, "predicted", spurious_label),
    ])


def direct_scores(truth, predicted, label, ntics):
    """TP, FP, FN at tic and event level, from boolean masks and overlap tests, counting only
    predictions inside the annotated span (first to last true event)."""
    first, last = truth["start"].min(), truth["stop"].max()
    t = truth[truth["label"] == label]
    p = predicted[(predicted["label"] == label) & (predicted["stop"] >= first) & (predicted["start"] <= last)]
    p = p.assign(start=p["start"].clip(lower=first), stop=p["stop"].clip(upper=last))
    tmask = np.zeros(ntics, bool)
    pmask = np.zeros(ntics, bool)
    for s, e in t[["start", "stop"]].to_numpy():
        tmask[s:e + 1] = True
    for s, e in p[["start", "stop"]].to_numpy():
        pmask[s:e + 1] = True
    tic = (int((tmask & pmask).sum()), int((pmask & ~tmask).sum()), int((tmask & ~pmask).sum()))
    hit = [any(ps <= te and ts <= pe for ts, te in t[["start", "stop"]].to_numpy())
           for ps, pe in p[["start", "stop"]].to_numpy()]
    found = [any(ps <= te and ts <= pe for ps, pe in p[["start", "stop"]].to_numpy())
             for ts, te in t[["start", "stop"]].to_numpy()]
    label_level = (sum(hit), len(hit) - sum(hit), len(found) - sum(found))
    return tic, label_level


def test_congruence_with_synthetic_truth_equals_precision_recall_computed_directly(song):
    truth, predicted = ethogram_like(song, np.random.default_rng(0))
    result = congruence({"truth": truth.assign(kind="annotated")}, predicted)
    for label in (PULSE_LABEL, SINE_LABEL):
        tic, label_level = direct_scores(truth, predicted, label, song.ntics)
        assert score(result, "tic", "truth", label=label) == tic
        assert score(result, "label", "truth", label=label) == label_level
        assert score(result, "label", "songexplorer", label=label) == label_level
        assert label_level[1] > 0 and label_level[2] > 0  # the case has both kinds of error


def probabilities_from(song, *, stride=4, seed=0):
    """Probabilities whose pulse/sine columns are high inside the true events, with noise."""
    rng = np.random.default_rng(seed)
    n = song.ntics // stride
    tics = np.arange(n) * stride
    values = rng.uniform(0, 0.3, (n, 2)).astype(np.float32)
    for column, frame in enumerate((song.pulses, song.sines)):
        for s, e in frame[["start", "stop"]].to_numpy():
            inside = (tics >= s) & (tics <= e)
            values[inside, column] = rng.uniform(0.5, 1.0, inside.sum())
    return Probabilities(values=values, labels=(PULSE_LABEL, SINE_LABEL), rate=song.rate, stride_tics=stride,
                         wav=song.wav, ntics=song.ntics)


def test_sweep_over_probabilities_equals_congruence_of_each_thresholded_ethogram(song):
    probs = probabilities_from(song)
    truth = concat_intervals([song.pulses, song.sines]).assign(kind="annotated")
    sweep = congruence_sweep([probs], {"truth": truth}, thresholds=5)
    assert np.allclose(sweep.thresholds, [1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6])
    scores = sweep.scores
    for t in (sweep.thresholds[0], sweep.thresholds[3]):
        predicted = ethogram_threshold(probs, {PULSE_LABEL: t, SINE_LABEL: t})
        single = congruence({"truth": truth}, predicted).scores
        mine = scores[scores["threshold"] == t].drop(columns="threshold").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, single.reset_index(drop=True), check_dtype=False)
    # below 0.3 every sample is on: low precision; from 0.5 on the truth comes back, but for the
    # rounding of samples to tics at the ends of events
    tic = scores[(scores["measure"] == "tic") & (scores["reference"] == "truth")].set_index(["threshold", "label"])
    assert tic.loc[(sweep.thresholds[0], SINE_LABEL), "precision"] < 0.5
    assert tic.loc[(sweep.thresholds[2], SINE_LABEL), "recall"] > 0.99
    assert tic.loc[(sweep.thresholds[2], SINE_LABEL), "precision"] > 0.99
    label = scores[(scores["measure"] == "label") & (scores["reference"] == "truth")].set_index(["threshold", "label"])
    assert label.loc[(sweep.thresholds[2], PULSE_LABEL), "f1"] == 1.0
    # the same sweep from tables
    tables = {t: ethogram_threshold(probs, {PULSE_LABEL: t, SINE_LABEL: t}) for t in sweep.thresholds}
    again = congruence_sweep_tables({"truth": truth}, tables, recordings=[song.wav])
    pd.testing.assert_frame_equal(again.scores, sweep.scores)


# ---------------------------------------------------------------------------------------------
# dense thresholds


def test_threshold_at_ratio_interpolates_the_first_crossing_and_stays_inside_the_sweep():
    t = np.array([0.2, 0.4, 0.6, 0.8])
    assert threshold_at_ratio(t, np.array([0.5, 0.8, 1.2, 2.0]), 1.0) == pytest.approx(0.5)
    assert threshold_at_ratio(t, np.array([np.nan, 0.8, 1.2, np.nan]), 1.0) == pytest.approx(0.5)
    assert threshold_at_ratio(t, np.array([0.5, 1.0, 1.0, 2.0]), 1.0) == pytest.approx(0.4)
    assert threshold_at_ratio(t, np.array([2.0, 0.5, 0.8, 1.5]), 1.0) == pytest.approx(0.2 + 0.2 * 1 / 1.5)
    with pytest.warns(UserWarning, match="never reaches 1.0"):
        assert threshold_at_ratio(t, np.array([0.2, 0.4, 0.6, 0.8]), 1.0) == 0.8
    with pytest.warns(UserWarning, match="never reaches 1.0"):
        assert threshold_at_ratio(t, np.array([1.1, 1.3, 1.5, 1.7]), 1.0) == 0.2
    with pytest.warns(UserWarning, match="undefined at every threshold"):
        assert np.isnan(threshold_at_ratio(t, np.full(4, np.nan), 1.0))


def test_dense_thresholds_are_positive_and_written_in_songexplorer_format(tmp_path):
    # "song" annotated at 0..99; an "other" mark at 149 makes 0..149 the annotated stretch
    human = table([(0, 99), (149, 149, "other")])
    tables = {
        0.25: table([(0, 99), (100, 149)], kind="predicted"),  # tic P = 100/150, R = 1: P/R 2/3
        0.75: table([(0, 79)], kind="predicted"),  # tic P = 1, R = 0.8: P/R 1.25
    }
    sweep = congruence_sweep_tables({"A": human}, tables, labels=["song"])
    expected = 0.25 + (1 - 2 / 3) * 0.5 / (1.25 - 2 / 3)
    assert sweep.dense_thresholds(1.0, measure="tic")["song"] == pytest.approx(expected)
    # events: 0.25 has one false event (P/R 0.5), 0.75 none (P/R 1): the crossing is at 0.75
    assert sweep.dense_thresholds(1.0, measure="label")["song"] == pytest.approx(0.75)
    # SongExplorer's per-label span (0..99) ignores 100..149: P/R is already 1 at 0.25
    per_label = congruence_sweep_tables({"A": human}, tables, labels=["song"], span="label")
    assert per_label.dense_thresholds(1.0, measure="tic")["song"] == pytest.approx(0.25)
    paths = write_dense_thresholds(sweep, tmp_path, timestamp="20260101T000000", checkpoint=300,
                                   label_order=["song", "other"])
    assert [p.name for p in paths] == ["thresholds-dense-tic-20260101T000000.ckpt-300.csv",
                                       "thresholds-dense-label-20260101T000000.ckpt-300.csv"]
    read = read_thresholds_csv(paths[0])
    assert list(read) == ["song", "other"] and read["song"] == pytest.approx(expected) and np.isnan(read["other"])


# ---------------------------------------------------------------------------------------------
# files


def test_disjoint_files_are_songexplorers_csvs_one_per_kind_even_when_empty(two, tmp_path):
    paths = write_disjoint_csvs(two, tmp_path)
    names = sorted(p.name for p in paths)
    expected = ["r.wav-disjoint-everyone.csv"] + [
        f"r.wav-disjoint-{m}-{w}{k}.csv" for m in ("label", "tic") for w in ("not", "only") for k in ("A", "B", "songex")]
    assert names == sorted(expected)
    notsongex = read_intervals_csv(tmp_path / "r.wav-disjoint-tic-notsongex.csv")
    assert list(zip(notsongex["start"], notsongex["stop"], notsongex["kind"])) == \
        [(5, 9, "tic-notsongex"), (20, 24, "tic-notsongex")]
    assert (tmp_path / "r.wav-disjoint-label-onlysongex.csv").read_text() == ""
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_report_has_songexplorer_tables_scores_and_plots(two, tmp_path):
    tables = {0.3: table(S + [(40, 45)], kind="predicted"), 0.6: table(S, kind="predicted")}
    sweep = congruence_sweep_tables({"A": table(A), "B": table(B)}, tables)
    with pytest.warns(UserWarning, match="never reaches 1.0"):  # P/R is 1.5 at both thresholds
        paths = write_congruence_report(tmp_path, ethogram=two, sweep=sweep)
    names = {p.name for p in paths}
    assert {"congruence.tic.song.csv", "congruence.label.song.csv", "congruence-scores.csv",
            "congruence-counts.csv", "congruence.tic.song.png", "congruence.label.song.counts.png"} <= names
    for p in paths:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = (tmp_path / "congruence.tic.song.csv").read_text().splitlines()
    assert lines[0] == ",only ,not ,only -A,not -A,only -B,not -B,Everyone,Precision,Recall"
    assert lines[1] == ",5,10,10,5,10,5,5,,"
    assert lines[2].startswith("0.6th,5,10,10,5,10,5,5,0.5,0.333")  # highest threshold first, positive
    scores = pd.read_csv(tmp_path / "congruence-scores.csv")
    assert set(scores["reference"]) == {"songexplorer", "A", "B", "union", "intersection"}


def test_songexplorer_table_needs_a_result():
    with pytest.raises(CongruenceError):
        songexplorer_table("tic", "song")


# ---------------------------------------------------------------------------------------------
# errors


def test_annotations_of_a_recording_without_predictions_are_refused():
    human = concat_intervals([table([(0, 9)]), table([(0, 9)], wav="other.wav")])
    with pytest.raises(CongruenceError, match=r"other\.wav \(annotated by A\).*run the ethogram"):
        congruence({"A": human}, table([(0, 9)], kind="predicted"))


def test_a_chosen_label_nobody_annotated_is_refused():
    with pytest.raises(CongruenceError, match=r"label\(s\) \['sine'\].*labels annotated: \['song'\]"):
        congruence({"A": table([(0, 9)])}, table([(0, 9)], kind="predicted"), labels=["song", "sine"])


def test_bad_settings_and_names_are_refused():
    human, predicted = table([(0, 9)]), table([(0, 9)], kind="predicted")
    with pytest.raises(CongruenceError, match="portion"):
        congruence({"A": human}, predicted, portion="both")
    with pytest.raises(CongruenceError, match="seconds"):
        congruence({"A": human}, predicted, convolve_s=-1)
    with pytest.raises(CongruenceError, match="name of the model"):
        congruence({"songex": human}, predicted)
    with pytest.raises(CongruenceError, match="map each annotator"):
        congruence(human, predicted)
    with pytest.raises(CongruenceError, match="at least 1"):
        sweep_thresholds(0)


def test_sweep_refuses_a_label_the_model_does_not_output(song):
    probs = probabilities_from(song)
    human = table([(0, 9, "ambient")], wav=song.wav)
    with pytest.raises(CongruenceError, match=r"no output for annotated label\(s\) \['ambient'\]"):
        congruence_sweep([probs], {"A": human}, thresholds=3)


# ---------------------------------------------------------------------------------------------
# SongExplorer's own fixture


def fixture_input():
    if not FIXTURE.is_dir():
        pytest.skip(f"SongExplorer's congruence fixture is not at {FIXTURE} (../shared absent)")
    people: dict[str, list] = {}
    for path in sorted((FIXTURE / "input").glob("*-annotated-*.csv")):
        people.setdefault(path.name.split("-annotated-")[1][:-4], []).append(read_intervals_csv(path))
    predicted = concat_intervals(read_intervals_csv(p) for p in sorted((FIXTURE / "input").glob("*-predicted.csv")))
    return {name: concat_intervals(frames) for name, frames in people.items()}, predicted


def test_songexplorer_fixture_counts_and_disjoint_files_are_reproduced(tmp_path):
    annotations, predicted = fixture_input()
    # the fixture's settings: portion union, convolve 0, measure both, SongExplorer's per-label span
    result = congruence(annotations, predicted, span="label", portion="union", convolve_s=0)
    checked = 0
    for path in sorted((FIXTURE / "output").glob("congruence.*.csv")):
        _, measure, label, _ = path.name.split(".")
        theirs = pd.read_csv(path, index_col=0, keep_default_na=False)
        ethogram_row = theirs.loc[""]  # the deterministic row; "th" rows come from random WAVs
        ours = songexplorer_table(measure, label, ethogram=result).loc[""]
        for column in theirs.columns[:7]:
            assert int(ethogram_row[column]) == int(ours[column]), (path.name, column)
        checked += 1
    assert checked == 14
    written = write_disjoint_csvs(result, tmp_path)
    theirs = sorted(p.name for p in (FIXTURE / "output" / "dummy-data").glob("*.csv"))
    assert sorted(p.name for p in written) == theirs
    for name in theirs:
        expected = sorted((FIXTURE / "output" / "dummy-data" / name).read_text().splitlines())
        assert sorted((tmp_path / name).read_text().splitlines()) == expected, name


# ---------------------------------------------------------------------------------------------
# the command line


def test_command_line_compares_a_ground_truth_folder_sweeps_and_writes_dense_thresholds(tmp_path, capsys):
    from songexplorer_core.annotations import write_intervals_csv
    from songexplorer_core.classify import probabilities_npz_name, write_probabilities
    from songexplorer_cli import main
    from songexplorer_core.ethogram import write_thresholds_csv
    from songexplorer_core.synth import write_song

    groundtruth = tmp_path / "groundtruth"
    model_dir = tmp_path / "logs" / "train_1r"
    model_dir.mkdir(parents=True)
    (model_dir / "labels.txt").write_text(f"{PULSE_LABEL}\n{SINE_LABEL}")
    write_thresholds_csv({PULSE_LABEL: 0.5, SINE_LABEL: 0.5}, model_dir / "thresholds.ckpt-300.csv")
    rng = np.random.default_rng(1)
    for index in range(2):
        song = make_song(20, seed=20 + index, wav=f"rec{index}.wav")
        folder = groundtruth / f"round{index}"
        folder.mkdir(parents=True)
        write_song(song, folder / song.wav)
        truth = concat_intervals([song.pulses, song.sines]).assign(kind="annotated")
        write_intervals_csv(truth, folder / f"{song.wav}-annotated-alice.csv")
        jittered = truth.assign(start=truth["start"] + rng.integers(-2, 3, len(truth)))
        jittered = jittered.assign(start=jittered[["start", "stop"]].min(axis=1).clip(lower=0))
        write_intervals_csv(jittered, folder / f"{song.wav}-annotated-bob.csv")
        probs = probabilities_from(song, seed=index)
        write_probabilities(probs, folder / probabilities_npz_name(song.wav))
        write_intervals_csv(ethogram_threshold(probs, {PULSE_LABEL: 0.5, SINE_LABEL: 0.5}),
                            folder / f"{song.wav}-predicted.csv")
        (folder / f"{song.wav}-ethogram.log").write_text(
            f"logdir: {model_dir.parent}\nmodel: {model_dir.name}\nthresholds_file: thresholds.ckpt-300.csv\n")
    out = tmp_path / "out"
    assert main(["congruence", str(groundtruth), "--topath", str(out), "--nprobabilities", "6",
                 "--convolve-sec", "0.004", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "2 recording(s), annotators alice, bob" in printed and "dense thresholds (tic" in printed
    assert (out / "round1" / "rec1.wav-disjoint-tic-notsongex.csv").exists()
    assert (out / "congruence.label.mel-pulse.png").exists()
    table = pd.read_csv(out / "congruence.label.mel-pulse.csv", index_col=0, keep_default_na=False)
    assert list(table.index) == [""] + [f"{float(t)!r}th" for t in sweep_thresholds(6)[::-1]]  # 6/7 ... 1/7
    dense = sorted(model_dir.glob("thresholds-dense-*.ckpt-300.csv"))
    assert [p.name.split("-")[2] for p in dense] == ["label", "tic"]
    values = read_thresholds_csv(dense[0])
    assert list(values) == [PULSE_LABEL, SINE_LABEL]
    assert all(0 < v < 1 for v in values.values())  # positive, unlike SongExplorer's
    scores = pd.read_csv(out / "congruence-scores.csv")
    best = scores[(scores["reference"] == "alice") & (scores["measure"] == "label")]["f1"].max()
    assert best == 1.0


def test_command_line_names_annotated_recordings_without_predictions(tmp_path, capsys):
    from songexplorer_core.annotations import write_intervals_csv
    from songexplorer_cli import main

    write_intervals_csv(table([(0, 9)], wav="a.wav"), tmp_path / "a.wav-annotated-alice.csv")
    write_intervals_csv(table([(0, 9)], wav="b.wav"), tmp_path / "b.wav-annotated-alice.csv")
    write_intervals_csv(table([(0, 9)], wav="a.wav", kind="predicted"), tmp_path / "a.wav-predicted.csv")
    assert main(["congruence", str(tmp_path), "--nprobabilities", "0"]) == 2
    assert "b.wav (annotated by alice)" in capsys.readouterr().err
