"""Predictions: every recording classified by the champion model, and its ethogram.

``probabilities`` (one partition per recording) runs the MLflow ``champion`` model over the whole
recording fully convolutionally (``songexplorer_core.classify``) and writes
``outputs/probabilities/<dir>/<wav>-probabilities.npz`` plus SongExplorer's per-label probability
WAVs (``outputs/probabilities/<dir>/<wav>-<label>.wav``). ``ethograms`` turns them into
predicted intervals by the ``ethogram`` resource's method (default ``auto``: the label of highest
probability for exclusive models, the champion's per-label thresholds for overlapped ones),
written as SongExplorer's ``<wav>-predicted-<ratio>pr.csv`` (and ``<wav>-ethogram.log``) under
``outputs/predicted/<dir>/``, one file per precision/recall ratio of the model's thresholds.

Both are automated: a new recording, or a new champion, gets probabilities and ethograms without
anyone asking. Automation re-materialises them after every training; when the gate refused the
new model the champion is unchanged, and ``probabilities`` reuses the files that version made
(metadata ``reused``) instead of classifying again.
"""

import json
import time
from pathlib import Path

import dagster as dg
import pandas as pd

from songexplorer_core.atomic import atomic_path, atomic_write
from songexplorer_core.figures import save_png
from songexplorer_core.project import recording_relpath
from songexplorer_dagster.assets.models import GPU_OP_TAGS, GPU_POOL, models_dir, trained_model
from songexplorer_dagster.assets.recordings import recordings
from songexplorer_dagster.metadata import png_markdown, table_markdown
from songexplorer_dagster.partitions import recordings_partitions
from songexplorer_dagster.resources import ProjectResource
from songexplorer_dagster.resources.compute import ComputeResource
from songexplorer_dagster.resources.ethogram import EthogramResource
from songexplorer_dagster.resources.mlflow import MlflowResource


def champion_bundle(project: ProjectResource, mlflow: MlflowResource) -> tuple[str, Path]:
    """``(version, folder)`` of the champion model, downloaded once into
    ``outputs/models/registry/v<version>/``."""
    from songexplorer_core.tracking import champion_version, download_model_folder

    tracking = mlflow.tracking(project.project().root)
    version = str(champion_version(tracking).version)
    folder = models_dir(project) / "registry" / f"v{version}"
    if not (folder / "model.json").exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = folder.with_name(f".v{version}.download")
        if staging.exists():
            import shutil

            shutil.rmtree(staging)
        downloaded = download_model_folder(tracking, version, staging)
        downloaded.rename(folder) if downloaded != staging else staging.rename(folder)
    return version, folder


def probabilities_dir(project: ProjectResource, key: str) -> Path:
    return project.project().outputs / "probabilities" / recording_relpath(key).parent


def probabilities_npz(project: ProjectResource, key: str) -> Path:
    from songexplorer_core.classify import probabilities_npz_name

    return probabilities_dir(project, key) / probabilities_npz_name(recording_relpath(key).name)


def predicted_dir(project: ProjectResource, key: str) -> Path:
    return project.project().outputs / "predicted" / recording_relpath(key).parent


@dg.asset(
    partitions_def=recordings_partitions,
    deps=[recordings, trained_model],
    group_name="predictions",
    kinds={"tensorflow", "numpy", "wav"},
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
    automation_condition=dg.AutomationCondition.eager(),
    description=__doc__,
)
def probabilities(
    context: dg.AssetExecutionContext, project: ProjectResource, mlflow: MlflowResource, compute: ComputeResource
) -> dg.MaterializeResult:
    """Classify one recording with the champion model."""
    compute.configure(context.log)
    from songexplorer_core.classify import classify_recording, write_probabilities, write_probability_wavs
    from songexplorer_core.models import load_trained_model

    key = context.partition_key
    wav_path = project.recording_path(key)
    version, bundle = champion_bundle(project, mlflow)
    npz = probabilities_npz(project, key)
    stamp = recording_stamp(wav_path)
    made_by = npz.with_suffix(".json")
    if npz.exists() and made_by.exists():
        previous = json.loads(made_by.read_text())
        if str(previous.get("model_version")) == version and previous.get("recording") == stamp:
            # a retraining the gate refused leaves the champion as it was: nothing to recompute
            context.log.info(f"{wav_path.name}: probabilities of champion v{version} are up to date ({npz}); reused")
            return dg.MaterializeResult(metadata={
                "model_version": dg.MetadataValue.text(version),
                "reused": dg.MetadataValue.bool(True),
                "npz": dg.MetadataValue.path(str(npz)),
            })
    model = load_trained_model(bundle)
    started = time.monotonic()
    probs = classify_recording(model, wav_path)
    seconds = time.monotonic() - started
    write_probabilities(probs, npz)
    wavs = write_probability_wavs(probs, probabilities_dir(project, key), wav_path.name)
    with atomic_write(made_by) as handle:
        json.dump({"model_version": version, "bundle": str(bundle), "recording": stamp}, handle)
    duration_s = (probs.ntics or 0) / probs.rate
    means = {label: round(float(probs.values[:, i].mean()), 4) for i, label in enumerate(probs.labels)}
    context.log.info(f"{wav_path.name}: {probs.values.shape[0]} samples x {len(probs.labels)} labels with "
                     f"model v{version} in {seconds:.2f} s ({duration_s / max(seconds, 1e-9):.0f}x realtime)")
    return dg.MaterializeResult(
        metadata={
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
    )


def recording_stamp(path: Path) -> dict:
    """What identifies a recording's content cheaply (size and modification time, ns)."""
    info = path.stat()
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns}


