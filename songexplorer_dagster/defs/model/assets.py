"""The ``model`` group: the classifier trained on the ground truth, measured, and tracked in MLflow."""

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from songexplorer_core.atomic import atomic_write
from songexplorer_dagster.failures import fails_clearly
from songexplorer_dagster.constants import GPU_POOL
from songexplorer_dagster.defs.model.checks import PROMOTION_CHECK_SPEC, promotion_check_result
from songexplorer_dagster.defs.model.config import TrainingConfig
from songexplorer_dagster.defs.resources import (
    ComputeResource, DenseSetResource, EthogramResource, MlflowResource, ProjectResource,
)
from songexplorer_dagster.metadata import png_markdown, table_markdown


@dg.asset(
    deps=["ground_truth"],
    group_name="model",
    kinds={"tensorflow", "keras", "mlflow"},
    pool=GPU_POOL,
    # A project gets its first model by itself once it has ground truth; later trainings come
    # from the nightly schedule (when annotations changed) or from a person in the UI.
    # (on_missing() only fires for partitions added after it is attached: never for an
    # unpartitioned asset missing from the start. A failed attempt is not retried in a loop.
    # Ground truth must be recorded, not merely planned in the same tick: a project of WAVs alone
    # records none until its first annotation, docs/dagster.md "Starting from zero".)
    automation_condition=(
        dg.AutomationCondition.missing()
        & ~dg.AutomationCondition.any_deps_match(dg.AutomationCondition.missing())
        & ~dg.AutomationCondition.in_progress()
        & ~dg.AutomationCondition.execution_failed()
    ).with_label("first model once there is ground truth"),
    check_specs=[PROMOTION_CHECK_SPEC],
)
@fails_clearly
def trained_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    project: ProjectResource,
    mlflow: MlflowResource,
    compute: ComputeResource,
    dense_set: DenseSetResource,
    ethogram: EthogramResource,
) -> dg.MaterializeResult:
    """SongExplorer's convolutional network trained on ``ground_truth`` with the hyperparameters
    of ``TrainingConfig`` (a recipe, any field overridden), its best checkpoint by validation F1
    and that checkpoint's per-label thresholds, logged as one MLflow run (hyperparameters, loss
    and accuracy per step, F1 per label, the Keras model) and registered as a new version of the
    project's model (``songexplorer_core.training_run``). The run is named by what it is (model
    version, recipe, labels, time), links back to this Dagster run, and reports labels annotated
    both as ranges and as points (``songexplorer_core.label_kinds``); the metadata links to the
    run and to the experiment's training runs.

    Which version carries the alias ``champion`` (classification always uses it): a version a
    person pinned; else, when the ``dense_set`` resource names dense annotators, the promotion
    gate decides (the blocking check ``no_regression_on_dense_annotations``: refused when its F1
    on the dense annotations falls below the champion's by more than the tolerance); otherwise
    the version with the best validation F1. In the ``gpu`` pool; on Kubernetes it asks for one
    GPU. TensorFlow is imported inside the step only.

    With ``start_from`` (a version of the project's model, an MLflow URI or a model folder) the
    training starts from that model's layers, downloaded into ``<run_dir>/parent/``, with a new
    output layer for these labels and ``train_layers``/``freeze`` choosing what changes
    (``songexplorer_core.transfer``); the run's tags name the parent's run, version and URI.
    """
    compute.configure(context.log)
    from songexplorer_core.dataset import GroundTruth, labels_to_learn
    from songexplorer_core.outputs import content_hash, read_ground_truth
    from songexplorer_core.promotion import GATE_DECIDES
    from songexplorer_core.promotion_gate import promotion_gate
    from songexplorer_core.tracking import DAGSTER_RUN_ID_TAG, DAGSTER_RUN_URL_TAG, DEFAULT_CHAMPION_METRIC
    from songexplorer_core.training_run import train_and_log

    paths = project.project()
    frame, recording_paths = read_ground_truth(paths)
    trained_on = content_hash(frame)
    frame = frame[frame["kind"].isin(config.kinds())]
    labels = list(config.labels_to_use) or labels_to_learn(frame)
    if not labels:
        raise ValueError(
            f"the ground truth of {paths.groundtruth} has no annotations of kinds "
            f"{list(config.kinds())}; annotate some sounds (the annotator, or <wav>-annotated-<name>.csv files)"
        )
    ground = GroundTruth(intervals=frame, recordings={k: Path(v) for k, v in recording_paths.items()},
                         root=paths.groundtruth)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    run_dir = paths.models_dir / stamp
    context.log.info(f"training {labels} on {len(frame)} annotations -> {run_dir}")
    last_log = [0.0]

    def progress(p):
        now = time.monotonic()
        if p.step == p.nsteps or p.validation_accuracy is not None or now - last_log[0] > 10:
            last_log[0] = now
            validation = "" if p.validation_accuracy is None else f", validation accuracy {p.validation_accuracy:.3f}"
            context.log.info(f"replicate {p.replicate}/{p.nreplicates} step {p.step}/{p.nsteps}: "
                             f"loss {p.train_loss:.4f}, accuracy {p.train_accuracy:.3f}{validation}")

    tracking = mlflow.tracking(paths.root)
    train_config = config.train_config(labels)
    if config.start_from:  # transfer learning: the parent downloaded beside the training
        from songexplorer_core.transfer import resolve_parent, transfer_config

        parent = resolve_parent(config.start_from, tracking=tracking, dst=run_dir / "parent")
        train_config = transfer_config(train_config, parent.folder, train_layers=config.train_layers or (),
                                       freeze=config.freeze or 0, dropout_rate=config.dropout_rate,
                                       scale_learning_rate=config.learning_rate is None)
        context.log.info(f"starting from {parent.lineage.get('model_uri') or parent.folder}")
    settings = dense_set.settings(project)
    ratios = tuple(config.precision_recall_ratios)
    dagster_run = mlflow.dagster_run_url(context.run.run_id)
    run = train_and_log(
        ground, train_config, run_dir, tracking, ratios=ratios, progress=progress,
        recipe=config.recipe, links=f"Trained by Dagster run [{context.run.run_id[:8]}]({dagster_run}).",
        tags={"songexplorer.project": str(paths.root), "songexplorer.run_dir": str(run_dir),
              DAGSTER_RUN_ID_TAG: context.run.run_id, DAGSTER_RUN_URL_TAG: dagster_run},
        # with a dense set the gate below moves the alias; logging must leave it alone
        champion_metric=GATE_DECIDES if settings.configured else DEFAULT_CHAMPION_METRIC)
    tracked, best = run.tracked, run.report.best
    for note in run.kind_notes:  # a label annotated both as ranges and as points (songexplorer_core.label_kinds)
        context.log.warning(note)
    gate = promotion_gate(tracking, paths, settings, candidate_version=tracked.version,
                          candidate_run_id=tracked.run_id, candidate_model=run.trained, candidate_bundle=run.bundle,
                          champion_bundle=lambda: mlflow.champion_bundle(paths), **ethogram.settings(),
                          log=context.log)
    check = promotion_check_result(gate, measure=settings.measure, reference=settings.reference)
    latest = {
        "run_dir": str(run_dir), "model_dir": str(run.model_dir), "bundle": str(run.bundle),
        "checkpoint": best.checkpoint, "labels": list(best.labels), "ratios": list(ratios),
        "mlflow_run_id": tracked.run_id, "mlflow_experiment_id": tracked.experiment_id,
        "model_version": tracked.version, "champion_version": gate.champion, "promotion": check.description,
        "run_url": tracked.run_url,
    }
    with atomic_write(paths.latest_model_path) as handle:
        json.dump(latest, handle, indent=2)
    context.log.info(f"model version {tracked.version} (champion: {gate.champion}); F1 {run.per_label_f1}; "
                     f"thresholds {best.thresholds[ratios[0]]}")
    return dg.MaterializeResult(
        metadata={
            "mlflow_run": dg.MetadataValue.url(tracked.run_url),
            "mlflow_experiment": dg.MetadataValue.url(tracking.experiment_url(tracked.experiment_id)),
            "model_version": dg.MetadataValue.text(tracked.version),
            "champion_version": dg.MetadataValue.text(str(gate.champion)),
            "promotion": dg.MetadataValue.text(check.description or ""),
            # "kept out" when the gate refused it: the run succeeded, the model is just not champion
            "promotion_outcome": check.metadata["outcome"],
            "validation_f1_macro": dg.MetadataValue.float(run.metrics["validation_f1_macro"]),
            "f1_per_label": dg.MetadataValue.json(run.per_label_f1),
            "per_label": table_markdown(best.label_table()),
            "parameters": dg.MetadataValue.int(run.nparams),
            "best_checkpoint": dg.MetadataValue.int(best.checkpoint),
            "annotations_used": dg.MetadataValue.json(run.result.counts),
            "train_seconds": dg.MetadataValue.float(round(run.train_seconds, 2)),
            "model_folder": dg.MetadataValue.path(str(run.bundle)),
            "ground_truth_hash": dg.MetadataValue.text(trained_on),
            "mixed_label_kinds": dg.MetadataValue.md(
                "\n".join(f"- {note}" for note in run.kind_notes) or "every label is annotated as one kind"),
            # every replicate is a child run of this one; their spread (mean, s.d. of F1)
            **({"replicates": table_markdown(_frame(run.replicates)),
                "replicates_spread": dg.MetadataValue.json(run.spread)} if run.replicates else {}),
        },
        check_results=[check],
    )


