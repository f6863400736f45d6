"""The visible window of a recording and SongExplorer's navigation buttons (its GUI's
context-window controls, ``src/gui/view.py`` and ``src/gui/controller.py``).

``↑`` zooms in (never below :data:`MIN_WIDTH_TICS`), ``↓`` zooms out (never beyond the recording),
``○`` resets the width, ``←``/``→`` pan by half a width, ``⇤``/``⇥`` go to the ends. All positions
are tics (0-based); the window is ``[start, start + width)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

#: SongExplorer does not zoom in below 20 tics.
MIN_WIDTH_TICS = 20


@dataclass(frozen=True)
class Viewport:
    """A window ``[start, start + width)`` tics onto a recording of ``ntics`` tics; ``default_width``
    is what :meth:`reset` returns to."""

    start: int
    width: int
    ntics: int
    default_width: int

    @classmethod
    def initial(cls, ntics: int, default_width: int) -> Viewport:
        """The window at the start of a recording, ``default_width`` tics wide (or all of it)."""
        ntics = max(int(ntics), 1)
        default_width = max(min(int(default_width), ntics), min(MIN_WIDTH_TICS, ntics))
        return cls(0, default_width, ntics, default_width)

    @property
    def stop(self) -> int:
        """One past the last visible tic."""
        return self.start + self.width

    @property
    def centre(self) -> float:
        return self.start + self.width / 2

    def around(self, centre: float, width: float | None = None) -> Viewport:
        """A window ``width`` tics wide (default: this one's) centred on ``centre`` as far as the
        recording's ends allow, at least 20 tics and at most the recording wide."""
        width = self.width if width is None else width
        width = int(round(min(max(width, min(MIN_WIDTH_TICS, self.ntics)), self.ntics)))
        start = int(round(min(max(centre - width / 2, 0), self.ntics - width)))
        return replace(self, start=start, width=width)

    def zoom(self, factor: float, *, centre: float | None = None) -> Viewport:
        """Width divided by ``factor`` (2 = zoom in), keeping ``centre`` (default: the middle)."""
        return self.around(self.centre if centre is None else centre, self.width / factor)

    def zoom_in(self) -> Viewport:
        return self.zoom(2.0)

    def zoom_out(self) -> Viewport:
        return self.zoom(0.5)

    def reset(self) -> Viewport:
        """The default width, around the same centre."""
        return self.around(self.centre, self.default_width)

    def pan(self, widths: float) -> Viewport:
        """Move by ``widths`` window widths (``-0.5`` is SongExplorer's ``←``)."""
        return self.around(self.centre + widths * self.width)

    def to_start(self) -> Viewport:
        return self.around(self.width / 2)

    def to_end(self) -> Viewport:
        return self.around(self.ntics - self.width / 2)

    def centred_on(self, tic: float) -> Viewport:
        """The same width, centred on ``tic`` (as far as the ends allow)."""
        return self.around(tic)

    def showing(self, start: int, stop: int) -> Viewport:
        """This window if it already shows ``[start, stop]``, else one centred on it."""
        if start >= self.start and stop < self.stop:
            return self
        return self.centred_on((start + stop) / 2)
