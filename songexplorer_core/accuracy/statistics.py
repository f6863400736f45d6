"""Confusion matrices and SongExplorer's class-balanced precision and recall; precision-recall
curves and the thresholds at a precision/recall ratio (SongExplorer's way, or exact)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from songexplorer_core.accuracy.validation import EXCLUSIVE, AccuracyWarning, ValidationResults


#: SongExplorer's ``nprobabilities`` (configuration.py): points of its threshold grid.
SONGEXPLORER_NPROBABILITIES = 20


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, float64, numerically stable."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Logistic function, float64."""
    z = np.asarray(logits, dtype=np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def probabilities_of(results: ValidationResults) -> np.ndarray:
    """The probabilities classify would give for these logits (softmax or sigmoid)."""
    return softmax(results.logits) if results.loss == EXCLUSIVE else sigmoid(results.logits)


def confusion_matrix(groundtruth: np.ndarray, logits: np.ndarray, *, loss: str = EXCLUSIVE) -> np.ndarray:
    """Counts of unmasked taps.

    Exclusive: ``[nlabels, nlabels]``, rows = annotation, columns = argmax of the logits.
    Overlapped: ``[nlabels, 2, 2]`` = ``[[TP, FN], [FP, TN]]`` per label (present when the
    sigmoid probability > 0.5, i.e. logit > 0; SongExplorer compared raw logits with 0.5).
    """
    logits = np.asarray(logits)
    nlabels = logits.shape[-1]
    if loss == EXCLUSIVE:
        truth = np.asarray(groundtruth).reshape(-1)
        predicted = np.argmax(logits, axis=-1).reshape(-1)
        keep = truth >= 0
        counts = np.bincount(truth[keep] * nlabels + predicted[keep], minlength=nlabels * nlabels)
        return counts.reshape(nlabels, nlabels).astype(np.int64)
    truth = np.asarray(groundtruth).reshape(-1, nlabels)
    present = (logits > 0).reshape(-1, nlabels)
    matrices = np.zeros((nlabels, 2, 2), dtype=np.int64)
    for index in range(nlabels):
        t, p = truth[:, index], present[:, index]
        matrices[index] = [[np.sum((t == 1) & p), np.sum((t == 1) & ~p)],
                           [np.sum((t == 0) & p), np.sum((t == 0) & ~p)]]
    return matrices


def balanced_precision_recall(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SongExplorer's per-class precision and recall of a square count matrix (its
    ``src/accuracy``): recall from the row-normalised matrix, precision from the column-normalised
    row-normalised one.

    ``recall_i = M[i,i] / sum_j M[i,j]``; precision is column-normalisation of the
    row-normalised matrix, ``precision_i = Rn[i,i] / sum_k Rn[k,i]`` (rows without taps skipped),
    i.e. precision as if every class had equally many taps. NaN where undefined.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        row_normalised = np.where(rows > 0, matrix / np.where(rows > 0, rows, 1), np.nan)
        columns = np.nansum(row_normalised, axis=0)
        recall = np.diag(row_normalised).copy()
        precision = np.where(columns > 0, np.diag(row_normalised) / np.where(columns > 0, columns, 1), np.nan)
        precision[np.isnan(recall)] = np.nan
    return precision, recall


def f1_score(precision, recall):
    """``2PR/(P+R)`` elementwise (0 where both are 0, NaN where either is NaN)."""
    precision = np.asarray(precision, dtype=np.float64)
    recall = np.asarray(recall, dtype=np.float64)
    total = precision + recall
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)
    f1 = np.where(np.isnan(total), np.nan, f1)
    return f1 if f1.ndim else float(f1)


