"""Classify: probabilities per output sample, their alignment with the audio, independence from
the span size, prevalences, and the probability files."""

import json
import os
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import soundfile

from songexplorer_core.audio import RecordingError
from songexplorer_core.classify import (
    ClassifyError,
    Classifier,
    Probabilities,
    adjust_for_prevalences,
    classify_recording,
    classify_samples,
    normalise_prevalences,
    probability_wav_name,
    read_probabilities,
    read_probability_wavs,
    sample_range,
    write_probabilities,
    write_probability_wavs,
)
from songexplorer_core.ethogram import ethogram_maxprob, ethogram_threshold

keras = pytest.importorskip("keras")
models = pytest.importorskip("songexplorer_core.models")

RATE = 2500


@dataclass
class HandModel:
    """Honours the TrainedModel contract: (batch, ntics, 1) -> logits (batch, ntaps, nlabels)."""

    keras_model: object
    labels: list
    rate: int = RATE
    nchannels: int = 1
    loss: str = "exclusive"
    context_tics: int = 64
    shiftby_tics: int = 0
    stride_tics: int = 4


def energy_model(context_tics=64, stride_tics=4, gain=2000.0):
    """Logits (gain * mean square of the window - 1, 0) for labels ("loud", "quiet")."""
    audio = keras.Input(shape=(None, 1))
    power = keras.layers.Multiply()([audio, audio])
    mean = keras.layers.Conv1D(1, context_tics, strides=stride_tics)
    logit = mean(power)
    mean.set_weights([np.full((context_tics, 1, 1), gain / context_tics, np.float32), np.array([-1.0], np.float32)])
    zero = keras.layers.Lambda(lambda x: x * 0.0)(logit)
    return keras.Model(audio, keras.layers.Concatenate()([logit, zero]))


@pytest.fixture(scope="module")
def small_model():
    """The convolutional network of songexplorer_core.models, small: 51.2 ms context (128 tics), 8/8 features."""
    spec = models.ModelSpec(context_ms=51.2, nfeatures=(8, 8), dropout_rate=0.0)
    return models.new_trained_model(spec, labels=["a", "b", "c"], rate=RATE, seed=3)


def noise(ntics, seed=0, scale=0.1):
    return np.random.default_rng(seed).normal(0, scale, (ntics, 1)).astype(np.float32)


def write_wav(path, samples, rate=RATE):
    soundfile.write(str(path), np.clip(samples * 32768, -32768, 32767).astype(np.int16), rate, subtype="PCM_16")
    return path


def test_songexplorer_length_of_a_200_s_recording():
    # measured with SongExplorer: 500 000 tics, 204.8 ms context, stride 4 -> 124 937 samples
    assert sample_range(500_000, context_tics=512, stride_tics=4, npadding=64) == (124_937, 64, 124_937)
    # covering the whole recording instead: one sample per 4 tics
    assert sample_range(500_000, context_tics=512, stride_tics=4, npadding=64, edges="median") == (125_000, 0, 125_000)


def test_sample_k_is_the_window_centred_on_tic_k_times_stride():
    tm = HandModel(energy_model(), ["loud", "quiet"])
    audio = noise(10_000, scale=0.001)
    audio[5_000] = 0.9  # a click
    probs = classify_samples(tm, audio, rate=RATE, wav="click.wav")
    assert probs.npadding == 8 and probs.nsamples == 8 + (10_000 - 64) // 4 + 1
    loud = probs.column("loud") > 0.5
    on = np.flatnonzero(loud)
    # windows [(k-8)*4, (k-8)*4 + 64) contain tic 5000 for k = 1243..1258: centred on 5000/4 = 1250
    assert on.tolist() == list(range(1243, 1259))
    frame = ethogram_threshold(probs, {"loud": 0.5})
    assert len(frame) == 1
    start, stop = int(frame["start"][0]), int(frame["stop"][0])
    assert (start + stop) / 2 == pytest.approx(5_000, abs=4)
    assert np.all(probs.values[:8] == 0)  # SongExplorer's leading zero padding


