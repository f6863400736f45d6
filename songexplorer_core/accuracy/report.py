"""Accuracy per checkpoint, the checkpoint a training run keeps, and the report of a whole run."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from songexplorer_core.accuracy.statistics import (
    PrecisionRecallCurve, balanced_precision_recall, confusion_matrix, f1_score, label_logits, label_scores,
    _nanmean, precision_recall_curve, songexplorer_threshold, threshold_at_ratio,
)
from songexplorer_core.accuracy.validation import (
    EXCLUSIVE, AccuracyError, AccuracyWarning, ValidationResults, find_validation_files, load_validation,
)
from songexplorer_core.ethogram import format_ratio
from songexplorer_core.warnings_summary import collapsed_warnings


#: How thresholds are computed: SongExplorer's logit grid (default) or exactly on the probabilities.
THRESHOLD_METHODS = ("songexplorer", "exact")
#: Which checkpoint a training run keeps: the last validated one (default) or the highest F1.
CHECKPOINT_CHOICES = ("last", "best-f1")


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
    # one warning per kind, with a count, instead of one per checkpoint and label
    with collapsed_warnings("checkpoints and labels"):
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
