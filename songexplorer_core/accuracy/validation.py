"""Finding and loading a training run's validation results (``validation.ckpt-<N>.npz``), and
parsing the ratios asked for."""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


EXCLUSIVE = "exclusive"
OVERLAPPED = "overlapped"

#: ``validation.ckpt-<N>.npz`` (this project) or ``logits.validation.ckpt-<N>.npz`` (SongExplorer).
VALIDATION_NPZ = re.compile(r"^(?:logits\.)?validation\.ckpt-(?P<step>\d+)\.npz$")


class AccuracyError(ValueError):
    """Validation results cannot be evaluated; the message names the file and the fix."""


class AccuracyWarning(UserWarning):
    """A statistic is undefined (NaN) for a reason the user should know."""


# ---------------------------------------------------------------------------------------------
# loading


@dataclass(frozen=True)
class ValidationResults:
    """One checkpoint's validation outputs.

    Attributes:
        logits: float32 ``[n, P, nlabels]`` raw network outputs.
        groundtruth: int ``[n, P]`` (exclusive; -1 = masked) or ``[n, P, nlabels]`` (overlapped;
            0 absent, 1 present, 2 unknown).
    """

    path: Path
    checkpoint: int
    labels: tuple[str, ...]
    loss: str
    logits: np.ndarray
    groundtruth: np.ndarray


def checkpoint_of(path: str | os.PathLike) -> int:
    """The step ``N`` of ``validation.ckpt-<N>.npz``."""
    match = VALIDATION_NPZ.match(Path(path).name)
    if not match:
        raise AccuracyError(f"{path}: not a validation results file (expected validation.ckpt-<N>.npz)")
    return int(match.group("step"))


def find_validation_files(train_dir: str | os.PathLike) -> list[Path]:
    """``validation.ckpt-<N>.npz`` files of a training folder, by step (SongExplorer's
    ``logits.`` names are used when no file of this project's name exists for that step)."""
    by_step: dict[int, Path] = {}
    for path in sorted(Path(train_dir).iterdir()) if Path(train_dir).is_dir() else []:
        match = VALIDATION_NPZ.match(path.name)
        if match:
            step = int(match.group("step"))
            if step not in by_step or not path.name.startswith("logits."):
                by_step[step] = path
    return [by_step[step] for step in sorted(by_step)]


def load_validation(npz_path: str | os.PathLike) -> ValidationResults:
    """Read and check one ``validation.ckpt-<N>.npz``.

    Raises:
        AccuracyError: naming the file, for missing arrays, inconsistent shapes or ground-truth
            values out of range.
    """
    path = Path(npz_path)
    step = checkpoint_of(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "logits" not in npz or "groundtruth" not in npz:
                raise AccuracyError(f"{path}: lacks 'logits' or 'groundtruth'; it is not a validation results file")
            logits = np.asarray(npz["logits"], dtype=np.float32)
            groundtruth = np.asarray(npz["groundtruth"])
            labels = [str(x) for x in npz["labels"]] if "labels" in npz else None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        if isinstance(error, AccuracyError):
            raise
        raise AccuracyError(f"{path}: cannot be read as a validation results file ({error})") from error
    if labels is None:
        labels_txt = path.parent / "labels.txt"
        if not labels_txt.exists():
            raise AccuracyError(f"{path}: has no 'labels' array and there is no {labels_txt}")
        labels = labels_txt.read_text(encoding="utf-8").splitlines()
        labels = [x for x in labels if x]
    if logits.ndim != 3 or logits.shape[2] != len(labels):
        raise AccuracyError(f"{path}: logits must be [n, P, {len(labels)}] for labels {labels}, got {logits.shape}")
    if groundtruth.shape == logits.shape[:2]:
        loss = EXCLUSIVE
        groundtruth = np.rint(groundtruth).astype(np.int64)
        bad = (groundtruth < -1) | (groundtruth >= len(labels))
        if bad.any():
            raise AccuracyError(f"{path}: groundtruth holds {np.unique(groundtruth[bad]).tolist()}; exclusive "
                                f"ground truth must be a label index 0..{len(labels) - 1} or -1 (masked)")
    elif groundtruth.shape == logits.shape:
        loss = OVERLAPPED
        groundtruth = np.rint(groundtruth).astype(np.int8)
        bad = ~np.isin(groundtruth, (0, 1, 2))
        if bad.any():
            raise AccuracyError(f"{path}: overlapped groundtruth must be 0 (absent), 1 (present) or 2 (unknown); "
                                f"found {np.unique(groundtruth[bad]).tolist()}")
    else:
        raise AccuracyError(f"{path}: groundtruth shape {groundtruth.shape} matches neither {logits.shape[:2]} "
                            f"(exclusive) nor {logits.shape} (overlapped)")
    return ValidationResults(path=path, checkpoint=step, labels=tuple(labels), loss=loss, logits=logits,
                             groundtruth=groundtruth)


def model_folders(logdir: str | os.PathLike) -> list[Path]:
    """Training folders under ``logdir``: ``logdir`` itself if it holds validation files,
    otherwise its subfolders that do (SongExplorer's ``train_1r``, ``xvalidate_1k``...)."""
    logdir = Path(logdir)
    if find_validation_files(logdir):
        return [logdir]
    return [p for p in sorted(logdir.iterdir()) if p.is_dir() and find_validation_files(p)] \
        if logdir.is_dir() else []


def iter_ratios(text: str | Iterable[float]) -> tuple[float, ...]:
    """Parse ``"1.0,2"`` (SongExplorer's comma list) into ratios."""
    if isinstance(text, str):
        try:
            return tuple(float(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise AccuracyError(f"precision/recall ratios must be comma-separated numbers, got {text!r}") from None
    return tuple(float(x) for x in text)
