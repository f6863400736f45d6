"""Reviewing the classifier: what it missed, where it errs, what the song looks like.

* ``misses`` (per recording): detected stretches no prediction covers
  (``songexplorer_core.misses``), SongExplorer's ``<wav>-missed.csv`` under
  ``outputs/missed/<dir>/`` and ``outputs/misses/<key>.parquet``.
* ``mistakes``: every annotated sound judged by the champion at the sound itself
  (``songexplorer_core.mistakes``): ``<wav>-mistakes.csv`` (correct / mistaken) under
  ``outputs/mistakes/<dir>/`` and ``outputs/mistakes/mistakes.parquet``.
* ``activations``: the champion's input, hidden layers and output at the sounds of the chosen
  kinds (``annotated``, ``detected``, ``predicted``, ``missed``, ``correct``, ``mistaken``),
  ``outputs/activations/activations.npz``.
* ``cluster``: those activations embedded in 2-D or 3-D (UMAP, t-SNE or PCA),
  ``outputs/cluster/cluster.parquet``: the file the annotator's cluster view reads.
* ``summaries``: events per minute, coverage, bouts and inter-pulse intervals per recording
  and label, across every classified recording, and an ethogram raster
  (``songexplorer_core.summaries``), under ``outputs/summaries/``.

The review workflows of SongExplorer (fix false positives, fix false negatives, examine errors)
are jobs over these assets (``songexplorer_dagster.jobs``). TensorFlow, UMAP and scikit-learn
are imported inside the steps only.
"""

import json
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from songexplorer_core.annotations import COLUMNS, concat_intervals, empty_intervals
from songexplorer_core.atomic import atomic_path, atomic_write
from songexplorer_core.figures import save_png
from songexplorer_core.project import recording_relpath
from songexplorer_dagster.assets.annotations import annotations, annotations_path
from songexplorer_dagster.assets.congruence import choose_ratio, read_ethogram, recording_names
from songexplorer_dagster.assets.detections import detections
from songexplorer_dagster.assets.models import GPU_OP_TAGS, GPU_POOL, trained_model
from songexplorer_dagster.assets.predictions import ethograms
from songexplorer_dagster.metadata import png_markdown, table_markdown
from songexplorer_dagster.partitions import recordings_partitions
from songexplorer_dagster.resources import ProjectResource
from songexplorer_dagster.resources.compute import ComputeResource
from songexplorer_dagster.resources.mlflow import MlflowResource

#: Kinds of sounds ``activations`` can gather, and which asset makes them.
SOUND_SOURCES = {"annotated": "annotations", "detected": "detections", "predicted": "ethograms",
                 "missed": "misses", "correct": "mistakes", "mistaken": "mistakes"}
PREVIEW_ROWS = 10


# ---------------------------------------------------------------------------------------------
# reading other assets' files


def clip_to_recording(frame: pd.DataFrame, ntics: int) -> pd.DataFrame:
    """Intervals clipped to tics ``0 .. ntics-1``: SongExplorer's detector writes ``frequency``
    rows that start before tic 0 and ``time`` stops one past the end (``songexplorer_quirks``)."""
    if not len(frame):
        return frame
    clipped = frame.assign(start=frame["start"].clip(lower=0), stop=frame["stop"].clip(upper=ntics - 1))
    return clipped[clipped["start"] <= clipped["stop"]].reset_index(drop=True)


def predicted_intervals(project: ProjectResource, key: str, ratio: str = "") -> tuple[pd.DataFrame, str, dict]:
    """Recording ``key``'s predicted intervals at P/R ``ratio`` (the first when empty), the ratio
    used, and what made them (``model_version``)."""
    try:
        frame, source = read_ethogram(project, key)
    except FileNotFoundError:
        raise FileNotFoundError(f"recording {key} has no ethogram ({project.project().outputs / 'ethograms'}/"
                                f"{key}.parquet); materialise probabilities and ethograms for it first") from None
    chosen = choose_ratio(pd.unique(frame["ratio"]) if len(frame) else ["1.0pr"], ratio)
    predicted = frame[frame["ratio"] == chosen].drop(columns="ratio") if len(frame) else empty_intervals()
    return predicted.reset_index(drop=True), chosen, source


