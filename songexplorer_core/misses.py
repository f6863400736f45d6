"""Misses: detected sounds that no prediction covers (SongExplorer's ``src/misses``).

Detection (``<wav>-detected.csv``) marks every loud or tonal stretch of a recording; the ethogram
(``<wav>-predicted.csv``) marks what the model recognised. The tics covered by a detected interval
(of any detected label, ``time``, ``frequency`` and ``neither`` alike, unless chosen otherwise) and
by no predicted interval (of any label) are the misses: sounds the model said nothing about, worth
annotating next. Each maximal run of such tics becomes a row ``wav, start, stop, missed, other``
of ``<wav>-missed.csv`` (tics inclusive).

Change from SongExplorer (QUIRK 3, fixed; ``quirks=True`` restores it): SongExplorer's
``combine_events`` built its masks only up to the largest stop tic of either list, so the last tic
of the last interval was lost, and it never reported a run that touched the first or the last tic
of that mask, so a miss at the very start or end of a recording vanished. Here every run is
reported and, when the recording's length is known, stops are clipped to its last tic. (A negative
start, which SongExplorer's frequency rows could have and its slices wrapped around, QUIRK 2, is
refused when a table is read or validated.) Both modes treat every stop as inclusive, as
SongExplorer did, including detection's ``time`` rows (QUIRK 1).

Everything is computed from sorted interval ends (no per-tic work) except ``quirks=True``, which
builds SongExplorer's boolean masks to reproduce it exactly.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from songexplorer_core.annotations import concat_intervals, empty_intervals, intervals_frame, \
    read_intervals_csv, validate_intervals, write_intervals_csv

MISSED = "missed"
#: SongExplorer labels every miss ``other``.
MISSED_LABEL = "other"


class MissesError(ValueError):
    """Misses cannot be computed from this input; the message names the file and the fix."""


def _covered_runs(include: tuple[np.ndarray, np.ndarray], exclude: tuple[np.ndarray, np.ndarray]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Maximal runs of tics inside some ``include`` interval and inside no ``exclude`` interval.

    Intervals are ``(starts, stops)`` in tics, inclusive, any order, may overlap. Returns
    ``(starts, stops)``, inclusive, sorted. Works on the interval ends only: the line is cut at
    every start and every stop + 1, and each piece is counted in or out.
    """
    in_start, in_stop = include
    ex_start, ex_stop = exclude
    if in_start.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    bounds = np.unique(np.concatenate([in_start, in_stop + 1, ex_start, ex_stop + 1]))

    def depth(starts, stops):
        delta = np.zeros(bounds.size, dtype=np.int64)
        np.add.at(delta, np.searchsorted(bounds, starts), 1)
        np.add.at(delta, np.searchsorted(bounds, stops + 1), -1)
        return np.cumsum(delta)[:-1]  # coverage of piece [bounds[i], bounds[i+1])

    inside = (depth(in_start, in_stop) > 0) & (depth(ex_start, ex_stop) == 0)
    edges = np.flatnonzero(np.diff(inside.view(np.int8), prepend=0, append=0))
    return bounds[edges[0::2]], bounds[edges[1::2]] - 1


def _songexplorer_runs(include: tuple[np.ndarray, np.ndarray], exclude: tuple[np.ndarray, np.ndarray]
                       ) -> tuple[np.ndarray, np.ndarray]:
    """SongExplorer's ``combine_events(include, exclude, a and not b)``, exactly: masks as long as
    the largest stop, intervals set with Python slices ``[start:stop+1]`` (so the largest stop
    itself is cut off), and runs touching the first or last tic of the mask dropped. One slice
    per interval: this mode reproduces SongExplorer and is not meant for speed."""
    stops = [s.max() for s in (include[1], exclude[1]) if s.size]
    length = int(max(stops + [0]))

    def mask(starts, stops):
        covered = np.zeros(length, dtype=bool)
        for start, stop in zip(starts.tolist(), stops.tolist()):
            covered[start:stop + 1] = True  # Python slicing, as SongExplorer (the end is clipped)
        return covered

    keep = mask(*include) & ~mask(*exclude)
    edges = np.flatnonzero(np.diff(keep.view(np.int8), prepend=0, append=0))
    first, after = edges[0::2], edges[1::2]
    inner = (first > 0) & (after < length)
    return first[inner].astype(np.int64), after[inner].astype(np.int64) - 1


