"""Audacity label tracks (File > Export > Labels; File > Import > Labels).

Audacity's manual ("Importing and exporting labels", standard format): UTF-8 text, one label a
line, ``start<TAB>end<TAB>label`` in seconds; a point label has ``start == end``. A label made
on a spectral selection is followed by a line ``\\<TAB>low frequency<TAB>high frequency``,
which is read past (the frequencies are not kept). Audacity writes times with 6 decimals.
Cells are not quoted: a label is the rest of the line after the second tab, as it is.
"""

from __future__ import annotations

import re

from songexplorer_core.formats.common import Event, Parsed

NAME = "audacity"
TITLE = "Audacity label track"
SUFFIX = ".txt"
PATTERN = re.compile(r"^(?P<stem>.+)\.txt$", re.IGNORECASE)


def parse(text: str, **_) -> Parsed:
    """The labels of an Audacity label track's text (``\\n`` line ends)."""
    parsed = Parsed()
    for index, line in enumerate(text.split("\n")):
        lineno = index + 1
        if not line.strip():
            continue
        cells = line.split("\t", 2)
        if cells[0].strip() == "\\":
            continue  # the frequencies of the label above (a spectral selection)
        if len(cells) < 2:
            parsed.problems.append(f"line {lineno}: expected start<TAB>end<TAB>label, got {line[:60]!r}")
            continue
        label = cells[2] if len(cells) == 3 else ""
        parsed.events.append(Event(lineno, cells[0].strip(), cells[1].strip(), label))
    return parsed


def render(rows: list[tuple[str, str, str]], **_) -> str:
    """An Audacity label track of ``(start, stop, label)`` seconds text."""
    return "".join(f"{start}\t{stop}\t{label}\n" for start, stop, label in rows)
