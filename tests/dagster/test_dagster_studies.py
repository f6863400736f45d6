"""A study launched with Launchpad config materialises on a fresh project: its trainings are
child runs of one MLflow parent, its summary and plots are metadata, and the champion is untouched."""

import dagster as dg
import pytest

from songexplorer_core.demo import make_demo_project
from songexplorer_core.tracking import child_runs, model_versions
from songexplorer_dagster.defs.annotations.assets import annotations, ground_truth
from songexplorer_dagster.defs.recordings.assets import recordings
from songexplorer_dagster.defs.resources import ComputeResource, DenseSetResource, MlflowResource, ProjectResource
from songexplorer_dagster.defs.model.study_assets import model_study
from songexplorer_dagster.partitions import recordings_partitions

TINY = {"recipe": "tutorial", "nsteps": 10, "validate_period": 10, "mini_batch": 4, "workers": 1}


@pytest.fixture
def demo(tmp_path, instance):
    project = make_demo_project(tmp_path / "demo", nrecordings=2, duration_s=30, annotations_per_label=12)
    resources = {"project": ProjectResource(root=str(project.root)), "mlflow": MlflowResource(),
                 "compute": ComputeResource(device="cpu"), "dense_set": DenseSetResource(dense_annotators=[])}
    keys = ["demo-1.wav", "demo-2.wav"]
    instance.add_dynamic_partitions(recordings_partitions.name, keys)
    for key in keys:
        assert dg.materialize([recordings, annotations], partition_key=key, instance=instance, resources=resources,
                              selection=[recordings, annotations]).success
    assert dg.materialize([ground_truth], instance=instance, resources=resources).success
    return project, resources


def test_an_xvalidation_study_materialises_from_launchpad_config(demo, instance):
    project, resources = demo
    config = {**TINY, "kind": "xvalidate", "folds": 2, "name": "two-folds"}
    result = dg.materialize([model_study], instance=instance, resources=resources,
                            run_config={"ops": {"model_study": {"config": config}}})
    assert result.success
    meta = result.asset_materializations_for_node("model_study")[0].metadata
    assert meta["trainings"].value == 2
    assert "mel-pulse" in meta["per_label"].value and "f1_mean" in meta["per_label"].value
    assert "data:image/png;base64," in meta["compare-f1"].value
    tracking = resources["mlflow"].tracking(project.root)
    parent = meta["mlflow_run"].value.split("?")[0].rsplit("/", 1)[1]  # the URL opens the training view
    assert len(child_runs(tracking, parent)) == 2
    assert model_versions(tracking).empty  # a study never registers a model nor moves the champion
    assert (project.outputs / "studies" / "two-folds" / "summary-labels.csv").exists()


def test_a_bad_study_fails_naming_the_fix_and_writes_nothing(demo, instance):
    project, resources = demo
    config = {**TINY, "kind": "sweep", "vary": {"learnig_rate": ["0.1"]}, "name": "bad"}
    result = dg.materialize([model_study], instance=instance, resources=resources, raise_on_error=False,
                            run_config={"ops": {"model_study": {"config": config}}})
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "unknown parameter 'learnig_rate'" in str(failure.step_failure_data.error)
    assert not (project.outputs / "studies" / "bad").exists()


def test_an_ensemble_of_a_studys_replicates_classifies_through_probabilities_when_champion(demo, instance):
    import numpy as np

    from songexplorer_core import classify as C
    from songexplorer_core import models as M
    from songexplorer_core.studies import make_ensemble
    from songexplorer_core.studies.study import log_ensemble
    from songexplorer_core.tracking import pin_champion
    from songexplorer_dagster.defs.predictions.assets import probabilities

    project, resources = demo
    config = {**TINY, "kind": "replicates", "replicates": 3, "name": "three"}
    assert dg.materialize([model_study], instance=instance, resources=resources,
                          run_config={"ops": {"model_study": {"config": config}}}).success
    tracking = resources["mlflow"].tracking(project.root)
    made = make_ensemble([project.outputs / "studies" / "three"], project.outputs / "studies" / "three-ensemble")
    tracked = log_ensemble(tracking, made)
    assert pin_champion(tracking, tracked.version) == tracked.version  # a person promotes it
    result = dg.materialize([probabilities], partition_key="demo-1.wav", instance=instance, resources=resources)
    assert result.success
    meta = result.asset_materializations_for_node("probabilities")[0].metadata
    assert meta["model_version"].value == tracked.version
    probs = C.read_probabilities(project.probabilities_npz("demo-1.wav"))
    wav = project.groundtruth / "demo-1.wav"
    members = [C.classify_recording(M.load_trained_model(m.checkpoint_dir), wav).values for m in made.members]
    np.testing.assert_allclose(probs.values, np.mean(members, axis=0), atol=1e-4)
