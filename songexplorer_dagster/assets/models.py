"""The classifier: trained on the ground truth, measured, and tracked in MLflow.

``trained_model`` trains SongExplorer's convolutional network (``songexplorer_core.train``) on the
``ground_truth`` asset with the hyperparameters of :class:`TrainingConfig`, picks the checkpoint
with the best validation F1 (``songexplorer_core.accuracy``) and computes its per-label thresholds,
then logs everything as one MLflow run: every hyperparameter, the loss and accuracy curves per
step, F1 per label, thresholds and the Keras model, registered as a new version of the project's
model. Which version carries the alias ``champion`` (classification always uses it): a version a
person pinned; else, when the ``dense_set`` resource names dense annotators, the promotion gate
decides (a blocking check of this asset: the new version is refused when its F1 on the dense
annotations falls below the champion's by more than the tolerance, and the alias stays);
otherwise the version with the best validation F1.

``accuracy_report`` draws the confusion matrices, precision-recall curves and training curves,
shows them here and adds them to the run's artifacts.

Training is in the ``gpu`` pool, so local runs never put two GPU steps on one card, and asks
Kubernetes for one GPU through its ``dagster-k8s/config`` tags when the same code runs there.
TensorFlow is imported inside the steps only.
"""

import json
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from songexplorer_core.atomic import atomic_write
from songexplorer_dagster.assets.annotations import content_hash, ground_truth, read_ground_truth
from songexplorer_dagster.metadata import png_markdown, table_markdown
from songexplorer_dagster.resources import ProjectResource
from songexplorer_dagster.resources.compute import ComputeResource
from songexplorer_dagster.resources.dense import DenseSetResource
from songexplorer_dagster.resources.ethogram import EthogramResource
from songexplorer_dagster.resources.mlflow import MlflowResource

#: Concurrency pool of every step that uses the GPU (limit 1 in dagster.yaml: one step per card).
GPU_POOL = "gpu"
#: On Kubernetes (dagster-k8s), the step's pod asks for one GPU.
GPU_OP_TAGS = {
    "dagster-k8s/config": {
        "container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}}
    }
}
LATEST_MODEL = "latest.json"
#: The promotion gate: a blocking check of trained_model (songexplorer_dagster.assets.congruence).
PROMOTION_CHECK = "no_regression_on_dense_annotations"
PROMOTION_CHECK_SPEC = dg.AssetCheckSpec(
    PROMOTION_CHECK,
    asset="trained_model",
    blocking=True,
    description=("The new model does no worse on the densely annotated recordings than the champion (F1 per label, "
                 "within the dense_set resource's promotion_tolerance). If it does worse it is refused as champion "
                 "and the alias stays on the old version. Skipped (passes) when no dense annotators are named."),
)


#: Training recipes a ``TrainingConfig`` can start from (``songexplorer_core.recipes``).
RECIPE_NAMES = ("default", "tutorial")
#: TrainingConfig fields that are TrainConfig settings / ModelSpec fields.
_TRAINING_FIELDS = ("kinds_to_use", "nsteps", "validate_period", "save_period", "validate_percentage", "mini_batch",
                    "learning_rate", "optimizer", "loss", "parallelize", "batch_seed", "weights_seed", "nreplicates")
_MODEL_FIELDS = ("representation", "context_ms", "shiftby_ms", "window_ms", "stride_ms", "mel_dct", "nconvlayers",
                 "kernel_sizes", "nfeatures", "stride_time", "dilate_time", "connection", "dropout_rate", "normalization")


