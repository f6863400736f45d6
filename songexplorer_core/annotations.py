"""SongExplorer's interval CSVs: one table type, both naming styles, validation, atomic writes.

A SongExplorer interval CSV has no header and five columns::

    PS_20130625111709_ch3.wav,5013,10972,annotated,ambient

``wav`` (the recording's basename), ``start`` and ``stop`` (0-based tics, **both inclusive**: a
point annotation has ``start == stop``), ``kind`` (where the interval came from) and ``label``.
Mistakes files add a sixth column, the annotated label (their fifth is the prediction).

Everywhere in this project an interval table is a pandas DataFrame with exactly those columns
(string columns Arrow-backed, tics int64), made by :func:`intervals_frame`.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from songexplorer_core.atomic import atomic_write, is_temporary

COLUMNS = ("wav", "start", "stop", "kind", "label")
#: Extra column of 6-column mistakes files: the label people gave (column 5 is the prediction).
ANNOTATED_LABEL = "annotated_label"

#: Kinds SongExplorer writes or reads, plus congruence's disjoint-set kinds (matched by prefix).
KNOWN_KINDS = frozenset({"annotated", "detected", "predicted", "missed", "correct", "mistaken", "everyone"})
KIND_PREFIXES = ("tic-only", "tic-not", "label-only", "label-not")

#: Folders SongExplorer's GUI creates inside the ground truth that never hold ground truth.
IGNORED_FOLDER = re.compile(r"^(oldfiles|congruence)-\d{8}T\d{6}$")

STRING_DTYPE = pd.StringDtype(storage="pyarrow", na_value=np.nan)


class AnnotationError(ValueError):
    """An interval CSV or table is malformed; the message names the file, line and fix."""


def is_known_kind(kind: str) -> bool:
    """True for a kind SongExplorer knows (``annotated``, ``detected``, ... ``tic-only<name>``)."""
    return kind in KNOWN_KINDS or any(kind.startswith(prefix) for prefix in KIND_PREFIXES)


def intervals_frame(wav=(), start=(), stop=(), kind=(), label=(), **extra) -> pd.DataFrame:
    """Build an interval table; scalars are broadcast against the array-like arguments.

    Args:
        wav: recording basename(s), e.g. ``"PS_20130625111709_ch3.wav"``.
        start, stop: first and last tic, inclusive, 0-based.
        kind: e.g. ``"annotated"``, ``"detected"``.
        label: e.g. ``"mel-pulse"``.
        **extra: further columns (e.g. ``annotated_label`` for mistakes).
    """
    columns = {"wav": wav, "start": start, "stop": stop, "kind": kind, "label": label, **extra}
    lengths = {len(v) for v in columns.values() if not isinstance(v, (str, int, np.integer)) and np.ndim(v) > 0}
    if len(lengths) > 1:
        raise ValueError(f"interval columns have different lengths: {sorted(lengths)}")
    n = lengths.pop() if lengths else 1
    data = {}
    for name, value in columns.items():
        if isinstance(value, (str, int, np.integer)) or np.ndim(value) == 0:
            value = [value] * n
        data[name] = value
    frame = pd.DataFrame(data)
    return _typed(frame)


def empty_intervals(*, with_annotated_label: bool = False) -> pd.DataFrame:
    """An interval table with no rows."""
    extra = {ANNOTATED_LABEL: []} if with_annotated_label else {}
    return intervals_frame([], [], [], [], [], **extra)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for name in ("wav", "kind", "label", ANNOTATED_LABEL):
        if name in frame:
            frame[name] = frame[name].astype(STRING_DTYPE)
    for name in ("start", "stop"):
        frame[name] = frame[name].astype("int64")
    return frame.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# file names


@dataclass(frozen=True)
class CsvName:
    """What an interval CSV's name says: which recording, which kind, and the tag after it.

    ``PS.wav-annotated-person1.csv`` and ``PS-annotated-person1.csv`` both give
    ``CsvName(recording="PS.wav", kind="annotated", tag="person1")``.
    """

    recording: str  #: basename of the recording the CSV belongs to (".wav" assumed if absent)
    kind: str  #: annotated, detected, predicted, missed, mistakes, disjoint
    tag: str  #: annotator / threshold ratio / disjoint kind ("" when none)


_NAME = re.compile(
    r"^(?P<stem>.+?)-(?P<kind>annotated|predicted|disjoint)-(?P<tag>.+)\.csv$"
    r"|^(?P<stem2>.+?)-(?P<kind2>detected|predicted|missed|mistakes)\.csv$"
)
_TIMESTAMP_TAIL = re.compile(r"^(?P<rec>.+)-\d{8}T\d{6}$")


def parse_csv_name(name: str) -> CsvName | None:
    """Parse an interval CSV's file name; ``None`` if it is not one of SongExplorer's names.

    Handles both naming styles (``X.wav-annotated-NAME.csv`` and ``X-annotated-NAME.csv``), the
    ``X.wav-<timestamp>-annotated-NAME.csv`` style of several sessions of one annotator,
    ``-detected``, ``-predicted`` / ``-predicted-<ratio>pr``, ``-missed``, ``-mistakes`` and
    congruence's ``-disjoint-<kind>``.
    """
    name = Path(name).name
    match = _NAME.match(name)
    if not match:
        return None
    stem = match.group("stem") or match.group("stem2")
    kind = match.group("kind") or match.group("kind2")
    tag = match.group("tag") or ""
    if not stem.lower().endswith(".wav"):
        timestamped = _TIMESTAMP_TAIL.match(stem)
        if timestamped and timestamped.group("rec").lower().endswith(".wav"):
            stem = timestamped.group("rec")
        else:
            stem = f"{stem}.wav"
    return CsvName(recording=stem, kind=kind, tag=tag)


def annotated_csv_name(recording: str, annotator: str) -> str:
    """The file name an annotator's annotations of ``recording`` are saved under."""
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", annotator or ""):
        raise AnnotationError(
            f"annotator name {annotator!r} must be letters, digits, '.', '_' or '-' "
            f"(it becomes part of a file name)."
        )
    return f"{Path(recording).name}-annotated-{annotator}.csv"


