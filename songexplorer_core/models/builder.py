"""The architecture registry and SongExplorer's convolutional network (``build_convolutional``),
its hidden layers, parameters and receptive field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from songexplorer_core.models.constants import ModelError
from songexplorer_core.models.spec import ModelSpec
from songexplorer_core.models.layers import _keras, _layer_classes

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
    """The architecture registered as ``name``: here, or by a plug-in of
    ``songexplorer.architectures`` (``songexplorer_core.plugins``), loaded on first use. The
    plug-in's object is an :class:`Architecture`, or a ``build`` function (registered here under
    the plug-in's name if importing it did not register it already; its taps then lie
    ``ModelSpec.stride_tics`` apart).

    Raises:
        ModelError: no such architecture, naming the registered and installed ones.
    """
    if name not in ARCHITECTURES:
        from songexplorer_core import plugins

        if name not in plugins.installed("architectures"):
            raise ModelError(f"unknown architecture {name!r}; registered: "
                             f"{sorted({*ARCHITECTURES, *plugins.names('architectures')})} (docs/plugins.md)")
        loaded = plugins.load("architectures", name)
        if name not in ARCHITECTURES:
            if isinstance(loaded, Architecture):
                ARCHITECTURES[name] = loaded
            elif callable(loaded):
                register_architecture(name)(loaded)
            else:
                raise ModelError(f"architecture plug-in {name!r} is {type(loaded).__name__}, not an Architecture or a "
                                 f"build function (docs/plugins.md)")
    return ARCHITECTURES[name]


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