def misses_path(project: ProjectResource, key: str) -> Path:
    """``outputs/misses/<key>.parquet``."""
    return project.project().outputs / "misses" / f"{key}.parquet"


def missed_csv_dir(project: ProjectResource, key: str) -> Path:
    """``outputs/missed/<dir>/``: where ``<wav>-missed.csv`` goes (mirroring ``groundtruth/``)."""
    return project.project().outputs / "missed" / recording_relpath(key).parent


def mistakes_parquet(project: ProjectResource) -> Path:
    """``outputs/mistakes/mistakes.parquet``."""
    return project.project().outputs / "mistakes" / "mistakes.parquet"


def activations_path(project: ProjectResource) -> Path:
    """``outputs/activations/activations.npz``."""
    return project.project().outputs / "activations" / "activations.npz"


def _markdown_counts(frame: pd.DataFrame, rows: str, columns: str = "label") -> dg.MetadataValue:
    if not len(frame):
        return dg.MetadataValue.md("(none)")
    return dg.MetadataValue.md(frame.groupby([rows, columns]).size().unstack(fill_value=0).to_markdown())


# ---------------------------------------------------------------------------------------------
# misses


class MissesConfig(dg.Config):
    """What counts as a miss (SongExplorer's ``misses``)."""

    ratio: str = Field(default="", description="P/R ratio of the predictions (e.g. '1.0pr'); empty = the first.")
    detected_labels: list[str] = Field(
        default=[], description="Only detections of these labels count (time, frequency, neither); empty = all."
    )


@dg.asset(
    partitions_def=recordings_partitions,
    deps=[detections, ethograms],
    group_name="review",
    kinds={"csv", "parquet"},
    automation_condition=dg.AutomationCondition.eager(),
    description=__doc__,
)
def misses(context: dg.AssetExecutionContext, config: MissesConfig, project: ProjectResource) -> dg.MaterializeResult:
    """Detected stretches of one recording that no prediction covers -> ``<wav>-missed.csv``."""
    from songexplorer_core.audio import recording_info
    from songexplorer_core.misses import find_misses, write_missed_csvs

    key = context.partition_key
    wav_path = project.recording_path(key)
    ntics = recording_info(wav_path).frames
    detected_path = project.detections_path(key)
    if not detected_path.exists():
        raise FileNotFoundError(f"recording {key} has no detections ({detected_path}); materialise detections first")
    detected = clip_to_recording(pd.read_parquet(detected_path), ntics)
    predicted, ratio, source = predicted_intervals(project, key, config.ratio)
    missed = find_misses(detected, predicted, ntics=ntics, detected_labels=config.detected_labels or None)
    (csv,) = write_missed_csvs(missed, missed_csv_dir(project, key), [wav_path.name])
    parquet = misses_path(project, key)
    with atomic_path(parquet) as temporary:
        missed.assign(recording=key).to_parquet(temporary, index=False)
    rate = project.settings().audio_tic_rate
    missed_s = float((missed["stop"] - missed["start"] + 1).sum()) / rate if len(missed) else 0.0
    context.log.info(f"{wav_path.name}: {len(missed)} missed stretch(es), {missed_s:.2f} s, against "
                     f"{len(predicted)} predictions at {ratio} of model v{source.get('model_version')}")
    preview = missed.head(PREVIEW_ROWS).assign(start_s=lambda f: f["start"] / rate, stop_s=lambda f: f["stop"] / rate)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(len(missed)),
        "missed_s": dg.MetadataValue.float(round(missed_s, 4)),
        "detected_intervals": dg.MetadataValue.int(len(detected)),
        "predicted_intervals": dg.MetadataValue.int(len(predicted)),
        "ratio": dg.MetadataValue.text(ratio),
        "model_version": dg.MetadataValue.text(str(source.get("model_version"))),
        "preview": table_markdown(preview, floatfmt=".4f"),
        "csv": dg.MetadataValue.path(str(csv)),
        "parquet": dg.MetadataValue.path(str(parquet)),
    })


