"""One label, one kind of annotation: ranges or points.

People mark some sounds as ranges (a drag from start to stop: sine song, a syllable) and others
as points (a double-click, ``start == stop``: a pulse). Training and the ethogram treat the two
differently (``ethogram.min_segment_durations`` drops predicted slivers shorter than a fraction
of a range label's shortest range; ``ethogram.event_refractory`` splits a point label's
probability into one event per peak), so a label is one or the other.

The rule when a label has both: **the majority decides** (more ranges than points: a range
label; more points: a point label); each annotation of the other kind is an *odd row*, reported
with its file, line and the fix, and still used for training (the network learns from its tics).
A label with as many points as ranges has no kind: neither treatment applies and that is
reported too. Before this rule a single point on a range label turned its short-segment filter
off without a word.

Used by the dataset (``dataset.make_dataset`` notes, hence ``train.log`` and the CLI), training
(``training_run``: the MLflow tag and the asset's log), the ethogram (``ethogram`` reads the
``kind`` column of ``annotation-durations.csv``) and the annotator (:class:`KindGuard`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

POINTS, RANGES = "points", "ranges"
#: What to do in the annotator to make an annotation of each kind.
GESTURE = {RANGES: "drag across the sound", POINTS: "double-click the sound in the lower half"}
_ONE = {RANGES: "range", POINTS: "point"}


def majority_kind(points: int, ranges: int) -> str | None:
    """``"ranges"`` when a label has more ranges than points, ``"points"`` when it has more points,
    ``None`` when tied (or it has none)."""
    if ranges > points:
        return RANGES
    if points > ranges:
        return POINTS
    return None


def row_kind(start: int, stop: int) -> str:
    """``"points"`` for a point annotation (``start == stop``, tics), else ``"ranges"``."""
    return POINTS if int(start) == int(stop) else RANGES


@dataclass(frozen=True)
class LabelKind:
    """How one label was annotated.

    Attributes:
        label: the label.
        points, ranges: how many annotations of each kind.
        odd: ``(file, line)`` of each annotation not of the majority kind (every one when tied);
            ``file`` is ``""`` and ``line`` 0 when the rows did not come from files.
    """

    label: str
    points: int
    ranges: int
    odd: tuple[tuple[str, int], ...] = ()

    @property
    def kind(self) -> str | None:
        return majority_kind(self.points, self.ranges)

    @property
    def mixed(self) -> bool:
        return self.points > 0 and self.ranges > 0

    def counts(self) -> str:
        return (f"{self.ranges} range{'s' if self.ranges != 1 else ''}, "
                f"{self.points} point{'s' if self.points != 1 else ''}")

    def summary(self) -> str:
        """One sentence: what the label is taken for and why (empty unless mixed)."""
        if not self.mixed:
            return ""
        if self.kind is None:
            return (f"label {self.label!r} is annotated as ranges and as points equally ({self.counts()}): it is "
                    f"neither, so no short-segment filter and no one-event-per-peak apply to it; make its "
                    f"annotations one kind ({GESTURE[RANGES]}, or {GESTURE[POINTS]}) or split it into two labels")
        other = POINTS if self.kind == RANGES else RANGES
        return (f"label {self.label!r} is annotated as {self.kind} ({self.counts()}): treated as {self.kind}, the "
                f"majority; its {len(self.odd) or min(self.points, self.ranges)} {other} annotation(s) are used "
                f"for training but should be {self.kind} or another label")

    def problems(self) -> list[str]:
        """One message per odd row: file, line and the fix."""
        if not self.mixed:
            return []
        if self.kind is None:
            return [self.summary()]
        messages = []
        for path, line in self.odd:
            where = f"{path}: line {line}: " if path else ""
            row = f"row {line}" if line else "it"
            messages.append(
                f"{where}label {self.label!r} is annotated as {self.kind} elsewhere ({self.counts()}); make {row} "
                f"a {_ONE[self.kind]} ({GESTURE[self.kind]} in the annotator), or give it another label")
        return messages


def label_kinds(frame: pd.DataFrame) -> dict[str, LabelKind]:
    """``{label: LabelKind}`` of an interval table (``start``, ``stop``, ``label``; with ``path``
    and ``line`` columns the odd rows say where they are)."""
    if not len(frame):
        return {}
    points = (frame["start"].to_numpy() == frame["stop"].to_numpy())
    kinds = {}
    for label, rows in frame.assign(_point=points).groupby(frame["label"].astype(str), sort=True):
        npoints = int(rows["_point"].sum())
        nranges = len(rows) - npoints
        majority = majority_kind(npoints, nranges)
        odd = rows if majority is None else rows[rows["_point"] != (majority == POINTS)]
        if not (npoints and nranges):
            odd = odd.iloc[0:0]
        where = tuple((str(p), int(n)) for p, n in zip(odd["path"] if "path" in odd else [""] * len(odd),
                                                        odd["line"] if "line" in odd else [0] * len(odd)))
        kinds[str(label)] = LabelKind(str(label), npoints, nranges, where)
    return kinds


def read_label_kinds(groundtruth: str | os.PathLike, *, labels: Iterable[str] | None = None,
                     kind: str = "annotated") -> dict[str, LabelKind]:
    """``{label: LabelKind}`` over every ``*-annotated*.csv`` below ``groundtruth`` (rows of
    ``kind``), each odd row with its file and line. A file that cannot be read is left out: the
    reader that loads it names its problem."""
    from songexplorer_core.annotations import AnnotationError, find_interval_csvs, read_intervals_csv

    frames = []
    for path in find_interval_csvs(groundtruth, kinds=[kind]):
        try:
            frame = read_intervals_csv(path, with_lines=True)
        except (AnnotationError, OSError):
            continue
        frame = frame[frame["kind"] == kind]
        if len(frame):
            frames.append(frame.assign(path=str(path)))
    if not frames:
        return {}
    frame = pd.concat(frames, ignore_index=True)
    if labels is not None:
        frame = frame[frame["label"].astype(str).isin(set(labels))]
    return label_kinds(frame)


def mixed_kind_notes(frame: pd.DataFrame, labels: Iterable[str], root: str | os.PathLike | None = None,
                     *, max_rows: int = 5) -> list[str]:
    """What training says about ``labels`` annotated both ways in ``frame`` (the annotations it
    uses): one summary per mixed label, then up to ``max_rows`` odd rows with file and line read
    from the CSVs below ``root`` (when given)."""
    wanted = set(labels)
    used = label_kinds(frame[frame["label"].astype(str).isin(wanted)])
    mixed = [k for k in used.values() if k.mixed]
    if not mixed:
        return []
    located = read_label_kinds(root, labels=[k.label for k in mixed]) if root is not None and Path(root).is_dir() \
        else {}
    notes = []
    for label_kind in mixed:
        notes.append(label_kind.summary())
        rows = located.get(label_kind.label, label_kind).problems() if label_kind.kind is not None else []
        notes.extend(rows[:max_rows])
        if len(rows) > max_rows:
            notes.append(f"... and {len(rows) - max_rows} more odd row(s) of label {label_kind.label!r}")
    return notes


class KindGuard:
    """The project's label kinds for the annotator: says when a new annotation breaks its label's
    pattern and which gesture makes the other kind.

    The kinds are read from the ground-truth folder's annotation files, again when they are
    older than ``max_age_s`` seconds (saves by this and other annotators) or after :meth:`forget`.
    """

    def __init__(self, groundtruth: str | os.PathLike, *, max_age_s: float = 30.0):
        self.groundtruth = Path(groundtruth)
        self.max_age_s = float(max_age_s)
        self._kinds: Mapping[str, LabelKind] | None = None
        self._read_at = 0.0

    def forget(self) -> None:
        self._kinds = None

    def kinds(self) -> Mapping[str, LabelKind]:
        if self._kinds is None or time.monotonic() - self._read_at > self.max_age_s:
            self._kinds = read_label_kinds(self.groundtruth)
            self._read_at = time.monotonic()
        return self._kinds

    def notice(self, annotations: pd.DataFrame) -> str:
        """A message for the first of ``annotations`` (an interval table: the session's own,
        unsaved or not) whose kind is not its label's kind in the project; ``""`` if none."""
        kinds = self.kinds()
        for row in annotations.itertuples(index=False):
            known = kinds.get(str(row.label))
            if known is None:
                continue
            this, majority = row_kind(row.start, row.stop), known.kind
            if majority is None or majority == this:
                continue
            return (f"label {row.label!r} is annotated as {majority} elsewhere ({known.counts()}) but this one "
                    f"(tics {row.start}-{row.stop}) is a {_ONE[this]}: {GESTURE[majority]} to make a "
                    f"{_ONE[majority]} instead (and remove this one), or use another label for {this}")
        return ""


__all__ = ["GESTURE", "KindGuard", "LabelKind", "POINTS", "RANGES", "label_kinds", "majority_kind",
           "mixed_kind_notes", "read_label_kinds", "row_kind"]
