"""The Dagster code location: every asset, job, sensor, schedule and resource of songexplorer-dagster.

Load it with ``dagster dev -w workspace.yaml`` (the repo-root workspace names this module), or
``dagster asset materialize -m songexplorer_dagster.definitions --select detections --partition KEY``.
Which project it works on is ``$SONGEXPLORER_PROJECT`` (default ``./songexplorer-project``); run it
with ``DAGSTER_HOME=$SONGEXPLORER_PROJECT/dagster_home`` so runs and sensor state stay with the data.

Importing this module must stay fast (it is imported by every run and code-server process):
heavy libraries (scipy's detector, TensorFlow, UMAP, Panel) are imported inside the steps that use
them, never at module level.
"""

import dagster as dg

from songexplorer_dagster.assets.annotations import annotations, ground_truth
from songexplorer_dagster.assets.congruence import congruence_report
from songexplorer_dagster.assets.detections import detections
from songexplorer_dagster.assets.models import accuracy_report, trained_model
from songexplorer_dagster.assets.predictions import ethograms, probabilities
from songexplorer_dagster.assets.recordings import recordings
from songexplorer_dagster.assets.review import activations, cluster, misses, mistakes, summaries
from songexplorer_dagster.automation import annotation_files_sensor, automation_sensor, nightly_retrain
from songexplorer_dagster.jobs import (
    detect_recordings_job, examine_errors_job, find_misses_job, fix_false_negatives_job, fix_false_positives_job,
    train_model_job,
)
from songexplorer_dagster.resources import ComputeResource, EthogramResource, MlflowResource, ProjectResource
from songexplorer_dagster.resources.dense import DenseSetResource
from songexplorer_dagster.sensors import new_recordings_sensor

defs = dg.Definitions(
    assets=[recordings, detections, annotations, ground_truth, trained_model, accuracy_report, probabilities,
            ethograms, misses, mistakes, activations, cluster, summaries, congruence_report],
    jobs=[detect_recordings_job, train_model_job, fix_false_positives_job, fix_false_negatives_job,
          examine_errors_job, find_misses_job],
    sensors=[new_recordings_sensor, annotation_files_sensor, automation_sensor],
    schedules=[nightly_retrain],
    resources={"project": ProjectResource(), "mlflow": MlflowResource(), "compute": ComputeResource(),
               "dense_set": DenseSetResource(), "ethogram": EthogramResource()},
)
