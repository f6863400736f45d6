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
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from songexplorer_core.atomic import atomic_write, is_temporary
from songexplorer_core.audio_readers import is_audio_name, is_channel_name
from songexplorer_core.labels import FIX as LABEL_FIX
from songexplorer_core.labels import label_problem

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

    #: basename of the recording the CSV belongs to (".wav" assumed if it names no audio file or
    #: channel recording ``<file>-<name>``, ``songexplorer_core.audio_readers``)
    recording: str
    kind: str  #: annotated, detected, predicted, missed, mistakes, disjoint
    tag: str  #: annotator / threshold ratio / disjoint kind ("" when none)


_NAME = re.compile(
    r"^(?P<stem>.+?)-(?P<kind>annotated|predicted|disjoint)-(?P<tag>.+)\.csv$"
    r"|^(?P<stem2>.+?)-(?P<kind2>detected|predicted|missed|mistakes)\.csv$"
)
_TIMESTAMP_TAIL = re.compile(r"^(?P<rec>.+)-\d{8}T\d{6}$")
#: DAS's annotation CSVs end so (``songexplorer_core.formats.das``); such a name is never
#: SongExplorer's, even ``X.wav-annotated-NAME_annotations.csv`` (an export of a CSV to DAS).
DAS_SUFFIX = "_annotations.csv"


def parse_csv_name(name: str) -> CsvName | None:
    """Parse an interval CSV's file name; ``None`` if it is not one of SongExplorer's names.

    Handles both naming styles (``X.wav-annotated-NAME.csv`` and ``X-annotated-NAME.csv``), the
    ``X.wav-<timestamp>-annotated-NAME.csv`` style of several sessions of one annotator,
    ``-detected``, ``-predicted`` / ``-predicted-<ratio>pr``, ``-missed``, ``-mistakes`` and
    congruence's ``-disjoint-<kind>``.
    """
    name = Path(name).name
    match = _NAME.match(name)
    if not match or name.endswith(DAS_SUFFIX):
        return None
    stem = match.group("stem") or match.group("stem2")
    kind = match.group("kind") or match.group("kind2")
    tag = match.group("tag") or ""
    if not is_audio_name(stem):
        timestamped = _TIMESTAMP_TAIL.match(stem)
        if timestamped and is_audio_name(timestamped.group("rec")):
            stem = timestamped.group("rec")
        elif not is_channel_name(stem):  # <file>-<name>: a recording of the channel map
            stem = f"{stem}.wav"
    return CsvName(recording=stem, kind=kind, tag=tag)


