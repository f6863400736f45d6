"""Run configuration of the ``review`` group's assets (SongExplorer's parameters; times in seconds)."""

import dagster as dg
from pydantic import Field, field_validator

from songexplorer_core.labels import check_labels


def _labels_are_names(cls, value: list[str], info) -> list[str]:
    """The label fields below: names, never paths (a bad one fails the run, naming the field)."""
    return list(check_labels(value, where=info.field_name))


class MissesConfig(dg.Config):
    """What counts as a miss (SongExplorer's ``misses``)."""

    ratio: str = Field(default="", description="P/R ratio of the predictions (e.g. '1.0pr'); empty = the first.")
    detected_labels: list[str] = Field(
        default=[], description="Only detections of these labels count (time, frequency, neither); empty = all."
    )
    _check_labels = field_validator("detected_labels")(classmethod(_labels_are_names))


class MistakesConfig(dg.Config):
    """Which annotated sounds are judged (SongExplorer's ``mistakes``)."""

    labels: list[str] = Field(default=[], description="Labels judged; empty = every label the model outputs.")
    _check_labels = field_validator("labels")(classmethod(_labels_are_names))
    threshold: float = Field(default=0.5, description="Overlapped models: probability above which a label is present.")
    mini_batch: int = Field(default=256, description="Sounds per network call.")


class ActivationsConfig(dg.Config):
    """Which sounds, which layers (SongExplorer's Activations parameters)."""

    kinds: list[str] = Field(
        default=["annotated"],
        description="Kinds of sounds: annotated, detected, predicted, missed, correct, mistaken.",
    )
    labels: list[str] = Field(default=[], description="Labels to use; empty = every label of the chosen kinds.")
    _check_labels = field_validator("labels")(classmethod(_labels_are_names))
    network: str = Field(
        default="champion",
        description="Whose activations: 'champion' (the registered champion model), or, before any model exists, "
                    "'untrained' (SongExplorer's label sounds: the project's network with untrained weights drawn "
                    "from the seed) or 'spectral' (each sound's spectrogram).",
    )
    layers: str = Field(
        default="",
        description="Layers to keep: indices or names ('2', '1,3', '1-3', 'conv2', 'all'); 0 is the input, the last "
                    "the output. Empty = the last hidden layer.",
    )
    max_sounds: int = Field(default=1000, description="At most this many sounds, drawn at random (0 = all).")
    equalize_ratio: float = Field(
        default=10.0, description="No label/kind group keeps more than this times the smallest group (0 = off)."
    )
    seed: int = Field(default=0, description="Seed of the subsampling (and of position='random'; and of the "
                                             "untrained network's weights).")
    position: str = Field(default="centre", description="Where in a sound to look: 'centre' or 'random'.")
    ratio: str = Field(default="", description="P/R ratio of the predicted sounds (e.g. '1.0pr'); empty = the first.")
    mini_batch: int = Field(default=256, description="Sounds per network call.")


    @field_validator("network")
    @classmethod
    def _known_network(cls, value: str) -> str:
        from songexplorer_core.label_sounds import EMBEDDINGS

        if value not in ("champion", *EMBEDDINGS):
            raise ValueError(f"network must be 'champion' or one of {list(EMBEDDINGS)}, not {value!r}")
        return value


class ClusterConfig(dg.Config):
    """How to embed the activations (SongExplorer's cluster parameters, plus a seed)."""

    method: str = Field(default="umap", description="'umap', 'tsne' or 'pca'.")
    ndims: int = Field(default=2, description="2 or 3 dimensions.")
    layers: str = Field(default="", description="Layers to embed (as in activations); empty = those computed.")
    shown_layer: str = Field(
        default="", description="Layer written to cluster.parquet for the annotator; empty = the last embedded."
    )
    n_neighbors: int = Field(default=10, description="UMAP's neighbours (SongExplorer's 'neighbors').")
    min_dist: float = Field(default=0.1, description="UMAP's minimum distance (SongExplorer's 'distance').")
    metric: str = Field(default="euclidean", description="UMAP's distance: euclidean, cosine, correlation...")
    pca_fraction: float = Field(default=1.0, description="Keep the principal components explaining this fraction "
                                                         "of the variance first (1 = up to pca_components).")
    pca_components: int | None = Field(default=50, description="At most this many principal components; empty = "
                                                               "no cap.")
    n_epochs: int | None = Field(default=200, description="UMAP's epochs; empty = umap-learn's default.")
    perplexity: float = Field(default=30.0, description="t-SNE's perplexity.")
    exaggeration: float = Field(default=12.0, description="t-SNE's early exaggeration.")
    seed: int | None = Field(default=0, description="Seed; the same seed gives the same picture (empty = random, "
                                                    "UMAP on every core).")
    min_group_size: int = Field(default=0, description="Smallest group of sounds the cluster view offers to label "
                                                       "as one (HDBSCAN on the picture); 0 = max(5, 1 % of the sounds).")

    def params(self):
        from songexplorer_core.cluster import ClusterParams

        return ClusterParams(method=self.method, ndims=self.ndims, pca_fraction=self.pca_fraction,
                             pca_components=self.pca_components, n_neighbors=self.n_neighbors, min_dist=self.min_dist,
                             metric=self.metric, n_epochs=self.n_epochs, perplexity=self.perplexity,
                             exaggeration=self.exaggeration, seed=self.seed)


class SummariesConfig(dg.Config):
    """How the ethograms are summarised (times in seconds)."""

    ratio: str = Field(default="", description="P/R ratio of the predictions (e.g. '1.0pr'); empty = the first.")
    labels: list[str] = Field(default=[], description="Labels to summarise; empty = every predicted label.")
    max_gap_s: float = Field(default=0.5, description="An event joins a bout when it starts at most this long after.")
    max_ipi_s: float = Field(default=0.1, description="Longest inter-pulse interval counted (longer: between trains).")
    pulse_labels: list[str] = Field(
        default=[], description="Labels whose inter-pulse intervals are computed; empty = names containing 'pulse'."
    )
    _check_labels = field_validator("labels", "pulse_labels")(classmethod(_labels_are_names))
