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
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from songexplorer_core.annotations import COLUMNS, concat_intervals, parse_csv_name, validate_intervals
from songexplorer_core.audio import RecordingInfo, recording_info
from songexplorer_core.classify import Probabilities, read_probabilities, probabilities_npz_name
from songexplorer_core.project import Project, find_recordings, recording_relpath

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
