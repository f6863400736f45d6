"""The ``review`` group: what the classifier missed, where it errs, what the song looks like."""

import json
import time

import dagster as dg
import numpy as np
import pandas as pd

from songexplorer_core.annotations import concat_intervals
from songexplorer_core.atomic import atomic_path, atomic_write
from songexplorer_core.dense_set import recording_names
from songexplorer_core.figures import save_png
from songexplorer_core.outputs import (
    SOUND_SOURCES, annotated_sounds, clip_to_recording, gather_sounds, predicted_intervals,
)
from songexplorer_core.project import recording_relpath
from songexplorer_dagster.batches import RECORDINGS_BACKFILL, per_recording
from songexplorer_dagster.failures import fails_clearly
from songexplorer_dagster.constants import GPU_POOL, PREVIEW_ROWS
from songexplorer_dagster.conditions import eager_over_recordings
from songexplorer_dagster.defs.resources import ComputeResource, MlflowResource, ProjectResource
from songexplorer_dagster.defs.review.config import (
    ActivationsConfig, ClusterConfig, MissesConfig, MistakesConfig, SummariesConfig,
)
from songexplorer_dagster.metadata import annotator_link, intervals_preview, png_markdown, table_markdown
from songexplorer_dagster.partitions import recordings_partitions


def _markdown_counts(frame: pd.DataFrame, rows: str, columns: str = "label") -> dg.MetadataValue:
    if not len(frame):
        return dg.MetadataValue.md("(none)")
    return dg.MetadataValue.md(frame.groupby([rows, columns]).size().unstack(fill_value=0).to_markdown())


# ---------------------------------------------------------------------------------------------
# misses


@dg.asset(
    partitions_def=recordings_partitions,
    deps=["detections", "ethograms"],
    group_name="review",
    kinds={"csv", "parquet"},
    automation_condition=dg.AutomationCondition.eager(),
    backfill_policy=RECORDINGS_BACKFILL,
)
@fails_clearly
def misses(context: dg.AssetExecutionContext, config: MissesConfig, project: ProjectResource):
    """Detected stretches of one recording that no prediction covers (``songexplorer_core.misses``):
    SongExplorer's ``<wav>-missed.csv`` under ``outputs/missed/<dir>/`` and
    ``outputs/misses/<key>.parquet``; the total missed time in seconds is in the metadata.
    Many recordings run in batches, one partition each (``songexplorer_dagster.batches``)."""
    yield from per_recording(context, lambda key, step: _misses_one(step, config, project, key), what="misses found")


def _misses_one(context: dg.AssetExecutionContext, config: MissesConfig, project: ProjectResource, key: str) -> dict:
    from songexplorer_core.audio import recording_info
    from songexplorer_core.misses import find_misses, write_missed_csvs

    paths = project.project()
    wav_path = project.recording_path(key)
    ntics = recording_info(wav_path).frames
    detected_path = paths.detections_path(key)
    if not detected_path.exists():
        raise FileNotFoundError(f"recording {key} has no detections ({detected_path}); materialise detections first")
    detected = clip_to_recording(pd.read_parquet(detected_path), ntics)
    predicted, ratio, source = predicted_intervals(paths, key, config.ratio)
    missed = find_misses(detected, predicted, ntics=ntics, detected_labels=config.detected_labels or None)
    (csv,) = write_missed_csvs(missed, paths.missed_dir(key), [wav_path.name])
    parquet = paths.misses_path(key)
    with atomic_path(parquet) as temporary:
        missed.assign(recording=key).to_parquet(temporary, index=False)
    rate = project.settings().audio_tic_rate
    missed_s = float((missed["stop"] - missed["start"] + 1).sum()) / rate if len(missed) else 0.0
    context.log.info(f"{wav_path.name}: {len(missed)} missed stretch(es), {missed_s:.2f} s, against "
                     f"{len(predicted)} predictions at {ratio} of model v{source.get('model_version')}")
    return {
        "dagster/row_count": dg.MetadataValue.int(len(missed)),
        "missed_s": dg.MetadataValue.float(round(missed_s, 4)),
        "detected_intervals": dg.MetadataValue.int(len(detected)),
        "predicted_intervals": dg.MetadataValue.int(len(predicted)),
        "ratio": dg.MetadataValue.text(ratio),
        "model_version": dg.MetadataValue.text(str(source.get("model_version"))),
        **annotator_link(key, missed["start"], rate, "the first missed sound"),
        "preview": intervals_preview(missed, rate, max_rows=PREVIEW_ROWS),
        "csv": dg.MetadataValue.path(str(csv)),
        "parquet": dg.MetadataValue.path(str(parquet)),
    }


# ---------------------------------------------------------------------------------------------
# mistakes


