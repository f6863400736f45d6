"""Congruence: how far a model's predicted intervals agree with dense human annotations
(SongExplorer §9), at the level of tics and of whole events ("labels"), for one ethogram and
for a sweep of probability thresholds.

Vocabulary (SongExplorer's):

* **keys**: the model's predictions (key ``"songex"`` by default, the name SongExplorer's
  disjoint files use) and every human annotator (``"Person1"``...).
* **everyone**: what all keys marked.  **only X**: what X marked and no other key did.
  **not X**: what every other key marked but X did not (defined with three keys or more).
* **tic level**: counts are tics (samples).  **label level**: counts are events (intervals):
  the connected pieces of each key's annotated set, matched one-to-one greedily (below).
* **portion**: which stretch of a recording counts as annotated: the ``union`` of the
  annotators' spans, or their ``intersection`` (then every annotator's marks are clipped to it).
  Predictions outside that stretch are ignored, as in SongExplorer.
* **convolve**: each interval is widened by ``floor(convolve_s * rate / 2)`` tics at both ends
  before comparing, a tolerance in **seconds** (SongExplorer's GUI labelled it "ms" but passed
  the number on as seconds: QUIRK 16; here it is seconds everywhere, named ``convolve_s`` /
  ``--convolve_sec``).

Scores: TP/FP/FN, precision, recall and F1 per label and measure against several references:

* ``"songexplorer"``: SongExplorer's own definition: TP = everyone, FP = only the model,
  FN = not the model (with two or more annotators) or only the annotator (with one);
* each annotator by name: the model against that annotator alone;
* ``"union"`` / ``"intersection"`` (two or more annotators): against what any / all of them marked.

Semantics follow SongExplorer v0.9.1 (which used the ``portion`` library): intervals are closed
real intervals with integer ends; two intervals merge only when they overlap or share an end, so
``[1,1]`` and ``[2,2]`` stay two events. Internally a set is held on a grid of half tics: cell
``2t`` is tic ``t`` and cell ``2t+1`` the open gap between tics ``t`` and ``t+1``; any union of
intervals with integer ends (open or closed) is exactly a union of cells, so set algebra becomes
sorted-interval sweeps with NumPy, and nothing loops over tics or, in the common cases, intervals.

Label-level matching (SongExplorer's greedy rule): for each event ``a`` of key ``k`` in time
order, and each other key ``j``, the first not-yet-matched event of ``j`` that overlaps ``a`` is
matched to it and removed.  ``a`` is "only k" if it matched nothing in any other key.  "not k" uses
one other key ``k1`` (the first of the others: the model for an annotator, the first annotator
for the model): an event of ``k1`` that overlaps nothing of ``k`` and matches an event in every
remaining key is counted, and those matches are removed.

Changes from SongExplorer (see docs/congruence.md):

* the annotated stretch defaults to the annotators' whole annotated span in the recording
  (``span="annotations"``, all labels); SongExplorer's per-label span (``span="label"``), which
  ignores predictions before a label's first and after its last annotation, is an option;
* precision/recall thresholds of the sweep are positive (SongExplorer negated them, QUIRK 16),
  so the dense thresholds are usable;
* every recording's disjoint files are written (SongExplorer wrote those of the last label's
  recordings), and the "not <model>" count is reported for sweep rows too (SongExplorer repeated
  "only");
* the choice of ``k1`` is deterministic (SongExplorer took the first of a Python ``set``);
* bad input is refused with a message: annotations of a recording without predictions, annotated
  spans that do not overlap under ``portion="intersection"``, a chosen label nobody annotated.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from songexplorer_core.annotations import empty_intervals, intervals_frame, validate_intervals, \
    write_intervals_csv
from songexplorer_core.atomic import atomic_write
from songexplorer_core.figures import new_figure, save_png

MEASURES = ("tic", "label")
PORTIONS = ("union", "intersection")
SPANS = ("annotations", "label")
ABSENT = ("empty", "skip")
#: Key of the model's predictions; SongExplorer's disjoint files call it "songex".
MODEL_KEY = "songex"
#: Reference of SongExplorer's own P/R definition in :attr:`Congruence.scores`.
SONGEXPLORER_REFERENCE = "songexplorer"
EVERYONE = "everyone"


class CongruenceError(ValueError):
    """Congruence cannot be computed from this input; the message names what is wrong and the fix."""


# ---------------------------------------------------------------------------------------------
# sets of closed/open intervals with integer ends, on the half-tic grid
#
# A set is a pair (lo, hi) of sorted int64 arrays of cells, inclusive, of components that neither
# overlap nor touch (a component is an "atomic interval" of the portion library).

_EMPTY = np.empty(0, dtype=np.int64)


def _cells(start: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The union of closed tic intervals ``[start, stop]`` as merged cell components."""
    return _merge(np.asarray(start, dtype=np.int64) * 2, np.asarray(stop, dtype=np.int64) * 2)


