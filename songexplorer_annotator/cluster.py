"""The cluster view's data: the embedding of sounds written by the cluster step.

The annotator reads one documented file, ``outputs/cluster/cluster.parquet``, one row per sound:

========  =====================================================================
``wav``    recording key (``round1%2FPS.wav``) or basename, if unique in the project
``start``  first tic of the sound (inclusive)
``stop``   last tic of the sound (inclusive)
``kind``   annotated, detected, predicted, missed...
``label``  the sound's label
``x, y``   its position in the embedding (UMAP, t-SNE, PCA...); ``z`` optional
``group``  optional: the group of nearby sounds it lies in (-1: none), labelled as one
========  =====================================================================

Rows whose recording is not in the project are counted and left out (the view says how many).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

CLUSTER_FILE = Path("cluster") / "cluster.parquet"
REQUIRED_COLUMNS = ("wav", "start", "stop", "kind", "label", "x", "y")


class ClusterError(ValueError):
    """The cluster file cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class ClusterTable:
    """The sounds of the cluster file that belong to recordings of the project.

    ``sounds`` has columns ``recording`` (key), ``start``, ``stop``, ``kind``, ``label``, ``x``,
    ``y`` (and ``z`` if present); ``unmatched`` counts rows naming recordings that are not there.
    """

    sounds: pd.DataFrame
    unmatched: int
    path: Path

    @property
    def has_z(self) -> bool:
        return "z" in self.sounds.columns

    @property
    def has_groups(self) -> bool:
        return "group" in self.sounds.columns


def cluster_path(outputs: str | Path) -> Path:
    """``outputs/cluster/cluster.parquet``."""
    return Path(outputs) / CLUSTER_FILE


def read_cluster_table(path: str | Path, key_for) -> ClusterTable | None:
    """Read the cluster file, or ``None`` when it does not exist yet.

    Args:
        path: the cluster Parquet file.
        key_for: callable mapping a ``wav`` value to a recording key, or ``None`` for a recording
            the project does not have (e.g. :meth:`songexplorer_annotator.catalog.Catalog.key_for`).

    Raises:
        ClusterError: naming the file, when it is not Parquet or lacks a column.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise ClusterError(f"{path}: not a readable Parquet file ({error}); run the cluster step again.") from error
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ClusterError(
            f"{path}: lacks column(s) {missing}; a cluster table has columns {list(REQUIRED_COLUMNS)} and optionally z."
        )
    keys = frame["wav"].astype(str).map(key_for)
    matched = keys.notna()
    columns = {"recording": keys[matched].astype(str).to_numpy(),
               "start": frame.loc[matched, "start"].astype("int64").to_numpy(),
               "stop": frame.loc[matched, "stop"].astype("int64").to_numpy(),
               "kind": frame.loc[matched, "kind"].astype(str).to_numpy(),
               "label": frame.loc[matched, "label"].astype(str).to_numpy(),
               "x": frame.loc[matched, "x"].astype(float).to_numpy(),
               "y": frame.loc[matched, "y"].astype(float).to_numpy()}
    if "z" in frame.columns:
        columns["z"] = frame.loc[matched, "z"].astype(float).to_numpy()
    if "group" in frame.columns:
        columns["group"] = frame.loc[matched, "group"].fillna(-1).astype("int64").to_numpy()
    sounds = pd.DataFrame(columns)
    return ClusterTable(sounds=sounds, unmatched=int((~matched).sum()), path=path)


def filter_sounds(sounds: pd.DataFrame, *, kinds=None, labels=None) -> pd.DataFrame:
    """The rows whose kind is in ``kinds`` and label in ``labels`` (``None`` = all)."""
    keep = np.ones(len(sounds), dtype=bool)
    if kinds is not None:
        keep &= sounds["kind"].isin(list(kinds)).to_numpy()
    if labels is not None:
        keep &= sounds["label"].isin(list(labels)).to_numpy()
    return sounds[keep]


def nearest_sounds(sounds: pd.DataFrame, x: float, y: float, n: int, *, box=None) -> pd.DataFrame:
    """The ``n`` sounds nearest ``(x, y)`` in the embedding's x/y plane, nearest first.

    Args:
        box: optional ``(x0, x1, y0, y1)``: only sounds inside it are considered (a region
            selected with the box tool); ``(x, y)`` is then usually its centre.
    """
    if box is not None:
        x0, x1, y0, y1 = box
        inside = sounds["x"].between(min(x0, x1), max(x0, x1)) & sounds["y"].between(min(y0, y1), max(y0, y1))
        sounds = sounds[inside]
    distance = np.hypot(sounds["x"].to_numpy() - x, sounds["y"].to_numpy() - y)
    order = np.argsort(distance, kind="stable")[: max(int(n), 0)]
    return sounds.iloc[order]


def inside_polygon(sounds: pd.DataFrame, xs, ys) -> pd.DataFrame:
    """The sounds whose ``(x, y)`` lies inside the polygon of vertices ``(xs[i], ys[i])`` (a
    lasso selection; even-odd rule, the polygon closed from its last vertex to its first)."""
    px, py = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    x, y = sounds["x"].to_numpy(dtype=float), sounds["y"].to_numpy(dtype=float)
    inside = np.zeros(len(sounds), dtype=bool)
    if len(px) < 3:
        return sounds.iloc[[]]
    for (x0, y0), (x1, y1) in zip(zip(px, py), zip(np.roll(px, -1), np.roll(py, -1))):
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < at)
    return sounds[inside]
