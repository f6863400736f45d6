"""The promotion gate: score a newly registered model on the dense set, decide, move the alias.

:func:`promotion_gate` is the whole gate (``songexplorer_core.promotion`` holds the rule): it
scores the candidate's ethogram on the dense annotations (``dense_set.score_model``), logs those
scores to the candidate's MLflow run, scores the champion the same way, decides
(``decide_promotion``, a person's pin first; a refusal says, per label, what changed in its
annotations since the champion: ``promotion.annotation_changes``) and carries the decision out in the registry
(``apply_decision``). Without dense annotators the gate is skipped. A candidate that cannot be
scored is refused unless there is no champion yet; a champion that cannot be scored any more is
compared with nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from songexplorer_core.dense_set import (
    DenseSettings, find_dense_set, headline_metrics, read_dense_annotations, score_model,
)
from songexplorer_core.project import Project


@dataclass
class GateResult:
    """What the gate decided.

    Attributes:
        decision: the ``PromotionDecision`` carried out (``None`` when skipped).
        champion: the champion version afterwards.
        candidate_scores: the candidate's scores per label (``None``: skipped or unscored).
        dense_recordings: the dense set's recording keys.
        seconds: time scoring and deciding.
    """

    decision: object | None
    champion: str | None
    candidate_scores: pd.DataFrame | None = None
    dense_recordings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def skipped(self) -> bool:
        return self.decision is None

    @property
    def passed(self) -> bool:
        from songexplorer_core.promotion import PINNED

        return self.skipped or bool(self.decision.promote or self.decision.outcome == PINNED)


def promotion_gate(tracking, project: Project, settings: DenseSettings, *, candidate_version: str,
                   candidate_run_id: str, candidate_model, candidate_bundle: Path,
                   champion_bundle: Callable[[], tuple[str, Path]], method: str = "auto",
                   min_segment_fraction: float | None = None, event_refractory_fraction: float | None = None,
                   event_min_peak: float | None = None, log=None) -> GateResult:
    """Decide whether the newly logged ``candidate_version`` becomes champion and carry it out.

    The training must have been logged with ``champion_metric=GATE_DECIDES`` when ``settings``
    names dense annotators (logging then left the alias alone). Both models' ethograms are made
    by ``method``, ``min_segment_fraction``, ``event_refractory_fraction`` and ``event_min_peak``
    as the ``ethograms`` asset makes them (``dense_set.score_model``).

    Args:
        tracking: the project's ``tracking.TrackingConfig``.
        champion_bundle: returns ``(version, folder)`` of the current champion, downloaded.
        log: something with ``info(str)`` and ``warning(str)``.
    """
    from songexplorer_core.ethogram import read_annotation_durations
    from songexplorer_core.models import load_trained_model
    from songexplorer_core.promotion import (
        REFUSED, PromotionDecision, annotation_changes, apply_decision, current_champion, decide_promotion,
        pinned_decision, pinned_version,
    )
    from songexplorer_core.tracking import log_metrics_to_run

    champion = current_champion(tracking)
    if not settings.configured:
        return GateResult(decision=None, champion=champion)

    started = time.monotonic()
    pinned = pinned_version(tracking)
    try:
        dense = find_dense_set(project, settings)
        annotations_by = read_dense_annotations(project, dense)
        candidate = score_model(candidate_model, candidate_bundle, project=project, settings=settings, dense=dense,
                                annotations_by=annotations_by, version=candidate_version, log=log, method=method,
                                min_segment_fraction=min_segment_fraction,
                                event_refractory_fraction=event_refractory_fraction, event_min_peak=event_min_peak)
    except Exception as error:  # noqa: BLE001 - a model that cannot be scored is not promoted over a champion
        problem = f"{type(error).__name__}: {error}"
        if champion is None:
            decision = decide_promotion({}, None, candidate=candidate_version, champion=None,
                                        tolerance=settings.promotion_tolerance)
            decision = PromotionDecision(True, decision.outcome, decision.candidate, None,
                                         f"{decision.reason}, unscored: the dense set could not be used ({problem})")
        else:
            decision = PromotionDecision(
                False, REFUSED, str(candidate_version), champion,
                f"refused: version {candidate_version} could not be scored on the dense annotations, so it cannot be "
                f"compared with champion version {champion} ({problem}); the champion stays version {champion}")
        if pinned is not None:
            decision = pinned_decision(decision, pinned)
        after = apply_decision(tracking, decision)
        if log is not None:
            log.warning(f"promotion gate: {decision.reason}")
        return GateResult(decision=decision, champion=after, seconds=time.monotonic() - started)

    log_metrics_to_run(tracking, candidate_run_id, headline_metrics(candidate))
    champion_scores, changes = None, {}
    if champion is not None and champion != str(candidate_version):
        try:
            version, bundle = champion_bundle()
            changes = annotation_changes(read_annotation_durations(bundle), read_annotation_durations(candidate_bundle))
            champion_scores = score_model(load_trained_model(bundle), bundle, project=project, settings=settings,
                                          dense=dense, annotations_by=annotations_by, version=version, log=log,
                                          method=method, min_segment_fraction=min_segment_fraction,
                                          event_refractory_fraction=event_refractory_fraction,
                                          event_min_peak=event_min_peak)["f1"].to_dict()
        except Exception as error:  # noqa: BLE001 - a champion that cannot be used any more is replaced
            if log is not None:
                log.warning(f"champion version {champion} could not be scored on the dense set "
                            f"({type(error).__name__}: {error}); the candidate is compared with nothing")
            champion_scores = {}
    decision = decide_promotion(candidate["f1"].to_dict(), champion_scores, candidate=candidate_version,
                                champion=champion, tolerance=settings.promotion_tolerance, changes=changes)
    if pinned is not None:
        decision = pinned_decision(decision, pinned)
    after = apply_decision(tracking, decision)
    seconds = time.monotonic() - started
    if log is not None:
        log.info(f"promotion gate ({seconds:.1f} s): {decision.reason}")
    return GateResult(decision=decision, champion=after, candidate_scores=candidate, dense_recordings=dense.keys,
                      seconds=seconds)
