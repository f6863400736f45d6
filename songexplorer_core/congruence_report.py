"""One congruence report: the ethogram against dense annotations, the threshold sweep, and every file.

:func:`congruence_report` is the job both ``songexplorer congruence`` and the Dagster asset
``congruence_report`` do: compare predicted intervals with each annotator's dense intervals
(``songexplorer_core.congruence.congruence``), sweep one probability threshold over the model's
probabilities when there are any (``congruence_sweep``), and write SongExplorer's congruence
files: the tables and plots (``write_congruence_report``), every recording's disjoint sets
(``write_disjoint_csvs``) and the dense thresholds (``write_dense_thresholds``). Callers find the
inputs (a ground-truth folder's CSVs, or a project's assets) and report the result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class CongruenceReport:
    """What :func:`congruence_report` computed and wrote.

    Attributes:
        ethogram: the ``Congruence`` of the predicted intervals.
        sweep: the ``CongruenceSweep`` over probability thresholds, or ``None`` (no sweep).
        written: every file written.
        left_out_of_sweep: compared labels the probabilities have no output for (not swept).
    """

    ethogram: object
    sweep: object | None
    written: list[Path] = field(default_factory=list)
    left_out_of_sweep: list[str] = field(default_factory=list)


def congruence_report(
    annotations: Mapping[str, pd.DataFrame],
    predicted: pd.DataFrame,
    folder: str | os.PathLike,
    *,
    recordings: Sequence[str],
    rate: int,
    probabilities: Mapping | Callable | None = None,
    nprobabilities: int = 20,
    error_ratio: float = 1.0,
    recording_folders: Mapping[str, str | os.PathLike] | None = None,
    thresholds_folder: str | os.PathLike | None = None,
    timestamp: str,
    checkpoint: int | str | None = None,
    label_order: Sequence[str] | None = None,
    sparse_thresholds: Mapping[str, float] | None = None,
    plots: bool = True,
    progress=None,
    labels: Sequence[str] | None = None,
    measure: str = "both",
    **settings,
) -> CongruenceReport:
    """Compare, sweep and write one congruence report into ``folder``.

    Args:
        annotations: ``{annotator: interval table}`` of the dense annotations.
        predicted: the predicted intervals of ``recordings`` (one table, column ``wav``).
        folder: where the tables, plots and (without ``recording_folders``) disjoint sets go.
        recordings: the recordings compared (their ``wav`` names).
        rate: tic rate, Hz (used to convert ``convolve_s``).
        probabilities: ``{recording: Probabilities}`` for the sweep, or a function of the
            ethogram's ``Congruence`` that returns them (or ``None``: no sweep), or ``None``.
            Labels some recording's probabilities lack are left out of the sweep.
        nprobabilities: thresholds in the sweep (0: no sweep).
        error_ratio: precision/recall ratio of the dense thresholds.
        recording_folders: ``{recording: folder}`` for the disjoint sets (SongExplorer mirrors
            each recording's sub-folder).
        thresholds_folder: where the dense thresholds go (default ``folder``).
        timestamp: ``YYYYMMDDTHHMMSS`` in the dense thresholds' file names.
        checkpoint, label_order: the model's checkpoint and label order for those files.
        sparse_thresholds: the model's own thresholds, drawn beside the sweep.
        plots: write PNG plots.
        progress: called once per swept threshold.
        labels, measure, settings: as ``songexplorer_core.congruence.congruence`` (``portion``,
            ``convolve_s`` in seconds, ``span``, ``absent_annotators``).
    """
    from songexplorer_core.congruence import (
        congruence, congruence_sweep, write_congruence_report, write_dense_thresholds, write_disjoint_csvs,
    )

    folder = Path(folder)
    result = congruence(annotations, predicted, recordings=list(recordings), rate=rate, labels=labels,
                        measure=measure, **settings)
    sweep, left_out = None, []
    if nprobabilities > 0 and probabilities is not None:
        probs = probabilities(result) if callable(probabilities) else probabilities
        if probs:
            wanted = list(labels) if labels is not None else list(result.labels)
            swept = [label for label in wanted if all(label in p.labels for p in probs.values())]
            left_out = [label for label in wanted if label not in swept]
            if swept:
                sweep = congruence_sweep(probs, annotations, thresholds=nprobabilities,
                                         labels=swept if left_out else labels, measure=measure, progress=progress,
                                         **settings)
    written = write_congruence_report(folder, ethogram=result, sweep=sweep, error_ratio=error_ratio,
                                      sparse_thresholds=sparse_thresholds, plots=plots)
    written += write_disjoint_csvs(result, folder, folders=recording_folders)
    if sweep is not None:
        written += write_dense_thresholds(sweep, Path(thresholds_folder) if thresholds_folder else folder,
                                          error_ratio=error_ratio, timestamp=timestamp, checkpoint=checkpoint,
                                          label_order=label_order)
    return CongruenceReport(ethogram=result, sweep=sweep, written=written, left_out_of_sweep=left_out)
