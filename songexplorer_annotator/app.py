"""The annotator: a Panel app where people see, hear and label song (SongExplorer's GUI, ``src/gui/``).

One :class:`AnnotatorApp` per browser session. It shows one recording at a time through a
:class:`~songexplorer_annotator.viewport.Viewport` (only the visible window is computed and sent), draws the
used sounds (detected, predicted, missed, other people's annotations) in the upper half of the
context window and this session's annotations in the lower half, and turns gestures into calls
on a :class:`~songexplorer_core.annotation_session.AnnotationSession`, which saves through core.

Gestures (SongExplorer's, listed in docs/annotator.md): with a label chosen, double-click a box in the upper half to annotate its
interval (again to undo it), drag horizontally for a range, double-click empty space in the lower
half for a point; double-click an annotation in the lower half to remove it. Keys are listed in
:data:`KEY_HELP`.
"""

from __future__ import annotations

import functools
import html
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn
from bokeh.core.property.descriptors import UnsetValueError
from bokeh.events import DoubleTap, SelectionGeometry, Tap
from bokeh.models import (
    BoxAnnotation,
    BoxSelectTool,
    ColumnDataSource,
    HoverTool,
    LinearColorMapper,
    Range1d,
    Span,
    TapTool,
)
from bokeh.palettes import Category10_10, Viridis256
from bokeh.plotting import figure

from songexplorer_annotator.catalog import AccessError, Catalog, Recording
from songexplorer_annotator.cluster import ClusterError, cluster_path, filter_sounds, nearest_sounds, read_cluster_table
from songexplorer_annotator.keys import KeyListener
from songexplorer_annotator.signals import playback_wav, waveform_trace, window_spectrogram
from songexplorer_annotator.viewport import Viewport
from songexplorer_core.annotation_session import (
    AnnotationSession,
    SessionError,
    Sound,
    proximity_tics,
)
from songexplorer_core.annotations import AnnotationError, annotated_csv_name
from songexplorer_core.audio import RecordingError
from songexplorer_core.project import Project

#: Colours of used sounds by kind (upper half); detected sounds by their label.
KIND_COLOURS = {"detected": "#7f7f7f", "predicted": "#ff7f0e", "missed": "#d62728", "annotated": "#9467bd"}
DETECTED_COLOURS = {"time": "#4d4d4d", "frequency": "#1b9e77", "neither": "#d9d9d9"}
#: A box's label is written in it only when the box is at least this wide, screen pixels.
TEXT_MIN_PIXELS = 36
OTHER_KIND_COLOUR = "#8c564b"
DELETION_COLOUR = "#444444"

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


