"""What the annotator may open: the project's recordings (a whitelist) and their derived outputs.

Every recording the app shows is looked up by its key in the list of recordings found under the
project's ``groundtruth/`` (:func:`songexplorer_core.project.find_recordings`); anything else --
``..``, absolute paths, keys naming files that are not recordings, symbolic links leading out of
``groundtruth/`` -- is refused with :class:`AccessError` before any file is opened. Outputs are
only ever read, from paths the app builds itself from a whitelisted key:

* intervals: ``outputs/<folder>/<key>.parquet`` (the project's interval table, e.g.
  ``outputs/detections/<key>.parquet``) and SongExplorer CSVs
  ``outputs/<folder>/<dir>/<wav>-{detected,predicted[-<ratio>pr],missed}.csv``
  (e.g. ``outputs/detected/round1/PS.wav-detected.csv``); CSVs of a kind already read from Parquet
  are skipped, as they hold the same rows.
* probabilities: ``outputs/<folder>/<key>.npz`` or ``outputs/<folder>/<dir>/<wav>-probabilities.npz``
  written by :func:`songexplorer_core.classify.write_probabilities`.

``<folder>`` is any folder directly under ``outputs/``; ``<dir>`` is the recording's folder under
``groundtruth/`` and ``<wav>`` its basename.

What each recording has to review (:meth:`Catalog.review`) is read from the project's own paths
(:class:`~songexplorer_core.project.Project`): ``detections_path``, ``probabilities_npz`` /
``ethogram_path``, ``misses_path`` and ``mistakes_path``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from songexplorer_core.annotations import COLUMNS, concat_intervals, parse_csv_name, validate_intervals
from songexplorer_core.audio import RecordingInfo, recording_info
from songexplorer_core.classify import Probabilities, read_probabilities, probabilities_npz_name
from songexplorer_core.project import Project, ProjectError, find_recordings, recording_key, recording_relpath

#: Kinds read from outputs (annotations come from ``groundtruth/`` through the session).
OUTPUT_KINDS = ("detected", "predicted", "missed")


class AccessError(PermissionError):
    """A request names something the annotator must not open; the message says what is allowed."""


@dataclass(frozen=True)
class Recording:
    """A recording the annotator may open."""

    key: str  #: path under groundtruth/, "/" written "%2F"
    path: Path  #: absolute path, inside groundtruth/
    info: RecordingInfo

    @property
    def wav(self) -> str:
        return self.path.name

    @property
    def rate(self) -> int:
        return self.info.rate

    @property
    def ntics(self) -> int:
        return self.info.frames


@dataclass(frozen=True)
class Review:
    """What one recording has to review, from the project's outputs."""

    detections: int = 0  #: detected sounds (``outputs/detections/K.parquet``)
    predictions: bool = False  #: a model classified it (its probabilities or ethogram exist)
    misses: int = 0  #: detected stretches no prediction covers (``outputs/misses/K.parquet``)
    mistakes: int = 0  #: annotated sounds the model gets wrong (``outputs/mistakes/mistakes.parquet``)

    @property
    def rank(self) -> int:
        """How much there is to review: 4 mistakes, 3 misses, 2 predictions, 1 detections, 0 nothing."""
        return 4 if self.mistakes else 3 if self.misses else 2 if self.predictions else 1 if self.detections else 0

    def describe(self) -> str:
        """``"3 mistakes, 12 misses, predictions, 240 detections"`` (what there is), or ``""``."""
        parts = [f"{self.mistakes} mistake{'s' * (self.mistakes != 1)}" if self.mistakes else "",
                 f"{self.misses} miss{'es' * (self.misses != 1)}" if self.misses else "",
                 "predictions" if self.predictions else "",
                 f"{self.detections} detection{'s' * (self.detections != 1)}" if self.detections else ""]
        return ", ".join(p for p in parts if p)


#: What :meth:`Review.rank` means, for messages.
REVIEW_WHAT = {4: "mistaken sound", 3: "miss", 2: "predicted sound", 1: "detected sound"}


