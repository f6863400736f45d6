"""Song summaries: what the labelled intervals say about the singing, per recording and label.

SongExplorer stops at the ethogram; a lab then counts. For any interval table (predictions,
dense annotations) and each recording and label:

* **events**: number of intervals, and **events per minute** of recording;
* **coverage**: fraction of the recording's time inside an interval of the label (overlapping
  intervals counted once);
* **bouts**: events grouped by time: an event joins the current bout when its start is at most
  ``max_gap_s`` seconds after the bout's furthest stop (``(start - stop) / rate``); bout
  duration is ``(last stop - first start + 1) / rate`` seconds;
* **inter-pulse intervals** (IPI), for pulse labels (by default every label whose name contains
  "pulse"): time between the centres (``(start + stop) / 2``) of consecutive pulses, seconds,
  kept when at most ``max_ipi_s`` (longer gaps are between trains, not inside them).

All times are seconds, tics are 0-based and inclusive, rates in Hz. The computation is vectorised
over all recordings and labels at once (one sort, running maxima, ``bincount``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from songexplorer_core.annotations import intervals_frame, validate_intervals, write_intervals_csv
from songexplorer_core.atomic import atomic_write
from songexplorer_core.figures import save_png

BOUT = "bout"
SUMMARY_COLUMNS = (
    "recording", "label", "duration_s", "events", "events_per_min", "coverage", "bouts", "bouts_per_min",
    "bout_mean_s", "bout_median_s", "bout_max_s", "ipi_n", "ipi_mean_s", "ipi_median_s", "ipi_sd_s",
)


class SummaryError(ValueError):
    """Summaries cannot be computed from this input; the message names what is wrong and the fix."""


def default_pulse_labels(labels: Sequence[str]) -> list[str]:
    """Labels whose name contains "pulse" (``mel-pulse``, ``pulse``...)."""
    return [label for label in labels if "pulse" in str(label).lower()]


def _check_positive(name: str, value: float) -> float:
    if not np.isfinite(value) or value < 0:
        raise SummaryError(f"{name} must be a non-negative number of seconds, got {value!r}")
    return float(value)


def _sorted_groups(intervals: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows sorted by recording, label, start; and each row's group number (0, 1, ...)."""
    frame = intervals.sort_values(["wav", "label", "start", "stop"], kind="stable").reset_index(drop=True)
    keys = frame["wav"].astype(str) + "\0" + frame["label"].astype(str)
    group = np.cumsum(np.append(True, keys.to_numpy()[1:] != keys.to_numpy()[:-1])) - 1 if len(frame) else \
        np.empty(0, np.int64)
    return frame, group.astype(np.int64)


def _running_reach(stop: np.ndarray, group: np.ndarray) -> np.ndarray:
    """The furthest stop so far within each group (rows sorted by group): one accumulate over
    ``group * big + stop``, whose maximum can never come from an earlier group."""
    if stop.size == 0:
        return stop
    big = int(stop.max()) + 1
    return np.maximum.accumulate(group * big + stop) - group * big


def _chains(frame: pd.DataFrame, group: np.ndarray, join) -> tuple[np.ndarray, np.ndarray]:
    """Number each row's chain: a row continues the chain of the previous row of its group when
    ``join(start, previous reach)`` holds. Returns (chain number per row, reach per row)."""
    start = frame["start"].to_numpy(np.int64)
    reach = _running_reach(frame["stop"].to_numpy(np.int64), group)
    new = np.ones(start.size, dtype=bool)
    if start.size > 1:
        same = group[1:] == group[:-1]
        new[1:] = ~(same & join(start[1:], reach[:-1]))
    return np.cumsum(new) - 1, reach