def _frame(rows):
    import pandas as pd

    return pd.DataFrame(rows)


@dg.asset(
    deps=[trained_model],
    group_name="model",
    kinds={"matplotlib", "mlflow"},
    automation_condition=dg.AutomationCondition.eager(),
)
@fails_clearly
def accuracy_report(context: dg.AssetExecutionContext, project: ProjectResource, mlflow: MlflowResource
                    ) -> dg.MaterializeResult:
    """The latest training's accuracy: confusion matrices, precision-recall curves and training
    curves (``songexplorer_core.accuracy``), shown here and added to the run's MLflow artifacts."""
    from songexplorer_core import accuracy as A

    path = project.project().latest_model_path
    if not path.exists():
        raise FileNotFoundError(f"{path}: no model trained yet; materialise trained_model first")
    latest = json.loads(path.read_text())
    model_dir = Path(latest["model_dir"])
    report = A.accuracy_report(model_dir, ratios=tuple(latest["ratios"]))
    written = A.write_accuracy_outputs(report, model_dir, plots="all")
    client = mlflow.tracking(project.project().root).client()
    for path in written:
        if path.suffix in (".png", ".csv", ".json"):
            client.log_artifact(latest["mlflow_run_id"], str(path), artifact_path="accuracy")
    context.log.info(f"{len(written)} accuracy files in {model_dir}, logged to run {latest['mlflow_run_id']}")
    metadata = {
        "mlflow_run": dg.MetadataValue.url(latest["run_url"]),
        "best_checkpoint": dg.MetadataValue.int(report.best.checkpoint),
        "per_checkpoint": table_markdown(report.checkpoint_table()),
        "per_label": table_markdown(report.label_table()),
    }
    for name, title in (("confusion-matrix.png", "confusion matrix (best checkpoint)"),
                        ("precision-recall.png", "precision-recall (best checkpoint)"),
                        ("train-validation-loss.png", "training curves")):
        if (model_dir / name).exists():
            metadata[name.removesuffix(".png")] = png_markdown(model_dir / name, title, project.project().outputs)
    return dg.MaterializeResult(metadata=metadata)
