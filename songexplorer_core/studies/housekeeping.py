"""Housekeeping of trained models: drop the checkpoints nobody will use, keep a bounded number
of training runs in ``outputs/models/``.

* :func:`delete_ckpts`: in every training folder (one with ``ckpt-<N>/`` folders) below a
  folder, keep the last checkpoint (resuming and SongExplorer's default use it), the one with the
  best validation F1 (``accuracy_report(choose="best-f1")``) and the one a study or bundle chose
  (``trial.json``/``checkpoint.txt``); delete the other ``ckpt-<N>/`` folders. Validation files,
  history and logs stay, so accuracy curves can still be drawn.
* :func:`retain_model_runs`: keep the newest ``keep`` run folders of ``outputs/models/`` (by
  name: the ``trained_model`` asset names them by UTC time) and any run ``latest.json`` points
  at; delete the rest. ``registry/`` (the champion's downloaded copies) is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Freed:
    """What was (or, with ``dry_run``, would be) deleted and how many bytes that frees."""

    removed: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    bytes: int = 0


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def training_folders(root: str | os.PathLike) -> list[Path]:
    """Folders at any depth below (and including) ``root`` holding ``ckpt-<N>/`` folders."""
    from songexplorer_core.train import checkpoint_steps

    root = Path(root)
    found = {p.parent for p in root.rglob("ckpt-*") if p.is_dir() and checkpoint_steps(p.parent)}
    return sorted(found)


def _keep(model_dir: Path, steps: list[int]) -> set[int]:
    from songexplorer_core import accuracy as A

    keep = {steps[-1]}
    try:
        keep.add(A.accuracy_report(model_dir, choose="best-f1").best.checkpoint)
    except A.AccuracyError:
        pass  # never validated: the last one only
    for name in ("trial.json",):
        path = model_dir.parent / name
        if path.is_file():
            keep.add(int(json.loads(path.read_text(encoding="utf-8")).get("checkpoint", steps[-1])))
    if (model_dir / "checkpoint.txt").is_file():
        keep.add(int((model_dir / "checkpoint.txt").read_text().strip()))
    return keep


def delete_ckpts(root: str | os.PathLike, *, dry_run: bool = False) -> Freed:
    """Delete every checkpoint but the kept ones (module docstring) in the trainings below ``root``.

    Raises:
        FileNotFoundError: ``root`` does not exist.
    """
    from songexplorer_core.train import checkpoint_steps

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    freed = Freed()
    for model_dir in training_folders(root):
        steps = checkpoint_steps(model_dir)
        keep = _keep(model_dir, steps)
        for step in steps:
            folder = model_dir / f"ckpt-{step}"
            if step in keep:
                freed.kept.append(folder)
                continue
            freed.bytes += _size(folder)
            freed.removed.append(folder)
            if not dry_run:
                shutil.rmtree(folder)
    return freed


def retain_model_runs(models_dir: str | os.PathLike, keep: int, *, dry_run: bool = False) -> Freed:
    """Keep the newest ``keep`` run folders of ``models_dir`` and the one ``latest.json`` names.

    Raises:
        ValueError: ``keep`` < 1.
    """
    if int(keep) < 1:
        raise ValueError(f"keep must be at least 1 (the latest training), not {keep!r}")
    models_dir = Path(models_dir)
    freed = Freed()
    if not models_dir.is_dir():
        return freed
    protected = set()
    latest = models_dir / "latest.json"
    if latest.is_file():
        run_dir = json.loads(latest.read_text(encoding="utf-8")).get("run_dir")
        if run_dir:
            protected.add(Path(run_dir).name)
    runs = sorted(p for p in models_dir.iterdir() if p.is_dir() and p.name != "registry" and not p.name.startswith("."))
    for index, run in enumerate(reversed(runs)):
        if index < int(keep) or run.name in protected:
            freed.kept.append(run)
            continue
        freed.bytes += _size(run)
        freed.removed.append(run)
        if not dry_run:
            shutil.rmtree(run)
    return freed
