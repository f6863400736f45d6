"""Praat TextGrids (text files, the long and the short format).

Praat's manual ("TextGrid file formats"): a TextGrid has a time domain (``xmin``, ``xmax``, in
seconds) and tiers. An ``IntervalTier`` tiles the domain with intervals (``xmin``, ``xmax``,
``text``), empty text marking the gaps; a point tier (class ``TextTier``) holds points
(``number``, ``mark``). Praat reads a text file as a sequence of numbers, quoted strings (a
quote inside doubled, ``""``) and flags (``<exists>``), skipping the words and ``[n]`` indices
between them; ``!`` starts a comment. The long format names every value (``xmin = 0``), the
short one does not; both read here the same way. Files are UTF-8, UTF-16 with a byte-order mark,
or Latin-1 (Praat's other text encoding). Binary TextGrids are refused: save as a text file.

Read: every interval with text (not blank) is a range, every point a point; the label is the
text, whatever the tier's name. Written (long format, UTF-8): per label, the points in a point
tier and the ranges in interval tiers named after the label (ranges of one label that overlap
go to a second tier, ``<label> 2``), so any set of rows fits; the domain is 0 to the recording's
length (or the last time).
"""

from __future__ import annotations

import re
from decimal import Decimal

from songexplorer_core.formats.common import Event, Parsed

NAME = "textgrid"
TITLE = "Praat TextGrid"
SUFFIX = ".TextGrid"
PATTERN = re.compile(r"^(?P<stem>.+)\.TextGrid$", re.IGNORECASE)
LATIN1_FALLBACK = True

_TOKEN = re.compile(
    r'(?P<string>"(?:[^"]|"")*")'
    r"|(?P<flag><[A-Za-z]+>)"
    r"|(?P<index>\[[^\]\n]*\])"
    r"|(?P<comment>![^\n]*)"
    r"|(?P<word>[A-Za-z_][A-Za-z_0-9]*:?)"
    r"|(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<other>\S)",
)


class _Tokens:
    """Praat's reading of a text file: the next number, string or flag, with its line."""

    def __init__(self, text: str):
        self.items = []
        for match in _TOKEN.finditer(text):
            kind = match.lastgroup
            if kind in ("index", "comment", "word", "other"):
                continue
            line = text.count("\n", 0, match.start()) + 1
            value = match.group()
            if kind == "string":
                value = value[1:-1].replace('""', '"')
            self.items.append((kind, value, line))
        self.at = 0

    def next(self, kind: str, what: str) -> tuple[str, int]:
        if self.at >= len(self.items):
            raise _Malformed(f"the file ends where {what} was expected")
        found, value, line = self.items[self.at]
        self.at += 1
        if found != kind:
            raise _Malformed(f"line {line}: expected {what}, found {value!r}")
        return value, line

    def count(self, what: str) -> int:
        value, line = self.next("number", what)
        if not re.fullmatch(r"[0-9]+", value):
            raise _Malformed(f"line {line}: {what} {value!r} is not a whole number")
        return int(value)


class _Malformed(ValueError):
    pass


