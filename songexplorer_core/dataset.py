"""Ground truth for training: which annotations are used, how they are split, and how batches
of examples are drawn (SongExplorer's ``src/data.py``).

An *example* is a window of audio around one point of an annotation, long enough for
``parallelize`` (P) output taps of the network: ``input_tics = context_tics + (P - 1) *
stride_tics``. For an example at tic ``offset`` the window is
``[offset - ceil(input_tics/2) - shiftby_tics, offset + floor(input_tics/2) - shiftby_tics)``,
so tap ``j``'s labelled point lies at ``offset + tap_offsets[j]`` (for P = 2 and a 4-tic stride:
``offset - 2`` and ``offset + 2``). A point annotation is always used at its tic; a range
annotation at a fresh uniformly random tic inside it each time it is drawn.

Targets: tap ``j`` stands for the tics within half a stride of its labelled point; it gets the
annotation's label when that span touches the annotation (SongExplorer's rule: a point
annotation marks the two central taps). Other taps are masked (``-1`` for the exclusive loss,
``2`` for the overlapped loss).

The split into training / validation (/ testing) sets is SongExplorer's: a SHA-1 hash of the
annotation's ``wav + start + stop`` text decides, so an annotation keeps its set when others are
added, and splits agree with SongExplorer's on the same annotations.

Recordings are read once into memory (float32, divided by 32768) and every batch is cut from
them with one fancy-indexing operation.

Randomness comes from explicit ``numpy.random.Generator`` objects: the batch seed drives which
annotations are drawn and where inside ranges; augmentation has its own stream spawned from the
same seed; the network's weights have a separate seed (see :mod:`songexplorer_core.train`).

Why one module: choosing the annotations, SongExplorer's split, the example geometry and cutting
batches are one pipeline over one table of sounds; the batch functions use the private arrays
that :func:`make_dataset` builds.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from songexplorer_core.annotations import (
    COLUMNS,
    concat_intervals,
    drop_duplicate_intervals,
    find_interval_csvs,
    read_intervals_csv,
    validate_intervals,
)
from songexplorer_core.audio import RecordingError, check_recording, read_recording, recording_exists, recording_info

logger = logging.getLogger(__name__)

TRAINING, VALIDATION, TESTING = "training", "validation", "testing"
SETS = (TRAINING, VALIDATION, TESTING)
EXCLUSIVE, OVERLAPPED = "exclusive", "overlapped"
#: SongExplorer's ``MAX_NUM_WAVS_PER_CLASS``: the hash is taken modulo this plus one.
_HASH_MODULUS = 2**27
#: Which CSV file names can hold rows of each kind (see ``annotations.parse_csv_name``).
_FILE_KIND = {"annotated": "annotated", "detected": "detected", "predicted": "predicted",
              "missed": "missed", "correct": "mistakes", "mistaken": "mistakes"}


class DatasetError(ValueError):
    """The ground truth cannot be used as asked; the message names what and the fix."""


# ---------------------------------------------------------------------------------------------
# ground truth


class _RecordingLengths(Mapping):
    """Tics of the recordings beside one CSV, read from their headers when a row names them, so
    the CSV reader's own check refuses a row past the end of its recording (with its line)."""

    def __init__(self, csv_path: Path):
        self.csv_path = csv_path
        self._tics: dict[str, int] = {}

    def __contains__(self, wav) -> bool:
        return isinstance(wav, str) and bool(wav)  # an absent WAV is refused by __getitem__

    def __getitem__(self, wav: str) -> int:
        if wav not in self._tics:
            path = self.csv_path.parent / wav
            if not recording_exists(path):  # a file, or a channel recording of one
                raise DatasetError(
                    f"{self.csv_path}: names recording {wav!r}, which is not in {self.csv_path.parent}; put the "
                    f"WAV beside its annotations or fix the name in the CSV")
            self._tics[wav] = recording_info(path).frames
        return self._tics[wav]

    def __iter__(self):
        return iter(self._tics)

    def __len__(self) -> int:
        return len(self._tics)


