"""Embed sounds' activations in 2-D or 3-D for browsing (SongExplorer's ``cluster`` plug-ins,
``src/cluster-plugins/``): UMAP by default, t-SNE and PCA as alternatives, one embedding per chosen layer.

Steps for one layer (:func:`embed`): flatten each sound's activations to one vector; standardise
every feature (``(x - mean) / sd``, constant features left at 0) unless ``standardize=False``;
project on principal components first (below); then embed:

* ``umap`` (default): ``umap.UMAP(n_components=ndims, n_neighbors, min_dist, metric)`` with a
  bounded number of epochs (200 by default; umap-learn uses 500 below 10 000 points) and the
  seed as ``random_state``.
* ``tsne``: scikit-learn's Barnes-Hut t-SNE with ``perplexity`` and early ``exaggeration``
  (SongExplorer used openTSNE with the same parameters), PCA initialisation, one thread.
* ``pca``: the first ``ndims`` principal components.

PCA first: SongExplorer's ``pca-fraction`` keeps the smallest number of components whose
cumulative explained variance reaches the fraction (``1`` = no PCA). Here the components are
also capped at ``pca_components`` (50 by default; ``None`` = no cap): a layer of the tutorial
network has 7 616 features per sound and neighbour search on them would dominate the time, while
the first 50 components carry the structure UMAP and t-SNE look at. The variance fraction is of
the total variance of all features.

Deterministic: the same activations, parameters and ``seed`` give the same coordinates (PCA's
randomised SVD, UMAP and t-SNE are all seeded; UMAP then runs on one thread). ``seed=None``
lets UMAP use every core, differently each time.

The result is one table (:func:`cluster_activations`): ``wav, start, stop, kind, label,
recording, x, y[, z], layer, layer_name``, one row per sound and layer, written as Parquet by
:func:`write_cluster` (``outputs/cluster/cluster.parquet`` in a project; the annotator's
cluster view reads it).

umap-learn (which pulls in numba and, when installed, TensorFlow) and scikit-learn are imported
inside the functions that use them.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from songexplorer_core.annotations import COLUMNS
from songexplorer_core.atomic import atomic_path

logger = logging.getLogger(__name__)

METHODS = ("umap", "tsne", "pca")
#: Columns every cluster table has (``z`` as well for 3-D).
REQUIRED_COLUMNS = (*COLUMNS, "x", "y")
#: ``outputs/cluster/cluster.parquet`` relative to a project's outputs folder.
CLUSTER_FILE = Path("cluster") / "cluster.parquet"


class ClusterError(ValueError):
    """Sounds cannot be embedded as asked, or a cluster file cannot be read; the message says
    what and the fix."""


@dataclass(frozen=True)
class ClusterParams:
    """How to embed one layer's activations.

    Attributes:
        method: ``umap``, ``tsne`` or ``pca``.
        ndims: 2 or 3 output dimensions.
        pca_fraction: before UMAP / t-SNE, keep the fewest principal components explaining at
            least this fraction of the variance (SongExplorer's ``pca-fraction``; 1 = all, up
            to ``pca_components``).
        pca_components: at most this many principal components go into UMAP / t-SNE (``None``:
            no cap, PCA only when ``pca_fraction < 1``).
        standardize: scale every feature to zero mean and unit variance first.
        n_neighbors: UMAP's neighbours (SongExplorer's ``neighbors``, default 10).
        min_dist: UMAP's minimum distance (SongExplorer's ``distance``, default 0.1).
        metric: UMAP's distance (``euclidean``, ``cosine``, ``correlation``, ...).
        n_epochs: UMAP's optimisation epochs (``None``: umap-learn's default, 200 or 500).
        init: UMAP's initial layout (``spectral``, ``pca``, ``random``).
        perplexity: t-SNE's perplexity (SongExplorer default 30).
        exaggeration: t-SNE's early exaggeration (SongExplorer default 12).
        seed: random seed (``None``: nondeterministic, UMAP on all cores).
    """

    method: str = "umap"
    ndims: int = 2
    pca_fraction: float = 1.0
    pca_components: int | None = 50
    standardize: bool = True
    n_neighbors: int = 10
    min_dist: float = 0.1
    metric: str = "euclidean"
    n_epochs: int | None = 200
    init: str = "spectral"
    perplexity: float = 30.0
    exaggeration: float = 12.0
    seed: int | None = 0

    def __post_init__(self):
        method = str(self.method).lower().replace("-", "")
        object.__setattr__(self, "method", method)
        if method not in METHODS:
            raise ClusterError(f"method must be one of {METHODS}, not {self.method!r}")
        if int(self.ndims) not in (2, 3):
            raise ClusterError(f"ndims must be 2 or 3, not {self.ndims}")
        object.__setattr__(self, "ndims", int(self.ndims))
        if not 0.0 < float(self.pca_fraction) <= 1.0:
            raise ClusterError(f"pca_fraction is a fraction of the variance in (0, 1], not {self.pca_fraction}")
        if self.pca_components is not None and int(self.pca_components) < self.ndims:
            raise ClusterError(f"pca_components ({self.pca_components}) must be at least ndims ({self.ndims}), "
                               f"or None for no cap")
        if int(self.n_neighbors) < 2:
            raise ClusterError(f"n_neighbors must be at least 2, not {self.n_neighbors}")
        if float(self.min_dist) < 0:
            raise ClusterError(f"min_dist must be >= 0, not {self.min_dist}")
        if self.n_epochs is not None and int(self.n_epochs) < 1:
            raise ClusterError(f"n_epochs must be positive (or None for umap-learn's default), not {self.n_epochs}")
        if float(self.perplexity) <= 0 or float(self.exaggeration) <= 0:
            raise ClusterError(f"perplexity ({self.perplexity}) and exaggeration ({self.exaggeration}) must be positive")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class Embedding:
    """Coordinates of sounds in the embedding.

    Attributes:
        coordinates: float32 ``[nsounds, ndims]``.
        pca_components: principal components fed to UMAP / t-SNE (0: none, the features as they are).
        explained_variance: fraction of the (standardised) variance those components explain
            (NaN when no PCA was done).
    """

    coordinates: np.ndarray
    pca_components: int
    explained_variance: float


# ---------------------------------------------------------------------------------------------
# one layer


def _features(values: np.ndarray, standardize: bool, *, block_bytes: int = 1 << 22) -> np.ndarray:
    """``[n, ...]`` -> float32 ``[n, features]``, standardised if asked; never modifies
    ``values``. Works through blocks of rows (``block_bytes`` each) so that conversion, the
    finiteness check and the sums for mean and variance take one pass over memory, and the
    scaling a second."""
    values = np.asarray(values)
    n = len(values)
    flat = values.reshape(n, -1)
    x = np.empty(flat.shape, dtype=np.float32)
    rows = max(1, block_bytes // max(4 * flat.shape[1], 1))
    total = np.zeros(flat.shape[1], dtype=np.float64)
    squares = np.zeros(flat.shape[1], dtype=np.float64)
    bad = 0
    for i in range(0, n, rows):
        block = x[i: i + rows]
        block[...] = flat[i: i + rows]
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            bad += int((~finite).sum())
            continue
        if standardize:
            total += block.sum(axis=0, dtype=np.float64)
            squares += np.einsum("ij,ij->j", block, block, dtype=np.float64)
    if bad:
        raise ClusterError(f"{bad} sound(s) have non-finite activations (NaN or infinity); they cannot be embedded. "
                           f"Check the model, or compute the activations as float32")
    if standardize and n:
        mean = total / n
        variance = np.maximum(squares / n - mean * mean, 0.0)
        sd = np.sqrt(variance)
        # a feature is constant when its spread is rounding noise of its mean
        sd[sd <= 1e-6 * np.maximum(np.abs(mean), 1e-30)] = 0.0
        scale = np.where(sd > 0, 1.0 / np.where(sd > 0, sd, 1.0), 1.0).astype(np.float32)
        mean32 = mean.astype(np.float32)
        for i in range(0, n, rows):
            block = x[i: i + rows]
            block -= mean32
            block *= scale
    return x


def principal_components(x: np.ndarray, *, ncomponents: int, fraction: float = 1.0, seed: int | None = 0
                         ) -> tuple[np.ndarray, float]:
    """Project ``x`` ``[n, features]`` on its first principal components.

    Keeps at most ``ncomponents`` (and at most ``min(n, features)``); with ``fraction < 1`` the
    fewest of those whose cumulative explained variance reaches ``fraction`` of the total.
    ``x`` may be overwritten.

    Returns:
        ``(scores float32 [n, k], fraction of the total variance the k components explain)``.
    """
    from sklearn.decomposition import PCA  # noqa: PLC0415

    n, nfeatures = x.shape
    k = int(min(ncomponents, n, nfeatures))
    exact = k >= min(n, nfeatures) or min(n, nfeatures) <= 500
    # randomised SVD with two power iterations (Halko et al. 2011) instead of scikit-learn's
    # seven: a third of the time, and on the tutorial network's conv2 activations of 10 000
    # generated sounds its 50 components explain 72.96 % of the variance against 73.22 %
    pca = PCA(n_components=k, svd_solver="full" if exact else "randomized", iterated_power=2,
              random_state=seed, copy=False)
    scores = pca.fit_transform(x)
    cumulative = np.cumsum(pca.explained_variance_ratio_)
    keep = k
    if fraction < 1.0:
        reached = np.flatnonzero(cumulative >= fraction - 1e-12)
        keep = int(reached[0]) + 1 if len(reached) else k
        if not len(reached):
            logger.info("the first %d principal components explain %.3f of the variance, less than the asked %.3f",
                        k, cumulative[-1] if k else 0.0, fraction)
    explained = float(cumulative[keep - 1]) if keep else float("nan")
    return np.ascontiguousarray(scores[:, :keep], dtype=np.float32), explained


def embed(values: np.ndarray, params: ClusterParams | None = None, **overrides) -> Embedding:
    """Embed sounds, one row of ``values`` (any trailing shape) per sound; see the module
    docstring. ``overrides`` replace fields of ``params`` (e.g. ``method="pca"``).

    Raises:
        ClusterError: too few sounds for the method and dimensions, non-finite activations.
    """
    params = ClusterParams(**{**(params or ClusterParams()).to_dict(), **overrides})
    values = np.asarray(values)
    n = int(values.shape[0]) if values.ndim else 0
    minimum = params.ndims + 2 if params.method != "pca" else params.ndims
    if n < minimum:
        raise ClusterError(f"{n} sound(s) are too few to embed with {params.method} in {params.ndims} dimensions: "
                           f"need at least {minimum}. Choose more sounds (kinds, labels, max sounds).")
    x = _features(values, params.standardize)
    nfeatures = x.shape[1]

    if params.method == "pca":
        if min(n, nfeatures) < params.ndims:
            raise ClusterError(f"{nfeatures} feature(s) per sound cannot give {params.ndims} principal components; "
                               f"choose a larger layer or ndims=2")
        scores, explained = principal_components(x, ncomponents=params.ndims, seed=params.seed)
        return Embedding(scores, 0, explained)

    ncomponents = nfeatures if params.pca_components is None else int(params.pca_components)
    if params.pca_fraction < 1.0 or nfeatures > ncomponents:
        x, explained = principal_components(x, ncomponents=ncomponents, fraction=params.pca_fraction,
                                            seed=params.seed)
        kept = x.shape[1]
    else:
        kept, explained = 0, float("nan")

    if params.method == "umap":
        coordinates = _umap(x, params)
    else:
        coordinates = _tsne(x, params)
    return Embedding(np.asarray(coordinates, dtype=np.float32), kept, explained)


def _umap(x: np.ndarray, params: ClusterParams) -> np.ndarray:
    import umap  # noqa: PLC0415 (slow import: numba, and TensorFlow when installed)

    n = len(x)
    n_neighbors = int(params.n_neighbors)
    if n_neighbors >= n:
        warnings.warn(f"only {n} sounds: UMAP's n_neighbors lowered from {n_neighbors} to {n - 1}", stacklevel=3)
        n_neighbors = n - 1
    init = params.init
    if init == "spectral" and n <= params.ndims + 2:
        init = "random"  # the spectral layout needs more points than dimensions + 1
    knn = nearest_neighbours(x, n_neighbors, params.metric)
    reducer = umap.UMAP(
        n_components=params.ndims, n_neighbors=n_neighbors, min_dist=float(params.min_dist), metric=params.metric,
        n_epochs=None if params.n_epochs is None else int(params.n_epochs), init=init,
        random_state=params.seed, n_jobs=1 if params.seed is not None else -1,
        precomputed_knn=(None, None, None) if knn is None else knn,
        # with no exact neighbours from scikit-learn, NN-descent rather than umap-learn's
        # pairwise loop for small data sets (one Python call per pair of sounds)
        force_approximation_algorithm=knn is None,
    )
    with warnings.catch_warnings():
        # disconnected neighbour graphs (well separated clusters) are laid out per component
        warnings.filterwarnings("ignore", message=".*not fully connected.*")
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        return reducer.fit_transform(x)


def nearest_neighbours(x: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Exact ``k`` nearest neighbours of every row of ``x`` (itself included, at distance 0)
    by brute force with scikit-learn: ``(indices int64 [n, k], distances float32 [n, k])``;
    ``None`` for a metric scikit-learn does not know (umap-learn then finds them itself).

    Exact and deterministic, and for the few thousand to tens of thousands of sounds clustered
    here faster than umap-learn's own search (which below 4 096 points calls a Python function
    per pair)."""
    from sklearn.neighbors import NearestNeighbors  # noqa: PLC0415

    try:
        search = NearestNeighbors(n_neighbors=k, metric=metric, algorithm="brute").fit(x)
    except ValueError:
        return None
    distances, indices = search.kneighbors(x)
    return indices.astype(np.int64), np.maximum(distances, 0.0).astype(np.float32)