# ---------------------------------------------------------------------------------------------
# mistakes


class MistakesConfig(dg.Config):
    """Which annotated sounds are judged (SongExplorer's ``mistakes``)."""

    labels: list[str] = Field(default=[], description="Labels judged; empty = every label the model outputs.")
    threshold: float = Field(default=0.5, description="Overlapped models: probability above which a label is present.")
    mini_batch: int = Field(default=256, description="Sounds per network call.")


def champion_model(project: ProjectResource, mlflow: MlflowResource):
    """``(version, folder, TrainedModel)`` of the champion (TensorFlow is imported here)."""
    from songexplorer_core.models import load_trained_model
    from songexplorer_dagster.assets.predictions import champion_bundle

    version, bundle = champion_bundle(project, mlflow)
    return version, bundle, load_trained_model(bundle)


def annotated_sounds(project: ProjectResource, keys) -> tuple[pd.DataFrame, list[str]]:
    """Every recording's annotations (the ``annotations`` asset's files) with a ``recording``
    column, and the keys whose annotations are not materialised."""
    tables, missing = [], []
    for key in keys:
        path = annotations_path(project, key)
        if not path.exists():
            missing.append(key)
            continue
        table = pd.read_parquet(path)
        if len(table):
            tables.append(table[list(COLUMNS)].assign(recording=key))
    return _concat(tables), missing


def _concat(tables) -> pd.DataFrame:
    tables = [t for t in tables if len(t)]
    if not tables:
        return empty_intervals().assign(recording=pd.Series([], dtype=str))
    return pd.concat(tables, ignore_index=True)


@dg.asset(
    deps=[dg.AssetDep(annotations, partition_mapping=dg.AllPartitionMapping()), trained_model],
    group_name="review",
    kinds={"tensorflow", "csv", "parquet"},
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
    description=__doc__,
)
def mistakes(context: dg.AssetExecutionContext, config: MistakesConfig, project: ProjectResource,
             mlflow: MlflowResource, compute: ComputeResource) -> dg.MaterializeResult:
    """The champion's decision at every annotated sound: correct or mistaken."""
    compute.configure(context.log)
    from songexplorer_core.dataset import GroundTruth
    from songexplorer_core.mistakes import MISTAKEN, find_mistakes, write_mistakes_csvs

    keys = sorted(context.instance.get_dynamic_partitions(recordings_partitions.name))
    sounds, missing = annotated_sounds(project, keys)
    if missing:
        context.log.warning(f"annotations not materialised for {len(missing)} recording(s): {missing[:5]}")
    recordings = {k: project.recording_path(k) for k in sorted(set(sounds["recording"]))}
    version, _, model = champion_model(project, mlflow)
    ground = GroundTruth(intervals=sounds, recordings=recordings, root=project.project().groundtruth)
    started = time.monotonic()
    table = find_mistakes(model, ground, labels=config.labels or None, threshold=config.threshold,
                          mini_batch=config.mini_batch)
    seconds = time.monotonic() - started
    out_dir = project.project().outputs / "mistakes"
    relative = table["recording"].map(lambda k: recording_relpath(k).as_posix())
    written = write_mistakes_csvs(table.assign(recording=relative), out_dir)
    parquet = mistakes_parquet(project)
    with atomic_path(parquet) as temporary:
        table.to_parquet(temporary, index=False)
    judged = table.groupby("annotated_label")["kind"].agg(
        sounds="size", mistaken=lambda k: int((k == MISTAKEN).sum()))
    judged["mistaken_fraction"] = judged["mistaken"] / judged["sounds"]
    confusion = pd.crosstab(table["annotated_label"], table["label"]).rename_axis(index="annotated", columns="predicted")
    context.log.info(f"model v{version}: {int((table['kind'] == MISTAKEN).sum())} of {len(table)} annotated sounds "
                     f"mistaken ({seconds:.1f} s)")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(len(table)),
        "mistaken": dg.MetadataValue.int(int((table["kind"] == MISTAKEN).sum())),
        "model_version": dg.MetadataValue.text(version),
        "per_label": table_markdown(judged.reset_index()),
        "confusion": dg.MetadataValue.md(confusion.to_markdown()),
        "csvs": dg.MetadataValue.json([str(p) for p in written]),
        "parquet": dg.MetadataValue.path(str(parquet)),
        "seconds": dg.MetadataValue.float(round(seconds, 2)),
    })


