"""Classify recordings: per-label probabilities at the network's output rate (SongExplorer's
``classify``), computed fully convolutionally over long spans, and their file formats.

Conventions (the same as SongExplorer's probability WAVs written by its ``src/classify``):

* A trained model makes one decision ("tap") per *context window* of ``context_tics`` tics; taps
  are ``stride_tics`` apart (SongExplorer's stride x downsample, 4 tics = 1.6 ms by default), so
  probabilities come at ``output_rate = rate / stride_tics`` Hz (625 Hz at 2500 Hz).
* Sample ``k`` of a :class:`Probabilities` is the decision for the window *centred* at tic
  ``k * stride_tics`` (shifted by ``shiftby``): the window starts at tic
  ``(k - npadding) * stride_tics`` with ``npadding = round((context_tics/2 + shiftby_tics) /
  stride_tics)``.
* ``edges="songexplorer"`` (default) reproduces SongExplorer's length exactly: the first
  ``npadding`` samples are zeros (no full window is centred there) and the last sample is the
  last window that fits wholly inside the recording, so a 200 s recording at 2500 Hz with the
  default 204.8 ms context gives 64 + 124 873 = 124 937 samples, and the last ~context/2 of the
  recording has no sample. ``edges="median"`` instead covers the whole recording
  (``ceil(ntics / stride_tics)`` samples, none left at zero) by padding the audio beyond each end
  with the median of the ``context_tics`` real tics nearest that end.

The network sees only real audio for every sample SongExplorer computes: the recording is cut
into spans of many taps that overlap by ``context_tics - stride_tics``, so each tap's window is
read from the recording itself whatever the span size; the result does not depend on the span
size (to float rounding). Many spans go through the model in one compiled call.

TensorFlow is imported only when a recording is actually classified, so reading and writing
probabilities (and everything in :mod:`songexplorer_core.ethogram`) stays light.

Why one module: reading spans, running the network and laying the outputs out as SongExplorer
does (leading padding, span overlaps) share sample bookkeeping that must agree to the tic; the
probability files are that layout written down.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import zipfile
import zlib

import numpy as np
import soundfile

from songexplorer_core.atomic import atomic_path, atomic_write, output_lock, remove_stale_temporaries
from songexplorer_core.audio import RecordingError, RecordingReader, read_recording, recording_info
from songexplorer_core.labels import child_path

EXCLUSIVE = "exclusive"
OVERLAPPED = "overlapped"
LOSSES = (EXCLUSIVE, OVERLAPPED)

#: SongExplorer's probability WAVs hold ``int16(p * 32767)``.
WAV_SCALE = 32767

#: Edge handling: ``"songexplorer"`` (leading zeros, stop at the last whole window) or
#: ``"median"`` (pad the audio with the edge median and cover every tic).
EDGES = ("songexplorer", "median")

#: Default tics of output per span (rounded down to a whole number of taps).
DEFAULT_SPAN_TICS = 2**16
#: Default number of spans per model call.
DEFAULT_BATCH_SIZE = 2

PROBABILITIES_FORMAT = "songexplorer-dagster probabilities 1"
MANIFEST_FORMAT = "songexplorer-dagster classify outputs 1"


class ClassifyError(ValueError):
    """Classification cannot proceed; the message names the file or setting and the fix."""


# ---------------------------------------------------------------------------------------------
# the result type


@dataclass(frozen=True, eq=False)
class Probabilities:
    """Per-label probabilities of one recording, one row per output sample.

    Attributes:
        values: float32 ``[nsamples, nlabels]``; row ``k`` is for tic ``k * stride_tics``.
        labels: label of each column, in the model's ``labels.txt`` order.
        rate: tic rate of the recording, Hz.
        stride_tics: tics between consecutive samples (output rate = ``rate / stride_tics`` Hz).
        npadding: leading samples that were not computed and hold zeros (SongExplorer's
            convention; 0 when ``edges="median"``).
        loss: ``"exclusive"`` (softmax: each row sums to 1) or ``"overlapped"`` (sigmoids).
        wav: basename of the recording, if known.
        ntics: length of the recording in tics, if known.
        prevalences: the prior per label applied (normalised to sum 1), or ``None``.
    """

    values: np.ndarray
    labels: tuple[str, ...]
    rate: int
    stride_tics: int
    npadding: int = 0
    loss: str = EXCLUSIVE
    wav: str | None = None
    ntics: int | None = None
    prevalences: tuple[float, ...] | None = field(default=None)

    def __post_init__(self):
        values = np.asarray(self.values)
        if values.ndim != 2 or values.shape[1] != len(self.labels):
            raise ValueError(
                f"probabilities must be [nsamples, {len(self.labels)}] for labels {list(self.labels)}, "
                f"got shape {values.shape}"
            )
        if self.stride_tics < 1 or self.rate < 1:
            raise ValueError(f"rate ({self.rate} Hz) and stride_tics ({self.stride_tics}) must be positive")
        object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))

    @property
    def nsamples(self) -> int:
        return int(self.values.shape[0])

    @property
    def output_rate(self) -> float:
        """Samples per second, Hz."""
        return self.rate / self.stride_tics

    def tics(self) -> np.ndarray:
        """The tic each sample is centred on, int64 ``[nsamples]``."""
        return np.arange(self.nsamples, dtype=np.int64) * self.stride_tics

    def column(self, label: str) -> np.ndarray:
        """The probabilities of one label, ``[nsamples]``."""
        try:
            return self.values[:, self.labels.index(label)]
        except ValueError:
            of = f" of the probabilities of {self.wav}" if self.wav else ""
            raise KeyError(f"label {label!r} is not one of the labels {list(self.labels)}{of}") from None


# ---------------------------------------------------------------------------------------------
# prevalences (SongExplorer's ``src/classify``, QUIRK 13 fixed)


def normalise_prevalences(
    prevalences: Mapping[str, float] | Sequence[float], labels: Sequence[str]
) -> np.ndarray:
    """Priors per label, in ``labels`` order, scaled to sum to 1.

    Args:
        prevalences: a mapping label -> prior, or a sequence in ``labels`` order. Values are
            relative: expected durations (e.g. 6, 12, 42 seconds) work as well as probabilities.
        labels: the model's labels.
    """
    labels = list(labels)
    if isinstance(prevalences, Mapping):
        given = {str(k): v for k, v in prevalences.items()}
        if set(given) != set(labels):
            raise ClassifyError(
                f"prevalences are given for labels {sorted(given)} but the model's labels are "
                f"{labels}: give exactly one prevalence per model label."
            )
        values = np.array([float(given[label]) for label in labels], dtype=np.float64)
    else:
        values = np.asarray(list(prevalences), dtype=np.float64)
        if values.shape != (len(labels),):
            raise ClassifyError(
                f"{values.size} prevalence(s) given for {len(labels)} labels {labels}: give one per label, "
                f"in that order."
            )
    if not np.all(np.isfinite(values)) or np.any(values < 0) or values.sum() <= 0:
        raise ClassifyError(f"prevalences must be non-negative numbers, not all zero; got {values.tolist()}")
    return values / values.sum()


def adjust_for_prevalences(values: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """Re-weight exclusive (softmax) probabilities for the expected prevalence of each label.

    The network is trained on (roughly) equal numbers of sounds per label, so its softmax output
    is a posterior under a uniform prior. Under priors ``pi`` (summing to 1) Bayes' rule gives
    ``p'_c = p_c * pi_c / sum_k p_k * pi_k`` (SongExplorer's intended formula; its v0.9.1 code
    raised for two or more labels). Rows that are all zero (uncomputed padding) stay zero.

    Args:
        values: ``[nsamples, nlabels]`` softmax probabilities.
        priors: ``[nlabels]`` from :func:`normalise_prevalences`.
    """
    values = np.asarray(values, dtype=np.float64)
    weighted = values * np.asarray(priors, dtype=np.float64)[None, :]
    total = weighted.sum(axis=1, keepdims=True)
    out = np.divide(weighted, total, out=np.zeros_like(weighted), where=total > 0)
    return out.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# sample bookkeeping


def padding_samples(context_tics: int, shiftby_tics: int, stride_tics: int) -> int:
    """SongExplorer's ``npadding``: samples before the first window's centre,
    ``round((context_tics/2 + shiftby_tics) / stride_tics)`` (64 for 512/0/4)."""
    return int(round((context_tics / 2 + shiftby_tics) / stride_tics))


def sample_range(ntics: int, *, context_tics: int, stride_tics: int, npadding: int,
                 edges: str = "songexplorer") -> tuple[int, int, int]:
    """Which output samples a recording of ``ntics`` tics gets.

    Returns:
        ``(nsamples, first, stop)``: the output has ``nsamples`` rows, rows ``[first, stop)``
        are computed by the network (the rest are zero); row ``k``'s window starts at tic
        ``(k - npadding) * stride_tics``.
    """
    if edges == "songexplorer":
        ntaps = (ntics - context_tics) // stride_tics + 1 if ntics >= context_tics else 0
        if npadding >= 0:
            return npadding + ntaps, npadding, npadding + ntaps
        nsamples = max(0, ntaps + npadding)
        return nsamples, 0, nsamples
    if edges == "median":
        nsamples = -(-ntics // stride_tics)
        return nsamples, 0, nsamples
    raise ClassifyError(f"edges must be one of {EDGES}, not {edges!r}")


class _Audio:
    """Reads tics ``[start, stop)`` of a recording for the network, beyond-the-ends tics filled.

    ``read(start, stop)`` returns float32 ``[stop - start, nchannels]``; tics before 0 get
    ``left`` and tics at or after ``ntics`` get ``right`` (per-channel values).
    """

    def __init__(self, read: Callable[[int, int], np.ndarray], ntics: int, nchannels: int,
                 left: np.ndarray, right: np.ndarray):
        self._read, self.ntics, self.nchannels = read, ntics, nchannels
        self.left = np.asarray(left, dtype=np.float32).reshape(1, nchannels)
        self.right = np.asarray(right, dtype=np.float32).reshape(1, nchannels)

    def read(self, start: int, stop: int) -> np.ndarray:
        count = stop - start
        out = np.empty((count, self.nchannels), dtype=np.float32)
        before = min(count, max(0, -start))  # rows for tics < 0
        inside_stop = max(before, min(count, self.ntics - start))  # rows for tics < ntics end here
        out[:before] = self.left
        if inside_stop > before:
            out[before:inside_stop] = self._read(start + before, start + inside_stop)
        out[inside_stop:] = self.right
        return out


# ---------------------------------------------------------------------------------------------
# the network call


def _model_attributes(trained_model) -> dict:
    missing = [name for name in ("keras_model", "labels", "rate", "nchannels", "loss", "context_tics",
                                 "shiftby_tics", "stride_tics") if not hasattr(trained_model, name)]
    if missing:
        raise ClassifyError(f"the trained model lacks {missing}; load it with models.load_trained_model(folder)")
    loss = str(trained_model.loss)
    if loss not in LOSSES:
        raise ClassifyError(f"cannot classify with loss {loss!r}: only {LOSSES} models give label probabilities")
    return dict(
        keras_model=trained_model.keras_model, labels=tuple(str(x) for x in trained_model.labels),
        rate=int(trained_model.rate), nchannels=int(trained_model.nchannels), loss=loss,
        context_tics=int(trained_model.context_tics), shiftby_tics=int(trained_model.shiftby_tics),
        stride_tics=int(trained_model.stride_tics),
    )


class Classifier:
    """A trained model made ready to classify many recordings: its network is compiled once
    (one ``tf.function`` for any batch and length), so only the first recording pays for tracing.

    Args:
        trained_model: a ``models.TrainedModel`` (``load_trained_model(folder)``), or anything
            with its attributes (``keras_model``, ``labels``, ``rate``, ``nchannels``, ``loss``,
            ``context_tics``, ``shiftby_tics``, ``stride_tics``).
        span_tics: tics of output per span (default 65 536, i.e. 16 384 taps at 4 tics/tap).
            Each span reads ``span_tics + context_tics - stride_tics`` tics of audio.
        batch_size: spans per network call (default 2).
        matmul_convolutions: evaluate the network through ``models.inference_network``: the
            same weights, the same probabilities to float rounding, about twice as fast on CPU
            for the tutorial network (its slow convolutions become large matrix products).
            ``False`` calls the Keras model as built.
    """

    def __init__(self, trained_model, *, span_tics: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                 matmul_convolutions: bool = True):
        self.model = _model_attributes(trained_model)
        self.labels = self.model["labels"]
        self.rate = self.model["rate"]
        self.nchannels = self.model["nchannels"]
        self.loss = self.model["loss"]
        self.context_tics = self.model["context_tics"]
        self.shiftby_tics = self.model["shiftby_tics"]
        self.stride_tics = self.model["stride_tics"]
        self.span_taps = max(1, int(DEFAULT_SPAN_TICS if span_tics is None else span_tics) // self.stride_tics)
        self.batch_size = max(1, int(batch_size))
        self.matmul_convolutions = bool(matmul_convolutions)
        self._compiled = None
        self._fallback = None

    @property
    def npadding(self) -> int:
        """SongExplorer's leading padding samples, :func:`padding_samples`."""
        return padding_samples(self.context_tics, self.shiftby_tics, self.stride_tics)

    def _call(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities ``[batch, ntaps, nlabels]`` of ``batch[batch, ntics, nchannels]``."""
        if self._compiled is None:
            import tensorflow as tf

            keras_model, loss = self.model["keras_model"], self.loss
            if self.matmul_convolutions:
                from songexplorer_core.models import inference_network

                keras_model = inference_network(keras_model)

            def probabilities(x):
                logits = keras_model(x, training=False)
                return tf.nn.softmax(logits, axis=-1) if loss == EXCLUSIVE else tf.sigmoid(logits)

            signature = [tf.TensorSpec([None, None, self.nchannels], tf.float32)]
            self._compiled = tf.function(probabilities, input_signature=signature, reduce_retracing=True)
            self._fallback = tf.function(probabilities, reduce_retracing=True)
        try:
            return np.asarray(self._compiled(batch))
        except (TypeError, ValueError):
            if self._compiled is self._fallback:
                raise
            # a model whose layers need static lengths: trace once per shape instead
            self._compiled = self._fallback
            return np.asarray(self._compiled(batch))

    def _sweep(self, audio: _Audio, *, edges: str, progress) -> tuple[np.ndarray, int]:
        """Run the network over every computed sample; returns ``(values, npadding)``."""
        context, stride, npadding = self.context_tics, self.stride_tics, self.npadding
        nsamples, first, stop = sample_range(audio.ntics, context_tics=context, stride_tics=stride,
                                             npadding=npadding, edges=edges)
        nlabels = len(self.labels)
        values = np.zeros((nsamples, nlabels), dtype=np.float32)
        ncomputed = stop - first
        if ncomputed <= 0:
            warnings.warn(f"the recording ({audio.ntics} tics) is shorter than the model's context "
                          f"({context} tics): no probabilities computed", stacklevel=3)
            return values, npadding
        span_taps = self.span_taps
        span_input = context + (span_taps - 1) * stride
        nspans = -(-ncomputed // span_taps)
        done = 0
        for group_start in range(0, nspans, self.batch_size):
            nbatch = min(nspans, group_start + self.batch_size) - group_start
            k0 = first + group_start * span_taps
            tic0 = (k0 - npadding) * stride
            # every span of this call comes from one contiguous stretch of audio; neighbouring
            # spans overlap by context - stride tics, so each tap sees only its own window
            stretch = audio.read(tic0, tic0 + (nbatch - 1) * span_taps * stride + span_input)
            batch = np.stack([stretch[i * span_taps * stride: i * span_taps * stride + span_input]
                              for i in range(nbatch)])
            out = self._call(batch)
            if out.shape[2] != nlabels:
                raise ClassifyError(
                    f"the model's network gives {out.shape[2]} outputs per tap but its description lists {nlabels} "
                    f"labels {list(self.labels)}: its model.json (or labels.txt) does not belong to its model.keras; "
                    f"use another checkpoint or train again")
            if out.shape[1] < span_taps:
                raise ClassifyError(
                    f"the model returned {out.shape[1:]} (taps, labels) for an input of {span_input} tics; "
                    f"expected ({span_taps}, {nlabels}) = ((ntics - context_tics)//stride_tics + 1, labels) with "
                    f"context_tics={context}, stride_tics={stride}. The model's context/stride do not match its layers."
                )
            flat = out[:, :span_taps, :].reshape(-1, nlabels)
            n = min(len(flat), stop - k0)
            values[k0: k0 + n] = flat[:n]
            done += n
            if progress is not None:
                progress(done, ncomputed)
        return values, npadding

    def _finish(self, audio: _Audio, *, prevalences, edges: str, wav, progress) -> Probabilities:
        if edges not in EDGES:
            raise ClassifyError(f"edges must be one of {EDGES}, not {edges!r}")
        priors = None
        if prevalences is not None:
            if self.loss != EXCLUSIVE:
                raise ClassifyError(
                    "prevalences apply to exclusive-loss models only: an overlapped model's labels are "
                    "independent, so there is no shared prior to re-weight. Leave prevalences empty."
                )
            priors = normalise_prevalences(prevalences, self.labels)
        values, npadding = self._sweep(audio, edges=edges, progress=progress)
        if priors is not None:
            values = adjust_for_prevalences(values, priors)
        return Probabilities(
            values=values, labels=self.labels, rate=self.rate, stride_tics=self.stride_tics,
            npadding=max(npadding, 0) if edges == "songexplorer" else 0, loss=self.loss, wav=wav,
            ntics=audio.ntics, prevalences=None if priors is None else tuple(float(x) for x in priors),
        )

    def classify_samples(self, samples: np.ndarray, *, rate: int, prevalences=None, edges: str = "songexplorer",
                         wav: str | None = None, progress=None) -> Probabilities:
        """See :func:`classify_samples`."""
        if int(rate) != self.rate:
            raise ClassifyError(
                f"{wav or 'audio'}: sample rate is {rate} Hz but the model was trained at {self.rate} Hz; "
                f"resample the recording to {self.rate} Hz or use a model trained at {rate} Hz."
            )
        samples = np.asarray(samples)
        if samples.dtype == np.int16:
            samples = samples.astype(np.float32) / np.float32(32768)
        samples = samples.astype(np.float32, copy=False)
        if samples.ndim == 1:
            samples = samples[:, None]
        if samples.shape[1] != self.nchannels:
            raise ClassifyError(f"{wav or 'audio'}: has {samples.shape[1]} channel(s) but the model expects "
                                f"{self.nchannels}")

        def read(a: int, b: int) -> np.ndarray:
            return samples[a:b]

        left, right = _edge_values(read, len(samples), self.context_tics)
        audio = _Audio(read, len(samples), samples.shape[1], left, right)
        return self._finish(audio, prevalences=prevalences, edges=edges, wav=wav, progress=progress)

    def classify_recording(self, wav_path: str | os.PathLike, *, prevalences=None, edges: str = "songexplorer",
                           progress=None) -> Probabilities:
        """See :func:`classify_recording`."""
        info = recording_info(wav_path)
        if info.rate != self.rate:
            raise RecordingError(
                f"{info.path}: sample rate is {info.rate} Hz but the model was trained on {self.rate} Hz "
                f"recordings. Resample it to {self.rate} Hz (e.g. `sox in.wav -r {self.rate} out.wav`) "
                f"or classify it with a model trained at {info.rate} Hz."
            )
        if info.channels != self.nchannels:
            raise RecordingError(
                f"{info.path}: has {info.channels} channel(s) but the model was trained on "
                f"{self.nchannels}-channel recordings."
            )
        with RecordingReader(info.path) as reader:

            def read(a: int, b: int) -> np.ndarray:
                # any sample format at SongExplorer's scale (float WAVs are not silence)
                return reader.read(a, b, dtype="float32")

            if edges == "median":
                left, right = _edge_values(read, info.frames, self.context_tics)
            else:  # the padding only feeds taps that are discarded
                left = right = np.zeros(info.channels)
            audio = _Audio(read, info.frames, info.channels, left, right)
            return self._finish(audio, prevalences=prevalences, edges=edges, wav=info.path.name, progress=progress)


def _classifier(trained_model, span_tics: int | None, batch_size: int | None) -> Classifier:
    """The given :class:`Classifier` (a copy sharing its compiled network when span or batch
    differ), or a new one for a trained model."""
    if isinstance(trained_model, Classifier):
        if span_tics is None and batch_size is None:
            return trained_model
        classifier = copy.copy(trained_model)
        if span_tics is not None:
            classifier.span_taps = max(1, int(span_tics) // classifier.stride_tics)
        if batch_size is not None:
            classifier.batch_size = max(1, int(batch_size))
        return classifier
    return Classifier(trained_model, span_tics=span_tics,
                      batch_size=DEFAULT_BATCH_SIZE if batch_size is None else batch_size)


#: Trained-model folders :func:`cached_classifier` keeps loaded (the most recently used ones).
CACHED_MODELS = 2
_CACHE: dict[tuple, tuple] = {}


def _model_stamp(folder: Path) -> tuple:
    """What says a model folder is unchanged: its resolved path and the size and mtime (ns) of
    ``model.keras`` and ``model.json`` (a folder rewritten in place gets new ones)."""
    from songexplorer_core.models.constants import METADATA_FILE, MODEL_FILE

    stamp = [str(folder.resolve())]
    for name in (MODEL_FILE, METADATA_FILE):
        try:
            stat = os.stat(folder / name)
        except OSError:
            stamp.append(None)  # load_trained_model names what is missing
            continue
        stamp.append((stat.st_size, stat.st_mtime_ns))
    return tuple(stamp)


def cached_classifier(folder: str | os.PathLike) -> tuple:
    """``(TrainedModel, Classifier)`` of a trained-model folder, loaded once per process: a step
    classifying many recordings, or several steps in one process, load the model, import
    TensorFlow and trace the network once. The entry is keyed by the folder's resolved path and
    its files' size and mtime, so a model rewritten in place is loaded again; the
    :data:`CACHED_MODELS` most recently used folders are kept.

    Raises:
        ModelError: as ``models.load_trained_model``, naming the folder.
    """
    from songexplorer_core.models import load_trained_model

    folder = Path(folder)
    stamp = _model_stamp(folder)
    entry = _CACHE.pop(stamp, None)
    if entry is None:
        trained = load_trained_model(folder)
        entry = (trained, Classifier(trained))
    _CACHE[stamp] = entry  # most recent last
    while len(_CACHE) > CACHED_MODELS:
        _CACHE.pop(next(iter(_CACHE)))
    return entry


def clear_classifier_cache() -> None:
    """Forget every model :func:`cached_classifier` holds (tests; freeing memory)."""
    _CACHE.clear()


def classify_samples(
    trained_model,
    samples: np.ndarray,
    *,
    rate: int,
    span_tics: int | None = None,
    batch_size: int | None = None,
    prevalences: Mapping[str, float] | Sequence[float] | None = None,
    edges: str = "songexplorer",
    wav: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Probabilities:
    """Classify audio already in memory.

    Args:
        trained_model: a ``models.TrainedModel`` or a :class:`Classifier`.
        samples: ``[ntics, nchannels]`` (or ``[ntics]``) float32 scaled to [-1, 1) (int16 is
            divided by 32768).
        rate: tic rate of ``samples``, Hz; must equal the model's.
        Other arguments: as :func:`classify_recording`.
    """
    return _classifier(trained_model, span_tics, batch_size).classify_samples(
        samples, rate=rate, prevalences=prevalences, edges=edges, wav=wav, progress=progress)


def classify_recording(
    trained_model,
    wav_path: str | os.PathLike,
    *,
    span_tics: int | None = None,
    batch_size: int | None = None,
    prevalences: Mapping[str, float] | Sequence[float] | None = None,
    edges: str = "songexplorer",
    progress: Callable[[int, int], None] | None = None,
) -> Probabilities:
    """Per-label probabilities of one recording (SongExplorer's ``src/classify``).

    The recording is read span by span (never whole), each span holding ``span_tics`` tics of
    output plus ``context_tics - stride_tics`` tics of overlap, and ``batch_size`` spans go
    through the network per call. The probabilities do not depend on either setting.

    Args:
        trained_model: a ``models.TrainedModel`` (``load_trained_model(folder)``), or a
            :class:`Classifier` to reuse one compiled network across recordings.
        wav_path: the recording; its rate and channel count must match the model's.
        span_tics: tics of output per span (default 65 536, i.e. 16 384 taps at 4 tics/tap).
        batch_size: spans per network call (default 2, or the Classifier's).
        prevalences: expected prevalence per label (mapping, or sequence in model label order;
            any positive scale, e.g. seconds of each): re-weights exclusive probabilities by
            Bayes' rule (:func:`adjust_for_prevalences`). Not allowed for overlapped models,
            whose labels are independent.
        edges: ``"songexplorer"`` (default, SongExplorer's length and leading zeros) or
            ``"median"`` (cover the whole recording, padding beyond its ends with the median of
            the nearest ``context_tics`` tics).
        progress: called with ``(samples done, samples to do)`` after each network call.

    Raises:
        RecordingError: unreadable recording, or a rate / channel count different from the
            model's (the message names the file).
    """
    return _classifier(trained_model, span_tics, batch_size).classify_recording(
        wav_path, prevalences=prevalences, edges=edges, progress=progress)


def _edge_values(read, ntics: int, context_tics: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel medians of the first and last ``context_tics`` tics (padding values)."""
    if ntics == 0:
        return np.zeros(1), np.zeros(1)
    n = max(1, min(ntics, context_tics))
    return np.median(read(0, n), axis=0), np.median(read(ntics - n, ntics), axis=0)


# ---------------------------------------------------------------------------------------------
# files


def probability_wav_name(wav_name: str, label: str) -> str:
    """SongExplorer's name for a label's probability WAV: ``<recording stem>-<label>.wav``
    (``PS_20130625111709_ch3.wav`` -> ``PS_20130625111709_ch3-mel-pulse.wav``)."""
    stem = Path(wav_name).name
    if stem.lower().endswith(".wav"):
        stem = stem[:-4]
    return f"{stem}-{label}.wav"


def write_probability_wavs(probs: Probabilities, out_dir: str | os.PathLike, wav_name: str | None = None
                           ) -> list[Path]:
    """Write one SongExplorer probability WAV per label, atomically.

    Each is mono int16 at ``round(output_rate)`` Hz holding ``int16(p * 32767)`` (truncated
    toward zero, as SongExplorer does), named :func:`probability_wav_name`.

    Returns:
        The paths written, in label order.
    """
    wav_name = wav_name or probs.wav
    if not wav_name:
        raise ValueError("write_probability_wavs needs the recording's name (wav_name=...)")
    output_rate = probs.output_rate
    wav_rate = int(round(output_rate))
    if wav_rate != output_rate:
        warnings.warn(f"output rate {output_rate} Hz is not a whole number; the probability WAVs say "
                      f"{wav_rate} Hz (WAV files cannot hold fractional rates)", stacklevel=2)
    values = np.clip(np.nan_to_num(probs.values, nan=0.0), 0.0, 1.0)
    ints = (values.astype(np.float64) * WAV_SCALE).astype(np.int16)
    written = []
    for column, label in enumerate(probs.labels):
        # whatever the label holds, the file stays in out_dir (labels are checked where they enter)
        path = child_path(out_dir, probability_wav_name(wav_name, label))
        with atomic_path(path) as tmp:
            soundfile.write(str(tmp), ints[:, column], wav_rate, subtype="PCM_16", format="WAV")
        written.append(path)
    return written


def read_probability_wavs(folder: str | os.PathLike, wav_name: str, labels: Sequence[str], *, rate: int,
                          loss: str = EXCLUSIVE) -> Probabilities:
    """Read SongExplorer probability WAVs (``<stem>-<label>.wav``; ``<wav>-<label>.wav`` also accepted).

    Args:
        folder: where the WAVs are.
        wav_name: the recording's basename.
        labels: which labels to read, in the order wanted (e.g. a thresholds file's).
        rate: the recording's tic rate, Hz (the WAVs only carry the output rate).
        loss: recorded in the result (probability WAVs do not say).

    Raises:
        FileNotFoundError: a label's WAV is missing (names the file and how to make it).
        ClassifyError: the WAVs disagree in rate or length, or their rate does not divide ``rate``.
    """
    folder = Path(folder)
    columns, wav_rates, paths = [], set(), []
    for label, path in zip(labels, probability_wav_paths(folder, wav_name, labels)):
        if not path.exists():
            raise FileNotFoundError(
                f"{path}: no probability WAV for label {label!r} of {wav_name}. "
                f"Run `songexplorer classify` on the recording first, or check the labels."
            )
        try:
            wav_rate, data = read_recording(path, dtype="int16")
        except RecordingError as error:
            raise ClassifyError(f"{path}: not a readable probability WAV ({error}); classify the recording "
                                f"again") from error
        columns.append(data[:, 0].astype(np.float32) / np.float32(WAV_SCALE))
        wav_rates.add(int(wav_rate))
        paths.append(path)
    if len(wav_rates) > 1 or len({len(c) for c in columns}) > 1:
        raise ClassifyError(f"probability WAVs {[str(p) for p in paths]} differ in rate or length; "
                            f"classify the recording again.")
    wav_rate = wav_rates.pop() if wav_rates else 1
    stride = rate / wav_rate
    if abs(stride - round(stride)) > 1e-9:
        raise ClassifyError(f"{paths[0]}: its rate {wav_rate} Hz does not divide the recording's {rate} Hz; "
                            f"check --audio_tic_rate.")
    values = np.stack(columns, axis=1) if columns else np.zeros((0, 0), np.float32)
    return Probabilities(values=values, labels=tuple(labels), rate=int(rate), stride_tics=int(round(stride)),
                         loss=loss, wav=Path(wav_name).name)


def probability_wav_paths(folder: str | os.PathLike, wav_name: str, labels: Sequence[str]) -> list[Path]:
    """Where each label's probability WAV is (``<stem>-<label>.wav``, else an existing
    ``<wav>-<label>.wav``); the paths may not exist."""
    paths = []
    for label in labels:
        path = child_path(folder, probability_wav_name(wav_name, label))  # never out of the folder
        alternative = child_path(folder, f"{Path(wav_name).name}-{label}.wav")
        paths.append(alternative if not path.exists() and alternative.exists() else path)
    return paths


def probabilities_npz_name(wav_name: str) -> str:
    """``<wav basename>-probabilities.npz``."""
    return f"{Path(wav_name).name}-probabilities.npz"


def write_probabilities(probs: Probabilities, path: str | os.PathLike, *, dtype: str = "float32") -> Path:
    """Write probabilities and their metadata to one ``.npz``, atomically.

    Args:
        dtype: ``"float32"`` (default, full precision) or ``"float16"`` (half the size; steps of
            about 0.0005 near 1, coarser than the 1/32767 of probability WAVs, so thresholds
            close to 1 lose resolution).
    """
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype must be 'float32' or 'float16', not {dtype!r}")
    path = Path(path)
    metadata = dict(
        format=PROBABILITIES_FORMAT, labels=list(probs.labels), rate=probs.rate, stride_tics=probs.stride_tics,
        npadding=probs.npadding, loss=probs.loss, wav=probs.wav, ntics=probs.ntics,
        prevalences=None if probs.prevalences is None else list(probs.prevalences),
    )
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, probabilities=np.asarray(probs.values, dtype=dtype),
                     labels=np.array(probs.labels, dtype=str), metadata=np.array(json.dumps(metadata)))
    return path


def read_probabilities(path: str | os.PathLike) -> Probabilities:
    """Read a file written by :func:`write_probabilities` (values come back as float32)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            values = np.asarray(npz["probabilities"], dtype=np.float32)
            metadata = json.loads(str(npz["metadata"]))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise ClassifyError(f"{path}: not a probabilities file written by `songexplorer classify` ({error})") from error
    if metadata.get("format") != PROBABILITIES_FORMAT:
        raise ClassifyError(f"{path}: unknown probabilities format {metadata.get('format')!r}")
    prevalences = metadata.get("prevalences")
    return Probabilities(
        values=values, labels=tuple(metadata["labels"]), rate=int(metadata["rate"]),
        stride_tics=int(metadata["stride_tics"]), npadding=int(metadata["npadding"]), loss=metadata["loss"],
        wav=metadata.get("wav"), ntics=metadata.get("ntics"),
        prevalences=None if prevalences is None else tuple(prevalences),
    )


def select_labels(probs: Probabilities, labels: Sequence[str]) -> Probabilities:
    """The same probabilities with only ``labels``, in that order."""
    missing = [x for x in labels if x not in probs.labels]
    if missing:
        raise KeyError(f"labels {missing} are not among the classified labels {list(probs.labels)}")
    index = [probs.labels.index(x) for x in labels]
    return replace(probs, values=probs.values[:, index], labels=tuple(labels))


def output_rate_is_whole(rate: int, stride_tics: int) -> bool:
    """True if probability WAVs can carry the output rate exactly."""
    return math.isclose(rate / stride_tics, round(rate / stride_tics))


# ---------------------------------------------------------------------------------------------
# a recording's outputs as one set, with the model that made them


def classify_manifest_name(wav_name: str) -> str:
    """``<wav>-classify.json``: which model made a recording's outputs, and those files' digests."""
    return f"{Path(wav_name).name}-classify.json"


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_classify_outputs(probs: Probabilities, out_dir: str | os.PathLike, wav_name: str | None = None, *,
                           model: Mapping, formats: Sequence[str] = ("wav", "npz"), npz_dtype: str = "float32"
                           ) -> list[Path]:
    """Write a recording's outputs as one set: SongExplorer's probability WAVs and/or the
    ``.npz``, and ``<wav>-classify.json`` (:func:`classify_manifest_name`) naming ``model``
    (``models.model_identity``: folder, checkpoint, digest) and each file's SHA-256.

    One writer per recording (``atomic.output_lock``; a second gets ``BusyError``); what a
    killed writer left (temporary files) is removed first. The manifest is rewritten as
    ``complete: false`` before any file and as ``complete: true`` after the last, so a kill part
    way leaves a set readers refuse (:func:`check_classify_outputs`) rather than one that mixes
    two models' files. Each file is itself written atomically.

    Returns:
        The output files written (not the manifest), WAVs in label order, then the ``.npz``.
    """
    wav_name = Path(wav_name or probs.wav or "").name
    if not wav_name:
        raise ValueError("write_classify_outputs needs the recording's name (wav_name=...)")
    unknown = sorted(set(formats) - {"wav", "npz"})
    if unknown or not formats:
        raise ValueError(f"formats must list some of ('wav', 'npz'), not {list(formats)}")
    out_dir = Path(out_dir)
    manifest_path = out_dir / classify_manifest_name(wav_name)
    names = [probability_wav_name(wav_name, label) for label in probs.labels] if "wav" in formats else []
    if "npz" in formats:
        names.append(probabilities_npz_name(wav_name))
    record = {"format": MANIFEST_FORMAT, "wav": wav_name, "model": dict(model), "labels": list(probs.labels),
              "rate": int(probs.rate), "stride_tics": int(probs.stride_tics), "loss": probs.loss, "complete": False,
              "files": {}}
    with output_lock(out_dir, what=f"classify ({wav_name})", name=f".{wav_name}.classify.lock"):
        remove_stale_temporaries(out_dir, [*names, manifest_path.name])
        _write_manifest(manifest_path, record)
        written = []
        if "wav" in formats:
            written += write_probability_wavs(probs, out_dir, wav_name)
        if "npz" in formats:
            written.append(write_probabilities(probs, out_dir / probabilities_npz_name(wav_name), dtype=npz_dtype))
        record.update(complete=True, files={path.name: file_digest(path) for path in written})
        _write_manifest(manifest_path, record)
    return written


def _write_manifest(path: Path, record: Mapping) -> None:
    with atomic_write(path, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1)


def read_classify_manifest(folder: str | os.PathLike, wav_name: str) -> dict | None:
    """A recording's ``<wav>-classify.json``, or None where classify wrote none (SongExplorer's
    own folders)."""
    path = Path(folder) / classify_manifest_name(wav_name)
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ClassifyError(f"{path}: unreadable ({error}); classify {wav_name} again") from error
    if not isinstance(record, dict) or record.get("format") != MANIFEST_FORMAT or not isinstance(
            record.get("files"), dict):
        raise ClassifyError(f"{path}: not a manifest written by `songexplorer classify`; classify {wav_name} again")
    return record


def _model_name(record: Mapping) -> str:
    model = record.get("model") or {}
    described = model.get("folder") or model.get("model_version") or "an unnamed model"
    if model.get("model_version") is not None and model.get("folder"):
        described = f"version {model['model_version']} ({model['folder']})"
    return f"{described}, checkpoint {model['checkpoint']}" if model.get("checkpoint") not in (None, "") \
        else str(described)


def check_classify_outputs(folder: str | os.PathLike, wav_name: str, paths: Sequence[str | os.PathLike]
                           ) -> dict | None:
    """Refuse to read ``paths`` (a recording's probability files) unless they are the set its
    manifest records: complete, each listed, each unchanged. Folders without a manifest
    (SongExplorer's) are read as they are. Returns the manifest (or None).

    Raises:
        ClassifyError: naming the file and the model, when classify was interrupted writing the
            set, or a file comes from another classification (a stale file of an earlier model,
            or one rewritten since).
    """
    record = read_classify_manifest(folder, wav_name)
    if record is None:
        return None
    manifest = Path(folder) / classify_manifest_name(wav_name)
    if not record.get("complete"):
        raise ClassifyError(f"{manifest}: classify was interrupted while writing the outputs of {wav_name} with "
                            f"{_model_name(record)}; they may mix two models. Classify the recording again")
    for path in map(Path, paths):
        digest = record["files"].get(path.name)
        if digest is None:
            raise ClassifyError(f"{path}: not among the outputs the last classification of {wav_name} wrote "
                                f"({_model_name(record)}, {manifest}); it is left from an earlier one. Classify the "
                                f"recording again with the outputs you need, or delete the file")
        if file_digest(path) != digest:
            raise ClassifyError(f"{path}: changed since classify wrote it with {_model_name(record)} ({manifest}); "
                                f"classify the recording again")
    return record
