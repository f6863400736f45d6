"""Transfer learning from the Launchpad: trained_model with ``start_from`` (a version of the
project's model) starts from its layers, trains only the layers asked for, and its MLflow run
names the parent's run, version and URI."""

import json

import dagster as dg
import numpy as np
import pytest

from songexplorer_core import models as M
from songexplorer_core.demo import make_demo_project
from songexplorer_core.tracking import TrackingConfig
from songexplorer_core.transfer import FINE_TUNE_LEARNING_RATE_FACTOR
from songexplorer_dagster.defs.annotations.assets import annotations, ground_truth
from songexplorer_dagster.defs.model.assets import trained_model
from songexplorer_dagster.defs.recordings.assets import recordings
from songexplorer_dagster.defs.resources import (
    ComputeResource, DenseSetResource, EthogramResource, MlflowResource, ProjectResource,
)
from songexplorer_dagster.partitions import recordings_partitions

SHORT = {"nsteps": 20, "validate_period": 20, "validate_percentage": 30.0, "mini_batch": 8, "nfeatures": "8,8"}


def test_trained_model_starts_from_a_registered_version(tmp_path, instance):
    project = make_demo_project(tmp_path / "demo", nrecordings=2, nannotated=2, duration_s=30,
                                annotations_per_label=8)
    resources = {"project": ProjectResource(root=str(project.root)), "mlflow": MlflowResource(),
                 "compute": ComputeResource(device="cpu"), "dense_set": DenseSetResource(dense_annotators=[]),
                 "ethogram": EthogramResource()}
    keys = ["demo-1.wav", "demo-2.wav"]
    instance.add_dynamic_partitions(recordings_partitions.name, keys)
    for key in keys:
        assert dg.materialize([recordings, annotations], partition_key=key, instance=instance,
                              resources=resources).success
    assert dg.materialize([ground_truth], instance=instance, resources=resources).success

    def train(config):
        result = dg.materialize([trained_model], instance=instance, resources=resources,
                                run_config={"ops": {"trained_model": {"config": config}}})
        assert result.success
        return json.loads(project.latest_model_path.read_text())

    first = train(SHORT)
    second = train({**SHORT, "labels_to_use": ["mel-pulse", "ambient"], "nfeatures": None, "start_from": "1",
                    "train_layers": ["output"]})
    parent = M.load_trained_model(first["bundle"]).keras_model
    child = M.load_trained_model(second["bundle"]).keras_model
    for name in ("conv1", "conv2"):  # copied and kept
        assert all(np.array_equal(a, b) for a, b in zip(parent.get_layer(name).get_weights(),
                                                         child.get_layer(name).get_weights()))
    assert child.get_layer("output").get_weights()[0].shape[-1] == 2
    tracking = TrackingConfig.for_project_dir(project.root / "mlflow")
    tags = tracking.client().get_run(second["mlflow_run_id"]).data.tags
    assert tags["songexplorer.parent.version"] == first["model_version"] == "1"
    assert tags["songexplorer.parent.run_id"] == first["mlflow_run_id"]
    assert tags["songexplorer.parent.uri"] == "models:/songexplorer/1"
    assert tags["songexplorer.frozen_layers"] == "conv1,conv2"
    # learning_rate left empty: the recipe's 0.001 times the fine-tuning factor (0.2)
    params = tracking.client().get_run(second["mlflow_run_id"]).data.params
    assert float(params["learning_rate"]) == pytest.approx(0.001 * FINE_TUNE_LEARNING_RATE_FACTOR)
    assert float(tracking.client().get_run(first["mlflow_run_id"]).data.params["learning_rate"]) == pytest.approx(0.001)
