"""Autoencoder pre-training: it learns to reconstruct unannotated song, writes a model folder a
classifier starts from (its convolutions copied, a new output), and refuses bad input clearly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from songexplorer_core import autoencoder as A
from songexplorer_core import models as M
from songexplorer_core import synth
from songexplorer_core import train as T
from songexplorer_core import transfer
from songexplorer_core.annotations import write_intervals_csv
from songexplorer_cli import main as cli_main

SPEC = M.ModelSpec(nfeatures=(8, 8))


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unannotated")
    for i in range(2):
        synth.write_song(synth.make_song(20.0, seed=40 + i, wav=f"r{i}.wav"), folder / "sub" / f"r{i}.wav")
    return folder


@pytest.fixture(scope="module")
def pretrained(recordings, tmp_path_factory):
    out = tmp_path_factory.mktemp("ae")
    return A.pretrain(recordings, A.AutoencoderConfig(model=SPEC, nsteps=60, validate_period=20), out)


def test_pretraining_reduces_the_reconstruction_error(pretrained):
    history = pretrained.history
    assert list(history["step"]) == list(range(1, 61))
    assert list(history.dropna(subset=["validation_loss"])["step"]) == [20, 40, 60]
    extra = M.read_model_metadata(pretrained.encoder)["extra"]["autoencoder"]
    # a standardised target: predicting each bin's mean scores about 1
    assert 0.8 < extra["initial_validation_loss"] < 1.5
    assert extra["final_validation_loss"] < 0.9 * extra["initial_validation_loss"]
    assert extra["recordings"] == ["r0.wav", "r1.wav"] and extra["seconds_of_audio"] == pytest.approx(40.0)
    assert extra["encoder_output"] == "relu2"
    settings = json.loads((pretrained.out_dir / A.SETTINGS_FILE).read_text())
    assert settings["rate"] == 2500 and settings["nsteps"] == 60


def test_a_classifier_starts_from_the_encoder(pretrained, tmp_path):
    song = synth.make_song(40.0, seed=50, wav="song.wav", params=synth.SongParams(sine_bout_rate_per_min=8.0))
    synth.write_song(song, tmp_path / "gt" / song.wav)
    write_intervals_csv(synth.seed_annotations(song, 12, seed=50, allow_fewer=True),
                        tmp_path / "gt" / "song.wav-annotated-p.csv")
    assert transfer.model_folder(pretrained.out_dir) == pretrained.encoder
    config = T.TrainConfig(labels_to_use=("mel-pulse", "mel-sine", "ambient"), nsteps=0, mini_batch=8,
                           batch_seed=1, weights_seed=1)
    config = transfer.transfer_config(config, pretrained.encoder, freeze=2)
    result = T.train(tmp_path / "gt", config, tmp_path / "child")
    encoder = M.load_trained_model(pretrained.encoder).keras_model
    child = M.load_trained_model(result.replicates[0].checkpoint(0)).keras_model
    for name in ("conv1", "conv2"):
        assert all(np.array_equal(a, b) for a, b in zip(encoder.get_layer(name).get_weights(),
                                                         child.get_layer(name).get_weights()))
        assert not child.get_layer(name).trainable
    assert child.get_layer("output").get_weights()[0].shape[-1] == 3


def test_bad_input_is_refused(recordings, pretrained, tmp_path):
    with pytest.raises(A.AutoencoderError, match="already holds a pre-trained encoder"):
        A.pretrain(recordings, A.AutoencoderConfig(model=SPEC, nsteps=1), pretrained.out_dir)
    with pytest.raises(A.AutoencoderError, match="no recordings"):
        A.pretrain(tmp_path, A.AutoencoderConfig(nsteps=1), tmp_path / "out")
    synth.write_song(synth.make_song(5.0, 5000, seed=1, wav="fast.wav"), tmp_path / "mixed" / "fast.wav")
    synth.write_song(synth.make_song(5.0, 2500, seed=1, wav="slow.wav"), tmp_path / "mixed" / "slow.wav")
    with pytest.raises(A.AutoencoderError, match="one rate and channel count"):
        A.pretrain(tmp_path / "mixed", A.AutoencoderConfig(nsteps=1), tmp_path / "out2")
    with pytest.raises(A.AutoencoderError, match="nsteps must be"):
        A.AutoencoderConfig(nsteps=0)


def test_command_line_pretrains(recordings, tmp_path, capsys):
    code = cli_main(["autoencode", "--recordings", str(recordings), "--out", str(tmp_path / "ae"), "--nsteps", "3",
                     "--validate-period", "0", "--nfeatures", "4,4", "--no-progress", "--device", "cpu"])
    assert code == 0
    assert "songexplorer train --start-from" in capsys.readouterr().out
    assert M.read_model_metadata(tmp_path / "ae" / "encoder")["spec"]["nfeatures"] == [4, 4]