def _nanmean(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


# ---------------------------------------------------------------------------------------------
# precision-recall curves and thresholds


@dataclass(frozen=True)
class PrecisionRecallCurve:
    """Exact precision and recall of one label at every distinct threshold.

    A tap counts as the label when its probability is strictly above the threshold.
    ``thresholds`` ascend; points where nothing is above the threshold are left out.
    """

    label: str
    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    ntrue: int
    nfalse: int
    top: float = float("nan")  #: highest score of a true tap (at or above it nothing counts)

    @property
    def average_precision(self) -> float:
        """Area under the precision-recall curve (step interpolation), NaN without true taps."""
        if self.ntrue == 0 or self.recall.size == 0:
            return float("nan")
        # from the highest threshold down, recall grows; each step is weighted by the precision
        # at the threshold where recall first reaches its new value
        recall = np.concatenate([[0.0], self.recall[::-1]])
        return float(np.sum(np.diff(recall) * self.precision[::-1]))


def precision_recall_curve(scores_true: np.ndarray, scores_false: np.ndarray, *, label: str = ""
                           ) -> PrecisionRecallCurve:
    """The curve for probabilities of taps that are (``scores_true``) and are not
    (``scores_false``) the label; masked taps must be left out by the caller."""
    true = np.sort(np.asarray(scores_true, dtype=np.float64).ravel())
    false = np.sort(np.asarray(scores_false, dtype=np.float64).ravel())
    if true.size == 0:
        empty = np.zeros(0)
        return PrecisionRecallCurve(label, empty, empty, empty, 0, int(false.size))
    lowest = min(0.0, true[0], false[0] if false.size else 0.0)
    candidates = np.unique(np.concatenate([[lowest - 1e-12 if lowest < 0 else 0.0], true, false]))
    tp = true.size - np.searchsorted(true, candidates, side="right")
    fp = false.size - np.searchsorted(false, candidates, side="right")
    keep = tp > 0
    tp, fp, candidates = tp[keep], fp[keep], candidates[keep]
    return PrecisionRecallCurve(
        label=label, thresholds=candidates, precision=tp / (tp + fp), recall=tp / true.size,
        ntrue=int(true.size), nfalse=int(false.size), top=float(true[-1]),
    )


def threshold_at_ratio(curve: PrecisionRecallCurve, ratio: float) -> float:
    """The probability threshold at which precision / recall reaches ``ratio``.

    Going up from the lowest threshold (recall 1), the first threshold whose precision/recall
    is at least ``ratio``. If the ratio is met exactly over a range of thresholds (as when the
    validation scores of the label and of the rest are separated by a gap, where precision =
    recall = 1 for every threshold in the gap), the middle of that range; otherwise linear
    interpolation in the ratio between that threshold and the one before. NaN (with an
    :class:`AccuracyWarning`) when the label has no true taps. When the ratio is never reached
    (e.g. the top scores are tied between true and false taps) the lowest threshold with the
    highest ratio, with a warning.
    """
    if curve.ntrue == 0:
        warnings.warn(f"label {curve.label!r} has no true validation taps: its threshold is NaN "
                      f"(annotate more of it, or validate on more data)", AccuracyWarning, stacklevel=2)
        return float("nan")
    ratios = curve.precision / curve.recall
    reached = np.flatnonzero(ratios >= ratio)
    if reached.size == 0:
        closest = int(np.argmax(ratios))
        warnings.warn(f"label {curve.label!r}: precision/recall never reaches {ratio} on the validation taps "
                      f"(at most {ratios[closest]:.3g}, e.g. tied scores); using the threshold that comes "
                      f"closest, {curve.thresholds[closest]:.6g}", AccuracyWarning, stacklevel=2)
        return float(curve.thresholds[closest])
    i = int(reached[0])
    if math.isclose(ratios[i], ratio, rel_tol=1e-12):
        # the counts, hence the ratio, hold from thresholds[i] up to the next threshold at which
        # it differs (or up to the highest true score): take the middle of that range
        j = i
        while j + 1 < len(ratios) and math.isclose(ratios[j + 1], ratio, rel_tol=1e-12):
            j += 1
        upper = curve.thresholds[j + 1] if j + 1 < len(ratios) else curve.top
        return float((curve.thresholds[i] + upper) / 2)
    if i == 0:
        return float(curve.thresholds[0])
    r0, r1 = ratios[i - 1], ratios[i]
    t0, t1 = curve.thresholds[i - 1], curve.thresholds[i]
    fraction = (ratio - r0) / (r1 - r0) if r1 > r0 else 1.0
    return float(t0 + fraction * (t1 - t0))


def songexplorer_threshold(logits_true: np.ndarray, logits_false: np.ndarray, ratio: float, *,
                           nprobabilities: int = SONGEXPLORER_NPROBABILITIES, label: str = "") -> float:
    """SongExplorer's threshold for one label at precision/recall ``ratio`` (see the module
    docstring): the logistic of the raw logit, on a grid of ``nprobabilities`` logits from the
    lowest to the highest logit of the true taps, at which precision/recall = ``ratio``
    (linear interpolation, extrapolated). NaN with a warning when there are no true taps."""
    from scipy import interpolate  # noqa: PLC0415 (only needed here)

    true = np.asarray(logits_true, dtype=np.float64).ravel()
    false = np.asarray(logits_false, dtype=np.float64).ravel()
    if true.size == 0:
        warnings.warn(f"label {label!r} has no true validation taps: its threshold is NaN "
                      f"(annotate more of it, or validate on more data)", AccuracyWarning, stacklevel=2)
        return float("nan")
    grid = np.linspace(true.min(), true.max(), int(nprobabilities))
    if grid[0] == grid[-1]:  # one true logit: nothing to interpolate between
        return float(sigmoid(grid[0]))
    tp = true.size - np.searchsorted(np.sort(true), grid, side="left")
    fp = false.size - np.searchsorted(np.sort(false), grid, side="left")
    precision, recall = tp / (tp + fp), tp / true.size
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = interpolate.interp1d(precision / recall, sigmoid(grid), fill_value="extrapolate")
        return float(curve(float(ratio)))


def split_by_truth(results: ValidationResults, values: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per label, ``values[..., label]`` of the unmasked taps that are / are not that label."""
    split = {}
    for index, label in enumerate(results.labels):
        column = values[..., index]
        if results.loss == EXCLUSIVE:
            truth = results.groundtruth
            true, false = truth == index, (truth >= 0) & (truth != index)
        else:
            truth = results.groundtruth[..., index]
            true, false = truth == 1, truth == 0
        split[label] = (column[true], column[false])
    return split


def label_logits(results: ValidationResults) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per label, the raw logits of unmasked taps that are / are not that label."""
    return split_by_truth(results, results.logits)


def label_scores(results: ValidationResults) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per label, the probabilities of unmasked taps that are / are not that label."""
    return split_by_truth(results, probabilities_of(results))