def bouts(intervals: pd.DataFrame, *, rate: int, max_gap_s: float = 0.5) -> pd.DataFrame:
    """Group each recording's events of each label into bouts.

    Args:
        intervals: interval table (any kinds; overlapping events are fine).
        rate: tic rate, Hz.
        max_gap_s: an event joins the bout when it starts at most this many seconds after the
            bout's furthest stop.

    Returns:
        An interval table of bouts (kind ``bout``), sorted by recording, label and start, with an
        extra column ``events`` (events in the bout).
    """
    max_gap = _check_positive("max_gap_s", max_gap_s) * rate
    intervals = validate_intervals(intervals)
    if len(intervals) == 0:
        return intervals_frame([], [], [], [], [], events=np.empty(0, np.int64))
    frame, group = _sorted_groups(intervals)
    chain, reach = _chains(frame, group, lambda start, before: start - before <= max_gap)
    first = np.flatnonzero(np.append(True, chain[1:] != chain[:-1]))
    last = np.append(first[1:] - 1, chain.size - 1)
    return intervals_frame(
        frame["wav"].to_numpy()[first], frame["start"].to_numpy()[first], reach[last], BOUT,
        frame["label"].to_numpy()[first], events=np.bincount(chain),
    )


def inter_pulse_intervals(intervals: pd.DataFrame, *, rate: int, pulse_labels: Sequence[str] | None = None,
                          max_ipi_s: float = 0.1) -> pd.DataFrame:
    """Inter-pulse intervals: seconds between the centres of consecutive pulses of a label in a
    recording, kept when at most ``max_ipi_s``.

    Returns:
        A table with columns ``wav``, ``label``, ``tic`` (centre of the later pulse, tics) and
        ``ipi_s``, sorted by recording, label and tic.
    """
    max_ipi = _check_positive("max_ipi_s", max_ipi_s)
    intervals = validate_intervals(intervals)
    labels = [str(x) for x in pd.unique(intervals["label"])]
    pulse_labels = default_pulse_labels(labels) if pulse_labels is None else [str(x) for x in pulse_labels]
    pulses = intervals[intervals["label"].isin(pulse_labels)]
    empty = pd.DataFrame({"wav": pd.Series([], dtype=str), "label": pd.Series([], dtype=str),
                          "tic": np.empty(0, np.float64), "ipi_s": np.empty(0, np.float64)})
    if len(pulses) < 2:
        return empty
    frame, group = _sorted_groups(pulses)
    centre = (frame["start"].to_numpy(np.float64) + frame["stop"].to_numpy(np.float64)) / 2
    ipi = np.diff(centre) / rate
    keep = (group[1:] == group[:-1]) & (ipi <= max_ipi)
    later = np.flatnonzero(keep) + 1
    if later.size == 0:
        return empty
    return pd.DataFrame({"wav": frame["wav"].to_numpy()[later].astype(str),
                         "label": frame["label"].to_numpy()[later].astype(str),
                         "tic": centre[later], "ipi_s": ipi[keep]})


