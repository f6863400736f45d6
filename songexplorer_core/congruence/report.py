"""Congruence files and plots: SongExplorer's ``congruence.<measure>.<label>.csv`` tables,
disjoint-set CSVs, counts and scores, dense-thresholds files, and the figures (atomically)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from songexplorer_core.annotations import empty_intervals, write_intervals_csv
from songexplorer_core.atomic import atomic_write
from songexplorer_core.congruence.results import Congruence
from songexplorer_core.congruence.sweep import CongruenceSweep
from songexplorer_core.congruence.terms import EVERYONE, SONGEXPLORER_REFERENCE, CongruenceError
from songexplorer_core.figures import new_figure, save_png
from songexplorer_core.labels import child_path


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
            written.append(_write_table(table, child_path(folder, f"congruence.{measure}.{label}.csv"), index=True))
            if not plots:
                continue
            if sweep is not None:
                figure = plot_sweep(sweep, measure, label, dense_threshold=dense[measure].get(label),
                                    sparse_threshold=(sparse_thresholds or {}).get(label))
                written.append(save_png(figure, child_path(folder, f"congruence.{measure}.{label}.png")))
            if ethogram is not None:
                written.append(save_png(plot_counts(ethogram, measure, label),
                                         child_path(folder, f"congruence.{measure}.{label}.counts.png")))
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
