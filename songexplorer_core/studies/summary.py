"""A study's summary and comparison plots (SongExplorer's Compare PDFs, as PNGs), from the
trials' ``trial.json`` and ``history.csv`` files, so ``songexplorer compare STUDY`` can redraw
them at any time.

Repeats (``fold``, ``replicate``, ``withheld``) are what a mean and spread are taken over; the
other varied parameters (a sweep's, a learning curve's ``fraction``) are what is compared.

Files (each atomic):

* ``summary-trials.csv``: one row per trial: its varied parameters, ``f1_macro``, per label
  ``precision:<label>``, ``recall:<label>``, ``f1:<label>`` (fractions), ``train_seconds``.
* ``summary-labels.csv``: per compared setting and label, ``n`` trials and the mean and
  standard deviation (``ddof=1``; empty for one trial) of precision, recall and F1.
* ``summary-recordings.csv`` (generalize): per withheld recording (group) and label, the F1 of
  the trial that validated on it, with the validation annotations it held.
* ``compare-f1.png`` (F1 per label against the compared parameter, mean +- s.d.),
  ``compare-curves.png`` (every trial's training loss and validation accuracy overlaid),
  ``compare-confusion.png`` (a grid of the trials' row-normalised confusion matrices).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from songexplorer_core.atomic import atomic_write
from songexplorer_core.figures import new_figure, save_png

#: Varied parameters a study repeats over (mean and spread), not compares.
REPEATS = ("fold", "replicate", "withheld")
PLOTS = ("compare-f1.png", "compare-curves.png", "compare-confusion.png")


@dataclass
class StudySummary:
    """Tables of a study (see the module docstring) and the files written."""

    trials: pd.DataFrame
    labels: pd.DataFrame
    recordings: pd.DataFrame | None
    files: list[Path]

    def per_label_text(self) -> str:
        """``label: F1 mean +- sd (n)`` lines, one per compared setting and label."""
        lines = []
        for row in self.labels.itertuples(index=False):
            setting = getattr(row, "setting", "")
            spread = "" if pd.isna(row.f1_std) else f" +- {row.f1_std:.3f}"
            lines.append(f"{setting + ' ' if setting else ''}{row.label}: F1 {row.f1_mean:.3f}{spread} (n={row.n})")
        return "\n".join(lines)


def _compared(varied: dict) -> dict:
    return {k: v for k, v in varied.items() if k not in REPEATS}


def _setting_text(compared: dict) -> str:
    return ", ".join(f"{k.removeprefix('model.')}={v}" for k, v in compared.items())


def trials_table(results: Sequence[dict]) -> pd.DataFrame:
    rows = []
    for r in results:
        row = {"trial": r["name"], **{k: str(v) for k, v in r["varied"].items()},
               "setting": _setting_text(_compared(r["varied"])), "checkpoint": r["checkpoint"],
               "f1_macro": r["f1_macro"], "train_seconds": r["train_seconds"]}
        for i, label in enumerate(r["labels"]):
            for stat in ("precision", "recall", "f1"):
                row[f"{stat}:{label}"] = np.nan if r[stat][i] is None else r[stat][i]
        rows.append(row)
    return pd.DataFrame(rows)


def labels_table(results: Sequence[dict]) -> pd.DataFrame:
    rows = []
    settings: dict[str, list[dict]] = {}
    for r in results:
        settings.setdefault(_setting_text(_compared(r["varied"])), []).append(r)
    for setting, group in settings.items():
        for i, label in enumerate(group[0]["labels"]):
            row = {"setting": setting, "label": label, "n": len(group)}
            for stat in ("precision", "recall", "f1"):
                values = np.array([np.nan if g[stat][i] is None else g[stat][i] for g in group], dtype=float)
                finite = values[np.isfinite(values)]
                row[f"{stat}_mean"] = float(finite.mean()) if len(finite) else np.nan
                row[f"{stat}_std"] = float(finite.std(ddof=1)) if len(finite) > 1 else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def recordings_table(results: Sequence[dict]) -> pd.DataFrame | None:
    if not any(r.get("withheld") for r in results):
        return None
    rows = []
    for r in results:
        for i, label in enumerate(r["labels"]):
            rows.append({"setting": _setting_text(_compared(r["varied"])), "withheld": ",".join(r["withheld"]),
                         "annotations": sum(r["validation_recordings"].values()), "label": label,
                         "precision": r["precision"][i], "recall": r["recall"][i], "f1": r["f1"][i]})
    return pd.DataFrame(rows)


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False)
    return path


def summarize(study_dir: str | os.PathLike, results: Sequence[dict], *, plots: bool = True) -> StudySummary:
    """Write the summary tables and (``plots``) the comparison PNGs into ``study_dir``."""
    study_dir = Path(study_dir)
    trials, labels, recordings = trials_table(results), labels_table(results), recordings_table(results)
    files = [_write_csv(trials, study_dir / "summary-trials.csv"), _write_csv(labels, study_dir / "summary-labels.csv")]
    if recordings is not None:
        files.append(_write_csv(recordings, study_dir / "summary-recordings.csv"))
    if plots:
        files.append(save_png(plot_f1(results), study_dir / PLOTS[0]))
        files.append(save_png(plot_curves(results), study_dir / PLOTS[1]))
        files.append(save_png(plot_confusions(results), study_dir / PLOTS[2]))
    return StudySummary(trials=trials, labels=labels, recordings=recordings, files=files)


# ---------------------------------------------------------------------------------------------
# plots


def _x_axis(results: Sequence[dict]) -> tuple[str, list]:
    """The compared parameter (the first one), else the trial itself."""
    compared = [_compared(r["varied"]) for r in results]
    keys = [k for k in (compared[0] if compared else {})]
    if keys:
        return keys[0], [c.get(keys[0]) for c in compared]
    return "trial", [r["name"] for r in results]


def plot_f1(results: Sequence[dict]):
    """F1 per label (one line each) against the compared parameter: mean +- s.d. over repeats;
    the other compared parameters, if any, as separate panels."""
    name, xs = _x_axis(results)
    compared = [_compared(r["varied"]) for r in results]
    panels: dict[str, list[int]] = {}
    for i, c in enumerate(compared):
        rest = _setting_text({k: v for k, v in c.items() if k != name})
        panels.setdefault(rest, []).append(i)
    figure = new_figure(4.5 * len(panels), 3.6)
    axes = np.atleast_1d(figure.subplots(1, len(panels), squeeze=False)[0])
    labels = results[0]["labels"]
    for ax, (rest, indices) in zip(axes, panels.items()):
        order = list(dict.fromkeys(str(xs[i]) for i in indices))
        numeric = all(_is_number(x) for x in order)
        positions = [float(x) for x in order] if numeric else list(range(len(order)))
        for j, label in enumerate(labels):
            means, sds = [], []
            for x in order:
                values = np.array([np.nan if results[i]["f1"][j] is None else results[i]["f1"][j]
                                   for i in indices if str(xs[i]) == x], dtype=float)
                values = values[np.isfinite(values)]
                means.append(values.mean() if len(values) else np.nan)
                sds.append(values.std(ddof=1) if len(values) > 1 else 0.0)
            ax.errorbar(positions, means, yerr=sds, marker="o", capsize=3, label=label)
        if not numeric:
            ax.set_xticks(positions, order, rotation=30, ha="right", fontsize=7)
        elif len(positions) > 2 and min(positions) > 0 and max(positions) / min(positions) >= 20:
            ax.set_xscale("log")
        ax.set_xlabel(name.removeprefix("model."))
        ax.set_ylabel("validation F1")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(rest or "F1 per label", fontsize=9)
        ax.legend(fontsize=7)
    return figure


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def plot_curves(results: Sequence[dict]):
    """Every trial's training loss (log scale) and validation accuracy against step."""
    figure = new_figure(8, 6)
    top, bottom = figure.subplots(2, 1, sharex=True)
    for r in results:
        path = Path(r["model_dir"]) / "history.csv"
        if not path.is_file():
            continue
        history = pd.read_csv(path)
        top.plot(history["step"], history["train_loss"], lw=0.8, label=r["name"])
        validated = history.dropna(subset=["validation_accuracy"])
        bottom.plot(validated["step"], validated["validation_accuracy"], "o-", ms=3, label=r["name"])
    if top.lines:
        top.set_yscale("log")
    top.set_ylabel("training loss")
    bottom.set_ylabel("validation accuracy")
    bottom.set_xlabel("step")
    if len(results) <= 12:
        top.legend(fontsize=6)
    return figure