# ---------------------------------------------------------------------------------------------
# activations


class ActivationsConfig(dg.Config):
    """Which sounds, which layers (SongExplorer's Activations parameters)."""

    kinds: list[str] = Field(
        default=["annotated"],
        description="Kinds of sounds: annotated, detected, predicted, missed, correct, mistaken.",
    )
    labels: list[str] = Field(default=[], description="Labels to use; empty = every label of the chosen kinds.")
    layers: str = Field(
        default="",
        description="Layers to keep: indices or names ('2', '1,3', '1-3', 'conv2', 'all'); 0 is the input, the last "
                    "the output. Empty = the last hidden layer.",
    )
    max_sounds: int = Field(default=1000, description="At most this many sounds, drawn at random (0 = all).")
    equalize_ratio: float = Field(
        default=10.0, description="No label/kind group keeps more than this times the smallest group (0 = off)."
    )
    seed: int = Field(default=0, description="Seed of the subsampling (and of position='random').")
    position: str = Field(default="centre", description="Where in a sound to look: 'centre' or 'random'.")
    ratio: str = Field(default="", description="P/R ratio of the predicted sounds (e.g. '1.0pr'); empty = the first.")
    mini_batch: int = Field(default=256, description="Sounds per network call.")


def gather_sounds(project: ProjectResource, keys, kinds, *, ratio: str = "") -> tuple[pd.DataFrame, list[str]]:
    """The intervals of ``kinds`` from the assets that make them (``SOUND_SOURCES``), with a
    ``recording`` column, and a note for each source that is not there (to name in errors).

    Raises:
        ValueError: a kind no asset makes.
    """
    from songexplorer_core.audio import recording_info

    unknown = [kind for kind in kinds if kind not in SOUND_SOURCES]
    if unknown:
        raise ValueError(f"kinds {unknown} are not made by any asset; choose among {sorted(SOUND_SOURCES)}")
    tables, notes = [], []
    kinds = list(dict.fromkeys(kinds))
    if "annotated" in kinds:
        table, missing = annotated_sounds(project, keys)
        tables.append(table[table["kind"] == "annotated"])
        if missing:
            notes.append(f"annotations not materialised for {missing[:5]}")
    for kind, read in (("detected", "detections"), ("predicted", "ethograms"), ("missed", "misses")):
        if kind not in kinds:
            continue
        lacking = []
        for key in keys:
            if kind == "detected":
                path = project.detections_path(key)
                if not path.exists():
                    lacking.append(key)
                    continue
                frame = clip_to_recording(pd.read_parquet(path), recording_info(project.recording_path(key)).frames)
            elif kind == "predicted":
                try:
                    frame, _, _ = predicted_intervals(project, key, ratio)
                except FileNotFoundError:
                    lacking.append(key)
                    continue
            else:
                path = misses_path(project, key)
                if not path.exists():
                    lacking.append(key)
                    continue
                frame = pd.read_parquet(path)
            tables.append(frame[list(COLUMNS)].assign(recording=key))
        if lacking:
            notes.append(f"no {read} materialised for {len(lacking)} recording(s) {lacking[:5]}")
    if {"correct", "mistaken"} & set(kinds):
        path = mistakes_parquet(project)
        if path.exists():
            frame = pd.read_parquet(path)
            tables.append(frame[list(COLUMNS) + ["recording"]][frame["recording"].isin(list(keys))])
        else:
            notes.append(f"no mistakes materialised ({path})")
    return _concat(tables), notes