@dataclass
class GroundTruth:
    """Annotations and the recordings they refer to.

    Attributes:
        intervals: interval table (``wav, start, stop, kind, label``) plus a ``recording``
            column: the key of the recording in ``recordings`` (its path relative to the
            ground-truth folder, so equal basenames in different folders stay apart).
        recordings: recording key -> WAV path.
        root: the ground-truth folder, if read from one.
        notes: what was read in a way worth knowing (exact duplicate rows counted once),
            naming files and lines; :func:`make_dataset` passes them on in ``Dataset.notes``.
    """

    intervals: pd.DataFrame
    recordings: dict[str, Path]
    root: Path | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, *, kinds: Iterable[str] | None = None) -> GroundTruth:
        """Read every interval CSV below ``folder`` (any depth; ``oldfiles-*``/``congruence-*``
        folders skipped) whose file name can hold rows of ``kinds`` (all when ``None``).

        The recording a row names is looked up beside its CSV, as SongExplorer does. Every row
        passes the CSV reader's checks (``annotations.read_intervals_csv``), here against the
        recordings' lengths too; an exact duplicate row (in one file, or in two files of the same
        recording, e.g. both naming styles of one annotator's file) is counted once and said so
        in :attr:`notes` (and logged).

        Raises:
            DatasetError: for a missing folder, or a row naming a recording that is not there.
            AnnotationError: for a malformed CSV, naming file and line: a bad tic, an unknown
                kind, an empty or invalid label, a wav column that is a path (outside the folder),
                a row past the end of its recording.
        """
        root = Path(folder)
        if not root.is_dir():
            raise DatasetError(f"{root}: no such ground-truth folder")
        file_kinds = None
        if kinds is not None:
            file_kinds = {_FILE_KIND.get(k, "disjoint") for k in kinds}
        tables, recordings, notes = [], {}, []
        for csv_path in find_interval_csvs(root, kinds=file_kinds):
            table = read_intervals_csv(csv_path, recording_tics=_RecordingLengths(csv_path), with_lines=True,
                                       notes=notes)
            if not len(table):
                continue
            if kinds is not None:
                table = table[table["kind"].isin(list(kinds))]
                if not len(table):
                    continue
            keys = []
            for wav in table["wav"].unique():
                wav_path = csv_path.parent / str(wav)
                key = wav_path.relative_to(root).as_posix()
                recordings[key] = wav_path
                keys.append((wav, key))
            mapping = dict(keys)
            table = table[[*COLUMNS, "line"]].assign(recording=table["wav"].map(mapping).astype(str).to_numpy(),
                                                     file=csv_path.relative_to(root).as_posix())
            tables.append(table)
        if tables:
            intervals = concat_intervals(tables)
            intervals = drop_duplicate_intervals(intervals, by=[*COLUMNS, "recording"], where=str(root), notes=notes)
            intervals = intervals.drop(columns=["line", "file"])
        else:
            intervals = validate_intervals(pd.DataFrame({c: [] for c in COLUMNS}))
        if "recording" not in intervals:
            intervals["recording"] = pd.Series([], dtype=str)
        for note in notes:
            logger.warning(note)
        return cls(intervals=intervals, recordings=recordings, root=root, notes=notes)

    @classmethod
    def from_tables(cls, intervals: pd.DataFrame, recordings: Mapping[str, str | os.PathLike]) -> GroundTruth:
        """Ground truth from an interval table and a ``{wav basename: path}`` mapping."""
        intervals = validate_intervals(intervals, source="ground-truth table")
        missing = sorted(set(intervals["wav"]) - set(recordings))
        if missing:
            raise DatasetError(f"the annotations name recordings {missing[:5]} that are not in the recordings "
                               f"given ({sorted(recordings)[:5]} ...)")
        intervals = intervals[list(COLUMNS)].assign(recording=intervals["wav"].astype(str).to_numpy())
        notes: list[str] = []
        intervals = drop_duplicate_intervals(intervals, where="ground-truth table", notes=notes)
        for note in notes:
            logger.warning(note)
        return cls(intervals=intervals, recordings={k: Path(v) for k, v in recordings.items()}, notes=notes)


def as_ground_truth(ground_truth, *, kinds: Iterable[str] | None = None) -> GroundTruth:
    """A :class:`GroundTruth` from one, or from a ground-truth folder."""
    if isinstance(ground_truth, GroundTruth):
        return ground_truth
    return GroundTruth.from_folder(ground_truth, kinds=kinds)


# ---------------------------------------------------------------------------------------------
# split


def hash_percentage(key: str) -> float:
    """SongExplorer's stable percentage in [0, 100] for a key (anything after ``_nohash_`` is
    ignored): ``(int(sha1(key)) % 2**27) * 100 / (2**27 - 1)``."""
    key = re.sub(r"_nohash_.*$", "", key)
    digest = int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16)
    return (digest % _HASH_MODULUS) * (100.0 / (_HASH_MODULUS - 1))


def which_set(key: str, *, validation_percentage: float, validation_offset_percentage: float = 0.0,
              testing_percentage: float = 0.0) -> str:
    """SongExplorer's ``which_set``: ``testing`` below ``testing_percentage``; ``validation`` in
    the open slice ``(T + |O|, T + |O| + |V|)``; else ``training``. A negative V swaps the roles
    of the slice and the rest (k-fold cross-validation that trains on 1/k)."""
    pct = hash_percentage(key)
    lo = testing_percentage + abs(validation_offset_percentage)
    if pct < testing_percentage:
        return TESTING
    if lo < pct < lo + abs(validation_percentage):
        return VALIDATION if validation_percentage >= 0 else TRAINING
    return TRAINING if validation_percentage >= 0 else VALIDATION


