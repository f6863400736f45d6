"""Accuracy of a trained model on its validation set, per checkpoint (SongExplorer §5).

Input: a training output folder holding, per checkpoint ``N``, ``validation.ckpt-<N>.npz``
(``logits`` ``[n, P, nlabels]`` raw network outputs, ``groundtruth`` ``[n, P]`` class index or
-1 = masked for the exclusive loss, or ``[n, P, nlabels]`` with 0/1/2 = absent/present/unknown
for the overlapped loss, ``labels``), plus ``history.csv``. SongExplorer's own
``logits.validation.ckpt-<N>.npz`` files are read too (labels then come from ``labels.txt``).

Statistics (all fractions in [0, 1], not percent):

* Confusion matrix: rows = annotation (truth), columns = classification (argmax of the logits),
  counting unmasked output taps. Overlapped: one 2x2 matrix per label, ``[[TP, FN], [FP, TN]]``
  (index 0 = present), a tap classified present when its sigmoid probability exceeds 0.5.
* Per-label precision and recall are SongExplorer's class-balanced ones (§5.2): recall from the
  row-normalised matrix, precision from the column-normalisation *of the row-normalised*
  matrix, so a label's precision does not depend on how many validation taps the other labels
  have. Overall P and R are the means over labels (NaNs skipped), F1 = 2PR/(P+R). Overlapped:
  per-label values come from each label's 2x2 matrix, overall values from their sum (as
  SongExplorer chooses the best checkpoint).
* The kept checkpoint (``AccuracyReport.best``) is by default the **last** validated one, as
  SongExplorer's tutorial freezes ``ckpt-<nsteps>``; ``choose="best-f1"`` keeps the one with the
  highest overall F1 instead (ties to the lowest validation loss in ``history.csv``, else the
  earliest). On real song the last one generalises better: sparse validation F1 jumps around
  between checkpoints (0.91-1.0 on the tutorial data) and picking its maximum picked an earlier,
  less trained network that predicted 25 % more pulses on an unseen recording (docs/recipe.md).
  Per-label figures are reported for the kept checkpoint (SongExplorer printed the last one's).
* Thresholds, for each requested precision/recall ratio, by default **SongExplorer's way**
  (``threshold_method="songexplorer"``, its ``src/lib.py``
  ``calculate_precision_recall_specificity``): 20 raw logits evenly from the lowest to the
  highest logit of the label's true validation taps, precision and recall counting taps at or
  above each, and the threshold is the logistic of the logit at which precision/recall equals
  the ratio, interpolated linearly (extrapolated beyond the grid). For an exclusive model the
  logistic of a softmax logit is not the softmax probability the ethogram compares it with
  (SongExplorer's QUIRK 10), but it is what SongExplorer's thresholds are, and on real song they
  are far better than thresholds set on the probabilities themselves (on SongExplorer's
  round-2 recording 645 predicted pulses against its own 589 with precision 0.91, instead of
  1 052 with precision 0.56; docs/recipe.md). Kept from our earlier fix: masked taps count
  neither as positives nor negatives, and a label without true validation taps gets NaN and a
  warning instead of a crash. ``threshold_method="exact"`` gives thresholds on the
  probabilities themselves over every distinct score (:func:`threshold_at_ratio`).
  A tap counts as the label when its probability is strictly above the threshold, as in
  ethogram; precision here is the plain TP/(TP+FP) on the validation taps.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from songexplorer_core.atomic import atomic_write
from songexplorer_core.figures import new_figure, save_png
from songexplorer_core.ethogram import format_ratio, thresholds_csv_name, write_thresholds_csv

EXCLUSIVE = "exclusive"
OVERLAPPED = "overlapped"

#: ``validation.ckpt-<N>.npz`` (this project) or ``logits.validation.ckpt-<N>.npz`` (SongExplorer).
VALIDATION_NPZ = re.compile(r"^(?:logits\.)?validation\.ckpt-(?P<step>\d+)\.npz$")

PLOTS = ("all", "best", "none")
#: How thresholds are computed: SongExplorer's logit grid (default) or exactly on the probabilities.
THRESHOLD_METHODS = ("songexplorer", "exact")
#: Which checkpoint a training run keeps: the last validated one (default) or the highest F1.
CHECKPOINT_CHOICES = ("last", "best-f1")
#: SongExplorer's ``nprobabilities`` (configuration.py): points of its threshold grid.
SONGEXPLORER_NPROBABILITIES = 20


class AccuracyError(ValueError):
    """Validation results cannot be evaluated; the message names the file and the fix."""


class AccuracyWarning(UserWarning):
    """A statistic is undefined (NaN) for a reason the user should know."""


# ---------------------------------------------------------------------------------------------
# loading


@dataclass(frozen=True)
class ValidationResults:
    """One checkpoint's validation outputs.

    Attributes:
        logits: float32 ``[n, P, nlabels]`` raw network outputs.
        groundtruth: int ``[n, P]`` (exclusive; -1 = masked) or ``[n, P, nlabels]`` (overlapped;
            0 absent, 1 present, 2 unknown).
    """

    path: Path
    checkpoint: int
    labels: tuple[str, ...]
    loss: str
    logits: np.ndarray
    groundtruth: np.ndarray


def checkpoint_of(path: str | os.PathLike) -> int:
    """The step ``N`` of ``validation.ckpt-<N>.npz``."""
    match = VALIDATION_NPZ.match(Path(path).name)
    if not match:
        raise AccuracyError(f"{path}: not a validation results file (expected validation.ckpt-<N>.npz)")
    return int(match.group("step"))


def find_validation_files(train_dir: str | os.PathLike) -> list[Path]:
    """``validation.ckpt-<N>.npz`` files of a training folder, by step (SongExplorer's
    ``logits.`` names are used when no file of this project's name exists for that step)."""
    by_step: dict[int, Path] = {}
    for path in sorted(Path(train_dir).iterdir()) if Path(train_dir).is_dir() else []:
        match = VALIDATION_NPZ.match(path.name)
        if match:
            step = int(match.group("step"))
            if step not in by_step or not path.name.startswith("logits."):
                by_step[step] = path
    return [by_step[step] for step in sorted(by_step)]


def load_validation(npz_path: str | os.PathLike) -> ValidationResults:
    """Read and check one ``validation.ckpt-<N>.npz``.

    Raises:
        AccuracyError: naming the file, for missing arrays, inconsistent shapes or ground-truth
            values out of range.
    """
    path = Path(npz_path)
    step = checkpoint_of(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "logits" not in npz or "groundtruth" not in npz:
                raise AccuracyError(f"{path}: lacks 'logits' or 'groundtruth'; it is not a validation results file")
            logits = np.asarray(npz["logits"], dtype=np.float32)
            groundtruth = np.asarray(npz["groundtruth"])
            labels = [str(x) for x in npz["labels"]] if "labels" in npz else None
    except (OSError, ValueError) as error:
        if isinstance(error, AccuracyError):
            raise
        raise AccuracyError(f"{path}: cannot be read as a validation results file ({error})") from error
    if labels is None:
        labels_txt = path.parent / "labels.txt"
        if not labels_txt.exists():
            raise AccuracyError(f"{path}: has no 'labels' array and there is no {labels_txt}")
        labels = labels_txt.read_text(encoding="utf-8").splitlines()
        labels = [x for x in labels if x]
    if logits.ndim != 3 or logits.shape[2] != len(labels):
        raise AccuracyError(f"{path}: logits must be [n, P, {len(labels)}] for labels {labels}, got {logits.shape}")
    if groundtruth.shape == logits.shape[:2]:
        loss = EXCLUSIVE
        groundtruth = np.rint(groundtruth).astype(np.int64)
        bad = (groundtruth < -1) | (groundtruth >= len(labels))
        if bad.any():
            raise AccuracyError(f"{path}: groundtruth holds {np.unique(groundtruth[bad]).tolist()}; exclusive "
                                f"ground truth must be a label index 0..{len(labels) - 1} or -1 (masked)")
    elif groundtruth.shape == logits.shape:
        loss = OVERLAPPED
        groundtruth = np.rint(groundtruth).astype(np.int8)
        bad = ~np.isin(groundtruth, (0, 1, 2))
        if bad.any():
            raise AccuracyError(f"{path}: overlapped groundtruth must be 0 (absent), 1 (present) or 2 (unknown); "
                                f"found {np.unique(groundtruth[bad]).tolist()}")
    else:
        raise AccuracyError(f"{path}: groundtruth shape {groundtruth.shape} matches neither {logits.shape[:2]} "
                            f"(exclusive) nor {logits.shape} (overlapped)")
    return ValidationResults(path=path, checkpoint=step, labels=tuple(labels), loss=loss, logits=logits,
                             groundtruth=groundtruth)


# ---------------------------------------------------------------------------------------------
# confusion matrices and their statistics


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
    """SongExplorer's per-class precision and recall of a square count matrix (§5.2).

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


def label_logits(results: ValidationResults) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per label, the raw logits of unmasked taps that are / are not that label."""
    scores = {}
    for index, label in enumerate(results.labels):
        column = results.logits[..., index]
        if results.loss == EXCLUSIVE:
            truth = results.groundtruth
            true, false = truth == index, (truth >= 0) & (truth != index)
        else:
            truth = results.groundtruth[..., index]
            true, false = truth == 1, truth == 0
        scores[label] = (column[true], column[false])
    return scores


def label_scores(results: ValidationResults) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per label, the probabilities of unmasked taps that are / are not that label."""
    probabilities = probabilities_of(results)
    scores = {}
    for index, label in enumerate(results.labels):
        column = probabilities[..., index]
        if results.loss == EXCLUSIVE:
            truth = results.groundtruth
            true, false = truth == index, (truth >= 0) & (truth != index)
        else:
            truth = results.groundtruth[..., index]
            true, false = truth == 1, truth == 0
        scores[label] = (column[true], column[false])
    return scores


# ---------------------------------------------------------------------------------------------
# per checkpoint and per training run


@dataclass(frozen=True)
class CheckpointAccuracy:
    """Accuracy of one checkpoint on the validation set.

    Attributes:
        confusion: see :func:`confusion_matrix`.
        precision, recall, f1: per label (class-balanced, fractions).
        overall_precision, overall_recall, overall_f1: SongExplorer's model-level figures.
        ntrue: unmasked validation taps per label.
        curves: exact precision-recall curve per label.
        thresholds: ``{ratio: {label: probability threshold}}``.
    """

    path: Path
    checkpoint: int
    labels: tuple[str, ...]
    loss: str
    confusion: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    overall_precision: float
    overall_recall: float
    overall_f1: float
    ntrue: np.ndarray
    curves: dict[str, PrecisionRecallCurve]
    thresholds: dict[float, dict[str, float]]

    def label_table(self) -> pd.DataFrame:
        """One row per label: taps, precision, recall, F1 and a threshold column per ratio."""
        table = pd.DataFrame({
            "label": list(self.labels), "taps": self.ntrue.astype(np.int64),
            "precision": self.precision, "recall": self.recall, "f1": self.f1,
            "average_precision": [self.curves[x].average_precision for x in self.labels],
        })
        for ratio, thresholds in self.thresholds.items():
            table[f"threshold_{format_ratio(ratio)}pr"] = [thresholds[x] for x in self.labels]
        return table


def evaluate_results(results: ValidationResults, *, ratios: Sequence[float] = (1.0,),
                     threshold_method: str = "songexplorer") -> CheckpointAccuracy:
    """Statistics and thresholds of loaded validation results (see the module docstring).

    Args:
        threshold_method: ``"songexplorer"`` (default) or ``"exact"`` (:data:`THRESHOLD_METHODS`).
    """
    if threshold_method not in THRESHOLD_METHODS:
        raise AccuracyError(f"threshold_method must be one of {THRESHOLD_METHODS}, not {threshold_method!r}")
    labels = results.labels
    matrix = confusion_matrix(results.groundtruth, results.logits, loss=results.loss)
    if results.loss == EXCLUSIVE:
        precision, recall = balanced_precision_recall(matrix)
        overall_p, overall_r = _nanmean(precision), _nanmean(recall)
        ntrue = matrix.sum(axis=1)
    else:
        pairs = [balanced_precision_recall(m) for m in matrix]
        precision = np.array([p[0] for p, _ in pairs])
        recall = np.array([r[0] for _, r in pairs])
        summed_p, summed_r = balanced_precision_recall(matrix.sum(axis=0))
        overall_p, overall_r = _nanmean(summed_p), _nanmean(summed_r)
        ntrue = matrix[:, 0, :].sum(axis=1)
    empty = [label for label, n in zip(labels, ntrue) if n == 0]
    if empty:
        warnings.warn(f"{results.path}: no validation taps of {empty}: their precision, recall and thresholds "
                      f"are NaN. Annotate more of them or raise the validation percentage.", AccuracyWarning,
                      stacklevel=2)
    curves = {label: precision_recall_curve(true, false, label=label)
              for label, (true, false) in label_scores(results).items()}
    logits = label_logits(results) if threshold_method == "songexplorer" else {}
    thresholds: dict[float, dict[str, float]] = {}
    for ratio in ratios:
        table = {}
        for label in labels:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", AccuracyWarning)
                if threshold_method == "songexplorer":
                    table[label] = songexplorer_threshold(*logits[label], float(ratio), label=label)
                else:
                    table[label] = threshold_at_ratio(curves[label], float(ratio))
            for warning in caught:
                if curves[label].ntrue:  # labels without taps were reported above
                    warnings.warn(f"{results.path}: {warning.message}", AccuracyWarning, stacklevel=2)
        thresholds[float(ratio)] = table
    return CheckpointAccuracy(
        path=results.path, checkpoint=results.checkpoint, labels=labels, loss=results.loss, confusion=matrix,
        precision=precision, recall=recall, f1=np.asarray(f1_score(precision, recall), dtype=np.float64),
        overall_precision=overall_p, overall_recall=overall_r, overall_f1=float(f1_score(overall_p, overall_r)),
        ntrue=np.asarray(ntrue, dtype=np.int64), curves=curves, thresholds=thresholds,
    )


def evaluate_checkpoint(npz_path: str | os.PathLike, *, ratios: Sequence[float] = (1.0,),
                        threshold_method: str = "songexplorer") -> CheckpointAccuracy:
    """Accuracy and thresholds of one ``validation.ckpt-<N>.npz``."""
    return evaluate_results(load_validation(npz_path), ratios=ratios, threshold_method=threshold_method)


def best_checkpoint(checkpoints: Sequence[CheckpointAccuracy],
                    validation_loss: Mapping[int, float] | None = None) -> CheckpointAccuracy:
    """The checkpoint with the highest overall F1; NaN F1s never win (``choose="best-f1"``).

    Ties (common: sparse validation annotations are often all right long before training is
    done) go to the lowest validation loss when ``validation_loss`` (``{step: loss}``, e.g. from
    ``history.csv``) knows it, else to the earliest checkpoint."""
    def loss_of(c) -> float:
        value = (validation_loss or {}).get(int(c.checkpoint), math.nan)
        return float(value) if value is not None and math.isfinite(float(value)) else math.inf

    defined = [c for c in checkpoints if not math.isnan(c.overall_f1)]
    if not defined:
        if not checkpoints:
            raise AccuracyError("no checkpoints to choose from")
        warnings.warn("no checkpoint has a defined F1; reporting the first", AccuracyWarning, stacklevel=2)
        return min(checkpoints, key=lambda c: c.checkpoint)
    top = max(c.overall_f1 for c in defined)
    tied = [c for c in defined if c.overall_f1 == top]
    return min(tied, key=lambda c: (loss_of(c), c.checkpoint))


def choose_checkpoint(checkpoints: Sequence[CheckpointAccuracy], choose: str = "last",
                      validation_loss: Mapping[int, float] | None = None) -> CheckpointAccuracy:
    """The checkpoint a training run keeps: the last validated one (``"last"``, SongExplorer's
    tutorial) or :func:`best_checkpoint` (``"best-f1"``)."""
    if choose not in CHECKPOINT_CHOICES:
        raise AccuracyError(f"choose must be one of {CHECKPOINT_CHOICES}, not {choose!r}")
    if not checkpoints:
        raise AccuracyError("no checkpoints to choose from")
    if choose == "last":
        return max(checkpoints, key=lambda c: c.checkpoint)
    return best_checkpoint(checkpoints, validation_loss)


@dataclass(frozen=True)
class AccuracyReport:
    """Accuracy of every checkpoint of one training run; ``best`` is the checkpoint kept
    (:func:`choose_checkpoint`: the last one unless asked for the highest F1)."""

    train_dir: Path
    labels: tuple[str, ...]
    loss: str
    ratios: tuple[float, ...]
    checkpoints: tuple[CheckpointAccuracy, ...]
    best: CheckpointAccuracy
    history: pd.DataFrame | None = field(default=None)

    def checkpoint_table(self) -> pd.DataFrame:
        """One row per checkpoint: overall precision, recall, F1, then per-label columns
        ``precision:<label>``, ``recall:<label>``, ``f1:<label>``."""
        rows = []
        for c in self.checkpoints:
            row = {"checkpoint": c.checkpoint, "precision": c.overall_precision, "recall": c.overall_recall,
                   "f1": c.overall_f1, "best": c.checkpoint == self.best.checkpoint}
            for i, label in enumerate(self.labels):
                row[f"precision:{label}"] = c.precision[i]
                row[f"recall:{label}"] = c.recall[i]
                row[f"f1:{label}"] = c.f1[i]
            rows.append(row)
        return pd.DataFrame(rows)

    def label_table(self) -> pd.DataFrame:
        """Per label figures and thresholds of the best checkpoint."""
        return self.best.label_table()

    def summary(self) -> dict:
        """JSON-ready summary: best checkpoint, its overall and per-label figures, thresholds."""
        best = self.best

        def clean(x):
            x = float(x)
            return None if math.isnan(x) else x

        return {
            "train_dir": str(self.train_dir), "loss": self.loss, "labels": list(self.labels),
            "checkpoints": [c.checkpoint for c in self.checkpoints], "best_checkpoint": best.checkpoint,
            "precision": clean(best.overall_precision), "recall": clean(best.overall_recall),
            "f1": clean(best.overall_f1),
            "per_label": {label: {"taps": int(best.ntrue[i]), "precision": clean(best.precision[i]),
                                  "recall": clean(best.recall[i]), "f1": clean(best.f1[i])}
                          for i, label in enumerate(self.labels)},
            "thresholds": {format_ratio(r): {k: clean(v) for k, v in t.items()} for r, t in best.thresholds.items()},
        }


def accuracy_report(train_dir: str | os.PathLike, ratios: Sequence[float] = (1.0,), *,
                    progress: Callable[[int, int], None] | None = None, choose: str = "last",
                    threshold_method: str = "songexplorer") -> AccuracyReport:
    """Evaluate every ``validation.ckpt-<N>.npz`` of a training folder.

    Args:
        train_dir: the training output folder.
        ratios: precision/recall ratios to compute thresholds for (SongExplorer's ``P/R``;
            1.0 = equal precision and recall, larger favours precision).
        choose: which checkpoint is kept as :attr:`AccuracyReport.best`: ``"last"`` (default)
            or ``"best-f1"`` (:func:`choose_checkpoint`).
        threshold_method: ``"songexplorer"`` (default) or ``"exact"`` (see the module docstring).
        progress: called with ``(done, total)`` after each checkpoint.
    """
    train_dir = Path(train_dir)
    files = find_validation_files(train_dir)
    if not files:
        raise AccuracyError(f"{train_dir}: no validation.ckpt-<N>.npz files. Train with a validation "
                            f"percentage above 0 so that checkpoints are validated.")
    ratios = tuple(float(r) for r in ratios)
    if not ratios or any(not (r > 0 and math.isfinite(r)) for r in ratios):
        raise AccuracyError(f"precision/recall ratios must be positive numbers, got {list(ratios)}")
    checkpoints = []
    for done, path in enumerate(files, start=1):
        checkpoints.append(evaluate_checkpoint(path, ratios=ratios, threshold_method=threshold_method))
        if progress is not None:
            progress(done, len(files))
    labels = {c.labels for c in checkpoints}
    losses = {c.loss for c in checkpoints}
    if len(labels) > 1 or len(losses) > 1:
        raise AccuracyError(f"{train_dir}: checkpoints disagree on labels {sorted(labels)} or loss {sorted(losses)}; "
                            f"one folder must hold one training run")
    history, validation_loss = None, None
    history_path = train_dir / "history.csv"
    if history_path.exists():
        history = pd.read_csv(history_path)
        if {"step", "validation_loss"} <= set(history.columns):
            validated = history.dropna(subset=["validation_loss"])
            validation_loss = dict(zip(validated["step"].astype(int), validated["validation_loss"].astype(float)))
    return AccuracyReport(train_dir=train_dir, labels=checkpoints[0].labels, loss=checkpoints[0].loss,
                          ratios=ratios, checkpoints=tuple(checkpoints),
                          best=choose_checkpoint(checkpoints, choose, validation_loss), history=history)


# ---------------------------------------------------------------------------------------------
# outputs


def write_accuracy_outputs(report: AccuracyReport, out_dir: str | os.PathLike | None = None, *,
                           plots: str = "all") -> list[Path]:
    """Write thresholds, tables and plots, each atomically.

    Per checkpoint ``N``: ``thresholds.ckpt-N.csv`` (SongExplorer's HEAD format, thresholds at
    the first ratio, normally 1.0) and ``thresholds-<ratio>pr.ckpt-N.csv`` for every ratio;
    with ``plots="all"`` also ``confusion-matrix.ckpt-N.png`` and ``precision-recall.ckpt-N.png``.
    For the run: ``accuracy.csv`` (per checkpoint), ``accuracy-labels.csv`` (per label, best
    checkpoint), ``accuracy.json`` (summary), and unless ``plots="none"``
    ``confusion-matrix.png`` / ``precision-recall.png`` (best checkpoint) and
    ``train-validation-loss.png``.

    Args:
        out_dir: default the training folder.
        plots: ``"all"``, ``"best"`` or ``"none"``.

    Returns:
        The paths written.
    """
    if plots not in PLOTS:
        raise ValueError(f"plots must be one of {PLOTS}, not {plots!r}")
    out_dir = Path(report.train_dir if out_dir is None else out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for c in report.checkpoints:
        first = c.thresholds[report.ratios[0]]
        written.append(write_thresholds_csv({x: first[x] for x in c.labels}, out_dir / thresholds_csv_name(c.checkpoint)))
        for ratio in report.ratios:
            table = c.thresholds[ratio]
            written.append(write_thresholds_csv({x: table[x] for x in c.labels},
                                                out_dir / thresholds_csv_name(c.checkpoint, ratio)))
    written.append(_write_csv(report.checkpoint_table(), out_dir / "accuracy.csv"))
    written.append(_write_csv(report.label_table(), out_dir / "accuracy-labels.csv"))
    with atomic_write(out_dir / "accuracy.json", "w", encoding="utf-8") as handle:
        json.dump(report.summary(), handle, indent=2)
    written.append(out_dir / "accuracy.json")
    if plots == "none":
        return written
    for c in report.checkpoints if plots == "all" else ():
        written.append(save_png(plot_confusion_matrix(c), out_dir / f"confusion-matrix.ckpt-{c.checkpoint}.png"))
        written.append(save_png(plot_precision_recall(c), out_dir / f"precision-recall.ckpt-{c.checkpoint}.png"))
    written.append(save_png(plot_confusion_matrix(report.best), out_dir / "confusion-matrix.png"))
    written.append(save_png(plot_precision_recall(report.best), out_dir / "precision-recall.png"))
    written.append(save_png(plot_training(report), out_dir / "train-validation-loss.png"))
    return written


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False)
    return path


def plot_confusion_matrix(c: CheckpointAccuracy):
    """Confusion matrix figure: colour = row-normalised (recall), text = count, recall and
    precision; overlapped: one 2x2 panel per label."""
    labels = list(c.labels)
    if c.loss == EXCLUSIVE:
        matrices, titles, ticks = [c.confusion], [""], [labels]
    else:
        matrices, titles, ticks = list(c.confusion), labels, [["present", "absent"]] * len(labels)
    n = len(matrices)
    size = 1.2 + 0.9 * len(ticks[0])
    figure = new_figure(size * n + 0.6, size + 0.8)
    axes = figure.subplots(1, n, squeeze=False)[0]
    for ax, matrix, title, names in zip(axes, matrices, titles, ticks):
        matrix = np.asarray(matrix, dtype=np.float64)
        rows = matrix.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            rn = np.where(rows > 0, matrix / np.where(rows > 0, rows, 1), np.nan)
        precision, recall = balanced_precision_recall(matrix)
        ax.imshow(np.nan_to_num(rn), vmin=0, vmax=1, cmap="viridis")
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                text = f"{int(matrix[i, j])}"
                if i == j:
                    text += f"\nR {_pct(recall[i])}\nP {_pct(precision[i])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="black" if np.nan_to_num(rn[i, j]) > 0.6 else "white")
        ax.set_xticks(range(len(names)), names, rotation=40, ha="right")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("classification")
        ax.set_ylabel("annotation")
        if title:
            ax.set_title(title)
    figure.suptitle(f"ckpt-{c.checkpoint}: P={_pct(c.overall_precision)} R={_pct(c.overall_recall)} "
                    f"F1={_pct(c.overall_f1)}")
    return figure


def plot_precision_recall(c: CheckpointAccuracy):
    """Precision against recall per label, with the thresholds of each ratio marked."""
    labels = list(c.labels)
    ncols = min(4, len(labels))
    nrows = -(-len(labels) // ncols)
    figure = new_figure(3.2 * ncols, 3.0 * nrows)
    axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, label in zip(axes, labels):
        curve = c.curves[label]
        if curve.ntrue:
            ax.plot(curve.recall, curve.precision, color="tab:blue", lw=1.2)
            for ratio, thresholds in c.thresholds.items():
                t = thresholds[label]
                if not math.isnan(t):
                    i = min(np.searchsorted(curve.thresholds, t, side="right") - 1, len(curve.thresholds) - 1)
                    i = max(i, 0)
                    ax.plot(curve.recall[i], curve.precision[i], "o", color="tab:red")
                    ax.annotate(f"P/R {format_ratio(ratio)}: {t:.3g}", (curve.recall[i], curve.precision[i]),
                                textcoords="offset points", xytext=(-5, -12), ha="right", fontsize=7)
        else:
            ax.text(0.5, 0.5, "no validation taps", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"{label} (AP {_pct(curve.average_precision)}, {curve.ntrue} taps)", fontsize=9)
    for ax in axes[len(labels):]:
        ax.set_visible(False)
    figure.suptitle(f"ckpt-{c.checkpoint}")
    return figure


def plot_training(report: AccuracyReport):
    """Training curves: every ``*loss*`` column of history.csv (log scale) and every
    ``*acc*`` column, against step; validation P, R and F1 per checkpoint."""
    figure = new_figure(8, 6)
    top, bottom = figure.subplots(2, 1, sharex=True)
    history = report.history
    if history is not None and len(history):
        x = history["step"] if "step" in history else pd.Series(np.arange(len(history)))
        for name in history.columns:
            values = pd.to_numeric(history[name], errors="coerce")
            if name == "step" or values.isna().all():
                continue
            if "loss" in name.lower() or "entropy" in name.lower():
                top.plot(x[values.notna()], values.dropna(), label=name)
            elif "acc" in name.lower():
                if values.max() > 1.0:  # SongExplorer logs accuracy in percent
                    values = values / 100
                bottom.plot(x[values.notna()], values.dropna(), label=name, alpha=0.6)
        if top.lines:
            top.set_yscale("log")
            top.legend(fontsize=8)
    top.set_ylabel("loss")
    table = report.checkpoint_table()
    for name in ("precision", "recall", "f1"):
        bottom.plot(table["checkpoint"], table[name], "o-", label=f"validation {name}")
    bottom.axvline(report.best.checkpoint, color="k", ls=":", label=f"best ckpt-{report.best.checkpoint}")
    bottom.set_xlabel("step")
    bottom.set_ylabel("fraction")
    bottom.legend(fontsize=8)
    figure.suptitle(str(report.train_dir.name))
    return figure


def _pct(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.1f}%"


def model_folders(logdir: str | os.PathLike) -> list[Path]:
    """Training folders under ``logdir``: ``logdir`` itself if it holds validation files,
    otherwise its subfolders that do (SongExplorer's ``train_1r``, ``xvalidate_1k``...)."""
    logdir = Path(logdir)
    if find_validation_files(logdir):
        return [logdir]
    return [p for p in sorted(logdir.iterdir()) if p.is_dir() and find_validation_files(p)] \
        if logdir.is_dir() else []


def iter_ratios(text: str | Iterable[float]) -> tuple[float, ...]:
    """Parse ``"1.0,2"`` (SongExplorer's comma list) into ratios."""
    if isinstance(text, str):
        try:
            return tuple(float(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise AccuracyError(f"precision/recall ratios must be comma-separated numbers, got {text!r}") from None
    return tuple(float(x) for x in text)