@dg.asset(
    deps=[dg.AssetDep(a, partition_mapping=dg.AllPartitionMapping()) for a in (annotations, detections, ethograms)]
    + [dg.AssetDep(misses, partition_mapping=dg.AllPartitionMapping()), mistakes, trained_model],
    group_name="review",
    kinds={"tensorflow", "numpy"},
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
    description=__doc__,
)
def activations(context: dg.AssetExecutionContext, config: ActivationsConfig, project: ProjectResource,
                mlflow: MlflowResource, compute: ComputeResource) -> dg.MaterializeResult:
    """The champion's layers at the sounds of the chosen kinds."""
    compute.configure(context.log)
    from songexplorer_core.activations import (
        compute_activations, describe_layers, model_layer_names, resolve_layers, select_sounds, write_activations,
    )

    keys = sorted(context.instance.get_dynamic_partitions(recordings_partitions.name))
    table, notes = gather_sounds(project, keys, config.kinds, ratio=config.ratio)
    version, _, model = champion_model(project, mlflow)
    names = model_layer_names(model.keras_model)
    # a layer the model does not have is refused before any sound is read (ActivationsError names the valid ones)
    layers = resolve_layers(config.layers or None, names)
    where = f"the project's {', '.join(SOUND_SOURCES[k] for k in dict.fromkeys(config.kinds))}" + \
        (f" ({'; '.join(notes)})" if notes else "")
    sounds = select_sounds(table, kinds=config.kinds, labels=config.labels or None,
                           equalize_ratio=config.equalize_ratio, max_sounds=config.max_sounds, seed=config.seed,
                           where=where)
    recordings = {k: project.recording_path(k) for k in sorted(set(sounds["recording"]))}
    started = time.monotonic()
    last = [0.0]

    def progress(done, total):
        if time.monotonic() - last[0] > 10 or done == total:
            last[0] = time.monotonic()
            context.log.info(f"activations: {done}/{total} sounds")

    acts = compute_activations(
        model, sounds, recordings, layers=list(layers), position=config.position, seed=config.seed,
        mini_batch=config.mini_batch, progress=progress,
        settings={"kinds": list(config.kinds), "labels": list(config.labels), "equalize_ratio": config.equalize_ratio,
                  "max_sounds": config.max_sounds, "model_version": version, "ratio": config.ratio},
    )
    seconds = time.monotonic() - started
    path = write_activations(acts, activations_path(project))
    for note in notes:
        context.log.warning(note)
    stored = [f"{i} {names[i]} {list(acts.layers[i].shape[1:]) if i in acts.layers else list(acts.logits.shape[1:])}"
              for i in acts.stored_layers]
    context.log.info(f"activations of {acts.nsounds} sounds ({', '.join(stored)}) with model v{version} in "
                     f"{seconds:.1f} s -> {path}")
    return dg.MaterializeResult(metadata={
        "sounds": dg.MetadataValue.int(acts.nsounds),
        "per_kind_and_label": _markdown_counts(acts.sounds, "kind"),
        "layers_stored": dg.MetadataValue.json(stored),
        "model_layers": dg.MetadataValue.text(describe_layers(names)),
        "padded": dg.MetadataValue.int(int(acts.sounds["padded"].sum())),
        "model_version": dg.MetadataValue.text(version),
        "kinds": dg.MetadataValue.json(list(config.kinds)),
        "size_mb": dg.MetadataValue.float(round(path.stat().st_size / 1e6, 3)),
        "seconds": dg.MetadataValue.float(round(seconds, 2)),
        "npz": dg.MetadataValue.path(str(path)),
    })


