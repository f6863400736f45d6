"""Jobs: named selections of assets that sensors and people launch."""

import dagster as dg

from songexplorer_dagster.assets.detections import detections
from songexplorer_dagster.assets.recordings import recordings

#: Check one recording and detect its sounds: what a new or changed WAV needs. It is partitioned by
#: recordings_partitions, inferred from the assets (dagster 1.13 deprecates passing partitions_def
#: to define_asset_job, as redundant). Both steps run in
#: the run's own process (in_process_executor): they are short, and a subprocess per step would
#: cost more (importing numpy/scipy/dagster) than the steps themselves on a laptop.
detect_recordings_job = dg.define_asset_job(
    name="detect_recordings_job",
    selection=dg.AssetSelection.assets(recordings, detections),
    executor_def=dg.in_process_executor,
    description="Check a recording's header, then detect its loud, tonal and quiet intervals.",
)

#: Train a model on the current ground truth and draw its accuracy (what the nightly schedule and
#: the "retrain" button run).
train_model_job = dg.define_asset_job(
    name="train_model_job",
    selection=dg.AssetSelection.assets("trained_model", "accuracy_report"),
    description="Train on the ground truth, log to MLflow, and draw the accuracy report.",
)
