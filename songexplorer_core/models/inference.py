"""Inference: the same network with its slow convolutions evaluated as matrix products over time
(:func:`inference_network`), planned per layer (:func:`plan_convolution`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from songexplorer_core.models.constants import ModelError
from songexplorer_core.models.layers import _keras

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

    Nested models (an ensemble's members, ``songexplorer_core.studies.ensemble``) get their own
    inference networks: 1.4x less CPU than the plain ensemble on a 300 s recording (two members
    of the default recipe, outputs equal to 1e-5).

    Use it with ``training=False`` only (no gradients are meant to flow through it). Models that
    are not functional Keras models, or have nothing to replace, come back unchanged.
    """
    keras = _keras()
    plans = {id(layer): _conv_plan(layer) for layer in getattr(keras_model, "layers", ())}
    # an ensemble's members are nested models: each gets its own inference network
    nested = {id(layer) for layer in getattr(keras_model, "layers", ()) if isinstance(layer, keras.Model)}
    if all(plan[0] == "native" for plan in plans.values()) and not nested:
        return keras_model
    matmul_conv = _inference_classes()["MatmulConv2D"]

    def replace_layer(layer):
        if id(layer) in nested:
            return inference_network(layer)
        method, block = plans.get(id(layer), ("native", 1))
        return layer if method == "native" else matmul_conv(layer, method, block)

    try:
        return keras.models.clone_model(keras_model, clone_function=replace_layer)
    except (ValueError, TypeError):  # subclassed or otherwise not clonable: use it as it is
        return keras_model


