"""Double-click actions (SongExplorer's ``gui_context_doubleclick_plugin``): where a double-click
in empty space of the annotator's lower half puts a new annotation.

An action is a plug-in of ``songexplorer.actions`` (:mod:`songexplorer_core.plugins`), called as
``action(read, tic, rate, parameters) -> (start_tic, stop_tic)``: ``read(start_tic, stop_tic)``
gives that span of the recording at the int16 scale, shaped ``(ntics, nchannels)``; ``tic`` is
where the person double-clicked (0-based); ``rate`` is in Hz; ``parameters`` holds the action's
settings (the annotator's ``--action-parameter``). The annotation is ``[start_tic, stop_tic]``,
both inclusive. The two built-in actions are SongExplorer's:

* ``point`` (the default): a point annotation where the person double-clicked;
* ``snap-to``: the loudest tic within ``search_ms`` (default 10 ms) of the double-click, with
  ``range_ms`` (default 1 ms) around it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

#: The action the annotator uses unless told otherwise.
DEFAULT_ACTION = "point"

#: ``read(start_tic, stop_tic) -> samples (ntics, nchannels)`` at the int16 scale.
Reader = Callable[[int, int], np.ndarray]


def point(read: Reader, tic: int, rate: int, parameters: Mapping[str, Any]) -> tuple[int, int]:
    """A point annotation at the double-click: ``[tic, tic]``."""
    return int(tic), int(tic)


def _milliseconds(parameters: Mapping[str, Any], name: str, default: float) -> float:
    value = parameters.get(name, default)
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = -1.0
    if not value >= 0:
        raise ValueError(f"snap-to's {name} is a duration in ms, >= 0, not {parameters.get(name)!r}")
    return value


def snap_to(read: Reader, tic: int, rate: int, parameters: Mapping[str, Any]) -> tuple[int, int]:
    """SongExplorer's ``snap-to``: the tic of largest magnitude (over channels) within
    ``search_ms`` of the double-click, and ``range_ms`` centred on it (tics, inclusive)."""
    search = int(_milliseconds(parameters, "search_ms", 10.0) / 1000 * rate)
    half_range = int(_milliseconds(parameters, "range_ms", 1.0) / 1000 * rate / 2)
    tic = int(tic)
    centre = tic
    if search > 0:
        first = max(0, tic - search)
        samples = np.asarray(read(first, tic + search + 1))
        if len(samples):
            centre = first + int(np.argmax(np.abs(samples.astype(np.int64)).max(axis=1)))
    return max(0, centre - half_range), centre + half_range


def load_action(name: str) -> Callable[[Reader, int, int, Mapping[str, Any]], tuple[int, int]]:
    """The double-click action named ``name``.

    Raises:
        songexplorer_core.plugins.PluginError: unknown or broken, naming the installed actions.
    """
    from songexplorer_core import plugins

    if name == DEFAULT_ACTION and name not in plugins.installed("actions"):
        return point  # a tree used without being installed
    return plugins.load("actions", name)


def place(action: Callable, read: Reader, tic: int, rate: int, parameters: Mapping[str, Any],
          ntics: int) -> tuple[int, int]:
    """``action``'s annotation for a double-click at ``tic``, checked and kept inside a recording
    of ``ntics`` tics.

    Raises:
        ValueError: the action returned something that is not two tics in order.
    """
    span = action(read, int(tic), int(rate), dict(parameters))
    try:
        start, stop = (int(value) for value in span)
    except (TypeError, ValueError):
        raise ValueError(f"double-click action returned {span!r}, not (start_tic, stop_tic)") from None
    if stop < start:
        raise ValueError(f"double-click action returned stop {stop} before start {start}")
    last = max(0, int(ntics) - 1)
    return min(max(0, start), last), min(max(0, stop), last)
