"""The label slots: SongExplorer's ``gui_nlabels`` text boxes, each with a counter button. The chosen
slot's text is the label gestures give; the counters show how many sounds this session gave each."""

from __future__ import annotations

import html
from collections.abc import Sequence

import panel as pn

from songexplorer_annotator.catalog import Catalog
from songexplorer_annotator.ui import Shared, locked
from songexplorer_core.annotations import AnnotationError, find_interval_csvs, read_intervals_csv
from songexplorer_core.labels import LabelError, check_label


def common_labels(catalog: Catalog) -> list[str]:
    """Labels of the project's annotation files, most common first (ties by name)."""
    counts: dict[str, int] = {}
    for path in find_interval_csvs(catalog.groundtruth, kinds=["annotated"]):
        try:
            frame = read_intervals_csv(path)
        except AnnotationError:
            continue
        for label, n in frame["label"].value_counts().items():
            counts[str(label)] = counts.get(str(label), 0) + int(n)
    return [label for label, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if label]


class LabelSlots:
    """``nlabels`` label boxes filled with ``labels`` (then empty); the first is chosen if it has text.

    Typing in a box or clicking its counter chooses it; :meth:`choose` with ``None`` chooses no
    label (then a double-click on someone else's annotation deletes it).
    """

    def __init__(self, shared: Shared, labels: Sequence[str], nlabels: int):
        self.shared = shared
        slots = list(labels)[:nlabels] + [""] * max(0, nlabels - len(labels))
        self.inputs: list[pn.widgets.TextInput] = []
        self.count_buttons: list[pn.widgets.Button] = []
        for index, text in enumerate(slots):
            box = pn.widgets.TextInput(value=text, value_input=text, width=110, placeholder=f"label {index + 1}")
            count = pn.widgets.Button(label="0", width=46, description=f"choose this label (key {index + 1})")
            box.param.watch(locked(lambda event, i=index: self.choose(i)), "value_input")
            box.param.watch(locked(lambda event, i=index: self.choose(i)), "value")
            count.on_click(locked(lambda _event, i=index: self.choose(i)))
            self.inputs.append(box)
            self.count_buttons.append(count)
        self.selected: int | None = 0 if slots and slots[0] else None
        self._refused = False  # the chosen box holds a label check_label refused (its message is shown)
        self.current_label = pn.pane.HTML("", margin=(12, 10))
        self.row = pn.Row(*[pn.Row(b, c, margin=(0, 6, 0, 0)) for b, c in zip(self.inputs, self.count_buttons)],
                          self.current_label)

    def labels(self) -> list[str]:
        """The text of every slot, as typed so far."""
        return [box.value_input if box.value_input is not None else box.value for box in self.inputs]

    def choose(self, index: int | None) -> None:
        """Make slot ``index`` the current label (``None``: no label)."""
        self.selected = index
        label = ""
        if index is not None:
            label = (self.labels()[index] or "").strip()
        try:  # a label is a name, never a path (it is saved in CSVs and becomes file names)
            label = check_label(label, where=f"label box {index + 1}") if label else ""
            if self._refused:
                self.shared.show_info("")
            self._refused = False
        except LabelError as error:
            self.shared.show_error(str(error))
            self._refused, label = True, ""
        if self.shared.session is not None:
            self.shared.session.label = label
        self.render()

    def press_digit(self, digit: int) -> None:
        """Key ``digit``: 1-n choose a slot, 0 none; digits past the last slot do nothing."""
        index = digit - 1
        if index < len(self.inputs):
            self.choose(None if index < 0 else index)

    def render(self) -> None:
        """Show the current label and each slot's count of this session's annotations."""
        session = self.shared.session
        label = session.label if session else ""
        self.current_label.object = (f"label: <b>{html.escape(label)}</b>" if label
                                     else "<i>no label</i> (a double-click on someone's annotation deletes it)")
        counts = session.counts() if session else {}
        for index, (text, count) in enumerate(zip(self.labels(), self.count_buttons)):
            text = (text or "").strip()
            count.label = str(counts.get(text, 0)) if text else "0"
            count.color = "primary" if index == self.selected else "default"