# ---------------------------------------------------------------------------------------------
# cluster


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

    def params(self):
        from songexplorer_core.cluster import ClusterParams

        return ClusterParams(method=self.method, ndims=self.ndims, pca_fraction=self.pca_fraction,
                             pca_components=self.pca_components, n_neighbors=self.n_neighbors, min_dist=self.min_dist,
                             metric=self.metric, n_epochs=self.n_epochs, perplexity=self.perplexity,
                             exaggeration=self.exaggeration, seed=self.seed)


@dg.asset(
    deps=[activations],
    group_name="review",
    kinds={"umap", "scikitlearn", "parquet"},
    description=__doc__,
)
def cluster(context: dg.AssetExecutionContext, config: ClusterConfig, project: ProjectResource) -> dg.MaterializeResult:
    """Embed the activations; write the annotator's ``outputs/cluster/cluster.parquet``."""
    from songexplorer_core.activations import read_activations, resolve_layers
    from songexplorer_core.cluster import cluster_activations, cluster_path, plot_embedding, write_cluster

    acts = read_activations(activations_path(project))
    params = config.params()
    layers = resolve_layers(config.layers, acts.layer_names) if config.layers else None
    started = time.monotonic()
    table = cluster_activations(acts, layers=layers, params=params,
                                progress=lambda done, total: context.log.info(f"cluster: layer {done}/{total}"))
    seconds = time.monotonic() - started
    embedded = sorted(int(i) for i in table["layer"].unique())
    shown = resolve_layers(config.shown_layer, acts.layer_names)[0] if config.shown_layer else embedded[-1]
    if shown not in embedded:
        raise ValueError(f"shown_layer {config.shown_layer!r} (layer {shown}) was not embedded; embedded layers: "
                         f"{[f'{i} {acts.layer_names[i]}' for i in embedded]}")
    # the annotator reads one row per sound; recording keys keep equal basenames in different folders apart
    view = table[table["layer"] == shown].assign(wav=lambda f: f["recording"]).reset_index(drop=True)
    outputs = project.project().outputs
    path = write_cluster(view, cluster_path(outputs))
    every_layer = write_cluster(table, outputs / "cluster" / "cluster-layers.parquet")
    png = save_png(plot_embedding(view, f"{params.method}, layer {shown} ({acts.layer_names[shown]}), "
                                        f"{len(view)} sounds"), outputs / "cluster" / "cluster.png", dpi=80)
    context.log.info(f"{len(view)} sounds embedded with {params.method} in {seconds:.1f} s "
                     f"(layers {embedded}, shown {shown}) -> {path}")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(len(view)),
        "per_kind_and_label": _markdown_counts(view, "kind"),
        "method": dg.MetadataValue.text(params.method),
        "parameters": dg.MetadataValue.json(params.to_dict()),
        "layers": dg.MetadataValue.json([f"{i} {acts.layer_names[i]}" for i in embedded]),
        "shown_layer": dg.MetadataValue.text(f"{shown} {acts.layer_names[shown]}"),
        "embedding": png_markdown(png, "cluster"),
        "seconds": dg.MetadataValue.float(round(seconds, 2)),
        "parquet": dg.MetadataValue.path(str(path)),
        "every_layer": dg.MetadataValue.path(str(every_layer)),
    })


# ---------------------------------------------------------------------------------------------
# summaries


