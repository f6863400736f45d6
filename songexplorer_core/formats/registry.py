"""The annotation formats by name and by file suffix."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import songexplorer_core.formats.audacity as audacity
import songexplorer_core.formats.das as das
import songexplorer_core.formats.raven as raven
import songexplorer_core.formats.textgrid as textgrid
from songexplorer_core.formats.common import FormatError


@dataclass(frozen=True)
class Format:
    """One tool's annotation file format (its module parses and renders the text)."""

    name: str  #: what the command line and the project settings call it, e.g. ``raven``
    title: str  #: e.g. ``Raven selection table``
    suffix: str  #: what written files end with, e.g. ``.Table.1.selections.txt``
    pattern: re.Pattern  #: a file name of this format; group ``stem`` is the name before the suffix
    module: ModuleType

    def stem(self, filename: str) -> str | None:
        """The part of ``filename`` before this format's suffix, or ``None`` if it has not the suffix."""
        match = self.pattern.match(Path(filename).name)
        return match.group("stem") if match else None


#: Every format, by name; file names are matched in this order (Raven's ``.Table.1.selections.txt``
#: before Audacity's plain ``.txt``).
FORMATS: dict[str, Format] = {
    module.NAME: Format(module.NAME, module.TITLE, module.SUFFIX, module.PATTERN, module)
    for module in (raven, textgrid, das, audacity)
}


def format_named(name: str) -> Format:
    """The format called ``name`` (case-insensitive); :class:`FormatError` naming the known ones."""
    found = FORMATS.get(str(name).strip().lower())
    if found is None:
        raise FormatError(f"unknown annotation format {name!r}; the formats are {', '.join(FORMATS)}")
    return found


def format_of_file(path: str | Path) -> Format | None:
    """The format a file's name says (by suffix, most specific first), or ``None``."""
    return next((f for f in FORMATS.values() if f.stem(Path(path).name) is not None), None)


def check_format_names(names: Iterable[str], *, where: str = "annotation formats") -> tuple[str, ...]:
    """``names`` as known format names, lower case, each once; :class:`FormatError` naming any unknown."""
    checked = []
    for name in names:
        if not isinstance(name, str) or str(name).strip().lower() not in FORMATS:
            raise FormatError(f"{where}: unknown annotation format {name!r}; the formats are {', '.join(FORMATS)}")
        if name.strip().lower() not in checked:
            checked.append(name.strip().lower())
    return tuple(checked)