class TrainingConfig(dg.Config):
    """Training hyperparameters: a recipe, and any of its settings overridden.

    ``recipe="default"`` is this project's recipe (``songexplorer_core.recipes.DEFAULT_RECIPE``:
    1000 steps at learning rate 0.001, validated at the end, checkpoints every 100, dropout 0.2,
    8 taps per example; chosen on dense truth, docs/recipe.md); ``"tutorial"`` is SongExplorer's
    tutorial training (300 steps at 0.0002, validated every 30, dropout 0.5, 2 taps). A field left
    empty takes the recipe's value; the values used are logged to MLflow as the run's params.

    Model parameters use SongExplorer's GUI forms: kernel sizes ``"5x5,3"``, feature maps
    ``"64,64"``, layer lists ``"1,3"`` or ``"1-3"``, times in ms, frequencies in Hz.
    """

    recipe: Literal["default", "tutorial"] = Field(
        default="default", description="'default' (this project's) or 'tutorial' (SongExplorer's).")
    labels_to_use: list[str] = Field(
        default=[], description="Labels to learn, in output order; empty = every label in the ground truth."
    )
    kinds_to_use: list[str] | None = Field(default=None, description="Kinds of intervals to learn from (annotated).")
    nsteps: int | None = Field(default=None, description="Training steps (mini-batches): default 1000, tutorial 300.")
    validate_period: int | None = Field(
        default=None, description="Validate every this many steps (0: at the end only): default 1000, tutorial 30.")
    save_period: int | None = Field(
        default=None, description="Checkpoint every this many steps: default 100, tutorial = validate_period.")
    validate_percentage: float | None = Field(default=None, description="Percent of annotations held out (40).")
    mini_batch: int | None = Field(default=None, description="Examples per step (32).")
    learning_rate: float | None = Field(default=None, description="Learning rate: default 0.001, tutorial 0.0002.")
    optimizer: str | None = Field(
        default=None, description="Adam (both recipes), Adadelta, Adagrad, Adamax, Ftrl, Nadam, RMSprop or SGD.")
    loss: str | None = Field(default=None, description="'exclusive' (one label per tic) or 'overlapped' (not_ labels).")
    parallelize: int | None = Field(default=None, description="Output taps per training example: default 8, tutorial 2.")
    batch_seed: int | None = Field(default=None, description="Seed of batches and augmentation (1); -1 = random.")
    weights_seed: int | None = Field(default=None, description="Seed of the initial weights (1); -1 = random.")
    nreplicates: int | None = Field(default=None, description="Models trained with the same settings; the best is kept (1).")
    precision_recall_ratios: list[float] = Field(
        default=[1.0], description="P/R ratios to compute thresholds for (1.0: precision = recall)."
    )
    # the network (songexplorer_core.models.ModelSpec); empty = the recipe's (SongExplorer's defaults)
    representation: str | None = Field(default=None, description="waveform, spectrogram or mel-cepstrum.")
    context_ms: float | None = Field(default=None, description="Audio seen per decision, ms (204.8).")
    shiftby_ms: float | None = Field(default=None, description="Asymmetry of the context window, ms (0).")
    window_ms: float | None = Field(default=None, description="Spectrogram frame, ms (6.4).")
    stride_ms: float | None = Field(default=None, description="Spectrogram hop, ms (1.6).")
    mel_dct: str | None = Field(default=None, description="Mel filters, DCT coefficients kept (7,7).")
    nconvlayers: int | None = Field(default=None, description="Convolutional layers (2).")
    kernel_sizes: str | None = Field(default=None, description="2-D kernel (time x freq), then 1-D width (5x5,3).")
    nfeatures: str | None = Field(default=None, description="Feature maps of the 2-D and 1-D stages (64,64).")
    stride_time: str | None = Field(default=None, description="Conv layers striding in time (1-based; none).")
    dilate_time: str | None = Field(default=None, description="Conv layers from which time dilation doubles (none).")
    connection: str | None = Field(default=None, description="'plain' or 'residual'.")
    dropout_rate: float | None = Field(default=None, description="Dropout fraction: default 0.2, tutorial 0.5.")
    normalization: str | None = Field(default=None, description="'none', 'batch before ReLU' or 'batch after ReLU'.")

    def overrides(self) -> dict:
        """The settings given here (not left to the recipe), as ``recipes.recipe_config`` takes them."""
        chosen = {name: getattr(self, name) for name in _TRAINING_FIELDS if getattr(self, name) is not None}
        for seed in ("batch_seed", "weights_seed"):
            if chosen.get(seed) == -1:  # SongExplorer's "random"
                chosen[seed] = None
        if "kinds_to_use" in chosen:
            chosen["kinds_to_use"] = tuple(chosen["kinds_to_use"])
        model = {name: getattr(self, name) for name in _MODEL_FIELDS if getattr(self, name) is not None}
        if model:
            chosen["model"] = model
        return chosen

    def train_config(self, labels):
        """The ``TrainConfig`` for ``labels``: the recipe, then the fields given here.

        Raises:
            ValueError: an unknown recipe; ``songexplorer_core.train.TrainError`` for bad values.
        """
        from songexplorer_core import recipes

        if self.recipe not in RECIPE_NAMES:
            raise ValueError(f"recipe must be one of {RECIPE_NAMES}, not {self.recipe!r}")
        base = recipes.DEFAULT_RECIPE if self.recipe == "default" else {}
        return recipes.recipe_config(base, tuple(labels), **self.overrides())

    def kinds(self) -> tuple[str, ...]:
        """Kinds of intervals to learn from (the recipe's unless given)."""
        from songexplorer_core.recipes import TUTORIAL_SETTINGS

        return tuple(self.kinds_to_use) if self.kinds_to_use is not None else tuple(TUTORIAL_SETTINGS["kinds_to_use"])