def is_ignored_folder(path: Path, root: Path) -> bool:
    """True if any folder between ``root`` and ``path`` is an ``oldfiles-*``/``congruence-*``
    folder (SongExplorer ignored these only directly under the root: QUIRK 5, fixed)."""
    relative = path.relative_to(root)
    return any(IGNORED_FOLDER.match(part) for part in relative.parts[:-1])


def find_interval_csvs(root: str | os.PathLike, kinds: Iterable[str] | None = None) -> list[Path]:
    """All interval CSVs below ``root`` (any depth), sorted, skipping temporary files and
    ``oldfiles-*``/``congruence-*`` folders. ``kinds`` filters by the kind in the *name*."""
    root = Path(root)
    wanted = None if kinds is None else set(kinds)
    found = []
    for path in sorted(root.rglob("*.csv")):
        if is_temporary(path) or is_ignored_folder(path, root):
            continue
        parsed = parse_csv_name(path.name)
        if parsed is None or (wanted is not None and parsed.kind not in wanted):
            continue
        found.append(path)
    return found


# --------------------------------------------------------------------------------------------
# reading and writing

MAX_REPORTED_PROBLEMS = 20


def read_intervals_csv(
    path: str | os.PathLike,
    *,
    recording_tics: Mapping[str, int] | None = None,
    allow_unknown_kinds: bool = False,
    with_lines: bool = False,
) -> pd.DataFrame:
    """Read and validate one SongExplorer interval CSV (5 columns, or 6 for mistakes).

    Args:
        path: the CSV.
        recording_tics: if given, maps recording basename -> number of tics; rows naming a
            recording not in it, or reaching past its end, are errors.
        allow_unknown_kinds: accept kinds SongExplorer does not define.
        with_lines: add a ``line`` column, each row's line in the file (1-based), for messages
            that name it (``label_kinds``).

    Raises:
        AnnotationError: naming the file and each bad line (1-based) with what is wrong, for a
            missing column, non-numeric or negative tic, stop before start, unknown kind,
            unknown recording, or an interval past the end of its recording. No row is dropped
            silently: a file either loads whole or not at all.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise AnnotationError(f"{path}: not a text CSV file ({error}).") from error
    rows = list(csv.reader(io.StringIO(text)))
    problems: list[str] = []
    records = []
    lines: list[int] = []
    ncolumns = None
    for lineno, row in enumerate(rows, start=1):
        if not row or all(not cell.strip() for cell in row):
            continue  # blank lines carry nothing
        if len(row) not in (5, 6):
            problems.append(
                f"line {lineno}: has {len(row)} column(s), expected 5 "
                f"(wav,start,stop,kind,label) or 6 for mistakes files"
            )
            continue
        if ncolumns is None:
            ncolumns = len(row)
        elif len(row) != ncolumns:
            problems.append(f"line {lineno}: has {len(row)} columns but earlier lines have {ncolumns}")
            continue
        wav, start_text, stop_text, kind, label = (cell.strip() for cell in row[:5])
        try:
            start, stop = int(start_text), int(stop_text)
        except ValueError:
            problems.append(f"line {lineno}: start/stop tics must be whole numbers, got {start_text!r}, {stop_text!r}")
            continue
        # SongExplorer's own detector writes frequency rows starting up to a quarter window before
        # tic 0 and time rows whose stop is one past the last loud tic (its quirks 1-2): a
        # ground-truth folder holding its -detected.csv files must load as it is.
        songexplorer_detected = kind == "detected"
        if start < 0 and not songexplorer_detected:
            problems.append(f"line {lineno}: start tic {start} is negative")
        if stop < start:
            problems.append(f"line {lineno}: stop tic {stop} is before start tic {start}")
        if not allow_unknown_kinds and not is_known_kind(kind):
            problems.append(
                f"line {lineno}: unknown kind {kind!r} (expected one of "
                f"{', '.join(sorted(KNOWN_KINDS))}, or a congruence kind)"
            )
        if not wav:
            problems.append(f"line {lineno}: the wav column is empty")
        if recording_tics is not None and wav:
            if wav not in recording_tics:
                problems.append(
                    f"line {lineno}: names recording {wav!r}, which is not in the ground-truth folder "
                    f"(add the WAV, or fix the name in the CSV)"
                )
            elif stop >= recording_tics[wav] + (1 if songexplorer_detected else 0):
                problems.append(
                    f"line {lineno}: stop tic {stop} is past the end of {wav} "
                    f"({recording_tics[wav]} tics, last tic {recording_tics[wav] - 1})"
                )
        record = [wav, start, stop, kind, label]
        if len(row) == 6:
            record.append(row[5].strip())
        records.append(record)
        lines.append(lineno)
    if problems:
        shown = problems[:MAX_REPORTED_PROBLEMS]
        more = len(problems) - len(shown)
        raise AnnotationError(
            f"{path}: {len(problems)} bad line(s); the file was not loaded. Fix these lines:\n  "
            + "\n  ".join(shown)
            + (f"\n  ... and {more} more" if more else "")
        )
    if ncolumns == 6:
        if not records:
            frame = empty_intervals(with_annotated_label=True)
        else:
            wav, start, stop, kind, label, annotated = zip(*records)
            frame = intervals_frame(wav, start, stop, kind, label, **{ANNOTATED_LABEL: annotated})
    elif not records:
        frame = empty_intervals()
    else:
        wav, start, stop, kind, label = zip(*records)
        frame = intervals_frame(wav, start, stop, kind, label)
    return frame.assign(line=pd.Series(lines, dtype="int64")) if with_lines else frame


def validate_intervals(frame: pd.DataFrame, *, source: str = "interval table") -> pd.DataFrame:
    """Check a table has the interval columns with sane values; return it typed."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise AnnotationError(f"{source}: missing column(s) {missing}; expected {list(COLUMNS)}")
    frame = _typed(frame)
    bad = frame.index[(frame["stop"] < frame["start"]) | (frame["start"] < 0)]
    if len(bad):
        raise AnnotationError(f"{source}: rows {list(bad[:10])} have a negative start or stop before start")
    return frame


