"""Network architectures, their parameters, and trained-model folders.

SongExplorer's default network (its ``res-net`` plug-in, a Keras model named ``convolutional``)
turns audio into one decision per *context window*: a representation (waveform, spectrogram or
mel-cepstrum), a stack of valid 2-D convolutions, then "pan-frequency" convolutions, dropout, and
a final convolution whose kernel spans exactly one context's worth of frames. That makes it a
sliding-window classifier; here it is built **fully convolutionally**:

* input float32 ``(batch, ntics, nchannels)`` for any ``ntics >= context_tics``;
* output raw logits ``(batch, ntaps, nlabels)`` with
  ``ntaps = (ntics - context_tics) // stride_tics + 1``;
* tap ``j`` is the decision for the context window of ``context_tics`` tics starting at input tic
  ``j * stride_tics`` -- the window whose labelled point is tic
  ``j * stride_tics + context_tics // 2 + shiftby_tics`` (``shiftby`` > 0 puts more audio before
  the point).

``stride_tics`` is SongExplorer's *stride x downsample* (4 tics = 1.6 ms at 2500 Hz by default).
The same weights therefore serve training (``parallelize`` taps per example) and classification
(thousands of taps per call).

Architectures are plug-ins: :func:`register_architecture` adds one under a name, and
:func:`build_model` picks it from :attr:`ModelSpec.architecture`.

A trained model lives in a folder holding ``model.keras`` (the Keras 3 model) and ``model.json``
(labels, rate, channels, the :class:`ModelSpec`, the loss and the tic geometry), written
atomically by :func:`save_trained_model` and read by :func:`load_trained_model`.

TensorFlow/Keras are imported inside the functions that need them, so importing this module is
cheap.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

#: Version of the ``model.json`` layout written by :func:`save_trained_model`.
MODEL_FORMAT = "songexplorer-dagster model 1"
MODEL_FILE = "model.keras"
METADATA_FILE = "model.json"

REPRESENTATIONS = ("waveform", "spectrogram", "spectrogram-with-phase", "mel-cepstrum")
CONNECTIONS = ("plain", "residual")
DROPOUT_KINDS = ("unit", "map")
POOL_KINDS = ("none", "max", "average")
NORMALIZATIONS = ("none", "batch before ReLU", "batch after ReLU")
LOSSES = ("exclusive", "overlapped")

#: Added to mel power before the logarithm, as SongExplorer does.
LOG_OFFSET = 1e-6


class ModelError(ValueError):
    """A model specification, folder or file cannot be used; the message says which and why."""


# ---------------------------------------------------------------------------------------------
# parameters


def parse_layers(text: str | Iterable[int] | None, nconvlayers: int) -> tuple[int, ...]:
    """Parse SongExplorer's layer-list syntax (1-based conv layer numbers).

    ``"1,3"``, ``"1-3"``, ``"<=3"``, ``">=5"``, ``"<3"``, ``">5"`` and combinations separated by
    commas; ``""`` is no layer. Numbers above ``nconvlayers`` are dropped (as SongExplorer does).
    An iterable of integers is accepted as is.
    """
    if text is None:
        return ()
    if not isinstance(text, str):
        layers = [int(x) for x in text]
    else:
        layers = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            try:
                if part.startswith("<="):
                    layers.extend(range(1, int(part[2:]) + 1))
                elif part.startswith(">="):
                    layers.extend(range(int(part[2:]), nconvlayers + 1))
                elif part.startswith("<"):
                    layers.extend(range(1, int(part[1:])))
                elif part.startswith(">"):
                    layers.extend(range(int(part[1:]) + 1, nconvlayers + 1))
                elif "-" in part:
                    lo, hi = part.split("-")
                    layers.extend(range(int(lo), int(hi) + 1))
                else:
                    layers.append(int(part))
            except ValueError as error:
                raise ModelError(
                    f"layer list {text!r}: cannot read {part!r}; use 1-based layer numbers like "
                    f"'1,3', '1-3', '<=3' or '>=5'"
                ) from error
    if any(x < 1 for x in layers):
        raise ModelError(f"layer list {text!r}: layer numbers are 1-based (got {sorted(layers)})")
    return tuple(sorted({x for x in layers if x <= nconvlayers}))


def _pair(value, name: str, cast=int) -> tuple:
    if isinstance(value, str):
        parts = [p for p in re.split(r"[,x]", value) if p.strip()]
    else:
        parts = list(value)
    if len(parts) != 2:
        raise ModelError(f"{name} must be two numbers, like '7,7' (got {value!r})")
    return tuple(cast(p) for p in parts)


def _kernel_sizes(value) -> tuple[tuple[int, int], int]:
    """``"5x5,3"`` or ``((5, 5), 3)`` -> ``((5, 5), 3)``: the 2-D kernel (time x freq) and the
    time width of the pan-frequency kernel."""
    if isinstance(value, str):
        parts = value.split(",")
        if len(parts) != 2:
            raise ModelError(f"kernel_sizes must look like '5x5,3' (got {value!r})")
        first, second = parts
        first = _pair(first, "the 2-D kernel size") if "x" in first else (int(first), int(first))
        return first, int(second)
    first, second = value
    if isinstance(first, (int, np.integer)):
        first = (int(first), int(first))
    return (int(first[0]), int(first[1])), int(second)


@dataclass(frozen=True)
class ModelSpec:
    """Every architecture parameter of SongExplorer's convolutional network, with its defaults.

    Times are in milliseconds and frequencies in Hz, as in SongExplorer's GUI; tics are derived
    with the recording's rate (:meth:`context_tics`, :meth:`stride_tics`, ...).

    Attributes:
        architecture: registered architecture name (``"convolutional"``, alias ``"res-net"``).
        representation: ``waveform``, ``spectrogram``, ``spectrogram-with-phase`` or ``mel-cepstrum``.
        window_ms: STFT frame length, ms; must be a power of two in tics (6.4 ms = 16 tics).
        stride_ms: STFT hop, ms (1.6 ms = 4 tics).
        mel_dct: number of mel filters, number of DCT coefficients kept (mel-cepstrum only).
        range_hz: ``(low, high)`` band kept from the spectrogram, Hz; ``None`` keeps all.
        nconvlayers: maximum number of convolutional layers.
        kernel_sizes: ``((time, freq), time)``: the 2-D kernel, then the pan-frequency kernel's width.
        nfeatures: feature maps of the 2-D stage and of the pan-frequency stage.
        stride_time, stride_freq: 1-based conv layers with stride 2 in time / frequency.
        dilate_time, dilate_freq: 1-based conv layers from which the dilation doubles.
        pool_kind: ``none``, ``max`` or ``average`` pooling after the convolutions.
        pool_size: ``(time, freq)`` pool size (= pool stride).
        denselayers: units of extra "dense" layers before the output.
        connection: ``plain`` or ``residual``.
        dropout_kind: ``unit`` (``Dropout``) or ``map`` (``SpatialDropout2D``, whole feature maps).
        dropout_rate: fraction dropped after the last conv layer and between dense layers (0.5 = 50 %).
        normalization: ``none``, ``batch before ReLU`` or ``batch after ReLU``.
        context_ms: audio seen for one decision, ms (204.8 ms = 512 tics at 2500 Hz).
        shiftby_ms: how far the labelled point lies after the window's centre, ms
            (positive = more audio before the point).
    """

    architecture: str = "convolutional"
    representation: str = "mel-cepstrum"
    window_ms: float = 6.4
    stride_ms: float = 1.6
    mel_dct: tuple[int, int] = (7, 7)
    range_hz: tuple[float, float] | None = None
    nconvlayers: int = 2
    kernel_sizes: tuple[tuple[int, int], int] = ((5, 5), 3)
    nfeatures: tuple[int, int] = (64, 64)
    stride_time: tuple[int, ...] = ()
    stride_freq: tuple[int, ...] = ()
    dilate_time: tuple[int, ...] = ()
    dilate_freq: tuple[int, ...] = ()
    pool_kind: str = "none"
    pool_size: tuple[int, int] = (2, 2)
    denselayers: tuple[int, ...] = ()
    connection: str = "plain"
    dropout_kind: str = "unit"
    dropout_rate: float = 0.5
    normalization: str = "none"
    context_ms: float = 204.8
    shiftby_ms: float = 0.0

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        set_("nconvlayers", int(self.nconvlayers))
        set_("mel_dct", _pair(self.mel_dct, "mel_dct"))
        if self.range_hz is not None and self.range_hz != "":
            lo_hi = self.range_hz.split("-") if isinstance(self.range_hz, str) else self.range_hz
            set_("range_hz", _pair(lo_hi, "range_hz", float))
        else:
            set_("range_hz", None)
        set_("kernel_sizes", _kernel_sizes(self.kernel_sizes))
        set_("nfeatures", _pair(self.nfeatures, "nfeatures"))
        for name in ("stride_time", "stride_freq", "dilate_time", "dilate_freq"):
            set_(name, parse_layers(getattr(self, name), self.nconvlayers))
        set_("pool_size", _pair(self.pool_size, "pool_size"))
        dense = self.denselayers
        if isinstance(dense, str):
            dense = [d for d in dense.split(",") if d.strip()]
        set_("denselayers", tuple(int(d) for d in dense))
        normalization = {"before": "batch before ReLU", "after": "batch after ReLU"}.get(
            self.normalization, self.normalization)
        set_("normalization", normalization)
        set_("window_ms", float(self.window_ms))
        set_("stride_ms", float(self.stride_ms))
        set_("dropout_rate", float(self.dropout_rate))
        set_("context_ms", float(self.context_ms))
        set_("shiftby_ms", float(self.shiftby_ms))
        self._check_choices()

    def _check_choices(self) -> None:
        for name, allowed in (("representation", REPRESENTATIONS), ("connection", CONNECTIONS),
                              ("dropout_kind", DROPOUT_KINDS), ("pool_kind", POOL_KINDS),
                              ("normalization", NORMALIZATIONS)):
            if getattr(self, name) not in allowed:
                raise ModelError(f"{name} must be one of {allowed}, not {getattr(self, name)!r}")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ModelError(f"dropout_rate is a fraction in [0, 1), not {self.dropout_rate}")
        if self.nconvlayers < 0:
            raise ModelError(f"nconvlayers must be >= 0, not {self.nconvlayers}")
        if min(self.nfeatures) < 1 or min(self.kernel_sizes[0]) < 1 or self.kernel_sizes[1] < 1:
            raise ModelError(f"nfeatures {self.nfeatures} and kernel_sizes {self.kernel_sizes} must be positive")
        if self.mel_dct[1] > self.mel_dct[0] or min(self.mel_dct) < 1:
            raise ModelError(f"mel_dct {self.mel_dct}: the number of DCT coefficients must be between 1 "
                             f"and the number of mel filters")
        both = set(self.stride_time + self.stride_freq) & set(self.dilate_time + self.dilate_freq)
        if both:
            raise ModelError(f"conv layers {sorted(both)} both stride and dilate; a layer may do only one")
        if self.context_ms <= 0:
            raise ModelError(f"context_ms must be positive, not {self.context_ms}")

    # -- tic geometry -------------------------------------------------------------------------

    def context_tics(self, rate: int) -> int:
        """Tics seen for one decision: ``int(rate * context_ms / 1000)`` (512 at 2500 Hz)."""
        return int(rate * self.context_ms * 0.001)

    def shiftby_tics(self, rate: int) -> int:
        """``int(rate * shiftby_ms / 1000)``: tics between a window's centre and its labelled point."""
        return int(self.shiftby_ms * rate * 0.001)

    def window_tics(self, rate: int) -> int:
        """STFT frame, tics (1 for the waveform representation)."""
        return 1 if self.representation == "waveform" else int(round(rate * self.window_ms * 0.001))

    def hop_tics(self, rate: int) -> int:
        """STFT hop, tics (1 for the waveform representation)."""
        return 1 if self.representation == "waveform" else int(round(rate * self.stride_ms * 0.001))

    def stride_tics(self, rate: int) -> int:
        """Tics between output taps (SongExplorer's stride x downsample): the hop times 2 per
        time-strided conv layer, times the pooling size in time."""
        pool = self.pool_size[0] if self.pool_kind != "none" else 1
        return self.hop_tics(rate) * 2 ** len(self.stride_time) * pool

    def input_tics(self, rate: int, parallelize: int) -> int:
        """Input length giving ``parallelize`` taps: ``context + (parallelize - 1) * stride``."""
        return self.context_tics(rate) + (int(parallelize) - 1) * self.stride_tics(rate)

    # -- (de)serialisation --------------------------------------------------------------------

    def to_dict(self) -> dict:
        """Plain JSON-able dict (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict`; accepts SongExplorer's string forms too
        (``kernel_sizes="5x5,3"``, ``stride_time="1-3"``, ``dropout`` in percent, ...)."""
        values = dict(values)
        known = {f.name for f in fields(cls)}
        aliases = {"window": "window_ms", "stride": "stride_ms", "range": "range_hz",
                   "connection_type": "connection", "context": "context_ms", "shiftby": "shiftby_ms"}
        for old, new in aliases.items():
            if old in values and new not in values:
                values[new] = values.pop(old)
        if "dropout" in values and "dropout_rate" not in values:
            values["dropout_rate"] = float(values.pop("dropout")) / 100.0
        unknown = sorted(set(values) - known)
        if unknown:
            raise ModelError(f"unknown model parameter(s) {unknown}; known: {sorted(known)}")
        if "kernel_sizes" in values and isinstance(values["kernel_sizes"], list):
            values["kernel_sizes"] = _kernel_sizes(values["kernel_sizes"])
        return cls(**values)


