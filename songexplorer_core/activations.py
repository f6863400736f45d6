"""A trained model's input, hidden-layer activations and output at chosen sounds (SongExplorer's
``src/activations``), for clustering (:mod:`songexplorer_core.cluster`) and for finding
mistakes (:mod:`songexplorer_core.mistakes`).

Which sounds: the rows of interval tables (``wav, start, stop, kind, label``) of the chosen kinds
(``annotated``, ``detected``, ``predicted``, ``missed``, ``correct``/``mistaken``, ...) and labels,
optionally balanced and subsampled as SongExplorer does (:func:`select_sounds`).

Where in a sound: every sound is looked at through exactly **one** context window, the one whose
labelled point is the sound's *centre tic* ``(start + stop) // 2`` (``position="centre"``, the
default; a point annotation's own tic), or a tic drawn uniformly from ``[start, stop]`` with the
given seed (``position="random"``, what SongExplorer's data loader does with ranges). The window
is cut exactly as training cuts a one-tap example (:class:`songexplorer_core.dataset.Geometry`
with ``parallelize=1``): tics ``[tic - ceil(context/2) - shiftby, tic - ceil(context/2) - shiftby
+ context)``, so for an even context the network's single output tap is the decision *at* the
tic, the same number ``classify`` computes for the sample at that tic. (SongExplorer ran 64 taps
per sound and kept tap 0, whose window is centred 126 tics *before* the sound at the defaults:
QUIRK 14, fixed.)

Edges: a window that reaches before the first or past the last tic of its recording is padded
with the median of the recording's first (last) ``context_tics`` tics, rounded to a whole count
(classify's ``edges="median"`` convention); such sounds are kept and flagged ``padded=True``
in the sound table instead of being dropped (SongExplorer dropped them with a warning). A sound
whose tic is outside its recording is an error.

Layers, by index as SongExplorer's GUI numbers them: ``0`` is the input (the audio window),
``1 .. K-1`` the hidden layers in the network's order (``representation``, ``conv1`` ... each
*before* its ReLU, extra dense layers: :func:`songexplorer_core.models.hidden_layer_names`), and
``K`` the output (raw logits, pre-softmax). All requested layers and the output come from **one**
Keras sub-model called on batches of windows, never one call per sound. The output (logits) is
always kept; other layers only when asked for, since one hidden layer of the tutorial network is
7 616 numbers per sound.

Storage (:func:`write_activations`): one ``.npz``: the input as int16 counts (exact), hidden
layers as float16 (float32 for a layer with values beyond float16's range), logits as float32,
the sound table column by column, and a JSON ``metadata`` entry (model labels, layer names, the
settings). About 15 kB per sound for the tutorial network's ``conv2`` layer.

TensorFlow is imported only when activations are computed.

Why one module: its four parts (which sounds, which layers, computing, the ``.npz``) are the steps
of one command and share the :class:`Activations` result; it is a few lines over the limit
because of this docstring, and a split would only scatter one pipeline over files.
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from songexplorer_core.annotations import COLUMNS, STRING_DTYPE
from songexplorer_core.atomic import atomic_path
from songexplorer_core.audio import INT16_SCALE, check_recording, read_recording
from songexplorer_core.dataset import Geometry

ACTIVATIONS_FORMAT = "songexplorer-dagster activations 1"
#: Where in a sound its window is centred.
POSITIONS = ("centre", "random")
#: SongExplorer's GUI defaults ("equalize ratio", "max sounds").
DEFAULT_EQUALIZE_RATIO = 10
DEFAULT_MAX_SOUNDS = 1000
#: Windows per network call.
DEFAULT_MINI_BATCH = 256
#: Storage precision of hidden layers.
DTYPES = ("float16", "float32")
_FLOAT16_MAX = float(np.finfo(np.float16).max)
#: Columns of :attr:`Activations.sounds`.
SOUND_COLUMNS = (*COLUMNS, "recording", "tic", "padded")


class ActivationsError(ValueError):
    """Activations cannot be computed or read as asked; the message says what and the fix."""


# ---------------------------------------------------------------------------------------------
# which sounds


def sound_table(frame: pd.DataFrame, *, source: str = "interval table") -> pd.DataFrame:
    """An interval table typed (Arrow strings, int64 tics), other columns kept, index reset.

    Unlike :func:`~songexplorer_core.annotations.validate_intervals` it accepts the negative
    starts SongExplorer's detector writes for ``frequency`` rows (QUIRK 2): a sound is refused
    only when the tic it is looked at lies outside its recording.

    Raises:
        ActivationsError: a column is missing, or a stop lies before its start.
    """
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ActivationsError(f"{source}: missing column(s) {missing}; an interval table has {list(COLUMNS)}")
    table = frame.reset_index(drop=True).copy()
    for name in ("wav", "kind", "label"):
        table[name] = table[name].astype(STRING_DTYPE)
    for name in ("start", "stop"):
        table[name] = table[name].astype("int64")
    backwards = np.flatnonzero(table["stop"].to_numpy() < table["start"].to_numpy())
    if len(backwards):
        raise ActivationsError(f"{source}: rows {backwards[:10].tolist()} stop before they start")
    return table


def _as_list(values) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = [v for v in values.split(",") if v.strip()]
    return [str(v).strip() for v in values]


def select_sounds(
    intervals: pd.DataFrame,
    *,
    kinds: Iterable[str] | str | None = None,
    labels: Iterable[str] | str | None = None,
    equalize_ratio: float = DEFAULT_EQUALIZE_RATIO,
    max_sounds: int = DEFAULT_MAX_SOUNDS,
    seed: int | None = 0,
    where: str = "",
) -> pd.DataFrame:
    """The sounds to look at: rows of ``intervals`` of the chosen kinds and labels, balanced and
    subsampled as SongExplorer's Activations does (the "testing" set of its ``src/data.py``:
    ``testing_equalize_ratio``, ``testing_max_sounds``).

    Args:
        intervals: an interval table (``wav, start, stop, kind, label``; other columns such as
            ``recording`` are kept).
        kinds: kinds to use (e.g. ``("annotated", "missed")``); ``None`` = all.
        labels: labels to use, as written (``not_`` prefixes included); ``None`` = all.
        equalize_ratio: when > 0, no (label, kind) group keeps more than ``ratio * S`` sounds,
            ``S`` being the size of the smallest group; larger groups lose random members.
            0 keeps every sound.
        max_sounds: when > 0 and fewer than the sounds left, that many are drawn at random
            (without replacement). 0 = no limit.
        seed: seeds both random draws (``None``: different every time).
        where: named in error messages (e.g. the ground-truth folder).

    Returns:
        The chosen rows in their original order, index reset.

    Raises:
        ActivationsError: no sound of the chosen kinds and labels (the message lists the kinds
            and labels there are).
    """
    table = sound_table(intervals, source=where or "interval table")
    kinds, labels = _as_list(kinds), _as_list(labels)
    keep = np.ones(len(table), dtype=bool)
    if kinds is not None:
        keep &= table["kind"].isin(kinds).to_numpy()
    if labels is not None:
        keep &= table["label"].isin(labels).to_numpy()
    if not keep.any():
        found_kinds = sorted(set(table["kind"].astype(str)))
        of_kinds = table[table["kind"].isin(kinds)] if kinds is not None else table
        found_labels = sorted(set(of_kinds["label"].astype(str)))
        place = f" in {where}" if where else ""
        raise ActivationsError(
            f"no sounds of kind(s) {kinds if kinds is not None else 'any'} with label(s) "
            f"{labels if labels is not None else 'any'}{place} ({len(table)} interval(s) there; kinds found: "
            f"{found_kinds[:20]}; labels of the chosen kinds: {found_labels[:20]}). Choose kinds and labels "
            f"that exist, or annotate / detect / classify first.")
    chosen = np.flatnonzero(keep)
    rng = np.random.default_rng(seed)
    if equalize_ratio and equalize_ratio > 0:
        groups = (table["label"].astype(str) + "\x1f" + table["kind"].astype(str)).to_numpy()[chosen]
        names, inverse = np.unique(groups, return_inverse=True)
        sizes = np.bincount(inverse, minlength=len(names))
        limit = max(1, int(math.floor(float(equalize_ratio) * sizes.min())))
        kept = []
        for g in range(len(names)):  # groups in sorted order, so the draws do not depend on row order
            members = chosen[inverse == g]
            if len(members) > limit:
                members = rng.choice(members, size=limit, replace=False)
            kept.append(members)
        chosen = np.sort(np.concatenate(kept))
    if max_sounds and 0 < int(max_sounds) < len(chosen):
        chosen = np.sort(rng.choice(chosen, size=int(max_sounds), replace=False))
    return table.iloc[chosen].reset_index(drop=True)


def sound_tics(sounds: pd.DataFrame, *, position: str = "centre", seed: int | None = 0) -> np.ndarray:
    """The tic each sound is looked at, int64: ``(start + stop) // 2`` (``"centre"``) or a tic
    drawn uniformly from ``[start, stop]`` (``"random"``, seeded)."""
    start = sounds["start"].to_numpy(np.int64)
    stop = sounds["stop"].to_numpy(np.int64)
    if position == "centre":
        return (start + stop) // 2
    if position == "random":
        rng = np.random.default_rng(seed)
        return start + np.floor(rng.random(len(start)) * (stop - start + 1)).astype(np.int64)
    raise ActivationsError(f"position must be one of {POSITIONS}, not {position!r}")


# ---------------------------------------------------------------------------------------------
# layers


def model_layer_names(keras_model) -> tuple[str, ...]:
    """Every layer activations can return, by index: ``input``, the hidden layers
    (:func:`songexplorer_core.models.hidden_layer_names`), ``output`` (the logits)."""
    from songexplorer_core.models import hidden_layer_names  # noqa: PLC0415

    hidden = [name for name in hidden_layer_names(keras_model) if name not in ("input", "output")]
    return ("input", *hidden, "output")


def describe_layers(names: Sequence[str]) -> str:
    """``"0 input, 1 representation, 2 conv1, ..."``."""
    return ", ".join(f"{i} {name}" for i, name in enumerate(names))


def resolve_layers(layers, names: Sequence[str]) -> tuple[int, ...]:
    """Layer indices from a user's choice.

    Args:
        layers: ``None`` (the last hidden layer, or the output if there is none), ``"all"``,
            an int, a name (``"conv2"``), or several of these as an iterable or a
            comma-separated string; ``"a-b"`` is an inclusive range of indices. An empty
            choice (``[]``, ``""``) means no layer besides the output, which is always kept.
        names: the model's layers (:func:`model_layer_names`).

    Raises:
        ActivationsError: an index or name the model does not have (naming the valid ones).
    """
    last = len(names) - 1
    if layers is None:
        return (max(last - 1, 1) if last >= 2 else last,)
    if isinstance(layers, str):
        if layers.strip().lower() == "all":
            return tuple(range(len(names)))
        items: list = [p.strip() for p in layers.split(",") if p.strip()]
    elif isinstance(layers, (int, np.integer)):
        items = [int(layers)]
    else:
        items = list(layers)
    out = []
    for item in items:
        if isinstance(item, (int, np.integer)):
            out.append(int(item))
        elif isinstance(item, str) and re.fullmatch(r"-?\d+", item):
            out.append(int(item))
        elif isinstance(item, str) and re.fullmatch(r"\d+-\d+", item):
            lo, hi = (int(x) for x in item.split("-"))
            out.extend(range(lo, hi + 1))
        elif isinstance(item, str) and item in names:
            out.append(list(names).index(item))
        else:
            raise ActivationsError(f"layer {item!r} is not a layer of this model; its layers are "
                                   f"{describe_layers(names)} (give indices 0-{last} or names)")
    bad = sorted({i for i in out if not 0 <= i <= last})
    if bad:
        raise ActivationsError(f"layer index {bad[0] if len(bad) == 1 else bad} is not a layer of this model: valid "
                               f"indices are 0-{last}: {describe_layers(names)}")
    return tuple(sorted(set(out)))


# ---------------------------------------------------------------------------------------------
# the result


@dataclass(eq=False)
class Activations:
    """Activations of a model at sounds.

    Attributes:
        sounds: one row per sound: ``wav, start, stop, kind, label`` (as in its interval table),
            ``recording`` (key of its recording), ``tic`` (the tic its window is centred on) and
            ``padded`` (its window reached past an end of the recording and was padded).
        layer_names: every layer of the model by index (``input`` ... ``output``).
        layers: the stored layers by index, ``[nsounds, ...]`` each: the input as int16 counts,
            hidden layers float16 or float32 (use :meth:`layer` for float32 values).
        logits: raw output, float32 ``[nsounds, nlabels]``.
        model_labels: the model's labels, in output order.
        loss: ``exclusive`` (softmax) or ``overlapped`` (a sigmoid per label).
        rate: tic rate, Hz; context_tics, shiftby_tics, stride_tics: the model's tap geometry.
        requested: the layer indices asked for (the output's index included when asked).
        settings: how the sounds were chosen and the windows placed (for the record).
    """

    sounds: pd.DataFrame
    layer_names: tuple[str, ...]
    layers: dict[int, np.ndarray]
    logits: np.ndarray
    model_labels: tuple[str, ...]
    loss: str
    rate: int
    context_tics: int
    shiftby_tics: int
    stride_tics: int
    requested: tuple[int, ...] = ()
    settings: dict = field(default_factory=dict)

    @property
    def nsounds(self) -> int:
        return int(len(self.sounds))

    @property
    def output_index(self) -> int:
        """Index of the output layer (the logits)."""
        return len(self.layer_names) - 1

    def layer(self, which: int | str) -> np.ndarray:
        """A layer's values as float32 ``[nsounds, ...]`` (the input in full-scale units, i.e.
        counts / 32768; the output = :attr:`logits`).

        Raises:
            ActivationsError: a layer the model does not have, or one not stored.
        """
        (index,) = resolve_layers([which], self.layer_names)
        if index == self.output_index:
            return np.asarray(self.logits, dtype=np.float32)
        if index not in self.layers:
            stored = [f"{i} {self.layer_names[i]}" for i in (*sorted(self.layers), self.output_index)]
            raise ActivationsError(f"layer {index} ({self.layer_names[index]}) was not stored; stored: "
                                   f"{', '.join(stored)}. Compute activations again with it in the layers.")
        values = self.layers[index]
        if index == 0:
            return values.astype(np.float32) / np.float32(INT16_SCALE)
        return values.astype(np.float32, copy=False)

    def probabilities(self) -> np.ndarray:
        """The output as probabilities ``[nsounds, nlabels]``: softmax (exclusive loss) or a
        sigmoid per label (overlapped)."""
        logits = np.asarray(self.logits, dtype=np.float64)
        if self.loss == "overlapped":
            return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)

    @property
    def stored_layers(self) -> tuple[int, ...]:
        """Indices whose values are available (stored layers and the output)."""
        return tuple(sorted({*self.layers, self.output_index}))

    def nbytes(self) -> int:
        """Bytes held by the layers and logits."""
        return int(sum(a.nbytes for a in self.layers.values()) + self.logits.nbytes)


# ---------------------------------------------------------------------------------------------
# computing


def _model_attributes(trained_model) -> dict:
    needed = ("keras_model", "labels", "rate", "nchannels", "loss", "context_tics", "shiftby_tics", "stride_tics")
    missing = [name for name in needed if not hasattr(trained_model, name)]
    if missing:
        raise ActivationsError(f"the trained model lacks {missing}; load it with models.load_trained_model(folder)")
    return {name: getattr(trained_model, name) for name in needed}


class _Network:
    """One compiled Keras sub-model returning the chosen hidden layers and the output."""

    def __init__(self, keras_model, hidden: Sequence[str], input_tics: int, nchannels: int):
        import keras  # noqa: PLC0415 (lazy: TensorFlow)
        import tensorflow as tf  # noqa: PLC0415

        outputs = [keras_model.get_layer(name).output for name in hidden] + [keras_model.outputs[0]]
        self.submodel = keras.Model(inputs=keras_model.inputs[0], outputs=outputs)
        submodel = self.submodel
        self.call = tf.function(lambda x: submodel(x, training=False),
                                input_signature=[tf.TensorSpec([None, input_tics, nchannels], tf.float32)])

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        outputs = self.call(batch)
        if not isinstance(outputs, (list, tuple)):  # a sub-model with only the output
            outputs = [outputs]
        return [np.asarray(y) for y in outputs]


def cut_windows(samples: np.ndarray, first_tic: int, ntics: int, starts: np.ndarray, input_tics: int,
                left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Windows of ``input_tics`` tics starting at ``starts`` (tics of the recording) from
    ``samples`` (int16 ``[n, nchannels]`` holding tics ``first_tic ...`` of a recording of
    ``ntics`` tics); tics before 0 get ``left`` and tics from ``ntics`` on get ``right``.

    Returns:
        ``(windows int16 [nsounds, input_tics, nchannels], padded bool [nsounds])``.
    """
    index = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(input_tics, dtype=np.int64)[None, :]
    before, after = index < 0, index >= ntics
    local = np.clip(index - first_tic, 0, max(len(samples) - 1, 0))
    windows = samples[local] if len(samples) else np.zeros((*index.shape, samples.shape[1]), np.int16)
    if before.any():
        windows[before] = left
    if after.any():
        windows[after] = right
    return windows, before.any(axis=1) | after.any(axis=1)