def _label_colour(label: str, labels: Sequence[str]) -> str:
    if not label:
        return DELETION_COLOUR
    if label in labels:
        return Category10_10[list(labels).index(label) % 10]
    return Category10_10[sum(map(ord, label)) % 10]


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
    ):
        self.project = project
        self.catalog = Catalog(project)
        self.session: AnnotationSession | None = None
        self.recording: Recording | None = None
        self.view: Viewport | None = None
        self.context_s = float(context_s)
        self.plot_width = int(plot_width)
        self.autosave_s = float(autosave_s)
        self.nsnippets = int(snippets)
        self.snippet_s = float(snippet_s)
        self.query = dict(query or {})
        self._initial_window = (_float(self.query.get("start")), _float(self.query.get("width")))
        self._probabilities = None
        self._audio_window: tuple[str, int, int] | None = None
        self._snippet_rows = pd.DataFrame()
        self._cluster = None

        self.message = pn.pane.HTML("", sizing_mode="stretch_width", name="message")
        self.keys = KeyListener(on_key=_locked(self.handle_key), on_stored_name=_locked(self._stored_name))
        self._build_name_prompt()
        self._build_recording_view(labels or self._common_labels(), nlabels)
        self._build_cluster_view()
        self.tabs = pn.Tabs(("Recording", self.recording_view), ("Cluster", self.cluster_view), dynamic=False)
        self.header = pn.Row(
            pn.pane.HTML(f"<b>SongExplorer annotator</b> &middot; project <code>{html.escape(str(project.root))}</code>"),
            pn.layout.HSpacer(), self.who, self.save_indicator, self.save_button,
            sizing_mode="stretch_width",
        )
        self.body = pn.Column(self.name_prompt, sizing_mode="stretch_width")
        self.layout = pn.Column(self.header, self.message, self.body, self.keys, sizing_mode="stretch_width")
        if annotator:
            self.set_annotator(annotator)

    # ------------------------------------------------------------------------------------------
    # the annotator's name

    def _build_name_prompt(self) -> None:
        self.name_input = pn.widgets.TextInput(
            label="Your name", placeholder="your name (letters, digits, . _ -)", width=300,
        )
        self.name_button = pn.widgets.Button(label="Start annotating", color="primary", width=160)
        self.name_button.on_click(_locked(lambda _event: self.set_annotator(self.name_input.value_input or self.name_input.value)))
        self.name_input.param.watch(_locked(lambda event: self.set_annotator(self.name_input.value)), "enter_pressed")
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
        self.save_button.on_click(_locked(lambda _event: self.save()))

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
            self.show_error(str(error))
            return False
        if self.session is not None:
            if name == self.session.annotator:
                return True
            self.save()
        label = self.session.label if self.session else ""
        self.session = AnnotationSession(self.project.groundtruth, name, label=label)
        self.keys.annotator = name
        self.who.object = f"annotating as <b>{html.escape(name)}</b>"
        self.save_button.disabled = False
        self.body[:] = [self.tabs]
        self.show_info("")
        self.recording = None
        self._select_label_slot(self._selected_slot)
        wanted = self.select.value or self.query.get("recording")
        if wanted:
            self.open_recording(wanted)
        self._render_status()
        return True

    # ------------------------------------------------------------------------------------------
    # messages

    def show_error(self, text: str) -> None:
        self.message.object = (
            f'<div role="alert" style="color:#a00;background:#fee;padding:6px;border-radius:4px">'
            f"{html.escape(text)}</div>"
        )

    def show_info(self, text: str) -> None:
        self.message.object = (
            f'<div style="color:#333;padding:2px 6px">{html.escape(text)}</div>' if text else ""
        )

    # ------------------------------------------------------------------------------------------
    # the recording view

    def _common_labels(self) -> list[str]:
        counts: dict[str, int] = {}
        from songexplorer_core.annotations import find_interval_csvs, read_intervals_csv

        for path in find_interval_csvs(self.catalog.groundtruth, kinds=["annotated"]):
            try:
                frame = read_intervals_csv(path)
            except AnnotationError:
                continue
            for label, n in frame["label"].value_counts().items():
                counts[str(label)] = counts.get(str(label), 0) + int(n)
        return [label for label, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if label]

    def _build_recording_view(self, labels: Sequence[str], nlabels: int) -> None:
        keys = self.catalog.keys()
        self.select = pn.widgets.Select(label="Recording", options={"(choose a recording)": ""} | {k: k for k in keys},
                                        value="", width=260)
        self.select.param.watch(_locked(self._recording_chosen), "value")

        def button(text, action, tip, width=44):
            widget = pn.widgets.Button(label=text, width=width, description=tip)
            widget.on_click(_locked(lambda _event: action()))
            return widget

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
        self.play_button = button("▶ Play", self.toggle_play, "play the visible window (space)", 80)
        self.undo_button = button("Undo", self.undo, "undo (Ctrl+Z)", 64)
        self.redo_button = button("Redo", self.redo, "redo (Ctrl+Shift+Z)", 64)
        self.position = pn.pane.HTML("", margin=(12, 10))

        # label boxes with counters (SongExplorer's gui_nlabels text boxes and counter buttons)
        slots = list(labels)[:nlabels] + [""] * max(0, nlabels - len(labels))
        self.label_inputs = []
        self.count_buttons = []
        for index, text in enumerate(slots):
            box = pn.widgets.TextInput(value=text, value_input=text, width=110, placeholder=f"label {index + 1}")
            count = pn.widgets.Button(label="0", width=46, description=f"choose this label (key {index + 1})")
            box.param.watch(_locked(lambda event, i=index: self._label_typed(i, event.new)), "value_input")
            box.param.watch(_locked(lambda event, i=index: self._label_typed(i, event.new)), "value")
            count.on_click(_locked(lambda _event, i=index: self._select_label_slot(i)))
            self.label_inputs.append(box)
            self.count_buttons.append(count)
        self._selected_slot = 0 if slots and slots[0] else None
        self.current_label = pn.pane.HTML("", margin=(12, 10))
        self.label_row = pn.Row(*[pn.Row(b, c, margin=(0, 6, 0, 0)) for b, c in zip(self.label_inputs, self.count_buttons)],
                                self.current_label)

        width = self.plot_width
        self.x_range = Range1d(0, 1)
        # overview of the whole recording; a click centres the window there
        self.overview_source = ColumnDataSource(dict(t=[], y=[]))
        self.overview = figure(width=width, height=70, tools="", toolbar_location=None, x_range=Range1d(0, 1),
                               y_range=Range1d(-1.05, 1.05), name="overview")
        self.overview.line("t", "y", source=self.overview_source, color="#777")
        self.overview_box = BoxAnnotation(left=0, right=0, fill_color="#1f77b4", fill_alpha=0.2)
        self.overview.add_layout(self.overview_box)
        self.overview.yaxis.visible = False
        self.overview.on_event(Tap, _locked_event(self._overview_tap))

        self.wave_source = ColumnDataSource(dict(t=[], y=[]))
        self.upper_source = ColumnDataSource(_empty_boxes())
        self.lower_source = ColumnDataSource(_empty_boxes())
        self.playhead = Span(location=0, dimension="height", line_color="#d62728", line_width=2, visible=False,
                             name="playhead")
        self.waveform = self._context_figure("waveform", Range1d(-1.05, 1.05), height=220)
        self.waveform.line("t", "y", source=self.wave_source, color="#1f3b73", line_width=1)
        self._draw_boxes(self.waveform, -1.0, 1.0, text=True)
        self.waveform.yaxis.axis_label = "waveform"
        self.waveform.yaxis.major_label_text_font_size = "0pt"

        self.spectrogram_source = ColumnDataSource(dict(image=[], x=[], y=[], dw=[], dh=[]))
        self.spectrogram_mapper = LinearColorMapper(palette=Viridis256, low=0, high=1)
        self.spectrogram = self._context_figure("spectrogram", Range1d(0, 1), height=220)
        self.spectrogram.image(image="image", x="x", y="y", dw="dw", dh="dh", source=self.spectrogram_source,
                               color_mapper=self.spectrogram_mapper)
        self.spectrogram.yaxis.axis_label = "Hz"
        self._draw_boxes(self.spectrogram, 0.0, 1.0, text=False)

        self.probability_source = ColumnDataSource(dict(xs=[], ys=[], colour=[], label=[]))
        self.probability = self._context_figure("probability", Range1d(0, 1.02), height=140)
        self.probability.multi_line("xs", "ys", line_color="colour", source=self.probability_source, line_width=1.5)
        self.probability.yaxis.axis_label = "probability"
        self.probability.visible = False
        self.probability_legend = pn.pane.HTML("")

        for fig in (self.waveform, self.spectrogram, self.probability):
            fig.add_layout(self.playhead)
        self.audio = pn.pane.Audio(None, name="audio", width=300, height=40, throttle=100)
        self.audio.param.watch(_locked(self._audio_time), "time")
        self.audio.param.watch(_locked(self._audio_paused), "paused")

        self.counts_table = pn.pane.HTML("", width=420)
        self.recording_view = pn.Column(
            pn.Row(self.select, self.nav_buttons, self.play_button, self.undo_button, self.redo_button, self.position),
            self.label_row,
            pn.pane.Bokeh(self.overview),
            pn.pane.Bokeh(self.waveform),
            pn.pane.Bokeh(self.spectrogram),
            pn.pane.Bokeh(self.probability),
            self.probability_legend,
            pn.Row(self.audio, self.counts_table),
            pn.pane.Markdown(KEY_HELP, width=width),
        )

    def _context_figure(self, name: str, y_range: Range1d, *, height: int):
        fig = figure(width=self.plot_width, height=height, x_range=self.x_range, y_range=y_range, name=name,
                     tools=[BoxSelectTool(dimensions="width", renderers=[])], toolbar_location=None)
        fig.xaxis.axis_label = "seconds"
        fig.on_event(DoubleTap, _locked_event(functools.partial(self._double_tap, fig)))
        fig.on_event(SelectionGeometry, _locked_event(self._selection))
        return fig

    def _draw_boxes(self, fig, low: float, high: float, *, text: bool) -> None:
        """Boxes of the upper half (used sounds) and the lower half (session annotations). On the
        waveform (``text``) they are filled and labelled; on the spectrogram only outlined, with
        their heights taken from the ``spec_*`` columns (Hz)."""
        mid = (low + high) / 2
        span = high - low
        if text:
            heights = dict(upper=(mid + 0.03 * span, high), lower=(low, mid - 0.03 * span))
        else:
            heights = dict(upper=("spec_bottom", "spec_top"), lower=("spec_bottom", "spec_top"))
        for half, source in (("upper", self.upper_source), ("lower", self.lower_source)):
            bottom, top = heights[half]
            fig.quad(left="left", right="right", bottom=bottom, top=top, source=source, fill_color="colour",
                     fill_alpha=0.35 if text else 0.0, line_color="colour", line_alpha=0.9,
                     line_width=1.5 if half == "upper" else 2.5)
        if text:
            fig.text(x="left", y=high - 0.02 * span, text="text", source=self.upper_source, text_font_size="9pt",
                     text_baseline="top", x_offset=2, text_color="#222")
            fig.text(x="left", y=low + 0.02 * span, text="text", source=self.lower_source, text_font_size="9pt",
                     text_baseline="bottom", x_offset=2, text_color="#000", text_font_style="bold")

    # ------------------------------------------------------------------------------------------
    # opening a recording and drawing it

    def open_recording(self, key: str, *, start_s: float | None = None, width_s: float | None = None) -> bool:
        """Show recording ``key`` (only recordings of the project are opened)."""
        try:
            recording = self.catalog.recording(key)
        except (AccessError, RecordingError) as error:
            self.show_error(str(error))
            return False
        if self.session is None:
            self.query["recording"] = key
            return False
        try:
            intervals = self.catalog.intervals(key)
            self._probabilities = self.catalog.probabilities(key)
            self.session.open_recording(key, ntics=recording.ntics, other_sounds=intervals)
        except (AnnotationError, ValueError) as error:
            self.show_error(str(error))
            return False
        self.recording = recording
        if self._initial_window is not None:  # the page's ?start=&width= (seconds), used once
            start_s = start_s if start_s is not None else self._initial_window[0]
            width_s = width_s if width_s is not None else self._initial_window[1]
            self._initial_window = None
        view = Viewport.initial(recording.ntics, int(round(self.context_s * recording.rate)))
        if width_s:
            view = view.zoom(view.width / max(width_s * recording.rate, 1))
        if start_s is not None:
            view = view.centred_on(start_s * recording.rate + view.width / 2)
        self.view = view
        if self.select.value != key:
            if key not in self.select.options.values():
                self.select.options = {"(choose a recording)": ""} | {k: k for k in self.catalog.keys()}
            self.select.value = key
        self.show_info("")
        self._render_overview()
        self.render()
        return True

    def _recording_chosen(self, event) -> None:
        if event.new and (self.recording is None or event.new != self.recording.key):
            self.open_recording(event.new)

    def _overview_tap(self, event) -> None:
        if self.recording is not None and event.x is not None:
            self.view = self.view.centred_on(event.x * self.recording.rate)
            self.render()

    def _render_overview(self) -> None:
        recording = self.recording
        trace = waveform_trace(recording.path, 0, recording.ntics, max_points=2 * self.plot_width)
        self.overview_source.data = dict(t=trace.tics / recording.rate, y=trace.values)
        # One amplitude and one colour scale for the whole recording, so quiet windows look quiet.
        self._wave_scale = trace.peak or 1.0
        whole = window_spectrogram(recording.path, 0, recording.ntics, rate=recording.rate, max_columns=400)
        self._colour_scale = (whole.low_db, whole.high_db)
        self.overview.x_range.start = 0
        self.overview.x_range.end = recording.ntics / recording.rate

    def render(self) -> None:
        """Redraw the visible window: signal, boxes, labels, status."""
        if self.recording is None:
            return
        self._render_signal()
        self._render_boxes()
        self._render_labels()
        self._render_status()

    def _render_signal(self) -> None:
        recording, view = self.recording, self.view
        rate = recording.rate
        t0, t1 = view.start / rate, view.stop / rate
        self.x_range.start, self.x_range.end = t0, t1
        self.overview_box.left, self.overview_box.right = t0, t1
        trace = waveform_trace(recording.path, view.start, view.stop, max_points=4 * self.plot_width,
                               scale=self._wave_scale)
        self.wave_source.data = dict(t=(trace.tics + 0.5) / rate, y=trace.values)
        spec = window_spectrogram(recording.path, view.start, view.stop, rate=rate, max_columns=self.plot_width // 2)
        ncolumns = spec.power.shape[1]
        column_s = (spec.last_tic - spec.first_tic) / max(ncolumns - 1, 1) / rate if ncolumns > 1 else (t1 - t0)
        self.spectrogram_source.data = dict(
            image=[spec.power], x=[spec.first_tic / rate - column_s / 2], y=[0.0],
            dw=[column_s * ncolumns], dh=[spec.nyquist],
        )
        self.spectrogram_mapper.low, self.spectrogram_mapper.high = self._colour_scale
        self.spectrogram.y_range.start, self.spectrogram.y_range.end = 0.0, spec.nyquist
        self._render_probabilities()
        self.position.object = (
            f"{t0:.3f}–{t1:.3f} s of {recording.ntics / rate:.1f} s ({recording.rate} Hz)"
        )
        if self._audio_window != (recording.key, view.start, view.stop):
            self.playhead.visible = False

    def _render_probabilities(self) -> None:
        probs = self._probabilities
        if probs is None:
            self.probability.visible = False
            self.probability_legend.object = ""
            return
        view, rate = self.view, self.recording.rate
        first = max(int(math.floor(view.start / probs.stride_tics)), 0)
        last = min(int(math.ceil(view.stop / probs.stride_tics)) + 1, probs.nsamples)
        step = max(1, (last - first) // (2 * self.plot_width))
        index = np.arange(first, last, step)
        seconds = index * probs.stride_tics / rate
        labels = self._slot_labels()
        xs, ys, colours = [], [], []
        for column, label in enumerate(probs.labels):
            xs.append(seconds)
            ys.append(probs.values[index, column])
            colours.append(_label_colour(label, labels))
        self.probability_source.data = dict(xs=xs, ys=ys, colour=colours, label=list(probs.labels))
        self.probability.visible = True
        self.probability_legend.object = " ".join(
            f'<span style="color:{c}">&#9644; {html.escape(label)}</span>' for label, c in zip(probs.labels, colours)
        )

    def _box_data(self, sounds: Sequence[Sound], *, upper: bool) -> dict:
        recording, view = self.recording, self.view
        rate = recording.rate
        minimum = 3 * view.width / self.plot_width  # a point is drawn 3 pixels wide
        labels = self._slot_labels()
        visible = [s for s in sounds if s.stop >= view.start and s.start < view.stop]
        data = _empty_boxes()
        nyquist = rate / 2
        spec_bottom, spec_top = ((0.52 * nyquist, 0.99 * nyquist) if upper else (0.01 * nyquist, 0.48 * nyquist))
        for sound in visible:
            width = max(sound.stop + 1 - sound.start, minimum)
            centre = (sound.start + sound.stop + 1) / 2
            data["left"].append((centre - width / 2) / rate)
            data["right"].append((centre + width / 2) / rate)
            if upper:
                colour = KIND_COLOURS.get(sound.kind, OTHER_KIND_COLOUR)
                if sound.kind == "detected":
                    colour = DETECTED_COLOURS.get(sound.label, colour)
                text = sound.label
            else:
                colour = _label_colour(sound.label, labels)
                text = sound.label or "✕ delete"
            if upper and width * self.plot_width / view.width < TEXT_MIN_PIXELS:
                text = ""  # used sounds can be many and narrow; annotations always show their label
            data["colour"].append(colour)
            data["text"].append(text)
            data["kind"].append(sound.kind)
            data["start"].append(sound.start)
            data["stop"].append(sound.stop)
            data["spec_bottom"].append(spec_bottom)
            data["spec_top"].append(spec_top)
        if len(visible) > 300:  # too many to read: boxes without their labels
            data["text"] = [""] * len(visible)
        return data

    def _render_boxes(self) -> None:
        key = self.recording.key
        self.upper_source.data = self._box_data(self.session.used_sounds(key), upper=True)
        self.lower_source.data = self._box_data(self.session.annotations(key), upper=False)
        self._render_counts_table()

    def _render_counts_table(self) -> None:
        key = self.recording.key
        rows = [(s.label, s.kind) for s in self.session.used_sounds(key)]
        rows += [(s.label, "this session") for s in self.session.annotations(key) if s.label]
        if not rows:
            self.counts_table.object = "<i>no sounds in this recording yet</i>"
            return
        table = pd.crosstab(pd.Series([r[0] for r in rows], name="label"), pd.Series([r[1] for r in rows], name="kind"))
        table.loc["TOTAL"] = table.sum()
        self.counts_table.object = table.to_html(border=0)

    # ------------------------------------------------------------------------------------------
    # labels

    def _slot_labels(self) -> list[str]:
        return [box.value_input if box.value_input is not None else box.value for box in self.label_inputs]

    def _label_typed(self, index: int, text: str) -> None:
        self._select_label_slot(index)

    def _select_label_slot(self, index: int | None) -> None:
        """Make label box ``index`` the current label (``None``: no label)."""
        self._selected_slot = index
        label = ""
        if index is not None:
            label = (self._slot_labels()[index] or "").strip()
        if self.session is not None:
            self.session.label = label
        self._render_labels()

    def _render_labels(self) -> None:
        label = self.session.label if self.session else ""
        self.current_label.object = (f"label: <b>{html.escape(label)}</b>" if label
                                     else "<i>no label</i> (a double-click on someone's annotation deletes it)")
        counts = self.session.counts() if self.session else {}
        for index, (text, button) in enumerate(zip(self._slot_labels(), self.count_buttons)):
            text = (text or "").strip()
            button.label = str(counts.get(text, 0)) if text else "0"
            button.color = "primary" if index == self._selected_slot else "default"

    # ------------------------------------------------------------------------------------------
    # gestures

    def _proximity(self) -> int:
        try:
            width = self.waveform.inner_width or self.plot_width  # set by the browser once drawn
        except UnsetValueError:
            width = self.plot_width
        return proximity_tics(self.view.width, int(width))

    def _double_tap(self, fig, event) -> None:
        if event.x is None or event.y is None:
            return
        middle = (fig.y_range.start + fig.y_range.end) / 2  # 0 on the waveform, nyquist/2 on the spectrogram
        self.double_click(event.x, upper=event.y > middle)

    def double_click(self, seconds: float, *, upper: bool) -> None:
        """A double-click at ``seconds`` in the upper (used sounds) or lower (annotations) half."""
        if self.recording is None or self.session is None:
            return
        tic = seconds * self.recording.rate
        key = self.recording.key
        try:
            if upper:
                action = self.session.double_click_upper(key, tic, proximity=self._proximity())
                if action is None and not self.session.label:
                    self.show_info("choose a label first (type one into a label box), or press 0 to delete someone "
                                   "else's annotation")
            else:
                action = self.session.double_click_lower(key, tic, proximity=self._proximity())
                if action is None:
                    self.show_info("choose a label first: type one into a label box or click its counter")
        except SessionError as error:
            self.show_error(str(error))
            return
        if action is not None:
            self.show_info("")
        self._after_edit()

    def _selection(self, event) -> None:
        geometry = event.geometry or {}
        if not getattr(event, "final", True) or geometry.get("type") != "rect":
            return
        if geometry.get("x0") is None or geometry.get("x1") is None:
            return
        self.drag(geometry["x0"], geometry["x1"])

    def drag(self, seconds0: float, seconds1: float) -> None:
        """A horizontal drag from ``seconds0`` to ``seconds1``: a range annotation."""
        if self.recording is None or self.session is None:
            return
        rate = self.recording.rate
        if abs(seconds1 - seconds0) * rate < 1:
            return
        try:
            self.session.drag(self.recording.key, seconds0 * rate, seconds1 * rate)
        except SessionError as error:
            self.show_error(str(error))
            return
        self.show_info("")
        self._after_edit()

    def _after_edit(self) -> None:
        self._render_boxes()
        self._render_labels()
        self._render_status()

    def undo(self) -> None:
        if self.session is not None:
            self._show_action(self.session.undo())

    def redo(self) -> None:
        if self.session is not None:
            self._show_action(self.session.redo())

    def _show_action(self, action) -> None:
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
    # navigation and keys

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
            sound = self.session.neighbour(self.recording.key, view.centre, direction)
            if sound is None:
                self.show_info(f"no {'later' if direction > 0 else 'earlier'} sound")
                return
            self.view = view.centred_on((sound.start + sound.stop) / 2)
        else:
            raise ValueError(f"unknown move {where!r}")
        self.render()

    def centre_on(self, key: str, tic: float) -> None:
        """Show recording ``key`` centred on ``tic`` (the cluster view's snippets use this)."""
        if self.recording is None or self.recording.key != key:
            if not self.open_recording(key):
                return
        self.view = self.view.centred_on(tic)
        self.render()

    def handle_key(self, key: str) -> None:
        """A key press (``KeyboardEvent.key`` with ``Ctrl+``/``Shift+`` prefixes)."""
        if self.session is None:
            return
        moves = {
            "ArrowLeft": "left", "ArrowRight": "right", "ArrowUp": "in", "ArrowDown": "out",
            "Shift+ArrowLeft": "start", "Shift+ArrowRight": "end", "Home": "start", "End": "end",
            "o": "reset", ",": "previous", ".": "next",
        }
        if key in moves:
            self.navigate(moves[key])
        elif key.isdigit() and len(key) == 1:
            index = int(key) - 1  # "0" is no label; digits past the last box do nothing
            if index < len(self.label_inputs):
                self._select_label_slot(None if index < 0 else index)
        elif key in ("Ctrl+z",):
            self.undo()
        elif key in ("Ctrl+Z", "Ctrl+y", "Ctrl+Shift+Z"):
            self.redo()
        elif key == "Ctrl+s":
            self.save()
        elif key == " ":
            self.toggle_play()

    # ------------------------------------------------------------------------------------------
    # playback

    def toggle_play(self) -> None:
        """Play the visible window (resampled for the browser), or pause."""
        if self.recording is None:
            return
        if not self.audio.paused:
            self.audio.paused = True
            return
        window = (self.recording.key, self.view.start, self.view.stop)
        if self._audio_window != window:
            data, rate = playback_wav(self.recording.path, self.view.start, self.view.stop, rate=self.recording.rate)
            self.audio.object = data
            self._audio_window = window
        self.audio.time = 0
        self.playhead.location = self.view.start / self.recording.rate
        self.playhead.visible = True
        self.audio.paused = False

    def _audio_time(self, event) -> None:
        if self._audio_window is None or self.recording is None:
            return
        key, start, _stop = self._audio_window
        if key == self.recording.key:
            self.playhead.location = start / self.recording.rate + float(event.new or 0)

    def _audio_paused(self, event) -> None:
        self.play_button.label = "▶ Play" if event.new else "❚❚ Pause"

    # ------------------------------------------------------------------------------------------
    # saving

    def _render_status(self) -> None:
        if self.session is None:
            self.save_indicator.object = ""
            return
        unsaved = self.session.unsaved_changes()
        colour = "#2a7" if unsaved == 0 else ("#e69500" if unsaved < 10 else "#d00")
        text = "all saved" if unsaved == 0 else f"{unsaved} unsaved"
        self.save_indicator.object = f'<span style="color:{colour};font-weight:bold" id="unsaved">{text}</span>'
        self.undo_button.disabled = not self.session.can_undo
        self.redo_button.disabled = not self.session.can_redo

    def save(self) -> None:
        """Write unsaved changes (merging with the files on disk) and redraw what changed."""
        if self.session is None or not self.session.unsaved_changes():
            self._render_status()
            return
        try:
            report = self.session.save()
        except (AnnotationError, SessionError, OSError) as error:
            self.show_error(f"could not save: {error}")
            return
        names = ", ".join(p.name for p in report.changed)
        self.show_info(f"saved {names}" if names else "")
        if self.recording is not None:
            self._render_boxes()
            self._render_labels()
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

    # ------------------------------------------------------------------------------------------
    # the cluster view

    def _build_cluster_view(self) -> None:
        self.cluster_info = pn.pane.Markdown("", width=self.plot_width)
        self.cluster_refresh = pn.widgets.Button(label="Reload clusters", width=140)
        self.cluster_refresh.on_click(_locked(lambda _event: self.load_clusters()))
        self.colour_by = pn.widgets.RadioButtonGroup(label="colour by", options=["label", "kind"], value="label")
        self.kind_filter = pn.widgets.MultiChoice(label="kinds", options=[], width=300)
        self.label_filter = pn.widgets.MultiChoice(label="labels", options=[], width=300)
        for widget in (self.colour_by, self.kind_filter, self.label_filter):
            widget.param.watch(_locked(lambda _event: self._render_scatter()), "value")

        self.scatter_source = ColumnDataSource(_empty_scatter())
        self.chosen_source = ColumnDataSource(dict(x=[], y=[]))
        self.scatter = figure(width=560, height=520, name="scatter", tools="pan,wheel_zoom,reset",
                              toolbar_location="above", title="sounds (tap or box-select a region)")
        self.scatter.add_tools(BoxSelectTool(renderers=[]), TapTool(renderers=[]))
        points = self.scatter.scatter("x", "y", source=self.scatter_source, color="colour", size=6, alpha=0.7,
                                      legend_field="group")
        self.scatter.add_tools(HoverTool(renderers=[points], tooltips=[("recording", "@recording"), ("tics", "@start-@stop"),
                                                                        ("kind", "@kind"), ("label", "@label")]))
        self.scatter.scatter("x", "y", source=self.chosen_source, size=11, fill_alpha=0, line_color="black",
                             line_width=1.5)
        self.scatter.legend.click_policy = "hide"
        self.scatter.legend.label_text_font_size = "8pt"
        self.scatter.on_event(Tap, _locked_event(self._scatter_tap))
        self.scatter.on_event(SelectionGeometry, _locked_event(self._scatter_box))

        self.snippet_columns = 5
        nrows = max(1, math.ceil(self.nsnippets / self.snippet_columns))
        self.snippet_source = ColumnDataSource(dict(image=[], x=[], y=[], dw=[], dh=[]))
        self.snippet_text = ColumnDataSource(dict(x=[], y=[], text=[], colour=[]))
        self.snippet_mapper = LinearColorMapper(palette=Viridis256, low=0, high=1)
        self.snippets = figure(width=560, height=110 * nrows + 30, name="snippets", tools="", toolbar_location=None,
                               x_range=Range1d(0, self.snippet_columns), y_range=Range1d(-nrows, 0),
                               title="nearest sounds: click to show, double-click to annotate")
        self.snippets.image(image="image", x="x", y="y", dw="dw", dh="dh", source=self.snippet_source,
                            color_mapper=self.snippet_mapper)
        self.snippets.rect(x="x", y="y", width=0.95, height=0.95, source=self.snippet_text, fill_alpha=0,
                           line_color="colour", line_width=2)
        self.snippets.text(x="x", y="y", text="text", source=self.snippet_text, text_font_size="8pt",
                           text_align="center", text_baseline="middle", text_color="white", y_offset=38)
        self.snippets.axis.visible = False
        self.snippets.grid.visible = False
        self.snippets.on_event(Tap, _locked_event(self._snippet_tap))
        self.snippets.on_event(DoubleTap, _locked_event(self._snippet_double_tap))
        self.cluster_plots = pn.Row(pn.pane.Bokeh(self.scatter), pn.pane.Bokeh(self.snippets))
        self.cluster_view = pn.Column(
            pn.Row(self.cluster_refresh, pn.pane.HTML("colour by", margin=(12, 4)), self.colour_by,
                   self.kind_filter, self.label_filter),
            self.cluster_info,
            self.cluster_plots,
        )
        self.load_clusters()

    def load_clusters(self) -> None:
        """(Re)read ``outputs/cluster/cluster.parquet``; say "no clusters yet" when it is absent."""
        path = cluster_path(self.catalog.outputs)
        try:
            table = read_cluster_table(path, self.catalog.key_for)
        except ClusterError as error:
            table = None
            self.cluster_info.object = f"**The cluster file cannot be shown.** {error}"
        else:
            if table is None:
                self.cluster_info.object = (
                    "**No clusters yet.** Once the cluster step has run it writes "
                    f"`{path.relative_to(self.project.root) if self.project.root in path.parents else path}` "
                    "and the sounds appear here (press *Reload clusters*)."
                )
        self._cluster = table
        self.cluster_plots.visible = table is not None
        if table is None:
            self.scatter_source.data = _empty_scatter()
            return
        sounds = table.sounds
        kinds = sorted(sounds["kind"].unique())
        labels = sorted(sounds["label"].unique())
        self.kind_filter.options, self.label_filter.options = kinds, labels
        self.cluster_info.object = (
            f"{len(sounds)} sounds from `{table.path.name}`"
            + (f" ({table.unmatched} rows name recordings this project does not have)" if table.unmatched else "")
            + (" · 3-D embedding shown as x/y" if table.has_z else "")
        )
        self._render_scatter()

    def _filtered_sounds(self) -> pd.DataFrame:
        sounds = self._cluster.sounds
        return filter_sounds(sounds, kinds=self.kind_filter.value or None, labels=self.label_filter.value or None)

    def _render_scatter(self) -> None:
        if self._cluster is None:
            return
        sounds = self._filtered_sounds()
        by = self.colour_by.value
        groups = sorted(self._cluster.sounds[by].unique())
        colours = {g: Category10_10[i % 10] for i, g in enumerate(groups)}
        self.scatter_source.data = dict(
            x=sounds["x"].to_numpy(), y=sounds["y"].to_numpy(), recording=sounds["recording"].to_numpy(),
            start=sounds["start"].to_numpy(), stop=sounds["stop"].to_numpy(), kind=sounds["kind"].to_numpy(),
            label=sounds["label"].to_numpy(), group=sounds[by].to_numpy(),
            colour=[colours[g] for g in sounds[by]],
        )

    def _scatter_tap(self, event) -> None:
        if event.x is not None and event.y is not None:
            self.choose_snippets(event.x, event.y)

    def _scatter_box(self, event) -> None:
        geometry = event.geometry or {}
        if geometry.get("type") == "rect" and getattr(event, "final", True):
            box = (geometry["x0"], geometry["x1"], geometry["y0"], geometry["y1"])
            self.choose_snippets((box[0] + box[1]) / 2, (box[2] + box[3]) / 2, box=box)

    def choose_snippets(self, x: float, y: float, *, box=None) -> None:
        """Fill the snippet grid with the sounds nearest ``(x, y)`` (inside ``box`` if given)."""
        if self._cluster is None:
            return
        rows = nearest_sounds(self._filtered_sounds(), x, y, self.nsnippets, box=box)
        self._snippet_rows = rows.reset_index(drop=True)
        self.chosen_source.data = dict(x=rows["x"].to_numpy(), y=rows["y"].to_numpy())
        self._render_snippets()

    def _render_snippets(self) -> None:
        rows = self._snippet_rows
        images, xs, ys, centres_x, centres_y, texts, colours = [], [], [], [], [], [], []
        lows, highs = [], []
        annotated = {}  # (recording, start, stop) -> label of this session's annotation
        if self.session is not None:
            for key in self.session.recordings():
                for sound in self.session.annotations(key):
                    annotated[(sound.recording, sound.start, sound.stop)] = sound.label
        for index, row in enumerate(rows.itertuples(index=False)):
            try:
                recording = self.catalog.recording(row.recording)
            except (AccessError, RecordingError):
                continue
            half = int(self.snippet_s * recording.rate / 2)
            centre = (int(row.start) + int(row.stop)) // 2
            spec = window_spectrogram(recording.path, centre - half, centre + half, rate=recording.rate, max_columns=60)
            column, line = index % self.snippet_columns, index // self.snippet_columns
            images.append(spec.power)
            xs.append(column + 0.025)
            ys.append(-line - 1 + 0.025)
            lows.append(spec.low_db)
            highs.append(spec.high_db)
            centres_x.append(column + 0.5)
            centres_y.append(-line - 0.5)
            new_label = annotated.get((row.recording, int(row.start), int(row.stop)))
            texts.append(f"{row.label} · {row.kind}" + (f" → {new_label or '✕'}" if new_label is not None else ""))
            colours.append("#2ca02c" if new_label is not None else "#ffffff")
        self.snippet_source.data = dict(image=images, x=xs, y=ys, dw=[0.95] * len(images), dh=[0.95] * len(images))
        self.snippet_text.data = dict(x=centres_x, y=centres_y, text=texts, colour=colours)
        if images:
            self.snippet_mapper.low, self.snippet_mapper.high = float(np.median(lows)), float(np.max(highs))

    def _snippet_at(self, x: float, y: float):
        if x is None or y is None:
            return None
        column, line = int(math.floor(x)), int(math.floor(-y))
        index = line * self.snippet_columns + column
        if 0 <= column < self.snippet_columns and 0 <= index < len(self._snippet_rows):
            return self._snippet_rows.iloc[index]
        return None

    def _snippet_tap(self, event) -> None:
        row = self._snippet_at(event.x, event.y)
        if row is not None:
            self.show_snippet(row)

    def _snippet_double_tap(self, event) -> None:
        row = self._snippet_at(event.x, event.y)
        if row is not None:
            self.annotate_snippet(row)

    def show_snippet(self, row) -> None:
        """Centre the recording view on a snippet's sound."""
        self.centre_on(str(row["recording"]), (int(row["start"]) + int(row["stop"])) / 2)
        if self.recording is not None and self.recording.key == str(row["recording"]):
            self.show_info(f"the Recording tab now shows {row['recording']} at "
                           f"{int(row['start']) / self.recording.rate:.3f} s ({row['label']}, {row['kind']})")

    def annotate_snippet(self, row) -> None:
        """Double-click on a snippet: toggle an annotation of its sound with the current label."""
        if self.session is None:
            return
        key = str(row["recording"])
        if key not in self.session.recordings():
            recording = self.catalog.recording(key)
            self.session.open_recording(key, ntics=recording.ntics, other_sounds=self.catalog.intervals(key))
        sound = Sound(key, int(row["start"]), int(row["stop"]), str(row["kind"]), str(row["label"]))
        try:
            action = self.session.toggle(key, sound)
        except SessionError as error:
            self.show_error(str(error))
            return
        if action is None:
            self.show_info("choose a label first: type one into a label box on the Recording tab")
        self._render_snippets()
        if self.recording is not None and self.recording.key == key:
            self._render_boxes()
        self._render_labels()
        self._render_status()

    # ------------------------------------------------------------------------------------------

    def servable(self):
        """The layout, with autosave and save-on-close registered for a served session."""
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            if self.autosave_s > 0:
                pn.state.add_periodic_callback(self.autosave, period=int(self.autosave_s * 1000))
            pn.state.curdoc.on_session_destroyed(lambda _context: self._save_on_close())
        return self.layout


def _locked(function):
    """Wrap a widget callback so that, when served, it runs on the next tick of the server's
    event loop holding the Bokeh document's lock.

    Panel delivers button clicks and component messages outside that lock, and these callbacks
    change Bokeh models (data sources, ranges) directly, which Bokeh only allows under it.
    Without a server (tests) the callback runs at once.
    """

    def run(*args, **kwargs):
        pn.state.execute(functools.partial(function, *args, **kwargs), schedule=True)

    return run


def _locked_event(function):
    """:func:`_locked` for Bokeh event callbacks (which Bokeh wants with one ``event`` argument),
    so that gestures and widget changes run in the order they arrived."""

    def run(event):
        pn.state.execute(functools.partial(function, event), schedule=True)

    return run


def _empty_boxes() -> dict:
    return dict(left=[], right=[], colour=[], text=[], kind=[], start=[], stop=[], spec_bottom=[], spec_top=[])


def _empty_scatter() -> dict:
    return dict(x=[], y=[], recording=[], start=[], stop=[], kind=[], label=[], group=[], colour=[])


def _float(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value >= 0 else None


def create_app(project_root: str | Path, **options) -> pn.viewable.Viewable:
    """Build the app for the current Panel session, reading the page's query parameters."""
    pn.extension()
    query = {}
    if pn.state.location is not None:
        query = {k: str(v) for k, v in (pn.state.location.query_params or {}).items()}
    app = AnnotatorApp(Project(Path(project_root).resolve()), query=query, **options)
    return app.servable()
