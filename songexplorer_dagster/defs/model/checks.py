"""Checks of the ``model`` group: the promotion gate, a blocking check of ``trained_model``.

The gate runs inside ``trained_model``'s step (``check_specs``), so a new version is never
registered and undecided: ``songexplorer_core.promotion_gate`` scores it and the champion on the
dense annotations and moves the ``champion`` alias only on a pass. This module turns that
decision into the check's result (pass, refusal with its reason, or skipped).

A refusal is the gate doing its job, not a crash: the check fails with WARN severity (yellow in
the UI, the reason as its description, ``outcome`` "kept out"), so the step and the run succeed,
the new version stays registered but not champion, and nothing is shown red.
"""

import dagster as dg
import pandas as pd

from songexplorer_core.promotion_gate import GateResult
from songexplorer_dagster.constants import PROMOTION_CHECK
from songexplorer_dagster.metadata import table_markdown

#: The check's ``outcome`` when the gate refused the new version.
KEPT_OUT = "kept out"

PROMOTION_CHECK_SPEC = dg.AssetCheckSpec(
    PROMOTION_CHECK,
    asset="trained_model",
    blocking=True,
    description=("The new model does no worse on the densely annotated recordings than the champion (F1 per label, "
                 "within the dense_set resource's promotion_tolerance). If it does worse it is refused as champion "
                 "and the alias stays on the old version: the check fails with WARN severity (the model is kept out, "
                 "the run succeeds). Skipped (passes) when no dense annotators are named."),
)


def promotion_check_result(gate: GateResult, *, measure: str, reference: str) -> dg.AssetCheckResult:
    """The result of ``PROMOTION_CHECK`` for what the gate decided."""
    if gate.skipped:
        return dg.AssetCheckResult(
            check_name=PROMOTION_CHECK, passed=True,
            description=("no dense annotations: gate skipped (the champion is the version with the best validation "
                         "F1; name dense_annotators in the dense_set resource to gate promotions on dense "
                         f"annotations). Champion: version {gate.champion}."),
            metadata={"outcome": dg.MetadataValue.text("skipped"),
                      "champion_version": dg.MetadataValue.text(str(gate.champion))},
        )
    decision = gate.decision
    metadata = {"outcome": dg.MetadataValue.text(decision.outcome if gate.passed else KEPT_OUT),
                "champion_version": dg.MetadataValue.text(str(gate.champion))}
    if gate.candidate_scores is not None:
        table = pd.DataFrame(decision.table())
        metadata.update({
            "candidate_version": dg.MetadataValue.text(str(decision.candidate)),
            # constants as text: the UI plots float metadata over time
            "tolerance": dg.MetadataValue.text(f"{float(decision.tolerance):g} (largest drop of a label's F1 allowed)"),
            "per_label_f1": table_markdown(table) if len(table) else dg.MetadataValue.md("(no labels)"),
            "candidate_scores": table_markdown(gate.candidate_scores.reset_index()),
            "dense_recordings": dg.MetadataValue.json(gate.dense_recordings),
            "measure": dg.MetadataValue.text(measure),
            "reference": dg.MetadataValue.text(reference),
            "seconds": dg.MetadataValue.text(f"{gate.seconds:.2f} s (scoring both models on the dense set)"),
        })
    # a refusal is WARN: the model is kept out, the step is not failed (an ERROR would fail it)
    severity = dg.AssetCheckSeverity.ERROR if gate.passed else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(check_name=PROMOTION_CHECK, passed=gate.passed, severity=severity,
                               description=decision.reason, metadata=metadata)
