"""The accuracy outputs: per-checkpoint CSVs, thresholds files and plots, written atomically."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from songexplorer_core.accuracy.report import AccuracyReport, CheckpointAccuracy
from songexplorer_core.accuracy.statistics import balanced_precision_recall
from songexplorer_core.accuracy.validation import EXCLUSIVE
from songexplorer_core.atomic import atomic_write
from songexplorer_core.ethogram import format_ratio, thresholds_csv_name, write_thresholds_csv
from songexplorer_core.figures import new_figure, save_png


#: Which checkpoints get plots: every one, the best, or none.
PLOTS = ("all", "best", "none")


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
