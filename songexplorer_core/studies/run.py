"""Run a study's trainings, side by side in processes where the cores allow, and measure each.

Layout of a study folder::

    STUDY/study.json              kind, ground truth, base config, trials (written first, atomically)
    STUDY/<trial>/train_1r/...    songexplorer_core.train's files (checkpoints, validation, history)
    STUDY/<trial>/trial.json      the trial's result: per-label P/R/F1 of the kept checkpoint,
                                  thresholds, validation recordings, wall seconds
    STUDY/summary*.csv, compare-*.png   songexplorer_core.studies.summary (rewritten by ``compare``)

A trial is :func:`train_trial`: ``train.train`` on the study's ground truth (a learning-curve
trial on its subset), then ``accuracy.accuracy_report`` and ``write_accuracy_outputs`` on its
model folder. Trials run in a ``ProcessPoolExecutor`` (spawned processes, each configuring
TensorFlow before it starts: ``compute.configure_compute(device, threads)``); with one worker
they run in this process. Re-running a study resumes each training from its last checkpoint
(``train``'s own resume) and skips finished trials.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from songexplorer_core.atomic import atomic_write
from songexplorer_core.studies.plan import StudyError, Trial

STUDY_FILE = "study.json"
TRIAL_FILE = "trial.json"


@dataclass(frozen=True)
class StudyProgress:
    """Reported while a study runs: ``trial`` reached ``step`` of ``nsteps``; ``done`` trials of
    ``total`` have finished."""

    trial: str
    step: int
    nsteps: int
    done: int
    total: int


def default_workers(ntrials: int, threads: int | None = None) -> int:
    """Trainings side by side: the cores divided by the threads each uses (at least 2 threads
    each), at most ``ntrials``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    per = max(2, int(threads or 2))
    return max(1, min(int(ntrials), cores // per))


def write_study(study_dir: str | os.PathLike, *, kind: str, ground_truth: str, trials: Sequence[Trial],
                base: dict, extra: dict | None = None) -> Path:
    """Write ``study.json``; refuses a folder holding another study (other trials)."""
    study_dir = Path(study_dir)
    path = study_dir / STUDY_FILE
    record = {"kind": kind, "ground_truth": str(ground_truth), "base": base,
              "trials": [t.to_dict() for t in trials], **(extra or {})}
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if [t["name"] for t in old.get("trials", [])] != [t.name for t in trials] or \
                [t["config"] for t in old["trials"]] != [t.config.to_dict() for t in trials]:
            raise StudyError(f"{study_dir}: holds another study ({old.get('kind')}, trials "
                             f"{[t['name'] for t in old.get('trials', [])][:5]}...); use another folder")
    study_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1)
    return path


def read_study(study_dir: str | os.PathLike) -> dict:
    """``study.json`` with its trials as :class:`Trial` objects (key ``trials``)."""
    path = Path(study_dir) / STUDY_FILE
    if not path.is_file():
        raise StudyError(f"{study_dir}: no {STUDY_FILE}; not a study folder (make one with songexplorer xvalidate, "
                         f"generalize, sweep or learning-curve)")
    record = json.loads(path.read_text(encoding="utf-8"))
    record["trials"] = [Trial.from_dict(t) for t in record["trials"]]
    return record


def read_trial_result(study_dir: str | os.PathLike, name: str) -> dict | None:
    path = Path(study_dir) / name / TRIAL_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def train_trial(ground_truth, trial: Trial, study_dir: str, *, ratios: Sequence[float] = (1.0,),
                progress: Callable | None = None) -> dict:
    """Train one trial into ``study_dir/<trial.name>`` and write its ``trial.json``.

    Returns:
        The result: ``name``, ``varied``, ``model_dir``, ``checkpoint``, ``labels``, per-label
        ``precision``/``recall``/``f1`` (fractions), ``f1_macro``, ``thresholds`` (first ratio),
        ``confusion`` (rows truth, columns classification), ``validation_recordings``
        (annotations per withheld recording), ``train_seconds`` (wall, s).
    """
    import numpy as np

    from songexplorer_core import accuracy as A
    from songexplorer_core import train as T
    from songexplorer_core.studies.plan import subset_for_fraction

    out = Path(study_dir) / trial.name
    truth = ground_truth if trial.fraction is None else subset_for_fraction(ground_truth, trial.config, trial.fraction)
    dataset = T.prepare_dataset(truth, trial.config)
    started = time.monotonic()
    result = T.train(truth, trial.config, out, dataset=dataset, progress=progress)
    seconds = time.monotonic() - started
    replicate = result.replicates[0]
    report = A.accuracy_report(replicate.model_dir, ratios=tuple(ratios))
    A.write_accuracy_outputs(report, replicate.model_dir, plots="best")
    best = report.best
    validation = dataset.sounds[dataset.sounds["set"] == "validation"]
    clean = lambda x: None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)  # noqa: E731
    record = {
        "name": trial.name, "varied": trial.varied, "fraction": trial.fraction, "withheld": list(trial.withheld),
        "model_dir": str(replicate.model_dir), "checkpoint": int(best.checkpoint), "labels": list(best.labels),
        "precision": [clean(x) for x in best.precision], "recall": [clean(x) for x in best.recall],
        "f1": [clean(x) for x in best.f1], "f1_macro": clean(float(np.nanmean(best.f1))),
        "overall_f1": clean(best.overall_f1),
        "thresholds": {k: clean(v) for k, v in best.thresholds[report.ratios[0]].items()},
        "confusion": np.asarray(best.confusion).tolist(),
        "counts": {which: dataset.counts(which) for which in ("training", "validation")},
        "validation_recordings": {str(k): int(v) for k, v in validation["wav"].value_counts().sort_index().items()},
        "train_seconds": seconds,
    }
    with atomic_write(out / TRIAL_FILE, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1)
    return record