def test_probabilities_do_not_depend_on_the_span_size(small_model, tmp_path):
    audio = noise(7_503)
    reference = classify_samples(small_model, audio, rate=RATE)
    for span_tics, batch_size in ((4, 1), (256, 3), (1_000, 2), (2**16, 4)):
        other = classify_samples(small_model, audio, rate=RATE, span_tics=span_tics, batch_size=batch_size)
        assert other.values.shape == reference.values.shape
        np.testing.assert_allclose(other.values, reference.values, atol=2e-6)
    # the same from the file, read span by span
    path = write_wav(tmp_path / "r.wav", audio)
    from_file = classify_recording(small_model, path, span_tics=512, batch_size=2)
    in_memory = classify_samples(small_model, soundfile.read(str(path), dtype="int16")[0], rate=RATE)
    np.testing.assert_allclose(from_file.values, in_memory.values, atol=2e-6)
    assert from_file.wav == "r.wav" and from_file.ntics == 7_503


def test_every_sample_matches_the_network_on_its_own_window(small_model):
    import tensorflow as tf

    audio = noise(3_001, seed=1)
    probs = classify_samples(small_model, audio, rate=RATE, span_tics=400, batch_size=2)
    context, stride = small_model.context_tics, small_model.stride_tics
    npad = probs.npadding
    assert npad == round(context / 2 / stride) and probs.nsamples == npad + (3_001 - context) // stride + 1
    for k in (npad, npad + 1, npad + 99, npad + 100, probs.nsamples - 1):  # span edges and the last
        start = (k - npad) * stride
        window = audio[None, start: start + context]
        direct = tf.nn.softmax(small_model.keras_model(window, training=False), axis=-1).numpy()[0, 0]
        np.testing.assert_allclose(probs.values[k], direct, atol=2e-6)
    np.testing.assert_allclose(probs.values[npad:].sum(axis=1), 1.0, atol=1e-5)


