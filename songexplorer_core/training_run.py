"""One tracked training: train, keep the best replicate and checkpoint, bundle it, log it to MLflow.

:func:`train_and_log` is what the Dagster asset ``trained_model`` runs: SongExplorer's network
trained on a ground truth (``songexplorer_core.train``), each replicate's best checkpoint by
validation F1 (``songexplorer_core.accuracy``), the best replicate's checkpoint copied with its
thresholds, labels and annotation durations into one folder (what MLflow stores and
classification loads), and everything logged as one MLflow run and registered model version
(``songexplorer_core.tracking.log_training_run``). With several replicates each is also a child
run of that run, and their spread is logged on it (:func:`log_replicates`).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

#: Files of a replicate's model folder logged as artifacts of the run.
RUN_ARTIFACTS = ("accuracy.csv", "accuracy-labels.csv", "accuracy.json", "history.csv", "train.log")


@dataclass
class TrainingRun:
    """What :func:`train_and_log` trained and logged.

    Attributes:
        result: ``train.TrainResult`` (``counts``: annotations used per label).
        report: the kept replicate's ``accuracy.AccuracyReport`` (``report.best``: its best checkpoint).
        model_dir: the kept replicate's folder; ``bundle``: the logged model folder.
        trained: the bundle loaded (``models.TrainedModel``); ``nparams``: its parameter count.
        metrics: what was logged (validation F1/precision/recall overall and per label, seconds).
        per_label_f1: ``{label: validation F1}`` of the best checkpoint.
        tracked: ``tracking.TrackedModel`` (run id, version, URL).
        train_seconds: wall time of the training, seconds.
        kind_notes: labels annotated both as ranges and as points, with file, line and fix
            (``label_kinds.mixed_kind_notes``); empty when every label is one kind.
        replicates: with more than one replicate, one row per replicate (``replicate``,
            ``validation_f1_macro``, ``validation_f1_<label>``, ``run_id`` of its child run).
        spread: with more than one replicate, the mean and s.d. over replicates of the macro and
            per-label F1 (``validation_f1_macro_mean``, ``..._std``, ``validation_f1_<label>_std``).
    """

    result: object
    report: object
    model_dir: Path
    bundle: Path
    trained: object
    nparams: int
    metrics: dict[str, float]
    per_label_f1: dict[str, float]
    tracked: object
    train_seconds: float
    kind_notes: list[str] = field(default_factory=list)
    replicates: list[dict] = field(default_factory=list)
    spread: dict[str, float] = field(default_factory=dict)


def bundle_checkpoint(model_dir: Path, checkpoint: int, bundle: Path) -> Path:
    """The folder MLflow stores and classification loads: the checkpoint's model files, its
    thresholds files, labels.txt and annotation-durations.csv (the ethogram's segment minimums).
    Written whole into a temporary folder and renamed: a killed step leaves no half bundle."""
    from songexplorer_core.dataset import ANNOTATION_DURATIONS_FILE
    from songexplorer_core.models import write_into_new_folder

    def write(folder: Path) -> None:
        shutil.copytree(model_dir / f"ckpt-{checkpoint}", folder, dirs_exist_ok=True)
        for path in model_dir.glob(f"thresholds*.ckpt-{checkpoint}.csv"):
            shutil.copy2(path, folder / path.name)
        for name in ("labels.txt", ANNOTATION_DURATIONS_FILE):
            if (model_dir / name).exists():
                shutil.copy2(model_dir / name, folder / name)
        (folder / "checkpoint.txt").write_text(str(checkpoint))

    return write_into_new_folder(bundle, write)


def train_and_log(ground, train_config, run_dir: Path, tracking, *, ratios: tuple[float, ...] = (1.0,),
                  champion_metric: str, tags: dict[str, str] | None = None, run_name: str | None = None,
                  recipe: str = "", links: str = "", progress=None) -> TrainingRun:
    """Train on ``ground`` (``dataset.GroundTruth`` or a ground-truth folder) with ``train_config`` into ``run_dir``,
    keep the replicate with the best mean validation F1, bundle its best checkpoint into
    ``run_dir/model`` and log it all to ``tracking`` as one run and registered version.

    Args:
        ratios: precision/recall ratios of the thresholds files.
        champion_metric: passed to ``log_training_run`` (``promotion.GATE_DECIDES`` leaves the alias).
        run_name: the MLflow run's name; by default what it is (``tracking.training_run_name``:
            ``recipe``, labels, time), behind the model version.
        links: markdown added to the run's and version's description (e.g. the Dagster run).
        progress: called with each ``train.TrainProgress``.
    """
    import numpy as np

    from songexplorer_core import accuracy as A
    from songexplorer_core import dataset as D
    from songexplorer_core import models as M
    from songexplorer_core import train as T
    from songexplorer_core.label_kinds import mixed_kind_notes

    ground = D.as_ground_truth(ground, kinds=train_config.kinds_to_use)
    from songexplorer_core.tracking import MIXED_KINDS_TAG, log_training_run, training_run_name

    started = time.monotonic()
    result = T.train(ground, train_config, run_dir, progress=progress)
    train_seconds = time.monotonic() - started

    reports = [A.accuracy_report(r.model_dir, ratios=ratios) for r in result.replicates]
    f1s = [float(np.nanmean(rep.best.f1)) for rep in reports]
    chosen = int(np.nanargmax(f1s)) if not all(np.isnan(f1s)) else 0
    report, replicate = reports[chosen], result.replicates[chosen]
    A.write_accuracy_outputs(report, replicate.model_dir, plots="none")
    best = report.best
    bundle = bundle_checkpoint(replicate.model_dir, best.checkpoint, run_dir / "model")
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
    labels = list(best.labels)
    frame = ground.intervals[ground.intervals["kind"].isin(train_config.kinds_to_use)]
    kind_notes = mixed_kind_notes(frame, labels, ground.root)
    tags = dict(tags or {})
    lineage = trained.extra.get("transfer")
    if lineage:  # transfer learning: the parent model's run, version and URI
        from songexplorer_core.transfer import describe, mlflow_tags

        tags.update(mlflow_tags(lineage))
    if kind_notes:
        tags[MIXED_KINDS_TAG] = "; ".join(n for n in kind_notes if n.startswith("label "))[:4900]
    counts = {label: sum(int(c.get(label, 0)) for c in result.counts.values()) for label in labels}
    description = "\n".join([
        f"SongExplorer's network, {recipe or 'custom'} recipe, trained on {sum(counts.values())} annotations "
        f"({', '.join(f'{label} {n}' for label, n in counts.items())}); best checkpoint {best.checkpoint}, "
        f"{nparams} parameters, {train_seconds:.0f} s.",
        "",
        "Validation F1 per label: " + ", ".join(f"{label} {value:.3f}" for label, value in per_label.items()) + ".",
        *(["", f"Transfer learning: {describe(lineage)}."] if lineage else []),
        *([""] + [f"- {note}" for note in kind_notes] if kind_notes else []),
        *(["", links] if links else []),
    ])
    geometry_tics = trained.input_tics(2)
    tracked = log_training_run(
        tracking,
        params={**train_config.to_dict(), "precision_recall_ratios": list(ratios), "replicate_kept": replicate.replicate},
        history=replicate.history,
        metrics=metrics,
        model_dir=bundle,
        keras_model=trained.keras_model,
        artifacts=[replicate.model_dir / name for name in RUN_ARTIFACTS],
        tags=tags,
        run_name=run_name or training_run_name(recipe=recipe or "custom", labels=labels),
        champion_metric=champion_metric,
        description=description,
        signature_example=np.zeros((1, geometry_tics, trained.nchannels), np.float32),
    )
    rows, spread = [], {}
    if len(result.replicates) > 1:
        rows, spread = log_replicates(tracking, tracked.run_id, train_config, result.replicates, reports,
                                      tags=tags or {})
    return TrainingRun(result=result, report=report, model_dir=replicate.model_dir, bundle=bundle, trained=trained,
                       nparams=nparams, metrics=metrics, per_label_f1=per_label, tracked=tracked,
                       train_seconds=train_seconds, kind_notes=kind_notes, replicates=rows,
                       spread=spread)


def log_replicates(tracking, parent_run_id: str, train_config, replicates, reports, *, tags: dict
                   ) -> tuple[list[dict], dict[str, float]]:
    """Every replicate as a child run of the training's run (its curves, per-label figures and
    kept checkpoint's model folder), and their spread (mean and s.d. of the macro and per-label
    F1, ``ddof=1``) logged on the training's run. Returns the rows and the spread."""
    import numpy as np

    from songexplorer_core.tracking import log_child_training, log_metrics_to_run

    rows = []
    for replicate, rep in zip(replicates, reports):
        best = rep.best
        metrics = {"validation_f1_macro": float(np.nanmean(best.f1)), "validation_f1": float(best.overall_f1),
                   "best_checkpoint": float(best.checkpoint)}
        for i, label in enumerate(best.labels):
            metrics[f"validation_f1_{label}"] = float(best.f1[i])
            metrics[f"validation_precision_{label}"] = float(best.precision[i])
            metrics[f"validation_recall_{label}"] = float(best.recall[i])
        run_id = log_child_training(
            tracking, parent_run_id, run_name=f"replicate {replicate.replicate}",
            params={**train_config.to_dict(), "replicate": replicate.replicate}, history=replicate.history,
            metrics=metrics, model_dir=replicate.model_dir / f"ckpt-{best.checkpoint}",
            artifacts=[replicate.model_dir / "history.csv"], tags={**tags, "songexplorer.replicate": str(replicate.replicate)})
        rows.append({"replicate": replicate.replicate, **metrics, "run_id": run_id})
    spread = {}
    for key in [k for k in rows[0] if k == "validation_f1_macro" or k.startswith("validation_f1_")]:
        values = np.array([r[key] for r in rows], dtype=float)
        values = values[np.isfinite(values)]
        if len(values) > 1:
            spread[f"{key}_mean"] = float(values.mean())
            spread[f"{key}_std"] = float(values.std(ddof=1))
    log_metrics_to_run(tracking, parent_run_id, {**spread, "replicates": float(len(rows))})
    return rows, spread