def assign_sets(intervals: pd.DataFrame, *, validation_percentage: float = 0.0,
                validation_offset_percentage: float = 0.0, testing_percentage: float = 0.0,
                validation_files: Iterable[str] = (), testing_files: Iterable[str] = ()) -> np.ndarray:
    """The set of every row: recordings in ``validation_files`` / ``testing_files`` (basenames)
    go there whole; other rows by :func:`which_set` of ``wav + str(start) + str(stop)``.

    The assignment of a row depends only on that row, so adding annotations never moves others.
    """
    validation_files, testing_files = set(validation_files), set(testing_files)
    out = []
    for wav, start, stop in zip(intervals["wav"], intervals["start"], intervals["stop"]):
        if wav in validation_files:
            out.append(VALIDATION)
        elif wav in testing_files:
            out.append(TESTING)
        else:
            out.append(which_set(f"{wav}{int(start)}{int(stop)}", validation_percentage=validation_percentage,
                                 validation_offset_percentage=validation_offset_percentage,
                                 testing_percentage=testing_percentage))
    return np.asarray(out, dtype=object)


# ---------------------------------------------------------------------------------------------
# geometry, augmentation


@dataclass(frozen=True)
class Geometry:
    """Where the network's taps lie in an example (all in tics).

    Attributes:
        context_tics: audio seen by one tap.
        shiftby_tics: the labelled point lies this far after a context window's centre.
        stride_tics: tics between taps.
        parallelize: taps per example (P).
    """

    context_tics: int
    shiftby_tics: int
    stride_tics: int
    parallelize: int

    def __post_init__(self):
        if self.parallelize < 1 or self.stride_tics < 1 or self.context_tics < 1:
            raise DatasetError(f"parallelize ({self.parallelize}), stride ({self.stride_tics} tics) and context "
                               f"({self.context_tics} tics) must be positive")

    @property
    def input_tics(self) -> int:
        """Length of one example: ``context + (P - 1) * stride``."""
        return self.context_tics + (self.parallelize - 1) * self.stride_tics

    @property
    def before_tics(self) -> int:
        """Tics of the window before the example's point: ``ceil(input/2) + shiftby``."""
        return -(-self.input_tics // 2) + self.shiftby_tics

    @property
    def tap_offsets(self) -> np.ndarray:
        """Labelled point of each tap relative to the example's point, tics (P=2: ``[-2, 2]``)."""
        return (np.arange(self.parallelize) * self.stride_tics + self.context_tics // 2
                - (-(-self.input_tics // 2))).astype(np.int64)

    def usable_range(self, ntics: int) -> tuple[int, int]:
        """First and last tic an example's point may have in a recording of ``ntics`` tics so
        that its whole window is inside the recording."""
        return self.before_tics, ntics - (self.input_tics - self.before_tics)

    def tap_mask(self, start_rel: np.ndarray, stop_rel: np.ndarray) -> np.ndarray:
        """``(n, P)`` bool: taps whose half-stride span ``[d - stride/2, d + stride/2]`` touches
        the interval ``[start_rel, stop_rel]`` (relative to each example's point, inclusive)."""
        d2 = 2 * self.tap_offsets[None, :]
        s = self.stride_tics
        return (d2 - s <= 2 * np.asarray(stop_rel)[:, None]) & (d2 + s >= 2 * np.asarray(start_rel)[:, None])


@dataclass(frozen=True)
class Augmentation:
    """SongExplorer's ``volume-noise-dc-reverse-invert`` augmentation (training batches only).

    Attributes:
        volume: gain drawn uniformly from ``(low, high)`` per example and channel.
        noise: s.d. drawn uniformly from ``(low, high)`` per example and channel (audio units,
            full scale = 1); Gaussian noise of that s.d. is added to every tic.
        dc: offset drawn uniformly from ``(low, high)`` per example and channel, added.
        reverse: time-reverse each example with probability 1/2 (its targets are reversed too).
        invert: multiply each example by -1 with probability 1/2.
        background_label: the label of background sound (``ambient``) for ``mix``.
        mix: not in SongExplorer. Every example of another label is scaled by a gain drawn
            log-uniformly from ``(low, high)`` and a window of real background (drawn like a
            training example of ``background_label``) is added to it, so song is seen at
            lower signal-to-noise ratios over the recordings' own noise, as faint song sounds
            in a recording. Applied before the other augmentations.
        mix_labels: the labels ``mix`` applies to (empty: every label but the background).
    """

    volume: tuple[float, float] = (1.0, 1.0)
    noise: tuple[float, float] = (0.0, 0.0)
    dc: tuple[float, float] = (0.0, 0.0)
    reverse: bool = False
    invert: bool = False
    background_label: str | None = None
    mix: tuple[float, float] = (1.0, 1.0)
    mix_labels: tuple[str, ...] = ()

    def __post_init__(self):
        for name in ("volume", "noise", "dc", "mix"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = value.split(",")
            value = tuple(float(v) for v in value)
            if len(value) != 2 or value[0] > value[1]:
                raise DatasetError(f"augmentation {name} must be a (low, high) pair with low <= high, not {value}")
            object.__setattr__(self, name, value)
        if self.noise[0] < 0:
            raise DatasetError(f"augmentation noise s.d. must be >= 0, not {self.noise}")
        if self.mix[0] <= 0:
            raise DatasetError(f"augmentation mix gains must be > 0, not {self.mix}")
        if self.mix != (1.0, 1.0) and not self.background_label:
            raise DatasetError("augmentation mix needs background_label: the label of background sound to mix "
                               "song with (e.g. ambient)")
        if self.background_label is not None:
            object.__setattr__(self, "background_label", str(self.background_label) or None)
        labels = self.mix_labels.split(",") if isinstance(self.mix_labels, str) else self.mix_labels
        object.__setattr__(self, "mix_labels", tuple(str(x) for x in labels if str(x)))
        for name in ("reverse", "invert"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = {"yes": True, "no": False}.get(value.lower(), value)
            object.__setattr__(self, name, bool(value))

    @property
    def mixes(self) -> bool:
        return self.mix != (1.0, 1.0) and bool(self.background_label)

    @property
    def active(self) -> bool:
        return (self.volume != (1.0, 1.0) or self.noise != (0.0, 0.0) or self.dc != (0.0, 0.0)
                or self.reverse or self.invert or self.mixes)


def augment(audio: np.ndarray, targets: np.ndarray, params: Augmentation, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``params`` to a batch ``audio`` ``(n, tics, channels)`` (in place) in SongExplorer's
    order (volume, noise, dc, reverse, invert); ``targets`` ``(n, P[, labels])`` are reversed
    along the tap axis for reversed examples. Returns ``(audio, targets)``."""
    n, _, nchannels = audio.shape
    if params.volume != (1.0, 1.0):
        audio *= rng.uniform(*params.volume, size=(n, 1, nchannels)).astype(np.float32)
    if params.noise != (0.0, 0.0):
        sigma = rng.uniform(*params.noise, size=(n, 1, nchannels)).astype(np.float32)
        audio += rng.standard_normal(size=audio.shape, dtype=np.float32) * sigma
    if params.dc != (0.0, 0.0):
        audio += rng.uniform(*params.dc, size=(n, 1, nchannels)).astype(np.float32)
    if params.reverse:
        flip = rng.random(n) < 0.5
        if flip.any():
            audio[flip] = audio[flip, ::-1]
            targets = targets.copy()
            targets[flip] = targets[flip, ::-1]
    if params.invert:
        audio *= np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32)[:, None, None]
    return audio, targets


# ---------------------------------------------------------------------------------------------
# the dataset


@dataclass
class Batch:
    """A batch of examples.

    Attributes:
        audio: float32 ``(n, input_tics, nchannels)``.
        targets: exclusive: int32 ``(n, P)`` label index, -1 (masked) or ``-2 - index`` (not that
            label: a ``not_`` annotation with ``negatives``); overlapped: int8
            ``(n, P, nlabels)`` 1 (present), 0 (absent) or 2 (unknown, masked).
        sounds: int index into :attr:`Dataset.sounds` of each example.
        offset_tic: the example's point, tic in its recording.
    """

    audio: np.ndarray
    targets: np.ndarray
    sounds: np.ndarray
    offset_tic: np.ndarray


@dataclass
class Dataset:
    """The annotations in use, their sets, and the audio they need, ready to make batches.

    Build it with :func:`make_dataset`. ``sounds`` has one row per used annotation with columns
    ``wav, start, stop, kind, label`` (as annotated), ``recording``, ``set``, ``label_index``
    (index of the label, ``not_`` stripped, in :attr:`labels`), ``target`` (1, or 0 for a
    ``not_`` label), ``first``/``last`` (the range of tics its examples' points are drawn from:
    the annotation clamped to the usable part of its recording) and ``group`` (its (label, kind)
    group for balancing).
    """

    sounds: pd.DataFrame
    labels: list[str]
    loss: str
    geometry: Geometry
    rate: int
    nchannels: int
    audio: np.ndarray  #: every used recording, concatenated, float32 (tics, channels)
    recording_start: dict[str, int]  #: recording key -> first tic in :attr:`audio`
    skipped: pd.DataFrame  #: annotations not used because they lie too close to an edge
    notes: list[str] = field(default_factory=list)  #: what was skipped or shortened, for the log
    equalize: bool = True
    overlapped_prefix: str = "not_"
    _neighbours: tuple[np.ndarray, np.ndarray] | None = None
    _fixed_offsets: dict[str, np.ndarray] = field(default_factory=dict)

    # -- counts ---------------------------------------------------------------------------------

    def indices(self, which: str) -> np.ndarray:
        """Row numbers of :attr:`sounds` in set ``which``."""
        return np.flatnonzero(self.sounds["set"].to_numpy() == which)

    def counts(self, which: str) -> dict[str, int]:
        """Annotations per label (as written, ``not_`` kept) in a set, sorted by label."""
        labels = self.sounds["label"].to_numpy()[self.indices(which)]
        names, counts = np.unique(labels.astype(str), return_counts=True) if len(labels) else ([], [])
        return {str(n): int(c) for n, c in zip(names, counts)}

    # -- examples -------------------------------------------------------------------------------

    def _cut(self, sounds: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        first = self._base[sounds] + offsets - self.geometry.before_tics
        index = first[:, None] + np.arange(self.geometry.input_tics)[None, :]
        return self.audio[index]

    def _targets(self, sounds: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        start = self._start[sounds] - offsets
        stop = self._stop[sounds] - offsets
        mask = self.geometry.tap_mask(start, stop)
        if self.loss == EXCLUSIVE:
            index = self._label_index[sounds]
            # a not_ annotation (negatives=True): -2 - index, "not this label"
            index = np.where(self._target[sounds] == 1, index, -2 - index)
            return np.where(mask, index[:, None], -1).astype(np.int32)
        targets = np.full((len(sounds), self.geometry.parallelize, len(self.labels)), 2, dtype=np.int8)
        first, flat = self._overlaps()
        counts = first[sounds + 1] - first[sounds]
        b = np.repeat(np.arange(len(sounds)), counts)
        within = np.arange(len(b)) - np.repeat(np.cumsum(counts) - counts, counts)
        k = flat[np.repeat(first[sounds], counts) + within]
        others = k != sounds[b]
        # other annotations of the same set and recording first, the example's own one last
        for bb, kk in ((b[others], k[others]), (np.arange(len(sounds)), sounds)):
            mask = self.geometry.tap_mask(self._start[kk] - offsets[bb], self._stop[kk] - offsets[bb])
            rows, taps = np.nonzero(mask)
            targets[bb[rows], taps, self._label_index[kk[rows]]] = self._target[kk[rows]]
        return targets

    def _overlaps(self) -> tuple[np.ndarray, np.ndarray]:
        """For each sound, the sounds of the same set and recording that can reach its taps, as
        ``(first, flat)``: sound i's are ``flat[first[i]:first[i + 1]]`` (itself included)."""
        if self._neighbours is None:
            reach = self.geometry.input_tics
            neighbours: list[np.ndarray] = [np.empty(0, np.int64)] * len(self.sounds)
            frame = self.sounds.assign(_row=np.arange(len(self.sounds)))
            for _, group in frame.groupby(["set", "recording"], sort=False):
                rows = group["_row"].to_numpy()
                start, stop = self._start[rows], self._stop[rows]
                for r, s0, s1 in zip(rows, start, stop):
                    near = (start <= s1 + reach) & (stop >= s0 - reach)
                    neighbours[r] = rows[near]
            counts = np.array([len(n) for n in neighbours], dtype=np.int64)
            first = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            flat = np.concatenate(neighbours).astype(np.int64) if len(neighbours) else np.empty(0, np.int64)
            self._neighbours = (first, flat)
        return self._neighbours

    def _draw_offsets(self, sounds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        first, last = self._first[sounds], self._last[sounds]
        return first + np.floor(rng.random(len(sounds)) * (last - first + 1)).astype(np.int64)

    def training_sounds(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` training annotations drawn with replacement: with ``equalize``, a (label, kind)
        group uniformly then a member uniformly (every group equally likely); otherwise
        uniformly over annotations."""
        if not self.equalize:
            pool = self._groups_all
            return pool[rng.integers(len(pool), size=n)]
        groups = rng.integers(len(self._groups), size=n)
        sizes = self._group_sizes[groups]
        member = np.floor(rng.random(n) * sizes).astype(np.int64)
        return self._group_members[self._group_offsets[groups] + member]

    def training_batch(self, n: int, rng: np.random.Generator, *, augmentation: Augmentation | None = None,
                       augment_rng: np.random.Generator | None = None) -> Batch:
        """A training batch of ``n`` examples (with augmentation when given)."""
        sounds = self.training_sounds(n, rng)
        offsets = self._draw_offsets(sounds, rng)
        audio = self._cut(sounds, offsets)
        targets = self._targets(sounds, offsets)
        if augmentation is not None and augmentation.mixes:
            audio = self._mix_background(audio, sounds, augmentation, augment_rng or rng)
        if augmentation is not None and augmentation.active:
            audio, targets = augment(audio, targets, augmentation, augment_rng or rng)
        return Batch(audio=audio, targets=targets, sounds=sounds, offset_tic=offsets)

    def _mix_background(self, audio: np.ndarray, sounds: np.ndarray, params: Augmentation,
                        rng: np.random.Generator) -> np.ndarray:
        """``Augmentation.mix``: song examples scaled down and laid over real background."""
        label = params.background_label
        if label not in self.labels:
            raise DatasetError(f"augmentation background_label {label!r} is not one of the labels in use "
                               f"{self.labels}; name the label of background sound (e.g. ambient)")
        index = self.labels.index(label)
        training = self.indices(TRAINING)
        background = training[(self._label_index[training] == index) & (self._target[training] == 1)]
        if not len(background):
            raise DatasetError(f"augmentation mix: no training annotations of background_label {label!r}; "
                               f"annotate some background, or leave mix at (1, 1)")
        song = self._label_index[sounds] != index
        if params.mix_labels:
            unknown = [x for x in params.mix_labels if x not in self.labels]
            if unknown:
                raise DatasetError(f"augmentation mix_labels {unknown} are not labels in use {self.labels}")
            song &= np.isin(self._label_index[sounds], [self.labels.index(x) for x in params.mix_labels])
        n = int(song.sum())
        if n:
            chosen = background[rng.integers(len(background), size=n)]
            lo, hi = np.log(params.mix[0]), np.log(params.mix[1])
            gain = np.exp(rng.uniform(lo, hi, size=(n, 1, 1))).astype(np.float32)
            audio[song] = gain * audio[song] + self._cut(chosen, self._draw_offsets(chosen, rng))
        return audio

    def fixed_offsets(self, which: str, rng: np.random.Generator | None = None) -> np.ndarray:
        """One point per annotation of a set, drawn once (seeded by ``rng`` the first time) and
        reused by every later evaluation so checkpoints are compared on the same examples."""
        if which not in self._fixed_offsets:
            sounds = self.indices(which)
            self._fixed_offsets[which] = self._draw_offsets(sounds, rng or np.random.default_rng(0))
        return self._fixed_offsets[which]

    def evaluation_batches(self, which: str, batch_size: int, rng: np.random.Generator | None = None
                           ) -> Iterator[Batch]:
        """Every annotation of set ``which`` once, in order, ``batch_size`` at a time."""
        sounds = self.indices(which)
        offsets = self.fixed_offsets(which, rng)
        for i in range(0, len(sounds), batch_size):
            s, o = sounds[i: i + batch_size], offsets[i: i + batch_size]
            yield Batch(audio=self._cut(s, o), targets=self._targets(s, o), sounds=s, offset_tic=o)

    # -- derived arrays (built once by make_dataset) --------------------------------------------

    def _prepare(self) -> None:
        self._start = self.sounds["start"].to_numpy(np.int64)
        self._stop = self.sounds["stop"].to_numpy(np.int64)
        self._first = self.sounds["first"].to_numpy(np.int64)
        self._last = self.sounds["last"].to_numpy(np.int64)
        self._label_index = self.sounds["label_index"].to_numpy(np.int64)
        self._target = self.sounds["target"].to_numpy(np.int8)
        self._base = np.array([self.recording_start[r] for r in self.sounds["recording"]], dtype=np.int64)
        training = self.indices(TRAINING)
        self._groups_all = training
        if len(training):
            groups = self.sounds["group"].to_numpy()[training]
            names, inverse = np.unique(groups.astype(str), return_inverse=True)
            order = np.argsort(inverse, kind="stable")
            self._groups = names
            self._group_members = training[order]
            self._group_sizes = np.bincount(inverse, minlength=len(names))
            self._group_offsets = np.concatenate([[0], np.cumsum(self._group_sizes)[:-1]])
        else:
            self._groups = np.empty(0, dtype=object)


#: Written beside a trained model: how each label was annotated (points or ranges, how long).
ANNOTATION_DURATIONS_FILE = "annotation-durations.csv"


def annotation_durations(dataset: Dataset) -> pd.DataFrame:
    """How each of the dataset's labels was annotated, over every annotation in use (any set).

    One row per label (``not_`` labels of an overlapped model are skipped: they mark absence):
    ``label``, ``points`` (annotations with ``start == stop``), ``ranges`` (the others),
    ``shortest_range_s`` and ``median_range_s`` (durations of the ranges, seconds; NaN without
    ranges), ``shortest_gap_s`` (seconds between the closest two point annotations of the label
    in one recording; NaN with fewer than two). A label annotated only with ranges is a
    *segment* label (sine song, a syllable); its shortest range says how short a real one can be
    (``ethogram.min_segment_durations``). A label annotated only with points is an *event* label
    (pulses); its shortest gap says how close two real ones can be
    (``ethogram.event_refractory``). ``kind`` says which the label is taken for when it has
    both: the majority (``label_kinds.majority_kind``; empty when tied).
    """
    from songexplorer_core.label_kinds import majority_kind

    sounds = dataset.sounds
    positive = ~sounds["label"].astype(str).str.startswith(dataset.overlapped_prefix) \
        if dataset.loss == "overlapped" else pd.Series(True, index=sounds.index)
    rows = []
    for label in dataset.labels:
        mine = sounds[positive & (sounds["label"].astype(str) == label)]
        seconds = (mine["stop"] - mine["start"]).to_numpy() / float(dataset.rate)
        ranges = seconds[seconds > 0]
        gaps = [np.diff(np.unique(group["start"].to_numpy(np.int64))) for _, group in
                mine[(mine["stop"] == mine["start"])].groupby("recording", sort=False)]
        gaps = np.concatenate(gaps) if gaps else np.empty(0, np.int64)
        gaps = gaps[gaps > 0]
        npoints = int((seconds == 0).sum())
        rows.append({"label": label, "points": npoints, "ranges": int(ranges.size),
                     "kind": majority_kind(npoints, int(ranges.size)) or "",
                     "shortest_range_s": float(ranges.min()) if ranges.size else math.nan,
                     "median_range_s": float(np.median(ranges)) if ranges.size else math.nan,
                     "shortest_gap_s": float(gaps.min()) / float(dataset.rate) if gaps.size else math.nan})
    return pd.DataFrame(rows, columns=["label", "points", "ranges", "kind", "shortest_range_s", "median_range_s",
                                       "shortest_gap_s"])


def labels_to_learn(intervals: pd.DataFrame, overlapped_prefix: str = "not_") -> list[str]:
    """Every label of ``intervals`` a model would learn, sorted: ``<prefix><label>`` rows
    (SongExplorer's notsong annotations) mark where a label is *not*, so they are not labels."""
    names = {str(x) for x in intervals["label"].unique()}
    return sorted(n for n in names if not n.startswith(overlapped_prefix))


def make_dataset(
    ground_truth,
    *,
    labels_to_use: Sequence[str],
    kinds_to_use: Sequence[str] = ("annotated",),
    geometry: Geometry,
    rate: int | None = None,
    nchannels: int | None = None,
    loss: str = EXCLUSIVE,
    overlapped_prefix: str = "not_",
    negatives: bool = False,
    validation_percentage: float = 0.0,
    validation_offset_percentage: float = 0.0,
    testing_percentage: float = 0.0,
    validation_files: Iterable[str] = (),
    testing_files: Iterable[str] = (),
    equalize: bool = True,
    mini_batch: int | None = None,
    require_training: bool = True,
) -> Dataset:
    """Select, split and load the ground truth for training.

    Args:
        ground_truth: a ground-truth folder or a :class:`GroundTruth`.
        labels_to_use: the labels to learn, in output order (``labels.txt``).
        kinds_to_use: kinds of intervals used (``annotated``, ``detected``, ...).
        geometry: tap geometry of the network (context, shiftby, stride, parallelize).
        rate: tic rate every recording must have, Hz (``None``: that of the first recording).
        nchannels: channels every recording must have (``None``: those of the first).
        loss: ``exclusive`` or ``overlapped`` (``not_<label>`` rows mark the label's absence).
        negatives: exclusive loss only: use ``not_<label>`` rows (SongExplorer's notsong
            annotations) as *negative* examples, taps known not to be that label (target
            ``-2 - index``; the training loss is ``-log(1 - p(label))`` there). Ignored otherwise.
        validation_percentage, validation_offset_percentage, testing_percentage,
        validation_files, testing_files: the split, as :func:`assign_sets`.
        equalize: balance training draws over (label, kind) groups.
        mini_batch: when given, refuse a training set smaller than one mini-batch.
        require_training: refuse a label with no training annotations (turn off to build a
            dataset only for evaluation, e.g. ``testing_percentage=100``).

    Raises:
        DatasetError: a label to use without annotations (or without training annotations), too
            few training annotations for a mini-batch, a recording shorter than one example.
        RecordingError: a recording at another rate or channel count than the others / asked for.
    """
    labels = [str(x) for x in labels_to_use]
    if not labels:
        raise DatasetError("no labels to use: give at least one label (e.g. mel-pulse,mel-sine,ambient)")
    if len(set(labels)) != len(labels):
        raise DatasetError(f"labels to use {labels} repeat a label")
    if loss not in (EXCLUSIVE, OVERLAPPED):
        raise DatasetError(f"loss must be {EXCLUSIVE!r} or {OVERLAPPED!r}, not {loss!r}")
    kinds = [str(k) for k in kinds_to_use]
    if not kinds:
        raise DatasetError("no kinds to use: give at least one kind (e.g. annotated)")
    truth = as_ground_truth(ground_truth, kinds=kinds)
    where = f" in {truth.root}" if truth.root else ""
    table = truth.intervals
    table = table[table["kind"].isin(kinds)]
    label_column = table["label"].astype(str)
    is_not = label_column.str.startswith(overlapped_prefix) if (loss == OVERLAPPED or negatives) else \
        pd.Series(False, index=table.index)
    root_label = label_column.where(~is_not, label_column.str.slice(len(overlapped_prefix)))
    keep = root_label.isin(labels)
    table = table[keep].reset_index(drop=True)
    root_label = root_label[keep].to_numpy()
    is_not = is_not[keep].to_numpy()
    present = set(root_label[~is_not]) if loss == EXCLUSIVE else set(root_label)
    absent = [label for label in labels if label not in present]
    if absent:
        found = sorted(set(truth.intervals["label"].astype(str)))
        raise DatasetError(
            f"no annotations of kind(s) {kinds} with label(s) {absent}{where}; labels found: {found[:20]}. "
            f"Annotate them, or remove them from the labels to use.")

    # recordings: rate, channels, length
    infos = {}
    for key in sorted(set(table["recording"])):
        path = truth.recordings[key]
        info = check_recording(path, expected_rate=rate, expected_channels=nchannels)
        if rate is None:
            rate = info.rate
        if nchannels is None:
            nchannels = info.channels
        if info.frames < geometry.input_tics:
            raise DatasetError(
                f"{path}: the recording is {info.frames} tics ({info.duration_s:.3f} s) long, shorter than one "
                f"example ({geometry.input_tics} tics = context {geometry.context_tics} + "
                f"(parallelize-1) x stride {geometry.stride_tics}); shorten context_ms or parallelize, or "
                f"leave this recording out")
        infos[key] = info

    sets = assign_sets(table, validation_percentage=validation_percentage,
                       validation_offset_percentage=validation_offset_percentage,
                       testing_percentage=testing_percentage, validation_files=validation_files,
                       testing_files=testing_files)
    start = table["start"].to_numpy(np.int64)
    stop = table["stop"].to_numpy(np.int64)
    frames = np.array([infos[k].frames for k in table["recording"]], dtype=np.int64)
    # SongExplorer's detector's time rows end one past the last tic (docs/design.md, QUIRK 1-3)
    past = stop >= frames + (table["kind"].astype(str).to_numpy() == "detected")
    if past.any():
        rows = table[past]
        examples = "; ".join(f"{r.recording} {r.start}-{r.stop} {r.kind} {r.label}" for r in rows.head(5).itertuples())
        raise DatasetError(
            f"{int(past.sum())} annotation(s){where} reach past the end of their recording: {examples}"
            f"{' ...' if past.sum() > 5 else ''}. Fix or delete those rows in the annotation files (each recording's "
            f"last tic is its length in tics minus one).")
    ranges = np.array([geometry.usable_range(n) for n in frames], dtype=np.int64).reshape(-1, 2)
    first = np.maximum(start, ranges[:, 0])
    last = np.minimum(stop, ranges[:, 1])
    usable = first <= last
    notes = list(truth.notes)
    skipped = table[~usable].reset_index(drop=True)
    if len(skipped):
        examples = "; ".join(f"{r.wav} {r.start}-{r.stop} {r.label}" for r in skipped.head(5).itertuples())
        note = (f"skipped {len(skipped)} annotation(s) too close to an edge of their recording for a whole "
                f"{geometry.input_tics}-tic example: {examples}{' ...' if len(skipped) > 5 else ''}")
        notes.append(note)
        logger.warning(note)
    shortened = int(np.sum(usable & ((first > start) | (last < stop))))
    if shortened:
        note = (f"drew examples from only the part of {shortened} range annotation(s) at least half an example "
                f"from the recording's edge")
        notes.append(note)
        logger.info(note)
    # a label is ranges or points; one annotated both ways is taken for its majority (label_kinds)
    from songexplorer_core.label_kinds import mixed_kind_notes

    for note in mixed_kind_notes(table[usable], labels, truth.root):
        notes.append(note)
        logger.warning(note)
    sounds = table.assign(
        set=sets, label_index=[labels.index(r) for r in root_label], target=np.where(is_not, 0, 1),
        first=first, last=last,
        group=[f"{lab}\x1f{kind}" for lab, kind in zip(table["label"].astype(str), table["kind"].astype(str))],
    )[usable].reset_index(drop=True)

    training = sounds[sounds["set"] == TRAINING]
    if require_training:
        positive = training[training["target"] == 1]
        training_labels = set(np.asarray(labels, dtype=object)[positive["label_index"].to_numpy(np.int64)])
        no_training = [label for label in labels if label not in training_labels]
        if no_training:
            counts = {label: int((root_label == label).sum()) for label in no_training}
            raise DatasetError(
                f"label(s) {no_training} have no training annotations{where} (annotations in use: {counts}; the "
                f"rest went to validation/testing or lie too close to an edge). Annotate more, or lower the "
                f"validation percentage.")
    if mini_batch is not None and len(training) < int(mini_batch):
        raise DatasetError(
            f"only {len(training)} training annotation(s){where} but the mini-batch is {mini_batch}: a mini-batch "
            f"must not exceed the number of annotations. Lower mini_batch to at most {len(training)}, annotate more, "
            f"or lower the validation percentage.")

    # audio: every used recording once, float32
    starts, pieces, at = {}, [], 0
    for key in sorted(set(sounds["recording"])):
        _, samples = read_recording(truth.recordings[key], dtype="float32")
        starts[key] = at
        pieces.append(samples)
        at += len(samples)
    audio = np.concatenate(pieces, axis=0) if pieces else np.zeros((0, nchannels or 1), np.float32)

    dataset = Dataset(sounds=sounds, labels=labels, loss=loss, geometry=geometry, rate=int(rate or 0),
                      nchannels=int(nchannels or 1), audio=audio, recording_start=starts, skipped=skipped,
                      notes=notes, equalize=equalize, overlapped_prefix=overlapped_prefix)
    dataset._prepare()
    return dataset