def intervals_to_csv_text(frame: pd.DataFrame) -> str:
    """SongExplorer's CSV text for an interval table: no header, ``\\n`` line ends."""
    frame = validate_intervals(frame)
    columns = list(COLUMNS) + ([ANNOTATED_LABEL] if ANNOTATED_LABEL in frame.columns else [])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in frame[columns].itertuples(index=False, name=None):
        writer.writerow([row[0], int(row[1]), int(row[2]), *row[3:]])
    return buffer.getvalue()


def write_intervals_csv(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write an interval table as a SongExplorer CSV, atomically (temp file, then rename)."""
    path = Path(path)
    text = intervals_to_csv_text(frame)
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return path


def concat_intervals(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate interval tables (an empty iterable gives an empty table)."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_intervals()
    return _typed(pd.concat(frames, ignore_index=True))


def label_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Rows per label, most common first."""
    return {str(k): int(v) for k, v in frame["label"].value_counts().items()}


def interval_csvs_for_recording(wav_path: str | os.PathLike, kinds: Iterable[str] = ("annotated",)) -> list[Path]:
    """The interval CSVs beside a recording whose names say they belong to it (either naming
    style), of the given kinds (by name: annotated, detected, predicted, missed, mistakes), sorted."""
    wav_path = Path(wav_path)
    wanted = set(kinds)
    found = []
    for path in sorted(wav_path.parent.glob("*.csv")):
        if is_temporary(path):
            continue
        parsed = parse_csv_name(path.name)
        if parsed is None or parsed.kind not in wanted:
            continue
        if parsed.recording == wav_path.name or (
            parsed.recording.lower() == wav_path.name.lower() and not (wav_path.parent / parsed.recording).exists()
        ):
            found.append(path)
    return found
