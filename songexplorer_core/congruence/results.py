"""Results of one ethogram: :func:`congruence` and the :class:`Congruence` it returns (counts,
tallies, scores, disjoint sets)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from songexplorer_core.annotations import empty_intervals, intervals_frame, validate_intervals
from songexplorer_core.congruence.compare import _compare
from songexplorer_core.congruence.intervals import _EMPTY, _tic_bounds
from songexplorer_core.congruence.prepare import _grouped, _prepare, _Prepared
from songexplorer_core.congruence.terms import EVERYONE, MEASURES, MODEL_KEY, CongruenceError


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