def _edge_medians(path, frames: int, context_tics: int) -> tuple[np.ndarray, np.ndarray]:
    n = max(1, min(frames, context_tics))
    _, head = read_recording(path, 0, n)
    _, tail = read_recording(path, frames - n, frames)
    as_counts = lambda x: np.clip(np.round(np.median(x, axis=0)), -32768, 32767).astype(np.int16)  # noqa: E731
    return as_counts(head), as_counts(tail)


def sound_windows(table: pd.DataFrame, recordings: Mapping[str, str | os.PathLike], geometry: Geometry, *,
                  rate: int, nchannels: int, position: str = "centre", seed: int | None = 0
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One window of ``geometry.input_tics`` tics per sound of ``table`` (a :func:`sound_table`),
    cut as the module docstring says, read from ``recordings`` (key -> WAV path).

    Returns:
        ``(windows int16 [nsounds, input_tics, nchannels], padded bool [nsounds], tics int64
        [nsounds] (the tic each window is centred on), keys [nsounds] (recording keys))``.

    Raises:
        ActivationsError: a recording missing from ``recordings``, or a sound whose tic lies
            outside its recording.
        RecordingError: a recording at another rate (Hz) or channel count than asked.
    """
    input_tics = geometry.input_tics
    keys = (table["recording"] if "recording" in table.columns else table["wav"]).astype(str).to_numpy()
    missing = sorted(set(keys) - set(recordings))
    if missing:
        raise ActivationsError(f"sounds name recording(s) {missing[:5]} that are not among the recordings given "
                               f"({sorted(recordings)[:5]} ...); give every recording's path")
    tics = sound_tics(table, position=position, seed=seed)
    starts = tics - geometry.before_tics

    n = len(table)
    windows = np.empty((n, input_tics, nchannels), dtype=np.int16)
    padded = np.zeros(n, dtype=bool)
    for key in sorted(set(keys)):
        rows = np.flatnonzero(keys == key)
        path = Path(recordings[key])
        info = check_recording(path, expected_rate=rate, expected_channels=nchannels)
        outside = rows[(tics[rows] < 0) | (tics[rows] >= info.frames)]
        if len(outside):
            examples = ", ".join(f"{table['start'].iat[r]}-{table['stop'].iat[r]}" for r in outside[:5])
            raise ActivationsError(
                f"{path}: {len(outside)} sound(s) lie outside the recording ({info.frames} tics), e.g. tics "
                f"{examples}; fix those intervals or the recording they name")
        first = int(max(0, starts[rows].min()))
        stop = int(min(info.frames, starts[rows].max() + input_tics))
        _, samples = read_recording(path, first, stop)
        needs_pad = bool((starts[rows] < 0).any() or (starts[rows] + input_tics > info.frames).any())
        if needs_pad:
            left, right = _edge_medians(path, info.frames, geometry.context_tics)
        else:
            left = right = np.zeros(nchannels, np.int16)
        windows[rows], padded[rows] = cut_windows(samples, first, info.frames, starts[rows], input_tics, left, right)
    return windows, padded, tics, keys


def compute_activations(
    trained_model,
    sounds: pd.DataFrame,
    recordings: Mapping[str, str | os.PathLike],
    *,
    layers=None,
    position: str = "centre",
    seed: int | None = 0,
    mini_batch: int = DEFAULT_MINI_BATCH,
    dtype: str = "float16",
    progress: Callable[[int, int], None] | None = None,
    settings: Mapping | None = None,
) -> Activations:
    """The model's chosen layers and output at each sound (see the module docstring).

    Args:
        trained_model: a ``models.TrainedModel`` (``load_trained_model(folder)``) or anything
            with its attributes.
        sounds: an interval table (from :func:`select_sounds`); its ``recording`` column, or
            else its ``wav`` column, names each sound's recording in ``recordings``.
        recordings: recording key -> WAV path.
        layers: which layers to keep besides the output (:func:`resolve_layers`; default the
            last hidden layer).
        position: ``"centre"`` or ``"random"`` (:func:`sound_tics`).
        seed: seeds ``position="random"``.
        mini_batch: windows per network call.
        dtype: storage of hidden layers, ``"float16"`` (default; a layer whose values exceed
            float16's range is kept as float32) or ``"float32"``.
        progress: called with ``(sounds done, sounds)`` after each network call.
        settings: recorded in :attr:`Activations.settings` (e.g. how the sounds were chosen).

    Raises:
        ActivationsError: no sounds, a layer the model does not have, a recording missing from
            ``recordings``, or a sound whose tic lies outside its recording.
        RecordingError: a recording at another rate or channel count than the model's.
    """
    model = _model_attributes(trained_model)
    if dtype not in DTYPES:
        raise ActivationsError(f"dtype must be one of {DTYPES}, not {dtype!r}")
    if int(mini_batch) < 1:
        raise ActivationsError(f"mini_batch must be at least 1, not {mini_batch}")
    if sounds is None or not len(sounds):
        raise ActivationsError("no sounds to compute activations for: choose kinds and labels that have intervals")
    keras_model = model["keras_model"]
    names = model_layer_names(keras_model)
    requested = resolve_layers(layers, names)
    output_index = len(names) - 1
    rate, nchannels = int(model["rate"]), int(model["nchannels"])
    geometry = Geometry(context_tics=int(model["context_tics"]), shiftby_tics=int(model["shiftby_tics"]),
                        stride_tics=int(model["stride_tics"]), parallelize=1)
    input_tics = geometry.input_tics

    table = sound_table(sounds, source="sounds")
    windows, padded, tics, keys = sound_windows(table, recordings, geometry, rate=rate, nchannels=nchannels,
                                                position=position, seed=seed)
    n = len(table)

    hidden_indices = [i for i in requested if 0 < i < output_index]
    network = _Network(keras_model, [names[i] for i in hidden_indices], input_tics, nchannels)
    stored: dict[int, np.ndarray] = {}
    logits = None
    for begin in range(0, n, int(mini_batch)):
        batch = windows[begin: begin + int(mini_batch)].astype(np.float32) / np.float32(INT16_SCALE)
        outputs = network(batch)
        out = outputs[-1]
        if out.ndim != 3 or out.shape[1] != 1:
            raise ActivationsError(
                f"the model returned output of shape {out.shape[1:]} for a {input_tics}-tic window; expected one "
                f"tap (1, nlabels). Its context ({geometry.context_tics} tics) does not match its layers.")
        if logits is None:
            logits = np.empty((n, out.shape[2]), dtype=np.float32)
        logits[begin: begin + len(batch)] = out[:, 0, :]
        for index, values in zip(hidden_indices, outputs[:-1]):
            if index not in stored:
                stored[index] = np.empty((n, *values.shape[1:]), dtype=dtype)
            if stored[index].dtype == np.float16 and np.nanmax(np.abs(values), initial=0.0) > _FLOAT16_MAX:
                stored[index] = stored[index].astype(np.float32)
            stored[index][begin: begin + len(batch)] = values
        if progress is not None:
            progress(min(n, begin + len(batch)), n)
    if 0 in requested:
        stored[0] = windows
    stored = dict(sorted(stored.items()))

    result = table[list(COLUMNS)].assign(recording=keys, tic=tics, padded=padded)
    return Activations(
        sounds=result, layer_names=tuple(names), layers=stored, logits=logits,
        model_labels=tuple(str(x) for x in model["labels"]), loss=str(model["loss"]), rate=rate,
        context_tics=geometry.context_tics, shiftby_tics=geometry.shiftby_tics, stride_tics=geometry.stride_tics,
        requested=tuple(requested),
        settings={"position": position, "seed": seed, "dtype": dtype, **dict(settings or {})},
    )


def activations_from_ground_truth(
    trained_model,
    ground_truth,
    *,
    kinds: Iterable[str] | str = ("annotated",),
    labels: Iterable[str] | str | None = None,
    equalize_ratio: float = DEFAULT_EQUALIZE_RATIO,
    max_sounds: int = DEFAULT_MAX_SOUNDS,
    layers=None,
    position: str = "centre",
    seed: int | None = 0,
    mini_batch: int = DEFAULT_MINI_BATCH,
    dtype: str = "float16",
    progress: Callable[[int, int], None] | None = None,
) -> Activations:
    """:func:`select_sounds` then :func:`compute_activations` on a ground-truth folder (every
    interval CSV below it, recordings beside their CSVs) or a
    :class:`~songexplorer_core.dataset.GroundTruth`.

    ``labels=None`` uses every label of the chosen kinds (SongExplorer's "labels to use" blank).
    """
    from songexplorer_core.dataset import as_ground_truth  # noqa: PLC0415

    kinds = _as_list(kinds)
    truth = as_ground_truth(ground_truth, kinds=kinds)
    where = str(truth.root) if truth.root else "the ground truth"
    sounds = select_sounds(truth.intervals, kinds=kinds, labels=labels, equalize_ratio=equalize_ratio,
                           max_sounds=max_sounds, seed=seed, where=where)
    settings = {"kinds": kinds, "labels": _as_list(labels), "equalize_ratio": equalize_ratio,
                "max_sounds": max_sounds, "ground_truth": str(truth.root) if truth.root else None}
    return compute_activations(trained_model, sounds, truth.recordings, layers=layers, position=position, seed=seed,
                               mini_batch=mini_batch, dtype=dtype, progress=progress, settings=settings)


# ---------------------------------------------------------------------------------------------
# files


def write_activations(acts: Activations, path: str | os.PathLike) -> Path:
    """Write activations to one ``.npz`` atomically (see the module docstring for its layout)."""
    path = Path(path)
    metadata = dict(
        format=ACTIVATIONS_FORMAT, layer_names=list(acts.layer_names), model_labels=list(acts.model_labels),
        loss=acts.loss, rate=acts.rate, context_tics=acts.context_tics, shiftby_tics=acts.shiftby_tics,
        stride_tics=acts.stride_tics, requested=list(acts.requested), stored=sorted(acts.layers),
        settings=acts.settings,
    )
    sounds = acts.sounds
    arrays = {
        "metadata": np.array(json.dumps(metadata, default=str)),
        "logits": np.asarray(acts.logits, dtype=np.float32),
        **{f"sound_{c}": np.array(sounds[c].astype(str).tolist(), dtype=str)
           for c in ("wav", "kind", "label", "recording")},
        **{f"sound_{c}": sounds[c].to_numpy(np.int64) for c in ("start", "stop", "tic")},
        "sound_padded": sounds["padded"].to_numpy(bool),
        **{f"layer_{i}": values for i, values in acts.layers.items()},
    }
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    return path


def read_activations(path: str | os.PathLike) -> Activations:
    """Read a file written by :func:`write_activations`.

    Raises:
        ActivationsError: naming the file, when it is missing, not such a file, or damaged.
    """
    path = Path(path)
    if not path.is_file():
        raise ActivationsError(f"{path}: no such activations file; run `songexplorer activations` first")
    try:
        with np.load(path, allow_pickle=False) as npz:
            metadata = json.loads(str(npz["metadata"]))
            if metadata.get("format") != ACTIVATIONS_FORMAT:
                raise ActivationsError(f"{path}: unknown activations format {metadata.get('format')!r}")
            sounds = pd.DataFrame({c: npz[f"sound_{c}"] for c in (*COLUMNS, "recording", "tic", "padded")})
            layers = {int(i): npz[f"layer_{int(i)}"] for i in metadata["stored"]}
            logits = np.asarray(npz["logits"], dtype=np.float32)
    except ActivationsError:
        raise
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise ActivationsError(f"{path}: not an activations file written by `songexplorer activations` "
                               f"({type(error).__name__}: {error}); compute the activations again") from error
    sounds = sound_table(sounds, source=str(path))
    sounds["recording"] = sounds["recording"].astype(str)
    return Activations(
        sounds=sounds, layer_names=tuple(metadata["layer_names"]), layers=layers, logits=logits,
        model_labels=tuple(metadata["model_labels"]), loss=metadata["loss"], rate=int(metadata["rate"]),
        context_tics=int(metadata["context_tics"]), shiftby_tics=int(metadata["shiftby_tics"]),
        stride_tics=int(metadata["stride_tics"]), requested=tuple(metadata.get("requested", ())),
        settings=dict(metadata.get("settings", {})),
    )
