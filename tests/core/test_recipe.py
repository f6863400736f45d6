"""The default training recipe: from a person's first 96 seed annotations, a model that finds
the pulses and sine song of a recording it never saw; and the recipe plumbing and yardstick."""

from __future__ import annotations

import numpy as np
import pytest

from songexplorer_core import recipes
from songexplorer_core.dataset import Augmentation
from songexplorer_core.models import ModelSpec
from songexplorer_core.train import TrainError

LABELS = ("mel-pulse", "mel-sine", "ambient")


# ---------------------------------------------------------------------------------------------
# recipes


def test_tutorial_recipe_is_songexplorers_tutorial_sh():
    config = recipes.tutorial_recipe(LABELS)
    assert config.labels_to_use == LABELS
    assert (config.nsteps, config.validate_period, config.validate_percentage, config.mini_batch) == (300, 30, 40, 32)
    assert (config.learning_rate, config.optimizer, config.loss, config.parallelize) == (0.0002, "Adam", "exclusive", 2)
    assert (config.batch_seed, config.weights_seed, config.nreplicates, config.equalize) == (1, 1, 1, True)
    assert config.model == ModelSpec()
    assert config.model.context_ms == 204.8 and config.model.dropout_rate == 0.5
    assert config.augmentation == Augmentation()
    assert config.negatives is False  # SongExplorer's exclusive loss ignores not_ annotations


def test_default_recipe_changes_only_what_it_says():
    tutorial = recipes.tutorial_recipe(LABELS).to_dict()
    default = recipes.default_recipe(LABELS).to_dict()
    changed = {key for key in default if default[key] != tutorial[key]}
    assert changed == set(recipes.DEFAULT_RECIPE)
    for key, value in recipes.DEFAULT_RECIPE.items():
        if key in ("model", "augmentation"):  # only the fields named change
            fields = {k for k in default[key] if default[key][k] != tutorial[key][k]}
            assert fields == set(value) and all(default[key][k] == v for k, v in value.items())
        else:
            assert default[key] == value


def test_overrides_merge_into_the_model_and_augmentation_and_win_over_the_recipe():
    recipe = {"nsteps": 50, "model": {"dropout_rate": 0.2}, "augmentation": {"volume": (0.5, 2.0)}}
    config = recipes.recipe_config(recipe, "mel-pulse,ambient", nsteps=70, model={"nfeatures": (32, 32)},
                                   augmentation={"noise": (0.0, 0.01)})
    assert config.labels_to_use == ("mel-pulse", "ambient")
    assert config.nsteps == 70
    assert config.model == ModelSpec(dropout_rate=0.2, nfeatures=(32, 32))
    assert config.augmentation == Augmentation(volume=(0.5, 2.0), noise=(0.0, 0.01))
    whole = ModelSpec(context_ms=102.4)
    assert recipes.default_recipe(LABELS, model=whole).model is whole


def test_unknown_or_bad_settings_are_named():
    with pytest.raises(TrainError, match="nstep"):
        recipes.default_recipe(LABELS, nstep=10)
    with pytest.raises(TrainError, match="learning_rate"):
        recipes.default_recipe(LABELS, learning_rate=-1)
    with pytest.raises(ValueError, match="dropout"):
        recipes.default_recipe(LABELS, model={"dropout_rate": 1.5})


# ---------------------------------------------------------------------------------------------
# the yardstick


def test_match_events_one_to_one():
    pulses = [100, 200, 300, 400]
    # one interval per pulse: all found, none false
    exact = recipes.match_events(pulses, [95, 195, 295, 395], [105, 205, 305, 405])
    assert (exact.tp, exact.fp, exact.fn, exact.precision, exact.recall) == (4, 0, 0, 1.0, 1.0)
    # one interval over two pulses finds one of them; two intervals on one pulse: one is false
    merged = recipes.match_events(pulses, [95, 295, 310, 390], [205, 305, 320, 410])
    assert (merged.tp, merged.fp, merged.fn) == (3, 1, 1)
    assert merged.precision == 0.75 and merged.recall == 0.75
    # tolerance: an interval ending 5 tics before a pulse matches only with tolerance >= 5
    near = ([100], [80], [95])
    assert recipes.match_events(*near, tolerance_tics=4).tp == 0
    assert recipes.match_events(*near, tolerance_tics=5).tp == 1
    # the free interval ending first is taken, so a later pulse can still use the long one
    assert recipes.match_events([100, 150], [0, 90], [200, 110]).tp == 2
    assert recipes.match_events([100, 150], [90, 0], [110, 200]).tp == 2
    empty = recipes.match_events([], [], [])
    assert empty.tp == 0 and np.isnan(empty.precision) and np.isnan(empty.recall)


