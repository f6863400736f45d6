"""Annotated sounds the model gets wrong (SongExplorer's ``src/mistakes``).

For every annotated sound, the model's decision *at the sound* (the one context window centred
on it, :mod:`songexplorer_core.activations`) is compared with its label:

* exclusive loss: the predicted label is the output with the largest logit (argmax), as in
  SongExplorer; the sound is ``correct`` when it equals the annotated label, else ``mistaken``.
* overlapped loss (each label present or absent): for a sound labelled ``X`` the model predicts
  ``X`` when its probability for ``X`` is at least ``threshold`` (0.5), else ``not_X``; for a sound
  labelled ``not_X`` the other way round.

SongExplorer decided at tap 0 of 64, 126 tics before the sound (QUIRK 14), which made 69 of 99
tutorial annotations "mistaken" at 95 % validation accuracy; here the decision is the one
``classify`` makes at the sound's tic.

Output: SongExplorer's 6-column files ``<wav>-mistakes.csv``: ``wav, start, stop,
correct|mistaken, <predicted label>, <annotated label>`` (the fifth column is the *prediction*,
so that loading the file as ground truth uses what the model said), sorted by start tic, one
file per recording.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from songexplorer_core.activations import (
    DEFAULT_MINI_BATCH,
    Activations,
    ActivationsError,
    compute_activations,
    select_sounds,
)
from songexplorer_core.annotations import ANNOTATED_LABEL, COLUMNS, intervals_frame, write_intervals_csv

CORRECT, MISTAKEN = "correct", "mistaken"


def mistakes_file_name(wav: str) -> str:
    """``<wav basename>-mistakes.csv`` (``PS.wav`` -> ``PS.wav-mistakes.csv``)."""
    return f"{Path(str(wav)).name}-mistakes.csv"


def _predictions(acts: Activations, annotated: np.ndarray, threshold: float, prefix: str
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Predicted label of every sound, and which sounds the model can judge at all."""
    labels = list(acts.model_labels)
    if acts.loss == "overlapped":
        root = np.array([a[len(prefix):] if a.startswith(prefix) else a for a in annotated], dtype=object)
        known = np.isin(root, labels)
        probabilities = acts.probabilities()
        column = np.array([labels.index(r) if r in labels else 0 for r in root], dtype=np.int64)
        present = probabilities[np.arange(len(root)), column] >= threshold
        predicted = np.where(present, root, np.array([prefix + r for r in root], dtype=object))
        return predicted.astype(object), known
    known = np.isin(annotated, labels)
    predicted = np.asarray(labels, dtype=object)[np.argmax(acts.logits, axis=1)]
    return predicted, known


def mistakes_table(acts: Activations, *, threshold: float = 0.5, overlapped_prefix: str = "not_") -> pd.DataFrame:
    """Mark each sound of ``acts`` correct or mistaken.

    Args:
        acts: activations at annotated sounds (only the output is used).
        threshold: probability above which an overlapped model says a label is present.
        overlapped_prefix: prefix of "absent" labels (overlapped loss).

    Returns:
        A 6-column interval table, sorted by recording and start: ``wav, start, stop``, ``kind``
        (``correct`` / ``mistaken``), ``label`` (the prediction), ``annotated_label``, plus
        ``recording`` (the key of the sound's recording). Sounds whose label the model does not
        have are left out, with a warning.
    """
    sounds = acts.sounds
    annotated = sounds["label"].astype(str).to_numpy(dtype=object)
    predicted, known = _predictions(acts, annotated, threshold, overlapped_prefix)
    if not known.all():
        unknown = sorted(set(annotated[~known]))
        warnings.warn(f"{int((~known).sum())} sound(s) have label(s) {unknown} that the model does not output "
                      f"(its labels: {list(acts.model_labels)}); left out of the mistakes", stacklevel=2)
    keep = np.flatnonzero(known)
    kind = np.where(predicted[keep] == annotated[keep], CORRECT, MISTAKEN)
    table = intervals_frame(sounds["wav"].to_numpy()[keep], sounds["start"].to_numpy()[keep],
                            sounds["stop"].to_numpy()[keep], kind, predicted[keep].astype(str),
                            **{ANNOTATED_LABEL: annotated[keep].astype(str)})
    table["recording"] = sounds["recording"].astype(str).to_numpy()[keep]
    return table.sort_values(["recording", "start", "stop"], kind="stable").reset_index(drop=True)


def find_mistakes(
    trained_model,
    ground_truth,
    *,
    kinds: Iterable[str] = ("annotated",),
    labels: Iterable[str] | None = None,
    threshold: float = 0.5,
    mini_batch: int = DEFAULT_MINI_BATCH,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Apply a model at every annotated sound of a ground truth and mark each correct or mistaken.

    Args:
        trained_model: a ``models.TrainedModel``.
        ground_truth: a ground-truth folder or a :class:`~songexplorer_core.dataset.GroundTruth`.
        kinds: kinds of intervals judged (SongExplorer: ``annotated``).
        labels: labels judged; default every label the model outputs (and its ``not_`` labels
            for an overlapped model). Other labels are not judged.
        threshold, mini_batch, progress: as :func:`mistakes_table` and
            :func:`~songexplorer_core.activations.compute_activations`.

    Returns:
        :func:`mistakes_table` of every chosen sound (no balancing, no subsampling).

    Raises:
        ActivationsError: no sound of the chosen kinds with a label the model outputs.
    """
    from songexplorer_core.dataset import as_ground_truth  # noqa: PLC0415

    kinds = [str(k) for k in kinds]
    truth = as_ground_truth(ground_truth, kinds=kinds)
    if labels is None:
        labels = [str(x) for x in trained_model.labels]
        if trained_model.loss == "overlapped":
            labels += ["not_" + x for x in labels]
    where = str(truth.root) if truth.root else "the ground truth"
    sounds = select_sounds(truth.intervals, kinds=kinds, labels=labels, equalize_ratio=0, max_sounds=0, where=where)
    acts = compute_activations(trained_model, sounds, truth.recordings, layers=[], position="centre",
                               mini_batch=mini_batch, progress=progress)
    return mistakes_table(acts, threshold=threshold)


def write_mistakes_csvs(table: pd.DataFrame, out_dir: str | os.PathLike) -> list[Path]:
    """Write one ``<wav>-mistakes.csv`` per recording of ``table`` (:func:`mistakes_table`),
    atomically, under ``out_dir`` in the recording's sub-folder (its ``recording`` key's folder,
    as SongExplorer writes ``<groundtruth>/<subdir>/<wav>-mistakes.csv``).

    Returns:
        The files written, sorted.
    """
    out_dir = Path(out_dir)
    keys = table["recording"].astype(str) if "recording" in table.columns else table["wav"].astype(str)
    written = []
    for key, rows in table.groupby(keys.to_numpy(), sort=True):
        relative = Path(str(key))
        folder = out_dir / relative.parent
        path = folder / mistakes_file_name(rows["wav"].iat[0])
        write_intervals_csv(rows[[*COLUMNS, ANNOTATED_LABEL]], path)
        written.append(path)
    return sorted(written)


__all__ = ["CORRECT", "MISTAKEN", "ActivationsError", "find_mistakes", "mistakes_file_name", "mistakes_table",
           "write_mistakes_csvs"]
