"""Transfer learning: a training starts from another model's layers (copied equal), gets a new
output layer for its labels, keeps the frozen layers exactly, refuses a rate that does not carry
over, and logs its parent's run, version and URI to MLflow."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from songexplorer_core import models as M
from songexplorer_core import synth
from songexplorer_core import train as T
from songexplorer_core import transfer
from songexplorer_core.annotations import write_intervals_csv
from songexplorer_cli import main as cli_main

PARENT_LABELS = ("mel-pulse", "mel-sine", "ambient")
CHILD_LABELS = ("mel-pulse", "ambient")
SPEC = M.ModelSpec(nfeatures=(8, 8))


def _song_folder(folder, rate=2500, seed=30):
    song = synth.make_song(40.0, rate, seed=seed, wav="song.wav", params=synth.SongParams(sine_bout_rate_per_min=8.0))
    synth.write_song(song, folder / song.wav)
    seeds = synth.seed_annotations(song, 12, seed=seed, allow_fewer=True)
    write_intervals_csv(seeds, folder / "song.wav-annotated-person1.csv")
    return folder


@pytest.fixture(scope="module")
def song_folder(tmp_path_factory):
    return _song_folder(tmp_path_factory.mktemp("groundtruth"))


def config(labels=PARENT_LABELS, **changes) -> T.TrainConfig:
    values = dict(labels_to_use=labels, model=SPEC, nsteps=10, validate_period=10, mini_batch=8, batch_seed=1,
                  weights_seed=1, validate_percentage=30, learning_rate=0.01)
    values.update(changes)
    return T.TrainConfig(**values)


@pytest.fixture(scope="module")
def parent(song_folder, tmp_path_factory):
    """A small network trained briefly on three labels: the model to start from."""
    out = tmp_path_factory.mktemp("parent")
    result = T.train(song_folder, config(), out)
    return result.replicates[0].checkpoint()


def _weights(folder):
    model = M.load_trained_model(folder)
    return {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.keras_model.layers
            if layer.weights}


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_layers_are_copied_and_the_output_is_new(song_folder, parent, tmp_path):
    child_config = transfer.transfer_config(config(CHILD_LABELS, nsteps=0), parent)
    assert child_config.model == M.ModelSpec.from_dict(M.read_model_metadata(parent)["spec"])
    result = T.train(song_folder, child_config, tmp_path)
    start = result.replicates[0].checkpoint(0)  # before any step: exactly the parent's layers
    theirs, ours = _weights(parent), _weights(start)
    assert [n for n in ours if n != "output"] and all(_same(theirs[n], ours[n]) for n in ours if n != "output")
    assert ours["output"][0].shape[-1] == len(CHILD_LABELS) and theirs["output"][0].shape[-1] == len(PARENT_LABELS)
    lineage = json.loads((start / "model.json").read_text())["extra"]["transfer"]
    assert lineage["new"] == ["output"] and lineage["frozen"] == [] and "conv1" in lineage["copied"]
    assert lineage["parent_labels"] == list(PARENT_LABELS)
    assert "transfer: started from" in (result.replicates[0].model_dir / "train.log").read_text()


def test_frozen_layers_stay_the_parents_after_training(song_folder, parent, tmp_path):
    child = transfer.transfer_config(config(CHILD_LABELS, nsteps=10), parent, freeze=1)
    model_dir = T.train(song_folder, child, tmp_path / "freeze").replicates[0].checkpoint()
    theirs, ours = _weights(parent), _weights(model_dir)
    assert _same(theirs["conv1"], ours["conv1"])  # frozen: unchanged by 10 steps
    assert not _same(theirs["conv2"], ours["conv2"])  # trained
    # only the output trains: every copied layer stays the parent's
    child = transfer.transfer_config(config(CHILD_LABELS, nsteps=10), parent, train_layers=("output",))
    result = T.train(song_folder, child, tmp_path / "output-only")
    ours = _weights(result.replicates[0].checkpoint())
    assert all(_same(theirs[n], ours[n]) for n in ours if n != "output")
    # resuming keeps them frozen (the flag is saved with the model)
    longer = T.train(song_folder, T.TrainConfig(**{**child.__dict__, "nsteps": 20}), tmp_path / "output-only")
    assert longer.replicates[0].resumed_from == 10
    ours = _weights(longer.replicates[0].checkpoint())
    assert all(_same(theirs[n], ours[n]) for n in ours if n != "output")


def test_labels_the_parent_has_keep_their_output_columns(parent):
    # labels in another order, one of them new: ambient and mel-pulse keep the parent's kernel
    # column and bias, the new label's column stays as freshly initialised
    labels = ("ambient", "click", "mel-pulse")
    spec = transfer.parent_spec(parent)
    child = M.new_trained_model(spec, labels=labels, rate=2500, seed=1)
    lineage = transfer.start_from(child, parent)
    kernel, bias = child.keras_model.get_layer("output").get_weights()
    theirs_kernel, theirs_bias = _weights(parent)["output"]
    for label in ("ambient", "mel-pulse"):
        mine, its = labels.index(label), PARENT_LABELS.index(label)
        assert np.array_equal(kernel[..., mine], theirs_kernel[..., its]) and bias[mine] == theirs_bias[its]
    untouched = M.new_trained_model(spec, labels=labels, rate=2500, seed=1).keras_model.get_layer("output")
    np.testing.assert_array_equal(kernel[..., 1], untouched.get_weights()[0][..., 1])
    assert lineage["new"] == ["output"] and lineage["shared_labels"] == ["ambient", "mel-pulse"]
    assert "with the parent's outputs of ambient,mel-pulse" in transfer.describe(lineage)
    # shared_labels=False: every column new, the copied layers still the parent's
    fresh = M.new_trained_model(spec, labels=labels, rate=2500, seed=1)
    assert transfer.start_from(fresh, parent, shared_labels=False)["shared_labels"] == []
    np.testing.assert_array_equal(fresh.keras_model.get_layer("output").get_weights()[0],
                                  untouched.get_weights()[0])
    assert _same(fresh.keras_model.get_layer("conv1").get_weights(), _weights(parent)["conv1"])
    # another loss: nothing shared (a sigmoid's logit is not a softmax's)
    sigmoid = M.new_trained_model(spec, labels=labels, rate=2500, seed=1, loss="overlapped")
    assert transfer.start_from(sigmoid, parent)["shared_labels"] == []


def test_same_labels_keep_the_output_layer(song_folder, parent, tmp_path):
    result = T.train(song_folder, transfer.transfer_config(config(nsteps=0), parent), tmp_path)
    assert _same(_weights(parent)["output"], _weights(result.replicates[0].checkpoint(0))["output"])


def test_bad_choices_of_layers_are_refused(song_folder, parent, tmp_path):
    with pytest.raises(T.TrainError, match="give start_from too"):
        config(freeze=1)
    with pytest.raises(T.TrainError, match="not both"):
        config(start_from=str(parent), freeze=1, train_layers=("output",))
    with pytest.raises(transfer.TransferError, match="no layer \\['conv9'\\].*conv1,conv2,output"):
        T.train(song_folder, transfer.transfer_config(config(CHILD_LABELS, nsteps=0), parent,
                                                      train_layers=("conv9",)), tmp_path / "a")
    with pytest.raises(transfer.TransferError, match="keep 0 to 2"):
        T.train(song_folder, transfer.transfer_config(config(CHILD_LABELS, nsteps=0), parent, freeze=3), tmp_path / "b")
    other = config(CHILD_LABELS, nsteps=0, start_from=str(parent), model=M.ModelSpec(nfeatures=(16, 8)))
    with pytest.raises(transfer.TransferError, match="layer conv1 has weights of shapes"):
        T.train(song_folder, other, tmp_path / "c")
    with pytest.raises(transfer.TransferError, match="holds no trained model"):
        transfer.model_folder(tmp_path)


def test_another_rate_is_refused_naming_both(parent, tmp_path):
    folder = _song_folder(tmp_path, rate=5000)
    child = transfer.transfer_config(config(CHILD_LABELS, nsteps=0), parent)
    with pytest.raises(transfer.TransferError) as error:
        T.prepare_dataset(folder, child)
    message = str(error.value)
    assert "\n" not in message and "2500 Hz" in message and "5000 Hz" in message
    assert "resample the recordings to 2500 Hz or train from scratch" in message


def test_a_band_limited_spectrogram_carries_over_to_another_rate():
    band = M.ModelSpec(representation="spectrogram", range_hz=(100.0, 1000.0))
    assert transfer._rate_problem(band, 2500, 5000) == ""
    assert "band" in transfer._rate_problem(M.ModelSpec(representation="spectrogram"), 2500, 5000)
    assert "1250" in transfer._rate_problem(M.ModelSpec(representation="spectrogram", range_hz=(100.0, 1500.0)),
                                            5000, 2500)


def test_frozen_layers_are_chosen_by_name_or_count():
    names = ["conv1", "conv2", "output"]
    assert transfer.frozen_layers(names) == []
    assert transfer.frozen_layers(names, freeze=2) == ["conv1", "conv2"]
    assert transfer.frozen_layers(names, train_layers=("conv2", "output")) == ["conv1"]
    assert transfer.frozen_layers(names, train_layers=("all",)) == []


def test_lineage_of_a_registered_parent_is_logged_to_mlflow(song_folder, tmp_path):
    from songexplorer_core.tracking import TrackingConfig
    from songexplorer_core.training_run import train_and_log

    tracking = TrackingConfig.for_project_dir(tmp_path / "mlflow")
    first = train_and_log(song_folder, config(), tmp_path / "run1", tracking, champion_metric="validation_f1_macro")
    parent = transfer.resolve_parent("champion", tracking=tracking, dst=tmp_path / "run2" / "parent")
    assert parent.lineage["model_version"] == first.tracked.version
    assert parent.lineage["model_uri"] == f"models:/{tracking.registered_model}/{first.tracked.version}"
    child = transfer.transfer_config(config(CHILD_LABELS), parent.folder, train_layers=("conv2", "output"))
    second = train_and_log(song_folder, child, tmp_path / "run2", tracking, champion_metric="validation_f1_macro")
    run = tracking.client().get_run(second.tracked.run_id)
    tags, params = run.data.tags, run.data.params
    assert tags["songexplorer.parent.run_id"] == first.tracked.run_id
    assert tags["songexplorer.parent.version"] == first.tracked.version
    assert tags["songexplorer.parent.uri"] == f"models:/{tracking.registered_model}/{first.tracked.version}"
    assert tags["songexplorer.frozen_layers"] == "conv1"
    assert params["train_layers"] == "conv2,output" and params["start_from"] == str(parent.folder)
    assert "Transfer learning: started from models:/" in tags["mlflow.note.content"]
    # the same URI again (a resumed training) reuses the download
    again = transfer.resolve_parent(f"models:/{tracking.registered_model}/{first.tracked.version}",
                                    tracking=tracking, dst=tmp_path / "run2" / "parent")
    assert again.folder == parent.folder
    with pytest.raises(transfer.TransferError, match="not found in the tracking store"):
        transfer.resolve_parent(f"models:/{tracking.registered_model}/99", tracking=tracking, dst=tmp_path / "x")
    with pytest.raises(transfer.TransferError, match="needs a tracking store"):
        transfer.resolve_parent("models:/songexplorer/1")


def test_command_line_starts_from_a_model_folder(song_folder, parent, tmp_path, capsys):
    logs = parent.parent.parent  # the parent's logs folder: its first replicate's last checkpoint
    assert cli_main(["train", "--groundtruth", str(song_folder), "--out", str(tmp_path / "x"), "--labels",
                     ",".join(CHILD_LABELS), "--start-from", str(logs), "--list-layers", "--device", "cpu"]) == 0
    assert capsys.readouterr().out.split("\n")[0].startswith("conv1\t")
    code = cli_main(["train", "--groundtruth", str(song_folder), "--out", str(tmp_path / "child"), "--labels",
                     ",".join(CHILD_LABELS), "--start-from", str(logs), "--train-layers", "output", "--nsteps", "5",
                     "--validate-period", "5", "--mini-batch", "8", "--no-progress", "--device", "cpu"])
    assert code == 0
    saved = json.loads((tmp_path / "child" / "train_1r" / "train.json").read_text())
    assert saved["start_from"] == str(parent) and saved["train_layers"] == ["output"]
    assert saved["model"]["nfeatures"] == [8, 8]  # the parent's network, not the flags' default
    # no --learning-rate: a fifth of the recipe's (0.001); one given is used as it is
    assert saved["learning_rate"] == pytest.approx(0.001 * transfer.FINE_TUNE_LEARNING_RATE_FACTOR)
    from songexplorer_cli.train import config_from_args

    parser = argparse.ArgumentParser()
    from songexplorer_cli import train as train_cli

    subparsers = parser.add_subparsers()
    train_cli.register(subparsers)
    base = ["train", "--groundtruth", str(song_folder), "--out", str(tmp_path / "y"), "--labels", ",".join(CHILD_LABELS)]
    assert config_from_args(parser.parse_args(base)).learning_rate == pytest.approx(0.001)  # from scratch
    chosen = parser.parse_args([*base, "--start-from", str(logs), "--learning-rate", "0.003"])
    assert config_from_args(chosen).learning_rate == pytest.approx(0.003)


def test_transfer_config_scales_only_a_learning_rate_nobody_chose(parent):
    base = config(CHILD_LABELS, learning_rate=0.001)
    assert transfer.transfer_config(base, parent).learning_rate == 0.001
    scaled = transfer.transfer_config(base, parent, scale_learning_rate=True)
    assert scaled.learning_rate == pytest.approx(0.001 * transfer.FINE_TUNE_LEARNING_RATE_FACTOR)
    assert scaled.start_from == str(parent)
