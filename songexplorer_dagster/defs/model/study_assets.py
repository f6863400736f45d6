"""The ``model`` group's studies: many trainings, summarised and compared in MLflow (``model_study``)."""

import time
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from songexplorer_dagster.constants import GPU_POOL
from songexplorer_dagster.defs.resources import ComputeResource, MlflowResource, ProjectResource
from songexplorer_dagster.defs.model.study_config import StudyConfig
from songexplorer_dagster.metadata import png_markdown, table_markdown


@dg.asset(
    deps=["ground_truth"],
    group_name="model",
    kinds={"tensorflow", "mlflow"},
    pool=GPU_POOL,
)
def model_study(
    context: dg.AssetExecutionContext,
    config: StudyConfig,
    project: ProjectResource,
    mlflow: MlflowResource,
    compute: ComputeResource,
) -> dg.MaterializeResult:
    """Many trainings on ``ground_truth`` compared (``songexplorer_core.studies``): k-fold
    x-validation, generalization to withheld recordings, a sweep over any parameters (optionally
    x-validated), replicates or a learning curve, as ``StudyConfig`` in the Launchpad says. The
    trainings run side by side in processes, each configured as the ``compute`` resource says,
    into ``outputs/studies/<name>/``. MLflow: a parent run with the summary (per-label precision,
    recall and F1, mean and spread) and the comparison plots, and one nested child run per
    training. Nothing is registered: a study never changes the champion (promote a child or an
    ensemble from the CLI or MLflow). In the ``gpu`` pool.
    """
    from songexplorer_core.dataset import GroundTruth
    from songexplorer_core.outputs import read_ground_truth
    from songexplorer_core.studies import default_workers, run_study

    paths = project.project()
    frame, recording_paths = read_ground_truth(paths)
    frame = frame[frame["kind"].isin(config.kinds())]
    labels = list(config.labels_to_use) or sorted(str(x) for x in frame["label"].unique())
    if not labels:
        raise ValueError(f"the ground truth of {paths.groundtruth} has no annotations of kinds {list(config.kinds())}; "
                         f"annotate some sounds first")
    ground = GroundTruth(intervals=frame, recordings={k: Path(v) for k, v in recording_paths.items()},
                         root=paths.groundtruth)
    base = config.train_config(labels)
    name = config.name or f"{config.kind}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}"
    study_dir = paths.outputs / "studies" / name
    tracking = mlflow.tracking(paths.root)
    if config.start_from:  # every training starts from the same parent (transfer learning)
        from songexplorer_core.transfer import resolve_parent, transfer_config

        parent = resolve_parent(config.start_from, tracking=tracking, dst=study_dir / "parent")
        base = transfer_config(base, parent.folder, train_layers=config.train_layers or (), freeze=config.freeze or 0,
                               dropout_rate=config.dropout_rate, scale_learning_rate=config.learning_rate is None)
    trials = config.trials(ground, base)  # bad input fails here, before any training is written
    context.log.info(f"{config.kind}: {len(trials)} trainings of {labels} -> {study_dir}")
    last = [0.0]

    def progress(p):
        now = time.monotonic()
        if now - last[0] > 10 or p.step == p.nsteps:
            last[0] = now
            context.log.info(f"{p.trial}: step {p.step}/{p.nsteps} ({p.done}/{p.total} trainings done)")

    workers = config.workers or default_workers(len(trials), compute.threads)
    if workers <= 1 or len(trials) == 1:  # trainings in this process: configure TensorFlow here
        compute.configure(context.log)
    result = run_study(ground, trials, study_dir, kind=config.kind, base=base, tracking=tracking,
                       ratios=tuple(config.precision_recall_ratios), workers=workers, device=compute.device,
                       threads=compute.threads, progress=progress, ground_truth_name=str(paths.groundtruth),
                       tags={"songexplorer.project": str(paths.root)})
    summary = result.summary
    metadata = {
        "mlflow_run": dg.MetadataValue.url(result.run_url),
        "study_dir": dg.MetadataValue.path(str(study_dir)),
        "trainings": dg.MetadataValue.int(len(result.results)),
        "wall_seconds": dg.MetadataValue.float(round(result.wall_seconds, 1)),
        "per_label": table_markdown(summary.labels),
        "per_training": table_markdown(summary.trials.drop(columns=["setting"], errors="ignore")),
    }
    if summary.recordings is not None:
        metadata["per_withheld_recording"] = table_markdown(summary.recordings)
    for png, title in (("compare-f1.png", "F1 per label"), ("compare-curves.png", "training curves"),
                       ("compare-confusion.png", "confusion matrices")):
        if (study_dir / png).exists():
            metadata[png.removesuffix(".png")] = png_markdown(study_dir / png, title, paths.outputs)
    context.log.info(summary.per_label_text())
    return dg.MaterializeResult(metadata=metadata)
