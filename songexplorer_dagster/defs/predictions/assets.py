"""The ``predictions`` group: every recording classified by the champion model, and its ethogram."""

import json
import time
from pathlib import Path

import dagster as dg
import pandas as pd

from songexplorer_core.atomic import atomic_path, atomic_write
from songexplorer_core.figures import save_png
from songexplorer_dagster.batches import RECORDINGS_BACKFILL, per_recording
from songexplorer_dagster.constants import GPU_POOL, PREVIEW_ROWS
from songexplorer_dagster.failures import fails_clearly
from songexplorer_dagster.defs.resources import ComputeResource, EthogramResource, MlflowResource, ProjectResource
from songexplorer_dagster.conditions import eager_except_for_new_models
from songexplorer_dagster.metadata import annotator_link, intervals_preview, png_markdown
from songexplorer_dagster.partitions import recordings_partitions


@dg.asset(
    partitions_def=recordings_partitions,
    deps=["recordings", "trained_model"],
    group_name="predictions",
    kinds={"tensorflow", "numpy", "wav"},
    pool=GPU_POOL,
    automation_condition=eager_except_for_new_models(),
    backfill_policy=RECORDINGS_BACKFILL,
)
@fails_clearly
def probabilities(
    context: dg.AssetExecutionContext, project: ProjectResource, mlflow: MlflowResource, compute: ComputeResource
):
    """One recording classified by the MLflow ``champion`` model, over the whole recording fully
    convolutionally (``songexplorer_core.classify``): ``outputs/probabilities/<dir>/<wav>-probabilities.npz``
    and SongExplorer's per-label probability WAVs (``<wav>-<label>.wav``) beside it, with
    ``<wav>-classify.json`` naming the model (version, folder, digest) and each file's digest,
    written last (the ethogram refuses a set a kill left half-written).

    Automated: a new recording gets probabilities without anyone asking (automation), and a new
    model re-classifies every recording (``new_model_sensor``: batched runs straight to the queue).
    When the gate refused a new model the champion is unchanged, and the files that version made
    are reused (metadata ``reused``) instead of classifying again. In the ``gpu`` pool.

    Many recordings at once (a new champion, a backfill) run in batches of up to
    ``songexplorer_dagster.batches.PARTITIONS_PER_RUN`` per run: the champion is looked up and
    loaded once per process (``songexplorer_core.classify.cached_classifier``), each recording
    is logged and written as it is done, and one that fails fails only its own partition.
    """
    compute.configure(context.log)
    paths = project.project()
    version, bundle = mlflow.champion_bundle(paths)
    yield from per_recording(context, lambda key, step: _classify_one(step, project, paths, key, version, bundle),
                             what=f"classified by v{version}")


def _classify_one(context: dg.AssetExecutionContext, project: ProjectResource, paths, key: str, version: str,
                  bundle: Path) -> dict:
    """Classify one recording with the champion (``version`` in ``bundle``); its metadata."""
    from songexplorer_core.classify import cached_classifier, write_classify_outputs
    from songexplorer_core.models import model_identity
    from songexplorer_core.outputs import recording_stamp

    wav_path = project.recording_path(key)
    npz = paths.probabilities_npz(key)
    stamp = recording_stamp(wav_path)
    made_by = paths.probabilities_source_path(key)
    if npz.exists() and made_by.exists():
        previous = json.loads(made_by.read_text())
        if str(previous.get("model_version")) == version and previous.get("recording") == stamp:
            # a retraining the gate refused leaves the champion as it was: nothing to recompute
            context.log.info(f"{wav_path.name}: probabilities of champion v{version} are up to date ({npz}); reused")
            return {
                "model_version": dg.MetadataValue.text(version),
                "reused": dg.MetadataValue.bool(True),
                "npz": dg.MetadataValue.path(str(npz)),
            }
    _, classifier = cached_classifier(bundle)
    started = time.monotonic()
    probs = classifier.classify_recording(wav_path)
    seconds = time.monotonic() - started
    # the set (WAVs, npz, <wav>-classify.json naming the model) is written as one: a kill leaves
    # a set the ethogram refuses, never one mixing two models
    written = write_classify_outputs(probs, paths.probabilities_dir(key), wav_path.name,
                                     model=model_identity(bundle, model_version=version))
    wavs = [path for path in written if path.suffix == ".wav"]
    with atomic_write(made_by) as handle:
        json.dump({"model_version": version, "bundle": str(bundle), "recording": stamp}, handle)
    duration_s = (probs.ntics or 0) / probs.rate
    means = {label: round(float(probs.values[:, i].mean()), 4) for i, label in enumerate(probs.labels)}
    context.log.info(f"{wav_path.name}: {probs.values.shape[0]} samples x {len(probs.labels)} labels with "
                     f"model v{version} in {seconds:.2f} s ({duration_s / max(seconds, 1e-9):.0f}x realtime)")
    return {
        "model_version": dg.MetadataValue.text(version),
        "reused": dg.MetadataValue.bool(False),
        "labels": dg.MetadataValue.json(list(probs.labels)),
        "samples": dg.MetadataValue.int(int(probs.values.shape[0])),
        "output_rate_hz": dg.MetadataValue.float(probs.rate / probs.stride_tics),
        "mean_probability": dg.MetadataValue.json(means),
        "realtime_factor": dg.MetadataValue.float(round(duration_s / max(seconds, 1e-9), 1)),
        "npz": dg.MetadataValue.path(str(npz)),
        "probability_wavs": dg.MetadataValue.json([str(p) for p in wavs]),
    }