def find_misses(
    detected: pd.DataFrame,
    predicted: pd.DataFrame,
    *,
    ntics: int | Mapping[str, int] | None = None,
    detected_labels: Sequence[str] | None = None,
    quirks: bool = False,
) -> pd.DataFrame:
    """Detected stretches no prediction covers, per recording.

    Args:
        detected: interval table of detections (any labels), one or more recordings.
        predicted: interval table of predictions (any labels); recordings not in ``detected``
            are ignored.
        ntics: each recording's length in tics (one number for all, or ``{wav: ntics}``), to clip
            stops to the last tic; optional.
        detected_labels: only detections of these labels count (default all, as SongExplorer).
        quirks: reproduce SongExplorer's ``combine_events`` edges (QUIRK 3) exactly.

    Returns:
        An interval table, kind ``missed``, label ``other``, sorted by recording and start.
    """
    detected = validate_intervals(detected, source="detected intervals")
    predicted = validate_intervals(predicted, source="predicted intervals")
    if detected_labels is not None:
        detected = detected[detected["label"].isin([str(label) for label in detected_labels])]
    found = []
    predicted_groups = predicted.groupby("wav", sort=False, observed=True).indices if len(predicted) else {}
    for wav, index in (detected.groupby("wav", sort=False, observed=True).indices.items() if len(detected) else []):
        rows = detected.iloc[index]
        include = (rows["start"].to_numpy(np.int64), rows["stop"].to_numpy(np.int64))
        other = predicted.iloc[predicted_groups.get(wav, [])]
        exclude = (other["start"].to_numpy(np.int64), other["stop"].to_numpy(np.int64))
        if quirks:
            start, stop = _songexplorer_runs(include, exclude)
        else:
            start, stop = _covered_runs(include, exclude)
            length = ntics.get(str(wav)) if isinstance(ntics, Mapping) else ntics
            if length is not None:
                keep = start <= int(length) - 1
                start, stop = start[keep], np.minimum(stop[keep], int(length) - 1)
            keep = start <= stop
            start, stop = start[keep], stop[keep]
        if start.size:
            found.append(intervals_frame(str(wav), start, stop, MISSED, MISSED_LABEL))
    missed = concat_intervals(found)
    return missed.sort_values(["wav", "start"], kind="stable").reset_index(drop=True) if len(missed) else missed


def missed_csv_name(wav: str) -> str:
    """``<wav>-missed.csv`` (SongExplorer's name)."""
    return f"{Path(wav).name}-missed.csv"


def write_missed_csvs(missed: pd.DataFrame, folder: str | os.PathLike, recordings: Sequence[str]) -> list[Path]:
    """Write ``<wav>-missed.csv`` for each recording (empty when nothing was missed), atomically."""
    written = []
    groups = missed.groupby("wav", sort=False, observed=True).indices if len(missed) else {}
    for wav in recordings:
        wav = Path(wav).name
        frame = missed.iloc[groups[wav]] if wav in groups else empty_intervals()
        written.append(write_intervals_csv(frame, Path(folder) / missed_csv_name(wav)))
    return written


def misses_from_csvs(paths: Sequence[str | os.PathLike], *, out_dir: str | os.PathLike | None = None,
                     ntics: int | Mapping[str, int] | None = None, detected_labels: Sequence[str] | None = None,
                     quirks: bool = False) -> list[Path]:
    """SongExplorer's ``misses csv1,csv2,...``: rows of kind ``detected`` from any of the CSVs are
    the detections, rows of kind ``predicted`` the predictions (other kinds are ignored with a
    warning); one ``<wav>-missed.csv`` per detected recording is written into ``out_dir``
    (default: the first CSV's folder, as SongExplorer). Returns the files written.

    Raises:
        MissesError: no CSV given, or no detected rows in them.
        AnnotationError / FileNotFoundError: a CSV that is malformed or missing.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise MissesError("give the CSVs to compare, e.g. <wav>-detected.csv,<wav>-predicted.csv")
    frames = []
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such CSV")
        frame = read_intervals_csv(path, allow_unknown_kinds=True)
        others = sorted(set(frame["kind"]) - {"detected", "predicted"})
        if others:
            warnings.warn(f"{path}: rows of kind(s) {others} are neither detected nor predicted; ignored",
                          stacklevel=2)
        frames.append(frame)
    table = concat_intervals(frames)
    detected = table[table["kind"] == "detected"]
    predicted = table[table["kind"] == "predicted"]
    if len(detected) == 0:
        raise MissesError(f"no rows of kind 'detected' in {', '.join(str(p) for p in paths)}; "
                          f"run detection first and pass its <wav>-detected.csv")
    missed = find_misses(detected, predicted, ntics=ntics, detected_labels=detected_labels, quirks=quirks)
    recordings = [str(w) for w in pd.unique(detected["wav"])]
    return write_missed_csvs(missed, out_dir if out_dir is not None else paths[0].parent, recordings)