def song_summary(
    intervals: pd.DataFrame,
    durations_s: Mapping[str, float],
    *,
    rate: int,
    labels: Sequence[str] | None = None,
    max_gap_s: float = 0.5,
    max_ipi_s: float = 0.1,
    pulse_labels: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per recording and label (every combination, zeros where a label is absent).

    Args:
        intervals: interval table, e.g. an ethogram's predictions for several recordings.
        durations_s: ``{recording basename: duration in seconds}``; every recording named in
            ``intervals`` must be here; recordings here without intervals get rows of zeros.
        rate: tic rate, Hz.
        labels: labels to summarise (default: those in ``intervals``).
        max_gap_s: bout grouping gap, seconds (:func:`bouts`).
        max_ipi_s: longest inter-pulse interval counted, seconds (:func:`inter_pulse_intervals`).
        pulse_labels: labels whose IPIs are computed (default: names containing "pulse").

    Returns:
        Columns ``recording, label, duration_s, events, events_per_min, coverage`` (fraction of
        the recording), ``bouts, bouts_per_min, bout_mean_s, bout_median_s, bout_max_s``,
        ``ipi_n, ipi_mean_s, ipi_median_s, ipi_sd_s`` (NaN where not defined).

    Raises:
        SummaryError: a recording without a duration, or a bad setting.
    """
    intervals = validate_intervals(intervals)
    durations = {Path(str(k)).name: float(v) for k, v in durations_s.items()}
    unknown = sorted(set(map(str, pd.unique(intervals["wav"]))) - set(durations))
    if unknown:
        raise SummaryError(f"no duration for recording(s) {unknown[:5]}; give each recording's length "
                           f"(durations_s={{'name.wav': seconds}}), e.g. from its WAV header")
    bad = [name for name, value in durations.items() if not np.isfinite(value) or value <= 0]
    if bad:
        raise SummaryError(f"durations must be positive seconds; not so for {bad[:5]}")
    present = [str(x) for x in pd.unique(intervals["label"])]
    labels = sorted(present) if labels is None else [str(x) for x in labels]
    intervals = intervals[intervals["label"].isin(labels)]
    pulse_labels = default_pulse_labels(labels) if pulse_labels is None else [str(x) for x in pulse_labels]

    index = pd.MultiIndex.from_product([list(durations), labels], names=["recording", "label"])
    table = pd.DataFrame(index=index)
    table["duration_s"] = [durations[r] for r, _ in index]

    keyed = intervals.assign(recording=intervals["wav"].astype(str), label=intervals["label"].astype(str))
    table["events"] = keyed.groupby(["recording", "label"]).size().reindex(index, fill_value=0).astype(np.int64)

    if len(intervals):
        merged = bouts(intervals, rate=rate, max_gap_s=0.0)  # overlapping events joined: tics counted once
        merged = merged.assign(tics=merged["stop"] - merged["start"] + 1, recording=merged["wav"].astype(str),
                               label=merged["label"].astype(str))
        covered = merged.groupby(["recording", "label"])["tics"].sum().reindex(index, fill_value=0)
    else:
        covered = pd.Series(0, index=index)
    table["coverage"] = covered.to_numpy() / rate / table["duration_s"].to_numpy()
    table["events_per_min"] = table["events"] / (table["duration_s"] / 60)

    grouped = bouts(intervals, rate=rate, max_gap_s=max_gap_s)
    grouped = grouped.assign(seconds=(grouped["stop"] - grouped["start"] + 1) / rate,
                             recording=grouped["wav"].astype(str), label=grouped["label"].astype(str))
    stats = grouped.groupby(["recording", "label"])["seconds"].agg(["size", "mean", "median", "max"])
    stats = stats.reindex(index)
    table["bouts"] = stats["size"].fillna(0).astype(np.int64)
    table["bouts_per_min"] = table["bouts"] / (table["duration_s"] / 60)
    table["bout_mean_s"], table["bout_median_s"], table["bout_max_s"] = stats["mean"], stats["median"], stats["max"]

    ipis = inter_pulse_intervals(intervals, rate=rate, pulse_labels=pulse_labels, max_ipi_s=max_ipi_s)
    ipi = ipis.rename(columns={"wav": "recording"}).groupby(["recording", "label"])["ipi_s"] \
        .agg(["size", "mean", "median", "std"]).reindex(index)
    is_pulse = np.array([label in pulse_labels for _, label in index])
    table["ipi_n"] = np.where(is_pulse, ipi["size"].fillna(0), np.nan)
    table["ipi_mean_s"], table["ipi_median_s"], table["ipi_sd_s"] = ipi["mean"], ipi["median"], ipi["std"]
    return table.reset_index()[list(SUMMARY_COLUMNS)]


def summary_by_label(summary: pd.DataFrame) -> pd.DataFrame:
    """Pool a :func:`song_summary` table over recordings: per label, total duration and events,
    events and bouts per minute of all recordings together, and event-weighted means."""
    grouped = summary.groupby("label", sort=False)
    pooled = grouped[["duration_s", "events", "bouts"]].sum()
    pooled["events_per_min"] = pooled["events"] / (pooled["duration_s"] / 60)
    pooled["bouts_per_min"] = pooled["bouts"] / (pooled["duration_s"] / 60)
    covered = (summary["coverage"] * summary["duration_s"]).groupby(summary["label"], sort=False).sum()
    pooled["coverage"] = covered / pooled["duration_s"]
    weighted = summary.assign(bout_total=summary["bout_mean_s"] * summary["bouts"],
                              ipi_total=summary["ipi_mean_s"] * summary["ipi_n"])
    sums = weighted.groupby("label", sort=False)[["bout_total", "ipi_total", "ipi_n"]].sum(min_count=1)
    pooled["bout_mean_s"] = sums["bout_total"] / pooled["bouts"].where(pooled["bouts"] > 0)
    pooled["ipi_n"] = sums["ipi_n"]
    pooled["ipi_mean_s"] = sums["ipi_total"] / sums["ipi_n"].where(sums["ipi_n"] > 0)
    return pooled.reset_index()


# ---------------------------------------------------------------------------------------------
# the ethogram raster


def plot_ethogram(intervals: pd.DataFrame, durations_s: Mapping[str, float], *, rate: int,
                  labels: Sequence[str] | None = None, colors: Mapping[str, str] | None = None):
    """Ethogram raster: one row per recording (in ``durations_s`` order), each interval a bar
    coloured by label, time in seconds on the x axis. Returns a matplotlib ``Figure``."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    intervals = validate_intervals(intervals)
    recordings = [Path(str(r)).name for r in durations_s]
    present = [str(x) for x in pd.unique(intervals["label"])]
    labels = sorted(present) if labels is None else [str(x) for x in labels]
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
               "tab:gray", "tab:olive", "tab:cyan"]
    colors = {label: (colors or {}).get(label, palette[i % len(palette)]) for i, label in enumerate(labels)}
    nlabels = max(len(labels), 1)
    figure = Figure(figsize=(10, 0.5 + 0.45 * max(len(recordings), 1) * max(1, nlabels / 3)), layout="constrained")
    ax = figure.add_subplot()
    band = 0.8 / nlabels
    groups = intervals.groupby(["wav", "label"], observed=True).indices if len(intervals) else {}
    for row, recording in enumerate(recordings):
        for k, label in enumerate(labels):
            index = groups.get((recording, label))
            if index is None:
                continue
            rows = intervals.iloc[index]
            start = rows["start"].to_numpy() / rate
            width = (rows["stop"].to_numpy() - rows["start"].to_numpy() + 1) / rate
            ax.broken_barh(list(zip(start, width)), (row - 0.4 + k * band, band), facecolors=colors[label],
                           edgecolors=colors[label], linewidth=0.5)
    ax.set_yticks(range(len(recordings)), recordings)
    ax.set_ylim(len(recordings) - 0.5, -0.5)
    ax.set_xlim(0, max([float(v) for v in durations_s.values()] + [1e-9]))
    ax.set_xlabel("time (s)")
    ax.legend(handles=[Patch(color=colors[label], label=label) for label in labels], loc="lower right",
              bbox_to_anchor=(1.0, 1.0), fontsize=8, ncols=min(nlabels, 6), frameon=False)
    ax.set_title("ethogram", loc="left")
    return figure