def annotated_csv_name(recording: str, annotator: str) -> str:
    """The file name an annotator's annotations of ``recording`` are saved under."""
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", annotator or "") or f"-{annotator}.csv".endswith(DAS_SUFFIX):
        raise AnnotationError(
            f"annotator name {annotator!r} must be letters, digits, '.', '_' or '-' "
            f"(it becomes part of a file name), not ending in '_annotations' (DAS's files end so)."
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
#: Tics are int64 everywhere; larger numbers in a CSV are refused rather than wrapped around.
MAX_TIC = 2**62
_TIC = re.compile(r"[+-]?[0-9]+")
#: Byte-order marks a CSV may start with (Excel's "CSV UTF-8" writes the UTF-8 one).
_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


class AnnotationWarning(UserWarning):
    """Something in an interval CSV was read in a way worth knowing (exact duplicate rows counted
    once); the message names the file and lines."""


def _csv_text(path: Path) -> str:
    """The text of a CSV: UTF-8 (a byte-order mark is dropped; UTF-16 with a mark is accepted),
    any line ending (``\\n``, ``\\r\\n`` from Excel, ``\\r``)."""
    try:
        data = path.read_bytes()
    except IsADirectoryError as error:
        raise AnnotationError(f"{path}: is a folder, not an interval CSV.") from error
    except FileNotFoundError:
        raise
    except OSError as error:
        raise AnnotationError(f"{path}: cannot be read ({error.strerror or error}); check the file's permissions "
                              f"or copy it again.") from error
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), "utf-8")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        raise AnnotationError(
            f"{path}: not UTF-8 text ({error}). Save it as UTF-8 (Excel: 'CSV UTF-8 (Comma delimited)')."
        ) from error
    text = text.lstrip("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def wav_name_problem(wav: str) -> str | None:
    """Why ``wav`` cannot be the ``wav`` column of an interval CSV, or ``None``.

    The column holds the recording's file name (the CSV lies beside it), never a path: a name
    with a separator or ``..`` would reach outside the ground-truth folder.
    """
    if not wav:
        return "the wav column is empty"
    if "/" in wav or "\\" in wav or wav in (".", "..") or any(ord(c) < 32 or ord(c) == 127 for c in wav):
        return (f"wav {wav!r} is not a recording's file name (a path or control characters); write the "
                f"recording's file name only, the CSV lies beside it")
    return None


def _parse_tic(text: str) -> int | None:
    """A tic from CSV text: ASCII digits with an optional sign, within int64; else ``None``."""
    if not _TIC.fullmatch(text):
        return None
    value = int(text)
    return value if -MAX_TIC <= value <= MAX_TIC else None


def read_intervals_csv(
    path: str | os.PathLike,
    *,
    recording_tics: Mapping[str, int] | None = None,
    allow_unknown_kinds: bool = False,
    with_lines: bool = False,
    notes: list[str] | None = None,
) -> pd.DataFrame:
    """Read and validate one SongExplorer interval CSV (5 columns, or 6 for mistakes).

    Args:
        path: the CSV (UTF-8, with or without a byte-order mark; any line endings).
        recording_tics: if given, maps recording basename -> number of tics; rows naming a
            recording not in it, or reaching past its end, are errors.
        allow_unknown_kinds: accept kinds SongExplorer does not define.
        with_lines: add a ``line`` column (1-based line of each row in the file).
        notes: exact duplicate rows are kept once and said so, naming the file and lines:
            appended here when given, else as an :class:`AnnotationWarning`.

    Raises:
        AnnotationError: naming the file and each bad line (1-based) with what is wrong, for a
            missing column, non-numeric or negative tic, stop before start, unknown kind, a
            label that is not a valid name (empty, a path, a comma...:
            :func:`songexplorer_core.labels.check_label`), a wav column that is not a file
            name, unknown recording, or an interval past the end of its recording. No row is
            dropped silently: a file either loads whole or not at all.
    """
    path = Path(path)
    text = _csv_text(path)
    reader = csv.reader(io.StringIO(text))
    rows = []  # (line where the row starts, 1-based: a quoted cell may span lines; row)
    try:
        for row in reader:
            rows.append((rows[-1][2] + 1 if rows else 1, row, reader.line_num))
    except csv.Error as error:
        raise AnnotationError(f"{path}: line {reader.line_num}: not a readable CSV row ({error}); the file was "
                              f"not loaded.") from error
    problems: list[str] = []
    records = []
    lines: list[int] = []
    ncolumns = None
    for lineno, row, _ in rows:
        if not row or all(not cell.strip() for cell in row):
            continue  # blank lines carry nothing
        if len(row) not in (5, 6):
            hint = ("; it seems to use ';' between columns: save it with commas"
                    if len(row) == 1 and row[0].count(";") >= 4 else "")
            problems.append(
                f"line {lineno}: has {len(row)} column(s), expected 5 "
                f"(wav,start,stop,kind,label) or 6 for mistakes files{hint}"
            )
            continue
        if ncolumns is None:
            ncolumns = len(row)
        elif len(row) != ncolumns:
            problems.append(f"line {lineno}: has {len(row)} columns but earlier lines have {ncolumns}")
            continue
        wav, start_text, stop_text, kind, label = (cell.strip() for cell in row[:5])
        start, stop = _parse_tic(start_text), _parse_tic(stop_text)
        if start is None or stop is None:
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
        labels = [label] + ([row[5].strip()] if len(row) == 6 else [])
        for which, value in zip(("label", ANNOTATED_LABEL), labels):
            problem = label_problem(value)
            if problem is not None:
                problems.append(f"line {lineno}: {which} {value!r} {problem}; {LABEL_FIX}")
        wav_problem = wav_name_problem(wav)
        if wav_problem is not None:
            problems.append(f"line {lineno}: {wav_problem}")
        elif recording_tics is not None:
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
        records.append([wav, start, stop, kind, *labels, lineno])
    if problems:
        shown = problems[:MAX_REPORTED_PROBLEMS]
        more = len(problems) - len(shown)
        raise AnnotationError(
            f"{path}: {len(problems)} bad line(s); the file was not loaded. Fix these lines:\n  "
            + "\n  ".join(shown)
            + (f"\n  ... and {more} more" if more else "")
        )
    records = _once(records, path, notes)
    columns = [*COLUMNS, *([ANNOTATED_LABEL] if ncolumns == 6 else []), "line"]
    if not records:
        frame = empty_intervals(with_annotated_label=ncolumns == 6).assign(line=pd.Series([], dtype="int64"))
    else:
        values = dict(zip(columns, zip(*records)))
        frame = intervals_frame(**values)
    return frame if with_lines else frame.drop(columns="line")


def _once(records: list[list], path: Path, notes: list[str] | None) -> list[list]:
    """``records`` with exact duplicate rows (every column but the line) kept once, said so."""
    first_line: dict[tuple, int] = {}
    kept, repeated = [], []
    for record in records:
        key = tuple(record[:-1])
        if key in first_line:
            repeated.append(f"line {record[-1]} repeats line {first_line[key]}")
            continue
        first_line[key] = record[-1]
        kept.append(record)
    if repeated:
        shown = "; ".join(repeated[:MAX_REPORTED_PROBLEMS]) + (" ..." if len(repeated) > MAX_REPORTED_PROBLEMS else "")
        note_or_warn(f"{path}: {len(repeated)} exact duplicate row(s) counted once ({shown}); delete the "
                     f"repeated lines to silence this", notes)
    return kept


def note_or_warn(message: str, notes: list[str] | None) -> None:
    """Append ``message`` to ``notes`` when given, else warn with :class:`AnnotationWarning`."""
    if notes is not None:
        notes.append(message)
    else:
        warnings.warn(message, AnnotationWarning, stacklevel=3)


def drop_duplicate_intervals(frame: pd.DataFrame, *, by: Iterable[str] = COLUMNS, where: str = "",
                             notes: list[str] | None = None) -> pd.DataFrame:
    """``frame`` with rows equal in the ``by`` columns kept once (the first), said so.

    Gathering ground truth from several files (two annotators, or one annotator's file under
    both naming styles) must count a sound once. When ``frame`` has ``file`` and ``line``
    columns the note names where each repeated row came from.
    """
    by = [c for c in by if c in frame.columns]
    repeated = frame.duplicated(subset=by, keep="first")
    if not repeated.any():
        return frame
    located = "file" in frame.columns and "line" in frame.columns
    first_seen: dict[tuple, str] = {}
    examples = []
    for values, row in zip(frame[by].itertuples(index=False, name=None), frame.itertuples(index=False)):
        origin = f"{row.file} line {row.line}" if located else ""
        if values not in first_seen:
            first_seen[values] = origin
        elif len(examples) < 5:
            where_from = f" ({origin}, as {first_seen[values]})" if located else ""
            examples.append(f"{row.wav} {row.start}-{row.stop} {row.kind} {row.label}{where_from}")
    note_or_warn(f"{where + ': ' if where else ''}{int(repeated.sum())} annotation(s) appear more than once "
                 f"(same recording, tics, kind and label) and are counted once: {'; '.join(examples)}"
                 f"{' ...' if repeated.sum() > 5 else ''}", notes)
    return frame[~repeated].reset_index(drop=True)


def validate_intervals(frame: pd.DataFrame, *, source: str = "interval table") -> pd.DataFrame:
    """Check a table has the interval columns with sane values; return it typed."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise AnnotationError(f"{source}: missing column(s) {missing}; expected {list(COLUMNS)}")
    frame = _typed(frame)
    bad = frame.index[(frame["stop"] < frame["start"]) | (frame["start"] < 0)]
    if len(bad):
        raise AnnotationError(f"{source}: rows {list(bad[:10])} have a negative start or stop before start")
    problems = []
    for column in ("label", ANNOTATED_LABEL):
        if column in frame:
            for value in frame[column].dropna().unique():
                problem = label_problem(str(value))
                if problem is not None:
                    problems.append(f"{column} {str(value)!r} {problem}")
            if frame[column].isna().any():
                problems.append(f"{column} is missing in {int(frame[column].isna().sum())} row(s)")
    for value in frame["wav"].dropna().unique():
        problem = wav_name_problem(str(value))
        if problem is not None:
            problems.append(problem)
    if problems:
        raise AnnotationError(f"{source}: " + "; ".join(problems[:MAX_REPORTED_PROBLEMS]) + f" ({LABEL_FIX})")
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
