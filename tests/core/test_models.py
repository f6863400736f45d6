"""The network: SongExplorer's shapes and parameter count, fully convolutional behaviour,
saving/loading, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from songexplorer_core import models
from songexplorer_core.models import ModelError, ModelSpec

RATE = 2500
LABELS = ["mel-pulse", "mel-sine", "ambient"]


@pytest.fixture(scope="module")
def tutorial_model():
    return models.build_model(ModelSpec(), labels=LABELS, rate=RATE, seed=1)


def _audio(ntics, nchannels=1, batch=2, seed=0):
    return (np.random.default_rng(seed).normal(size=(batch, ntics, nchannels)) * 0.1).astype(np.float32)


def test_tutorial_network_has_songexplorers_parameter_count_and_geometry(tutorial_model):
    spec = ModelSpec()
    assert models.count_parameters(tutorial_model) == 61443
    assert spec.context_tics(RATE) == 512
    assert spec.stride_tics(RATE) == 4
    assert spec.input_tics(RATE, 2) == 516 and spec.input_tics(RATE, 64) == 764
    assert models.receptive_field(spec, RATE) == (28, 5)
    layer_shapes = {layer.name: tuple(layer.output.shape) for layer in tutorial_model.layers}
    assert layer_shapes["conv1"][2:] == (3, 64) and layer_shapes["conv2"][2:] == (1, 64)
    assert tutorial_model.get_layer("output").kernel.shape == (119, 1, 64, 3)


@pytest.mark.parametrize("parallelize", [1, 2, 64])
def test_output_taps_for_parallelize(tutorial_model, parallelize):
    ntics = ModelSpec().input_tics(RATE, parallelize)
    logits = np.asarray(tutorial_model(_audio(ntics), training=False))
    assert logits.shape == (2, parallelize, 3)


@pytest.mark.parametrize("ntics", [512, 513, 515, 516, 517, 1001, 4508])
def test_any_input_length_gives_the_contract_number_of_taps(tutorial_model, ntics):
    logits = np.asarray(tutorial_model(_audio(ntics, batch=1), training=False))
    assert logits.shape == (1, (ntics - 512) // 4 + 1, 3)


def test_fully_convolutional_taps_agree_across_input_lengths(tutorial_model):
    audio = _audio(2000, batch=1, seed=3)
    long = np.asarray(tutorial_model(audio, training=False))
    short = np.asarray(tutorial_model(audio[:, :516], training=False))
    np.testing.assert_allclose(short[0], long[0, :2], atol=1e-5)
    # tap j of the long run is the context window starting at tic 4*j
    j = 57
    window = np.asarray(tutorial_model(audio[:, 4 * j: 4 * j + 512], training=False))
    np.testing.assert_allclose(window[0, 0], long[0, j], atol=1e-5)


def test_mel_cepstrum_matches_tensorflows_signal_functions():
    import tensorflow as tf

    x = _audio(764, batch=3, seed=5)
    layer = models._layer_classes()["Representation"](kind="mel-cepstrum", window_tics=16, hop_tics=4,
                                                       rate=RATE, nmel=7, ndct=7)
    ours = np.asarray(layer(x))
    magnitude = tf.abs(tf.signal.stft(tf.transpose(x, [0, 2, 1]), 16, 4))
    mel = tf.tensordot(magnitude, tf.signal.linear_to_mel_weight_matrix(7, 9, RATE, 0.0, RATE // 2), 1)
    reference = tf.signal.mfccs_from_log_mel_spectrograms(tf.math.log(mel + 1e-6))[..., :7]
    reference = np.transpose(reference.numpy(), [0, 2, 3, 1])
    assert ours.shape == (3, 188, 7, 1)
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_spectrogram_band_slice_keeps_songexplorers_bins():
    spec = ModelSpec(representation="spectrogram", range_hz="100-800")
    model = models.build_model(spec, labels=["a", "b"], rate=RATE, seed=0)
    # 9 bins up to 1250 Hz: start round(9*100/1250)=1, width round(9*700/1250)=5
    assert tuple(model.get_layer("representation").output.shape)[2] == 5


@pytest.mark.parametrize("spec", [
    ModelSpec(representation="waveform", nconvlayers=3, context_ms=20),
    ModelSpec(representation="spectrogram-with-phase"),
    ModelSpec(nconvlayers=5, connection="residual", kernel_sizes="3x3,3", nfeatures="32,32"),
    ModelSpec(nconvlayers=4, stride_time="2,3", kernel_sizes="3x3,3", stride_ms=2.0),
    ModelSpec(nconvlayers=3, dilate_time=">=2", kernel_sizes="3x3,3"),
    ModelSpec(pool_kind="max", pool_size="5,1", denselayers="16,8", normalization="before", dropout_kind="map"),
    ModelSpec(pool_kind="average", pool_size="2,2", stride_ms=2.0, normalization="after"),
], ids=["waveform", "phase", "residual", "strided", "dilated", "pool-dense-bn", "avgpool"])
def test_every_variant_is_fully_convolutional_with_two_channels(spec):
    model = models.build_model(spec, labels=["a", "b"], rate=RATE, nchannels=2, seed=1)
    context, stride = spec.context_tics(RATE), spec.stride_tics(RATE)
    audio = _audio(context + 20 * stride + 3, nchannels=2, batch=1, seed=2)
    full = np.asarray(model(audio, training=False))
    assert full.shape == (1, (audio.shape[1] - context) // stride + 1, 2)
    for ntics in range(context, context + 2 * stride + 2):
        part = np.asarray(model(audio[:, :ntics], training=False))
        assert part.shape[1] == (ntics - context) // stride + 1
        np.testing.assert_allclose(part, full[:, : part.shape[1]], atol=1e-4)
    shifted = np.asarray(model(audio[:, stride:], training=False))
    np.testing.assert_allclose(shifted, full[:, 1: 1 + shifted.shape[1]], atol=1e-4)


def test_residual_layers_are_named_for_activations():
    spec = ModelSpec(nconvlayers=5, connection="residual", kernel_sizes="3x3,3", nfeatures="32,32")
    model = models.build_model(spec, labels=["a", "b"], rate=RATE, seed=1)
    assert models.hidden_layer_names(model) == [
        "input", "representation", "conv1", "conv2", "conv3_sum", "conv4", "conv5_sum", "output"]


def test_same_seed_same_weights_and_different_seed_different_weights():
    a = models.build_model(ModelSpec(), labels=LABELS, rate=RATE, seed=7)
    b = models.build_model(ModelSpec(), labels=LABELS, rate=RATE, seed=7)
    c = models.build_model(ModelSpec(), labels=LABELS, rate=RATE, seed=8)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


def test_save_and_load_round_trip_gives_identical_outputs(tmp_path, tutorial_model):
    tm = models.TrainedModel(keras_model=tutorial_model, labels=LABELS, rate=RATE, nchannels=1, spec=ModelSpec())
    folder = models.save_trained_model(tm, tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.keras"]
    meta = json.loads((folder / "model.json").read_text())
    assert meta["labels"] == LABELS and meta["stride_tics"] == 4 and meta["context_tics"] == 512
    assert meta["parameters"] == 61443
    loaded = models.load_trained_model(folder)
    assert loaded.labels == LABELS and loaded.spec == ModelSpec() and loaded.loss == "exclusive"
    assert (loaded.context_tics, loaded.shiftby_tics, loaded.stride_tics) == (512, 0, 4)
    audio = _audio(1500)
    np.testing.assert_array_equal(np.asarray(tutorial_model(audio)), np.asarray(loaded.keras_model(audio)))
    # saving again replaces the folder whole, leaving no temporary folders behind
    models.save_trained_model(loaded, folder)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_corrupt_or_missing_checkpoint_files_give_a_clear_message(tmp_path, tutorial_model):
    tm = models.TrainedModel(keras_model=tutorial_model, labels=LABELS, rate=RATE, nchannels=1, spec=ModelSpec())
    folder = models.save_trained_model(tm, tmp_path / "ckpt-30")
    (folder / "model.keras").write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(ModelError, match=r"ckpt-30/model.keras: corrupt or unreadable"):
        models.load_trained_model(folder)
    (folder / "model.json").write_text("{ not json")
    with pytest.raises(ModelError, match=r"ckpt-30/model.json: corrupt model description"):
        models.load_trained_model(folder)
    (folder / "model.json").unlink()
    with pytest.raises(ModelError, match=r"ckpt-30: not a trained-model folder"):
        models.load_trained_model(folder)
    with pytest.raises(ModelError, match="no such trained-model folder"):
        models.load_trained_model(tmp_path / "ckpt-99")


def test_spec_parses_songexplorer_strings_and_round_trips_through_json():
    spec = ModelSpec.from_dict({"kernel_sizes": "7x3,5", "stride_time": "1-2", "nconvlayers": 4,
                                "dropout": "30", "mel_dct": "9,5", "range": "", "connection_type": "residual"})
    assert spec.kernel_sizes == ((7, 3), 5) and spec.stride_time == (1, 2)
    assert spec.dropout_rate == pytest.approx(0.3) and spec.mel_dct == (9, 5) and spec.range_hz is None
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert models.parse_layers(">=3", 5) == (3, 4, 5)
    assert models.parse_layers("<3,5", 5) == (1, 2, 5)


@pytest.mark.parametrize("values, message", [
    ({"window_ms": 5.0}, "power of two"),
    ({"stride_ms": 1.2}, "not an integer"),
    ({"mel_dct": (5, 7)}, "DCT coefficients"),
    ({"representation": "cochleagram"}, "representation must be one of"),
    ({"nconvlayers": 2, "stride_time": "1", "dilate_time": "1"}, "both stride and dilate"),
    ({"context_ms": 4.0}, "shorter than the window"),
])
def test_bad_specs_are_refused_with_the_fix(values, message):
    with pytest.raises(ModelError, match=message):
        models.build_model(ModelSpec(**values), labels=LABELS, rate=RATE)


def test_labels_txt_is_songexplorers_format(tmp_path):
    path = models.write_labels_txt(LABELS, tmp_path / "labels.txt")
    assert path.read_bytes() == b"mel-pulse\nmel-sine\nambient"
    assert models.read_labels_txt(path) == LABELS


def test_unknown_architecture_is_refused_and_new_ones_can_be_registered():
    with pytest.raises(ModelError, match="unknown architecture"):
        models.build_model(ModelSpec(architecture="transformer"), labels=LABELS, rate=RATE)
    assert models.get_architecture("res-net") is models.get_architecture("convolutional")
