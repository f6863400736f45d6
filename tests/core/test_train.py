"""Training: it learns generated song, writes SongExplorer's files, resumes exactly after an
interruption, keeps seeds' promises, and refuses bad settings clearly."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from songexplorer_core import models as M
from songexplorer_core import synth
from songexplorer_core import train as T
from songexplorer_core.annotations import write_intervals_csv
from songexplorer_cli import main as cli_main

LABELS = ("mel-pulse", "mel-sine", "ambient")


@pytest.fixture(scope="module")
def song_folder(tmp_path_factory):
    """Two 60 s recordings of generated song with sparse seed annotations (~30 per label each)."""
    folder = tmp_path_factory.mktemp("groundtruth")
    for i in range(2):
        song = synth.make_song(60.0, seed=10 + i, wav=f"song{i}.wav",
                               params=synth.SongParams(sine_bout_rate_per_min=8.0))
        synth.write_song(song, folder / song.wav)
        seeds = synth.seed_annotations(song, {"mel-pulse": 30, "mel-sine": 30, "ambient": 30}, seed=20 + i,
                                       allow_fewer=True)
        write_intervals_csv(seeds, folder / f"{song.wav}-annotated-person1.csv")
    return folder


def config(**changes) -> T.TrainConfig:
    values = dict(labels_to_use=LABELS, nsteps=20, validate_period=10, mini_batch=16, batch_seed=1, weights_seed=1,
                  validate_percentage=40)
    values.update(changes)
    return T.TrainConfig(**values)


@pytest.fixture(scope="module")
def dataset(song_folder):
    return T.prepare_dataset(song_folder, config())


@pytest.fixture(scope="module")
def trained(song_folder, dataset, tmp_path_factory):
    """The tutorial network trained briefly on generated song."""
    out = tmp_path_factory.mktemp("trained")
    return T.train(song_folder, config(nsteps=150, validate_period=50, mini_batch=32), out, dataset=dataset)


def test_short_training_learns_generated_song(trained):
    history = trained.history
    validated = history.dropna(subset=["validation_accuracy"])
    assert list(validated["step"]) == [50, 100, 150]
    assert validated["validation_accuracy"].iloc[-1] >= 0.9
    assert history["train_loss"].iloc[-10:].mean() < history["train_loss"].iloc[:10].mean() / 3


def test_training_writes_songexplorers_files(trained, dataset):
    model_dir = trained.replicates[0].model_dir
    assert model_dir.name == "train_1r"
    assert trained.checkpoint_steps == [0, 50, 100, 150]
    assert trained.replicates[0].validation_steps == [50, 100, 150]
    assert (model_dir / "labels.txt").read_bytes() == b"mel-pulse\nmel-sine\nambient"
    # how each label was annotated, for the ethogram's segment minimums: pulses are points,
    # sine and ambient ranges
    durations = pd.read_csv(model_dir / "annotation-durations.csv").set_index("label")
    used = dataset.sounds.assign(seconds=(dataset.sounds["stop"] - dataset.sounds["start"]) / dataset.rate)
    assert durations.loc["mel-pulse", "ranges"] == 0 and durations.loc["mel-pulse", "points"] > 0
    for label in ("mel-sine", "ambient"):
        mine = used[used["label"] == label]
        assert durations.loc[label, "points"] == 0 and durations.loc[label, "ranges"] == len(mine)
        assert durations.loc[label, "shortest_range_s"] == pytest.approx(mine["seconds"].min())
    history = pd.read_csv(model_dir / "history.csv")
    assert list(history.columns) == list(T.HISTORY_COLUMNS) and list(history["step"]) == list(range(1, 151))
    log = (model_dir / "train.log").read_text()
    assert "Trainable params: 61443" in log and "num validation labels" in log
    assert "\nConfusion Matrix:\n ['mel-pulse', 'mel-sine', 'ambient']\n [[" in log
    assert log.count(" Validation\n") == 3
    assert re.search(r"\n[0-9.]+,150,[0-9.]+,[0-9.]+\n", log)  # elapsed,step,accuracy%,loss
    with np.load(model_dir / "validation.ckpt-150.npz") as npz:
        n = len(dataset.indices("validation"))
        assert npz["logits"].shape == (n, 2, 3) and npz["logits"].dtype == np.float32
        assert npz["groundtruth"].shape == (n, 2) and set(np.unique(npz["groundtruth"])) <= {-1, 0, 1, 2}
        assert list(npz["labels"]) == list(LABELS)
        for key in ("wav", "start", "stop", "kind", "label", "offset_tic"):
            assert len(npz[key]) == n
        # the ground truth names each annotation's label on its taps
        label_index = [LABELS.index(x) for x in npz["label"]]
        np.testing.assert_array_equal(npz["groundtruth"].max(axis=1), label_index)
        assert ((npz["offset_tic"] >= npz["start"]) & (npz["offset_tic"] <= npz["stop"])).all()


def test_validation_logits_are_the_checkpoint_on_the_recorded_windows(trained, song_folder):
    """A consumer can recompute every stored logit from the checkpoint and offset_tic."""
    model_dir = trained.replicates[0].model_dir
    model = M.load_trained_model(model_dir / "ckpt-100")
    assert model.labels == list(LABELS) and (model.context_tics, model.stride_tics) == (512, 4)
    with np.load(model_dir / "validation.ckpt-100.npz") as npz:
        logits, wavs, offsets = npz["logits"], npz["wav"], npz["offset_tic"]
    from songexplorer_core.audio import read_recording

    audio = {w: read_recording(song_folder / w, dtype="float32")[1] for w in set(wavs)}
    ntics = model.input_tics(2)
    windows = np.stack([audio[w][o - ntics // 2: o - ntics // 2 + ntics] for w, o in zip(wavs, offsets)])
    np.testing.assert_allclose(np.asarray(model.keras_model(windows)), logits, atol=1e-4)


def test_interrupted_training_resumes_exactly(song_folder, dataset, tmp_path):
    settings = config(augmentation=dict(volume=(0.8, 1.2), noise=(0.0, 0.01)), steps_per_call=4)
    whole = T.train(song_folder, settings, tmp_path / "whole", dataset=dataset)

    class Interrupted(Exception):
        pass

    def stop_at_15(progress):
        if progress.step == 15:
            raise Interrupted

    with pytest.raises(Interrupted):
        T.train(song_folder, settings, tmp_path / "split", progress=stop_at_15, dataset=dataset)
    model_dir = tmp_path / "split" / "train_1r"
    assert T.checkpoint_steps(model_dir) == [0, 10]
    resumed = T.train(song_folder, settings, tmp_path / "split", dataset=dataset)
    assert resumed.replicates[0].resumed_from == 10
    assert resumed.checkpoint_steps == [0, 10, 20]
    a = M.load_trained_model(whole.replicates[0].checkpoint(20)).keras_model.get_weights()
    b = M.load_trained_model(resumed.replicates[0].checkpoint(20)).keras_model.get_weights()
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    pd.testing.assert_series_equal(whole.history["train_loss"], resumed.history["train_loss"])
    assert "resuming from" in (model_dir / "train.log").read_text()
    # asking for more steps extends the same training
    longer = T.train(song_folder, T.TrainConfig(**{**settings.__dict__, "nsteps": 30}), tmp_path / "split",
                     dataset=dataset)
    assert longer.replicates[0].resumed_from == 20 and longer.checkpoint_steps[-1] == 30


def test_every_validated_step_is_a_checkpoint(song_folder, dataset, tmp_path):
    # validating more often than checkpointing: accuracy may pick any validated step as the best,
    # so its model must exist (a bundle of a missing ckpt-N failed before)
    from songexplorer_core import accuracy as A

    result = T.train(song_folder, config(nsteps=30, validate_period=10, save_period=100), tmp_path, dataset=dataset)
    replicate = result.replicates[0]
    assert replicate.validation_steps == [10, 20, 30]
    assert result.checkpoint_steps == [0, 10, 20, 30]
    best = A.accuracy_report(replicate.model_dir).best
    assert list(M.load_trained_model(replicate.checkpoint(best.checkpoint)).labels) == list(LABELS)


def test_other_settings_in_the_same_folder_are_refused(song_folder, dataset, tmp_path):
    T.train(song_folder, config(nsteps=2, validate_period=1), tmp_path, dataset=dataset)
    with pytest.raises(T.TrainError, match=r"train_1r: holds a training with other settings \(parallelize: 2 there"):
        T.train(song_folder, config(nsteps=4, parallelize=4), tmp_path, dataset=dataset)


def test_corrupt_checkpoint_gives_a_clear_message(song_folder, dataset, tmp_path):
    T.train(song_folder, config(nsteps=2, validate_period=1), tmp_path, dataset=dataset)
    (tmp_path / "train_1r" / "ckpt-2" / "model.keras").write_bytes(b"truncated")
    with pytest.raises(M.ModelError, match=r"train_1r/ckpt-2/model.keras: corrupt or unreadable"):
        T.train(song_folder, config(nsteps=4, validate_period=1), tmp_path, dataset=dataset)


def test_weights_seed_fixes_the_initial_weights_whatever_the_batch_seed(song_folder, dataset, tmp_path):
    runs = {name: T.train(song_folder, config(nsteps=2, validate_period=0, **seeds), tmp_path / name,
                          dataset=dataset)
            for name, seeds in {"a": dict(weights_seed=5, batch_seed=1), "b": dict(weights_seed=5, batch_seed=2),
                                "c": dict(weights_seed=6, batch_seed=1)}.items()}
    initial = {name: M.load_trained_model(r.replicates[0].checkpoint(0)).keras_model.get_weights()
               for name, r in runs.items()}
    for x, y in zip(initial["a"], initial["b"]):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(initial["a"][0], initial["c"][0])
    assert not runs["a"].history["train_loss"].equals(runs["b"].history["train_loss"])


def test_replicates_get_their_own_folders_and_seeds(song_folder, dataset, tmp_path):
    result = T.train(song_folder, config(nsteps=2, validate_period=0, nreplicates=2), tmp_path, dataset=dataset)
    assert [p.name for p in result.model_dirs] == ["train_1r", "train_2r"]
    one, two = (M.load_trained_model(r.checkpoint(0)).keras_model.get_weights()[0] for r in result.replicates)
    assert not np.array_equal(one, two)
    assert set(result.history["replicate"]) == {1, 2}


def test_overlapped_loss_trains_and_writes_per_label_ground_truth(song_folder, tmp_path):
    for csv in song_folder.glob("*-annotated-person1.csv"):
        table = pd.read_csv(csv, header=None, names=["wav", "start", "stop", "kind", "label"])
        sine = table[table["label"] == "mel-sine"].assign(label="not_mel-pulse")
        write_intervals_csv(pd.concat([table, sine]), tmp_path / "gt" / csv.name)
        (tmp_path / "gt" / table["wav"].iloc[0]).symlink_to(song_folder / table["wav"].iloc[0])
    result = T.train(tmp_path / "gt", config(loss="overlapped", labels_to_use=("mel-pulse", "mel-sine"),
                                             nsteps=10, validate_period=10), tmp_path / "out")
    with np.load(result.replicates[0].validation_file()) as npz:
        assert npz["groundtruth"].dtype == np.int8 and npz["groundtruth"].shape[1:] == (2, 2)
        assert npz["logits"].shape[1:] == (2, 2)
        # a not_mel-pulse annotation: mel-pulse absent (0); a mel-sine one: mel-sine present (1)
        not_pulse = npz["label"] == "not_mel-pulse"
        assert (npz["groundtruth"][not_pulse][..., 0] == 0).all()
        assert (npz["groundtruth"][npz["label"] == "mel-sine"][..., 1] == 1).all()
        assert not_pulse.any()


@pytest.mark.parametrize("changes, message", [
    (dict(optimizer="adamw2"), "optimizer 'adamw2' is not one of"),
    (dict(labels_to_use=""), "labels_to_use is empty"),
    (dict(loss="autoencoder"), "loss must be one of"),
    (dict(mini_batch=0), "mini_batch must be a whole number >= 1"),
    (dict(augmentation=dict(reverse=True), model=M.ModelSpec(shiftby_ms=10.0)), "reverse augmentation with shiftby"),
])
def test_bad_settings_are_refused(changes, message):
    with pytest.raises(T.TrainError, match=message):
        config(**changes)


def test_every_songexplorer_optimizer_is_available():
    for name in ("Adadelta", "Adagrad", "Adam", "Adamax", "Ftrl", "Nadam", "RMSProp", "SGD"):
        optimizer = T._make_optimizer(name, 0.001)
        assert type(optimizer).__name__.lower() == name.lower()


def test_config_round_trips_through_json():
    settings = config(augmentation=dict(noise=(0, 0.1)), model=M.ModelSpec(nfeatures=(32, 16)))
    assert T.TrainConfig.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings


def test_command_line_trains_and_reports_bad_input(song_folder, tmp_path, capsys):
    code = cli_main(["train", "--groundtruth", str(song_folder), "--out", str(tmp_path / "cli"),
                     "--labels", ",".join(LABELS), "--nsteps", "4", "--validate-period", "2", "--mini-batch", "8",
                     "--batch-seed", "1", "--weights-seed", "1", "--no-progress", "--nfeatures", "8,8"])
    assert code == 0
    assert T.checkpoint_steps(tmp_path / "cli" / "train_1r") == [0, 2, 4]
    assert json.loads((tmp_path / "cli" / "train_1r" / "train.json").read_text())["model"]["nfeatures"] == [8, 8]
    code = cli_main(["train", "--groundtruth", str(song_folder), "--out", str(tmp_path / "bad"),
                     "--labels", "mel-pulse,song-of-the-sirens", "--no-progress"])
    assert code == 2
    assert "with label(s) ['song-of-the-sirens']" in capsys.readouterr().err


def test_command_line_takes_its_defaults_from_the_recipe():
    import argparse

    from songexplorer_cli import train as train_cli
    from songexplorer_core.recipes import default_recipe, tutorial_recipe

    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers())

    def parsed(*flags):
        args = parser.parse_args(["train", "--groundtruth", "g", "--out", "o", "--labels", "a,b", *flags])
        return train_cli.config_from_args(args)

    # with no flags, the command trains what Dagster's trained_model trains
    assert parsed() == default_recipe("a,b")
    assert parsed().save_period == 100 and parsed().model.dropout_rate == 0.2
    assert parsed("--recipe", "tutorial") == tutorial_recipe("a,b")
    # a flag given wins over the recipe; an explicit validate period also sets the checkpoints
    changed = parsed("--nsteps", "50", "--validate-period", "10", "--dropout", "35", "--learning-rate", "0.01")
    assert (changed.nsteps, changed.validate_period, changed.checkpoint_period) == (50, 10, 10)
    assert changed.model.dropout_rate == 0.35 and changed.learning_rate == 0.01
    assert changed.parallelize == default_recipe("a,b").parallelize
    # negatives: the recipe's (default on, tutorial off) unless a flag says otherwise
    assert parsed().negatives is True and parsed("--recipe", "tutorial").negatives is False
    assert parsed("--no-negatives").negatives is False
    assert parsed("--recipe", "tutorial", "--negatives").negatives is True


def test_configure_compute_checks_its_arguments_and_says_what_it_could_not_set():
    import tensorflow as tf

    from songexplorer_core.compute import configure_compute

    with pytest.raises(ValueError, match="device must be one of"):
        configure_compute("tpu")
    with pytest.raises(ValueError, match="threads must be a positive number"):
        configure_compute("cpu", threads=0)
    if not tf.config.list_physical_devices("GPU"):
        with pytest.raises(RuntimeError, match="sees no GPU"):
            configure_compute("gpu")
    with pytest.warns(UserWarning, match="oneDNN setting ignored: TensorFlow was already imported"):
        info = configure_compute("cpu", onednn=True)
    assert info.device == "cpu" and info.onednn is None


def test_exclusive_crossentropy_of_labels_unknowns_and_negatives():
    logits = np.array([[2.0, 0.5, -1.0]] * 3, np.float32)
    targets = np.array([1, -1, -2 - 0], np.int32)  # label 1; unknown; not label 0
    crossentropy, correct, mask = (np.asarray(x) for x in T.exclusive_crossentropy(logits, targets))
    p = np.exp(logits[0]) / np.exp(logits[0]).sum()
    np.testing.assert_allclose(crossentropy, [-np.log(p[1]), 0.0, -np.log(1 - p[0])], rtol=1e-5)
    np.testing.assert_array_equal(mask, [1, 0, 1])
    np.testing.assert_array_equal(correct, [0, 0, 0])  # argmax is label 0: wrong for both known taps
