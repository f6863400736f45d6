"""The Recording tab: one recording at a time through a
:class:`~songexplorer_annotator.viewport.Viewport`, its plots (:mod:`songexplorer_annotator.plots`),
navigation, and the gestures that become calls on the session
(:class:`~songexplorer_core.annotation_session.AnnotationSession`, which saves through core).

Gestures (SongExplorer's, listed in docs/annotator.md): with a label chosen, double-click a box in
the upper half to annotate its interval (again to undo it), drag horizontally for a range,
double-click empty space in the lower half for a point; double-click an annotation in the lower
half to remove it. Keys are listed in :data:`KEY_HELP`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping

import pandas as pd
import panel as pn

from songexplorer_annotator.catalog import REVIEW_WHAT, AccessError, Recording, Review, review_summary
from songexplorer_annotator.labels import LabelSlots
from songexplorer_annotator.playback import Playback
from songexplorer_annotator.plots import ContextPlots
from songexplorer_annotator.ui import Shared, button, locked
from songexplorer_annotator.viewport import Viewport
from songexplorer_core.annotation_session import SessionError
from songexplorer_core.annotations import AnnotationError
from songexplorer_core.audio import RecordingError
from songexplorer_core.label_kinds import KindGuard

KEY_HELP = """
**Gestures.** Choose a label (type it in a box, or click its counter, or press its number).
Double-click a grey box (upper half) to give its sound the label; double-click it again to undo.
Drag across the waveform or spectrogram to label a range. Double-click empty space in the lower
half for a point. Double-click an annotation (lower half) to remove it. With no label chosen
(key 0), double-clicking someone else's annotation deletes it.

