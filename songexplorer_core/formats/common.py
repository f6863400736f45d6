"""What every annotation format shares: the rows read from a file, and their conversion to and
from the project's interval table (``songexplorer_core.annotations``) at the recording's rate.

A format module parses a file's text into :class:`Event` rows (times as the text wrote them,
the line each came from) and renders ``(start, stop, label)`` seconds text back into a file;
this module turns events into a checked interval table, and a table into seconds text
(:mod:`songexplorer_core.formats.timing` holds the rounding rule). Bad rows are never dropped:
every one is listed, with its line, and nothing of the file is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from songexplorer_core.annotations import (
    MAX_REPORTED_PROBLEMS,
    AnnotationError,
    drop_duplicate_intervals,
    intervals_frame,
    is_known_kind,
    note_or_warn,
    validate_intervals,
    wav_name_problem,
)
from songexplorer_core.formats.timing import check_rate, number_problem, parse_seconds, seconds_text, tic_of
from songexplorer_core.labels import FIX as LABEL_FIX
from songexplorer_core.labels import label_problem


class FormatError(AnnotationError):
    """An annotation file in another tool's format cannot be read or written; the message names
    the file, each bad line and the fix."""


@dataclass(frozen=True)
class Event:
    """One annotation as a file holds it."""

    line: int  #: 1-based line of the file it was read from
    start: str  #: start, seconds, as written
    stop: str  #: stop, seconds, as written (equal to ``start`` for a point)
    label: str
    wav: str | None = None  #: the recording, when the file names it (Raven's ``Begin File``)


@dataclass
class Parsed:
    """What a format module read from one file."""

    events: list[Event] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  #: ``line N: what is wrong`` (the file is refused)
    notes: list[str] = field(default_factory=list)  #: things read in a way worth knowing


#: Byte-order marks and their encodings (Praat writes UTF-16 with a mark; Excel UTF-8 with one).
_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def read_text(path: Path, *, latin1_fallback: bool = False) -> str:
    """A file's text with ``\\n`` line ends: UTF-8 or UTF-16 with a byte-order mark, else UTF-8
    (Latin-1 when ``latin1_fallback`` and the bytes are not UTF-8: Praat's other text encoding)."""
    try:
        data = path.read_bytes()
    except IsADirectoryError as error:
        raise FormatError(f"{path}: is a folder, not an annotation file.") from error
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), "utf-8")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        if latin1_fallback and encoding == "utf-8":
            text = data.decode("latin-1")
        else:
            raise FormatError(f"{path}: not {encoding.upper()} text ({error}); save it as UTF-8.") from error
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def refuse(path: Path | str, problems: list[str], what: str = "bad line(s)") -> None:
    """Raise :class:`FormatError` listing ``problems`` (at most :data:`MAX_REPORTED_PROBLEMS`)."""
    shown = problems[:MAX_REPORTED_PROBLEMS]
    more = len(problems) - len(shown)
    raise FormatError(f"{path}: {len(problems)} {what}; the file was not loaded. Fix these:\n  "
                      + "\n  ".join(shown) + (f"\n  ... and {more} more" if more else ""))


def events_to_table(
    parsed: Parsed,
    path: str | os.PathLike,
    *,
    rate: int,
    wav: str | None,
    kind: str = "annotated",
    recording_tics: Mapping[str, int] | None = None,
    notes: list[str] | None = None,
) -> pd.DataFrame:
    """The interval table of ``parsed`` (rows in file order): seconds to tics at ``rate`` Hz.

    Args:
        parsed: what a format module read from ``path``.
        path: the file, for messages.
        rate: the recording's sample rate, Hz.
        wav: the recording's file name, for rows whose file does not name one.
        kind: the kind of every row (``annotated``; ``detected`` allows SongExplorer's
            detector's negative starts, as the CSV reader does).
        recording_tics: recording file name -> length in tics; rows past the end are refused.
        notes: exact duplicates (kept once) and the format's own notes are appended here.

    Raises:
        FormatError: naming the file and every bad line (not a number, stop before start, a
            negative time, past the end of the recording, a label that is not a name, no
            recording named), nothing loaded.
    """
    rate = check_rate(rate)
    problems = list(parsed.problems)
    if not is_known_kind(kind):
        problems.append(f"kind {kind!r} is not one SongExplorer knows (annotated, detected, predicted, ...)")
    records = []
    for event in parsed.events:
        where = f"line {event.line}"
        start_s, stop_s = parse_seconds(event.start), parse_seconds(event.stop)
        if start_s is None or stop_s is None:
            bad = [number_problem(t, n) for t, n, v in ((event.start, "start", start_s), (event.stop, "stop", stop_s))
                   if v is None]
            problems.append(f"{where}: " + "; ".join(bad))
            continue
        start, stop = tic_of(start_s, rate), tic_of(stop_s, rate)
        if stop < start:
            problems.append(f"{where}: stop {event.stop} s is before start {event.start} s")
        if start < 0 and kind != "detected":
            problems.append(f"{where}: start {event.start} s is before the recording begins")
        problem = label_problem(event.label)
        if problem is not None:
            problems.append(f"{where}: label {event.label!r} {problem}; {LABEL_FIX}")
        name = event.wav or wav
        if name is None:
            problems.append(f"{where}: no recording named; give the recording (--wav PATH) or name the file "
                            f"after it")
            continue
        wav_problem = wav_name_problem(name)
        if wav_problem is not None:
            problems.append(f"{where}: {wav_problem}")
        elif recording_tics is not None and name in recording_tics and stop >= recording_tics[name] + (
                kind == "detected"):
            problems.append(f"{where}: stop {event.stop} s (tic {stop}) is past the end of {name} "
                            f"({recording_tics[name]} tics, {seconds_text(recording_tics[name], rate)} s)")
        records.append((name, start, stop, event.label, event.line))
    if problems:
        refuse(path, problems)
    for note in parsed.notes:
        note_or_warn(f"{path}: {note}", notes)
    if not records:
        frame = intervals_frame([], [], [], [], [])
    else:
        names, starts, stops, labels, lines = zip(*records)
        frame = intervals_frame(list(names), list(starts), list(stops), kind, list(labels))
        frame = frame.assign(file=str(path), line=list(lines))
        frame = drop_duplicate_intervals(frame, where=str(path), notes=notes)
        frame = frame.drop(columns=["file", "line"])
    return frame


def table_rows(table: pd.DataFrame, rate: int, *, source: str = "interval table") -> list[tuple[str, str, str]]:
    """``(start, stop, label)`` seconds text of each row of an interval table, in its order."""
    rate = check_rate(rate)
    table = validate_intervals(table, source=source)
    return [(seconds_text(int(start), rate), seconds_text(int(stop), rate), str(label))
            for start, stop, label in table[["start", "stop", "label"]].itertuples(index=False, name=None)]
