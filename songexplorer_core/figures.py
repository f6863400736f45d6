"""Figures: made without pyplot's global state, saved atomically as PNG.

Every plot of the platform (accuracy, congruence, summaries, cluster) is a bare matplotlib
``Figure`` (rendered by Agg, safe in threads and in Dagster steps) written by :func:`save_png`.
"""

from __future__ import annotations

import os
from pathlib import Path

from songexplorer_core.atomic import atomic_path


def new_figure(width: float, height: float):
    """A ``Figure`` of ``width`` x ``height`` inches with constrained layout (no pyplot state)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save_png(figure, path: str | os.PathLike, *, dpi: int = 100) -> Path:
    """Write ``figure`` to ``path`` as PNG, atomically (a reader never sees half a file)."""
    path = Path(path)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=dpi)
    return path
