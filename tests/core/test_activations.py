"""Activations: the window at the sound itself, equal to the sub-model on a hand-cut window and to
classify's probabilities at that tic; layer choice and its errors; sound selection (equalize,
max sounds, zero sounds); edges padded, not dropped; the .npz round trip."""

import numpy as np
import pandas as pd
import pytest
import soundfile

from songexplorer_core.activations import (
    ActivationsError,
    activations_from_ground_truth,
    compute_activations,
    model_layer_names,
    read_activations,
    resolve_layers,
    select_sounds,
    sound_tics,
    write_activations,
)
from songexplorer_core.annotations import concat_intervals, intervals_frame, write_intervals_csv
from songexplorer_core.audio import RecordingError

keras = pytest.importorskip("keras")
models = pytest.importorskip("songexplorer_core.models")
classify = pytest.importorskip("songexplorer_core.classify")

RATE = 2500
NTICS = 20_000  # 8 s
LABELS = ["a", "b", "c"]


def tiny_model(shiftby_ms=0.0, seed=3):
    """The convolutional network, small: 51.2 ms context (128 tics), 4-tic stride, 8/8 features."""
    spec = models.ModelSpec(context_ms=51.2, nfeatures=(8, 8), dropout_rate=0.0, shiftby_ms=shiftby_ms)
    return models.new_trained_model(spec, labels=LABELS, rate=RATE, seed=seed)


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """8 s of noise with a 300 Hz tone from 2 s to 3 s, written as int16."""
    rng = np.random.default_rng(0)
    samples = rng.normal(0, 800, NTICS)
    t = np.arange(NTICS) / RATE
    tone = (t >= 2) & (t < 3)
    samples[tone] += 6000 * np.sin(2 * np.pi * 300 * t[tone])
    samples = samples.astype(np.int16)
    path = tmp_path_factory.mktemp("rec") / "rec.wav"
    soundfile.write(str(path), samples, RATE, subtype="PCM_16")
    return path, samples


def sounds(starts, stops, labels, kind="annotated", wav="rec.wav"):
    return intervals_frame(wav, starts, stops, kind, labels)


def test_layer_names_and_indices(model):
    names = model_layer_names(model.keras_model)
    assert names == ("input", "representation", "conv1", "conv2", "output")
    assert resolve_layers(None, names) == (3,)  # the last hidden layer
    assert resolve_layers("all", names) == (0, 1, 2, 3, 4)
    assert resolve_layers("conv1,0", names) == (0, 2)
    assert resolve_layers("1-3", names) == (1, 2, 3)
    assert resolve_layers([], names) == ()


def test_a_layer_the_model_does_not_have_is_refused_naming_the_valid_ones(model):
    names = model_layer_names(model.keras_model)
    with pytest.raises(ActivationsError, match=r"layer index 7 .* valid indices are 0-4: 0 input, 1 representation, "
                                               r"2 conv1, 3 conv2, 4 output"):
        resolve_layers(7, names)
    with pytest.raises(ActivationsError, match="conv9.*0 input"):
        resolve_layers("conv9", names)
    with pytest.raises(ActivationsError, match="-1"):
        resolve_layers("-1", names)


