"""What the annotator's components share: the session state of one browser tab (:class:`Shared`),
colours, and the wrappers that run widget callbacks under the Bokeh document's lock."""

from __future__ import annotations

import functools
import html
from collections.abc import Sequence
from dataclasses import dataclass, field

import panel as pn
from bokeh.palettes import Category10_10

from songexplorer_annotator.catalog import Catalog
from songexplorer_core.annotation_session import AnnotationSession
from songexplorer_core.project import Project

#: Colours of used sounds by kind (upper half); detected sounds by their label.
KIND_COLOURS = {"detected": "#7f7f7f", "predicted": "#ff7f0e", "missed": "#d62728", "annotated": "#9467bd"}
DETECTED_COLOURS = {"time": "#4d4d4d", "frequency": "#1b9e77", "neither": "#d9d9d9"}
#: A box's label is written in it only when the box is at least this wide, screen pixels.
TEXT_MIN_PIXELS = 36
OTHER_KIND_COLOUR = "#8c564b"
DELETION_COLOUR = "#444444"


def label_colour(label: str, labels: Sequence[str]) -> str:
    """The colour of ``label``: its label box's, or a stable one for a label without a box."""
    if not label:
        return DELETION_COLOUR
    if label in labels:
        return Category10_10[list(labels).index(label) % 10]
    return Category10_10[sum(map(ord, label)) % 10]


@dataclass
class Shared:
    """The state every component of one browser session reads.

    ``session`` is ``None`` until the annotator has given a name (:meth:`AnnotatorApp.set_annotator`).
    """

    project: Project
    catalog: Catalog
    plot_width: int  #: width of the plots, screen pixels
    session: AnnotationSession | None = None
    message: pn.pane.HTML = field(default_factory=lambda: pn.pane.HTML("", sizing_mode="stretch_width",
                                                                        name="message"))

    def show_error(self, text: str) -> None:
        self.message.object = (
            f'<div role="alert" style="color:#a00;background:#fee;padding:6px;border-radius:4px">'
            f"{html.escape(text)}</div>"
        )

    def show_info(self, text: str) -> None:
        self.message.object = (
            f'<div style="color:#333;padding:2px 6px">{html.escape(text)}</div>' if text else ""
        )


def locked(function):
    """Wrap a widget callback so that, when served, it runs on the next tick of the server's
    event loop holding the Bokeh document's lock.

    Panel delivers button clicks and component messages outside that lock, and these callbacks
    change Bokeh models (data sources, ranges) directly, which Bokeh only allows under it.
    Without a server (tests) the callback runs at once.
    """

    def run(*args, **kwargs):
        pn.state.execute(functools.partial(function, *args, **kwargs), schedule=True)

    return run


def locked_event(function):
    """:func:`locked` for Bokeh event callbacks (which Bokeh wants with one ``event`` argument),
    so that gestures and widget changes run in the order they arrived."""

    def run(event):
        pn.state.execute(functools.partial(function, event), schedule=True)

    return run


def button(text: str, action, tip: str, width: int = 44) -> pn.widgets.Button:
    """A button that calls ``action()`` (under the lock) when clicked."""
    widget = pn.widgets.Button(label=text, width=width, description=tip)
    widget.on_click(locked(lambda _event: action()))
    return widget
