"""Threshold sweeps: congruence at each of several probability thresholds, and the dense
thresholds (where precision/recall reaches a ratio) read off them."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from songexplorer_core.annotations import validate_intervals
from songexplorer_core.congruence.prepare import _grouped, _prepare, _Prepared
from songexplorer_core.congruence.results import _evaluate, _frames, _measures, _recordings_of, _scores
from songexplorer_core.congruence.terms import MODEL_KEY, SONGEXPLORER_REFERENCE, CongruenceError


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