# ---------------------------------------------------------------------------------------------
# custom layers (registered for .keras saving)


def _keras():
    import keras  # noqa: PLC0415 (lazy: keras pulls in TensorFlow)

    return keras


def hann_periodic(n: int) -> np.ndarray:
    """Periodic Hann window of ``n`` points (TensorFlow's ``tf.signal.hann_window`` default)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float64)


def dft_kernel(window_tics: int) -> np.ndarray:
    """``(window_tics, 2 * nfreqs)`` matrix giving the Hann-windowed DFT's real then imaginary
    parts of one frame (``nfreqs = window_tics // 2 + 1``), as ``tf.signal.stft`` computes them."""
    n = np.arange(window_tics)[:, None]
    k = np.arange(window_tics // 2 + 1)[None, :]
    angle = 2.0 * np.pi * n * k / window_tics
    window = hann_periodic(window_tics)[:, None]
    return np.concatenate([window * np.cos(angle), -window * np.sin(angle)], axis=1)


def hertz_to_mel(hertz):
    """HTK mel scale, as TensorFlow uses: ``1127 ln(1 + f/700)``."""
    return 1127.0 * np.log1p(np.asarray(hertz, dtype=np.float64) / 700.0)


def mel_matrix(nmel: int, nfreqs: int, rate: float, lower_hz: float = 0.0, upper_hz: float | None = None) -> np.ndarray:
    """``(nfreqs, nmel)`` triangular mel filter bank, as ``tf.signal.linear_to_mel_weight_matrix``
    builds it (the DC bin gets no weight)."""
    upper_hz = rate / 2.0 if upper_hz is None else upper_hz
    frequencies = np.linspace(0.0, rate / 2.0, nfreqs)[1:]
    bins_mel = hertz_to_mel(frequencies)[:, None]
    edges = np.linspace(hertz_to_mel(lower_hz), hertz_to_mel(upper_hz), nmel + 2)
    lower, centre, upper = edges[:-2][None, :], edges[1:-1][None, :], edges[2:][None, :]
    rising = (bins_mel - lower) / (centre - lower)
    falling = (upper - bins_mel) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.concatenate([np.zeros((1, nmel)), weights], axis=0)


def dct_matrix(nmel: int, ndct: int) -> np.ndarray:
    """``(nmel, ndct)`` DCT-II scaled as ``tf.signal.mfccs_from_log_mel_spectrograms`` does
    (``2 cos(pi k (2n+1) / 2N) / sqrt(2N)``), first ``ndct`` coefficients."""
    n = np.arange(nmel)[:, None]
    k = np.arange(ndct)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * n + 1) / (2.0 * nmel)) / np.sqrt(2.0 * nmel)


