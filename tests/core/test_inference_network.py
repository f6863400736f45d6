"""Inference network: convolutions evaluated as matrix products give the Keras layers' results
from the same variables, for every architecture variant and input length, and classify the same."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from songexplorer_core import models  # noqa: E402
from songexplorer_core.classify import Classifier, classify_samples  # noqa: E402
from songexplorer_core.models import ModelError, ModelSpec  # noqa: E402

RATE = 2500
LABELS = ["mel-pulse", "mel-sine", "ambient"]


@pytest.fixture(scope="module")
def tutorial_model():
    return models.build_model(ModelSpec(), labels=LABELS, rate=RATE, seed=1)


def _audio(ntics, nchannels=1, batch=2, seed=0):
    return (np.random.default_rng(seed).normal(size=(batch, ntics, nchannels)) * 0.1).astype(np.float32)


def _relative_difference(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-6))


@pytest.mark.parametrize("kernel_shape, width, strides, dilation, method, block", [
    ((119, 1, 64, 3), 1, (1, 1), (1, 1), "blocked", 11),  # the tutorial output layer
    ((23, 1, 8, 3), 1, (1, 1), (1, 1), "blocked", 4),
    ((9, 2, 4, 5), 3, (1, 1), (1, 1), "blocked", 3),  # several output bins, a block not dividing the frames
    ((5, 5, 1, 64), 7, (1, 1), (1, 1), "im2col", 1),  # the tutorial first layer
    ((3, 3, 2, 6), 9, (2, 2), (1, 1), "im2col", 1),  # strided in time and frequency
    ((3, 3, 2, 6), 9, (1, 1), (2, 2), "im2col", 1),  # dilated in time and frequency
    ((1, 1, 16, 3), 1, (1, 1), (1, 1), "im2col", 1),  # a 1x1 "dense" layer
])
def test_time_convolution_equals_tensorflows_convolution(kernel_shape, width, strides, dilation, method, block):
    rng = np.random.default_rng(7)
    kernel = tf.constant(rng.normal(size=kernel_shape).astype(np.float32))
    bias = tf.constant(rng.normal(size=kernel_shape[3]).astype(np.float32))
    for frames in (kernel_shape[0] * dilation[0] + 3, 300, 301):
        x = tf.constant(rng.normal(size=(2, frames, width, kernel_shape[2])).astype(np.float32))
        expected = tf.nn.conv2d(x, kernel, strides, "VALID", dilations=dilation) + bias
        ours = models.time_convolution(x, kernel, bias, strides=strides, dilation=dilation, method=method,
                                       block=block)
        assert _relative_difference(expected, ours) < 1e-5


def test_blocked_needs_unit_time_stride():
    x = tf.zeros((1, 50, 1, 4))
    with pytest.raises(ModelError, match="stride and dilation 1"):
        models.time_convolution(x, tf.zeros((9, 1, 4, 3)), strides=(2, 1), method="blocked", block=4)


def test_plan_for_the_tutorial_layers():
    # the 119-frame output layer with 3 columns: blocks of 11 frames (12 blocks: 132/119 = 11 % extra work)
    assert models.plan_convolution((119, 1, 64, 3), 1) == ("blocked", 11)
    # the 5x5x1 first layer on 7 cepstral coefficients: one product of 35-value patches
    assert models.plan_convolution((5, 5, 1, 64), 7) == ("im2col", 1)
    # the 3x3x64 -> 64 layer: TensorFlow's own convolution is already efficient
    assert models.plan_convolution((3, 3, 64, 64), 3) == ("native", 1)
    # a short kernel with few columns is not blocked (a block would mostly multiply zeros)
    assert models.plan_convolution((1, 1, 16, 3), 1)[0] != "blocked"
    # a strided long kernel cannot be blocked
    assert models.plan_convolution((119, 1, 64, 3), 1, strides=(2, 1))[0] != "blocked"


def test_tutorial_inference_network_replaces_the_slow_layers_and_agrees(tutorial_model):
    fast = models.inference_network(tutorial_model)
    replaced = {layer.name for layer in fast.layers if type(layer).__name__ == "MatmulConv2D"}
    assert replaced == {"conv1_matmul", "output_matmul"}
    for ntics in (512, 513, 516, 764, 5_003):
        audio = _audio(ntics, seed=ntics)
        expected = tutorial_model(audio, training=False)
        assert _relative_difference(expected, fast(audio, training=False)) < 1e-5


@pytest.mark.parametrize("spec", [
    ModelSpec(context_ms=51.2, nfeatures=(8, 8), dropout_rate=0.0),
    ModelSpec(representation="waveform", nconvlayers=3, context_ms=20),
    ModelSpec(representation="spectrogram-with-phase"),
    ModelSpec(nconvlayers=5, connection="residual", kernel_sizes="3x3,3", nfeatures="32,32"),
    ModelSpec(nconvlayers=4, stride_time="2,3", kernel_sizes="3x3,3", stride_ms=2.0),
    ModelSpec(nconvlayers=3, dilate_time=">=2", kernel_sizes="3x3,3"),
    ModelSpec(stride_freq="1", kernel_sizes="3x3,3"),
    ModelSpec(pool_kind="max", pool_size="5,1", denselayers="16,8", normalization="before", dropout_kind="map"),
    ModelSpec(pool_kind="average", pool_size="2,2", stride_ms=2.0, normalization="after"),
], ids=["small", "waveform", "phase", "residual", "strided", "dilated", "freq-strided", "pool-dense-bn", "avgpool"])
def test_every_variant_gives_the_same_logits(spec):
    model = models.build_model(spec, labels=["a", "b"], rate=RATE, nchannels=2, seed=1)
    fast = models.inference_network(model)
    assert fast is not model  # every variant has an output layer worth replacing
    context, stride = spec.context_tics(RATE), spec.stride_tics(RATE)
    for ntics in (context, context + 1, context + 3 * stride + 1, context + 150 * stride + 3):
        audio = _audio(ntics, nchannels=2, seed=ntics)
        assert _relative_difference(model(audio, training=False), fast(audio, training=False)) < 1e-5


def test_the_model_and_its_file_are_unchanged_and_weights_are_shared(tutorial_model, tmp_path):
    untouched = models.build_model(ModelSpec(), labels=LABELS, rate=RATE, seed=2)
    model = models.build_model(ModelSpec(), labels=LABELS, rate=RATE, seed=2)
    fast = models.inference_network(model)
    audio = _audio(900)
    fast(audio, training=False)
    assert models.count_parameters(model) == 61443
    assert [type(layer).__name__ for layer in model.layers if layer.name in ("conv1", "output")] == ["Conv2D"] * 2
    # the saved .keras file is the one a model never given to inference_network gets
    files = {}
    for name, keras_model in (("untouched", untouched), ("used", model)):
        tm = models.TrainedModel(keras_model=keras_model, labels=LABELS, rate=RATE, nchannels=1, spec=ModelSpec())
        folder = models.save_trained_model(tm, tmp_path / name)
        with zipfile.ZipFile(folder / models.MODEL_FILE) as archive:
            files[name] = json.loads(archive.read("config.json"))
    assert files["used"] == files["untouched"]
    loaded = models.load_trained_model(tmp_path / "used").keras_model
    for saved, original in zip(loaded.get_weights(), untouched.get_weights()):
        np.testing.assert_array_equal(saved, original)
    # new weights in the model (as after more training) are what the inference network uses
    model.set_weights(tutorial_model.get_weights())
    assert _relative_difference(tutorial_model(audio, training=False), fast(audio, training=False)) < 1e-5


def test_models_without_convolutions_to_replace_come_back_unchanged():
    audio = keras.Input(shape=(None, 1))
    plain = keras.Model(audio, keras.layers.Conv1D(2, 16, strides=4)(audio))
    assert models.inference_network(plain) is plain

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(3, (119, 1))

        def call(self, x):
            return self.conv(x)

    subclassed = Subclassed()
    subclassed(np.zeros((1, 200, 1, 4), np.float32))
    assert models.inference_network(subclassed) is subclassed


def test_classifier_gives_the_same_probabilities_either_way(tutorial_model):
    tm = models.TrainedModel(keras_model=tutorial_model, labels=LABELS, rate=RATE, nchannels=1, spec=ModelSpec())
    audio = _audio(40_003, batch=1, seed=9)[0]
    fast = classify_samples(Classifier(tm, span_tics=8_000, batch_size=3), audio, rate=RATE)
    built = classify_samples(Classifier(tm, span_tics=8_000, batch_size=3, matmul_convolutions=False), audio,
                             rate=RATE)
    assert fast.values.shape == built.values.shape == (64 + (40_003 - 512) // 4 + 1, 3)
    np.testing.assert_allclose(fast.values, built.values, atol=1e-5)
    np.testing.assert_allclose(fast.values[64:].sum(axis=1), 1.0, atol=1e-5)
