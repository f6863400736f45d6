"""Reading what a project's graph wrote under ``outputs/``: interval tables of many recordings.

Each function takes a :class:`~songexplorer_core.project.Project` (whose methods name every
path) and returns interval tables (``wav, start, stop, kind, label``, tics inclusive) with a
``recording`` column (the recording key) where they gather several recordings.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from songexplorer_core.annotations import COLUMNS, empty_intervals
from songexplorer_core.audio import source_file
from songexplorer_core.dense_set import choose_ratio, read_ethogram
from songexplorer_core.project import Project

#: Kinds of sounds ``gather_sounds`` can gather, and which asset makes them.
SOUND_SOURCES = {"annotated": "annotations", "detected": "detections", "predicted": "ethograms",
                 "missed": "misses", "correct": "mistakes", "mistaken": "mistakes"}


def concat_with_recording(tables) -> pd.DataFrame:
    """The non-empty ``tables`` in one; an empty interval table with a ``recording`` column if none."""
    tables = [t for t in tables if len(t)]
    if not tables:
        return empty_intervals().assign(recording=pd.Series([], dtype=str))
    return pd.concat(tables, ignore_index=True)


def content_hash(frame: pd.DataFrame) -> str:
    """A digest of the annotation rows (order-independent): equal hashes, same ground truth."""
    columns = list(COLUMNS) + ["recording"]
    rows = frame[columns].astype(str).sort_values(columns).to_csv(index=False)
    return hashlib.sha256(rows.encode()).hexdigest()[:16]


def read_ground_truth(project: Project) -> tuple[pd.DataFrame, dict[str, str]]:
    """The ``ground_truth`` asset's table and ``{recording key: path}``."""
    frame = pd.read_parquet(project.ground_truth_path)
    recording_paths = json.loads(project.ground_truth_recordings_path.read_text())
    return frame[list(COLUMNS) + ["recording"]], recording_paths


def recording_stamp(path: Path) -> dict:
    """What identifies a recording's content cheaply (size and modification time, ns, of its file:
    a channel recording's is that of the file holding it)."""
    info = source_file(path).stat()
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns}


def ethogram_log_method(log: Path) -> str:
    """The ``method:`` line of an ``<wav>-ethogram.log`` (the method actually used)."""
    for line in log.read_text(encoding="utf-8").splitlines():
        if line.startswith("method:"):
            return line.split(":", 1)[1].strip()
    return "threshold"  # SongExplorer's logs do not say: it only thresholds


def clip_to_recording(frame: pd.DataFrame, ntics: int) -> pd.DataFrame:
    """Intervals clipped to tics ``0 .. ntics-1``: SongExplorer's detector writes ``frequency``
    rows that start before tic 0 and ``time`` stops one past the end (``songexplorer_quirks``)."""
    if not len(frame):
        return frame
    clipped = frame.assign(start=frame["start"].clip(lower=0), stop=frame["stop"].clip(upper=ntics - 1))
    return clipped[clipped["start"] <= clipped["stop"]].reset_index(drop=True)


def predicted_intervals(project: Project, key: str, ratio: str = "") -> tuple[pd.DataFrame, str, dict]:
    """Recording ``key``'s predicted intervals at P/R ``ratio`` (the first when empty), the ratio
    used, and what made them (``model_version``)."""
    try:
        frame, source = read_ethogram(project, key)
    except FileNotFoundError:
        raise FileNotFoundError(f"recording {key} has no ethogram ({project.ethogram_path(key)}); materialise "
                                f"probabilities and ethograms for it first") from None
    chosen = choose_ratio(pd.unique(frame["ratio"]) if len(frame) else ["1.0pr"], ratio)
    predicted = frame[frame["ratio"] == chosen].drop(columns="ratio") if len(frame) else empty_intervals()
    return predicted.reset_index(drop=True), chosen, source


def annotated_sounds(project: Project, keys) -> tuple[pd.DataFrame, list[str]]:
    """Every recording's annotations (the ``annotations`` asset's files) with a ``recording``
    column, and the keys whose annotations are not materialised."""
    tables, missing = [], []
    for key in keys:
        path = project.annotations_path(key)
        if not path.exists():
            missing.append(key)
            continue
        table = pd.read_parquet(path)
        if len(table):
            tables.append(table[list(COLUMNS)].assign(recording=key))
    return concat_with_recording(tables), missing


def gather_sounds(project: Project, keys, kinds, *, ratio: str = "") -> tuple[pd.DataFrame, list[str]]:
    """The intervals of ``kinds`` from the assets that make them (``SOUND_SOURCES``), with a
    ``recording`` column, and a note for each source that is not there (to name in errors).

    Raises:
        ValueError: a kind no asset makes.
    """
    from songexplorer_core.audio import recording_info
    from songexplorer_core.project import recording_path

    unknown = [kind for kind in kinds if kind not in SOUND_SOURCES]
    if unknown:
        raise ValueError(f"kinds {unknown} are not made by any asset; choose among {sorted(SOUND_SOURCES)}")
    tables, notes = [], []
    kinds = list(dict.fromkeys(kinds))
    if "annotated" in kinds:
        table, missing = annotated_sounds(project, keys)
        tables.append(table[table["kind"] == "annotated"])
        if missing:
            notes.append(f"annotations not materialised for {missing[:5]}")
    for kind, read in (("detected", "detections"), ("predicted", "ethograms"), ("missed", "misses")):
        if kind not in kinds:
            continue
        lacking = []
        for key in keys:
            if kind == "detected":
                path = project.detections_path(key)
                if not path.exists():
                    lacking.append(key)
                    continue
                ntics = recording_info(recording_path(project, key)).frames
                frame = clip_to_recording(pd.read_parquet(path), ntics)
            elif kind == "predicted":
                try:
                    frame, _, _ = predicted_intervals(project, key, ratio)
                except FileNotFoundError:
                    lacking.append(key)
                    continue
            else:
                path = project.misses_path(key)
                if not path.exists():
                    lacking.append(key)
                    continue
                frame = pd.read_parquet(path)
            tables.append(frame[list(COLUMNS)].assign(recording=key))
        if lacking:
            notes.append(f"no {read} materialised for {len(lacking)} recording(s) {lacking[:5]}")
    if {"correct", "mistaken"} & set(kinds):
        path = project.mistakes_path
        if path.exists():
            frame = pd.read_parquet(path)
            tables.append(frame[list(COLUMNS) + ["recording"]][frame["recording"].isin(list(keys))])
        else:
            notes.append(f"no mistakes materialised ({path})")
    return concat_with_recording(tables), notes