class Catalog:
    """The recordings of one project, and the outputs derived from them (read only).

    Args:
        project: the project whose ``groundtruth/`` and ``outputs/`` are used.
    """

    def __init__(self, project: Project):
        self.project = project
        self.groundtruth = project.groundtruth.resolve()
        self.outputs = project.outputs.resolve()
        self._paths: dict[str, Path] = {}
        self.refresh()

    def refresh(self) -> list[str]:
        """Re-list the recordings under ``groundtruth/`` (new WAVs appear); returns the keys."""
        paths = {}
        for key, path in find_recordings(self.groundtruth).items():
            resolved = path.resolve()
            if self.groundtruth in resolved.parents:  # a symlink leading out is not listed
                paths[key] = resolved
        self._paths = paths
        return self.keys()

    def keys(self) -> list[str]:
        """Keys of the recordings, sorted."""
        return sorted(self._paths)

    def key_for(self, name: str) -> str | None:
        """A recording key from a key or a basename that is unique in the project (as the ``wav``
        column of CSVs and cluster tables has it); ``None`` if there is no such recording."""
        if name in self._paths:
            return name
        if "/" in name:  # a path relative to groundtruth/ (as a link may carry it)
            try:
                key = recording_key(name)
            except ProjectError:
                return None
            return key if key in self._paths else None
        matches = [key for key, path in self._paths.items() if path.name == name]
        return matches[0] if len(matches) == 1 else None

    def recording(self, key: str) -> Recording:
        """The recording with this key.

        Raises:
            AccessError: the key is not one of the project's recordings (path traversal, absolute
                paths, files that are not recordings, links out of ``groundtruth/``).
            songexplorer_core.audio.RecordingError: the file is not a readable recording.
        """
        if not isinstance(key, str) or key not in self._paths:
            self.refresh()
        path = self._paths.get(key) if isinstance(key, str) else None
        if path is None:
            raise AccessError(
                f"{key!r} is not a recording of this project: the annotator opens only the WAV files "
                f"under {self.groundtruth} (choose one from the list)."
            )
        return Recording(key=key, path=path, info=recording_info(path))

    # ------------------------------------------------------------------------------------------
    # outputs

    def _output_folders(self) -> list[Path]:
        if not self.outputs.is_dir():
            return []
        return sorted(p for p in self.outputs.iterdir() if p.is_dir() and not p.name.startswith("."))

    def intervals(self, key: str) -> pd.DataFrame:
        """Detected, predicted and missed intervals of a recording from ``outputs/`` (see the
        module docstring), as one interval table; empty when there are none yet.

        Raises:
            AccessError: for a key that is not a recording of the project.
            ValueError: naming the file, for an output that is not an interval table.
        """
        recording = self.recording(key)
        relative = recording_relpath(key)
        frames, kinds_from_parquet = [], set()
        for folder in self._output_folders():
            path = folder / f"{key}.parquet"
            if path.is_file():
                frame = _read_interval_parquet(path)
                frame = frame[(frame["wav"] == recording.wav) & frame["kind"].isin(OUTPUT_KINDS)]
                kinds_from_parquet |= set(frame["kind"])
                frames.append(frame)
        for folder in self._output_folders():
            subfolder = folder / relative.parent
            if not subfolder.is_dir():
                continue
            for path in sorted(subfolder.glob(f"{_glob_escape(recording.wav)}-*.csv")):
                parsed = parse_csv_name(path.name)
                if parsed is None or parsed.recording != recording.wav or parsed.kind not in OUTPUT_KINDS:
                    continue
                if parsed.kind in kinds_from_parquet:
                    continue
                frame = _read_output_csv(path)
                frames.append(frame[frame["wav"] == recording.wav])
        table = concat_intervals(frames)
        if len(table):
            table = table.drop_duplicates(ignore_index=True)
        return _clip(table, recording.ntics)

    def probabilities(self, key: str) -> Probabilities | None:
        """The recording's per-label probabilities, if a model has classified it (else ``None``)."""
        recording = self.recording(key)
        relative = recording_relpath(key)
        for folder in self._output_folders():
            for path in (folder / f"{key}.npz", folder / relative.parent / probabilities_npz_name(recording.wav)):
                if path.is_file():
                    return read_probabilities(path)
        return None


    # ------------------------------------------------------------------------------------------
    # what there is to review

    def review(self) -> dict[str, Review]:
        """What each recording has to review (see :class:`Review`), by key. Unreadable outputs
        count as absent (the Recording tab names them when the recording is opened)."""
        project = self.project
        mistakes = _mistaken_per_recording(project.mistakes_path)
        found = {}
        for key in self.keys():
            found[key] = Review(
                detections=_parquet_rows(project.detections_path(key)),
                predictions=project.probabilities_npz(key).is_file() or project.ethogram_path(key).is_file(),
                misses=_parquet_rows(project.misses_path(key)),
                mistakes=mistakes.get(key, 0),
            )
        return found

    def first_to_review(self, reviews: dict[str, Review] | None = None) -> tuple[str, int | None, int] | None:
        """The recording with the most to review (mistakes, then misses, then predictions, then
        detections; the first by key among equals), the tic of its first such sound (``None`` if
        unknown) and its :attr:`Review.rank`; ``None`` when no recording has anything."""
        reviews = self.review() if reviews is None else reviews
        ranked = [(-review.rank, key) for key, review in reviews.items() if review.rank]
        if not ranked:
            return None
        best = min(ranked)
        rank, key = -best[0], best[1]
        project = self.project
        try:
            if rank == 4:
                table = pd.read_parquet(project.mistakes_path, columns=["recording", "start", "kind"])
                starts = table.loc[(table["recording"] == key) & (table["kind"] == "mistaken"), "start"]
            else:
                path = {3: project.misses_path(key), 1: project.detections_path(key)}.get(rank)
                if path is None:
                    path = project.ethogram_path(key)
                starts = pd.read_parquet(path, columns=["start"])["start"] if path.is_file() else pd.Series([], dtype=int)
        except (OSError, ValueError, KeyError):
            starts = pd.Series([], dtype=int)
        return key, (int(starts.min()) if len(starts) else None), rank