def _model_labels(bundle: Path, shown: pd.DataFrame) -> list[str]:
    """Every label of the model (its ``labels.txt``), so a label it never predicted here still has
    its row in the plot; the predicted labels when the file is absent."""
    path = bundle / "labels.txt"
    labels = [line.strip() for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    return labels or sorted(str(x) for x in shown["label"].unique())


@dg.asset(
    partitions_def=recordings_partitions,
    deps=[probabilities],
    group_name="predictions",
    kinds={"csv", "parquet"},
    automation_condition=dg.AutomationCondition.eager(),
    backfill_policy=RECORDINGS_BACKFILL,
)
@fails_clearly
def ethograms(context: dg.AssetExecutionContext, project: ProjectResource, ethogram: EthogramResource):
    """One recording's probabilities as predicted intervals, by the ``ethogram`` resource's method
    (default ``auto``: the label of highest probability for exclusive models, the champion's
    per-label thresholds for overlapped ones; one event per pulse, short sine slivers dropped),
    written as SongExplorer's
    ``<wav>-predicted-<ratio>pr.csv`` (and ``<wav>-ethogram.log``) under ``outputs/predicted/<dir>/``,
    one file per precision/recall ratio of the model's thresholds (also in each format
    ``songexplorer.toml``'s ``annotation_formats`` names: ``<csv stem>.TextGrid``...), and all of them in
    ``outputs/ethograms/<key>.parquet`` (column ``ratio``) with a plot. Many recordings run in
    batches, one partition each (``songexplorer_dagster.batches``).
    """
    paths = project.project()
    yield from per_recording(context, lambda key, step: _ethogram_one(step, project, ethogram, paths, key),
                             what="ethogram written")


def _ethogram_one(context: dg.AssetExecutionContext, project: ProjectResource, ethogram: EthogramResource,
                  paths, key: str) -> dict:
    """One recording's ethogram files and plot; its metadata."""
    from songexplorer_core.annotations import read_intervals_csv
    from songexplorer_core.audio import recording_info
    from songexplorer_core.ethogram import run_ethogram
    from songexplorer_core.formats import export_csvs
    from songexplorer_core.outputs import ethogram_log_method
    from songexplorer_core.summaries import plot_recording_ethogram

    wav_path = project.recording_path(key)
    source = json.loads(paths.probabilities_source_path(key).read_text())
    bundle = Path(source["bundle"])
    checkpoint = (bundle / "checkpoint.txt").read_text().strip()
    threshold_files = sorted(bundle.glob(f"thresholds-*pr.ckpt-{checkpoint}.csv")) or sorted(
        bundle.glob("thresholds*.csv"))
    if not threshold_files:
        raise FileNotFoundError(f"{bundle}: the model has no thresholds file; retrain it (trained_model)")
    out_dir = paths.predicted_dir(key)
    written = []
    for thresholds_path in threshold_files:
        written += run_ethogram(wav_path.name, thresholds_path, probabilities_dir=paths.probabilities_dir(key),
                                out_dir=out_dir, rate=project.settings().audio_tic_rate, **ethogram.settings())
    # the same ethograms in the formats songexplorer.toml names (annotation_formats), beside the CSVs
    exported = export_csvs(written, project.settings().annotation_formats, rate=project.settings().audio_tic_rate,
                           duration_tics=recording_info(wav_path).frames)
    method = ethogram_log_method(out_dir / f"{wav_path.name}-ethogram.log")
    tables = []
    for path in written:
        ratio = path.name.removeprefix(f"{wav_path.name}-predicted").removesuffix(".csv").lstrip("-") or "1.0pr"
        tables.append(read_intervals_csv(path).assign(ratio=ratio))
    frame = pd.concat(tables, ignore_index=True)
    parquet = paths.ethogram_path(key)
    with atomic_path(parquet) as temporary:
        frame.to_parquet(temporary, index=False)
    first_ratio = frame["ratio"].iloc[0] if len(frame) else None
    shown = frame[frame["ratio"] == first_ratio] if first_ratio is not None else frame
    counts = {str(k): int(v) for k, v in shown["label"].value_counts().items()}
    rate = project.settings().audio_tic_rate
    figure = plot_recording_ethogram(shown.drop(columns=["ratio"]), recording_info(wav_path).duration_s, rate=rate,
                                     labels=_model_labels(bundle, shown),
                                     title=f"{key}: predicted by model v{source['model_version']} ({method}, "
                                           f"P/R {first_ratio})")
    png = save_png(figure, paths.ethogram_plot_path(key), dpi=100)
    context.log.info(f"{wav_path.name}: {len(shown)} predicted intervals ({method}, {first_ratio}): {counts}")
    return {
        "dagster/row_count": dg.MetadataValue.int(len(frame)),
        "predicted_per_label": dg.MetadataValue.json(counts),
        "ratio": dg.MetadataValue.text(str(first_ratio)),
        "method": dg.MetadataValue.text(method),
        "model_version": dg.MetadataValue.text(source["model_version"]),
        "ethogram": png_markdown(png, "", paths.outputs),
        **annotator_link(key, shown["start"], rate, "the first predicted sound"),
        "preview": intervals_preview(shown, rate, max_rows=PREVIEW_ROWS),
        "csvs": dg.MetadataValue.json([str(p) for p in written]),
        **({"exported": dg.MetadataValue.json([str(p) for p in exported])} if exported else {}),
    }