def test_make_ethogram_methods():
    from songexplorer_core.classify import Probabilities

    values = np.array([[0.1, 0.6, 0.3], [0.45, 0.1, 0.45], [0.5, 0.2, 0.3], [0.7, 0.2, 0.1], [0.2, 0.2, 0.6]],
                      np.float32)
    probs = Probabilities(values, LABELS, rate=2500, stride_tics=4, wav="a.wav", ntics=20)
    best = recipes.make_ethogram(probs, method="maxprob")
    assert list(zip(best["label"], best["start"], best["stop"])) == [
        ("mel-sine", 0, 2), ("mel-pulse", 2, 14), ("ambient", 14, 18)]  # samples 0, 1-3 (a tie goes to the first label), 4
    above = recipes.make_ethogram(probs, {"mel-pulse": 0.45}, method="threshold")
    assert list(zip(above["start"], above["stop"])) == [(6, 14)]  # strictly above 0.45
    assert recipes.DEFAULT_ETHOGRAM_METHOD == "maxprob"
    with pytest.raises(ValueError, match="needs thresholds"):
        recipes.make_ethogram(probs, method="threshold")
    with pytest.raises(ValueError, match="method"):
        recipes.make_ethogram(probs, method="mean")


def test_match_events_refuses_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        recipes.match_events([1], [1, 2], [3])
    with pytest.raises(ValueError, match="tolerance"):
        recipes.match_events([1], [1], [3], tolerance_tics=-1)


# ---------------------------------------------------------------------------------------------
# the recipe at work


@pytest.mark.slow
def test_default_recipe_finds_the_pulses_and_sine_of_unseen_recordings(tmp_path):
    """96 seed annotations (2 recordings x 3 labels x 16) -> validation F1 >= 0.9 for pulse and
    sine, and on two recordings it never saw the default ethogram (as the ethograms asset makes
    it: short sine slivers dropped, one event per pulse peak) finds >= 90 % of the pulses, one
    predicted event per pulse, >= 90 % of them true (and the same for sine tics)."""
    from songexplorer_core import models, synth
    from songexplorer_core.accuracy import accuracy_report
    from songexplorer_core.annotations import write_intervals_csv
    from songexplorer_core.classify import Classifier, classify_recording
    from songexplorer_core.ethogram import event_refractory, min_segment_durations, read_annotation_durations
    from songexplorer_core.train import train

    groundtruth = tmp_path / "groundtruth"
    groundtruth.mkdir()
    annotated = 0
    for i in range(2):
        song = synth.make_song(120.0, seed=10 + i, wav=f"song{i}.wav")
        synth.write_song(song, groundtruth / song.wav)
        seeds = synth.seed_annotations(song, 16, seed=20 + i)
        write_intervals_csv(seeds, groundtruth / f"{song.wav}-annotated-person1.csv")
        annotated += len(seeds)
    assert annotated == 96

    result = train(groundtruth, recipes.default_recipe(LABELS), tmp_path / "logs")
    ratio = recipes.DEFAULT_PRECISION_RECALL_RATIO
    report = accuracy_report(result.replicates[0].model_dir, ratios=(ratio,))
    best = report.best
    f1 = dict(zip(best.labels, best.f1))
    assert f1["mel-pulse"] >= 0.9 and f1["mel-sine"] >= 0.9, f1

    classifier = Classifier(models.load_trained_model(result.replicates[0].model_dir / f"ckpt-{best.checkpoint}"))
    durations = read_annotation_durations(result.replicates[0].model_dir)
    events = event_refractory(durations)
    assert set(events) == {"mel-pulse"} and 0.005 < events["mel-pulse"] <= 0.02, events  # from the seed pulses
    tp = npredicted = ntrue = 0
    sine_both = sine_said = sine_true = 0
    for seed in (98, 99):
        unseen = synth.make_song(120.0, seed=seed, wav=f"unseen{seed}.wav")
        synth.write_song(unseen, tmp_path / unseen.wav)
        predicted = recipes.make_ethogram(classify_recording(classifier, tmp_path / unseen.wav),
                                          best.thresholds[ratio], min_segment_s=min_segment_durations(durations),
                                          events=events)
        pulses = recipes.pulse_scores(predicted, unseen.pulse_centres, tolerance_tics=12)  # 4.8 ms
        tp, npredicted, ntrue = tp + pulses.tp, npredicted + pulses.npredicted, ntrue + pulses.ntrue
        said = np.zeros(unseen.ntics, bool)
        true = np.zeros(unseen.ntics, bool)
        for frame, mask in ((predicted[predicted["label"] == "mel-sine"], said), (unseen.sines, true)):
            for start, stop in zip(frame["start"], frame["stop"]):
                mask[start:stop + 1] = True
        sine_both, sine_said, sine_true = sine_both + (said & true).sum(), sine_said + said.sum(), sine_true + true.sum()
    assert ntrue >= 300
    assert tp >= 0.9 * ntrue and tp >= 0.9 * npredicted, (tp, npredicted, ntrue)
    assert sine_both >= 0.9 * sine_true and sine_both >= 0.9 * sine_said, (sine_both, sine_said, sine_true)