def test_activations_equal_the_submodel_on_windows_cut_by_hand(model, recording):
    path, samples = recording
    table = sounds([1000, 5000, 7001, 12_345], [1000, 5400, 7001, 12_400], ["a", "b", "a", "c"])
    acts = compute_activations(model, table, {"rec.wav": path}, layers="all", dtype="float32")
    km = model.keras_model
    probe = keras.Model(km.inputs[0], [km.get_layer(n).output for n in ("representation", "conv1", "conv2")]
                        + [km.outputs[0]])
    centres = (table["start"].to_numpy() + table["stop"].to_numpy()) // 2
    assert acts.sounds["tic"].tolist() == centres.tolist()
    # the window whose single tap is the decision at the tic: [tic - 64, tic + 64)
    windows = np.stack([samples[c - 64: c + 64] for c in centres]).astype(np.float32)[:, :, None] / 32768
    expected = [np.asarray(y) for y in probe(windows, training=False)]
    np.testing.assert_array_equal(acts.layer(0), windows)
    for index, want in zip((1, 2, 3), expected[:3]):
        np.testing.assert_allclose(acts.layer(index), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(acts.logits, expected[3][:, 0, :], rtol=1e-5, atol=1e-5)
    assert not acts.sounds["padded"].any()


def test_float16_storage_is_close_to_float32(model, recording):
    path, _ = recording
    table = sounds([3000, 4000], [3000, 4100], ["a", "b"])
    half = compute_activations(model, table, {"rec.wav": path}, layers="conv2")
    full = compute_activations(model, table, {"rec.wav": path}, layers="conv2", dtype="float32")
    assert half.layers[3].dtype == np.float16 and full.layers[3].dtype == np.float32
    scale = np.abs(full.layer(3)).max()
    np.testing.assert_allclose(half.layer(3), full.layer(3), atol=2e-3 * scale)
    np.testing.assert_array_equal(half.logits, full.logits)  # the output is always float32


@pytest.mark.parametrize("shiftby_ms", [0.0, 3.2])
def test_output_at_the_sound_equals_classify_at_that_tic(recording, shiftby_ms):
    path, samples = recording
    model = tiny_model(shiftby_ms=shiftby_ms)
    # tics on the 4-tic output grid; one at the very start (its window is padded) and one at the end
    tics = np.array([8, 2000, 5040, 5600, 7520, NTICS - 4])
    table = sounds(tics - 20, tics + 20, "a")
    table.loc[0, ["start", "stop"]] = [8, 8]
    table.loc[5, ["start", "stop"]] = [NTICS - 4, NTICS - 4]
    acts = compute_activations(model, table, {"rec.wav": path}, layers=[])
    probabilities = classify.classify_samples(model, samples, rate=RATE, edges="median")
    np.testing.assert_allclose(acts.probabilities(), probabilities.values[tics // 4], atol=1e-4)
    assert acts.sounds["padded"].tolist() == [True, False, False, False, False, True]
    # SongExplorer's tap 0 of 64 looked 126 tics earlier: a different decision
    early = classify.classify_samples(model, samples, rate=RATE, edges="median").values[(tics[2:5] - 126) // 4]
    assert not np.allclose(acts.probabilities()[2:5], early, atol=1e-3)


def test_sounds_at_the_edges_are_padded_with_the_edge_median_not_dropped(model, recording):
    path, samples = recording
    table = sounds([0, NTICS - 1], [0, NTICS - 1], ["a", "b"])
    acts = compute_activations(model, table, {"rec.wav": path}, layers="input")
    assert len(acts.sounds) == 2 and acts.sounds["padded"].all()
    window = acts.layers[0][0, :, 0]
    np.testing.assert_array_equal(window[:64], np.round(np.median(samples[:128])))
    np.testing.assert_array_equal(window[64:], samples[:64])
    last = acts.layers[0][1, :, 0]
    np.testing.assert_array_equal(last[:65], samples[NTICS - 65:])
    np.testing.assert_array_equal(last[65:], np.round(np.median(samples[-128:])))


def test_batches_do_not_change_the_result(model, recording):
    path, _ = recording
    rng = np.random.default_rng(1)
    starts = np.sort(rng.integers(0, NTICS - 200, 23))
    table = sounds(starts, starts + rng.integers(0, 150, 23), "a")
    one = compute_activations(model, table, {"rec.wav": path}, layers="conv1", mini_batch=256, dtype="float32")
    many = compute_activations(model, table, {"rec.wav": path}, layers="conv1", mini_batch=4, dtype="float32")
    np.testing.assert_allclose(one.layer(2), many.layer(2), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(one.logits, many.logits, rtol=1e-5, atol=1e-6)


def test_random_positions_lie_inside_the_sound_and_follow_the_seed():
    table = sounds([100, 500, 900], [100, 700, 1900], "a")
    centre = sound_tics(table)
    assert centre.tolist() == [100, 600, 1400]
    drawn = sound_tics(table, position="random", seed=5)
    assert (drawn >= table["start"].to_numpy()).all() and (drawn <= table["stop"].to_numpy()).all()
    assert drawn[0] == 100
    np.testing.assert_array_equal(drawn, sound_tics(table, position="random", seed=5))
    many = np.stack([sound_tics(table, position="random", seed=s) for s in range(20)])
    assert len(set(many[:, 2])) > 10
    with pytest.raises(ActivationsError, match="position"):
        sound_tics(table, position="left")


def groups_table():
    a = sounds(np.arange(50) * 100, np.arange(50) * 100, "a")
    b = sounds(np.arange(5) * 100 + 7, np.arange(5) * 100 + 7, "b")
    c = sounds(np.arange(3) * 100 + 9, np.arange(3) * 100 + 9, "a", kind="detected")
    d = sounds([11, 12], [11, 12], "b", kind="predicted")
    return concat_intervals([a, b, c, d])


def test_equalize_ratio_caps_every_label_kind_group():
    table = groups_table()
    chosen = select_sounds(table, kinds=["annotated", "detected"], equalize_ratio=2, max_sounds=0)
    counts = chosen.groupby(["label", "kind"]).size().to_dict()
    # smallest group: (a, detected) with 3, so no group keeps more than 6
    assert counts == {("a", "annotated"): 6, ("a", "detected"): 3, ("b", "annotated"): 5}
    assert len(select_sounds(table, kinds=["annotated", "detected"], equalize_ratio=0, max_sounds=0)) == 58
    # SongExplorer's default ratio 10: the 50 stay 30
    counts = select_sounds(table, kinds=["annotated", "detected"], max_sounds=0).groupby("label").size().to_dict()
    assert counts == {"a": 33, "b": 5}


def test_max_sounds_draws_that_many_reproducibly():
    table = groups_table()
    chosen = select_sounds(table, equalize_ratio=0, max_sounds=10, seed=4)
    assert len(chosen) == 10
    pd.testing.assert_frame_equal(chosen, select_sounds(table, equalize_ratio=0, max_sounds=10, seed=4))
    assert not chosen.equals(select_sounds(table, equalize_ratio=0, max_sounds=10, seed=5))
    # in the table's order, no sound twice
    assert len(chosen.drop_duplicates()) == 10
    assert len(select_sounds(table, equalize_ratio=0, max_sounds=1000)) == len(table)


def test_labels_and_kinds_filter():
    table = groups_table()
    chosen = select_sounds(table, kinds="annotated", labels="b", max_sounds=0)
    assert set(chosen["label"]) == {"b"} and set(chosen["kind"]) == {"annotated"} and len(chosen) == 5


def test_zero_sounds_of_the_chosen_kinds_or_labels_is_a_clear_error():
    table = groups_table()
    with pytest.raises(ActivationsError, match=r"no sounds of kind\(s\) \['missed'\].*kinds found: "
                                               r"\['annotated', 'detected', 'predicted'\]"):
        select_sounds(table, kinds=["missed"])
    with pytest.raises(ActivationsError, match=r"label\(s\) \['zz'\].*labels of the chosen kinds: \['a', 'b'\]"):
        select_sounds(table, kinds=["annotated"], labels=["zz"], where="gt/")


def test_missing_recording_outside_tics_and_wrong_rate_are_refused(model, recording, tmp_path):
    path, _ = recording
    with pytest.raises(ActivationsError, match="other.wav"):
        compute_activations(model, sounds([10], [10], "a", wav="other.wav"), {"rec.wav": path})
    with pytest.raises(ActivationsError, match=r"outside the recording \(20000 tics\)"):
        compute_activations(model, sounds([NTICS + 5], [NTICS + 10], "a"), {"rec.wav": path})
    slow = tmp_path / "rec.wav"
    soundfile.write(str(slow), np.zeros(4000, np.int16), 8000, subtype="PCM_16")
    with pytest.raises(RecordingError, match="8000"):
        compute_activations(model, sounds([10], [10], "a"), {"rec.wav": slow})


def test_npz_round_trip(model, recording, tmp_path):
    path, _ = recording
    table = sounds([1000, 5000, 9000], [1000, 5200, 9000], ["a", "b", "c"])
    acts = compute_activations(model, table, {"rec.wav": path}, layers="0,2", settings={"kinds": ["annotated"]})
    out = write_activations(acts, tmp_path / "activations.npz")
    back = read_activations(out)
    pd.testing.assert_frame_equal(back.sounds, acts.sounds)
    assert back.layer_names == acts.layer_names and back.model_labels == tuple(LABELS)
    assert back.requested == (0, 2) and back.stored_layers == (0, 2, 4)
    for index in (0, 2, 4):
        np.testing.assert_array_equal(back.layer(index), acts.layer(index))
    assert back.layers[0].dtype == np.int16 and back.layers[2].dtype == np.float16
    assert back.settings["kinds"] == ["annotated"] and back.settings["position"] == "centre"
    with pytest.raises(ActivationsError, match=r"layer 3 \(conv2\) was not stored"):
        back.layer(3)
    assert [p.name for p in tmp_path.iterdir()] == ["activations.npz"]  # no temporary file left


def test_reading_a_file_that_is_not_activations_names_it(tmp_path):
    bad = tmp_path / "x.npz"
    np.savez(bad, other=np.zeros(3))
    with pytest.raises(ActivationsError, match="x.npz: not an activations file"):
        read_activations(bad)
    with pytest.raises(ActivationsError, match="no such activations file"):
        read_activations(tmp_path / "none.npz")


def test_from_a_ground_truth_folder(model, recording, tmp_path):
    path, samples = recording
    folder = tmp_path / "gt" / "round1"
    folder.mkdir(parents=True)
    soundfile.write(str(folder / "rec.wav"), samples, RATE, subtype="PCM_16")
    write_intervals_csv(concat_intervals([sounds([1000, 6000], [1000, 6500], ["a", "b"]),
                                          sounds([3000], [3100], ["time"], kind="detected")]),
                        folder / "rec.wav-annotated-person1.csv")
    acts = activations_from_ground_truth(model, tmp_path / "gt", kinds="annotated", labels=None, layers=None)
    assert acts.sounds["label"].tolist() == ["a", "b"]
    assert acts.sounds["recording"].tolist() == ["round1/rec.wav"] * 2
    assert acts.stored_layers == (3, 4) and acts.settings["kinds"] == ["annotated"]
    with pytest.raises(ActivationsError, match="no sounds"):
        activations_from_ground_truth(model, tmp_path / "gt", kinds="missed")


def test_songexplorer_detected_rows_starting_before_tic_0_are_used(model, recording):
    # SongExplorer's detector writes frequency rows starting up to a quarter window before tic 0
    path, _ = recording
    table = sounds([-3, 500], [21, 600], ["frequency", "time"], kind="detected")
    chosen = select_sounds(table, kinds="detected", max_sounds=0)
    acts = compute_activations(model, chosen, {"rec.wav": path}, layers=[])
    assert acts.sounds["tic"].tolist() == [9, 550] and acts.sounds["padded"].tolist() == [True, False]
    backwards = pd.DataFrame({"wav": ["rec.wav"], "start": [10], "stop": [5], "kind": ["detected"], "label": ["x"]})
    with pytest.raises(ActivationsError, match=r"rows \[0\] stop before they start"):
        select_sounds(backwards)