def parse(text: str, **_) -> Parsed:
    """The intervals and points of a TextGrid's text."""
    parsed = Parsed()
    if text.startswith("ooBinaryFile"):
        parsed.problems.append("a binary TextGrid; in Praat, save it with 'Save as text file...'")
        return parsed
    tokens = _Tokens(text)
    try:
        file_type, _ = tokens.next("string", 'File type = "ooTextFile"')
        object_class, line = tokens.next("string", 'Object class = "TextGrid"')
        if file_type != "ooTextFile" or object_class != "TextGrid":
            raise _Malformed(f"line {line}: not a TextGrid (file type {file_type!r}, object class {object_class!r})")
        tokens.next("number", "the TextGrid's xmin")
        tokens.next("number", "the TextGrid's xmax")
        flag, _ = tokens.next("flag", "<exists> or <absent>")
        ntiers = tokens.count("the number of tiers") if flag == "<exists>" else 0
        for _tier in range(ntiers):
            tier_class, line = tokens.next("string", 'a tier class ("IntervalTier" or "TextTier")')
            tokens.next("string", "the tier's name")
            tokens.next("number", "the tier's xmin")
            tokens.next("number", "the tier's xmax")
            if tier_class == "IntervalTier":
                for _i in range(tokens.count("the number of intervals")):
                    start, start_line = tokens.next("number", "an interval's xmin")
                    stop, _ = tokens.next("number", "an interval's xmax")
                    label, _ = tokens.next("string", "an interval's text")
                    if label.strip():
                        parsed.events.append(Event(start_line, start, stop, label))
            elif tier_class == "TextTier":
                for _p in range(tokens.count("the number of points")):
                    time, time_line = tokens.next("number", "a point's time")
                    mark, _ = tokens.next("string", "a point's mark")
                    parsed.events.append(Event(time_line, time, time, mark))
            else:
                raise _Malformed(f"line {line}: unknown tier class {tier_class!r} (IntervalTier or TextTier)")
    except _Malformed as error:
        parsed.problems.append(str(error))
        parsed.events.clear()
    parsed.events.sort(key=lambda e: (Decimal(e.start), Decimal(e.stop), e.label, e.line))
    return parsed


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _tiers(rows: list[tuple[str, str, str]]) -> list[tuple[str, str, list[tuple[str, str, str]]]]:
    """``(class, name, rows)`` per tier: per label (in order of first appearance), its points in
    one point tier and its ranges packed into as few interval tiers as do not overlap."""
    by_label: dict[str, list[tuple[str, str, str]]] = {}
    for row in rows:
        by_label.setdefault(row[2], []).append(row)
    tiers = []
    for label, labelled in by_label.items():
        points = sorted((r for r in labelled if Decimal(r[0]) == Decimal(r[1])), key=lambda r: Decimal(r[0]))
        ranges = sorted((r for r in labelled if Decimal(r[0]) != Decimal(r[1])),
                        key=lambda r: (Decimal(r[0]), Decimal(r[1])))
        packed: list[list[tuple[str, str, str]]] = []
        for row in ranges:
            tier = next((t for t in packed if Decimal(t[-1][1]) <= Decimal(row[0])), None)
            if tier is None:
                packed.append([row])
            else:
                tier.append(row)
        for number, tier in enumerate(packed, 1):
            tiers.append(("IntervalTier", label if number == 1 else f"{label} {number}", tier))
        if points:
            tiers.append(("TextTier", label if not packed else f"{label} points", points))
    return tiers


def render(rows: list[tuple[str, str, str]], *, duration: str, **_) -> str:
    """A long-format TextGrid of ``(start, stop, label)`` seconds text over ``0 .. duration`` s
    (widened to the last time if a row reaches past it)."""
    end = max([Decimal(duration), *(Decimal(r[1]) for r in rows)])
    xmax = duration if Decimal(duration) == end else next(r[1] for r in rows if Decimal(r[1]) == end)
    tiers = _tiers(rows)
    out = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {xmax}",
           "tiers? <exists>" if tiers else "tiers? <absent>"]
    if tiers:
        out += [f"size = {len(tiers)}", "item []:"]
    for number, (tier_class, name, tier_rows) in enumerate(tiers, 1):
        out += [f"    item [{number}]:", f"        class = {_quoted(tier_class)}", f"        name = {_quoted(name)}",
                "        xmin = 0", f"        xmax = {xmax}"]
        if tier_class == "TextTier":
            out.append(f"        points: size = {len(tier_rows)}")
            for index, (start, _, label) in enumerate(tier_rows, 1):
                out += [f"        points [{index}]:", f"            number = {start}",
                        f"            mark = {_quoted(label)}"]
            continue
        intervals, time = [], "0"
        for start, stop, label in tier_rows:
            if Decimal(start) > Decimal(time):
                intervals.append((time, start, ""))
            intervals.append((start, stop, label))
            time = stop
        if Decimal(time) < end:
            intervals.append((time, xmax, ""))
        out.append(f"        intervals: size = {len(intervals)}")
        for index, (start, stop, label) in enumerate(intervals, 1):
            out += [f"        intervals [{index}]:", f"            xmin = {start}", f"            xmax = {stop}",
                    f"            text = {_quoted(label)}"]
    return "\n".join(out) + "\n"