def review_summary(reviews: Mapping[str, Review]) -> str:
    """One line: how many recordings, and how many of them have mistakes, misses, predictions
    and detections to review."""
    counts = [(sum(1 for r in reviews.values() if getattr(r, name)), name) for name in
              ("mistakes", "misses", "predictions", "detections")]
    said = ", ".join(f"{n} with {name}" for n, name in counts if n)
    return (f"{len(reviews)} recordings" + (f": {said}" if said else "")) if reviews \
        else "no recordings in groundtruth/ yet"


def _parquet_rows(path: Path) -> int:
    """Rows of a Parquet file from its footer (0 when absent or unreadable)."""
    try:
        return int(pq.read_metadata(path).num_rows) if path.is_file() else 0
    except (OSError, ValueError):
        return 0


def _mistaken_per_recording(path: Path) -> dict[str, int]:
    """``{recording key: mistaken sounds}`` of ``mistakes.parquet`` (empty when absent or unreadable)."""
    if not path.is_file():
        return {}
    try:
        table = pd.read_parquet(path, columns=["recording", "kind"])
    except (OSError, ValueError, KeyError):
        return {}
    mistaken = table[table["kind"] == "mistaken"]
    return {str(k): int(n) for k, n in mistaken.groupby("recording").size().items()}


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _read_interval_parquet(path: Path) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: not an interval table, it lacks column(s) {missing} (expected {list(COLUMNS)})")
    frame = frame[list(COLUMNS)].copy()
    frame["start"] = frame["start"].clip(lower=0)  # SongExplorer's negative frequency starts (QUIRK 2)
    return validate_intervals(frame, source=str(path))


def _read_output_csv(path: Path) -> pd.DataFrame:
    """A detected/predicted/missed CSV. Unlike annotations these may carry SongExplorer's negative
    ``frequency`` starts (QUIRK 2), which are drawn from tic 0."""
    rows = []
    for lineno, row in enumerate(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) < 5:
            raise ValueError(f"{path}: line {lineno} has {len(row)} columns, expected wav,start,stop,kind,label")
        try:
            rows.append((row[0].strip(), max(0, int(row[1])), int(row[2]), row[3].strip(), row[4].strip()))
        except ValueError:
            raise ValueError(f"{path}: line {lineno}: start/stop tics must be whole numbers") from None
    frame = pd.DataFrame(rows, columns=list(COLUMNS)) if rows else pd.DataFrame(columns=list(COLUMNS))
    return validate_intervals(frame, source=str(path))


def _clip(table: pd.DataFrame, ntics: int) -> pd.DataFrame:
    if not len(table):
        return table
    table = table.copy()
    table["stop"] = table["stop"].clip(upper=max(ntics - 1, 0))
    table["start"] = table["start"].clip(lower=0, upper=max(ntics - 1, 0))
    return table[table["stop"] >= table["start"]].reset_index(drop=True)
