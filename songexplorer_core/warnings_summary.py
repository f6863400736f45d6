"""Repeated warnings collapsed into one with a count.

A report over many checkpoints (or recordings) can raise the same warning once each, e.g. 30
times "label 'mel-sine': precision/recall never reaches 1.0 on the validation taps ..." for 10
checkpoints and 3 labels. :func:`collapsed_warnings` gathers the warnings raised inside a block
and, when it ends, warns once per kind: the first message, and how many more like it there were.
Two messages are alike when they differ only in numbers and in a leading file path.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

_PATH_PREFIX = re.compile(r"^\S+\.\w+: ")
_NUMBER = re.compile(r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?")


def warning_kind(message: str) -> str:
    """What makes two messages alike: the message without a leading ``<path>: `` and with every
    number written ``#``."""
    return _NUMBER.sub("#", _PATH_PREFIX.sub("", message, count=1))


def collapse(caught) -> list[tuple[str, type[Warning], int]]:
    """``(first message, category, count)`` per kind of the ``warnings.WarningMessage`` list
    ``caught``, in the order each kind first appeared."""
    kinds: dict[tuple[type, str], list] = {}
    for item in caught:
        text = str(item.message)
        key = (item.category, warning_kind(text))
        if key in kinds:
            kinds[key][2] += 1
        else:
            kinds[key] = [text, item.category, 1]
    return [tuple(v) for v in kinds.values()]


@contextmanager
def collapsed_warnings(unit: str = "times") -> Iterator[None]:
    """Warnings raised inside the block come out at its end, once per kind; a kind raised more
    than once says ``(and N more like it: M <unit> in all)``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for text, category, count in collapse(caught):
        if count > 1:
            text = f"{text} (and {count - 1} more like it: {count} {unit} in all)"
        warnings.warn(text, category, stacklevel=3)
