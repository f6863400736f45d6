"""Cluster: separated classes stay separated in 2-D (UMAP, t-SNE, PCA), determinism with a seed,
PCA-first by variance fraction, 3-D, per-layer tables from activations of tones and clicks, and
the Parquet file the annotator reads."""

import numpy as np
import pandas as pd
import pytest
import soundfile

from songexplorer_core.annotations import intervals_frame
from songexplorer_core.cluster import (
    REQUIRED_COLUMNS,
    ClusterError,
    ClusterParams,
    cluster_activations,
    cluster_path,
    embed,
    layers_in,
    nearest_neighbours,
    principal_components,
    read_cluster,
    write_cluster,
)

pytest.importorskip("umap")
pytest.importorskip("sklearn")

RATE = 2500
FAST = {"n_epochs": 50}  # UMAP: few epochs keep the tests quick


def knn_accuracy(coordinates, classes, k=5):
    """Leave-one-out k-nearest-neighbour accuracy of the classes in the embedding."""
    d = ((coordinates[:, None, :] - coordinates[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1)[:, :k]
    votes = classes[nearest]
    predicted = np.array([np.bincount(v).argmax() for v in votes])
    return float((predicted == classes).mean())


def blobs(n_per_class=100, nfeatures=60, nclasses=3, seed=0, spread=1.0):
    """Gaussian classes whose centres are ~8 s.d. apart in a 60-dimensional space."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 8 / np.sqrt(2), (nclasses, nfeatures))
    classes = np.repeat(np.arange(nclasses), n_per_class)
    values = centres[classes] + rng.normal(0, spread, (len(classes), nfeatures))
    return values.astype(np.float32), classes


@pytest.mark.parametrize("method", ["umap", "tsne", "pca"])
def test_separated_classes_separate_in_two_dimensions(method):
    values, classes = blobs()
    embedding = embed(values, method=method, **FAST)
    assert embedding.coordinates.shape == (300, 2) and embedding.coordinates.dtype == np.float32
    assert knn_accuracy(embedding.coordinates, classes) > 0.95


@pytest.mark.parametrize("method", ["umap", "tsne", "pca"])
def test_the_same_seed_gives_the_same_embedding(method):
    values, _ = blobs(n_per_class=60)
    first = embed(values, method=method, seed=7, **FAST).coordinates
    np.testing.assert_array_equal(first, embed(values, method=method, seed=7, **FAST).coordinates)
    if method == "umap":  # t-SNE starts from the (exact) PCA layout and PCA is exact here, whatever the seed
        assert not np.allclose(first, embed(values, method=method, seed=8, **FAST).coordinates)


def test_three_dimensions():
    values, classes = blobs(n_per_class=60)
    for method in ("umap", "tsne", "pca"):
        coordinates = embed(values, method=method, ndims=3, **FAST).coordinates
        assert coordinates.shape == (180, 3)
        assert knn_accuracy(coordinates, classes) > 0.95


def test_pca_finds_the_direction_of_largest_variance():
    rng = np.random.default_rng(2)
    direction = rng.normal(size=20)
    direction /= np.linalg.norm(direction)
    along = rng.normal(0, 10, 500)
    values = along[:, None] * direction[None, :] + rng.normal(0, 0.5, (500, 20))
    coordinates = embed(values, method="pca", standardize=False).coordinates
    assert abs(np.corrcoef(coordinates[:, 0], along)[0, 1]) > 0.99
    assert coordinates[:, 0].var() > 50 * coordinates[:, 1].var()


def test_pca_fraction_keeps_the_fewest_components_reaching_it():
    rng = np.random.default_rng(3)
    # three strong directions (variances 100, 50, 25) in 40 dimensions of weak noise
    basis = np.linalg.qr(rng.normal(size=(40, 40)))[0]
    scores = rng.normal(size=(1000, 3)) * np.sqrt([100.0, 50.0, 25.0])
    values = scores @ basis[:, :3].T + rng.normal(0, 0.3, (1000, 40))
    reduced, explained = principal_components(values.astype(np.float32).copy(), ncomponents=40, fraction=0.95)
    assert reduced.shape == (1000, 3) and explained >= 0.95
    reduced, explained = principal_components(values.astype(np.float32).copy(), ncomponents=40, fraction=0.5)
    assert reduced.shape == (1000, 1)
    embedding = embed(values, method="umap", standardize=False, pca_fraction=0.95, **FAST)
    assert embedding.pca_components == 3 and embedding.explained_variance >= 0.95
    # the cap: never more than pca_components
    assert embed(values, method="umap", standardize=False, pca_components=10, **FAST).pca_components == 10
    # no PCA when the features are fewer than the cap and the fraction is 1
    assert embed(values, method="umap", pca_components=50, **FAST).pca_components == 0


def test_exact_neighbours_include_each_sound_itself():
    values, _ = blobs(n_per_class=30)
    indices, distances = nearest_neighbours(values, 5, "euclidean")
    assert (indices[:, 0] == np.arange(len(values))).all() and np.allclose(distances[:, 0], 0, atol=1e-3)
    brute = np.sqrt(((values[:, None] - values[None]) ** 2).sum(-1))
    np.testing.assert_allclose(distances, np.sort(brute, axis=1)[:, :5], rtol=1e-4, atol=1e-3)
    assert nearest_neighbours(values, 5, "no-such-metric") is None


def test_too_few_sounds_and_bad_parameters_are_refused():
    with pytest.raises(ClusterError, match="3 sound.*too few.*at least 4"):
        embed(np.zeros((3, 10)))
    with pytest.raises(ClusterError, match="method"):
        ClusterParams(method="kmeans")
    with pytest.raises(ClusterError, match="ndims"):
        ClusterParams(ndims=4)
    with pytest.raises(ClusterError, match="pca_fraction"):
        ClusterParams(pca_fraction=1.5)
    with pytest.raises(ClusterError, match="non-finite"):
        embed(np.full((10, 4), np.nan))


def test_few_sounds_lower_the_neighbours_with_a_warning():
    values, _ = blobs(n_per_class=3, nclasses=2)
    with pytest.warns(UserWarning, match="n_neighbors lowered from 10 to 5"):
        coordinates = embed(values, **FAST).coordinates
    assert coordinates.shape == (6, 2) and np.isfinite(coordinates).all()


# ---------------------------------------------------------------------------------------------
# from activations


@pytest.fixture(scope="module")
def tones_and_clicks(tmp_path_factory):
    """Activations of a tiny untrained network at 60 tones (200-300 Hz, 40 ms) and 60 clicks
    (2 ms noise bursts) in quiet noise, one recording in a sub-folder."""
    models = pytest.importorskip("songexplorer_core.models")
    from songexplorer_core.activations import compute_activations

    rng = np.random.default_rng(0)
    ntics = 120 * 500 + 1000
    samples = rng.normal(0, 30, ntics)
    centres = 500 + np.arange(120) * 500
    labels = np.array(["tone", "click"] * 60)
    for centre, label in zip(centres, labels):
        if label == "tone":
            t = np.arange(100) / RATE
            samples[centre - 50: centre + 50] += 5000 * np.sin(2 * np.pi * rng.uniform(200, 300) * t) * np.hanning(100)
        else:
            samples[centre - 2: centre + 3] += rng.normal(0, 5000, 5)
    path = tmp_path_factory.mktemp("gt") / "tc.wav"
    soundfile.write(str(path), samples.astype(np.int16), RATE, subtype="PCM_16")
    spec = models.ModelSpec(context_ms=51.2, nfeatures=(8, 8), dropout_rate=0.0)
    model = models.new_trained_model(spec, labels=["tone", "click"], rate=RATE, seed=1)
    table = intervals_frame("tc.wav", centres, centres, "annotated", labels)
    table["recording"] = "round1/tc.wav"
    return compute_activations(model, table, {"round1/tc.wav": path}, layers="0-3")


def test_tones_and_clicks_separate_in_every_layer(tones_and_clicks):
    acts = tones_and_clicks
    frame = cluster_activations(acts, **FAST)
    assert layers_in(frame) == [0, 1, 2, 3]
    assert len(frame) == 4 * acts.nsounds
    classes = (acts.sounds["label"].to_numpy() == "tone").astype(int)
    for index in (1, 2, 3):
        rows = frame[frame["layer"] == index]
        assert rows["layer_name"].iat[0] == acts.layer_names[index]
        pd.testing.assert_frame_equal(rows[["wav", "start", "stop", "kind", "label"]].reset_index(drop=True),
                                      acts.sounds[["wav", "start", "stop", "kind", "label"]].reset_index(drop=True),
                                      check_dtype=False)
        assert knn_accuracy(rows[["x", "y"]].to_numpy(), classes) > 0.9, acts.layer_names[index]
    # the project's recording key, so the annotator finds recordings in sub-folders
    assert set(frame["recording"]) == {"round1%2Ftc.wav"}
    # sounds that already carry project keys (the Dagster assets') keep them as they are
    from dataclasses import replace

    keyed = replace(acts, sounds=acts.sounds.assign(recording="round1%2Ftc.wav"))
    assert set(cluster_activations(keyed, layers=[1], method="pca")["recording"]) == {"round1%2Ftc.wav"}


def test_cluster_default_layers_and_choice(tones_and_clicks):
    acts = tones_and_clicks
    chosen = cluster_activations(acts, layers="conv1", method="pca")
    assert layers_in(chosen) == [2] and list(chosen.columns[:7]) == ["wav", "start", "stop", "kind", "label",
                                                                     "recording", "x"]
    three = cluster_activations(acts, layers="representation", method="pca", ndims=3)
    assert "z" not in chosen.columns and "z" in three.columns
    output = cluster_activations(acts, layers="output", method="pca")  # the output: the 2 logits
    # two components of two standardised features: a rotation, distances kept
    z = (acts.logits - acts.logits.mean(0)) / acts.logits.std(0)
    xy = output[["x", "y"]].to_numpy()
    np.testing.assert_allclose(np.linalg.norm(xy[:, None] - xy[None], axis=-1),
                               np.linalg.norm(z[:, None] - z[None], axis=-1), atol=1e-3)
    with pytest.raises(ClusterError, match="2 feature.*3 principal components"):
        cluster_activations(acts, layers="output", method="pca", ndims=3)
    from songexplorer_core.activations import ActivationsError

    with pytest.raises(ActivationsError, match="valid indices are 0-4"):
        cluster_activations(acts, layers=[9])


def test_cluster_file_round_trip(tones_and_clicks, tmp_path):
    frame = cluster_activations(tones_and_clicks, layers=[1], method="pca")
    path = write_cluster(frame, cluster_path(tmp_path / "outputs"))
    assert path == tmp_path / "outputs" / "cluster" / "cluster.parquet"
    back = read_cluster(path)
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert all(c in back.columns for c in REQUIRED_COLUMNS)
    assert [p.name for p in path.parent.iterdir()] == ["cluster.parquet"]
    with pytest.raises(ClusterError, match=r"lacks column\(s\) \['x', 'y'\]"):
        write_cluster(frame.drop(columns=["x", "y"]), tmp_path / "bad.parquet")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(ClusterError, match="junk.parquet: not a readable Parquet file"):
        read_cluster(tmp_path / "junk.parquet")
    with pytest.raises(ClusterError, match="no such cluster file"):
        read_cluster(tmp_path / "none.parquet")


def test_pca_embedding_equals_numpy_on_standardised_features():
    rng = np.random.default_rng(5)
    values = rng.normal(size=(400, 12)) * np.geomspace(0.01, 100, 12) + rng.normal(0, 50, 12)
    values[:, 3] = 7.0  # a constant feature stays 0 instead of dividing by 0
    values = values.astype(np.float16)  # as activations are stored
    x = values.astype(np.float64)
    sd = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    expected = z @ vt[:2].T
    got = embed(values, method="pca").coordinates
    for column in range(2):  # components are defined up to their sign
        sign = np.sign(expected[:, column] @ got[:, column])
        np.testing.assert_allclose(got[:, column], sign * expected[:, column], atol=1e-4)