class SummariesConfig(dg.Config):
    """How the ethograms are summarised (times in seconds)."""

    ratio: str = Field(default="", description="P/R ratio of the predictions (e.g. '1.0pr'); empty = the first.")
    labels: list[str] = Field(default=[], description="Labels to summarise; empty = every predicted label.")
    max_gap_s: float = Field(default=0.5, description="An event joins a bout when it starts at most this long after.")
    max_ipi_s: float = Field(default=0.1, description="Longest inter-pulse interval counted (longer: between trains).")
    pulse_labels: list[str] = Field(
        default=[], description="Labels whose inter-pulse intervals are computed; empty = names containing 'pulse'."
    )


@dg.asset(
    deps=[dg.AssetDep(ethograms, partition_mapping=dg.AllPartitionMapping())],
    group_name="review",
    kinds={"pandas", "matplotlib", "csv"},
    # eager() alone never fires while any recording partition is missing (its ~any_deps_missing() clause)
    automation_condition=dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing()),
    description=__doc__,
)
def summaries(context: dg.AssetExecutionContext, config: SummariesConfig,
                   project: ProjectResource) -> dg.MaterializeResult:
    """Events per minute, bouts and inter-pulse intervals of every classified recording."""
    from songexplorer_core.audio import recording_info
    from songexplorer_core.summaries import song_summary, summary_by_label, write_summaries

    keys = sorted(context.instance.get_dynamic_partitions(recordings_partitions.name))
    classified = [k for k in keys if (project.project().outputs / "ethograms" / f"{k}.parquet").exists()]
    missing = sorted(set(keys) - set(classified))
    if not classified:
        raise FileNotFoundError(f"no recording has an ethogram yet ({len(keys)} recording(s)); materialise "
                                f"probabilities and ethograms first")
    names = recording_names(classified)
    tables, durations, versions, ratios = [], {}, set(), set()
    for key in classified:
        predicted, ratio, source = predicted_intervals(project, key, config.ratio)
        tables.append(predicted.assign(wav=names[key]))
        durations[names[key]] = recording_info(project.recording_path(key)).duration_s
        versions.add(str(source.get("model_version")))
        ratios.add(ratio)
    intervals = concat_intervals(tables)
    rate = project.settings().audio_tic_rate
    folder = project.project().outputs / "summaries"
    settings = dict(rate=rate, labels=config.labels or None, max_gap_s=config.max_gap_s, max_ipi_s=config.max_ipi_s,
                    pulse_labels=config.pulse_labels or None)
    written = write_summaries(intervals, durations, folder, **settings)
    summary = song_summary(intervals, durations, **settings)
    pooled = summary_by_label(summary)
    if missing:
        context.log.warning(f"{len(missing)} recording(s) have no ethogram yet and are left out: {missing[:5]}")
    context.log.info(f"summaries of {len(classified)} recording(s), model version(s) {sorted(versions)}")
    metadata = {
        "recordings": dg.MetadataValue.int(len(classified)),
        "left_out": dg.MetadataValue.json(missing),
        "model_versions": dg.MetadataValue.json(sorted(versions)),
        "ratio": dg.MetadataValue.text(", ".join(sorted(ratios))),
        "by_label": table_markdown(pooled),
        "per_recording": table_markdown(summary[["recording", "label", "events", "events_per_min", "coverage",
                                                 "bouts", "bout_mean_s", "ipi_n", "ipi_median_s"]], max_rows=60),
        "ethogram": png_markdown(folder / "ethogram.png", "ethogram raster"),
        "folder": dg.MetadataValue.path(str(folder)),
        "files": dg.MetadataValue.json([p.name for p in written]),
    }
    for row in pooled.itertuples(index=False):
        if np.isfinite(row.events_per_min):
            metadata[f"events_per_min_{row.label}"] = dg.MetadataValue.float(float(row.events_per_min))
    with atomic_write(folder / "summaries.json") as handle:
        json.dump({"recordings": classified, "model_versions": sorted(versions), "ratios": sorted(ratios)}, handle,
                  indent=2)
    return dg.MaterializeResult(metadata=metadata)
