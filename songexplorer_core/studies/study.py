"""A study from start to finish: plan checked, trainings run, summary and plots written, and
(when a tracking store is given) a parent MLflow run with one nested child run per training.

:func:`run_study` is what the CLI's study commands and the Dagster ``model_study`` asset call;
:func:`compare` redraws a study's summary from its finished trainings.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from songexplorer_core.atomic import atomic_write
from songexplorer_core.studies.plan import Trial
from songexplorer_core.studies.run import STUDY_FILE, StudyProgress, read_study, read_trial_result, run_trials, \
    write_study
from songexplorer_core.studies.summary import StudySummary, summarize


@dataclass
class StudyResult:
    """A finished study: its folder, every trial's result, the summary, the MLflow parent run
    (``None`` without tracking) and the wall time, s."""

    study_dir: Path
    results: list[dict]
    summary: StudySummary
    parent_run_id: str | None
    run_url: str | None
    wall_seconds: float


def child_metrics(result: dict) -> dict[str, float]:
    """A trial's final metrics under the names ``training_run`` logs for a training."""
    metrics = {"validation_f1_macro": result["f1_macro"], "validation_f1": result["overall_f1"],
               "best_checkpoint": result["checkpoint"], "train_seconds": result["train_seconds"]}
    for i, label in enumerate(result["labels"]):
        for stat in ("f1", "precision", "recall"):
            metrics[f"validation_{stat}_{label}"] = result[stat][i]
    return {k: float(v) for k, v in metrics.items() if v is not None}


def summary_metrics(summary: StudySummary) -> dict[str, float]:
    """The parent's metrics: per compared setting's label F1 mean and s.d. (``f1_mean_<label>``,
    ``f1_std_<label>``; prefixed by the setting when a study compares several), and the mean
    macro F1 over trials."""
    metrics = {"f1_macro_mean": float(np.nanmean(summary.trials["f1_macro"].astype(float)))}
    settings = summary.labels["setting"].unique()
    for row in summary.labels.itertuples(index=False):
        prefix = "" if len(settings) == 1 else "".join(c if c.isalnum() or c in "._-" else "_" for c in row.setting) + "."
        for stat in ("f1", "precision", "recall"):
            for what in ("mean", "std"):
                value = getattr(row, f"{stat}_{what}")
                if value is not None and not (isinstance(value, float) and math.isnan(value)):
                    metrics[f"{prefix}{stat}_{what}_{row.label}"] = float(value)
    return metrics


