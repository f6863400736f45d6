"""Labelling many sounds of the cluster view at once: a whole group, a box or a lasso selection.

This is how a project starts from zero (docs/annotator.md, "Starting from zero"): the
``label_sounds_job`` clusters the detected sounds without a model, a person selects a group of
similar sounds (a tap on one selects the group it lies in; the box and lasso tools select what
they enclose), types a label and presses *Label selection*: every selected sound is annotated
with that label through core's :class:`~songexplorer_core.annotation_session.AnnotationSession`,
and saved with the next save. Dagster's ``annotation_files_sensor`` then notices the CSV, and
``ground_truth`` and the first ``trained_model`` follow by themselves.

Sounds already annotated by another annotator are left as they are (correct them one by one
with a double-click on their snippet); a sound this session annotated gets the new label.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import pandas as pd
import panel as pn

from songexplorer_annotator.catalog import AccessError
from songexplorer_annotator.ui import Shared, locked
from songexplorer_core.annotation_session import ANNOTATED, AnnotationSession, SessionError
from songexplorer_core.audio import RecordingError
from songexplorer_core.labels import LabelError, check_label


def label_sounds(session: AnnotationSession, catalog, sounds: pd.DataFrame, label: str) -> tuple[dict[str, int], int]:
    """Annotate every sound of ``sounds`` (``recording, start, stop, kind, label`` rows of the
    cluster table; tics inclusive) with ``label`` in ``session``, opening recordings as needed.

    Returns:
        ``({recording key: sounds annotated}, sounds left as they are)``: another annotator's
        annotations are left, and so are sounds this session already gave ``label``.

    Raises:
        SessionError: ``label`` is not a usable label (a name, never a path).
    """
    try:
        label = check_label(str(label).strip(), where="the label for the selection")
    except LabelError as error:
        raise SessionError(str(error)) from None
    previous, session.label = session.label, label
    annotated: dict[str, int] = {}
    left = 0
    try:
        for key, rows in sounds.groupby("recording", sort=True):
            key = str(key)
            if key not in session.recordings():
                recording = catalog.recording(key)
                session.open_recording(key, ntics=recording.ntics, other_sounds=catalog.intervals(key))
            own = {sound.ticks: sound.label for sound in session.annotations(key)}
            for row in rows.itertuples(index=False):
                ticks = (int(row.start), int(row.stop))
                if own.get(ticks) == label or (row.kind == ANNOTATED and ticks not in own):
                    left += 1
                    continue
                session.add(key, *ticks)
                annotated[key] = annotated.get(key, 0) + 1
    finally:
        session.label = previous
    return annotated, left


class SelectionLabeller:
    """The row under the cluster scatter: what is selected, a label box and *Label selection*.

    Args:
        shared: the browser session's state.
        on_annotated: called with each recording's key after its sounds were labelled.
        on_labelled: called after a selection was labelled (to redraw snippets).
    """

    def __init__(self, shared: Shared, *, on_annotated: Callable[[str], None], on_labelled: Callable[[], None]):
        self.shared = shared
        self._on_annotated, self._on_labelled = on_annotated, on_labelled
        self.selected = pd.DataFrame()
        self.info = pn.pane.HTML("nothing selected: tap a sound to select its group, or draw a box or a lasso",
                                 margin=(12, 6), name="selection_info")
        self.label_input = pn.widgets.TextInput(placeholder="label for the selection", width=200)
        self.button = pn.widgets.Button(label="Label selection", width=140, disabled=True)
        self.button.on_click(locked(lambda _event: self.label_selection()))
        self.layout = pn.Row(self.label_input, self.button, self.info)

    def select(self, rows: pd.DataFrame, what: str) -> None:
        """Make ``rows`` (cluster-table rows) the selection; ``what`` says how they were chosen."""
        self.selected = rows.reset_index(drop=True)
        self.button.disabled = not len(self.selected)
        if not len(self.selected):
            self.info.object = f"nothing selected ({html.escape(what)} holds no sound)"
            return
        labels = self.selected["label"].astype(str).value_counts()
        counts = ", ".join(f"{html.escape(k)} {v}" for k, v in labels.head(4).items())
        more = f", {len(labels) - 4} more" if len(labels) > 4 else ""
        self.info.object = (f'<span id="selection">{len(self.selected)} sounds selected</span> '
                            f"({html.escape(what)}: {counts}{more})")

    def label_selection(self, label: str | None = None) -> int:
        """Label every selected sound with ``label`` (default: the label box); returns how many."""
        session = self.shared.session
        if session is None:
            self.shared.show_error("give your name first (top right): annotations are saved under it")
            return 0
        if not len(self.selected):
            return 0
        label = self.label_input.value_input or self.label_input.value if label is None else label
        if not str(label or "").strip():
            self.shared.show_info("type a label for the selection first")
            return 0
        try:
            annotated, left = label_sounds(session, self.shared.catalog, self.selected, str(label))
        except (SessionError, AccessError, RecordingError) as error:
            self.shared.show_error(str(error))
            return 0
        for key in annotated:
            self._on_annotated(key)
        total = sum(annotated.values())
        kept = f"; {left} left as they were (annotated already)" if left else ""
        self.shared.show_info(f"labelled {total} sound(s) '{label}' in {len(annotated)} recording(s){kept}; "
                              f"saved with the next save")
        self._on_labelled()
        return total