def _tsne(x: np.ndarray, params: ClusterParams) -> np.ndarray:
    from sklearn.manifold import TSNE  # noqa: PLC0415

    n = len(x)
    perplexity = float(params.perplexity)
    if perplexity >= n:
        lowered = max(1.0, (n - 1) / 3.0)
        warnings.warn(f"only {n} sounds: t-SNE's perplexity lowered from {perplexity:g} to {lowered:g}", stacklevel=3)
        perplexity = lowered
    from threadpoolctl import threadpool_limits  # noqa: PLC0415 (a scikit-learn dependency)

    tsne = TSNE(n_components=params.ndims, perplexity=perplexity, early_exaggeration=float(params.exaggeration),
                init="pca", random_state=params.seed, method="barnes_hut")
    # one OpenMP thread: on a busy 2-core machine scikit-learn's threaded Barnes-Hut gradient
    # spins, and took 5x the CPU time (measured, 300 sounds) of the single-threaded one
    with threadpool_limits(1, user_api="openmp"):
        return tsne.fit_transform(x)


def find_clusters(coordinates: np.ndarray, *, min_cluster_size: int | None = None) -> np.ndarray:
    """Groups of sounds that lie together in an embedding: scikit-learn's HDBSCAN on the
    coordinates ``[n, ndims]`` (what a person sees and selects in the cluster view), int64
    ``[n]`` numbered from 0 by decreasing size, ``-1`` for a sound in no group.

    Args:
        min_cluster_size: the smallest group (default ``max(5, n // 100)``).
    """
    from sklearn.cluster import HDBSCAN  # noqa: PLC0415

    coordinates = np.asarray(coordinates, dtype=np.float64)
    n = len(coordinates)
    if n < 2:
        return np.full(n, -1, dtype=np.int64)
    size = max(2, min(n, int(min_cluster_size) if min_cluster_size else max(5, n // 100)))
    found = HDBSCAN(min_cluster_size=size, copy=True).fit_predict(coordinates)
    groups, counts = np.unique(found[found >= 0], return_counts=True)
    order = groups[np.lexsort((groups, -counts))]  # largest first, ties by HDBSCAN's number
    renumber = np.full(int(found.max()) + 2 if n else 1, -1, dtype=np.int64)
    renumber[order] = np.arange(len(order))
    return np.where(found >= 0, renumber[np.maximum(found, 0)], -1).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# every chosen layer of an activations file


def _recording_keys(recordings: pd.Series) -> list[str]:
    """Project recording keys (``round1%2FPS.wav``): a ground-truth relative path (it has a
    ``/``) is encoded; anything else already is a key (or a top-level name) and is kept."""
    from songexplorer_core.project import recording_key  # noqa: PLC0415

    out = []
    for text in recordings.astype(str):
        try:
            out.append(recording_key(text) if "/" in text else text)
        except ValueError:
            out.append(text)
    return out


def cluster_activations(acts, *, layers=None, params: ClusterParams | None = None,
                        progress: Callable[[int, int], None] | None = None, **overrides) -> pd.DataFrame:
    """Embed the sounds of an :class:`~songexplorer_core.activations.Activations` once per layer.

    Args:
        acts: the activations (computed, or read with ``read_activations``).
        layers: layer indices or names (``resolve_layers`` syntax); default: every layer asked
            for when the activations were computed, else every stored one.
        params: the embedding (:class:`ClusterParams`); ``overrides`` replace its fields.
        progress: called with ``(layers done, layers)``.

    Returns:
        One row per sound and layer: ``wav, start, stop, kind, label, recording`` (the project's
        recording key), ``x, y`` (and ``z`` for 3-D), ``layer`` (index), ``layer_name``.
    """
    from songexplorer_core.activations import resolve_layers  # noqa: PLC0415

    params = ClusterParams(**{**(params or ClusterParams()).to_dict(), **overrides})
    if layers is None:
        chosen = tuple(acts.requested) or acts.stored_layers
        chosen = tuple(i for i in chosen if i in acts.stored_layers) or acts.stored_layers
    else:
        chosen = resolve_layers(layers, acts.layer_names)
    base = acts.sounds[list(COLUMNS)].reset_index(drop=True).assign(recording=_recording_keys(acts.sounds["recording"]))
    axes = ("x", "y", "z")[: params.ndims]
    frames = []
    for done, index in enumerate(chosen, start=1):
        # float16/int16 layers: converted to float32 once, inside embed
        stored = acts.layers.get(index) if 0 < index < acts.output_index else None
        embedding = embed(acts.layer(index) if stored is None else stored, params)
        frame = base.copy()
        for axis, column in zip(axes, embedding.coordinates.T):
            frame[axis] = column.astype(np.float64)
        frame["layer"] = np.int64(index)
        frame["layer_name"] = acts.layer_names[index]
        frames.append(frame)
        logger.info("layer %d (%s): %d sounds embedded with %s%s", index, acts.layer_names[index], len(frame),
                    params.method, f" after {embedding.pca_components} principal components "
                    f"({embedding.explained_variance:.1%} of the variance)" if embedding.pca_components else "")
        if progress is not None:
            progress(done, len(chosen))
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# files


def cluster_path(outputs: str | os.PathLike) -> Path:
    """``<outputs>/cluster/cluster.parquet``."""
    return Path(outputs) / CLUSTER_FILE


def _check_columns(frame: pd.DataFrame, source: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ClusterError(f"{source}: lacks column(s) {missing}; a cluster table has columns "
                           f"{list(REQUIRED_COLUMNS)} (z for 3-D, layer, layer_name, recording optional)")


def write_cluster(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a cluster table (:func:`cluster_activations`) as Parquet, atomically."""
    path = Path(path)
    _check_columns(frame, "cluster table")
    with atomic_path(path) as tmp:
        frame.reset_index(drop=True).to_parquet(tmp, index=False)
    return path


def read_cluster(path: str | os.PathLike) -> pd.DataFrame:
    """Read a cluster table written by :func:`write_cluster`.

    Raises:
        ClusterError: naming the file, when it is missing, not Parquet, or lacks a column.
    """
    path = Path(path)
    if not path.is_file():
        raise ClusterError(f"{path}: no such cluster file; run `songexplorer cluster` first")
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # noqa: BLE001 (pyarrow raises several types for a damaged file)
        raise ClusterError(f"{path}: not a readable Parquet file ({error}); run the cluster step again") from error
    _check_columns(frame, str(path))
    return frame


def layers_in(frame: pd.DataFrame) -> list[int]:
    """The layer indices a cluster table holds (``[]`` when it has no ``layer`` column)."""
    return sorted(int(x) for x in frame["layer"].unique()) if "layer" in frame.columns else []


def plot_embedding(frame: pd.DataFrame, title: str):
    """The embedding of one layer (a :func:`cluster_activations` table's rows of that layer):
    one point per sound at ``x, y``, coloured by label, marked by kind. Returns a ``Figure``."""
    from songexplorer_core.figures import new_figure

    figure = new_figure(7, 5.5)
    ax = figure.add_subplot()
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray",
               "tab:olive", "tab:cyan"]
    markers = ["o", "^", "s", "x", "D", "v", "+"]
    labels = sorted(frame["label"].astype(str).unique())
    kinds = sorted(frame["kind"].astype(str).unique())
    for (label, kind), rows in frame.groupby(["label", "kind"], sort=True):
        ax.scatter(rows["x"], rows["y"], s=10, alpha=0.7, color=palette[labels.index(str(label)) % len(palette)],
                   marker=markers[kinds.index(str(kind)) % len(markers)], label=f"{label} ({kind})")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, markerscale=1.5, loc="best")
    return figure