@dg.asset(
    partitions_def=recordings_partitions,
    deps=[probabilities],
    group_name="predictions",
    kinds={"csv", "parquet"},
    automation_condition=dg.AutomationCondition.eager(),
    description=__doc__,
)
def ethograms(context: dg.AssetExecutionContext, project: ProjectResource, ethogram: EthogramResource
              ) -> dg.MaterializeResult:
    """One recording's probabilities as predicted intervals, per P/R ratio of the thresholds."""
    from songexplorer_core.annotations import read_intervals_csv
    from songexplorer_core.ethogram import run_ethogram
    from songexplorer_core.summaries import plot_ethogram

    key = context.partition_key
    wav_path = project.recording_path(key)
    npz = probabilities_npz(project, key)
    source = json.loads(npz.with_suffix(".json").read_text())
    bundle = Path(source["bundle"])
    checkpoint = (bundle / "checkpoint.txt").read_text().strip()
    threshold_files = sorted(bundle.glob(f"thresholds-*pr.ckpt-{checkpoint}.csv")) or sorted(
        bundle.glob("thresholds*.csv"))
    if not threshold_files:
        raise FileNotFoundError(f"{bundle}: the model has no thresholds file; retrain it (trained_model)")
    out_dir = predicted_dir(project, key)
    written = []
    for thresholds_path in threshold_files:
        written += run_ethogram(wav_path.name, thresholds_path, probabilities_dir=probabilities_dir(project, key),
                                out_dir=out_dir, rate=project.settings().audio_tic_rate, method=ethogram.method,
                                min_segment_fraction=ethogram.min_segment_fraction)
    method = ethogram_log_method(out_dir / f"{wav_path.name}-ethogram.log")
    tables = []
    for path in written:
        ratio = path.name.removeprefix(f"{wav_path.name}-predicted").removesuffix(".csv").lstrip("-") or "1.0pr"
        tables.append(read_intervals_csv(path).assign(ratio=ratio))
    frame = pd.concat(tables, ignore_index=True)
    parquet = project.project().outputs / "ethograms" / f"{key}.parquet"
    with atomic_path(parquet) as temporary:
        frame.to_parquet(temporary, index=False)
    first_ratio = frame["ratio"].iloc[0] if len(frame) else None
    shown = frame[frame["ratio"] == first_ratio] if first_ratio is not None else frame
    counts = {str(k): int(v) for k, v in shown["label"].value_counts().items()}
    rate = project.settings().audio_tic_rate
    from songexplorer_core.audio import recording_info

    figure = plot_ethogram(shown.drop(columns=["ratio"]), {wav_path.name: recording_info(wav_path).duration_s},
                           rate=rate)
    png = save_png(figure, parquet.with_suffix(".png"), dpi=80)
    context.log.info(f"{wav_path.name}: {len(shown)} predicted intervals ({method}, {first_ratio}): {counts}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(frame)),
            "predicted_per_label": dg.MetadataValue.json(counts),
            "ratio": dg.MetadataValue.text(str(first_ratio)),
            "method": dg.MetadataValue.text(method),
            "model_version": dg.MetadataValue.text(source["model_version"]),
            "ethogram": png_markdown(png, f"{wav_path.name} ({method}, P/R {first_ratio})"),
            "preview": table_markdown(shown.head(10)),
            "csvs": dg.MetadataValue.json([str(p) for p in written]),
        }
    )


def ethogram_log_method(log: Path) -> str:
    """The ``method:`` line of an ``<wav>-ethogram.log`` (the method actually used)."""
    for line in log.read_text(encoding="utf-8").splitlines():
        if line.startswith("method:"):
            return line.split(":", 1)[1].strip()
    return "threshold"  # SongExplorer's logs do not say: it only thresholds