#: Recordings longer than this (seconds) are drawn summarised: per time bin, the share of it
#: inside the label's intervals, instead of one bar per interval.
LONG_RECORDING_S = 300.0


def plot_recording_ethogram(intervals: pd.DataFrame, duration_s: float, *, rate: int,
                            labels: Sequence[str] | None = None, title: str = "", nbins: int = 600,
                            long_s: float = LONG_RECORDING_S):
    """One recording's ethogram: one row per label (named on the left, its number of intervals
    on the right), time in seconds on the x axis. Up to ``long_s`` seconds each interval is a bar,
    at least 1/1000 of the axis wide so a one-tic pulse still shows; longer recordings are
    summarised in ``nbins`` bins, each drawn as high as the share of it (0..1) inside the label's
    intervals (at least 0.2 when an interval starts in it, so sparse pulses show). ``intervals`` are
    one recording's (tics, inclusive). Returns a matplotlib ``Figure``."""
    from songexplorer_core.figures import new_figure

    intervals = validate_intervals(intervals)
    present = sorted(str(x) for x in pd.unique(intervals["label"]))
    labels = present if labels is None else [str(x) for x in labels]
    duration_s = max(float(duration_s), 1e-9)
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
               "tab:gray", "tab:olive", "tab:cyan"]
    # 7.2 in: at 100 dpi the 720-pixel image fits the metadata column of Dagster's partition page
    figure = new_figure(7.2, 0.9 + 0.42 * max(len(labels), 1))
    ax = figure.add_subplot()
    summarised = duration_s > long_s
    edges = np.linspace(0.0, duration_s, nbins + 1)
    for row, label in enumerate(labels):
        color = palette[row % len(palette)]
        rows = intervals[intervals["label"].astype(str) == label]
        start = rows["start"].to_numpy(dtype=float) / rate
        stop = (rows["stop"].to_numpy(dtype=float) + 1) / rate
        if summarised:
            # share of each bin inside an interval of the label (overlaps counted once: clipped sum)
            share = np.zeros(nbins)
            for a, b in zip(start, stop):
                first, last = np.searchsorted(edges, [a, b], side="right") - 1
                for k in range(max(first, 0), min(last, nbins - 1) + 1):
                    share[k] += max(0.0, min(b, edges[k + 1]) - max(a, edges[k]))
            share = np.minimum(share / np.diff(edges), 1.0)
            # a bin with any interval shows at least a fifth of the row: sparse pulses stay visible
            touched = np.bincount(np.clip(np.searchsorted(edges, start, side="right") - 1, 0, nbins - 1),
                                  minlength=nbins) > 0
            share = np.where(touched, np.maximum(share, 0.2), share)
            ax.bar(edges[:-1], 0.8 * share, width=np.diff(edges), bottom=row + 0.4 - 0.8 * share, align="edge",
                   color=color, linewidth=0)
        else:
            width = np.maximum(stop - start, duration_s / 1000)
            ax.broken_barh(list(zip(start, width)), (row - 0.4, 0.8), facecolors=color, edgecolors=color,
                           linewidth=0.3)
        ax.annotate(f"{len(rows)}", (1.0, row), xycoords=("axes fraction", "data"), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlim(0, duration_s)
    ax.set_xlabel("time (s)" + (f"; bars: share of each {duration_s / nbins:.3g} s bin with the label" if summarised
                                else ""))
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or "ethogram", loc="left", fontsize=10)
    return figure