def models_dir(project: ProjectResource) -> Path:
    return project.project().outputs / "models"


def read_latest_model(project: ProjectResource) -> dict:
    """What the last ``trained_model`` materialisation produced (paths, MLflow run, version)."""
    path = models_dir(project) / LATEST_MODEL
    if not path.exists():
        raise FileNotFoundError(f"{path}: no model trained yet; materialise trained_model first")
    return json.loads(path.read_text())


def _bundle(model_dir: Path, checkpoint: int, bundle: Path) -> Path:
    """The folder MLflow stores and classification loads: the checkpoint's model files, its
    thresholds files, labels.txt and annotation-durations.csv (the ethogram's segment minimums)."""
    from songexplorer_core.dataset import ANNOTATION_DURATIONS_FILE

    shutil.copytree(model_dir / f"ckpt-{checkpoint}", bundle)
    for path in model_dir.glob(f"thresholds*.ckpt-{checkpoint}.csv"):
        shutil.copy2(path, bundle / path.name)
    for name in ("labels.txt", ANNOTATION_DURATIONS_FILE):
        if (model_dir / name).exists():
            shutil.copy2(model_dir / name, bundle / name)
    (bundle / "checkpoint.txt").write_text(str(checkpoint))
    return bundle


@dg.asset(
    deps=[ground_truth],
    group_name="model",
    kinds={"tensorflow", "keras", "mlflow"},
    pool=GPU_POOL,
    op_tags=GPU_OP_TAGS,
    # A project gets its first model by itself once it has ground truth; later trainings come
    # from the nightly schedule (when annotations changed) or from a person in the UI.
    # (on_missing() only fires for partitions added after it is attached: never for an
    # unpartitioned asset missing from the start. A failed attempt is not retried in a loop.)
    automation_condition=(
        dg.AutomationCondition.missing()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.in_progress()
        & ~dg.AutomationCondition.execution_failed()
    ).with_label("first model once there is ground truth"),
    check_specs=[PROMOTION_CHECK_SPEC],
    description=__doc__,
)
def trained_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    project: ProjectResource,
    mlflow: MlflowResource,
    compute: ComputeResource,
    dense_set: DenseSetResource,
    ethogram: EthogramResource,
) -> dg.MaterializeResult:
    """Train, choose the best checkpoint, compute thresholds, log and register in MLflow; with
    dense annotations, the promotion gate decides whether the new version becomes champion."""
    compute.configure(context.log)
    import numpy as np

    from songexplorer_core import accuracy as A
    from songexplorer_core import dataset as D
    from songexplorer_core import models as M
    from songexplorer_core import train as T
    from songexplorer_core.promotion import GATE_DECIDES
    from songexplorer_core.tracking import DEFAULT_CHAMPION_METRIC, log_training_run
    from songexplorer_dagster.assets.congruence import promotion_gate

    frame, recording_paths = read_ground_truth(project)
    trained_on = content_hash(frame)
    frame = frame[frame["kind"].isin(config.kinds())]
    labels = list(config.labels_to_use) or sorted(str(x) for x in frame["label"].unique())
    if not labels:
        raise ValueError(
            f"the ground truth of {project.project().groundtruth} has no annotations of kinds "
            f"{list(config.kinds())}; annotate some sounds (the annotator, or <wav>-annotated-<name>.csv files)"
        )
    ground = D.GroundTruth(intervals=frame, recordings={k: Path(v) for k, v in recording_paths.items()},
                           root=project.project().groundtruth)
    train_config = config.train_config(labels)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    run_dir = models_dir(project) / stamp
    context.log.info(f"training {labels} on {len(frame)} annotations -> {run_dir}")

    last_log = [0.0]

    def progress(p):
        now = time.monotonic()
        if p.step == p.nsteps or p.validation_accuracy is not None or now - last_log[0] > 10:
            last_log[0] = now
            validation = "" if p.validation_accuracy is None else f", validation accuracy {p.validation_accuracy:.3f}"
            context.log.info(f"replicate {p.replicate}/{p.nreplicates} step {p.step}/{p.nsteps}: "
                             f"loss {p.train_loss:.4f}, accuracy {p.train_accuracy:.3f}{validation}")

    started = time.monotonic()
    result = T.train(ground, train_config, run_dir, progress=progress)
    train_seconds = time.monotonic() - started

    ratios = tuple(config.precision_recall_ratios)
    reports = [A.accuracy_report(r.model_dir, ratios=ratios) for r in result.replicates]
    f1s = [float(np.nanmean(rep.best.f1)) for rep in reports]
    chosen = int(np.nanargmax(f1s)) if not all(np.isnan(f1s)) else 0
    report, replicate = reports[chosen], result.replicates[chosen]
    A.write_accuracy_outputs(report, replicate.model_dir, plots="none")
    best = report.best
    bundle = _bundle(replicate.model_dir, best.checkpoint, run_dir / "model")
    trained = M.load_trained_model(bundle)
    nparams = M.count_parameters(trained.keras_model)

    per_label = {label: float(best.f1[i]) for i, label in enumerate(best.labels)}
    metrics = {
        "validation_f1_macro": float(np.nanmean(best.f1)),
        "validation_f1": float(best.overall_f1),
        "validation_precision": float(best.overall_precision),
        "validation_recall": float(best.overall_recall),
        "best_checkpoint": float(best.checkpoint),
        "parameters": float(nparams),
        "train_seconds": train_seconds,
        **{f"validation_f1_{label}": value for label, value in per_label.items()},
        **{f"validation_precision_{label}": float(best.precision[i]) for i, label in enumerate(best.labels)},
        **{f"validation_recall_{label}": float(best.recall[i]) for i, label in enumerate(best.labels)},
    }
    tracked = log_training_run(
        mlflow.tracking(project.project().root),
        params={**train_config.to_dict(), "precision_recall_ratios": list(ratios), "replicate_kept": replicate.replicate},
        history=replicate.history,
        metrics=metrics,
        model_dir=bundle,
        keras_model=trained.keras_model,
        artifacts=[replicate.model_dir / name for name in ("accuracy.csv", "accuracy-labels.csv", "accuracy.json",
                                                           "history.csv", "train.log")],
        tags={"songexplorer.project": str(project.project().root), "songexplorer.run_dir": str(run_dir)},
        run_name=stamp,
        # with a dense set the gate below moves the alias; logging must leave it alone
        champion_metric=GATE_DECIDES if dense_set.is_configured(project) else DEFAULT_CHAMPION_METRIC,
    )
    gate, champion = promotion_gate(context, project=project, mlflow=mlflow, dense=dense_set,
                                    candidate_version=tracked.version, candidate_run_id=tracked.run_id,
                                    candidate_model=trained, candidate_bundle=bundle, method=ethogram.method,
                                    min_segment_fraction=ethogram.min_segment_fraction)
    latest = {
        "run_dir": str(run_dir), "model_dir": str(replicate.model_dir), "bundle": str(bundle),
        "checkpoint": best.checkpoint, "labels": list(best.labels), "ratios": list(ratios),
        "mlflow_run_id": tracked.run_id, "mlflow_experiment_id": tracked.experiment_id,
        "model_version": tracked.version, "champion_version": champion, "promotion": gate.description,
        "run_url": tracked.run_url,
    }
    with atomic_write(models_dir(project) / LATEST_MODEL) as handle:
        json.dump(latest, handle, indent=2)
    thresholds = best.thresholds[ratios[0]]
    context.log.info(f"model version {tracked.version} (champion: {champion}); F1 {per_label}; "
                     f"thresholds {thresholds}")
    return dg.MaterializeResult(
        metadata={
            "mlflow_run": dg.MetadataValue.url(tracked.run_url),
            "model_version": dg.MetadataValue.text(tracked.version),
            "champion_version": dg.MetadataValue.text(str(champion)),
            "promotion": dg.MetadataValue.text(gate.description or ""),
            "validation_f1_macro": dg.MetadataValue.float(metrics["validation_f1_macro"]),
            "f1_per_label": dg.MetadataValue.json(per_label),
            "per_label": table_markdown(best.label_table()),
            "parameters": dg.MetadataValue.int(nparams),
            "best_checkpoint": dg.MetadataValue.int(best.checkpoint),
            "annotations_used": dg.MetadataValue.json(result.counts),
            "train_seconds": dg.MetadataValue.float(round(train_seconds, 2)),
            "model_folder": dg.MetadataValue.path(str(bundle)),
            "ground_truth_hash": dg.MetadataValue.text(trained_on),
        },
        check_results=[gate],
    )


@dg.asset(
    deps=[trained_model],
    group_name="model",
    kinds={"matplotlib", "mlflow"},
    automation_condition=dg.AutomationCondition.eager(),
    description=__doc__,
)
def accuracy_report(context: dg.AssetExecutionContext, project: ProjectResource, mlflow: MlflowResource
                    ) -> dg.MaterializeResult:
    """Plots and tables of the latest training's accuracy, shown here and logged to its MLflow run."""
    from songexplorer_core import accuracy as A

    latest = read_latest_model(project)
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
            metadata[name.removesuffix(".png")] = png_markdown(model_dir / name, title)
    return dg.MaterializeResult(metadata=metadata)
