"""The promotion gate: a newly trained model becomes ``champion`` only if it does not do worse
on the densely annotated recordings than the current champion.

Validation F1 (what :func:`songexplorer_core.tracking.update_champion` ranks by) is measured on
a random split of each training's own sparse annotations, so two trainings on different ground
truths are not measured on the same sounds. Dense annotations are: every sound in a stretch of
recording was marked, so precision and recall there are the numbers a lab reports. The gate
compares the candidate's and the champion's scores per label on that same dense set
(:func:`decide_promotion`) and refuses the candidate when any label's score falls by more than a
tolerance.

How the ``champion`` alias moves when the gate is in use:

* the training is logged with ``log_training_run(..., champion_metric=GATE_DECIDES)``, a metric
  no run carries, so logging leaves the alias where it is (a pinned version stays pinned);
* :func:`apply_decision` then points the alias at the candidate if it passed, and tags the
  candidate's model version with the outcome and the reason, and ends its description with them
  (visible in MLflow's UI), either way.

A version a person pinned (:func:`songexplorer_core.tracking.pin_champion`) is never moved by the
gate. Without dense annotations the gate is not used and the champion is chosen by validation F1,
as before.

mlflow is imported inside the functions (through :mod:`songexplorer_core.tracking`'s client).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from songexplorer_core.tracking import (
    CHAMPION_ALIAS, OUTCOME_TAG, PINNED_TAG, REASON_TAG, TrackingConfig, record_outcome,
)

#: ``champion_metric`` for ``log_training_run`` when the gate decides: no run has this metric, so
#: ``update_champion`` finds no candidate and leaves the alias alone.
GATE_DECIDES = "promotion_gate_decides"
#: Model-version tags written by :func:`apply_decision` (``tracking.record_outcome``): ``OUTCOME_TAG``, ``REASON_TAG``.
PROMOTED, REFUSED, PINNED, FIRST = "promoted", "refused", "pinned", "first champion"
#: Default largest allowed drop of a label's score (F1 is in [0, 1]: 0.02 = two points).
DEFAULT_TOLERANCE = 0.02


class PromotionError(ValueError):
    """The gate was given unusable settings; the message says which and the fix."""


@dataclass(frozen=True)
class PromotionDecision:
    """The gate's verdict on one candidate version.

    Attributes:
        promote: whether the candidate may carry the ``champion`` alias.
        outcome: ``promoted``, ``refused``, ``first champion`` or ``pinned``.
        candidate, champion: registered-model versions (``champion`` None when there is none).
        reason: one sentence for people (the asset check's description, the MLflow tag).
        candidate_scores, champion_scores: ``{label: score}`` on the dense set (F1 by default).
        regressions: ``{label: (champion's score, candidate's score)}`` for every label that fell
            by more than ``tolerance``.
        tolerance: largest allowed drop of a label's score; metric: the score's name.
    """

    promote: bool
    outcome: str
    candidate: str
    champion: str | None
    reason: str
    candidate_scores: dict[str, float] = field(default_factory=dict)
    champion_scores: dict[str, float] = field(default_factory=dict)
    regressions: dict[str, tuple[float, float]] = field(default_factory=dict)
    tolerance: float = DEFAULT_TOLERANCE
    metric: str = "f1"

    def table(self) -> list[dict]:
        """One row per label: champion's and candidate's score, the change, whether it regressed."""
        rows = []
        for label in sorted(set(self.candidate_scores) | set(self.champion_scores)):
            old, new = self.champion_scores.get(label, math.nan), self.candidate_scores.get(label, math.nan)
            rows.append({"label": label, f"champion_{self.metric}": old, f"candidate_{self.metric}": new,
                         "change": new - old, "regressed": label in self.regressions})
        return rows


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _format(value: float) -> str:
    return f"{value:.3f}" if _finite(value) else "undefined"


def decide_promotion(
    candidate_scores: Mapping[str, float],
    champion_scores: Mapping[str, float] | None,
    *,
    candidate: str | int,
    champion: str | int | None,
    tolerance: float = DEFAULT_TOLERANCE,
    metric: str = "f1",
    changes: Mapping[str, str] | None = None,
) -> PromotionDecision:
    """May ``candidate`` replace ``champion``? A pure function of the two models' dense scores.

    Rule: for every label the champion has a defined score for, the candidate's score must be at
    least the champion's minus ``tolerance``. A label the candidate has no score for (it does not
    output it, or its score is undefined) counts as a score of 0. Labels only the candidate has a
    score for are reported, never refused. With no champion (``champion`` None, or no scores)
    the candidate is promoted.

    Args:
        candidate_scores: ``{label: score}`` of the new model on the dense set, scores in [0, 1]
            (NaN = undefined).
        champion_scores: the same for the current champion; ``None`` when there is no champion.
        candidate, champion: their registered-model versions (for the reason).
        tolerance: largest allowed drop of a label's score, in the score's units (0.02 = two
            points of F1); 0 refuses any drop.
        metric: the score's name, for the reason (``f1``, ``precision``, ``recall``).
        changes: ``{label: what changed in its annotations since the champion}``
            (:func:`annotation_changes`), said after each regressed label in a refusal.

    Raises:
        PromotionError: a tolerance that is negative, not finite or above 1.
    """
    if not _finite(tolerance) or not 0.0 <= float(tolerance) <= 1.0:
        raise PromotionError(f"the promotion tolerance is a drop of {metric} between 0 and 1 (e.g. 0.02 for two "
                             f"points), not {tolerance!r}")
    tolerance = float(tolerance)
    candidate = str(candidate)
    new = {str(k): float(v) for k, v in candidate_scores.items()}
    if champion is None or champion_scores is None:
        return PromotionDecision(True, FIRST, candidate, None,
                                 f"no champion yet: version {candidate} becomes the first champion",
                                 new, {}, {}, tolerance, metric)
    champion = str(champion)
    old = {str(k): float(v) for k, v in champion_scores.items()}
    if champion == candidate:
        return PromotionDecision(True, PROMOTED, candidate, champion,
                                 f"version {candidate} already is the champion", new, old, {}, tolerance, metric)
    compared = [label for label in sorted(old) if _finite(old[label])]
    if not compared:
        return PromotionDecision(True, PROMOTED, candidate, champion,
                                 f"champion version {champion} has no defined {metric} on the dense set to compare "
                                 f"with: version {candidate} is promoted", new, old, {}, tolerance, metric)
    regressions = {}
    for label in compared:
        score = new.get(label, math.nan)
        effective = score if _finite(score) else 0.0
        if effective < old[label] - tolerance - 1e-12:
            regressions[label] = (old[label], score)
    if regressions:
        parts = []
        for label, (before, after) in regressions.items():
            if label not in new:
                parts.append(f"{label}: version {candidate} does not predict it ({metric} {_format(before)} for "
                             f"the champion)")
            else:
                parts.append(f"{label} {metric} {_format(after)} vs {_format(before)}")
            if (changes or {}).get(label):
                parts[-1] += f" (its annotations since the champion: {changes[label]})"
        reason = (f"refused: version {candidate} does worse than champion version {champion} on the dense "
                  f"annotations by more than the tolerance {tolerance:g} ({'; '.join(parts)}); the champion stays "
                  f"version {champion}")
        return PromotionDecision(False, REFUSED, candidate, champion, reason, new, old, regressions, tolerance, metric)
    changes = ", ".join(f"{label} {metric} {_format(new.get(label, math.nan))} vs {_format(old[label])}"
                        for label in compared)
    reason = (f"promoted: version {candidate} is within {tolerance:g} of champion version {champion} or better on "
              f"every label of the dense annotations ({changes})")
    return PromotionDecision(True, PROMOTED, candidate, champion, reason, new, old, {}, tolerance, metric)


def annotation_changes(before: pd.DataFrame | None, after: pd.DataFrame | None) -> dict[str, str]:
    """``{label: words}``: how each label's training annotations changed from the champion's to
    the candidate's (their models' ``annotation-durations.csv``, ``dataset.annotation_durations``):
    counts of ranges and points, the kind the label is taken for (``label_kinds``), and the
    shortest range and shortest gap between points (s), which set the ethogram's short-segment
    filter and one-event-per-peak."""
    from songexplorer_core.label_kinds import majority_kind

    if after is None:
        return {}
    if before is None:
        return {str(label): "not known (the champion's model folder has no annotation-durations.csv)"
                for label in after["label"]}
    old = before.set_index(before["label"].astype(str))
    words = {}
    for row in after.itertuples(index=False):
        label = str(row.label)
        if label not in old.index:
            words[label] = f"new label ({_count(row.ranges, row.points)})"
            continue
        was = old.loc[label]
        said = []
        if (int(was["ranges"]), int(was["points"])) != (int(row.ranges), int(row.points)):
            said.append(f"{_count(was['ranges'], was['points'])} -> {_count(row.ranges, row.points)}")
        kind_before = majority_kind(int(was["points"]), int(was["ranges"]))
        kind_after = majority_kind(int(row.points), int(row.ranges))
        mixed_before, mixed_after = bool(was["points"] and was["ranges"]), bool(row.points and row.ranges)
        if kind_before != kind_after:
            said.append(f"taken for {kind_before or 'neither kind'} -> {kind_after or 'neither kind'}")
        elif mixed_after and not mixed_before:
            said.append(f"now annotated both as ranges and as points (still taken for {kind_after}, the majority)")
        for column, what in (("shortest_range_s", "shortest range"), ("shortest_gap_s", "shortest gap between points")):
            if column in old.columns and hasattr(row, column):
                a, b = float(was[column]), float(getattr(row, column))
                if not (math.isnan(a) and math.isnan(b)) and not math.isclose(a, b, abs_tol=1e-9):
                    said.append(f"{what} {_seconds(a)} -> {_seconds(b)}")
        words[label] = ", ".join(said) if said else f"unchanged ({_count(row.ranges, row.points)})"
    return words


def _count(ranges, points) -> str:
    ranges, points = int(ranges), int(points)
    return f"{ranges} range{'s' if ranges != 1 else ''} and {points} point{'s' if points != 1 else ''}"


def _seconds(value: float) -> str:
    return f"{value:.3f} s" if _finite(value) else "none"


def current_champion(config: TrackingConfig) -> str | None:
    """The version carrying the ``champion`` alias, or ``None`` (no model, or no alias yet)."""
    client = config.client()
    try:
        return str(client.get_model_version_by_alias(config.registered_model, CHAMPION_ALIAS).version)
    except Exception:  # noqa: BLE001 - no registered model or no alias
        return None


def pinned_version(config: TrackingConfig) -> str | None:
    """The version a person pinned as champion, or ``None``."""
    client = config.client()
    try:
        registered = client.get_registered_model(config.registered_model)
    except Exception:  # noqa: BLE001 - no model registered yet
        return None
    return (registered.tags or {}).get(PINNED_TAG) or None


def pinned_decision(decision: PromotionDecision, pinned: str) -> PromotionDecision:
    """The decision when a person pinned ``pinned``: the alias stays there, whatever the scores."""
    reason = (f"the champion is pinned to version {pinned} by a person: the gate does not move it "
              f"(without the pin: {decision.reason})")
    return PromotionDecision(False, PINNED, decision.candidate, pinned, reason, decision.candidate_scores,
                             decision.champion_scores, decision.regressions, decision.tolerance, decision.metric)


def apply_decision(config: TrackingConfig, decision: PromotionDecision) -> str | None:
    """Carry out a decision in the registry: point ``champion`` at the candidate when it is
    promoted (unless a version is pinned), and record the outcome and the reason on the
    candidate's version (``tracking.record_outcome``: tags ``promotion`` and ``promotion_reason``,
    the end of its description). Returns the champion afterwards.

    Raises:
        mlflow.exceptions.MlflowException: the candidate version does not exist.
    """
    client = config.client()
    name = config.registered_model
    pinned = pinned_version(config)
    if pinned is not None and decision.outcome != PINNED:
        decision = pinned_decision(decision, pinned)
    record_outcome(config, decision.candidate, decision.outcome, decision.reason)
    if decision.promote and pinned is None:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, decision.candidate)
    return current_champion(config)


__all__ = [
    "DEFAULT_TOLERANCE", "FIRST", "annotation_changes", "GATE_DECIDES", "OUTCOME_TAG", "PINNED", "PROMOTED", "PromotionDecision",
    "PromotionError", "REASON_TAG", "REFUSED", "apply_decision", "current_champion", "decide_promotion",
    "pinned_decision", "pinned_version",
]
