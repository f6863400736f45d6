"""Playback: the visible window as a WAV the browser can play, a Play/Pause button, and a playhead
that follows the browser's audio clock across the plots."""

from __future__ import annotations

from collections.abc import Callable

import panel as pn
from bokeh.models import Span

from songexplorer_annotator.catalog import Recording
from songexplorer_annotator.signals import playback_wav
from songexplorer_annotator.ui import button, locked
from songexplorer_annotator.viewport import Viewport


class Playback:
    """Plays what the recording view shows.

    Args:
        showing: returns the recording and window the recording view shows now
            (``(None, None)`` before one is open).
    """

    def __init__(self, showing: Callable[[], tuple[Recording | None, Viewport | None]]):
        self._showing = showing
        #: ``(key, start, stop)`` of the WAV in the audio pane (tics), or ``None``
        self.window: tuple[str, int, int] | None = None
        self.playhead = Span(location=0, dimension="height", line_color="#d62728", line_width=2, visible=False,
                             name="playhead")
        self.audio = pn.pane.Audio(None, name="audio", width=300, height=40, throttle=100)
        self.audio.param.watch(locked(self._time), "time")
        self.audio.param.watch(locked(self._paused), "paused")
        self.button = button("▶ Play", self.toggle, "play the visible window (space)", 80)

    def toggle(self) -> None:
        """Play the visible window (resampled for the browser), or pause."""
        recording, view = self._showing()
        if recording is None:
            return
        if not self.audio.paused:
            self.audio.paused = True
            return
        window = (recording.key, view.start, view.stop)
        if self.window != window:
            data, rate = playback_wav(recording.path, view.start, view.stop, rate=recording.rate)
            self.audio.object = data
            self.window = window
        self.audio.time = 0
        self.playhead.location = view.start / recording.rate
        self.playhead.visible = True
        self.audio.paused = False

    def window_changed(self, key: str, start: int, stop: int) -> None:
        """The recording view now shows ``key`` from ``start`` to ``stop`` (tics): the playhead is
        hidden unless that is the window loaded for playing."""
        if self.window != (key, start, stop):
            self.playhead.visible = False

    def _time(self, event) -> None:
        recording, _view = self._showing()
        if self.window is None or recording is None:
            return
        key, start, _stop = self.window
        if key == recording.key:
            self.playhead.location = start / recording.rate + float(event.new or 0)

    def _paused(self, event) -> None:
        self.button.label = "▶ Play" if event.new else "❚❚ Pause"
