"""``songexplorer cluster ACTIVATIONS.npz --out cluster.parquet``: embed sounds in 2-D or 3-D.

As SongExplorer's cluster plug-ins (UMAP with ``neighbors`` and ``distance``, t-SNE with
``perplexity`` and ``exaggeration``, PCA; ``ndims``, ``pca-fraction``, ``layers``), seeded. In a
project, write to ``outputs/cluster/cluster.parquet``: the annotator's cluster view reads it.
"""

from __future__ import annotations

from songexplorer_cli.options import (
    fraction, nonnegative_float, nonnegative_int, positive_float, positive_int, progress_bar,
)
from songexplorer_core.cluster import METHODS, ClusterParams

_DEFAULTS = ClusterParams()


def _seed(text: str) -> int | None:
    value = int(text)
    return None if value == -1 else value


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "cluster",
        help="embed the sounds of an activations file in 2-D or 3-D (UMAP, t-SNE or PCA)",
        description="Embed each chosen layer of an activations file (`songexplorer activations`) with UMAP "
        "(default), t-SNE or PCA and write one Parquet table: wav, start, stop, kind, label, recording, x, y "
        "(z in 3-D), layer, layer_name. Features are standardised and reduced to their first principal "
        "components before UMAP/t-SNE.",
    )
    parser.add_argument("activations", metavar="ACTIVATIONS.npz", help="file written by `songexplorer activations`")
    parser.add_argument("--out", required=True, metavar="FILE.parquet",
                        help="where to write, e.g. <project>/outputs/cluster/cluster.parquet")
    parser.add_argument("--layers", default=None, metavar="L1,L2",
                        help="layers to embed: indices, ranges like 1-3, names like conv2 (default: the layers "
                        "the activations were computed for)")
    parser.add_argument("--method", choices=METHODS, default=_DEFAULTS.method, help="default %(default)s")
    parser.add_argument("--ndims", type=int, choices=(2, 3), default=_DEFAULTS.ndims,
                        help="dimensions of the embedding (default %(default)s)")
    parser.add_argument("--pca-fraction", type=fraction, default=_DEFAULTS.pca_fraction, metavar="F",
                        help="UMAP/t-SNE: keep the fewest principal components explaining this fraction of the "
                        "variance, 1 = all up to --pca-components (SongExplorer's pca-fraction; default %(default)s)")
    parser.add_argument("--pca-components", type=nonnegative_int, default=_DEFAULTS.pca_components, metavar="N",
                        help="UMAP/t-SNE: at most N principal components; 0 = no cap (default %(default)s)")
    parser.add_argument("--no-standardize", action="store_true",
                        help="do not scale every feature to zero mean and unit variance first")
    parser.add_argument("--neighbors", type=positive_int, default=_DEFAULTS.n_neighbors, metavar="K",
                        help="UMAP: neighbours (default %(default)s)")
    parser.add_argument("--distance", type=nonnegative_float, default=_DEFAULTS.min_dist, metavar="D",
                        help="UMAP: minimum distance between embedded points (default %(default)s)")
    parser.add_argument("--metric", default=_DEFAULTS.metric,
                        help="UMAP: distance between sounds, e.g. euclidean, cosine, correlation (default %(default)s)")
    parser.add_argument("--epochs", type=nonnegative_int, default=_DEFAULTS.n_epochs, metavar="N",
                        help="UMAP: optimisation epochs; 0 = umap-learn's default (default %(default)s)")
    parser.add_argument("--init", default=_DEFAULTS.init, choices=("spectral", "pca", "random"),
                        help="UMAP: initial layout (default %(default)s)")
    parser.add_argument("--perplexity", type=positive_float, default=_DEFAULTS.perplexity,
                        help="t-SNE: perplexity (default %(default)s)")
    parser.add_argument("--exaggeration", type=positive_float, default=_DEFAULTS.exaggeration,
                        help="t-SNE: early exaggeration (default %(default)s)")
    parser.add_argument("--seed", type=_seed, default=_DEFAULTS.seed,
                        help="random seed; -1 = different every time, UMAP on all cores (default %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    parser.set_defaults(func=run)


def params_from_args(args) -> ClusterParams:
    """The :class:`ClusterParams` the flags describe."""
    return ClusterParams(
        method=args.method, ndims=args.ndims, pca_fraction=args.pca_fraction,
        pca_components=args.pca_components or None, standardize=not args.no_standardize,
        n_neighbors=args.neighbors, min_dist=args.distance, metric=args.metric, n_epochs=args.epochs or None,
        init=args.init, perplexity=args.perplexity, exaggeration=args.exaggeration, seed=args.seed)


def run(args) -> int:

    from songexplorer_core.activations import read_activations  # noqa: PLC0415
    from songexplorer_core.cluster import cluster_activations, write_cluster  # noqa: PLC0415

    params = params_from_args(args)  # check the settings before reading
    acts = read_activations(args.activations)
    bar, progress = progress_bar(f"cluster ({params.method})", "layer", disable=args.no_progress)

    try:
        frame = cluster_activations(acts, layers=args.layers, params=params, progress=progress)
    finally:
        bar.close()
    path = write_cluster(frame, args.out)
    layers = ", ".join(f"{i} {name}" for i, name in frame[["layer", "layer_name"]].drop_duplicates().itertuples(
        index=False, name=None))
    print(f"{path}: {acts.nsounds} sounds x layer(s) {layers}, {params.method} in {params.ndims}-D")
    return 0
