"""DSP kernels (periodic Hann window, DFT, mel filter bank, DCT as TensorFlow computes them) and
the custom Keras layers built on them (``Representation``, ``CropAdd``, ``Taps``; and
``AverageProbabilities``, an ensemble's output), registered
for ``.keras`` saving under package ``songexplorer``.
"""

from __future__ import annotations


import numpy as np

from songexplorer_core.models.constants import LOG_OFFSET

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

    class AverageProbabilities(keras.layers.Layer):
        """Members' logits ``[(batch, ntaps, nlabels), ...]`` -> logits of their mean probability:
        ``log(mean softmax)`` (exclusive: its softmax is the mean itself, the probabilities
        summing to 1) or ``logit(mean sigmoid)`` (overlapped). An ensemble's output layer
        (``songexplorer_core.studies.ensemble``); probabilities are clipped to [1e-30, 1 - 1e-7]
        before the logarithm."""

        def __init__(self, loss="exclusive", **kwargs):
            super().__init__(**kwargs)
            self.loss = loss

        def get_config(self):
            config = super().get_config()
            config.update(loss=self.loss)
            return config

        def call(self, inputs):
            if self.loss == "exclusive":
                probabilities = [ops.softmax(x, axis=-1) for x in inputs]
            else:
                probabilities = [ops.sigmoid(x) for x in inputs]
            mean = ops.mean(ops.stack(probabilities, axis=0), axis=0)
            if self.loss == "exclusive":
                return ops.log(ops.maximum(mean, 1e-30))
            mean = ops.clip(mean, 1e-30, 1.0 - 1e-7)
            return ops.log(mean) - ops.log1p(-mean)

        def compute_output_shape(self, input_shapes):
            return input_shapes[0]

    for cls in (Representation, CropAdd, Taps, AverageProbabilities):
        _LAYER_CLASSES[cls.__name__] = _register(cls)
    return _LAYER_CLASSES


