"""Jobs of the ``review`` group: SongExplorer's review workflows, and misses for chosen recordings."""

import dagster as dg

from songexplorer_core.label_sounds import DEFAULT_EMBEDDING
from songexplorer_dagster.compute_resources import step_executor

# -- review workflows (SongExplorer's wizards, src/gui/controller.py) ---------------------------------
#
# Each is `activations` + `cluster` with the kinds of sounds the workflow looks at, preset in the
# job's config: the Launchpad shows the preset and every field can be changed before launching.
# The per-recording inputs (detections, ethograms, misses) are kept fresh by the sensor and the
# automation conditions; `find_misses_job` recomputes them for chosen recordings by hand.

#: Kinds of sounds each review workflow clusters.
WORKFLOW_KINDS = {
    "label_sounds_job": ["detected"],
    "find_novel_labels_job": ["annotated", "detected"],
    "fix_false_positives_job": ["annotated", "predicted"],
    "fix_false_negatives_job": ["annotated", "missed"],
    "examine_errors_job": ["detected", "mistaken"],
}
#: Whose activations each workflow clusters when not the champion's (``ActivationsConfig.network``).
WORKFLOW_NETWORK = {"label_sounds_job": DEFAULT_EMBEDDING}


def workflow_config(name: str) -> dict:
    """The run configuration a review workflow's job presets (the Launchpad shows it)."""
    config = {"kinds": list(WORKFLOW_KINDS[name])}
    if name in WORKFLOW_NETWORK:
        config["network"] = WORKFLOW_NETWORK[name]
    return {"ops": {"activations": {"config": config}}}


#: Label sounds (starting from zero: recordings and their detections, no annotation, no model):
#: cluster the detected sounds without a model (a spectral embedding by default, or
#: SongExplorer's untrained network), then label whole groups in the annotator's cluster view;
#: the first annotations start the supervised loop by themselves (ground_truth, trained_model).
label_sounds_job = dg.define_asset_job(
    name="label_sounds_job",
    selection=dg.AssetSelection.assets("activations", "cluster"),
    config=workflow_config("label_sounds_job"),
    description="Start from zero: activations and cluster of the detected sounds with no model (network "
                f"'{DEFAULT_EMBEDDING}'; 'untrained' is SongExplorer's), to label whole groups in the annotator.",
)

#: Find novel labels: cluster annotated and detected sounds with the champion; detected sounds
#: that sit apart from every annotated label are kinds of sound nobody has labelled yet.
find_novel_labels_job = dg.define_asset_job(
    name="find_novel_labels_job",
    selection=dg.AssetSelection.assets("activations", "cluster"),
    config=workflow_config("find_novel_labels_job"),
    description="Activations and cluster of annotated and detected sounds with the champion: detected sounds "
                "far from every label are new kinds of sound to label.",
)


#: Fix false positives: cluster annotated and predicted sounds; predicted sounds that sit among
#: another label's annotations are the model's false positives (browse them in the annotator).
fix_false_positives_job = dg.define_asset_job(
    name="fix_false_positives_job",
    selection=dg.AssetSelection.assets("activations", "cluster"),
    config=workflow_config("fix_false_positives_job"),
    description="Activations and cluster of annotated and predicted sounds: find and correct false positives.",
)

#: Fix false negatives: cluster annotated sounds and the misses (detected, never predicted);
#: misses that sit among a label's annotations are sounds the model failed to call.
fix_false_negatives_job = dg.define_asset_job(
    name="fix_false_negatives_job",
    selection=dg.AssetSelection.assets("activations", "cluster"),
    config=workflow_config("fix_false_negatives_job"),
    description="Activations and cluster of annotated and missed sounds (misses: detected, not predicted).",
)

#: Examine errors: judge every annotated sound (mistakes), then cluster detected sounds with the
#: mistaken ones to see what the model confuses them with.
examine_errors_job = dg.define_asset_job(
    name="examine_errors_job",
    selection=dg.AssetSelection.assets("mistakes", "activations", "cluster"),
    config=workflow_config("examine_errors_job"),
    description="Mistakes of the champion on the annotations, then activations and cluster of detected and "
                "mistaken sounds.",
)

#: Detect and find the misses of chosen recordings (partitioned: launch it for one recording, or
#: as a backfill over all of them).
find_misses_job = dg.define_asset_job(
    name="find_misses_job",
    selection=dg.AssetSelection.assets("detections", "misses"),
    executor_def=step_executor(dg.in_process_executor),
    description="Detect a recording's sounds and list those no prediction covers (<wav>-missed.csv).",
)
