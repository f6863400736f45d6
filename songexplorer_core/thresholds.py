"""Thresholds files: SongExplorer's ``thresholds.ckpt-<N>.csv`` (``label,threshold`` rows) and
its older multi-ratio format, read and written; the per-label probability above which a label
is called (SongExplorer's ``--method threshold`` ethogram, congruence sweeps)."""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

from songexplorer_core.atomic import atomic_write


class ThresholdsError(ValueError):
    """A thresholds file is malformed; the message names the file, line and fix."""


def format_ratio(ratio: float | str) -> str:
    """How a precision/recall ratio appears in file names: ``1.0``, ``2.0``, ``0.5``."""
    if isinstance(ratio, str):
        return ratio
    return repr(float(ratio))


def thresholds_csv_name(checkpoint: int | str, ratio: float | str | None = None) -> str:
    """``thresholds.ckpt-<N>.csv`` (SongExplorer's name), or ``thresholds-<ratio>pr.ckpt-<N>.csv``."""
    if ratio is None:
        return f"thresholds.ckpt-{checkpoint}.csv"
    return f"thresholds-{format_ratio(ratio)}pr.ckpt-{checkpoint}.csv"


_RATIO_IN_NAME = re.compile(r"thresholds-(?P<ratio>[0-9.eE+-]+)pr\.")


def ratio_from_thresholds_name(path: str | os.PathLike) -> str | None:
    """The P/R ratio a thresholds file's name states (``thresholds-2.0pr.ckpt-5.csv`` -> ``"2.0"``),
    or ``None`` (``thresholds.ckpt-5.csv``, dense congruence files)."""
    match = _RATIO_IN_NAME.search(Path(path).name)
    return match.group("ratio") if match else None


def write_thresholds_csv(thresholds: Mapping[str, float], path: str | os.PathLike) -> Path:
    """Write SongExplorer's HEAD thresholds format atomically: ``label,threshold`` per row, no
    header, in the mapping's order (use the model's label order). NaN is written ``nan``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for label, value in thresholds.items():
        writer.writerow([label, repr(float(value))])
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(buffer.getvalue())
    return Path(path)


def read_thresholds_ratios(path: str | os.PathLike) -> dict[str | None, dict[str, float]]:
    """Read a thresholds file in either of SongExplorer's formats.

    * HEAD format: rows ``label,threshold``, no header. Returns ``{ratio: {label: threshold}}``
      with ``ratio`` taken from the file name (``thresholds-2.0pr...``) or ``None``.
    * Older format: a first row ``precision/recall,1.0[,2.0...]``, then rows
      ``label,thr[,thr2...]`` with one column per ratio. Returns one entry per ratio (``"1.0"``...).

    Raises:
        ThresholdsError: naming the file and line for a wrong column count or a non-number.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such thresholds file. Run `songexplorer accuracy` on the "
                                f"trained model first; it writes thresholds.ckpt-<N>.csv.")
    rows = [row for row in csv.reader(io.StringIO(path.read_text(encoding="utf-8")))
            if row and any(cell.strip() for cell in row)]
    if not rows:
        raise ThresholdsError(f"{path}: the thresholds file is empty.")
    ratios: list[str | None]
    if rows[0][0].strip().lower() == "precision/recall":
        ratios = [cell.strip() for cell in rows[0][1:]]
        if not ratios:
            raise ThresholdsError(f"{path}: line 1: the precision/recall header names no ratio")
        body, first_line = rows[1:], 2
    else:
        ratios = [ratio_from_thresholds_name(path)]
        body, first_line = rows, 1
    tables: dict[str | None, dict[str, float]] = {ratio: {} for ratio in ratios}
    for lineno, row in enumerate(body, start=first_line):
        if len(row) != len(ratios) + 1:
            raise ThresholdsError(f"{path}: line {lineno}: expected {len(ratios) + 1} columns "
                                  f"(label and one threshold per ratio), found {len(row)}")
        label = row[0].strip()
        if label in tables[ratios[0]]:
            raise ThresholdsError(f"{path}: line {lineno}: label {label!r} appears twice")
        for ratio, cell in zip(ratios, row[1:]):
            try:
                tables[ratio][label] = float(cell)
            except ValueError:
                raise ThresholdsError(f"{path}: line {lineno}: threshold {cell!r} for {label!r} is not a number") \
                    from None
    return tables


def read_thresholds_csv(path: str | os.PathLike, *, ratio: float | str | None = None) -> dict[str, float]:
    """Read one set of thresholds ``{label: threshold}`` (file order) from either format.

    Args:
        ratio: for an older multi-ratio file, which P/R ratio's column (default: the first).
    """
    tables = read_thresholds_ratios(path)
    if ratio is None:
        return next(iter(tables.values()))
    wanted = format_ratio(ratio)
    for key, table in tables.items():
        if key is not None and (key == wanted or _same_number(key, wanted)):
            return table
    if list(tables) == [None]:
        return tables[None]
    raise ThresholdsError(f"{path}: has no thresholds for P/R ratio {wanted}; it has {list(tables)}")


def _same_number(a: str, b: str) -> bool:
    try:
        return math.isclose(float(a), float(b))
    except ValueError:
        return False