def _register(cls):
    return _keras().saving.register_keras_serializable(package="songexplorer")(cls)


_LAYER_CLASSES: dict[str, type] = {}


def _layer_classes() -> dict[str, type]:
    """Define (once) and return the custom Keras layers; deferred so keras is imported lazily."""
    if _LAYER_CLASSES:
        return _LAYER_CLASSES
    keras = _keras()
    ops = keras.ops

    class Representation(keras.layers.Layer):
        """Audio ``(batch, ntics, nchannels)`` -> ``(batch, frames, nfreqs, nchannels')``.

        ``kind``: ``waveform`` (frames = tics, one "frequency"), ``spectrogram`` (STFT magnitude,
        periodic Hann window of ``window_tics``, hop ``hop_tics``, no padding, optional band
        slice), ``spectrogram-with-phase`` (real and imaginary parts as channels) or
        ``mel-cepstrum`` (mel filter bank, ``log(x + 1e-6)``, DCT-II, first ``ndct``
        coefficients). Frames = ``1 + (ntics - window_tics) // hop_tics``. No trainable weights.
        """

        def __init__(self, kind="mel-cepstrum", window_tics=16, hop_tics=4, rate=2500, nmel=7, ndct=7,
                     band=None, **kwargs):
            super().__init__(**kwargs)
            self.kind = kind
            self.window_tics = int(window_tics)
            self.hop_tics = int(hop_tics)
            self.rate = int(rate)
            self.nmel = int(nmel)
            self.ndct = int(ndct)
            self.band = None if band is None else [int(band[0]), int(band[1])]
            if kind != "waveform":
                self._dft = dft_kernel(self.window_tics)[:, None, :].astype(np.float32)
            if kind == "mel-cepstrum":
                mel = mel_matrix(self.nmel, self.window_tics // 2 + 1, self.rate)
                self._mel = mel.astype(np.float32)
                self._dct = dct_matrix(self.nmel, self.ndct).astype(np.float32)

        def get_config(self):
            config = super().get_config()
            config.update(kind=self.kind, window_tics=self.window_tics, hop_tics=self.hop_tics,
                          rate=self.rate, nmel=self.nmel, ndct=self.ndct, band=self.band)
            return config

        def _nfreqs_out(self):
            if self.kind == "waveform":
                return 1
            if self.kind == "mel-cepstrum":
                return self.ndct
            nfreqs = self.window_tics // 2 + 1
            return self.band[1] if self.band else nfreqs

        def compute_output_shape(self, input_shape):
            batch, ntics, nchannels = input_shape
            if self.kind == "waveform":
                return (batch, ntics, 1, nchannels)
            frames = None if ntics is None else 1 + (ntics - self.window_tics) // self.hop_tics
            channels = None if nchannels is None else nchannels * (2 if self.kind == "spectrogram-with-phase" else 1)
            return (batch, frames, self._nfreqs_out(), channels)

        def call(self, inputs):
            if self.kind == "waveform":
                return ops.expand_dims(inputs, 2)
            shape = ops.shape(inputs)
            batch, ntics, nchannels = shape[0], shape[1], shape[2]
            # one channel at a time through a strided 1-D convolution with the DFT basis
            x = ops.reshape(ops.transpose(inputs, (0, 2, 1)), (-1, ntics, 1))
            spectrum = ops.conv(x, ops.convert_to_tensor(self._dft), strides=self.hop_tics, padding="valid")
            nfreqs = self.window_tics // 2 + 1
            real, imag = spectrum[..., :nfreqs], spectrum[..., nfreqs:]
            if self.kind == "spectrogram-with-phase":
                parts = [real, imag]
            else:
                magnitude = ops.sqrt(real * real + imag * imag)
                if self.kind == "mel-cepstrum":
                    mel = ops.matmul(magnitude, ops.convert_to_tensor(self._mel))
                    magnitude = ops.matmul(ops.log(mel + LOG_OFFSET), ops.convert_to_tensor(self._dct))
                parts = [magnitude]
            out = []
            for part in parts:
                if self.band and self.kind != "mel-cepstrum":
                    part = part[..., self.band[0]: self.band[0] + self.band[1]]
                width = part.shape[-1]
                part = ops.reshape(part, (batch, nchannels, -1, width))
                out.append(ops.transpose(part, (0, 2, 3, 1)))
            return out[0] if len(out) == 1 else ops.concatenate(out, axis=-1)

    class CropAdd(keras.layers.Layer):
        """Residual connection: add the centre of ``bypass`` (cropped in time and frequency to
        the shape of ``x``) to ``x``."""

        def call(self, inputs):
            x, bypass = inputs
            xs, bs = ops.shape(x), ops.shape(bypass)
            t0 = (bs[1] - xs[1]) // 2
            f0 = (bs[2] - xs[2]) // 2
            return x + bypass[:, t0: t0 + xs[1], f0: f0 + xs[2], :]

        def compute_output_shape(self, input_shapes):
            return input_shapes[0]

    class Taps(keras.layers.Layer):
        """``(batch, ntaps', 1, nlabels)`` -> ``(batch, ntaps, nlabels)``, keeping exactly
        ``ntaps = (ntics - context_tics) // stride_tics + 1`` taps of an input of ``ntics``
        (pooling can leave one more tap whose window would reach past the input)."""

        def __init__(self, context_tics=512, stride_tics=4, **kwargs):
            super().__init__(**kwargs)
            self.context_tics = int(context_tics)
            self.stride_tics = int(stride_tics)

        def get_config(self):
            config = super().get_config()
            config.update(context_tics=self.context_tics, stride_tics=self.stride_tics)
            return config

        def call(self, inputs):
            logits, audio = inputs
            ntaps = (ops.shape(audio)[1] - self.context_tics) // self.stride_tics + 1
            return ops.squeeze(logits, axis=2)[:, :ntaps, :]

        def compute_output_shape(self, input_shapes):
            logits_shape, audio_shape = input_shapes
            ntics = audio_shape[1]
            ntaps = None if ntics is None else (ntics - self.context_tics) // self.stride_tics + 1
            return (logits_shape[0], ntaps, logits_shape[3])

    for cls in (Representation, CropAdd, Taps):
        _LAYER_CLASSES[cls.__name__] = _register(cls)
    return _LAYER_CLASSES


# ---------------------------------------------------------------------------------------------
# architecture registry


@dataclass(frozen=True)
class Architecture:
    """A registered architecture: ``build`` makes the Keras model, ``stride_tics`` says how many
    tics apart its output taps are for a given spec and rate."""

    name: str
    build: Callable[..., Any]
    stride_tics: Callable[[ModelSpec, int], int]


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(name: str, *aliases: str, stride_tics: Callable[[ModelSpec, int], int] | None = None):
    """Decorator registering ``build(spec, *, labels, rate, nchannels, seed) -> keras.Model``
    under ``name`` (and aliases). ``stride_tics(spec, rate)`` defaults to
    :meth:`ModelSpec.stride_tics`. The model must follow the fully convolutional contract of
    this module (input ``(batch, None, nchannels)``, output ``(batch, ntaps, nlabels)``)."""

    def decorator(build):
        entry = Architecture(name=name, build=build,
                             stride_tics=stride_tics or (lambda spec, rate: spec.stride_tics(rate)))
        for key in (name, *aliases):
            ARCHITECTURES[key] = entry
        return build

    return decorator


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ModelError(f"unknown architecture {name!r}; registered: {sorted(ARCHITECTURES)}") from None


def _seeds(seed: int | None):
    """An endless supply of per-layer seeds derived from ``seed`` (``None``: nondeterministic)."""
    if seed is None:
        while True:
            yield None
    sequence = np.random.SeedSequence(int(seed))
    while True:
        yield int(sequence.spawn(1)[0].generate_state(1)[0] & 0x7FFFFFFF)


def check_geometry(spec: ModelSpec, rate: int) -> None:
    """Refuse specs SongExplorer refuses: a window that is not a power of two in tics, a
    non-integer output rate, or a context shorter than the window."""
    if spec.representation != "waveform":
        window = spec.window_tics(rate)
        if window < 2 or window & (window - 1):
            lower = 2 ** int(math.floor(math.log2(max(window, 2))))
            raise ModelError(
                f"window_ms={spec.window_ms} is {window} tics at {rate} Hz; it must be a power of two "
                f"in tics: try {lower / rate * 1000:g} ms ({lower} tics) or {2 * lower / rate * 1000:g} ms "
                f"({2 * lower} tics)")
        if spec.hop_tics(rate) < 1:
            raise ModelError(f"stride_ms={spec.stride_ms} is less than one tic at {rate} Hz")
    output_rate = rate / spec.stride_tics(rate)
    if output_rate != round(output_rate):
        raise ModelError(
            f"the output tic rate {rate} Hz / {spec.stride_tics(rate)} tics = {output_rate:g} Hz is not an "
            f"integer; change stride_ms or the time-strided layers")
    if spec.context_tics(rate) < spec.window_tics(rate):
        raise ModelError(f"context_ms={spec.context_ms} is shorter than the window ({spec.window_ms} ms)")


def _convolutional_stride(spec: ModelSpec, rate: int) -> int:
    return spec.stride_tics(rate)


@register_architecture("convolutional", "res-net", stride_tics=_convolutional_stride)
def build_convolutional(spec: ModelSpec, *, labels: Sequence[str], rate: int, nchannels: int = 1,
                        seed: int | None = None):
    """SongExplorer's ``res-net`` plug-in (Keras name ``convolutional``), fully convolutional.

    Layer names, for extracting hidden activations: ``input``, ``representation``,
    ``conv1`` ... ``convK`` (pre-activation; ``convK_sum`` when a residual is added),
    ``relu1`` ..., ``dropout``, ``pool``, ``dense1`` ... (extra dense layers), ``output`` (the
    final convolution, pre-reshape) and ``logits``. :func:`hidden_layer_names` lists them in
    SongExplorer's order.
    """
    keras = _keras()
    layers = keras.layers
    custom = _layer_classes()
    check_geometry(spec, rate)
    nlabels = len(labels)
    if nlabels < 1:
        raise ModelError("a model needs at least one label")
    context = spec.context_tics(rate)
    window, hop = spec.window_tics(rate), spec.hop_tics(rate)
    seeds = _seeds(seed)

    def conv(filters, kernel, strides, dilation, name):
        return layers.Conv2D(filters, kernel, strides=strides, dilation_rate=dilation, padding="valid",
                             kernel_initializer=keras.initializers.GlorotUniform(seed=next(seeds)),
                             name=name)

    inputs = keras.Input(shape=(None, int(nchannels)), dtype="float32", name="input")
    band = None
    nfreqs = 1 if spec.representation == "waveform" else window // 2 + 1
    if spec.representation in ("spectrogram", "spectrogram-with-phase") and spec.range_hz:
        lo, hi = spec.range_hz
        nyquist = rate / 2
        lo, hi = max(0.0, lo), min(hi, nyquist)
        if hi <= lo:
            raise ModelError(f"range_hz {spec.range_hz}: the band is empty below the Nyquist frequency {nyquist:g} Hz")
        band = [int(round(nfreqs * lo / nyquist)), max(1, int(round(nfreqs * (hi - lo) / nyquist)))]
        band[1] = min(band[1], nfreqs - band[0])
    x = custom["Representation"](kind=spec.representation, window_tics=window, hop_tics=hop, rate=rate,
                                 nmel=spec.mel_dct[0], ndct=spec.mel_dct[1], band=band,
                                 name="representation")(inputs)
    freq_width = x.shape[2]
    noutput = (context - window) // hop + 1  # frames of one context window

    def dilation(layer):  # 1-based layer number
        return (2 ** sum(d <= layer for d in spec.dilate_time), 2 ** sum(d <= layer for d in spec.dilate_freq))

    iconv = 0
    bypass = None

    def activation(conv_out, layer):
        if spec.normalization == "batch before ReLU":
            conv_out = layers.BatchNormalization(name=f"batchnorm{layer}")(conv_out)
        out = layers.ReLU(name=f"relu{layer}")(conv_out)
        if spec.normalization == "batch after ReLU":
            out = layers.BatchNormalization(name=f"batchnorm{layer}")(out)
        return out

    # 2-D stage
    (kt, kf), k1 = spec.kernel_sizes
    while iconv < spec.nconvlayers:
        layer = iconv + 1
        dt, df = dilation(layer)
        kt_d, kf_d = (kt - 1) * dt + 1, (kf - 1) * df + 1
        if not (freq_width >= kf_d and noutput >= kt_d):
            break
        if spec.connection == "residual" and iconv % 2 != 0:
            bypass = x
        strides = (2 if layer in spec.stride_time else 1, 2 if layer in spec.stride_freq else 1)
        y = conv(spec.nfeatures[0], (kt, kf), strides, (dt, df), f"conv{layer}")(x)
        if spec.connection == "residual" and iconv % 2 == 0 and iconv > 1 and bypass is not None \
                and bypass.shape[3] == y.shape[3]:
            y = custom["CropAdd"](name=f"conv{layer}_sum")([y, bypass])
        x = activation(y, layer)
        freq_width = x.shape[2]
        noutput = math.ceil((noutput - kt_d + 1) / strides[0])
        iconv += 1

    # pan-frequency stage
    while iconv < spec.nconvlayers:
        layer = iconv + 1
        dt, _ = dilation(layer)
        k_d = (k1 - 1) * dt + 1
        if noutput < k_d:
            break
        if spec.connection == "residual" and iconv % 2 != 0:
            bypass = x
        strides = (2 if layer in spec.stride_time else 1, 1)
        y = conv(spec.nfeatures[1], (k1, freq_width), strides, (dt, 1), f"conv{layer}")(x)
        if spec.connection == "residual" and iconv % 2 == 0 and iconv > 1 and bypass is not None \
                and bypass.shape[2] == y.shape[2] and bypass.shape[3] == y.shape[3]:
            y = custom["CropAdd"](name=f"conv{layer}_sum")([y, bypass])
        x = activation(y, layer)
        freq_width = x.shape[2]
        noutput = math.ceil((noutput - k_d + 1) / strides[0])
        iconv += 1

    def dropout(tensor, name):
        if spec.dropout_rate <= 0:
            return tensor
        kind = layers.SpatialDropout2D if spec.dropout_kind == "map" else layers.Dropout
        return kind(spec.dropout_rate, seed=next(seeds), name=name)(tensor)

    x = dropout(x, "dropout")
    if spec.pool_kind != "none":
        pool = layers.MaxPooling2D if spec.pool_kind == "max" else layers.AveragePooling2D
        size = (spec.pool_size[0], min(spec.pool_size[1], freq_width))
        x = pool(pool_size=size, strides=size, padding="valid", name="pool")(x)
        freq_width = x.shape[2]
        noutput = noutput // spec.pool_size[0]
    if noutput < 1:
        raise ModelError(
            f"the context ({spec.context_ms} ms = {context} tics) is too short for these layers: nothing "
            f"is left for the output layer; lengthen context_ms or use fewer/smaller kernels")

    for idense, units in enumerate((*spec.denselayers, nlabels)):
        last = idense == len(spec.denselayers)
        if idense > 0:
            x = layers.ReLU(name=f"dense{idense}_relu")(x)
            x = dropout(x, f"dense{idense}_dropout")
        kernel = (noutput if idense == 0 else 1, freq_width)
        x = conv(units, kernel, (1, 1), (1, 1), "output" if last else f"dense{idense + 1}")(x)
        freq_width = x.shape[2]
    stride = spec.stride_tics(rate)
    logits = custom["Taps"](context_tics=context, stride_tics=stride, name="logits")([x, inputs])
    return keras.Model(inputs=inputs, outputs=logits, name="convolutional")


def hidden_layer_names(keras_model) -> list[str]:
    """Names of the layers whose outputs SongExplorer's Activations stores, in its order:
    ``input``, ``representation``, each conv pre-activation (``convK`` or ``convK_sum``), each
    extra dense layer, ``output``."""
    names = [layer.name for layer in keras_model.layers]
    hidden = [n for n in ("input", "representation") if n in names]
    convs = sorted((n for n in names if re.fullmatch(r"conv\d+", n)), key=lambda n: int(n[4:]))
    for name in convs:
        hidden.append(f"{name}_sum" if f"{name}_sum" in names else name)
    hidden += sorted((n for n in names if re.fullmatch(r"dense\d+", n)), key=lambda n: int(n[5:]))
    if "output" in names:
        hidden.append("output")
    return hidden


def build_model(spec: ModelSpec, *, labels: Sequence[str], rate: int, nchannels: int = 1,
                seed: int | None = None):
    """Build the (untrained) Keras model that ``spec.architecture`` registers.

    Args:
        spec: the architecture parameters.
        labels: output labels, in output order.
        rate: the recordings' tic rate, Hz.
        nchannels: audio channels.
        seed: initialises the weights (and dropout) reproducibly; ``None`` draws fresh ones.

    Returns:
        A ``keras.Model`` taking float32 ``(batch, ntics, nchannels)`` (any ``ntics >= context``)
        and returning raw logits ``(batch, (ntics - context_tics) // stride_tics + 1, nlabels)``.
    """
    entry = get_architecture(spec.architecture)
    return entry.build(spec, labels=list(labels), rate=int(rate), nchannels=int(nchannels), seed=seed)


def count_parameters(keras_model) -> int:
    """Number of trainable parameters (61 443 for the tutorial network with three labels)."""
    return int(sum(int(np.prod(v.shape)) for v in keras_model.trainable_weights))


def receptive_field(spec: ModelSpec, rate: int) -> tuple[int, int]:
    """SongExplorer's logged receptive field of the conv stack: ``(tics, frequency bins)``
    (28 tics and 5 bins for the tutorial network)."""
    (kt, kf), k1 = spec.kernel_sizes
    field_t, field_f, strides_t, strides_f = 1, 1, 0, 0
    for layer in range(1, spec.nconvlayers + 1):
        dt = 2 ** sum(d <= layer for d in spec.dilate_time)
        df = 2 ** sum(d <= layer for d in spec.dilate_freq)
        two_d = layer <= _n2d_layers(spec, rate)
        k_t = ((kt if two_d else k1) - 1) * dt + 1
        field_t += (k_t - 1) * 2 ** strides_t
        if two_d:
            field_f += ((kf - 1) * df) * 2 ** strides_f
            strides_f += layer in spec.stride_freq
        strides_t += layer in spec.stride_time
    return field_t * spec.hop_tics(rate), field_f


def _n2d_layers(spec: ModelSpec, rate: int) -> int:
    """How many conv layers the 2-D stage gets (the rest are pan-frequency)."""
    window, hop = spec.window_tics(rate), spec.hop_tics(rate)
    if spec.representation == "waveform":
        width = 1
    elif spec.representation == "mel-cepstrum":
        width = spec.mel_dct[1]
    else:
        width = window // 2 + 1
    noutput = (spec.context_tics(rate) - window) // hop + 1
    (kt, kf), _ = spec.kernel_sizes
    n = 0
    while n < spec.nconvlayers:
        layer = n + 1
        dt = 2 ** sum(d <= layer for d in spec.dilate_time)
        df = 2 ** sum(d <= layer for d in spec.dilate_freq)
        kt_d, kf_d = (kt - 1) * dt + 1, (kf - 1) * df + 1
        if width < kf_d or noutput < kt_d:
            break
        sf = 2 if layer in spec.stride_freq else 1
        st = 2 if layer in spec.stride_time else 1
        width = (width - kf_d) // sf + 1
        noutput = math.ceil((noutput - kt_d + 1) / st)
        n += 1
    return n


# ---------------------------------------------------------------------------------------------
# inference: the same network with its convolutions evaluated as matrix products over time

#: A convolution with fewer output columns than this (``output width x filters``, 3 for the
#: tutorial network's output layer) and a kernel of at least ``LONG_KERNEL_FRAMES`` frames is
#: evaluated in blocks of frames (``"blocked"``).
FEW_OUTPUT_COLUMNS = 32
LONG_KERNEL_FRAMES = 8
#: Most extra multiply-adds ``"blocked"`` may spend, as a fraction of the convolution's own.
MOST_BLOCKED_WASTE = 0.25
#: A convolution whose kernel holds at most this many weights per filter (5 x 5 x 1 = 25 for the
#: tutorial network's first layer) is evaluated as one matrix product of patches (``"im2col"``).
MOST_IM2COL_WEIGHTS = 64
#: ... provided its input is at most this many times as wide as the kernel.
MOST_IM2COL_WIDTH_RATIO = 1.5

INFERENCE_METHODS = ("native", "im2col", "blocked")


def plan_convolution(kernel_shape: Sequence[int], input_width: int, *, strides: Sequence[int] = (1, 1),
                     dilation: Sequence[int] = (1, 1)) -> tuple[str, int]:
    """How :func:`inference_network` evaluates a valid, channels-last ``Conv2D``.

    Measured on the project's 2-core CPU (docs/classify-accuracy-ethogram.md, Speed), with
    TensorFlow's own kernels (oneDNN off, :mod:`songexplorer_core.compute`):

    * ``("blocked", S)`` for a long kernel (``LONG_KERNEL_FRAMES`` or more) with few output
      columns (fewer than ``FEW_OUTPUT_COLUMNS``; the tutorial output layer:
      119 frames x 64 features -> 3 labels, which TensorFlow runs at ~1/5 of the speed of the
      second conv layer): ``S`` consecutive output frames are computed together, so the work is
      one large matrix product plus a sum of ``ceil((kt + S - 1) / S)`` shifted slices.
      ``S`` is the largest block up to ``ceil(FEW_OUTPUT_COLUMNS / columns)`` costing at most
      ``MOST_BLOCKED_WASTE`` extra multiply-adds.
    * ``("im2col", 1)`` for a kernel with few weights on a narrow input (the tutorial first layer:
      5 x 5 x 1 on 7 cepstral coefficients): one matrix product of the ``kt`` frames each
      output frame sees.
    * ``("native", 1)`` otherwise (TensorFlow's convolution is already efficient, e.g. the
      tutorial's 3 x 3 x 64 -> 64 layer).

    Args:
        kernel_shape: ``(time, frequency, in channels, filters)``.
        input_width: frequency bins of the layer's input.
        strides, dilation: ``(time, frequency)``.

    Returns:
        ``(method, block)``, ``block`` = output frames per block (1 unless ``"blocked"``).
    """
    kt, kf, cin, cout = (int(n) for n in kernel_shape)
    (st, sf), (dt, df) = (int(s) for s in strides), (int(d) for d in dilation)
    wout = (int(input_width) - (kf - 1) * df - 1) // sf + 1
    if wout < 1 or kt < 1:
        return "native", 1
    columns = wout * cout
    if columns < FEW_OUTPUT_COLUMNS and kt >= LONG_KERNEL_FRAMES and st == 1 and dt == 1:
        for block in range(min(-(-FEW_OUTPUT_COLUMNS // columns), kt), 1, -1):
            nblocks = -(-(kt + block - 1) // block)
            if nblocks * block <= (1.0 + MOST_BLOCKED_WASTE) * kt:
                return "blocked", block
    if kt * kf * cin <= MOST_IM2COL_WEIGHTS and input_width <= MOST_IM2COL_WIDTH_RATIO * kf:
        return "im2col", 1
    return "native", 1


def _time_kernel(kernel, input_width: int, freq_stride: int, freq_dilation: int):
    """``(kt, kf, cin, cout)`` -> ``(kt, input_width * cin, output_width * cout)``: the 2-D kernel
    as a 1-D one over time whose input is a frame's whole width and whose output is every output
    frequency bin (zeros where a bin does not see an input bin)."""
    import tensorflow as tf  # noqa: PLC0415

    kt, kf, cin, cout = (int(n) for n in kernel.shape)
    wout = (input_width - (kf - 1) * freq_dilation - 1) // freq_stride + 1
    which = np.full((input_width, wout), kf, dtype=np.int32)  # kf: the zero slab appended below
    for out_bin in range(wout):
        for f in range(kf):
            which[out_bin * freq_stride + f * freq_dilation, out_bin] = f
    padded = tf.concat([kernel, tf.zeros((kt, 1, cin, cout), kernel.dtype)], axis=1)
    gathered = tf.transpose(tf.gather(padded, which, axis=1), (0, 1, 3, 2, 4))  # kt, w, cin, wout, cout
    return tf.reshape(gathered, (kt, input_width * cin, wout * cout)), wout


def _blocked_kernel(time_kernel, block: int):
    """``(kt, M, N)`` -> ``(block * M, nblocks * block * N)``, ``nblocks = ceil((kt + block - 1) /
    block)``: column ``(j, r, n)`` of row ``(s, m)`` holds ``time_kernel[j * block + s - r, m, n]``
    (zero outside ``[0, kt)``), so that block ``i`` of input frames times it, summed over ``j``
    at block ``i + j``, gives output frames ``i * block + r``."""
    import tensorflow as tf  # noqa: PLC0415

    kt, m, n = (int(x) for x in time_kernel.shape)
    nblocks = -(-(kt + block - 1) // block)
    j, s, r = np.meshgrid(np.arange(nblocks), np.arange(block), np.arange(block), indexing="ij")
    lag = j * block + s - r
    which = np.where((lag >= 0) & (lag < kt), lag, kt).astype(np.int32)  # kt: the zero slab
    padded = tf.concat([time_kernel, tf.zeros((1, m, n), time_kernel.dtype)], axis=0)
    gathered = tf.transpose(tf.gather(padded, which), (1, 3, 0, 2, 4))  # s, m, j, r, n
    return tf.reshape(gathered, (block * m, nblocks * block * n)), nblocks


def time_convolution(x, kernel, bias=None, *, strides: Sequence[int] = (1, 1), dilation: Sequence[int] = (1, 1),
                     method: str = "im2col", block: int = 1):
    """``Conv2D(padding="valid")`` of channels-last ``x`` computed as matrix products over time.

    The same result as ``tf.nn.conv2d(x, kernel, strides, "VALID", dilations=dilation) + bias``
    to float rounding (the sums run in another order), from the same weights.

    Args:
        x: float32 ``(batch, frames, width, in channels)``; ``frames`` may vary between calls,
            ``width`` and the channels must be known.
        kernel: ``(time, frequency, in channels, filters)``.
        bias: ``(filters,)`` or ``None``.
        strides, dilation: ``(time, frequency)``.
        method: ``"im2col"`` (one product of the stacked frames each output sees) or
            ``"blocked"`` (``block`` output frames per row of one product, then a sum of shifted
            slices; time stride and dilation 1 only). See :func:`plan_convolution`.
        block: output frames per block for ``"blocked"``.

    Returns:
        ``(batch, output frames, output width, filters)``.
    """
    import tensorflow as tf  # noqa: PLC0415

    (st, sf), (dt, df) = (int(s) for s in strides), (int(d) for d in dilation)
    kt, _, _, cout = (int(n) for n in kernel.shape)
    width = int(x.shape[2])
    time_kernel, wout = _time_kernel(kernel, width, sf, df)
    _, m, n = (int(v) for v in time_kernel.shape)
    shape = tf.shape(x)
    batch, frames = shape[0], shape[1]
    x = tf.reshape(x, (batch, frames, m))
    nout = tf.maximum((frames - (kt - 1) * dt - 1) // st + 1, 0)
    if method == "im2col":
        stop = st * (nout - 1) + 1
        patches = tf.concat([x[:, dt * k: dt * k + stop: st] for k in range(kt)], axis=-1)
        y = tf.matmul(tf.reshape(patches, (-1, kt * m)), tf.reshape(time_kernel, (kt * m, n)))
    elif method == "blocked":
        if st != 1 or dt != 1:
            raise ModelError(f"time_convolution: method 'blocked' needs time stride and dilation 1, "
                             f"not {st} and {dt}; use method='im2col'")
        block = int(block)
        weights, nblocks = _blocked_kernel(time_kernel, block)
        nrows = (nout + block - 1) // block
        need = (nrows + nblocks - 1) * block  # >= frames when nout > 0; the padding only feeds discarded frames
        x = tf.pad(x, [[0, 0], [0, tf.maximum(need - frames, 0)], [0, 0]])[:, :need]
        z = tf.matmul(tf.reshape(x, (-1, block * m)), weights)
        z = tf.reshape(z, (batch, nrows + nblocks - 1, nblocks, block * n))
        y = tf.add_n([z[:, j: j + nrows, j] for j in range(nblocks)])
        y = tf.reshape(y, (batch, nrows * block, n))[:, :nout]
    else:
        raise ModelError(f"time_convolution: method must be 'im2col' or 'blocked', not {method!r}")
    if bias is not None:
        y = tf.nn.bias_add(y, tf.tile(bias, [wout]))
    return tf.reshape(y, (batch, nout, wout, cout))


_INFERENCE_CLASSES: dict[str, type] = {}


def _inference_classes() -> dict[str, type]:
    """Define (once) the layer :func:`inference_network` puts in place of a ``Conv2D``."""
    if _INFERENCE_CLASSES:
        return _INFERENCE_CLASSES
    keras = _keras()

    class MatmulConv2D(keras.layers.Layer):
        """Evaluates a trained ``Conv2D`` (its own variables, not copies) with
        :func:`time_convolution`. For inference; not saved (the model keeps the ``Conv2D``)."""

        def __init__(self, conv, method: str, block: int = 1, **kwargs):
            super().__init__(name=f"{conv.name}_matmul", trainable=False, **kwargs)
            self.conv, self.method, self.block = conv, method, int(block)

        def call(self, inputs):
            conv = self.conv
            y = time_convolution(inputs, conv.kernel, conv.bias if conv.use_bias else None,
                                 strides=conv.strides, dilation=conv.dilation_rate, method=self.method,
                                 block=self.block)
            return conv.activation(y) if conv.activation is not None else y

        def compute_output_shape(self, input_shape):
            return self.conv.compute_output_shape(input_shape)

    _INFERENCE_CLASSES["MatmulConv2D"] = MatmulConv2D
    return _INFERENCE_CLASSES


def _conv_plan(layer) -> tuple[str, int]:
    """:func:`plan_convolution` for a Keras layer, ``("native", 1)`` for anything it does not cover."""
    keras = _keras()
    if type(layer) is not keras.layers.Conv2D:  # noqa: E721 (subclasses may change call)
        return "native", 1
    if layer.padding != "valid" or layer.data_format != "channels_last" or layer.groups != 1 \
            or layer.compute_dtype != "float32" or not layer.built:
        return "native", 1
    try:
        width = layer.input.shape[2]
    except (AttributeError, ValueError, IndexError):
        return "native", 1
    if width is None:
        return "native", 1
    return plan_convolution(tuple(layer.kernel.shape), int(width), strides=layer.strides,
                            dilation=layer.dilation_rate)


def inference_network(keras_model):
    """The same network for inference, its slow convolutions evaluated as matrix products.

    Each ``Conv2D`` that :func:`plan_convolution` does not leave ``"native"`` is replaced by a
    layer computing it with :func:`time_convolution` from the *same* variables; every other layer
    is the model's own. The outputs equal the model's to float rounding (1e-6 relative), for any
    input length; the model itself, its weights and its ``.keras`` file are not changed. On the
    tutorial network this halves the CPU time of classification (docs/classify-accuracy-ethogram.md).

    Use it with ``training=False`` only (no gradients are meant to flow through it). Models that
    are not functional Keras models, or have nothing to replace, come back unchanged.
    """
    keras = _keras()
    plans = {id(layer): _conv_plan(layer) for layer in getattr(keras_model, "layers", ())}
    if all(plan[0] == "native" for plan in plans.values()):
        return keras_model
    matmul_conv = _inference_classes()["MatmulConv2D"]

    def replace_layer(layer):
        method, block = plans.get(id(layer), ("native", 1))
        return layer if method == "native" else matmul_conv(layer, method, block)

    try:
        return keras.models.clone_model(keras_model, clone_function=replace_layer)
    except (ValueError, TypeError):  # subclassed or otherwise not clonable: use it as it is
        return keras_model


# ---------------------------------------------------------------------------------------------
# trained models


@dataclass
class TrainedModel:
    """A Keras model with everything needed to use it on recordings.

    Attributes:
        keras_model: the fully convolutional network (raw logits out).
        labels: output labels, in output order (``labels.txt``).
        rate: tic rate of the recordings it was trained on, Hz.
        nchannels: audio channels.
        spec: its architecture parameters.
        loss: ``exclusive`` (softmax over labels) or ``overlapped`` (a sigmoid per label).
        context_tics, shiftby_tics, stride_tics: the tap geometry (see the module docstring).
    """

    keras_model: Any
    labels: list[str]
    rate: int
    nchannels: int
    spec: ModelSpec
    loss: str = "exclusive"
    context_tics: int = 0
    shiftby_tics: int = 0
    stride_tics: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.labels = [str(x) for x in self.labels]
        if self.loss not in LOSSES:
            raise ModelError(f"loss must be one of {LOSSES}, not {self.loss!r}")
        if not self.context_tics:
            self.context_tics = self.spec.context_tics(self.rate)
        if not self.shiftby_tics:
            self.shiftby_tics = self.spec.shiftby_tics(self.rate)
        if not self.stride_tics:
            self.stride_tics = get_architecture(self.spec.architecture).stride_tics(self.spec, self.rate)

    @property
    def output_rate(self) -> float:
        """Taps per second, Hz (625 for the defaults)."""
        return self.rate / self.stride_tics

    def input_tics(self, ntaps: int) -> int:
        """Input length giving ``ntaps`` output taps."""
        return self.context_tics + (int(ntaps) - 1) * self.stride_tics

    def metadata(self) -> dict:
        """What ``model.json`` holds."""
        return {
            "format": MODEL_FORMAT,
            "labels": list(self.labels),
            "rate": int(self.rate),
            "nchannels": int(self.nchannels),
            "loss": self.loss,
            "context_tics": int(self.context_tics),
            "shiftby_tics": int(self.shiftby_tics),
            "stride_tics": int(self.stride_tics),
            "spec": self.spec.to_dict(),
            "parameters": count_parameters(self.keras_model),
            **({"extra": self.extra} if self.extra else {}),
        }


def new_trained_model(spec: ModelSpec, *, labels: Sequence[str], rate: int, nchannels: int = 1,
                      loss: str = "exclusive", seed: int | None = None) -> TrainedModel:
    """An untrained :class:`TrainedModel` (freshly initialised weights)."""
    keras_model = build_model(spec, labels=labels, rate=rate, nchannels=nchannels, seed=seed)
    return TrainedModel(keras_model=keras_model, labels=list(labels), rate=int(rate), nchannels=int(nchannels),
                        spec=spec, loss=loss)


def _replace_folder(tmp: Path, folder: Path) -> None:
    """Move a finished temporary folder onto ``folder``, replacing any previous one."""
    if folder.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
        os.replace(folder, trash / folder.name)
        os.replace(tmp, folder)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, folder)


def write_into_new_folder(folder: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Run ``writer(tmp_folder)`` on a temporary folder beside ``folder``, then rename it to
    ``folder`` (replacing an old one): readers never see a half-written folder."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:12]}.tmp"
    tmp.mkdir()  # unlike mkdtemp, honours the umask (a checkpoint others may read)
    try:
        writer(tmp)
        _replace_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def write_trained_model_files(tm: TrainedModel, folder: Path) -> None:
    """Write ``model.keras`` and ``model.json`` into an existing folder (not atomic by itself)."""
    _layer_classes()
    tm.keras_model.save(folder / MODEL_FILE)
    (folder / METADATA_FILE).write_text(json.dumps(tm.metadata(), indent=1), encoding="utf-8")


def save_trained_model(tm: TrainedModel, folder: str | os.PathLike) -> Path:
    """Save ``folder/model.keras`` and ``folder/model.json`` atomically (a temporary folder,
    then a rename); an existing folder is replaced whole."""
    return write_into_new_folder(folder, lambda tmp: write_trained_model_files(tm, tmp))


def read_model_metadata(folder: str | os.PathLike) -> dict:
    """``model.json`` of a trained-model folder, checked; :class:`ModelError` names the folder."""
    folder = Path(folder)
    path = folder / METADATA_FILE
    if not folder.is_dir():
        raise ModelError(f"{folder}: no such trained-model folder (expected {METADATA_FILE} and {MODEL_FILE} in it)")
    if not path.is_file():
        raise ModelError(f"{folder}: not a trained-model folder: {METADATA_FILE} is missing "
                         f"(the checkpoint was not completely written; use another checkpoint or train again)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelError(f"{path}: corrupt model description ({error}); use another checkpoint or train again") from error
    required = ("format", "labels", "rate", "nchannels", "loss", "context_tics", "shiftby_tics", "stride_tics", "spec")
    missing = [k for k in required if k not in meta] if isinstance(meta, dict) else list(required)
    if missing:
        raise ModelError(f"{path}: corrupt model description: missing {missing}; use another checkpoint or train again")
    if meta["format"] != MODEL_FORMAT:
        raise ModelError(f"{path}: written as {meta['format']!r}, this version reads {MODEL_FORMAT!r}")
    return meta


def load_trained_model(folder: str | os.PathLike, *, compile: bool = False) -> TrainedModel:  # noqa: A002
    """Load a folder written by :func:`save_trained_model` (or a training checkpoint ``ckpt-N``).

    Raises:
        ModelError: naming the folder when ``model.json`` or ``model.keras`` is missing or corrupt.
    """
    folder = Path(folder)
    meta = read_model_metadata(folder)
    model_path = folder / MODEL_FILE
    if not model_path.is_file():
        raise ModelError(f"{folder}: {MODEL_FILE} is missing (the checkpoint was not completely written; "
                         f"use another checkpoint or train again)")
    keras = _keras()
    _layer_classes()
    try:
        keras_model = keras.saving.load_model(model_path, compile=compile)
    except Exception as error:  # noqa: BLE001 (zip, h5 and config errors all mean "corrupt")
        raise ModelError(f"{model_path}: corrupt or unreadable Keras model ({type(error).__name__}: {error}); "
                         f"use another checkpoint or train again") from error
    try:
        spec = ModelSpec.from_dict(meta["spec"])
    except (ModelError, TypeError, ValueError) as error:
        raise ModelError(f"{folder / METADATA_FILE}: corrupt model spec ({error})") from error
    return TrainedModel(keras_model=keras_model, labels=list(meta["labels"]), rate=int(meta["rate"]),
                        nchannels=int(meta["nchannels"]), spec=spec, loss=meta["loss"],
                        context_tics=int(meta["context_tics"]), shiftby_tics=int(meta["shiftby_tics"]),
                        stride_tics=int(meta["stride_tics"]), extra=dict(meta.get("extra", {})))


def write_labels_txt(labels: Sequence[str], path: str | os.PathLike) -> Path:
    """SongExplorer's ``labels.txt``: labels separated by ``\\n``, no trailing newline (atomic)."""
    from songexplorer_core.atomic import atomic_write  # noqa: PLC0415

    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("\n".join(labels))
    return Path(path)


def read_labels_txt(path: str | os.PathLike) -> list[str]:
    """Labels of a ``labels.txt`` (blank lines ignored)."""
    return [line.strip() for line in Path(path).read_text(encoding="utf-8").split("\n") if line.strip()]
