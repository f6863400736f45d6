"""What the annotator's components share: the session state of one browser tab (:class:`Shared`),
colours, and the wrappers that run widget callbacks under the Bokeh document's lock."""

from __future__ import annotations

import functools
import html
import logging
import weakref
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
#: Where the annotator logs (its tracebacks go there, never to the page).
log = logging.getLogger("songexplorer_annotator")
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
    #: the double-click action's name and settings (``songexplorer_core.annotation_actions``)
    action: str = "point"
    action_parameters: dict = field(default_factory=dict)
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


# ------------------------------------------------------------------------------------------------
# errors: a short message on the page, the traceback in the server's log

#: The message line of each served page, by its Bokeh document.
_pages: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def register_page(shared: Shared) -> None:
    """Let :func:`report_exception` show errors of the current served page on ``shared``'s message line."""
    if pn.state.curdoc is not None:
        _pages[pn.state.curdoc] = shared


def short_error(exception: BaseException) -> str:
    """One line for the page: the kind of error and the first line of its message (at most 200
    characters), and where the details are."""
    text = (str(exception).strip().splitlines() or [""])[0][:200]
    return (f"Something went wrong ({type(exception).__name__}{': ' + text if text else ''}). The details are in "
            f"the annotator's log (the terminal that started it); saved annotations are safe.")


def report_exception(exception: BaseException) -> None:
    """Panel's ``config.exception_handler`` when served: log the traceback and show
    :func:`short_error` on the page whose callback failed."""
    log.error("unexpected error in a callback", exc_info=(type(exception), exception, exception.__traceback__))
    shared = _pages.get(pn.state.curdoc) if pn.state.curdoc is not None else None
    if shared is not None:
        shared.show_error(short_error(exception))