def _worker(ground_truth, trial_dict: dict, study_dir: str, ratios, device: str, threads: int | None,
            queue) -> dict:
    """A trial in a spawned process: configure TensorFlow first, report steps through ``queue``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from songexplorer_core.compute import configure_compute

    configure_compute(device, threads)
    trial = Trial.from_dict(trial_dict)
    last = [0.0]

    def progress(p):
        now = time.monotonic()
        if queue is not None and (p.step == p.nsteps or now - last[0] > 0.5):
            last[0] = now
            queue.put((trial.name, p.step, p.nsteps))

    return train_trial(ground_truth, trial, study_dir, ratios=ratios, progress=progress)


def run_trials(ground_truth, trials: Sequence[Trial], study_dir: str | os.PathLike, *,
               ratios: Sequence[float] = (1.0,), workers: int | None = None, device: str = "cpu",
               threads: int | None = None, progress: Callable[[StudyProgress], None] | None = None,
               on_result: Callable[[Trial, dict], None] | None = None, spawn: bool = False) -> list[dict]:
    """Train every trial not finished yet (no ``trial.json``) and return every trial's result,
    in the trials' order.

    Args:
        ground_truth: a ground-truth folder or a ``dataset.GroundTruth`` (sent to the workers).
        workers: trainings side by side (default :func:`default_workers`); 1 runs them here.
        device, threads: each worker's ``configure_compute`` (``threads`` per training).
        progress: called with a :class:`StudyProgress` as trainings advance.
        on_result: called in this process with each finished trial's result (MLflow logging).
        spawn: run in spawned processes even with one worker (``benchmarks/studies.py``: both
            ways then pay the same start-up per training).
    """
    study_dir = Path(study_dir)
    if isinstance(ground_truth, os.PathLike):
        ground_truth = str(ground_truth)
    results: dict[str, dict] = {}
    todo = []
    for trial in trials:
        done = read_trial_result(study_dir, trial.name)
        if done is not None:
            results[trial.name] = done
            if on_result is not None:
                on_result(trial, done)
        else:
            todo.append(trial)
    total = len(trials)
    workers = default_workers(len(todo), threads) if workers is None else max(1, int(workers))

    def report(name, step, nsteps):
        if progress is not None:
            progress(StudyProgress(trial=name, step=step, nsteps=nsteps, done=len(results), total=total))

    if not spawn and (workers <= 1 or len(todo) <= 1):
        for trial in todo:
            result = train_trial(ground_truth, trial, str(study_dir), ratios=ratios,
                                 progress=lambda p, n=trial.name: report(n, p.step, p.nsteps))
            results[trial.name] = result
            if on_result is not None:
                on_result(trial, result)
            report(trial.name, trial.config.nsteps, trial.config.nsteps)
    else:
        import multiprocessing
        import queue as queue_module
        import threading

        context = multiprocessing.get_context("spawn")  # TensorFlow is not fork-safe
        with context.Manager() as manager:
            steps = manager.Queue()
            stop = threading.Event()

            def relay():
                while not stop.is_set():
                    try:
                        name, step, nsteps = steps.get(timeout=0.2)
                    except (queue_module.Empty, EOFError, OSError):
                        continue
                    report(name, step, nsteps)

            thread = threading.Thread(target=relay, daemon=True)
            thread.start()
            try:
                with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=context) as pool:
                    futures = {pool.submit(_worker, ground_truth, t.to_dict(), str(study_dir), tuple(ratios), device,
                                           threads, steps): t for t in todo}
                    for future in as_completed(futures):
                        trial = futures[future]
                        result = future.result()
                        results[trial.name] = result
                        if on_result is not None:
                            on_result(trial, result)
                        report(trial.name, trial.config.nsteps, trial.config.nsteps)
            finally:
                stop.set()
                thread.join(timeout=2)
    return [results[t.name] for t in trials]