**Keys.** 1-7 choose a label box, 0 none · ← → pan half a width · Shift+← / Shift+→ (or Home/End) go
to the ends · ↑ ↓ zoom in/out · o reset the width · , . previous/next sound · space play/pause ·
Ctrl+Z undo · Ctrl+Shift+Z or Ctrl+Y redo · Ctrl+S save.
"""


class RecordingView:
    """The Recording tab.

    Args:
        shared: the browser session's state.
        labels: the label slots (shown above the plots).
        playback: plays the visible window (its button and audio pane are shown here).
        query: the page's query parameters, used for the first recording opened: ``recording``
            (a recording key, a path under ``groundtruth/`` or a unique file name), ``start``
            (the window's left edge) and ``width``, seconds. Without ``recording`` the recording
            with the most to review is opened at its first such sound (:meth:`Catalog.first_to_review`).
        context_s: default width of the context window, seconds.
        on_edit: called after anything that changes what is unsaved or undoable.
    """

    def __init__(self, shared: Shared, labels: LabelSlots, playback: Playback, *, query: Mapping[str, str],
                 context_s: float, on_edit: Callable[[], None]):
        self.shared, self.labels, self.playback = shared, labels, playback
        self.catalog = shared.catalog
        self.query = dict(query)
        self.context_s = float(context_s)
        self._on_edit = on_edit
        self._initial_window = (_float(self.query.get("start")), _float(self.query.get("width")))
        self.recording: Recording | None = None
        self.view: Viewport | None = None
        self.probabilities = None
        self.reviews: dict[str, Review] = {}
        self._opened_note = ""
        self.review_note = pn.pane.HTML("", margin=(0, 10), name="review")
        if self.query.get("recording"):  # a key, a path under groundtruth/ or a unique file name
            self.query["recording"] = self.catalog.key_for(str(self.query["recording"])) or str(self.query["recording"])
        else:
            self._open_first_to_review()

        self.select = pn.widgets.Select(label="Recording", options=self._options(), value="", width=420)
        self.select.param.watch(locked(self._recording_chosen), "value")
        self.nav_buttons = pn.Row(
            button("⇤", lambda: self.navigate("start"), "go to the start (Home)"),
            button("←", lambda: self.navigate("left"), "pan left half a width (←)"),
            button("↓", lambda: self.navigate("out"), "zoom out (↓)"),
            button("○", lambda: self.navigate("reset"), "reset the width (o)"),
            button("↑", lambda: self.navigate("in"), "zoom in (↑)"),
            button("→", lambda: self.navigate("right"), "pan right half a width (→)"),
            button("⇥", lambda: self.navigate("end"), "go to the end (End)"),
            button("← L", lambda: self.navigate("previous"), "previous sound (,)", 54),
            button("L →", lambda: self.navigate("next"), "next sound (.)", 54),
        )
        self.undo_button = button("Undo", self.undo, "undo (Ctrl+Z)", 64)
        self.redo_button = button("Redo", self.redo, "redo (Ctrl+Shift+Z)", 64)
        self.position = pn.pane.HTML("", margin=(12, 10))
        self.plots = ContextPlots(shared.plot_width, playback.playhead, on_overview_tap=self._overview_tap,
                                  on_double_tap=lambda seconds, upper: self.double_click(seconds, upper=upper),
                                  on_drag=self.drag)
        self.counts_table = pn.pane.HTML("", width=420)
        self.layout = pn.Column(
            pn.Row(self.select, self.nav_buttons, playback.button, self.undo_button, self.redo_button, self.position),
            self.review_note,
            labels.row,
            *self.plots.panes,
            pn.Row(playback.audio, self.counts_table),
            pn.pane.Markdown(KEY_HELP, width=shared.plot_width),
        )

    def _options(self) -> dict[str, str]:
        """The pull-down: each recording with what it has to review (read again each time)."""
        self.reviews = self.catalog.review()
        self._render_review_note()
        options = {"(choose a recording)": ""}
        for key in self.catalog.keys():
            what = self.reviews[key].describe() if key in self.reviews else ""
            options[f"{key} · {what}" if what else key] = key
        return options

    def _render_review_note(self) -> None:
        self.review_note.object = f"<small>{html.escape(review_summary(self.reviews) + self._opened_note)}</small>"

    def _open_first_to_review(self) -> None:
        """No recording asked for: choose the one with the most to review, at its first such sound."""
        self._opened_note = ""
        try:
            first = self.catalog.first_to_review()
            if first is None:
                return
            key, tic, rank = first
            rate = self.catalog.recording(key).rate
        except (AccessError, RecordingError, OSError, ValueError) as error:  # open nothing, say why
            self.shared.show_error(f"could not choose a recording to review: {error}")
            return
        self.query["recording"] = key
        if tic is not None:
            self._initial_window = (max(tic / rate - self.context_s / 4, 0.0), None)
        self._opened_note = (f" · opened {key}, the first with a {REVIEW_WHAT[rank]} to review"
                             + (f", at its first one ({tic / rate:.3f} s)" if tic is not None else ""))

    # ------------------------------------------------------------------------------------------
    # opening a recording and drawing it

    def open_recording(self, key: str, *, start_s: float | None = None, width_s: float | None = None) -> bool:
        """Show recording ``key`` (only recordings of the project are opened)."""
        try:
            recording = self.catalog.recording(key)
        except (AccessError, RecordingError) as error:
            self.shared.show_error(str(error))
            return False
        session = self.shared.session
        if session is None:
            self.query["recording"] = key
            return False
        try:
            intervals = self.catalog.intervals(key)
            self.probabilities = self.catalog.probabilities(key)
            session.open_recording(key, ntics=recording.ntics, other_sounds=intervals)
        except (AnnotationError, ValueError) as error:
            self.shared.show_error(str(error))
            return False
        self.recording = recording
        if self._initial_window is not None:  # the page's ?start=&width= (seconds), used once
            start_s = start_s if start_s is not None else self._initial_window[0]
            width_s = width_s if width_s is not None else self._initial_window[1]
            self._initial_window = None
        view = Viewport.initial(recording.ntics, int(round(self.context_s * recording.rate)))
        if width_s:  # from the start; any width: Viewport keeps it between 20 tics and the whole recording
            view = view.around(width_s * recording.rate / 2, width_s * recording.rate)
        if start_s is not None:
            view = view.centred_on(start_s * recording.rate + view.width / 2)
        self.view = view
        if self.select.value != key:
            if key not in self.select.options.values():
                self.select.options = self._options()
            self.select.value = key
        self.shared.show_info("")
        self.plots.draw_overview(recording)
        self.render()
        return True

    def reopen(self) -> None:
        """The session changed: open the chosen recording (or the page's) again."""
        self.recording = None
        wanted = self.select.value or self.query.get("recording")
        if wanted:
            self.open_recording(wanted)

    def _recording_chosen(self, event) -> None:
        if event.new and (self.recording is None or event.new != self.recording.key):
            self.open_recording(event.new)

    def _overview_tap(self, seconds: float) -> None:
        if self.recording is not None:
            self.view = self.view.centred_on(seconds * self.recording.rate)
            self.render()

    def render(self) -> None:
        """Redraw the visible window: signal, boxes, labels, status."""
        if self.recording is None:
            return
        recording, view = self.recording, self.view
        self.plots.draw_window(recording, view, self.probabilities, self.labels.labels())
        self.position.object = (
            f"{view.start / recording.rate:.3f}–{view.stop / recording.rate:.3f} s of "
            f"{recording.ntics / recording.rate:.1f} s ({recording.rate} Hz)"
        )
        self.playback.window_changed(recording.key, view.start, view.stop)
        self.render_boxes()
        self.labels.render()
        self._on_edit()

    def render_boxes(self, key: str | None = None) -> None:
        """Redraw the boxes and the counts (only if recording ``key`` is shown, when given)."""
        if self.recording is None or (key is not None and key != self.recording.key):
            return
        session, key = self.shared.session, self.recording.key
        self.plots.draw_boxes(self.recording, self.view, session.used_sounds(key), session.annotations(key),
                              self.labels.labels())
        rows = [(s.label, s.kind) for s in session.used_sounds(key)]
        rows += [(s.label, "this session") for s in session.annotations(key) if s.label]
        if not rows:
            self.counts_table.object = "<i>no sounds in this recording yet</i>"
            return
        table = pd.crosstab(pd.Series([r[0] for r in rows], name="label"), pd.Series([r[1] for r in rows], name="kind"))
        table.loc["TOTAL"] = table.sum()
        self.counts_table.object = table.to_html(border=0)

    def render_undo(self) -> None:
        """Enable Undo and Redo when there is something to undo or redo."""
        session = self.shared.session
        self.undo_button.disabled = not session.can_undo
        self.redo_button.disabled = not session.can_redo

    # ------------------------------------------------------------------------------------------
    # gestures

    def double_click(self, seconds: float, *, upper: bool) -> None:
        """A double-click at ``seconds`` in the upper (used sounds) or lower (annotations) half."""
        session = self.shared.session
        if self.recording is None or session is None:
            return
        tic = seconds * self.recording.rate
        key = self.recording.key
        proximity = self.plots.proximity(self.view)
        try:
            if upper:
                action = session.double_click_upper(key, tic, proximity=proximity)
                if action is None and not session.label:
                    self.shared.show_info("choose a label first (type one into a label box), or press 0 to delete "
                                          "someone else's annotation")
            else:
                action = session.double_click_lower(key, tic, proximity=proximity, place=placement(self.recording, self.shared))
                if action is None:
                    self.shared.show_info("choose a label first: type one into a label box or click its counter")
        except (SessionError, ValueError) as error:  # ValueError: the double-click action's, one line
            self.shared.show_error(str(error))
            return
        if action is not None:
            self.shared.show_info("")
        self._after_edit()

    def drag(self, seconds0: float, seconds1: float) -> None:
        """A horizontal drag from ``seconds0`` to ``seconds1``: a range annotation."""
        if self.recording is None or self.shared.session is None:
            return
        rate = self.recording.rate
        if abs(seconds1 - seconds0) * rate < 1:
            return
        try:
            self.shared.session.drag(self.recording.key, seconds0 * rate, seconds1 * rate)
        except SessionError as error:
            self.shared.show_error(str(error))
            return
        self.shared.show_info("")
        self._after_edit()

    def _after_edit(self) -> None:
        self.render_boxes()
        self.labels.render()
        self._on_edit()
        # a label is annotated as ranges or as points (songexplorer_core.label_kinds): say so, with the other gesture
        if self.shared.session is not None and self.recording is not None:
            self._kinds = getattr(self, "_kinds", None) or KindGuard(self.shared.project.groundtruth)
            notice = self._kinds.notice(self.shared.session.annotations_frame(self.recording.key))
            if notice:
                self.shared.show_info(notice)

    def undo(self) -> None:
        if self.shared.session is not None:
            self._show_action(self.shared.session.undo())

    def redo(self) -> None:
        if self.shared.session is not None:
            self._show_action(self.shared.session.redo())

    def _show_action(self, action) -> None:
        """Show where an undone or redone action happened."""
        if action is None:
            return
        sound = action.sound
        if sound is not None and (self.recording is None or sound.recording != self.recording.key):
            self.open_recording(sound.recording)
        elif sound is not None:
            view = self.view.showing(sound.start, sound.stop)
            if view != self.view:
                self.view = view
                self.render()
                return
        self._after_edit()

    # ------------------------------------------------------------------------------------------
    # navigation

    def navigate(self, where: str) -> None:
        """Move the window: start, end, left, right, in, out, reset, previous, next."""
        if self.view is None:
            return
        view = self.view
        moves = {
            "start": view.to_start, "end": view.to_end, "left": lambda: view.pan(-0.5),
            "right": lambda: view.pan(0.5), "in": view.zoom_in, "out": view.zoom_out, "reset": view.reset,
        }
        if where in moves:
            self.view = moves[where]()
        elif where in ("previous", "next"):
            direction = 1 if where == "next" else -1
            sound = self.shared.session.neighbour(self.recording.key, view.centre, direction)
            if sound is None:
                self.shared.show_info(f"no {'later' if direction > 0 else 'earlier'} sound")
                return
            self.view = view.centred_on((sound.start + sound.stop) / 2)
        else:
            raise ValueError(f"unknown move {where!r}")
        self.render()

    def centre_on(self, key: str, tic: float) -> Recording | None:
        """Show recording ``key`` centred on ``tic`` (the cluster view's snippets use this);
        returns it, or ``None`` when it cannot be opened."""
        if self.recording is None or self.recording.key != key:
            if not self.open_recording(key):
                return None
        self.view = self.view.centred_on(tic)
        self.render()
        return self.recording


def placement(recording: Recording, shared: Shared) -> Callable[[int], tuple[int, int]]:
    """Where the double-click action (``Shared.action``) puts a new annotation at a tic of ``recording``."""
    from songexplorer_core.annotation_actions import load_action, place
    from songexplorer_core.audio import read_recording

    action = load_action(shared.action)

    def read(start: int, stop: int):
        return read_recording(recording.path, start, stop, dtype="int16")[1]

    return lambda tic: place(action, read, tic, recording.rate, shared.action_parameters, recording.info.frames)


def _float(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value >= 0 else None
