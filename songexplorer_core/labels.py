"""Labels are names, never paths: the one check every label passes where it enters.

A label (``mel-pulse``, ``ambient``, ``time``) travels in comma-separated lists (``--labels``,
SongExplorer's ``labels_touse``), one per line in ``labels.txt``, in a CSV column, and into file
names (classify's ``<stem>-<label>.wav``, congruence's ``congruence.<measure>.<label>.csv``). A
label that held ``/`` or ``..`` once made classify overwrite a recording. So a label is checked
once where it enters (the CSV reader, ``labels.txt``, the command line, the Dagster run
configuration, the annotator's label boxes) by :func:`check_label`, and every file name built
from one goes through :func:`child_path`, which refuses any name that would leave its folder
whatever it holds (defence in depth: a label that slipped past the first check still cannot
reach another folder).

A valid label is non-empty text, with no leading or trailing space, at most
:data:`MAX_LABEL_BYTES` bytes of UTF-8, holding no path separator (``/``, ``\\``), no ``..``,
no comma, and no control or invisible formatting character (newlines, tabs, NUL, bidirectional
overrides). Spaces, ``-``, ``_``, ``.`` and letters of any script are fine.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable
from pathlib import Path

#: A label becomes part of a file name (``<stem>-<label>.wav``); file names are at most 255 bytes.
MAX_LABEL_BYTES = 100
#: Unicode categories refused: control (Cc: newline, tab, NUL...), format (Cf: bidirectional
#: overrides, zero-width characters), surrogates (Cs), line and paragraph separators (Zl, Zp).
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_SEPARATORS = ("/", "\\")

FIX = ("a label is a name such as mel-pulse: letters, digits, spaces, '-', '_' or '.', without '/', '\\', "
       "'..', commas or control characters")


class LabelError(ValueError):
    """A label is not a valid name; the message says which label, where it came from and the fix."""


class UnsafePathError(ValueError):
    """A file name built from a label (or another name) would leave its folder."""


def label_problem(label) -> str | None:
    """Why ``label`` is not a valid label, or ``None`` if it is one (see the module docstring)."""
    if not isinstance(label, str):
        return f"is not text ({type(label).__name__})"
    if not label:
        return "is empty"
    for character in label:
        if unicodedata.category(character) in _REFUSED_CATEGORIES:
            return f"holds the control character U+{ord(character):04X}"
    if label != label.strip():
        return "starts or ends with a space"
    if any(separator in label for separator in _SEPARATORS):
        return "holds a path separator ('/' or '\\')"
    if ".." in label or set(label) == {"."}:
        return "holds '..' (a label is a name, not a path)"
    if "," in label:
        return "holds a comma (labels travel in comma-separated lists)"
    try:
        size = len(label.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates are refused above; kept for safety
        return "is not valid Unicode text"
    if size > MAX_LABEL_BYTES:
        return f"is {size} bytes long, more than {MAX_LABEL_BYTES} (it becomes part of file names)"
    return None


def check_label(label, *, where: str = "") -> str:
    """Return ``label`` if it is a valid label; else raise :class:`LabelError`.

    Args:
        label: the label.
        where: where it came from, for the message (``"--labels"``, ``"x.csv line 3"``, ...).
    """
    problem = label_problem(label)
    if problem is not None:
        source = f"{where}: " if where else ""
        raise LabelError(f"{source}label {label!r} {problem}; {FIX}.")
    return label


def check_labels(labels: Iterable, *, where: str = "") -> tuple[str, ...]:
    """Every label of ``labels`` checked (:func:`check_label`); returned as a tuple."""
    return tuple(check_label(label, where=where) for label in labels)


def parse_labels(value, *, where: str = "") -> tuple[str, ...]:
    """Labels from a comma-separated text (``"mel-pulse, ambient"``) or a sequence of labels,
    each stripped of surrounding spaces and checked; empty items of a text are left out.

    A sequence's items are checked whole (a comma inside one is refused, not split).
    """
    if value is None:
        return ()
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",")]
        return check_labels([item for item in items if item], where=where)
    return check_labels([item.strip() if isinstance(item, str) else item for item in value], where=where)


def child_path(folder: str | os.PathLike, name: str) -> Path:
    """``folder / name``, refusing a ``name`` that is not one plain file name inside ``folder``.

    The file names built from labels go through here, so whatever a label holds the file is
    written in ``folder``: ``name`` must be a single path component (no separator, not ``.`` or
    ``..``, no NUL), and the result's parent, resolved, must be ``folder`` resolved.

    Raises:
        UnsafePathError: naming the folder, the name and why.
    """
    folder = Path(folder)
    problem = None
    if not isinstance(name, str) or not name:
        problem = "is empty"
    elif any(separator in name for separator in (*_SEPARATORS, os.sep, os.altsep or "/")):
        problem = "holds a path separator"
    elif name in (".", "..") or "\x00" in name:
        problem = "is not a file name"
    else:
        resolved = folder.resolve()
        if (resolved / name).resolve().parent != resolved:  # e.g. a symbolic link to elsewhere
            problem = "resolves outside the folder"
    if problem is not None:
        raise UnsafePathError(f"{folder}: refusing to write {name!r} there: the name {problem}. File names "
                              f"built from labels must stay in their folder; {FIX}.")
    return folder / name
