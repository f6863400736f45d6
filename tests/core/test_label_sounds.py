"""Sounds embedded before any model exists (songexplorer_core.label_sounds) and grouped
(cluster.find_clusters): shapes, seeds, truth naming, and that each embedding separates synthetic
song's pulses from its sine."""

import numpy as np
import pandas as pd
import pytest

from songexplorer_core.activations import ActivationsError, read_activations, write_activations
from songexplorer_core.annotations import concat_intervals, intervals_frame
from songexplorer_core.cluster import cluster_activations, find_clusters
from songexplorer_core.detect import detect
from songexplorer_core.label_sounds import (
    activations_without_model, spectral_activations, spectrogram_features, truth_of_sounds,
)
from songexplorer_core.synth import make_song, write_song

RATE = 2500


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    song = make_song(20.0, RATE, seed=4, wav="song.wav")
    path = write_song(song, tmp_path_factory.mktemp("zero") / "song.wav")
    detected = detect(song.samples, RATE, wav=song.wav, quirks=False)
    truth = concat_intervals([song.pulses, song.sines, song.distractors])
    return song, path, detected, truth


def test_a_pure_tone_peaks_in_its_bin_and_silence_is_the_floor():
    tics = np.arange(512)
    tone = (8000 * np.sin(2 * np.pi * 312.5 * tics / RATE)).astype(np.int16)  # bin 8 of a 64-tic FFT
    features = spectrogram_features(np.stack([tone, np.zeros(512, np.int16)])[:, :, None], window_tics=64,
                                    hop_tics=16)
    assert features.shape == (2, 29, 33, 1)
    assert (features[0, :, :, 0].argmax(axis=1) == 8).all()
    assert np.allclose(features[1], -120.0)
    with pytest.raises(ActivationsError, match="shorter than the FFT"):
        spectrogram_features(np.zeros((1, 32, 1), np.int16), window_tics=64, hop_tics=16)


def test_spectral_activations_round_trip_and_cluster_without_a_model(song, tmp_path):
    song_, path, detected, _ = song
    acts = spectral_activations(detected, {song_.wav: path}, rate=RATE)
    assert acts.layer_names == ("input", "spectrogram", "output") and acts.logits.shape == (len(detected), 0)
    assert acts.layers[1].shape[0] == len(detected) and acts.settings["embedding"] == "spectral"
    again = read_activations(write_activations(acts, tmp_path / "a.npz"))
    np.testing.assert_array_equal(again.layers[1], acts.layers[1])
    table = cluster_activations(again, method="pca")
    assert set(table["layer"]) == {1} and len(table) == len(detected)
    with pytest.raises(ActivationsError, match="no sounds to embed"):
        spectral_activations(detected.iloc[:0], {song_.wav: path}, rate=RATE)


def test_the_untrained_network_is_the_same_for_the_same_seed(song):
    song_, path, detected, _ = song
    sounds = detected.iloc[:12]
    one = activations_without_model("untrained", sounds, {song_.wav: path}, rate=RATE, seed=5)
    two = activations_without_model("untrained", sounds, {song_.wav: path}, rate=RATE, seed=5)
    other = activations_without_model("untrained", sounds, {song_.wav: path}, rate=RATE, seed=6)
    (layer,) = one.layers
    assert one.layer_names[layer] not in ("input", "output") and one.settings["weights_seed"] == 5
    np.testing.assert_array_equal(one.layers[layer], two.layers[layer])
    assert not np.array_equal(one.layers[layer], other.layers[layer])
    with pytest.raises(ActivationsError, match="embedding must be one of"):
        activations_without_model("trained", sounds, {song_.wav: path}, rate=RATE)


def test_truth_of_sounds_takes_the_largest_overlap():
    truth = intervals_frame("a.wav", [0, 100], [50, 200], "truth", ["mel-pulse", "mel-sine"])
    sounds = intervals_frame("a.wav", [40, 45, 300], [60, 140, 310], "detected", ["time"] * 3)
    assert truth_of_sounds(sounds, truth).tolist() == ["mel-pulse", "mel-sine", "ambient"]


def test_find_clusters_numbers_groups_by_size_and_leaves_strays_out():
    rng = np.random.default_rng(0)
    big = rng.normal(0, 0.1, (40, 2))
    small = rng.normal(5, 0.1, (20, 2))
    groups = find_clusters(np.vstack([small, big, [[50.0, -50.0]]]), min_cluster_size=5)
    assert (groups[20:60] == 0).all() and (groups[:20] == 1).all() and groups[60] == -1
    assert find_clusters(np.zeros((1, 2))).tolist() == [-1]


@pytest.mark.parametrize("embedding", ["spectral", "untrained"])
def test_each_embedding_groups_synthetic_pulses_apart_from_sine(song, embedding):
    from sklearn.metrics import adjusted_rand_score

    song_, path, detected, truth = song
    names = truth_of_sounds(detected, truth)
    acts = activations_without_model(embedding, detected, {song_.wav: path}, rate=RATE, seed=1)
    table = cluster_activations(acts)
    groups = find_clusters(table[["x", "y"]].to_numpy())
    assert adjusted_rand_score(names, groups) > 0.2  # far from chance (0); benchmarks/label_sounds.py measures
    frame = pd.DataFrame({"truth": names, "group": groups})
    pulse_groups = set(frame.loc[frame["truth"] == "mel-pulse", "group"].mode())
    sine_groups = set(frame.loc[frame["truth"] == "mel-sine", "group"].mode())
    assert pulse_groups.isdisjoint(sine_groups)
