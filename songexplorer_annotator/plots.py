"""The recording view's plots: an overview of the whole recording and the context window
(waveform, spectrogram, probabilities) with the used sounds boxed in its upper half and this
session's annotations in its lower half. Only the visible window is computed and sent."""

from __future__ import annotations

import functools
import html
import math
from collections.abc import Callable, Sequence

import numpy as np
import panel as pn
from bokeh.core.property.descriptors import UnsetValueError
from bokeh.events import DoubleTap, SelectionGeometry, Tap
from bokeh.models import BoxAnnotation, BoxSelectTool, ColumnDataSource, LinearColorMapper, Range1d, Span
from bokeh.palettes import Viridis256
from bokeh.plotting import figure

from songexplorer_annotator.catalog import Recording
from songexplorer_annotator.signals import waveform_trace, window_spectrogram
from songexplorer_annotator.ui import (
    DETECTED_COLOURS,
    KIND_COLOURS,
    OTHER_KIND_COLOUR,
    TEXT_MIN_PIXELS,
    label_colour,
    locked_event,
)
from songexplorer_annotator.viewport import Viewport
from songexplorer_core.annotation_session import Sound, proximity_tics


class ContextPlots:
    """The overview and the context window's figures, and the gestures made on them.

    Args:
        plot_width: width of the plots, screen pixels.
        playhead: the playback position line, drawn across the context window.
        on_overview_tap: called with the seconds clicked on the overview.
        on_double_tap: called with the seconds double-clicked and whether it was the upper half.
        on_drag: called with the two ends of a horizontal drag, seconds.
    """

    def __init__(self, plot_width: int, playhead: Span, *, on_overview_tap: Callable[[float], None],
                 on_double_tap: Callable[[float, bool], None], on_drag: Callable[[float, float], None]):
        self.plot_width = width = plot_width
        self._on_overview_tap, self._on_double_tap, self._on_drag = on_overview_tap, on_double_tap, on_drag
        self.x_range = Range1d(0, 1)
        # overview of the whole recording; a click centres the window there
        self.overview_source = ColumnDataSource(dict(t=[], y=[]))
        self.overview = figure(width=width, height=70, tools="", toolbar_location=None, x_range=Range1d(0, 1),
                               y_range=Range1d(-1.05, 1.05), name="overview")
        self.overview.line("t", "y", source=self.overview_source, color="#777")
        self.overview_box = BoxAnnotation(left=0, right=0, fill_color="#1f77b4", fill_alpha=0.2)
        self.overview.add_layout(self.overview_box)
        self.overview.yaxis.visible = False
        self.overview.on_event(Tap, locked_event(self._overview_tap))

        self.wave_source = ColumnDataSource(dict(t=[], y=[]))
        self.upper_source = ColumnDataSource(empty_boxes())
        self.lower_source = ColumnDataSource(empty_boxes())
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
            fig.add_layout(playhead)
        self.panes = [pn.pane.Bokeh(self.overview), pn.pane.Bokeh(self.waveform), pn.pane.Bokeh(self.spectrogram),
                      pn.pane.Bokeh(self.probability), self.probability_legend]

    def _context_figure(self, name: str, y_range: Range1d, *, height: int):
        fig = figure(width=self.plot_width, height=height, x_range=self.x_range, y_range=y_range, name=name,
                     tools=[BoxSelectTool(dimensions="width", renderers=[])], toolbar_location=None)
        fig.xaxis.axis_label = "seconds"
        fig.on_event(DoubleTap, locked_event(functools.partial(self._double_tap, fig)))
        fig.on_event(SelectionGeometry, locked_event(self._selection))
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
    # drawing

    def draw_overview(self, recording: Recording) -> None:
        """The whole recording; also fixes one amplitude and one colour scale for all its windows,
        so quiet windows look quiet."""
        trace = waveform_trace(recording.path, 0, recording.ntics, max_points=2 * self.plot_width)
        self.overview_source.data = dict(t=trace.tics / recording.rate, y=trace.values)
        self._wave_scale = trace.peak or 1.0
        whole = window_spectrogram(recording.path, 0, recording.ntics, rate=recording.rate, max_columns=400)
        self._colour_scale = (whole.low_db, whole.high_db)
        self.overview.x_range.start = 0
        self.overview.x_range.end = recording.ntics / recording.rate

    def draw_window(self, recording: Recording, view: Viewport, probabilities, labels: Sequence[str]) -> None:
        """Waveform, spectrogram and probabilities of the visible window (``labels`` colour them)."""
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
        self._draw_probabilities(recording, view, probabilities, labels)

    def _draw_probabilities(self, recording: Recording, view: Viewport, probs, labels: Sequence[str]) -> None:
        if probs is None:
            self.probability.visible = False
            self.probability_legend.object = ""
            return
        rate = recording.rate
        first = max(int(math.floor(view.start / probs.stride_tics)), 0)
        last = min(int(math.ceil(view.stop / probs.stride_tics)) + 1, probs.nsamples)
        step = max(1, (last - first) // (2 * self.plot_width))
        index = np.arange(first, last, step)
        seconds = index * probs.stride_tics / rate
        xs, ys, colours = [], [], []
        for column, label in enumerate(probs.labels):
            xs.append(seconds)
            ys.append(probs.values[index, column])
            colours.append(label_colour(label, labels))
        self.probability_source.data = dict(xs=xs, ys=ys, colour=colours, label=list(probs.labels))
        self.probability.visible = True
        self.probability_legend.object = " ".join(
            f'<span style="color:{c}">&#9644; {html.escape(label)}</span>' for label, c in zip(probs.labels, colours)
        )

    def draw_boxes(self, recording: Recording, view: Viewport, used: Sequence[Sound], annotations: Sequence[Sound],
                   labels: Sequence[str]) -> None:
        """Used sounds in the upper half, this session's annotations in the lower half."""
        self.upper_source.data = self._box_data(recording, view, used, labels, upper=True)
        self.lower_source.data = self._box_data(recording, view, annotations, labels, upper=False)

    def _box_data(self, recording: Recording, view: Viewport, sounds: Sequence[Sound], labels: Sequence[str], *,
                  upper: bool) -> dict:
        rate = recording.rate
        minimum = 3 * view.width / self.plot_width  # a point is drawn 3 pixels wide
        visible = [s for s in sounds if s.stop >= view.start and s.start < view.stop]
        data = empty_boxes()
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
                colour = label_colour(sound.label, labels)
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

    # ------------------------------------------------------------------------------------------
    # gestures

    def proximity(self, view: Viewport) -> int:
        """How near a click must be to a sound to hit it, tics (a few pixels at the drawn width)."""
        try:
            width = self.waveform.inner_width or self.plot_width  # set by the browser once drawn
        except UnsetValueError:
            width = self.plot_width
        return proximity_tics(view.width, int(width))

    def _overview_tap(self, event) -> None:
        if event.x is not None:
            self._on_overview_tap(event.x)

    def _double_tap(self, fig, event) -> None:
        if event.x is None or event.y is None:
            return
        middle = (fig.y_range.start + fig.y_range.end) / 2  # 0 on the waveform, nyquist/2 on the spectrogram
        self._on_double_tap(event.x, event.y > middle)

    def _selection(self, event) -> None:
        geometry = event.geometry or {}
        if not getattr(event, "final", True) or geometry.get("type") != "rect":
            return
        if geometry.get("x0") is None or geometry.get("x1") is None:
            return
        self._on_drag(geometry["x0"], geometry["x1"])


def empty_boxes() -> dict:
    return dict(left=[], right=[], colour=[], text=[], kind=[], start=[], stop=[], spec_bottom=[], spec_top=[])