def plot_confusions(results: Sequence[dict]):
    """The trials' confusion matrices (rows: annotation, normalised; columns: classification)."""
    n = len(results)
    ncols = min(4, n)
    nrows = int(math.ceil(n / ncols))
    figure = new_figure(3.0 * ncols, 2.8 * nrows)
    axes = np.atleast_1d(figure.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, r in zip(axes, results):
        matrix = np.asarray(r["confusion"], dtype=float)
        labels = r["labels"]
        if matrix.ndim == 2 and matrix.shape[0] == len(labels):
            sums = matrix.sum(axis=1, keepdims=True)
            normalised = np.divide(matrix, sums, out=np.zeros_like(matrix), where=sums > 0)
            ax.imshow(normalised, vmin=0, vmax=1, cmap="viridis")
            for (i, j), value in np.ndenumerate(normalised):
                ax.text(j, i, f"{100 * value:.0f}", ha="center", va="center", fontsize=7,
                        color="w" if value < 0.5 else "k")
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=6)
            ax.set_yticks(range(len(labels)), labels, fontsize=6)
        else:  # overlapped: one 2x2 matrix per label; show the per-label F1 instead
            ax.bar(range(len(labels)), [0 if f is None else f for f in r["f1"]])
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=6)
            ax.set_ylim(0, 1)
        ax.set_title(r["name"], fontsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    return figure
