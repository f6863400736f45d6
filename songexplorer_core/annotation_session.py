"""One person's annotation session: SongExplorer's labelling gestures, undo/redo, and saving that
merges with what is on disk (the gestures of SongExplorer's GUI, ``src/gui/controller.py`` and
``src/gui/model.py`` in SongExplorer's repository; listed in docs/annotator.md).

The annotator app drives this model; it holds no GUI code, so every gesture is testable without a
browser. Vocabulary:

* a **recording** is named by its key (path under ``groundtruth/`` with ``/`` written ``%2F``, see
  :func:`songexplorer_core.project.recording_key`); CSV rows carry the recording's basename.
* **used sounds** are what is drawn in the upper half of the context window: detected, predicted,
  missed... intervals handed in by the caller, plus the ``annotated`` rows of *other* annotation
  files of the recording (other people, earlier sessions under another name, seed annotations).
* **session annotations** are drawn in the lower half: the rows of this annotator's own file
  ``<wav>-annotated-<annotator>.csv`` plus what this session added. Only these can be removed by a
  double-click in the lower half.
* a **correction** is a session annotation made by double-clicking an ``annotated`` used sound: it
  replaces that row of the other file. With the label box empty it is a deletion of that row
  (SongExplorer's "delete sine"), shown as a box with a blank label.

Tics are 0-based sample indices; ``start`` and ``stop`` are both inclusive (a point annotation has
``start == stop``).

Saving (:meth:`AnnotationSession.save`) never overwrites blindly. Under an exclusive lock on the
recording's folder it re-reads the files, applies only *this session's changes since its last save*
(rows it added, rows it removed, rows of other files it corrected or restored), writes each changed
file atomically through :func:`songexplorer_core.annotations.write_intervals_csv`, and then adopts the
merged files as its new state. Two sessions on the same recording therefore both keep their work,
whether they write different files (different annotators) or the same file (one person, two tabs).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from songexplorer_core.annotations import (
    AnnotationError,
    annotated_csv_name,
    empty_intervals,
    intervals_frame,
    parse_csv_name,
    read_intervals_csv,
    write_intervals_csv,
)
from songexplorer_core.atomic import folder_lock, is_temporary
from songexplorer_core.labels import LabelError, check_label
from songexplorer_core.project import recording_relpath

ANNOTATED = "annotated"
#: SongExplorer's default proximity for a double-click, in screen pixels.
PROXIMITY_PIXELS = 3


class SessionError(ValueError):
    """A gesture or save cannot be done; the message says why and what to do."""


@dataclass(frozen=True, order=True)
class Sound:
    """One interval of one recording.

    Attributes:
        recording: the recording's key (path under ``groundtruth/``, ``/`` as ``%2F``).
        start: first tic, inclusive.
        stop: last tic, inclusive (``start`` for a point).
        kind: ``annotated``, ``detected``, ``predicted``, ``missed``...
        label: the label ("" for a deletion of another file's row).
    """

    recording: str
    start: int
    stop: int
    kind: str = ANNOTATED
    label: str = ""

    @property
    def ticks(self) -> tuple[int, int]:
        return (self.start, self.stop)

    @property
    def duration_tics(self) -> int:
        return self.stop - self.start + 1


@dataclass(frozen=True)
class Row:
    """A row of another annotation file that the session saw (the file it came from, relative to
    the recording's folder, and the row itself)."""

    file: str
    sound: Sound


@dataclass(frozen=True)
class Action:
    """One entry of the undo history: sounds removed and sounds added by one gesture."""

    removed: tuple[Sound, ...] = ()
    added: tuple[Sound, ...] = ()
    #: (session annotation, the other file's row it corrects) for annotations added or removed
    corrections: tuple[tuple[Sound, Row], ...] = ()

    @property
    def sound(self) -> Sound | None:
        """The sound the view should pan to when this action is undone or redone."""
        return (self.added or self.removed or (None,))[0]


@dataclass(frozen=True)
class SaveReport:
    """What one :meth:`AnnotationSession.save` did."""

    written: tuple[Path, ...] = ()
    deleted: tuple[Path, ...] = ()

    @property
    def changed(self) -> tuple[Path, ...]:
        return self.written + self.deleted


@dataclass
class _Recording:
    """What the session knows of one recording."""

    key: str
    wav: str  #: basename, as in CSV rows
    folder: Path  #: absolute folder holding the recording and its CSVs
    ntics: int
    other_sounds: list[Sound] = field(default_factory=list)  #: detected/predicted/... from outputs
    others: list[Row] = field(default_factory=list)  #: rows of other annotation files on disk
    annotations: set[Sound] = field(default_factory=set)  #: session annotations (incl. blank)
    corrections: dict[Sound, Row] = field(default_factory=dict)  #: session annotation -> corrected row
    saved_own: frozenset[Sound] = frozenset()  #: own-file rows as of the last load/save
    saved_retracted: frozenset[Row] = frozenset()  #: other rows this session had removed at last save


class _History:
    """The actions done, in order, and how many of them are in effect (the rest were undone)."""

    def __init__(self):
        self.actions: list[Action] = []
        self.index = 0

    def push(self, action: Action) -> Action:
        """Record a new action; the undone ones after it are forgotten."""
        del self.actions[self.index:]
        self.actions.append(action)
        self.index = len(self.actions)
        return action

    def back(self) -> Action | None:
        if self.index == 0:
            return None
        self.index -= 1
        return self.actions[self.index]

    def forward(self) -> Action | None:
        if self.index == len(self.actions):
            return None
        self.index += 1
        return self.actions[self.index - 1]


def _retracted(state: _Recording) -> frozenset[Row]:
    """Rows of other files that this session's present corrections replace."""
    return frozenset(row for sound, row in state.corrections.items() if sound in state.annotations)


def proximity_tics(window_tics: int, plot_width_pixels: int, pixels: int = PROXIMITY_PIXELS) -> int:
    """SongExplorer's double-click tolerance: ``pixels`` screen pixels expressed in tics for a
    context window ``window_tics`` wide drawn ``plot_width_pixels`` wide (at least 0)."""
    if plot_width_pixels <= 0:
        raise ValueError(f"plot width must be positive, got {plot_width_pixels} pixels")
    return max(0, int(round(pixels * window_tics / plot_width_pixels)))


class AnnotationSession:
    """The annotation state of one annotator in one app session (see the module docstring).

    Args:
        groundtruth: the project's ``groundtruth/`` folder; every file read or written is inside it.
        annotator: the name written into ``<wav>-annotated-<annotator>.csv`` (letters, digits,
            ``.``, ``_``, ``-``).
        label: the label new annotations get ("" = no label chosen yet).
    """

    def __init__(self, groundtruth: str | os.PathLike, annotator: str, *, label: str = ""):
        self.groundtruth = Path(groundtruth).resolve()
        annotated_csv_name("x.wav", annotator)  # validates the name, naming the fix
        self.annotator = annotator
        self.label = label
        self._recordings: dict[str, _Recording] = {}
        self._history = _History()

    # ------------------------------------------------------------------------------------------
    # recordings

    def open_recording(self, key: str, *, ntics: int, other_sounds: pd.DataFrame | None = None) -> None:
        """Load a recording's annotation files (again, if already open) and set the used sounds
        that do not come from annotation files (detections, predictions, ...).

        Args:
            key: the recording's key.
            ntics: the recording's length in tics (gestures are clamped to it).
            other_sounds: interval table of detected/predicted/missed... rows for this recording
                (the ``wav`` column is ignored; it is the caller's job to pass this recording's rows).

        Raises:
            AnnotationError: an annotation file of the recording is malformed (names file and line).
            SessionError: the key points outside ``groundtruth/``.
        """
        relative = recording_relpath(key)
        folder = (self.groundtruth / relative).parent.resolve()
        if folder != self.groundtruth and self.groundtruth not in folder.parents:
            raise SessionError(f"recording {key!r} is outside {self.groundtruth}; refusing to open it")
        state = self._recordings.get(key) or _Recording(key=key, wav=relative.name, folder=folder, ntics=int(ntics))
        own, others = _read_files(state, self.annotator)  # raises before anything changes
        self._recordings[key] = state
        state.ntics = int(ntics)
        if other_sounds is not None:
            state.other_sounds = sorted(
                Sound(key, int(r.start), int(r.stop), str(r.kind), str(r.label))
                for r in other_sounds.itertuples(index=False)
            )
        state.others = others
        unsaved_added = state.annotations - state.saved_own
        unsaved_removed = state.saved_own - state.annotations
        # Keep this session's unsaved edits on top of what the files now hold.
        state.annotations = (set(own) - unsaved_removed) | unsaved_added
        state.saved_own = frozenset(own)

    def recordings(self) -> list[str]:
        """Keys of the recordings opened so far."""
        return sorted(self._recordings)

    def _state(self, key: str) -> _Recording:
        try:
            return self._recordings[key]
        except KeyError:
            raise SessionError(f"recording {key!r} is not open; open_recording() it first") from None

    def own_csv_path(self, key: str) -> Path:
        """Where this annotator's annotations of recording ``key`` are saved."""
        state = self._state(key)
        return state.folder / annotated_csv_name(state.wav, self.annotator)

    # ------------------------------------------------------------------------------------------
    # what is shown

    def annotations(self, key: str) -> list[Sound]:
        """The session annotations of a recording, sorted by start (blank labels are deletions of
        another file's row)."""
        return sorted(self._state(key).annotations)

    def used_sounds(self, key: str) -> list[Sound]:
        """What the upper half shows: the caller's detected/predicted/... sounds plus the rows of
        other annotation files, less the rows this session has corrected."""
        state = self._state(key)
        corrected = set(state.corrections.values())
        rows = [row.sound for row in state.others if row not in corrected]
        return sorted(state.other_sounds + rows)

    def counts(self) -> dict[str, int]:
        """Session annotations per label over every opened recording (blank labels left out)."""
        counts: dict[str, int] = {}
        for state in self._recordings.values():
            for sound in state.annotations:
                if sound.label:
                    counts[sound.label] = counts.get(sound.label, 0) + 1
        return counts

    def annotations_frame(self, key: str) -> pd.DataFrame:
        """The session annotations of a recording with a label, as an interval table."""
        state = self._state(key)
        return _frame(state.wav, [s for s in state.annotations if s.label])

    # ------------------------------------------------------------------------------------------
    # gestures (SongExplorer's, see docs/annotator.md)

    def _clamp(self, state: _Recording, tic: int) -> int:
        return min(max(int(tic), 0), max(state.ntics - 1, 0))

    def _require_label(self, what: str) -> str:
        if not self.label:
            raise SessionError(f"choose a label before {what}: type one into a label box or click its counter")
        return self.label

    def add(self, key: str, start: int, stop: int, *, corrects: Row | None = None) -> Action:
        """Annotate ``[start, stop]`` (tics, inclusive) of ``key`` with the current label.

        An existing session annotation with the same ticks is replaced (SongExplorer's rule).
        ``corrects`` names another file's row that this annotation replaces (set by
        :meth:`toggle`); a blank label is only allowed for such a correction (a deletion).
        """
        state = self._state(key)
        start, stop = sorted((self._clamp(state, start), self._clamp(state, stop)))
        if corrects is None:
            self._require_label("annotating")
        if self.label:  # it is saved in a CSV and may become a file name: a name, never a path
            try:
                check_label(self.label, where="the current label")
            except LabelError as error:
                raise SessionError(str(error)) from None
        sound = Sound(key, start, stop, ANNOTATED, self.label)
        replaced = tuple(s for s in state.annotations if s.ticks == sound.ticks)
        # Corrections of the replaced annotations come back if this is undone; a replacement
        # that corrects nothing itself carries on the correction of the annotation it replaces.
        corrections = tuple((s, state.corrections[s]) for s in replaced if s in state.corrections)
        if corrects is not None:
            corrections += ((sound, corrects),)
        else:
            corrections += tuple((sound, row) for _, row in corrections)
        action = Action(removed=replaced, added=(sound,), corrections=corrections)
        return self._do(action)

    def remove(self, key: str, sound: Sound) -> Action:
        """Remove a session annotation (a deletion marker's removal restores the corrected row)."""
        state = self._state(key)
        if sound not in state.annotations:
            raise SessionError(f"{sound} is not a session annotation of {key}")
        correction = ((sound, state.corrections[sound]),) if sound in state.corrections else ()
        return self._do(Action(removed=(sound,), corrections=correction))

    def drag(self, key: str, tic0: float, tic1: float) -> Action:
        """Click-and-drag from ``tic0`` to ``tic1``: annotate ``[min, max]`` with the current label."""
        return self.add(key, int(round(min(tic0, tic1))), int(round(max(tic0, tic1))))

    def double_click_lower(self, key: str, tic: float, *, proximity: int = 0,
                           place: Callable[[int], tuple[int, int]] | None = None) -> Action | None:
        """Double-click at ``tic`` in the lower half (session annotations).

        If the last session annotation starting at or before ``tic + proximity`` ends at or after
        ``tic - proximity`` it is removed; otherwise, with a label chosen, ``place(tic) -> (start,
        stop)`` (``annotation_actions``; default the point ``[tic, tic]``) is added. Returns the
        action, or ``None`` if nothing happened."""
        state = self._state(key)
        tic = int(round(tic))
        candidates = [s for s in sorted(state.annotations) if s.start <= tic + proximity]
        if candidates and candidates[-1].stop >= tic - proximity:
            return self.remove(key, candidates[-1])
        if not self.label:
            return None
        return self.add(key, *((tic, tic) if place is None else place(tic)))

    def sound_under(self, key: str, tic: float, *, proximity: int = 0) -> Sound | None:
        """The shortest used sound within ``proximity`` tics of ``tic`` (``annotated`` preferred
        on ties, then the nearest centre), or ``None``."""
        tic = float(tic)
        hits = [s for s in self.used_sounds(key) if s.start - proximity <= tic <= s.stop + proximity]
        if not hits:
            return None
        return min(hits, key=lambda s: (s.duration_tics, s.kind != ANNOTATED, abs((s.start + s.stop) / 2 - tic)))

    def toggle(self, key: str, sound: Sound) -> Action | None:
        """Double-click on a used sound (a box in the upper half, or a snippet of the cluster view).

        If a session annotation has the same ticks it is removed; otherwise one is added with the
        sound's ticks and the current label. When ``sound`` is a row of another annotation file
        the new annotation corrects it: with a label that row is relabelled, with the label box
        empty it is deleted. Returns ``None`` for a non-annotated sound with no label chosen.
        """
        state = self._state(key)
        existing = [s for s in state.annotations if s.ticks == sound.ticks]
        if existing:
            return self.remove(key, existing[0])
        corrects = None
        if sound.kind == ANNOTATED:
            corrected = set(state.corrections.values())
            matches = [r for r in state.others if r.sound == sound and r not in corrected]
            corrects = matches[0] if matches else None
        if corrects is None and not self.label:
            return None
        return self.add(key, sound.start, sound.stop, corrects=corrects)

    def double_click_upper(self, key: str, tic: float, *, proximity: int = 0) -> Action | None:
        """Double-click at ``tic`` in the upper half: :meth:`toggle` the shortest used sound there."""
        sound = self.sound_under(key, tic, proximity=proximity)
        return None if sound is None else self.toggle(key, sound)

    def neighbour(self, key: str, tic: float, direction: int, *, kinds: Iterable[str] | None = None) -> Sound | None:
        """The next (``direction`` > 0) or previous used or annotated sound whose start is after
        (before) ``tic``, for SongExplorer's ``L →`` / ``← L`` buttons."""
        wanted = None if kinds is None else set(kinds)
        sounds = [s for s in self.used_sounds(key) + self.annotations(key) if wanted is None or s.kind in wanted]
        if direction > 0:
            after = [s for s in sounds if s.start > tic]
            return min(after, key=lambda s: s.start) if after else None
        before = [s for s in sounds if s.start < tic]
        return max(before, key=lambda s: s.start) if before else None

    # ------------------------------------------------------------------------------------------
    # history

    def _apply(self, removed: Iterable[Sound], added: Iterable[Sound], corrections) -> None:
        """Remove then add sounds; then (re)attach each correction whose annotation is present."""
        for sound in removed:
            state = self._state(sound.recording)
            state.annotations.discard(sound)
            state.corrections.pop(sound, None)
        for sound in added:
            self._state(sound.recording).annotations.add(sound)
        for sound, row in corrections:
            state = self._state(sound.recording)
            if sound in state.annotations:
                state.corrections[sound] = row

    def _do(self, action: Action) -> Action:
        self._apply(action.removed, action.added, action.corrections)
        return self._history.push(action)

    @property
    def can_undo(self) -> bool:
        return self._history.index > 0

    @property
    def can_redo(self) -> bool:
        return self._history.index < len(self._history.actions)

    def undo(self) -> Action | None:
        """Revert the latest action (the view pans to ``action.sound``); ``None`` if none."""
        action = self._history.back()
        if action is not None:
            self._apply(action.added, action.removed, action.corrections)
        return action

    def redo(self) -> Action | None:
        """Re-apply the latest undone action; ``None`` if none."""
        action = self._history.forward()
        if action is not None:
            self._apply(action.removed, action.added, action.corrections)
        return action

    # ------------------------------------------------------------------------------------------
    # saving

    def unsaved_changes(self, key: str | None = None) -> int:
        """How many rows differ from the last save (own rows added or removed, other files' rows
        corrected or restored), for one recording or all."""
        keys = [key] if key is not None else list(self._recordings)
        total = 0
        for k in keys:
            state = self._state(k)
            own = frozenset(s for s in state.annotations if s.label)
            total += len(own ^ state.saved_own) + len(_retracted(state) ^ state.saved_retracted)
        return total

    def save(self) -> SaveReport:
        """Merge this session's changes into the files on disk, atomically; see the module docstring.

        For each recording with unsaved changes, under an exclusive lock on its folder: re-read
        the annotation files; in the own file drop the rows this session removed, add the rows it
        added (replacing rows with the same ticks); in other files drop the rows this session
        corrected since the last save and put back rows whose correction was undone; write each
        changed file atomically (delete it when it becomes empty); adopt the merged files.
        """
        written: list[Path] = []
        deleted: list[Path] = []
        for key, state in sorted(self._recordings.items()):
            if not self.unsaved_changes(key):
                continue
            own_now = frozenset(s for s in state.annotations if s.label)
            added = own_now - state.saved_own
            removed = state.saved_own - own_now
            retracted_now = _retracted(state)
            newly_retracted = retracted_now - state.saved_retracted
            restored = state.saved_retracted - retracted_now
            with folder_lock(state.folder):
                _merge_into_files(state, self.own_csv_path(key), added=added, removed=removed,
                                  retracted=newly_retracted, restored=restored, written=written, deleted=deleted)
                own, others = _read_files(state, self.annotator)
            state.annotations = set(own) | {s for s in state.annotations if not s.label}
            state.saved_own = frozenset(own)
            state.others = others
            state.saved_retracted = retracted_now
        return SaveReport(tuple(written), tuple(deleted))


# ----------------------------------------------------------------------------------------------
# files


def _annotation_files(state: _Recording) -> list[Path]:
    files = []
    for path in sorted(state.folder.glob("*.csv")):
        if is_temporary(path) or not path.is_file():
            continue
        parsed = parse_csv_name(path.name)
        if parsed and parsed.kind == ANNOTATED and parsed.recording == state.wav:
            files.append(path)
    return files


def _read_files(state: _Recording, annotator: str) -> tuple[list[Sound], list[Row]]:
    """The rows of ``annotator``'s own file of the recording, and those of its other annotation files."""
    own_name = annotated_csv_name(state.wav, annotator)
    own: list[Sound] = []
    others: list[Row] = []
    for path in _annotation_files(state):
        rows = _sounds_of(read_intervals_csv(path), state)
        if path.name == own_name:
            own = rows
        else:
            others.extend(Row(path.name, sound) for sound in rows)
    return own, others


def _merge_into_files(state: _Recording, own_path: Path, *, added: set[Sound], removed: set[Sound],
                      retracted: set[Row], restored: set[Row], written: list[Path], deleted: list[Path]) -> None:
    """Apply one recording's changes since the last save to the files as they are on disk now
    (the caller holds the folder's lock): in the own file drop ``removed`` and add ``added``
    (replacing rows with the same ticks); in other files drop the ``retracted`` rows and put the
    ``restored`` ones back. Changed files are appended to ``written``/``deleted``."""
    frame = read_intervals_csv(own_path) if own_path.exists() else empty_intervals()
    disk = {s for s in _sounds_of(frame, state) if s.label}
    added_ticks = {s.ticks for s in added}
    drop = (disk & removed) | {s for s in disk if s.ticks in added_ticks}
    _rewrite(own_path, frame, state, drop, added, written, deleted, sort=True)
    by_file: dict[str, tuple[set[Sound], set[Sound]]] = {}
    for row in retracted:
        by_file.setdefault(row.file, (set(), set()))[0].add(row.sound)
    for row in restored:
        by_file.setdefault(row.file, (set(), set()))[1].add(row.sound)
    for name, (drop, put_back) in sorted(by_file.items()):
        path = state.folder / name
        _check_other_file(path, state)
        frame = read_intervals_csv(path) if path.exists() else empty_intervals()
        _rewrite(path, frame, state, drop, put_back, written, deleted)



def _frame(wav: str, sounds: Iterable[Sound]) -> pd.DataFrame:
    sounds = sorted(sounds, key=lambda s: (s.start, s.stop, s.label))
    if not sounds:
        return empty_intervals()
    return intervals_frame(
        wav, [s.start for s in sounds], [s.stop for s in sounds], [s.kind for s in sounds], [s.label for s in sounds]
    )


def _sounds_of(frame: pd.DataFrame, state: _Recording) -> list[Sound]:
    frame = frame[frame["wav"] == state.wav]
    return [Sound(state.key, int(r.start), int(r.stop), str(r.kind), str(r.label)) for r in frame.itertuples()]


def _check_other_file(path: Path, state: _Recording) -> None:
    parsed = parse_csv_name(path.name)
    if path.parent != state.folder or parsed is None or parsed.kind != ANNOTATED:
        raise SessionError(f"{path}: refusing to modify a file that is not an annotation CSV of {state.wav}")


def _rewrite(path: Path, frame: pd.DataFrame, state: _Recording, drop: set[Sound], put: set[Sound],
             written: list[Path], deleted: list[Path], *, sort: bool = False) -> None:
    """Rewrite an annotation file of ``state``'s folder: drop the ``drop`` rows of this recording,
    add the ``put`` rows not already there, keep every other row (other recordings' included) as
    it was (in its order, new rows at the end, unless ``sort``). Written atomically; deleted when
    no row is left; untouched when nothing changes."""
    keep, present = [], set()
    for row in frame.itertuples(index=False):
        values = (str(row.wav), int(row.start), int(row.stop), str(row.kind), str(row.label))
        if values[0] == state.wav:
            sound = Sound(state.key, *values[1:])
            if sound in drop:
                continue
            present.add(sound)
        keep.append(values)
    new = sorted(put - present, key=lambda s: (s.start, s.stop, s.label))
    if len(keep) == len(frame) and not new:
        return
    keep += [(state.wav, s.start, s.stop, s.kind, s.label) for s in new]
    if keep:
        if sort:
            keep.sort(key=lambda v: (v[0], v[1], v[2], v[4]))
        wav, start, stop, kind, label = zip(*keep)
        written.append(write_intervals_csv(intervals_frame(wav, start, stop, kind, label), path))
    elif path.exists():
        path.unlink()
        deleted.append(path)


__all__ = [
    "ANNOTATED",
    "Action",
    "AnnotationError",
    "AnnotationSession",
    "Row",
    "SaveReport",
    "SessionError",
    "Sound",
    "folder_lock",
    "proximity_tics",
]