def write_summaries(intervals: pd.DataFrame, durations_s: Mapping[str, float], folder: str | os.PathLike, *,
                    rate: int, labels: Sequence[str] | None = None, max_gap_s: float = 0.5, max_ipi_s: float = 0.1,
                    pulse_labels: Sequence[str] | None = None, plot: bool = True) -> list[Path]:
    """Write ``summary.csv`` (per recording and label), ``summary-by-label.csv`` (pooled),
    ``bouts.csv`` (SongExplorer's interval CSV, kind ``bout``), ``ipis.csv`` and, with ``plot``,
    ``ethogram.png`` into ``folder``, atomically."""
    folder = Path(folder)
    summary = song_summary(intervals, durations_s, rate=rate, labels=labels, max_gap_s=max_gap_s,
                           max_ipi_s=max_ipi_s, pulse_labels=pulse_labels)
    chosen = list(summary["label"].unique())
    intervals = validate_intervals(intervals)
    intervals = intervals[intervals["label"].isin(chosen)]
    written = []
    for name, frame in (("summary.csv", summary), ("summary-by-label.csv", summary_by_label(summary)),
                        ("ipis.csv", inter_pulse_intervals(intervals, rate=rate, pulse_labels=pulse_labels,
                                                           max_ipi_s=max_ipi_s))):
        with atomic_write(folder / name, "w", encoding="utf-8", newline="") as handle:
            frame.to_csv(handle, index=False, lineterminator="\n")
        written.append(folder / name)
    found = bouts(intervals, rate=rate, max_gap_s=max_gap_s)
    written.append(write_intervals_csv(found.drop(columns="events"), folder / "bouts.csv"))
    if plot:
        written.append(save_png(plot_ethogram(intervals, durations_s, rate=rate, labels=chosen),
                                folder / "ethogram.png"))
    return written