def _merge(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge cell intervals that overlap or touch into sorted components."""
    if lo.size == 0:
        return _EMPTY, _EMPTY
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], hi[order]
    reach = np.maximum.accumulate(hi)
    first = np.empty(lo.size, dtype=bool)
    first[0] = True
    first[1:] = lo[1:] > reach[:-1] + 1
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:] - 1, lo.size - 1)
    return lo[starts], reach[ends]


def _clip(cells: tuple[np.ndarray, np.ndarray], first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    """Intersect a set with the cells ``first..last``."""
    lo, hi = cells
    keep = (hi >= first) & (lo <= last)
    return np.maximum(lo[keep], first), np.minimum(hi[keep], last)


def _even_cells(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Tics (even cells) in each cell interval ``lo..hi``."""
    return hi // 2 - (lo + 1) // 2 + 1


def _tic_bounds(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First and last tic of each component, and which components hold a tic at all."""
    first, last = (lo + 1) // 2, hi // 2
    return first, last, first <= last


def _membership(sets: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Cut the line at every component end of every set.

    Returns ``bounds`` (segment ``i`` is cells ``bounds[i] .. bounds[i+1]-1``) and a boolean
    matrix ``[nsets, nsegments]``: which set covers which segment."""
    ends = np.sort(np.concatenate([lo for lo, _ in sets] + [hi + 1 for _, hi in sets]))
    bounds = ends[np.append(True, ends[1:] != ends[:-1])] if ends.size else _EMPTY
    nseg = max(bounds.size - 1, 0)
    member = np.zeros((len(sets), nseg), dtype=bool)
    if nseg:
        seg = bounds[:-1]
        for row, (lo, hi) in enumerate(sets):
            if lo.size:
                index = np.searchsorted(lo, seg, side="right") - 1
                member[row] = (index >= 0) & (hi[np.maximum(index, 0)] >= seg)
    return bounds, member


def _runs(bounds: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Components of the union of the segments selected by ``mask`` (segments tile the line,
    so consecutive selected segments form one component)."""
    if not mask.any():
        return _EMPTY, _EMPTY
    edges = np.flatnonzero(np.diff(mask.view(np.int8), prepend=0, append=0))
    first, after = edges[0::2], edges[1::2]
    return bounds[first], bounds[after] - 1


def _count_runs(mask: np.ndarray) -> int:
    if mask.size == 0:
        return 0
    return int(np.count_nonzero(mask[1:] & ~mask[:-1]) + bool(mask[0]))


_RESET, _SET, _PASS = 0, 1, 2


def greedy_match(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """SongExplorer's greedy one-to-one matching of the components of ``a`` against those of ``b``.

    For each component of ``a`` in order, the first not-yet-matched component of ``b`` that
    overlaps it is matched (and so removed). Both are sets as made by :func:`_cells`.

    Returns, for each component of ``a``, the index of its match in ``b`` or -1.

    Vectorised: the components of ``b`` that overlap ``a[i]`` are a contiguous range
    ``first[i]..last[i]``, ranges of successive ``a`` share at most their end, and ``a[i]`` loses
    ``first[i]`` exactly when the previous ``a`` with a non-empty range took it; that happens
    when the two ranges are linked (``last[p] == first[i]``) and either ``p``'s range is a single
    component, or it has two and ``p`` itself lost its first: a forward-filled state.
    """
    a_lo, a_hi = a
    b_lo, b_hi = b
    match = np.full(a_lo.size, -1, dtype=np.int64)
    if a_lo.size == 0 or b_lo.size == 0:
        return match
    first = np.searchsorted(b_hi, a_lo, side="left")
    last = np.searchsorted(b_lo, a_hi, side="right") - 1
    some = np.flatnonzero(first <= last)
    if some.size == 0:
        return match
    f, l = first[some], last[some]
    linked = l[:-1] == f[1:]
    if not linked.any():
        match[some] = f
        return match
    width = l - f
    state = np.full(some.size, _RESET, dtype=np.int8)
    state[1:] = np.where(linked & (width[:-1] == 0), _SET,
                         np.where(linked & (width[:-1] == 1), _PASS, _RESET))
    source = np.maximum.accumulate(np.where(state != _PASS, np.arange(some.size), 0))
    bumped = state[source] == _SET
    match[some] = np.where(~bumped, f, np.where(f + 1 <= l, f + 1, -1))
    return match


def _overlaps_any(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """For each component of ``a``: does any component of ``b`` overlap it?"""
    if a[0].size == 0 or b[0].size == 0:
        return np.zeros(a[0].size, dtype=bool)
    return np.searchsorted(b[1], a[0], side="left") <= np.searchsorted(b[0], a[1], side="right") - 1


def _take(cells: tuple[np.ndarray, np.ndarray], which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return cells[0][which], cells[1][which]


class _Matches:
    """Greedy matches between the sets of one comparison, each pair computed once."""

    def __init__(self, sets: Sequence[tuple[np.ndarray, np.ndarray]]):
        self.sets = sets
        self._done: dict[tuple[int, int], np.ndarray] = {}

    def __call__(self, i: int, j: int) -> np.ndarray:
        if (i, j) not in self._done:
            self._done[(i, j)] = greedy_match(self.sets[i], self.sets[j])
        return self._done[(i, j)]


def _only_events(matches: _Matches, k: int) -> np.ndarray:
    """Boolean per component of set ``k``: matched nothing in any other set (greedy, per set)."""
    alone = np.ones(matches.sets[k][0].size, dtype=bool)
    for j in range(len(matches.sets)):
        if j != k:
            alone &= matches(k, j) < 0
    return alone


def _not_events(sets: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Components of ``sets[k1]`` that count as "not k" (three sets or more), ``k1`` the first
    index other than ``k``. Returns the chosen components as a set."""
    k1 = 0 if k != 0 else 1
    rest = [j for j in range(len(sets)) if j not in (k, k1)]
    # k's events are never removed (only matched events of the rest are), so "overlaps nothing
    # of k" is fixed; an event lacking any overlap in one of the rest can never qualify either.
    candidate = ~_overlaps_any(sets[k1], sets[k])
    for j in rest:
        candidate &= _overlaps_any(sets[k1], sets[j])
    chosen = np.flatnonzero(candidate)
    # An event qualifies only if it finds an unmatched event in *every* remaining set, and only
    # then are those removed. With one remaining set that is plain greedy matching; with more, drop
    # the first event that fails in some set (it truly fails: everything before it succeeded) and
    # redo, until none fails.
    while chosen.size:
        events = _take(sets[k1], chosen)
        fails = np.zeros(chosen.size, dtype=bool)
        for j in rest:
            fails |= greedy_match(events, sets[j]) < 0
        if not fails.any():
            break
        if len(rest) == 1:
            chosen = chosen[~fails]
            break
        chosen = np.delete(chosen, int(np.argmax(fails)))
    return _take(sets[k1], chosen)


# ---------------------------------------------------------------------------------------------
# preparing annotations


def convolve_tics(convolve_s: float, rate: int) -> int:
    """Tics each interval is widened by at both ends: ``floor(convolve_s * rate / 2)``
    (``convolve_s`` in seconds, ``rate`` in Hz), as SongExplorer's ``int(convolve_sec/2*rate)``."""
    if not np.isfinite(convolve_s) or convolve_s < 0:
        raise CongruenceError(f"convolve must be a non-negative number of seconds, got {convolve_s!r}")
    return int(math.floor(convolve_s * rate / 2 + 1e-9))


def _grouped(frame: pd.DataFrame, widen: int) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """``{(wav, label): (starts, stops)}`` in tics, widened by ``widen`` at both ends."""
    if len(frame) == 0:
        return {}
    start = frame["start"].to_numpy(np.int64) - widen
    stop = frame["stop"].to_numpy(np.int64) + widen
    groups = frame.groupby(["wav", "label"], sort=False, observed=True).indices
    return {(str(w), str(l)): (start[i], stop[i]) for (w, l), i in groups.items()}


@dataclass(frozen=True)
class _Case:
    """One recording and label, ready to compare any predictions with."""

    recording: str
    label: str
    annotators: tuple[str, ...]
    humans: tuple[tuple[np.ndarray, np.ndarray], ...]  # cell sets, clipped to the span
    span: tuple[int, int] | None  # annotated stretch, tics (inclusive), None when empty


@dataclass(frozen=True)
class _Prepared:
    cases: tuple[_Case, ...]
    annotators: tuple[str, ...]
    labels: tuple[str, ...]
    recordings: tuple[str, ...]
    widen: int
    model: str
    portion: str
    span: str


def _annotation_tables(annotations: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    if isinstance(annotations, pd.DataFrame) or not isinstance(annotations, Mapping):
        raise CongruenceError("annotations must map each annotator's name to an interval table, "
                              "e.g. {'Person1': table1, 'Person2': table2}")
    if not annotations:
        raise CongruenceError("no dense annotations were given: congruence needs at least one annotator")
    tables = {}
    for name, frame in annotations.items():
        name = str(name)
        if not name:
            raise CongruenceError("an annotator's name is empty; name every annotator")
        tables[name] = validate_intervals(frame, source=f"annotations of {name}")
    return tables


def _span_of(starts: Iterable[np.ndarray], stops: Iterable[np.ndarray]) -> tuple[int, int] | None:
    starts, stops = list(starts), list(stops)
    if not starts or sum(s.size for s in starts) == 0:
        return None
    return int(min(s.min() for s in starts if s.size)), int(max(s.max() for s in stops if s.size))


def _combine_spans(spans: Mapping[str, tuple[int, int] | None], portion: str, *, where: str,
                   strict: bool) -> tuple[int, int] | None:
    """Union (hull) or intersection of the annotators' spans; ``strict`` raises on an empty
    intersection instead of returning None."""
    present = {name: s for name, s in spans.items() if s is not None}
    if portion == "union":
        if not present:
            return None
        return min(s[0] for s in present.values()), max(s[1] for s in present.values())
    missing = [name for name, s in spans.items() if s is None]
    if missing:
        if strict:
            raise CongruenceError(
                f"{where}: {', '.join(missing)} annotated nothing here, so the intersection of the "
                f"annotated spans is empty; use portion='union', or absent_annotators='skip' to compare "
                f"each recording only among the people who annotated it")
        return None
    left, right = max(s[0] for s in present.values()), min(s[1] for s in present.values())
    if left > right:
        if strict:
            described = "; ".join(f"{name} tics {s[0]}..{s[1]}" for name, s in present.items())
            raise CongruenceError(
                f"{where}: the annotators' annotated spans do not overlap ({described}), so their "
                f"intersection is empty; use portion='union', or annotate a common stretch")
        return None
    return left, right


def _prepare(annotations, *, recordings, labels, portion, convolve_s, rate, span, absent_annotators,
             model) -> _Prepared:
    if portion not in PORTIONS:
        raise CongruenceError(f"portion must be one of {PORTIONS}, not {portion!r}")
    if span not in SPANS:
        raise CongruenceError(f"span must be one of {SPANS}, not {span!r}")
    if absent_annotators not in ABSENT:
        raise CongruenceError(f"absent_annotators must be one of {ABSENT}, not {absent_annotators!r}")
    tables = _annotation_tables(annotations)
    if model in tables:
        raise CongruenceError(f"an annotator is called {model!r}, the name of the model's predictions; "
                              f"rename the annotator or pass another model name")
    widen = convolve_tics(convolve_s, rate)
    groups = {name: _grouped(frame, widen) for name, frame in tables.items()}

    annotated: dict[str, list[str]] = {}
    for name, frame in tables.items():
        for wav in pd.unique(frame["wav"]):
            annotated.setdefault(str(wav), []).append(name)
    if recordings is None:
        raise CongruenceError("internal: recordings must be known")  # callers always pass them
    recordings = [str(r) for r in recordings]
    predicted = set(recordings)
    lacking = sorted(set(annotated) - predicted)
    if lacking:
        shown = ", ".join(f"{wav} (annotated by {', '.join(annotated[wav])})" for wav in lacking[:5])
        raise CongruenceError(
            f"dense annotations of {len(lacking)} recording(s) have no predictions: {shown}. Classify "
            f"and run the ethogram on them, or leave their annotations out. (If the model predicted "
            f"nothing at all in a recording, name it in recordings=... to count that as no predictions.)")
    compared = [r for r in recordings if r in annotated]
    if not compared:
        raise CongruenceError(f"none of the recordings with predictions ({', '.join(recordings[:5])}"
                              f"{'...' if len(recordings) > 5 else ''}) has dense annotations")

    human_labels = sorted({label for g in groups.values() for (_, label) in g})
    if labels is None:
        labels = human_labels
    else:
        labels = [str(label) for label in labels]
        unused = [label for label in labels if label not in human_labels]
        if unused:
            raise CongruenceError(
                f"no annotator marked any interval of label(s) {unused} in the annotated recordings; "
                f"there is nothing to compare the predictions with (labels annotated: {human_labels})")
    if not labels:
        raise CongruenceError("the dense annotations hold no intervals")

    cases = []
    names = tuple(tables)
    for wav in compared:
        present = tuple(n for n in names if n in annotated[wav]) if absent_annotators == "skip" else names
        recording_span = None
        if span == "annotations":
            spans = {}
            for name in present:
                parts = [v for (w, _), v in groups[name].items() if w == wav]
                spans[name] = _span_of((p[0] for p in parts), (p[1] for p in parts))
            recording_span = _combine_spans(spans, portion, where=f"recording {wav}", strict=True)
        for label in labels:
            rows = {name: groups[name].get((wav, label), (_EMPTY, _EMPTY)) for name in present}
            if span == "label":
                spans = {name: _span_of([r[0]], [r[1]]) if r[0].size else None for name, r in rows.items()}
                strict = all(s is not None for s in spans.values())
                case_span = _combine_spans(spans, portion, where=f"recording {wav}, label {label}", strict=strict)
            else:
                case_span = recording_span
            humans = []
            for name in present:
                cells = _cells(*rows[name])
                if case_span is None:
                    cells = (_EMPTY, _EMPTY)
                elif portion == "intersection":
                    cells = _clip(cells, 2 * case_span[0], 2 * case_span[1])
                humans.append(cells)
            cases.append(_Case(wav, label, present, tuple(humans), case_span))
    return _Prepared(tuple(cases), names, tuple(labels), tuple(compared), widen, model, portion, span)


# ---------------------------------------------------------------------------------------------
# comparing one recording and label


@dataclass
class _Outcome:
    counts: dict[str, dict[str, float]]  # measure -> column -> count
    tallies: list[dict]  # rows: measure, reference, tp, fp, fn
    sets: list[tuple[str, tuple[np.ndarray, np.ndarray]]] = field(default_factory=list)  # (kind, cells)


def _compare(case: _Case, predicted: tuple[np.ndarray, np.ndarray], *, model: str, measures: Sequence[str],
             keep_sets: bool) -> _Outcome:
    if case.span is None:
        model_cells = (_EMPTY, _EMPTY)
    else:
        model_cells = _clip(_cells(*predicted), 2 * case.span[0], 2 * case.span[1])
    keys = (model,) + case.annotators
    sets = (model_cells,) + case.humans
    nkeys, nhumans = len(keys), len(case.annotators)
    bounds, member = _membership(sets)
    tics = _even_cells(bounds[:-1], bounds[1:] - 1) if bounds.size > 1 else _EMPTY
    cover = member.sum(axis=0)
    everyone_mask = cover == nkeys
    only_masks = member & (cover == 1)
    not_masks = ~member & (cover == nkeys - 1)
    humans_any = member[1:].any(axis=0)
    humans_all = member[1:].all(axis=0)
    model_mask = member[0]

    outcome = _Outcome(counts={}, tallies=[])
    if keep_sets:
        outcome.sets.append((EVERYONE, _runs(bounds, everyone_mask)))

    if "tic" in measures:
        counts = {EVERYONE: int(tics[everyone_mask].sum())}
        for k, key in enumerate(keys):
            counts[f"only {key}"] = int(tics[only_masks[k]].sum())
            counts[f"not {key}"] = int(tics[not_masks[k]].sum()) if nkeys > 2 else pd.NA
            if keep_sets:
                outcome.sets.append((f"tic-only{key}", _runs(bounds, only_masks[k])))
                if nkeys > 2:
                    outcome.sets.append((f"tic-not{key}", _runs(bounds, not_masks[k])))
        outcome.counts["tic"] = counts
        fn = counts[f"not {model}"] if nhumans >= 2 else counts[f"only {keys[1]}"]
        outcome.tallies.append(_tally("tic", SONGEXPLORER_REFERENCE, counts[EVERYONE], counts[f"only {model}"], fn))
        references = [(name, member[1 + h]) for h, name in enumerate(case.annotators)]
        if nhumans >= 2:
            references += [("union", humans_any), ("intersection", humans_all)]
        for name, ref in references:
            outcome.tallies.append(_tally("tic", name, int(tics[model_mask & ref].sum()),
                                          int(tics[model_mask & ~ref].sum()), int(tics[~model_mask & ref].sum())))

    if "label" in measures:
        everyone = _count_runs(everyone_mask)
        counts = {EVERYONE: everyone}
        matches = _Matches(sets)
        for k, key in enumerate(keys):
            alone = _only_events(matches, k)
            counts[f"only {key}"] = int(alone.sum())
            if keep_sets:
                outcome.sets.append((f"label-only{key}", _take(sets[k], alone)))
            if nkeys > 2:
                missed = _not_events(sets, k)
                counts[f"not {key}"] = int(missed[0].size)
                if keep_sets:
                    outcome.sets.append((f"label-not{key}", missed))
            else:
                counts[f"not {key}"] = pd.NA
        outcome.counts["label"] = counts
        fn = counts[f"not {model}"] if nhumans >= 2 else counts[f"only {keys[1]}"]
        outcome.tallies.append(_tally("label", SONGEXPLORER_REFERENCE, everyone, counts[f"only {model}"], fn))
        for h, name in enumerate(case.annotators):
            outcome.tallies.append(_tally("label", name, _count_runs(model_mask & member[1 + h]),
                                          np.count_nonzero(matches(0, 1 + h) < 0),
                                          np.count_nonzero(matches(1 + h, 0) < 0)))
        if nhumans >= 2:
            for name, ref_mask in (("union", humans_any), ("intersection", humans_all)):
                ref_cells = _runs(bounds, ref_mask)
                outcome.tallies.append(_tally("label", name, _count_runs(model_mask & ref_mask),
                                              np.count_nonzero(greedy_match(model_cells, ref_cells) < 0),
                                              np.count_nonzero(greedy_match(ref_cells, model_cells) < 0)))
    return outcome


def _tally(measure: str, reference: str, tp, fp, fn) -> dict:
    return {"measure": measure, "reference": reference, "tp": int(tp), "fp": int(fp), "fn": int(fn)}


# ---------------------------------------------------------------------------------------------
# results


def precision_recall_f1(tp, fp, fn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision ``tp/(tp+fp)``, recall ``tp/(tp+fn)`` and F1 (their harmonic mean), NaN on 0/0."""
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
        recall = tp / (tp + fn)
        f1 = 2 * tp / (2 * tp + fp + fn)
    return precision, recall, f1


def _scores(tallies: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    columns = list(by) + ["label", "measure", "reference"]
    if len(tallies) == 0:
        return pd.DataFrame(columns=columns + ["tp", "fp", "fn", "precision", "recall", "f1"])
    summed = tallies.groupby(columns, sort=False, observed=True)[["tp", "fp", "fn"]].sum().reset_index()
    p, r, f = precision_recall_f1(summed["tp"], summed["fp"], summed["fn"])
    return summed.assign(precision=p, recall=r, f1=f)


@dataclass(frozen=True)
class Congruence:
    """Agreement of one set of predictions with the dense annotations.

    Attributes:
        counts: one row per recording, label and measure (``tic``: counts are tics; ``label``:
            counts are events): ``everyone``, ``only <key>`` and ``not <key>`` for the model key
            and every annotator (``not`` is NaN with fewer than three keys).
        tallies: one row per recording, label, measure and reference: ``tp``, ``fp``, ``fn``.
        disjoint: an interval table (tics, inclusive) of every disjoint set, kinds ``everyone``,
            ``tic-only<key>``, ``tic-not<key>``, ``label-only<key>``, ``label-not<key>``
            (empty unless asked for with ``keep_sets``).
        model: the model's key; annotators: the annotators' names; labels; recordings compared.
        portion, span: the settings used; convolve_tics: the widening, tics at each end.
    """

    counts: pd.DataFrame
    tallies: pd.DataFrame
    disjoint: pd.DataFrame
    model: str
    annotators: tuple[str, ...]
    labels: tuple[str, ...]
    recordings: tuple[str, ...]
    portion: str
    span: str
    convolve_tics: int
    measures: tuple[str, ...]

    @property
    def scores(self) -> pd.DataFrame:
        """Per label, measure and reference, summed over recordings: ``tp, fp, fn, precision,
        recall, f1``. References: ``songexplorer``, each annotator, ``union``, ``intersection``."""
        return _scores(self.tallies, ())

    def totals(self, measure: str) -> pd.DataFrame:
        """Counts summed over recordings, one row per label (SongExplorer's real-ethogram row)."""
        rows = self.counts[self.counts["measure"] == measure]
        columns = [c for c in rows.columns if c not in ("recording", "label", "measure")]
        return rows.groupby("label", sort=False)[columns].sum(min_count=1).reindex(list(self.labels))

    def disjoint_kinds(self) -> list[str]:
        """The disjoint-set kinds this result has files for (SongExplorer's names)."""
        keys = (self.model,) + self.annotators
        kinds = [EVERYONE]
        for measure in self.measures:
            kinds += [f"{measure}-only{k}" for k in keys]
            if len(keys) > 2:
                kinds += [f"{measure}-not{k}" for k in keys]
        return kinds


def _measures(measure: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(measure, str):
        measure = MEASURES if measure == "both" else (measure,)
    measure = tuple(measure)
    bad = [m for m in measure if m not in MEASURES]
    if bad or not measure:
        raise CongruenceError(f"measure must be 'tic', 'label' or 'both', not {bad or measure!r}")
    return measure


def _evaluate(prepared: _Prepared, grouped: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray]], *,
              measures: tuple[str, ...], keep_sets: bool, extra: Mapping[str, object] | None = None):
    """Compare predictions ``{(recording, label): (starts, stops)}`` (tics, widened) with every case."""
    counts, tallies, pieces = [], [], []
    extra = dict(extra or {})
    for case in prepared.cases:
        predicted = grouped.get((case.recording, case.label), (_EMPTY, _EMPTY))
        outcome = _compare(case, predicted, model=prepared.model, measures=measures, keep_sets=keep_sets)
        for measure, row in outcome.counts.items():
            counts.append({**extra, "recording": case.recording, "label": case.label, "measure": measure, **row})
        for row in outcome.tallies:
            tallies.append({**extra, "recording": case.recording, "label": case.label, **row})
        for kind, (lo, hi) in outcome.sets:
            first, last, real = _tic_bounds(lo, hi)
            if real.any():
                pieces.append((case.recording, np.maximum(first[real], 0), np.maximum(last[real], 0), kind,
                               case.label))
    return counts, tallies, pieces


def _frames(prepared: _Prepared, counts: list[dict], tallies: list[dict], extra: Sequence[str] = ()
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    keys = (prepared.model,) + prepared.annotators
    order = list(extra) + ["recording", "label", "measure", EVERYONE] + \
        [f"{w} {k}" for k in keys for w in ("only", "not")]
    counts = pd.DataFrame(counts, columns=order)
    numbers = order[len(extra) + 3:]
    counts[numbers] = counts[numbers].astype("Int64")
    tallies = pd.DataFrame(tallies, columns=list(extra) + ["recording", "label", "measure", "reference",
                                                          "tp", "fp", "fn"])
    return counts, tallies


def _disjoint_table(pieces) -> pd.DataFrame:
    if not pieces:
        return empty_intervals()
    wav = np.concatenate([np.full(p[1].size, p[0], dtype=object) for p in pieces])
    frame = intervals_frame(
        wav=wav, start=np.concatenate([p[1] for p in pieces]), stop=np.concatenate([p[2] for p in pieces]),
        kind=np.concatenate([np.full(p[1].size, p[3], dtype=object) for p in pieces]),
        label=np.concatenate([np.full(p[1].size, p[4], dtype=object) for p in pieces]),
    )
    return frame.sort_values(["wav", "kind", "start", "label"], kind="stable").reset_index(drop=True)


def _recordings_of(predictions: pd.DataFrame, recordings) -> list[str]:
    if recordings is not None:
        return [Path(str(r)).name for r in recordings]
    return [str(w) for w in pd.unique(predictions["wav"])] if len(predictions) else []


def congruence(
    annotations: Mapping[str, pd.DataFrame],
    predictions: pd.DataFrame,
    *,
    recordings: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    portion: str = "union",
    convolve_s: float = 0.0,
    rate: int = 2500,
    measure: str | Sequence[str] = "both",
    span: str = "annotations",
    absent_annotators: str = "empty",
    model: str = MODEL_KEY,
    keep_sets: bool = True,
) -> Congruence:
    """Compare one ethogram's predictions with dense annotations by one or more people.

    Args:
        annotations: ``{annotator: interval table}``; every recording named in them is compared.
        predictions: interval table of the model's predictions (kind ``predicted``; the kind is
            not checked), for any number of recordings.
        recordings: basenames of the recordings that have predictions (an ethogram); default the
            recordings named in ``predictions``. Pass it when the model predicted nothing in some.
        labels: labels to compare (default: every label the annotators used). A label given here
            that nobody annotated is an error.
        portion: ``"union"`` or ``"intersection"`` of the annotators' annotated spans.
        convolve_s: tolerance, **seconds**: intervals are widened by ``floor(convolve_s*rate/2)``
            tics at both ends before comparing.
        rate: tic rate, Hz (only used to convert ``convolve_s``).
        measure: ``"tic"``, ``"label"`` or ``"both"``.
        span: ``"annotations"``: a recording's annotated stretch runs from the annotators' first to
            last annotation of any label; ``"label"``: per label (SongExplorer).
        absent_annotators: ``"empty"``: an annotator with no annotation in a recording counts as
            having marked nothing there (SongExplorer); ``"skip"``: each recording is compared
            among the annotators who annotated it.
        model: the predictions' key in counts and disjoint kinds (SongExplorer: ``songex``).
        keep_sets: keep the disjoint sets as interval tables (for :func:`write_disjoint_csvs`).

    Raises:
        CongruenceError: annotations of a recording without predictions, annotated spans that do
            not overlap with ``portion="intersection"``, a chosen label nobody annotated, no
            annotations at all, or a bad setting.
    """
    measures = _measures(measure)
    predictions = validate_intervals(predictions, source="predictions")
    prepared = _prepare(annotations, recordings=_recordings_of(predictions, recordings), labels=labels,
                        portion=portion, convolve_s=convolve_s, rate=rate, span=span,
                        absent_annotators=absent_annotators, model=model)
    counts, tallies, pieces = _evaluate(prepared, _grouped(predictions, prepared.widen), measures=measures,
                                        keep_sets=keep_sets)
    counts, tallies = _frames(prepared, counts, tallies)
    return Congruence(counts=counts, tallies=tallies, disjoint=_disjoint_table(pieces), model=model,
                      annotators=prepared.annotators, labels=prepared.labels, recordings=prepared.recordings,
                      portion=portion, span=span, convolve_tics=prepared.widen, measures=measures)


# ---------------------------------------------------------------------------------------------
# threshold sweeps


def sweep_thresholds(nprobabilities: int = 20) -> np.ndarray:
    """SongExplorer's sweep: ``nprobabilities`` thresholds evenly inside (0, 1), i.e.
    ``linspace(0, 1, n+2)[1:-1]`` (1/21 ... 20/21 for 20). Positive, unlike SongExplorer's keys."""
    if int(nprobabilities) < 1:
        raise CongruenceError(f"nprobabilities must be at least 1, got {nprobabilities!r}")
    return np.linspace(0.0, 1.0, int(nprobabilities) + 2)[1:-1]


@dataclass(frozen=True)
class CongruenceSweep:
    """Congruence at each of several probability thresholds (one threshold for every label).

    Attributes:
        thresholds: ascending, probabilities.
        counts, tallies: as :class:`Congruence`'s, with a leading ``threshold`` column.
    """

    thresholds: np.ndarray
    counts: pd.DataFrame
    tallies: pd.DataFrame
    model: str
    annotators: tuple[str, ...]
    labels: tuple[str, ...]
    recordings: tuple[str, ...]
    measures: tuple[str, ...]

    @property
    def scores(self) -> pd.DataFrame:
        """Per threshold, label, measure and reference (summed over recordings): ``tp, fp, fn,
        precision, recall, f1``."""
        return _scores(self.tallies, ("threshold",))

    def totals(self, measure: str, label: str) -> pd.DataFrame:
        """Counts summed over recordings, one row per threshold, for one label and measure."""
        rows = self.counts[(self.counts["measure"] == measure) & (self.counts["label"] == label)]
        columns = [c for c in rows.columns if c not in ("threshold", "recording", "label", "measure")]
        return rows.groupby("threshold")[columns].sum(min_count=1)

    def dense_thresholds(self, ratio: float = 1.0, *, measure: str = "tic",
                         reference: str = SONGEXPLORER_REFERENCE) -> dict[str, float]:
        """Per label, the threshold at which precision/recall equals ``ratio`` (see
        :func:`threshold_at_ratio`)."""
        scores = self.scores
        result = {}
        for label in self.labels:
            rows = scores[(scores["label"] == label) & (scores["measure"] == measure)
                          & (scores["reference"] == reference)].sort_values("threshold")
            with np.errstate(invalid="ignore", divide="ignore"):
                ratios = rows["precision"].to_numpy(float) / rows["recall"].to_numpy(float)
            result[label] = threshold_at_ratio(rows["threshold"].to_numpy(float), ratios, ratio, label=label)
        return result


def threshold_at_ratio(thresholds: np.ndarray, ratios: np.ndarray, ratio: float, *, label: str = "") -> float:
    """Where precision/recall (``ratios``, one per ascending threshold) crosses ``ratio``.

    Linear interpolation between the two sweep points around the first crossing, going up in
    threshold (SongExplorer interpolated linearly too). When the sweep never reaches ``ratio``,
    the threshold of the sweep point whose precision/recall is nearest to it, with a warning
    (SongExplorer extrapolated, even beyond [0, 1]). Points where recall is 0 or precision is
    undefined are left out, as in SongExplorer; NaN (with a warning) when none is left.
    """
    thresholds = np.asarray(thresholds, dtype=float)
    ratios = np.asarray(ratios, dtype=float)
    ok = np.isfinite(ratios)
    t, r = thresholds[ok], ratios[ok]
    if t.size == 0:
        warnings.warn(f"label {label!r}: precision/recall is undefined at every threshold of the sweep; "
                      f"its dense threshold is NaN", stacklevel=2)
        return float("nan")
    exact = np.flatnonzero(r == ratio)
    above = r > ratio
    crossing = np.flatnonzero(above[1:] != above[:-1])
    if exact.size and (not crossing.size or exact[0] <= crossing[0]):
        return float(t[exact[0]])
    if crossing.size:
        i = int(crossing[0])
        return float(t[i] + (ratio - r[i]) * (t[i + 1] - t[i]) / (r[i + 1] - r[i]))
    nearest = int(np.argmin(np.abs(r - ratio)))
    warnings.warn(f"label {label!r}: precision/recall never reaches {ratio} in the sweep (it runs from "
                  f"{r.min():.3g} to {r.max():.3g}); its dense threshold is the sweep's nearest, {t[nearest]:.3g}",
                  stacklevel=2)
    return float(t[nearest])


def threshold_runs(probs, label: str, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The tics (inclusive) of the intervals :func:`songexplorer_core.ethogram.ethogram_threshold`
    makes of one label's probabilities at ``threshold``, as arrays (no table: sweeps call this
    for every threshold)."""
    from songexplorer_core.ethogram import samples_to_tics

    above = np.concatenate([[False], probs.column(label) > float(threshold), [False]])
    change = np.flatnonzero(above[1:] != above[:-1])
    return samples_to_tics(change[0::2], change[1::2] - 1, stride_tics=probs.stride_tics, ntics=probs.ntics)


def _sweep(prepared: _Prepared, tables: Iterable[tuple[float, Mapping]], measures, progress):
    counts, tallies = [], []
    for threshold, grouped in tables:
        c, t, _ = _evaluate(prepared, grouped, measures=measures, keep_sets=False,
                            extra={"threshold": float(threshold)})
        counts += c
        tallies += t
        if progress is not None:
            progress(threshold)
    return _frames(prepared, counts, tallies, ("threshold",))


def congruence_sweep_tables(
    annotations: Mapping[str, pd.DataFrame],
    predicted_by_threshold: Mapping[float, pd.DataFrame],
    *,
    recordings: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    portion: str = "union",
    convolve_s: float = 0.0,
    rate: int = 2500,
    measure: str | Sequence[str] = "both",
    span: str = "annotations",
    absent_annotators: str = "empty",
    model: str = MODEL_KEY,
    progress=None,
) -> CongruenceSweep:
    """Congruence of one predicted table per threshold (``{threshold: table}``) with the dense
    annotations. Arguments as :func:`congruence`; ``recordings`` defaults to every recording
    named in any of the tables. ``progress``, if given, is called with each threshold done."""
    if not predicted_by_threshold:
        raise CongruenceError("no thresholds to sweep")
    measures = _measures(measure)
    items = sorted(((float(t), validate_intervals(f, source=f"predictions at threshold {t}"))
                    for t, f in predicted_by_threshold.items()), key=lambda item: item[0])
    if recordings is None:
        recordings = list(dict.fromkeys(w for _, f in items for w in _recordings_of(f, None)))
    prepared = _prepare(annotations, recordings=[Path(str(r)).name for r in recordings], labels=labels,
                        portion=portion, convolve_s=convolve_s, rate=rate, span=span,
                        absent_annotators=absent_annotators, model=model)
    counts, tallies = _sweep(prepared, ((t, _grouped(f, prepared.widen)) for t, f in items), measures, progress)
    return CongruenceSweep(np.array([t for t, _ in items]), counts, tallies, model, prepared.annotators,
                           prepared.labels, prepared.recordings, measures)


def congruence_sweep(
    probabilities,
    annotations: Mapping[str, pd.DataFrame],
    *,
    thresholds: Sequence[float] | int = 20,
    labels: Sequence[str] | None = None,
    portion: str = "union",
    convolve_s: float = 0.0,
    measure: str | Sequence[str] = "both",
    span: str = "annotations",
    absent_annotators: str = "empty",
    model: str = MODEL_KEY,
    progress=None,
) -> CongruenceSweep:
    """Sweep one probability threshold, applied to every label, over the model's probabilities.

    At each threshold the probabilities are turned into predicted intervals as
    :func:`songexplorer_core.ethogram.ethogram_threshold` does (runs of samples strictly above
    the threshold, see :func:`threshold_runs`) and compared with the dense annotations.

    Args:
        probabilities: :class:`songexplorer_core.classify.Probabilities` of each compared
            recording: a sequence (each with its ``wav`` set) or ``{recording: Probabilities}``.
        annotations: ``{annotator: interval table}``.
        thresholds: the thresholds (probabilities in [0, 1]), or a count ``n`` for SongExplorer's
            ``n`` evenly spaced ones (:func:`sweep_thresholds`).
        Others: as :func:`congruence` (the tic rate comes from the probabilities).

    Raises:
        CongruenceError: as :func:`congruence`; also recordings at different tic rates, or an
            annotated label the model does not output.
    """
    if isinstance(probabilities, Mapping):
        items = [(Path(str(name)).name, probs) for name, probs in probabilities.items()]
    else:
        items = []
        for probs in probabilities:
            if not probs.wav:
                raise CongruenceError("a Probabilities object has no wav name; pass {recording: probabilities}")
            items.append((Path(probs.wav).name, probs))
    if not items:
        raise CongruenceError("no probabilities were given")
    rates = {int(p.rate) for _, p in items}
    if len(rates) != 1:
        raise CongruenceError(f"the recordings' probabilities are at different tic rates {sorted(rates)} Hz; "
                              f"congruence compares recordings of one rate")
    rate = rates.pop()
    if isinstance(thresholds, (int, np.integer)):
        thresholds = sweep_thresholds(int(thresholds))
    thresholds = np.sort(np.asarray(thresholds, dtype=float))
    if thresholds.size == 0 or not np.all((thresholds >= 0) & (thresholds <= 1)):
        raise CongruenceError(f"thresholds must be probabilities in [0, 1], got {thresholds.tolist()}")
    measures = _measures(measure)
    prepared = _prepare(annotations, recordings=[name for name, _ in items], labels=labels, portion=portion,
                        convolve_s=convolve_s, rate=rate, span=span, absent_annotators=absent_annotators,
                        model=model)
    for name, probs in items:
        if name not in prepared.recordings:
            continue
        missing = [label for label in prepared.labels if label not in probs.labels]
        if missing:
            raise CongruenceError(f"{name}: the model has no output for annotated label(s) {missing} "
                                  f"(its labels: {list(probs.labels)}); choose labels=... among them")

    compared = [(name, probs) for name, probs in items if name in prepared.recordings]

    def tables():
        for threshold in thresholds:
            grouped = {}
            for name, probs in compared:
                for label in prepared.labels:
                    start, stop = threshold_runs(probs, label, threshold)
                    grouped[(name, label)] = (start - prepared.widen, stop + prepared.widen)
            yield threshold, grouped

    counts, tallies = _sweep(prepared, tables(), measures, progress)
    return CongruenceSweep(thresholds, counts, tallies, model, prepared.annotators, prepared.labels,
                           prepared.recordings, measures)


# ---------------------------------------------------------------------------------------------
# files


def disjoint_csv_name(recording: str, kind: str) -> str:
    """``<wav>-disjoint-<kind>.csv`` (SongExplorer's name)."""
    return f"{Path(recording).name}-disjoint-{kind}.csv"


def write_disjoint_csvs(result: Congruence, folder: str | os.PathLike, *,
                        folders: Mapping[str, str | os.PathLike] | None = None) -> list[Path]:
    """Write every recording's ``<wav>-disjoint-<kind>.csv`` (SongExplorer's 5-column CSVs,
    tics inclusive; a file for every kind, empty when the set is), atomically.

    Args:
        folder: where to write them; ``folders`` maps a recording to its own folder instead
            (SongExplorer mirrors each recording's sub-folder of the ground truth).
    """
    if len(result.disjoint) == 0 and not result.recordings:
        return []
    written = []
    disjoint = result.disjoint
    groups = disjoint.groupby(["wav", "kind"], sort=False, observed=True).indices if len(disjoint) else {}
    for recording in result.recordings:
        target = Path(folders[recording]) if folders and recording in folders else Path(folder)
        for kind in result.disjoint_kinds():
            index = groups.get((recording, kind))
            frame = disjoint.iloc[index].sort_values(["start", "label"], kind="stable") if index is not None \
                else empty_intervals()
            written.append(write_intervals_csv(frame, target / disjoint_csv_name(recording, kind)))
    return written


def songexplorer_table(measure: str, label: str, *, ethogram: Congruence | None = None,
                       sweep: CongruenceSweep | None = None) -> pd.DataFrame:
    """SongExplorer's ``congruence.<measure>.<label>.csv`` layout (counts summed over recordings):
    first column the predictions (``""`` for the ethogram, ``"<t>th"`` for a sweep threshold,
    highest first, **positive**), then ``only <key>``/``not <key>`` per key (the model's key is
    ``""``, annotators' ``-<name>``), ``Everyone``, ``Precision``, ``Recall``."""
    source = ethogram or sweep
    if source is None:
        raise CongruenceError("give an ethogram result, a sweep, or both")
    keys = (source.model,) + source.annotators

    def named(key):
        return "" if key == source.model else f"-{key}"

    columns = [c for k in keys for c in (f"only {named(k)}", f"not {named(k)}")] + ["Everyone", "Precision", "Recall"]
    rows, index = [], []

    def row_of(totals, scores):
        values = {}
        for k in keys:
            values[f"only {named(k)}"] = totals.get(f"only {k}", np.nan)
            values[f"not {named(k)}"] = totals.get(f"not {k}", np.nan)
        values["Everyone"] = totals.get(EVERYONE, np.nan)
        values["Precision"], values["Recall"] = scores
        return values

    if ethogram is not None and label in ethogram.labels and measure in ethogram.measures:
        totals = ethogram.totals(measure).loc[label]
        rows.append(row_of(totals, (np.nan, np.nan)))
        index.append("")
    if sweep is not None and label in sweep.labels and measure in sweep.measures:
        totals = sweep.totals(measure, label)
        scores = sweep.scores
        scores = scores[(scores["label"] == label) & (scores["measure"] == measure)
                        & (scores["reference"] == SONGEXPLORER_REFERENCE)].set_index("threshold")
        for threshold in sorted(totals.index, reverse=True):
            rows.append(row_of(totals.loc[threshold], (scores.loc[threshold, "precision"],
                                                       scores.loc[threshold, "recall"])))
            index.append(f"{threshold!r}th")
    table = pd.DataFrame(rows, columns=columns, index=pd.Index(index, name=""))
    table[columns[:-2]] = table[columns[:-2]].astype("Int64")
    return table


def _write_table(frame: pd.DataFrame, path: Path, *, index: bool) -> Path:
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=index, lineterminator="\n")
    return path


def plot_counts(result: Congruence, measure: str, label: str):
    """Bar chart of the ethogram's counts for one label (summed over recordings): everyone,
    then only/not per key, marked TP/FP/FN as SongExplorer does."""
    totals = result.totals(measure).loc[label]
    keys = (result.model,) + result.annotators
    names, values, colours = [EVERYONE + " (TP)"], [totals[EVERYONE]], ["tab:green"]
    for key in keys:
        tag = " (FP)" if key == result.model else ""
        names.append(f"only {key}{tag}")
        values.append(totals[f"only {key}"])
        colours.append("tab:red" if key == result.model else "tab:gray")
    if len(keys) > 2:
        for key in keys:
            tag = " (FN)" if key == result.model else ""
            names.append(f"not {key}{tag}")
            values.append(totals[f"not {key}"])
            colours.append("tab:orange" if key == result.model else "silver")
    elif len(keys) == 2:
        names[2] += " (FN)"
    figure = new_figure(max(4.0, 0.7 * len(names) + 1.5), 3.6)
    ax = figure.add_subplot()
    values = [0 if pd.isna(v) else float(v) for v in values]
    ax.bar(range(len(values)), values, color=colours)
    ax.set_xticks(range(len(values)), names, rotation=40, ha="right")
    ax.set_ylabel("tics" if measure == "tic" else "events")
    ax.set_title(f"{label}: {measure} level, {len(result.recordings)} recording(s)")
    for x, v in enumerate(values):
        ax.annotate(f"{v:g}", (x, v), ha="center", va="bottom", fontsize=8)
    return figure


def plot_sweep(sweep: CongruenceSweep, measure: str, label: str, *, reference: str = SONGEXPLORER_REFERENCE,
               dense_threshold: float | None = None, sparse_threshold: float | None = None):
    """Left: counts (TP, FP, FN of ``reference``) against threshold, with F1 on a twin axis;
    right: precision against recall over the sweep. Vertical lines / points mark the dense and
    sparse thresholds when given."""
    scores = sweep.scores
    rows = scores[(scores["label"] == label) & (scores["measure"] == measure)
                  & (scores["reference"] == reference)].sort_values("threshold")
    t = rows["threshold"].to_numpy(float)
    figure = new_figure(10, 4)
    left, right = figure.subplots(1, 2)
    for column, colour, name in (("tp", "tab:green", "TP"), ("fp", "tab:red", "FP"), ("fn", "tab:orange", "FN")):
        left.plot(t, rows[column].to_numpy(float), "o-", color=colour, label=name, markersize=3)
    left.set_xlabel("probability threshold")
    left.set_ylabel("tics" if measure == "tic" else "events")
    f1_axis = left.twinx()
    f1_axis.plot(t, rows["f1"].to_numpy(float), "k--", label="F1")
    f1_axis.set_ylim(0, 1.05)
    f1_axis.set_ylabel("F1")
    lines = left.get_legend_handles_labels()
    more = f1_axis.get_legend_handles_labels()
    left.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="best")
    right.plot(rows["recall"].to_numpy(float), rows["precision"].to_numpy(float), "o-", markersize=3)
    right.set_xlabel("recall")
    right.set_ylabel("precision")
    right.set_xlim(0, 1.02)
    right.set_ylim(0, 1.02)
    for value, style, name in ((dense_threshold, "b:", "dense"), (sparse_threshold, "m:", "sparse")):
        if value is not None and np.isfinite(value):
            left.axvline(value, color=style[0], linestyle=":", label=name)
            p = np.interp(value, t, rows["precision"].to_numpy(float)) if t.size else np.nan
            r = np.interp(value, t, rows["recall"].to_numpy(float)) if t.size else np.nan
            right.plot([r], [p], style[0] + "s", label=f"{name} {value:.3f}")
    if right.get_legend_handles_labels()[0]:
        right.legend(fontsize=8)
    figure.suptitle(f"{label}: {measure} level against {reference}")
    return figure


def write_congruence_report(
    folder: str | os.PathLike,
    *,
    ethogram: Congruence | None = None,
    sweep: CongruenceSweep | None = None,
    error_ratio: float = 1.0,
    sparse_thresholds: Mapping[str, float] | None = None,
    plots: bool = True,
) -> list[Path]:
    """Write the congruence outputs into ``folder`` (atomically):

    * ``congruence.<measure>.<label>.csv``: SongExplorer's layout (:func:`songexplorer_table`);
    * ``congruence-counts.csv``: every count per recording (ethogram rows have an empty threshold);
    * ``congruence-scores.csv``: precision, recall, F1 per label, measure, reference, threshold;
    * with ``plots``: ``congruence.<measure>.<label>.png`` (sweep) and
      ``congruence.<measure>.<label>.counts.png`` (the ethogram's counts).

    The disjoint files are written by :func:`write_disjoint_csvs`, dense thresholds by
    :func:`write_dense_thresholds`.
    """
    source = ethogram or sweep
    if source is None:
        raise CongruenceError("nothing to write: give an ethogram result, a sweep, or both")
    folder = Path(folder)
    written = []
    counts, scores = [], []
    if ethogram is not None:
        counts.append(ethogram.counts.assign(threshold=np.nan))
        scores.append(ethogram.scores.assign(threshold=np.nan))
    if sweep is not None:
        counts.append(sweep.counts)
        scores.append(sweep.scores)
    front = ["threshold", "recording", "label", "measure"]
    counts = pd.concat(counts, ignore_index=True)
    counts = counts[front + [c for c in counts.columns if c not in front]]
    scores = pd.concat(scores, ignore_index=True)
    scores = scores[["threshold", "label", "measure", "reference", "tp", "fp", "fn", "precision", "recall", "f1"]]
    written.append(_write_table(counts, folder / "congruence-counts.csv", index=False))
    written.append(_write_table(scores, folder / "congruence-scores.csv", index=False))
    dense = {m: sweep.dense_thresholds(error_ratio, measure=m) for m in sweep.measures} if sweep else {}
    for measure in source.measures:
        for label in source.labels:
            table = songexplorer_table(measure, label, ethogram=ethogram, sweep=sweep)
            written.append(_write_table(table, folder / f"congruence.{measure}.{label}.csv", index=True))
            if not plots:
                continue
            if sweep is not None:
                figure = plot_sweep(sweep, measure, label, dense_threshold=dense[measure].get(label),
                                    sparse_threshold=(sparse_thresholds or {}).get(label))
                written.append(save_png(figure, folder / f"congruence.{measure}.{label}.png"))
            if ethogram is not None:
                written.append(save_png(plot_counts(ethogram, measure, label),
                                         folder / f"congruence.{measure}.{label}.counts.png"))
    return written


def dense_thresholds_csv_name(measure: str, timestamp: str, checkpoint: int | str | None) -> str:
    """``thresholds-dense-<measure>-<timestamp>.ckpt-<N>.csv`` (SongExplorer's name)."""
    tail = f".ckpt-{checkpoint}" if checkpoint is not None else ""
    return f"thresholds-dense-{measure}-{timestamp}{tail}.csv"


def write_dense_thresholds(sweep: CongruenceSweep, folder: str | os.PathLike, *, error_ratio: float = 1.0,
                           timestamp: str, checkpoint: int | str | None = None,
                           label_order: Sequence[str] | None = None) -> list[Path]:
    """Write one thresholds file (SongExplorer's HEAD format, ``label,threshold``) per measure, with
    the thresholds where precision/recall = ``error_ratio`` against SongExplorer's reference.
    Labels in ``label_order`` (the model's ``labels.txt``; labels not compared get NaN)."""
    from songexplorer_core.ethogram import write_thresholds_csv

    written = []
    for measure in sweep.measures:
        dense = sweep.dense_thresholds(error_ratio, measure=measure)
        order = list(label_order) if label_order is not None else list(sweep.labels)
        values = {label: dense.get(label, float("nan")) for label in order}
        path = Path(folder) / dense_thresholds_csv_name(measure, timestamp, checkpoint)
        written.append(write_thresholds_csv(values, path))
    return written


__all__ = [
    "ABSENT", "Congruence", "CongruenceError", "CongruenceSweep", "EVERYONE", "MEASURES", "MODEL_KEY",
    "PORTIONS", "SONGEXPLORER_REFERENCE", "SPANS", "congruence", "congruence_sweep", "congruence_sweep_tables",
    "convolve_tics", "dense_thresholds_csv_name", "disjoint_csv_name", "greedy_match", "plot_counts",
    "plot_sweep", "precision_recall_f1", "songexplorer_table", "sweep_thresholds", "threshold_at_ratio",
    "write_congruence_report", "write_dense_thresholds", "write_disjoint_csvs",
]