def run_study(ground_truth, trials: Sequence[Trial], study_dir: str | os.PathLike, *, kind: str, base,
              tracking=None, ratios: Sequence[float] = (1.0,), workers: int | None = None, device: str = "cpu",
              threads: int | None = None, progress: Callable[[StudyProgress], None] | None = None,
              tags: dict | None = None, ground_truth_name: str | None = None) -> StudyResult:
    """Run ``trials`` into ``study_dir`` and summarise them (module docstring of
    :mod:`songexplorer_core.studies.run` for the folder's layout).

    Args:
        ground_truth: a ground-truth folder or ``dataset.GroundTruth``.
        kind: the study's kind (``xvalidate``, ``generalize``, ``sweep``, ...).
        base: the base ``TrainConfig`` (logged as the parent's params).
        tracking: a ``tracking.TrackingConfig``: a parent run and a child run per training.
        ratios, workers, device, threads, progress: as :func:`run.run_trials`.
    """
    from songexplorer_core import tracking as TR
    from songexplorer_core.training_run import RUN_ARTIFACTS

    study_dir = Path(study_dir)
    started = time.monotonic()
    from songexplorer_core.dataset import GroundTruth

    name = ground_truth_name or str(ground_truth.root if isinstance(ground_truth, GroundTruth) else ground_truth)
    write_study(study_dir, kind=kind, ground_truth=name, trials=trials, base=base.to_dict())
    record = json.loads((study_dir / STUDY_FILE).read_text(encoding="utf-8"))
    parent_id, run_url = None, None
    all_tags = {TR.STUDY_TAG: kind, "songexplorer.study_dir": str(study_dir.resolve()), **(tags or {})}
    if tracking is not None:
        parent_id = record.get("mlflow_parent_run_id")
        if parent_id is None:
            parent_id, experiment_id = TR.start_study_run(
                tracking, run_name=f"{kind} {study_dir.name}", tags=all_tags,
                params={**base.to_dict(), "study": kind, "trials": len(trials)})
            record["mlflow_parent_run_id"] = parent_id
            with atomic_write(study_dir / STUDY_FILE, "w", encoding="utf-8") as handle:
                json.dump(record, handle, indent=1)
        experiment_id = tracking.client().get_run(parent_id).info.experiment_id
        run_url = tracking.run_url(experiment_id, parent_id)

    def log_child(trial: Trial, result: dict) -> None:
        if tracking is None or result.get("mlflow_parent_run_id") == parent_id:
            return
        import pandas as pd

        model_dir = Path(result["model_dir"])
        history = pd.read_csv(model_dir / "history.csv") if (model_dir / "history.csv").exists() else None
        checkpoint = result["checkpoint"]
        files = [model_dir / n for n in RUN_ARTIFACTS] + sorted(model_dir.glob(f"thresholds*.ckpt-{checkpoint}.csv"))
        files += [model_dir / "confusion-matrix.png", model_dir / "precision-recall.png"]
        run_id = TR.log_child_training(
            tracking, parent_id, run_name=trial.name,
            params={**trial.config.to_dict(), **{f"study.{k}": v for k, v in trial.varied.items()}},
            history=history, metrics=child_metrics(result), model_dir=model_dir / f"ckpt-{checkpoint}",
            artifacts=files, tags={**all_tags, "songexplorer.trial": trial.name})
        result.update(mlflow_parent_run_id=parent_id, mlflow_run_id=run_id)
        with atomic_write(study_dir / trial.name / "trial.json", "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)

    try:
        results = run_trials(ground_truth, trials, study_dir, ratios=ratios, workers=workers, device=device,
                             threads=threads, progress=progress, on_result=log_child)
    except BaseException:
        if tracking is not None:
            TR.finish_study_run(tracking, parent_id, status="FAILED")
        raise
    summary = summarize(study_dir, results)
    wall = time.monotonic() - started
    if tracking is not None:
        TR.finish_study_run(tracking, parent_id, metrics={**summary_metrics(summary), "wall_seconds": wall},
                            artifacts=summary.files)
    return StudyResult(study_dir=study_dir, results=results, summary=summary, parent_run_id=parent_id,
                       run_url=run_url, wall_seconds=wall)


def compare(study_dir: str | os.PathLike) -> StudySummary:
    """Redraw the summary tables and comparison plots from the study's finished trainings.

    Raises:
        StudyError: not a study folder, or no trial finished yet.
    """
    from songexplorer_core.studies.plan import StudyError

    study = read_study(study_dir)
    results = [r for r in (read_trial_result(study_dir, t.name) for t in study["trials"]) if r is not None]
    if not results:
        raise StudyError(f"{study_dir}: no finished training yet (no <trial>/trial.json); run the study first")
    return summarize(study_dir, results)


def log_ensemble(tracking, made, *, parent_run_id: str | None = None, run_name: str | None = None):
    """Log an ensemble (``ensemble.make_ensemble``'s result) as one MLflow run and register it as
    a model version, leaving the champion alias where it is (a person promotes it: the gate or
    ``tracking.pin_champion``). Returns the ``tracking.TrackedModel``."""
    from songexplorer_core import tracking as TR
    from songexplorer_core.promotion import GATE_DECIDES

    best = made.report.best
    metrics = {"validation_f1_macro": float(np.nanmean(best.f1)), "validation_f1": float(best.overall_f1),
               "validation_precision": float(best.overall_precision), "validation_recall": float(best.overall_recall),
               "members": float(len(made.members))}
    for i, label in enumerate(best.labels):
        metrics[f"validation_f1_{label}"] = float(best.f1[i])
        metrics[f"validation_precision_{label}"] = float(best.precision[i])
        metrics[f"validation_recall_{label}"] = float(best.recall[i])
    tags = {"songexplorer.ensemble": str(made.folder), "songexplorer.validation": made.validation["method"]}
    if parent_run_id:
        tags[TR.PARENT_RUN_TAG] = parent_run_id
    return TR.log_training_run(
        tracking, params={"ensemble_members": [str(m.checkpoint_dir) for m in made.members],
                          "validation_method": made.validation["method"]},
        history=None, metrics=metrics, model_dir=made.bundle, keras_model=made.trained.keras_model,
        artifacts=[made.folder / "ensemble.json", made.folder / "accuracy.json"], tags=tags,
        run_name=run_name or f"ensemble {made.folder.name}", champion_metric=GATE_DECIDES)
