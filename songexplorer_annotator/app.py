"""The annotator: a Panel app where people see, hear and label song (SongExplorer's GUI, ``src/gui/``).

One :class:`AnnotatorApp` per browser session composes the components: the label slots
(:mod:`~songexplorer_annotator.labels`), playback (:mod:`~songexplorer_annotator.playback`), the
Recording tab (:mod:`~songexplorer_annotator.recording_view`, which draws one recording and turns
gestures into calls on an :class:`~songexplorer_core.annotation_session.AnnotationSession`) and
the Cluster tab (:mod:`~songexplorer_annotator.cluster_view`). The app itself asks the annotator's
name, saves (through core: the session writes ``<wav>-annotated-<name>.csv`` atomically) and
routes key presses.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import panel as pn

from songexplorer_annotator.catalog import Catalog
from songexplorer_annotator.cluster_view import ClusterView
from songexplorer_annotator.keys import KeyListener
from songexplorer_annotator.labels import LabelSlots, common_labels
from songexplorer_annotator.playback import Playback
from songexplorer_annotator.recording_view import RecordingView
from songexplorer_annotator.ui import Shared, locked, register_page
from songexplorer_core.annotation_session import AnnotationSession, SessionError
from songexplorer_core.annotations import AnnotationError, annotated_csv_name
from songexplorer_core.project import Project

#: Key presses that move the window, by ``KeyboardEvent.key`` (see :data:`~songexplorer_annotator.recording_view.KEY_HELP`).
MOVES = {
    "ArrowLeft": "left", "ArrowRight": "right", "ArrowUp": "in", "ArrowDown": "out",
    "Shift+ArrowLeft": "start", "Shift+ArrowRight": "end", "Home": "start", "End": "end",
    "o": "reset", ",": "previous", ".": "next",
}


class AnnotatorApp:
    """One browser session of the annotator.

    Args:
        project: the project folder (its ``groundtruth/`` is the only place files are written).
        annotator: the annotator's name; when ``None`` the app asks for it once (the browser
            remembers it).
        query: the page's query parameters: ``recording`` (a recording key), ``start`` and
            ``width`` (seconds). Anything that is not a recording of the project is refused.
        labels: label names for the label boxes (default: the most common labels of the
            annotation files).
        nlabels: number of label boxes (SongExplorer's ``gui_nlabels``, 7).
        context_s: default width of the context window, seconds.
        plot_width: width of the plots, screen pixels.
        autosave_s: seconds between saves of unsaved changes (0 = only the Save button).
        snippets: number of snippets in the cluster view's grid.
        snippet_s: length of each snippet, seconds.
    """

    def __init__(
        self,
        project: Project,
        *,
        annotator: str | None = None,
        query: Mapping[str, str] | None = None,
        labels: Sequence[str] = (),
        nlabels: int = 7,
        context_s: float = 4.0,
        plot_width: int = 1100,
        autosave_s: float = 5.0,
        snippets: int = 20,
        snippet_s: float = 0.25,
        action: str = "point",
        action_parameters: Mapping[str, str] | None = None,
    ):
        self.project = project
        self.shared = shared = Shared(project, Catalog(project), int(plot_width), action=action,
                                      action_parameters=dict(action_parameters or {}))
        self.autosave_s = float(autosave_s)
        self.keys = KeyListener(on_key=locked(self.handle_key), on_stored_name=locked(self._stored_name))
        self._build_name_prompt()
        self.labels = LabelSlots(shared, labels or common_labels(shared.catalog), nlabels)
        self.playback = Playback(lambda: (self.recording_view.recording, self.recording_view.view))
        self.recording_view = RecordingView(shared, self.labels, self.playback, query=query or {},
                                            context_s=context_s, on_edit=self._render_status)
        self.cluster_view = ClusterView(shared, snippets=snippets, snippet_s=snippet_s,
                                        centre_on=self.recording_view.centre_on, on_annotated=self._annotated)
        self.tabs = pn.Tabs(("Recording", self.recording_view.layout), ("Cluster", self.cluster_view.layout),
                            dynamic=False)
        self.header = pn.Row(
            pn.pane.HTML(f"<b>SongExplorer annotator</b> &middot; project <code>{html.escape(str(project.root))}</code>"),
            pn.layout.HSpacer(), self.who, self.save_indicator, self.save_button,
            sizing_mode="stretch_width",
        )
        self.body = pn.Column(self.name_prompt, sizing_mode="stretch_width")
        self.layout = pn.Column(self.header, shared.message, self.body, self.keys, sizing_mode="stretch_width")
        if annotator:
            self.set_annotator(annotator)

    @property
    def session(self) -> AnnotationSession | None:
        """This annotator's session (``None`` until a name is given)."""
        return self.shared.session

    # ------------------------------------------------------------------------------------------
    # the annotator's name

    def _build_name_prompt(self) -> None:
        self.name_input = pn.widgets.TextInput(
            label="Your name", placeholder="your name (letters, digits, . _ -)", width=300,
        )
        self.name_button = pn.widgets.Button(label="Start annotating", color="primary", width=160)
        self.name_button.on_click(locked(lambda _event: self.set_annotator(self.name_input.value_input or self.name_input.value)))
        self.name_input.param.watch(locked(lambda event: self.set_annotator(self.name_input.value)), "enter_pressed")
        self.name_prompt = pn.Column(
            pn.pane.Markdown(
                "### Who is annotating?\nYour annotations are saved beside each recording as "
                "`<recording>-annotated-<your name>.csv`. This browser remembers the name."
            ),
            pn.Row(self.name_input, self.name_button),
        )
        self.who = pn.pane.HTML("", margin=(12, 10))
        self.save_indicator = pn.pane.HTML("", margin=(12, 10))
        self.save_button = pn.widgets.Button(label="Save", width=80, disabled=True)
        self.save_button.on_click(locked(lambda _event: self.save()))

    def _stored_name(self, name: str) -> None:
        if self.session is None and name:
            try:
                annotated_csv_name("x.wav", name)
            except AnnotationError:
                return
            self.set_annotator(name)

    def set_annotator(self, name: str) -> bool:
        """Start the session as ``name`` (asked once; the browser remembers it)."""
        name = (name or "").strip()
        try:
            annotated_csv_name("x.wav", name)
        except AnnotationError as error:
            self.shared.show_error(str(error))
            return False
        if self.session is not None:
            if name == self.session.annotator:
                return True
            self.save()
        label = self.session.label if self.session else ""
        self.shared.session = AnnotationSession(self.project.groundtruth, name, label=label)
        self.keys.annotator = name
        self.who.object = f"annotating as <b>{html.escape(name)}</b>"
        self.save_button.disabled = False
        self.body[:] = [self.tabs]
        self.shared.show_info("")
        self.labels.choose(self.labels.selected)
        self.recording_view.reopen()
        self._render_status()
        return True

    # ------------------------------------------------------------------------------------------
    # keys, edits from the cluster view, saving

    def handle_key(self, key: str) -> None:
        """A key press (``KeyboardEvent.key`` with ``Ctrl+``/``Shift+`` prefixes)."""
        if self.session is None:
            return
        if key in MOVES:
            self.recording_view.navigate(MOVES[key])
        elif key.isdigit() and len(key) == 1:
            self.labels.press_digit(int(key))
        elif key in ("Ctrl+z",):
            self.recording_view.undo()
        elif key in ("Ctrl+Z", "Ctrl+y", "Ctrl+Shift+Z"):
            self.recording_view.redo()
        elif key == "Ctrl+s":
            self.save()
        elif key == " ":
            self.playback.toggle()

    def _annotated(self, key: str) -> None:
        """A snippet's sound in recording ``key`` was (un)annotated in the Cluster tab."""
        self.recording_view.render_boxes(key)
        self.labels.render()
        self._render_status()

    def _render_status(self) -> None:
        if self.session is None:
            self.save_indicator.object = ""
            return
        unsaved = self.session.unsaved_changes()
        colour = "#2a7" if unsaved == 0 else ("#e69500" if unsaved < 10 else "#d00")
        text = "all saved" if unsaved == 0 else f"{unsaved} unsaved"
        self.save_indicator.object = f'<span style="color:{colour};font-weight:bold" id="unsaved">{text}</span>'
        self.recording_view.render_undo()

    def save(self) -> None:
        """Write unsaved changes (merging with the files on disk) and redraw what changed."""
        if self.session is None or not self.session.unsaved_changes():
            self._render_status()
            return
        try:
            report = self.session.save()
        except (AnnotationError, SessionError, OSError) as error:
            self.shared.show_error(f"could not save: {error}")
            return
        names = ", ".join(p.name for p in report.changed)
        self.shared.show_info(f"saved {names}" if names else "")
        if self.recording_view.recording is not None:
            self.recording_view.render_boxes()
            self.labels.render()
        self._render_status()

    def autosave(self) -> None:
        """Save if there are unsaved changes (called every ``autosave_s`` seconds when served)."""
        if self.session is not None and self.session.unsaved_changes():
            self.save()

    def _save_on_close(self) -> None:
        """The browser tab closed: write what is unsaved (the page is gone, nothing is redrawn)."""
        if self.session is not None and self.session.unsaved_changes():
            try:
                self.session.save()
            except (AnnotationError, SessionError, OSError) as error:
                print(f"annotator: could not save {self.session.annotator}'s annotations on close: {error}",
                      file=sys.stderr)

    def servable(self):
        """The layout, with autosave and save-on-close registered for a served session."""
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            register_page(self.shared)
            if self.autosave_s > 0:
                pn.state.add_periodic_callback(self.autosave, period=int(self.autosave_s * 1000))
            pn.state.curdoc.on_session_destroyed(lambda _context: self._save_on_close())
        return self.layout


def create_app(project_root: str | Path, **options) -> pn.viewable.Viewable:
    """Build the app for the current Panel session, reading the page's query parameters."""
    pn.extension()
    query = {}
    if pn.state.location is not None:
        query = {k: str(v) for k, v in (pn.state.location.query_params or {}).items()}
    app = AnnotatorApp(Project(Path(project_root).resolve()), query=query, **options)
    return app.servable()
