"""Raven selection tables (Cornell Lab of Ornithology's Raven Pro and Raven Lite).

Raven saves a selection table as tab-separated text with a header line (Raven Pro's manual,
"Saving selection tables"; default name ``<sound>.Table.1.selections.txt``)::

    Selection<TAB>View<TAB>Channel<TAB>Begin Time (s)<TAB>End Time (s)<TAB>Low Freq (Hz)<TAB>High Freq (Hz)<TAB>Annotation
    1<TAB>Spectrogram 1<TAB>1<TAB>0.004<TAB>0.0096<TAB>0<TAB>1250<TAB>mel-sine

* Times are seconds from the start of the sound; a point selection has ``Begin == End``.
* A table of a window with several views lists every selection once per view (``Waveform 1``,
  ``Spectrogram 1``) under the same ``Selection`` number: read once (a note says how many
  repeats were merged; repeats that disagree on times or label are refused).
* The label is the ``Annotation`` column (Raven's default annotation column), or the column
  named by ``label_column``. Other columns (measurements, ``Begin File``...) are kept out.
* A table of several sound files (``Begin File`` names more than one) is refused: save one
  table per sound file.
* Cells are not quoted: a label is the cell's text as it is.

Written: ``Selection, View, Channel, Begin Time (s), End Time (s), Low Freq (Hz), High Freq (Hz),
Annotation``, view ``Spectrogram 1``, channel 1, frequencies 0 to the Nyquist frequency.
"""

from __future__ import annotations

import re

from songexplorer_core.formats.common import Event, Parsed

NAME = "raven"
TITLE = "Raven selection table"
SUFFIX = ".Table.1.selections.txt"
#: ``<stem>.Table.<n>.selections.txt`` (Raven numbers the tables of a sound).
PATTERN = re.compile(r"^(?P<stem>.+)\.Table\.[0-9]+\.selections\.txt$", re.IGNORECASE)
BEGIN, END = "Begin Time (s)", "End Time (s)"
LABEL_COLUMN = "Annotation"
HEADER = ("Selection", "View", "Channel", BEGIN, END, "Low Freq (Hz)", "High Freq (Hz)", LABEL_COLUMN)


def parse(text: str, *, label_column: str | None = None) -> Parsed:
    """The selections of a Raven table's text (``\\n`` line ends)."""
    label_column = label_column or LABEL_COLUMN
    parsed = Parsed()
    lines = text.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return parsed  # an empty table: no selections
    header = [cell.strip() for cell in lines[first].split("\t")]
    missing = [name for name in (BEGIN, END, label_column) if name not in header]
    if missing:
        hint = (" (the label column is Raven's 'Annotation'; name another with --label-column)"
                if label_column in missing else "")
        parsed.problems.append(f"line {first + 1}: the header has no column {missing}{hint}; it has {header}")
        return parsed
    at = {name: header.index(name) for name in header[::-1]}
    files = set()
    seen: dict[str, tuple[int, tuple[str, str, str]]] = {}
    repeats = 0
    for index in range(first + 1, len(lines)):
        line = lines[index]
        if not line.strip():
            continue
        lineno = index + 1
        cells = line.split("\t")
        if len(cells) < len(header):
            cells += [""] * (len(header) - len(cells))
        if len(cells) > len(header):
            parsed.problems.append(f"line {lineno}: has {len(cells)} cells, the header {len(header)}")
            continue
        start, stop, label = cells[at[BEGIN]].strip(), cells[at[END]].strip(), cells[at[label_column]]
        if "Begin File" in at:
            files.add(cells[at["Begin File"]].strip())
        selection = cells[at["Selection"]].strip() if "Selection" in at else None
        if selection:
            if selection in seen:
                first_line, values = seen[selection]
                if values != (start, stop, label):
                    parsed.problems.append(f"line {lineno}: selection {selection} repeats line {first_line} with "
                                           f"other times or label ({values} vs {(start, stop, label)})")
                repeats += 1
                continue
            seen[selection] = (lineno, (start, stop, label))
        parsed.events.append(Event(lineno, start, stop, label))
    if len(files) > 1:
        parsed.problems.append(f"the table covers {len(files)} sound files ({sorted(files)[:3]}...); save one "
                               f"selection table per sound file")
    if repeats:
        parsed.notes.append(f"{repeats} row(s) repeat a selection in another view (same Selection number); "
                            f"each selection was read once")
    return parsed


def render(rows: list[tuple[str, str, str]], *, rate: int, duration: str) -> str:
    """A Raven selection table of ``(start, stop, label)`` seconds text."""
    from songexplorer_core.formats.timing import seconds_text

    nyquist = seconds_text(rate, 2)  # rate / 2 Hz, written without a binary float
    lines = ["\t".join(HEADER)]
    for number, (start, stop, label) in enumerate(rows, 1):
        lines.append("\t".join((str(number), "Spectrogram 1", "1", start, stop, "0", nyquist, label)))
    return "\n".join(lines) + "\n"