@dg.asset(
    deps=[dg.AssetDep("annotations", partition_mapping=dg.AllPartitionMapping()), "trained_model"],
    group_name="review",
    kinds={"tensorflow", "csv", "parquet"},
    pool=GPU_POOL,
)
@fails_clearly
def mistakes(context: dg.AssetExecutionContext, config: MistakesConfig, project: ProjectResource,
             mlflow: MlflowResource, compute: ComputeResource) -> dg.MaterializeResult:
    """The champion's decision at every annotated sound, judged at the sound itself
    (``songexplorer_core.mistakes``): ``<wav>-mistakes.csv`` (correct / mistaken) under
    ``outputs/mistakes/<dir>/`` and ``outputs/mistakes/mistakes.parquet``. In the ``gpu`` pool."""
    compute.configure(context.log)
    from songexplorer_core.dataset import GroundTruth
    from songexplorer_core.mistakes import MISTAKEN, find_mistakes, write_mistakes_csvs
    from songexplorer_core.models import load_trained_model

    keys = sorted(context.instance.get_dynamic_partitions(recordings_partitions.name))
    paths = project.project()
    sounds, missing = annotated_sounds(paths, keys)
    if missing:
        context.log.warning(f"annotations not materialised for {len(missing)} recording(s): {missing[:5]}")
    recordings = {k: project.recording_path(k) for k in sorted(set(sounds["recording"]))}
    version, bundle = mlflow.champion_bundle(paths)
    model = load_trained_model(bundle)
    ground = GroundTruth(intervals=sounds, recordings=recordings, root=paths.groundtruth)
    started = time.monotonic()
    table = find_mistakes(model, ground, labels=config.labels or None, threshold=config.threshold,
                          mini_batch=config.mini_batch)
    seconds = time.monotonic() - started
    out_dir = paths.mistakes_dir
    relative = table["recording"].map(lambda k: recording_relpath(k).as_posix())
    written = write_mistakes_csvs(table.assign(recording=relative), out_dir)
    parquet = paths.mistakes_path
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


@dg.asset(
    deps=[dg.AssetDep(a, partition_mapping=dg.AllPartitionMapping()) for a in ("annotations", "detections", "ethograms")]
    + [dg.AssetDep(misses, partition_mapping=dg.AllPartitionMapping()), mistakes, "trained_model"],
    group_name="review",
    kinds={"tensorflow", "numpy"},
    pool=GPU_POOL,
)
@fails_clearly
def activations(context: dg.AssetExecutionContext, config: ActivationsConfig, project: ProjectResource,
                mlflow: MlflowResource, compute: ComputeResource) -> dg.MaterializeResult:
    """The champion's input, hidden layers and output at the sounds of the chosen kinds
    (``annotated``, ``detected``, ``predicted``, ``missed``, ``correct``, ``mistaken``; one window
    centred on each sound, ``songexplorer_core.activations``): ``outputs/activations/activations.npz``.
    Before any model exists (``network``: ``untrained`` or ``spectral``,
    ``songexplorer_core.label_sounds``) the detected sounds are looked at through an untrained
    network of the project's architecture or through their spectrograms, and no model is read.
    The review workflows' jobs preset the kinds. In the ``gpu`` pool."""
    compute.configure(context.log)
    from songexplorer_core.activations import (
        compute_activations, describe_layers, model_layer_names, resolve_layers, select_sounds, write_activations,
    )

    keys = sorted(context.instance.get_dynamic_partitions(recordings_partitions.name))
    paths = project.project()
    table, notes = gather_sounds(paths, keys, config.kinds, ratio=config.ratio)
    if config.network == "champion":
        from songexplorer_core.models import load_trained_model

        version, bundle = mlflow.champion_bundle(paths)
        model = load_trained_model(bundle)
        names = model_layer_names(model.keras_model)
        # a layer the model does not have is refused before any sound is read (ActivationsError names the valid ones)
        layers = resolve_layers(config.layers or None, names)
    else:
        version, model, layers = f"none ({config.network})", None, config.layers or None
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

    settings = {"kinds": list(config.kinds), "labels": list(config.labels), "equalize_ratio": config.equalize_ratio,
                "max_sounds": config.max_sounds, "model_version": version, "ratio": config.ratio}
    if model is not None:
        acts = compute_activations(model, sounds, recordings, layers=list(layers), position=config.position,
                                   seed=config.seed, mini_batch=config.mini_batch, progress=progress,
                                   settings=settings)
    else:
        from songexplorer_core.label_sounds import activations_without_model

        if config.network == "spectral" and config.layers:
            context.log.warning(f"layers={config.layers!r} is ignored: the spectral embedding has one layer")
        audio = project.settings()
        acts = activations_without_model(config.network, sounds, recordings, rate=audio.audio_tic_rate,
                                         nchannels=audio.audio_nchannels, seed=config.seed,
                                         layers=None if config.network == "spectral" else layers,
                                         position=config.position, mini_batch=config.mini_batch, progress=progress,
                                         settings=settings)
    names = acts.layer_names
    seconds = time.monotonic() - started
    path = write_activations(acts, paths.activations_path)
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
        "network": dg.MetadataValue.text(config.network),
        "kinds": dg.MetadataValue.json(list(config.kinds)),
        "size_mb": dg.MetadataValue.float(round(path.stat().st_size / 1e6, 3)),
        "seconds": dg.MetadataValue.float(round(seconds, 2)),
        "npz": dg.MetadataValue.path(str(path)),
    })


