"""Jobs of the ``review`` group: SongExplorer's review workflows, and misses for chosen recordings."""

import dagster as dg

# -- review workflows (SongExplorer's wizards, src/gui/controller.py) ---------------------------------
#
# Each is `activations` + `cluster` with the kinds of sounds the workflow looks at, preset in the
# job's config: the Launchpad shows the preset and every field can be changed before launching.
# The per-recording inputs (detections, ethograms, misses) are kept fresh by the sensor and the
# automation conditions; `find_misses_job` recomputes them for chosen recordings by hand.

#: Kinds of sounds each review workflow clusters.
WORKFLOW_KINDS = {
    "fix_false_positives_job": ["annotated", "predicted"],
    "fix_false_negatives_job": ["annotated", "missed"],
    "examine_errors_job": ["detected", "mistaken"],
}


def _workflow_config(kinds):
    return {"ops": {"activations": {"config": {"kinds": list(kinds)}}}}


#: Fix false positives: cluster annotated and predicted sounds; predicted sounds that sit among
#: another label's annotations are the model's false positives (browse them in the annotator).
fix_false_positives_job = dg.define_asset_job(
    name="fix_false_positives_job",
    selection=dg.AssetSelection.assets("activations", "cluster"),
    config=_workflow_config(WORKFLOW_KINDS["fix_false_positives_job"]),
    description="Activations and cluster of annotated and predicted sounds: find and correct false positives.",
)

#: Fix false negatives: cluster annotated sounds and the misses (detected, never predicted);
#: misses that sit among a label's annotations are sounds the model failed to call.
fix_false_negatives_job = dg.define_asset_job(
    name="fix_false_negatives_job",
    selection=dg.AssetSelection.assets("activations", "cluster"),
    config=_workflow_config(WORKFLOW_KINDS["fix_false_negatives_job"]),
    description="Activations and cluster of annotated and missed sounds (misses: detected, not predicted).",
)

#: Examine errors: judge every annotated sound (mistakes), then cluster detected sounds with the
#: mistaken ones to see what the model confuses them with.
examine_errors_job = dg.define_asset_job(
    name="examine_errors_job",
    selection=dg.AssetSelection.assets("mistakes", "activations", "cluster"),
    config=_workflow_config(WORKFLOW_KINDS["examine_errors_job"]),
    description="Mistakes of the champion on the annotations, then activations and cluster of detected and "
                "mistaken sounds.",
)

#: Detect and find the misses of chosen recordings (partitioned: launch it for one recording, or
#: as a backfill over all of them).
find_misses_job = dg.define_asset_job(
    name="find_misses_job",
    selection=dg.AssetSelection.assets("detections", "misses"),
    executor_def=dg.in_process_executor,
    description="Detect a recording's sounds and list those no prediction covers (<wav>-missed.csv).",
)
