"""Preparing dense annotations: validated, widened by the tolerance, grouped per recording and
label, and clipped to the annotated stretch (``portion``, ``span``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from songexplorer_core.annotations import validate_intervals
from songexplorer_core.congruence.intervals import _EMPTY, _cells, _clip
from songexplorer_core.congruence.terms import ABSENT, PORTIONS, SPANS, CongruenceError


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