# ---------------------------------------------------------------------------------------------
# cluster


@dg.asset(
    deps=[activations],
    group_name="review",
    kinds={"umap", "scikitlearn", "parquet"},
)
@fails_clearly
def cluster(context: dg.AssetExecutionContext, config: ClusterConfig, project: ProjectResource) -> dg.MaterializeResult:
    """The activations embedded in 2-D or 3-D (UMAP, t-SNE or PCA; ``songexplorer_core.cluster``):
    ``outputs/cluster/cluster.parquet``, one row per sound of one layer, the file the annotator's
    cluster view reads, with the group each sound lies in (``group``, HDBSCAN on the picture; -1
    none), which the cluster view labels as one; every embedded layer in ``cluster-layers.parquet``."""
    from songexplorer_core.activations import read_activations, resolve_layers
    from songexplorer_core.cluster import cluster_activations, find_clusters, plot_embedding, write_cluster

    paths = project.project()
    acts = read_activations(paths.activations_path)
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
    axes = [a for a in ("x", "y", "z") if a in view.columns]
    view["group"] = find_clusters(view[axes].to_numpy(), min_cluster_size=config.min_group_size or None)
    ngroups = int(view["group"].max()) + 1 if len(view) else 0
    path = write_cluster(view, paths.cluster_path)
    every_layer = write_cluster(table, paths.cluster_layers_path)
    png = save_png(plot_embedding(view, f"{params.method}, layer {shown} ({acts.layer_names[shown]}), "
                                        f"{len(view)} sounds"), paths.cluster_plot_path, dpi=80)
    context.log.info(f"{len(view)} sounds embedded with {params.method} in {seconds:.1f} s "
                     f"(layers {embedded}, shown {shown}; {ngroups} groups) -> {path}")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(len(view)),
        "per_kind_and_label": _markdown_counts(view, "kind"),
        "method": dg.MetadataValue.text(params.method),
        "parameters": dg.MetadataValue.json(params.to_dict()),
        "layers": dg.MetadataValue.json([f"{i} {acts.layer_names[i]}" for i in embedded]),
        "shown_layer": dg.MetadataValue.text(f"{shown} {acts.layer_names[shown]}"),
        "groups": dg.MetadataValue.int(ngroups),
        "in_no_group": dg.MetadataValue.int(int((view["group"] < 0).sum())),
        "network": dg.MetadataValue.text(str(acts.settings.get("embedding") or "champion")),
        "embedding": png_markdown(png, "cluster", paths.outputs),
        "seconds": dg.MetadataValue.float(round(seconds, 2)),
        "parquet": dg.MetadataValue.path(str(path)),
        "every_layer": dg.MetadataValue.path(str(every_layer)),
    })


# ---------------------------------------------------------------------------------------------
# summaries


@dg.asset(
    deps=[dg.AssetDep("ethograms", partition_mapping=dg.AllPartitionMapping())],
    group_name="review",
    kinds={"pandas", "matplotlib", "csv"},
    # after its inputs update; waits for partitions on their way, ignores those that cannot come
    automation_condition=eager_over_recordings(["ethograms"]),
)
@fails_clearly
def summaries(context: dg.AssetExecutionContext, config: SummariesConfig,
                   project: ProjectResource) -> dg.MaterializeResult:
    """Events per minute, coverage, bouts and inter-pulse intervals (seconds) per recording and
    label across every classified recording, and an ethogram raster
    (``songexplorer_core.summaries``), under ``outputs/summaries/``."""
    from songexplorer_core.audio import recording_info
    from songexplorer_core.summaries import song_summary, summary_by_label, write_summaries

    keys = sorted(context.instance.get_dynamic_partitions(recordings_partitions.name))
    paths = project.project()
    classified = [k for k in keys if paths.ethogram_path(k).exists()]
    missing = sorted(set(keys) - set(classified))
    if not classified:
        raise FileNotFoundError(f"no recording has an ethogram yet ({len(keys)} recording(s)); materialise "
                                f"probabilities and ethograms first")
    names = recording_names(classified)
    tables, durations, versions, ratios = [], {}, set(), set()
    for key in classified:
        predicted, ratio, source = predicted_intervals(paths, key, config.ratio)
        tables.append(predicted.assign(wav=names[key]))
        durations[names[key]] = recording_info(project.recording_path(key)).duration_s
        versions.add(str(source.get("model_version")))
        ratios.add(ratio)
    intervals = concat_intervals(tables)
    rate = project.settings().audio_tic_rate
    folder = paths.summaries_dir
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
        "ethogram": png_markdown(folder / "ethogram.png", "ethogram raster", paths.outputs),
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
