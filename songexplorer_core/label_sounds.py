"""Sounds clustered before any model exists: SongExplorer's "label sounds" workflow.

A project that holds only recordings has detections (``detect``) but no annotations and no
model. To give it its first labels, its detected sounds are embedded and clustered, and whole
clusters are labelled in the annotator's cluster view. Two embeddings need no trained model
(:data:`EMBEDDINGS`):

* ``untrained``: SongExplorer's way (its "label sounds" wizard trains 0 steps to make an
  untrained ``ckpt-0``, then runs ``activations`` on the detected sounds): a network of the
  project's architecture (the default recipe's :class:`~songexplorer_core.models.ModelSpec`)
  with weights drawn from ``seed`` (:func:`untrained_model`), looked at through
  :func:`songexplorer_core.activations.compute_activations` as a trained one would be.
* ``spectral``: each sound's log-power spectrogram over the same window a network would see
  (:func:`spectral_activations`), one Hann-windowed FFT of ``window_tics`` tics every
  ``hop_tics`` tics, in decibels. It is stored as the activations of a "model" with one hidden
  layer, ``spectrogram`` (index 1), and no output labels.

Both give an :class:`~songexplorer_core.activations.Activations`, so ``cluster`` embeds either
without knowing which; :data:`DEFAULT_EMBEDDING` is the one that clustered synthetic song best
(``benchmarks/label_sounds.py``, adjusted Rand index of the clusters against the song's truth;
docs/review.md, "Starting from zero").

:func:`truth_of_sounds` names each detected sound of a synthetic song by the truth it overlaps
most (for that measurement and its tests).

TensorFlow is imported only by the ``untrained`` embedding.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from songexplorer_core.activations import (
    Activations, ActivationsError, compute_activations, sound_table, sound_windows,
)
from songexplorer_core.annotations import COLUMNS
from songexplorer_core.audio import INT16_SCALE
from songexplorer_core.dataset import Geometry

#: Embeddings that need no trained model.
EMBEDDINGS = ("untrained", "spectral")
#: The one the ``label_sounds_job`` uses unless told otherwise (measured: docs/review.md).
DEFAULT_EMBEDDING = "spectral"
#: Layers of a spectral "model": the input (audio window), the spectrogram, an empty output.
SPECTRAL_LAYERS = ("input", "spectrogram", "output")
#: FFT length and hop of the spectral embedding, seconds (64 and 16 tics at 2500 Hz).
SPECTRAL_WINDOW_S = 0.0256
SPECTRAL_HOP_S = 0.0064


def untrained_model(*, rate: int, nchannels: int = 1, labels: Sequence[str] = ("time", "frequency", "neither"),
                    spec=None, seed: int | None = 0):
    """A :class:`~songexplorer_core.models.TrainedModel` with untrained weights drawn from
    ``seed`` (the same seed, the same network): SongExplorer's ``ckpt-0``.

    Args:
        rate: the recordings' tic rate, Hz.
        nchannels: audio channels.
        labels: its output labels (only the output layer's size depends on them; SongExplorer
            used the detector's labels).
        spec: the architecture (:class:`~songexplorer_core.models.ModelSpec`); default the
            default recipe's, the network the project's first training would build.
        seed: seeds the weights.
    """
    from songexplorer_core.models import new_trained_model  # noqa: PLC0415 (TensorFlow)
    from songexplorer_core.recipes import default_recipe  # noqa: PLC0415

    labels = [str(label) for label in labels] or ["sound"]
    if spec is None:
        spec = default_recipe(labels).model
    return new_trained_model(spec, labels=labels, rate=int(rate), nchannels=int(nchannels), seed=seed)


def spectrogram_features(windows: np.ndarray, *, window_tics: int, hop_tics: int) -> np.ndarray:
    """Log-power spectrograms of int16 ``windows`` ``[n, tics, nchannels]``: float32
    ``[n, frames, window_tics // 2 + 1, nchannels]`` in dB (10 log10 of the power of the
    Hann-windowed FFT of each frame, full scale = 1, floored at -120 dB)."""
    n, ntics, nchannels = windows.shape
    if ntics < window_tics:
        raise ActivationsError(f"windows of {ntics} tics are shorter than the FFT ({window_tics} tics)")
    starts = np.arange(0, ntics - window_tics + 1, hop_tics)
    taper = np.hanning(window_tics + 1)[:-1].astype(np.float32)  # periodic Hann
    index = starts[:, None] + np.arange(window_tics)[None, :]
    out = np.empty((n, len(starts), window_tics // 2 + 1, nchannels), dtype=np.float32)
    block = max(1, (1 << 24) // max(len(starts) * window_tics * 4, 1))
    for begin in range(0, n, block):
        frames = windows[begin: begin + block][:, index, :].astype(np.float32) / np.float32(INT16_SCALE)
        frames -= frames.mean(axis=2, keepdims=True)  # no DC: a sound's offset is not its song
        spectrum = np.fft.rfft(frames * taper[None, None, :, None], axis=2)
        power = (spectrum.real ** 2 + spectrum.imag ** 2) / np.float32(taper.sum() ** 2)
        out[begin: begin + block] = 10.0 * np.log10(np.maximum(power, 1e-12))
    return out


def spectral_activations(sounds: pd.DataFrame, recordings: Mapping[str, str | os.PathLike], *, rate: int,
                         nchannels: int = 1, context_tics: int | None = None, window_s: float = SPECTRAL_WINDOW_S,
                         hop_s: float = SPECTRAL_HOP_S, position: str = "centre", seed: int | None = 0,
                         settings: Mapping | None = None) -> Activations:
    """Each sound's spectrogram around it, as :class:`Activations` of layer 1 ``spectrogram``.

    Args:
        sounds: an interval table (``recording`` or ``wav`` names each recording in ``recordings``).
        recordings: recording key -> WAV path.
        rate: tic rate, Hz; nchannels: audio channels.
        context_tics: the window around each sound, tics (default the default recipe's
            network's context, 204.8 ms: the audio an untrained network would see).
        window_s, hop_s: FFT length and hop, seconds (rounded to tics; the FFT length to a
            power of two).
        position, seed: where in a sound its window is centred (as ``compute_activations``).
        settings: recorded in ``Activations.settings``.
    """
    if context_tics is None:
        from songexplorer_core.recipes import default_recipe  # noqa: PLC0415

        context_tics = default_recipe(["sound"]).model.context_tics(int(rate))
    window_tics = 1 << max(2, int(round(np.log2(max(window_s * rate, 4)))))
    hop_tics = max(1, int(round(hop_s * rate)))
    table = sound_table(sounds, source="sounds")
    if not len(table):
        raise ActivationsError("no sounds to embed: detect sounds first (the detections asset)")
    geometry = Geometry(context_tics=int(context_tics), shiftby_tics=0, stride_tics=1, parallelize=1)
    windows, padded, tics, keys = sound_windows(table, recordings, geometry, rate=int(rate), nchannels=int(nchannels),
                                                position=position, seed=seed)
    features = spectrogram_features(windows, window_tics=window_tics, hop_tics=hop_tics)
    result = table[list(COLUMNS)].assign(recording=keys, tic=tics, padded=padded)
    return Activations(
        sounds=result, layer_names=SPECTRAL_LAYERS, layers={1: features},
        logits=np.zeros((len(table), 0), np.float32), model_labels=(), loss="exclusive", rate=int(rate),
        context_tics=int(context_tics), shiftby_tics=0, stride_tics=1, requested=(1,),
        settings={"embedding": "spectral", "window_tics": window_tics, "hop_tics": hop_tics, "position": position,
                  "seed": seed, **dict(settings or {})})


def activations_without_model(embedding: str, sounds: pd.DataFrame, recordings: Mapping[str, str | os.PathLike], *,
                              rate: int, nchannels: int = 1, seed: int | None = 0, layers=None,
                              position: str = "centre", mini_batch: int = 256,
                              progress: Callable[[int, int], None] | None = None,
                              settings: Mapping | None = None) -> Activations:
    """Activations of ``sounds`` with an ``untrained`` network or a ``spectral`` embedding (see
    the module docstring); ``layers`` (``resolve_layers`` syntax) only for ``untrained``.

    Raises:
        ActivationsError: an unknown embedding, no sounds, a sound outside its recording.
    """
    settings = {"embedding": embedding, **dict(settings or {})}
    if embedding == "spectral":
        return spectral_activations(sounds, recordings, rate=rate, nchannels=nchannels, position=position, seed=seed,
                                    settings=settings)
    if embedding == "untrained":
        labels = sorted(set(sounds["label"].astype(str))) if len(sounds) else []
        model = untrained_model(rate=rate, nchannels=nchannels, labels=labels, seed=seed)
        return compute_activations(model, sounds, recordings, layers=layers, position=position, seed=seed,
                                   mini_batch=mini_batch, progress=progress,
                                   settings={**settings, "weights_seed": seed})
    raise ActivationsError(f"embedding must be one of {EMBEDDINGS} (or a trained model), not {embedding!r}")


def truth_of_sounds(sounds: pd.DataFrame, truth: pd.DataFrame, *, none: str = "ambient") -> np.ndarray:
    """The label of the truth interval each sound overlaps most (in tics), ``none`` when it
    overlaps none. Both are interval tables of one recording (inclusive tics)."""
    start = sounds["start"].to_numpy(np.int64)
    stop = sounds["stop"].to_numpy(np.int64)
    t_start = truth["start"].to_numpy(np.int64)
    t_stop = truth["stop"].to_numpy(np.int64)
    t_label = truth["label"].astype(str).to_numpy()
    out = np.full(len(start), none, dtype=object)
    for i in range(len(start)):
        overlap = np.minimum(stop[i], t_stop) - np.maximum(start[i], t_start) + 1
        best = int(np.argmax(overlap)) if len(overlap) else -1
        if best >= 0 and overlap[best] > 0:
            out[i] = t_label[best]
    return out