def test_median_edges_cover_the_whole_recording_and_agree_inside(small_model):
    audio = noise(3_001, seed=2)
    inner = classify_samples(small_model, audio, rate=RATE)
    whole = classify_samples(small_model, audio, rate=RATE, edges="median", span_tics=300, batch_size=3)
    assert whole.nsamples == -(-3_001 // 4) and whole.npadding == 0
    np.testing.assert_allclose(whole.values[inner.npadding: inner.nsamples], inner.values[inner.npadding:], atol=2e-6)
    np.testing.assert_allclose(whole.values.sum(axis=1), 1.0, atol=1e-5)  # edge samples computed too
    again = classify_samples(small_model, audio, rate=RATE, edges="median", span_tics=2**16)
    np.testing.assert_allclose(again.values, whole.values, atol=2e-6)


def test_overlapped_model_gives_independent_sigmoids(small_model):
    tm = models.TrainedModel(keras_model=small_model.keras_model, labels=small_model.labels, rate=RATE,
                             nchannels=1, spec=small_model.spec, loss="overlapped")
    audio = noise(2_000, seed=4)
    probs = classify_samples(tm, audio, rate=RATE)
    logits = small_model.keras_model(audio[None, :tm.context_tics], training=False).numpy()[0, 0]
    np.testing.assert_allclose(probs.values[probs.npadding], 1 / (1 + np.exp(-logits)), atol=2e-6)
    with pytest.raises(ClassifyError, match="exclusive-loss models only"):
        classify_samples(tm, audio, rate=RATE, prevalences=[1, 1, 1])


def test_prevalence_adjustment_for_two_and_three_labels():
    two = adjust_for_prevalences(np.array([[0.5, 0.5], [0.9, 0.1]]), normalise_prevalences([1, 4], ["a", "b"]))
    np.testing.assert_allclose(two, [[0.2, 0.8], [0.9 / 1.3, 0.4 / 1.3]], rtol=1e-6)
    priors = normalise_prevalences({"c": 42, "a": 6, "b": 12}, ["a", "b", "c"])  # durations, any order
    np.testing.assert_allclose(priors, [0.1, 0.2, 0.7])
    three = adjust_for_prevalences(np.array([[0.2, 0.3, 0.5], [0.0, 0.0, 0.0]]), priors)
    np.testing.assert_allclose(three[0], np.array([0.02, 0.06, 0.35]) / 0.43, rtol=1e-6)
    assert three[1].tolist() == [0, 0, 0]  # padding rows stay zero
    with pytest.raises(ClassifyError, match="2 prevalence"):
        normalise_prevalences([1, 2], ["a", "b", "c"])
    with pytest.raises(ClassifyError, match="exactly one prevalence per model label"):
        normalise_prevalences({"a": 1, "x": 2}, ["a", "b"])


def test_classify_with_prevalences_reweights_by_bayes(small_model):
    audio = noise(2_000, seed=5)
    plain = classify_samples(small_model, audio, rate=RATE)
    adjusted = classify_samples(small_model, audio, rate=RATE, prevalences={"a": 1, "b": 2, "c": 7})
    expected = plain.values * np.array([0.1, 0.2, 0.7])
    expected[plain.npadding:] /= expected[plain.npadding:].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(adjusted.values, expected, atol=1e-6)
    assert adjusted.prevalences == pytest.approx((0.1, 0.2, 0.7))


def test_wrong_rate_or_channels_names_the_recording(small_model, tmp_path):
    path = write_wav(tmp_path / "fast.wav", noise(5_000), rate=5_000)
    with pytest.raises(RecordingError, match=r"fast.wav: sample rate is 5000 Hz but the model was trained on 2500 Hz"):
        classify_recording(small_model, path)
    stereo = tmp_path / "stereo.wav"
    soundfile.write(str(stereo), np.zeros((3_000, 2), np.int16), RATE, subtype="PCM_16")
    with pytest.raises(RecordingError, match="stereo.wav: has 2 channel"):
        classify_recording(small_model, stereo)
    with pytest.raises(ClassifyError, match="x.wav: sample rate is 2000 Hz"):
        classify_samples(small_model, noise(3_000), rate=2_000, wav="x.wav")


def test_recording_shorter_than_the_context_warns(small_model):
    with pytest.warns(UserWarning, match="shorter than the model's context"):
        probs = classify_samples(small_model, noise(100), rate=RATE)
    assert probs.nsamples == 16 and not probs.values.any()


def test_classifier_reused_across_recordings_gives_the_same_result(small_model):
    classifier = Classifier(small_model, span_tics=800, batch_size=2)
    first = classifier.classify_samples(noise(4_000, seed=6), rate=RATE)
    classifier.classify_samples(noise(2_500, seed=7), rate=RATE)
    again = classify_samples(classifier, noise(4_000, seed=6), rate=RATE, span_tics=2**14)
    np.testing.assert_allclose(again.values, first.values, atol=2e-6)
    assert classifier.span_taps == 200  # the span override applied to a copy


def test_probability_wavs_round_trip_songexplorer_format(tmp_path):
    values = np.array([[0.0, 1.0], [0.5, 0.5], [0.123456, 0.876544], [1.0, 0.0]], dtype=np.float32)
    probs = Probabilities(values=values, labels=("mel-pulse", "ambient"), rate=RATE, stride_tics=4, wav="PS_1.wav")
    paths = write_probability_wavs(probs, tmp_path)
    assert [p.name for p in paths] == ["PS_1-mel-pulse.wav", "PS_1-ambient.wav"]
    data, rate = soundfile.read(str(paths[0]), dtype="int16")
    assert rate == 625 and soundfile.info(str(paths[0])).subtype == "PCM_16"
    assert data.tolist() == [0, 16383, 4045, 32767]  # int16(p * 32767), truncated
    back = read_probability_wavs(tmp_path, "PS_1.wav", ["ambient", "mel-pulse"], rate=RATE)
    assert back.labels == ("ambient", "mel-pulse") and back.stride_tics == 4
    np.testing.assert_allclose(back.values[:, 1], values[:, 0], atol=1 / 32767)
    assert probability_wav_name("PS_1.wav", "x") == "PS_1-x.wav"
    with pytest.raises(FileNotFoundError, match="PS_1-other.wav"):
        read_probability_wavs(tmp_path, "PS_1.wav", ["other"], rate=RATE)


def test_probabilities_npz_round_trip(tmp_path):
    values = np.random.default_rng(0).random((50, 3)).astype(np.float32)
    probs = Probabilities(values=values, labels=("a", "b", "c"), rate=RATE, stride_tics=4, npadding=7,
                          wav="r.wav", ntics=200, prevalences=(0.2, 0.3, 0.5))
    path = write_probabilities(probs, tmp_path / "r.wav-probabilities.npz")
    back = read_probabilities(path)
    assert back.labels == probs.labels and back.npadding == 7 and back.ntics == 200
    assert back.prevalences == (0.2, 0.3, 0.5) and back.output_rate == 625
    np.testing.assert_array_equal(back.values, values)
    half = read_probabilities(write_probabilities(probs, tmp_path / "half.npz", dtype="float16"))
    np.testing.assert_allclose(half.values, values, atol=5e-4)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_wrong_model_geometry_is_reported():
    tm = HandModel(energy_model(context_tics=64, stride_tics=4), ["loud", "quiet"], stride_tics=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ClassifyError, match="do not match its layers"):
            classify_samples(tm, noise(1_000), rate=RATE)


def test_command_line_classify_then_ethogram(small_model, tmp_path, capsys):
    from songexplorer_cli import main
    from songexplorer_core.ethogram import write_thresholds_csv

    models.save_trained_model(small_model, tmp_path / "logs" / "train_1r" / "ckpt-30")
    audio = noise(5_000, seed=8)
    wav = write_wav(tmp_path / "song.wav", audio)
    bad = write_wav(tmp_path / "other.wav", noise(5_000), rate=5_000)
    out = tmp_path / "out"
    status = main(["classify", str(wav), str(bad), "--model", str(tmp_path / "logs" / "train_1r" / "ckpt-30"),
                   "--out-dir", str(out), "--prevalences", "1,1,2", "--labels", "c,b,a", "--no-progress"])
    assert status == 1  # the 5 kHz recording failed and is named; song.wav was still written
    assert "other.wav: sample rate is 5000 Hz" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["song-a.wav", "song-b.wav", "song-c.wav",
                                                     "song.wav-classify.json", "song.wav-probabilities.npz"]
    made_by = json.loads((out / "song.wav-classify.json").read_text())
    assert made_by["complete"] and made_by["model"]["checkpoint"] == "30" and len(made_by["model"]["sha256"]) == 64
    probs = read_probabilities(out / "song.wav-probabilities.npz")
    expected = classify_samples(small_model, soundfile.read(str(wav), dtype="int16")[0], rate=RATE,
                                prevalences={"a": 2, "b": 1, "c": 1})
    np.testing.assert_allclose(probs.values, expected.values, atol=2e-6)
    # thresholds at the median of each label's probability: every label gets some intervals
    computed = probs.values[probs.npadding:]
    thresholds = {label: float(np.median(computed[:, i])) for i, label in enumerate(probs.labels)}
    thresholds_file = write_thresholds_csv(thresholds, tmp_path / "logs" / "train_1r" / "thresholds.ckpt-30.csv")
    from songexplorer_core.annotations import read_intervals_csv
    from songexplorer_core.ethogram import ethogram_maxprob

    # the default for an exclusive model: each sample's most probable label
    assert main(["ethogram", str(wav), "--thresholds", str(thresholds_file), "--probabilities-dir", str(out),
                 "--no-progress"]) == 0
    assert read_intervals_csv(out / "song.wav-predicted.csv").equals(ethogram_maxprob(probs, wav="song.wav"))
    status = main(["ethogram", str(wav), "--thresholds", str(thresholds_file), "--probabilities-dir", str(out),
                   "--method", "threshold", "--no-progress"])
    assert status == 0
    predicted = read_intervals_csv(out / "song.wav-predicted.csv")
    assert set(predicted["label"]) == {"a", "b", "c"}
    assert predicted.equals(ethogram_threshold(probs, thresholds, wav="song.wav"))
    # a model whose label 'a' was annotated with points: one event per peak, unless asked not to
    import pandas as pd

    from songexplorer_core.ethogram import model_ethogram, read_annotation_durations

    pd.DataFrame({"label": ["a", "b", "c"], "points": [20, 0, 0], "ranges": [0, 5, 5],
                  "shortest_range_s": [float("nan"), 0.1, 0.1], "median_range_s": [float("nan"), 0.2, 0.2],
                  "shortest_gap_s": [0.02, float("nan"), float("nan")]}).to_csv(
        thresholds_file.parent / "annotation-durations.csv", index=False)
    durations = read_annotation_durations(thresholds_file.parent)
    assert main(["ethogram", str(wav), "--thresholds", str(thresholds_file), "--probabilities-dir", str(out),
                 "--event-min-peak", "0.4", "--no-progress"]) == 0
    events = read_intervals_csv(out / "song.wav-predicted.csv")
    assert events.equals(model_ethogram(probs, thresholds, durations, wav="song.wav", event_min_peak=0.4))
    assert main(["ethogram", str(wav), "--thresholds", str(thresholds_file), "--probabilities-dir", str(out),
                 "--event-refractory-fraction", "0", "--no-progress"]) == 0
    assert read_intervals_csv(out / "song.wav-predicted.csv").equals(
        model_ethogram(probs, thresholds, durations, wav="song.wav", event_refractory_fraction=0))
    (thresholds_file.parent / "annotation-durations.csv").unlink()
    (out / "song.wav-probabilities.npz").unlink()  # now from SongExplorer's probability WAVs
    # classify's manifest records the tic rate the WAVs cannot carry
    assert main(["ethogram", "song.wav", "--thresholds", str(thresholds_file), "--probabilities-dir", str(out),
                 "--no-progress"]) == 0
    (out / "song.wav-classify.json").unlink()  # as SongExplorer's own folders: the rate must be given
    assert main(["ethogram", "song.wav", "--thresholds", str(thresholds_file), "--probabilities-dir", str(out),
                 "--no-progress"]) == 1
    assert "--audio-tic-rate" in capsys.readouterr().err
    assert main(["ethogram", "song.wav", "--thresholds", str(thresholds_file), "--probabilities-dir", str(out),
                 "--audio-tic-rate", "2500", "--method", "threshold", "--no-progress"]) == 0
    from_wavs = read_intervals_csv(out / "song.wav-predicted.csv")
    assert abs(len(from_wavs) - len(predicted)) <= 0.05 * len(predicted)  # int16 rounding moves a few edges


@pytest.mark.slow
def test_supervised_loop_finds_song_in_a_recording_it_never_saw(tmp_path):
    """train (train.py) -> accuracy -> classify -> ethogram on generated fly song."""
    from songexplorer_core import synth
    from songexplorer_core import train as T
    from songexplorer_core.accuracy import accuracy_report, write_accuracy_outputs
    from songexplorer_core.annotations import write_intervals_csv
    from songexplorer_core.ethogram import read_thresholds_csv

    params = synth.SongParams(sine_bout_rate_per_min=8.0)
    groundtruth = tmp_path / "groundtruth"
    groundtruth.mkdir()
    for i in range(2):
        song = synth.make_song(60.0, seed=10 + i, wav=f"song{i}.wav", params=params)
        synth.write_song(song, groundtruth / song.wav)
        seeds = synth.seed_annotations(song, {"mel-pulse": 30, "mel-sine": 30, "ambient": 30}, seed=20 + i,
                                       allow_fewer=True)
        write_intervals_csv(seeds, groundtruth / f"{song.wav}-annotated-person1.csv")
    unseen = synth.make_song(60.0, seed=99, wav="unseen.wav", params=params)
    synth.write_song(unseen, tmp_path / unseen.wav)
    config = T.TrainConfig(labels_to_use=("mel-pulse", "mel-sine", "ambient"), nsteps=150, validate_period=50,
                           mini_batch=32, batch_seed=1, weights_seed=1, validate_percentage=40)
    model_dir = T.train(groundtruth, config, tmp_path / "logs").replicates[0].model_dir

    report = accuracy_report(model_dir)
    write_accuracy_outputs(report, plots="none")
    assert [c.checkpoint for c in report.checkpoints] == [50, 100, 150]
    assert report.best.overall_f1 >= 0.9
    best = report.best.checkpoint
    thresholds = read_thresholds_csv(model_dir / f"thresholds.ckpt-{best}.csv")
    assert all(0 < t < 1 for t in thresholds.values())

    probs = classify_recording(models.load_trained_model(model_dir / f"ckpt-{best}"), tmp_path / unseen.wav)
    # the project's default ethogram (label of highest probability); SongExplorer's thresholds
    # (logistic of the logit at P/R 1) are stricter on a network trained for 150 steps only
    predicted = ethogram_maxprob(probs)
    by_threshold = ethogram_threshold(probs, thresholds)
    assert 0 < (by_threshold["label"] == "mel-pulse").sum() <= (predicted["label"] == "mel-pulse").sum() * 1.5
    pulses = predicted[predicted["label"] == "mel-pulse"]
    starts, stops = pulses["start"].to_numpy(), pulses["stop"].to_numpy()
    found = [np.any((starts <= c + 10) & (stops >= c - 10)) for c in unseen.pulse_centres]
    assert np.mean(found) >= 0.85  # pulses found where they are, to 10 tics (4 ms)
    sines = predicted[predicted["label"] == "mel-sine"]
    overlap = [np.any((sines["start"] <= b) & (sines["stop"] >= a))
               for a, b in zip(unseen.sines["start"], unseen.sines["stop"])]
    assert np.mean(overlap) >= 0.85
    # predicted pulses lie at pulses or at the onset/offset of a sine bout (which a briefly trained
    # network mistakes for pulses), never in the empty stretches
    events = np.concatenate([unseen.pulse_centres, unseen.sines["start"], unseen.sines["stop"]])
    near = [np.any((events >= a - 100) & (events <= b + 100)) for a, b in zip(starts, stops)]
    assert np.mean(near) >= 0.9


def test_cached_classifier_loads_a_model_folder_once_until_it_changes(small_model, tmp_path, monkeypatch):
    from songexplorer_core.classify import CACHED_MODELS, cached_classifier, clear_classifier_cache

    folders = [models.save_trained_model(small_model, tmp_path / f"m{i}") for i in range(3)]
    loads = []
    load = models.load_trained_model
    monkeypatch.setattr(models, "load_trained_model", lambda folder, **kw: loads.append(folder) or load(folder, **kw))
    clear_classifier_cache()
    trained, classifier = cached_classifier(folders[0])
    assert cached_classifier(str(folders[0])) == (trained, classifier) and len(loads) == 1  # same folder: cached
    np.testing.assert_allclose(classifier.classify_samples(noise(3_000, seed=1), rate=RATE).values,
                               Classifier(small_model).classify_samples(noise(3_000, seed=1), rate=RATE).values,
                               atol=2e-6)
    meta = folders[0] / "model.json"
    stat = meta.stat()
    os.utime(meta, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # rewritten in place: loaded again
    assert cached_classifier(folders[0])[1] is not classifier and len(loads) == 2
    for folder in folders:  # only the CACHED_MODELS most recent stay
        cached_classifier(folder)
    assert len(loads) == 4
    cached_classifier(folders[0])
    assert len(loads) == 4 + (CACHED_MODELS < 3)
    clear_classifier_cache()
