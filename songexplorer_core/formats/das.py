"""DAS's annotation CSVs (Deep Audio Segmenter, janclemenslab/das).

DAS's GUI saves the song annotations of ``<name>.wav`` as ``<name>_annotations.csv``, a CSV with a
header and one row per event or segment (DAS's ``annot.Events.to_df``: columns ``name``,
``start_seconds``, ``stop_seconds``); an *event* (a pulse) has ``start_seconds == stop_seconds``,
a *segment* (sine song, a syllable) is longer. A song type with no annotations yet is kept as a
row with an empty ``start_seconds`` (DAS's "empty" convention); such rows annotate nothing and
are read past with a note. Columns are found by name (an index column pandas may add is
ignored); cells follow the CSV rules (a label with a comma or quote is quoted).
"""

from __future__ import annotations

import csv
import io
import re

from songexplorer_core.formats.common import Event, Parsed

NAME = "das"
TITLE = "DAS annotations CSV"
SUFFIX = "_annotations.csv"
PATTERN = re.compile(r"^(?P<stem>.+)_annotations\.csv$", re.IGNORECASE)
HEADER = ("name", "start_seconds", "stop_seconds")
_EMPTY = ("", "nan", "NaN")


def parse(text: str, **_) -> Parsed:
    """The events and segments of a DAS annotations CSV's text."""
    parsed = Parsed()
    reader = csv.reader(io.StringIO(text))
    rows = []
    try:
        for row in reader:
            rows.append((reader.line_num, row))
    except csv.Error as error:
        parsed.problems.append(f"line {reader.line_num}: not a readable CSV row ({error})")
        return parsed
    rows = [(n, r) for n, r in rows if r and any(c.strip() for c in r)]
    if not rows:
        return parsed
    line, header = rows[0]
    header = [c.strip() for c in header]
    missing = [c for c in HEADER if c not in header]
    if missing:
        parsed.problems.append(f"line {line}: the header has no column {missing} (DAS writes "
                               f"name,start_seconds,stop_seconds); it has {header}")
        return parsed
    at = {name: header.index(name) for name in HEADER}
    declared = []
    for lineno, row in rows[1:]:
        if len(row) != len(header):
            parsed.problems.append(f"line {lineno}: has {len(row)} cells, the header {len(header)}")
            continue
        name, start, stop = row[at["name"]], row[at["start_seconds"]].strip(), row[at["stop_seconds"]].strip()
        if start in _EMPTY:
            declared.append(name)
            continue
        parsed.events.append(Event(lineno, start, stop, name))
    if declared:
        parsed.notes.append(f"{len(declared)} song type(s) declared without annotations ({sorted(set(declared))}); "
                            f"nothing to read from those rows")
    return parsed


def render(rows: list[tuple[str, str, str]], **_) -> str:
    """A DAS annotations CSV of ``(start, stop, label)`` seconds text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    for start, stop, label in rows:
        writer.writerow((label, start, stop))
    return buffer.getvalue()
