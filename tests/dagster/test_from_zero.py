"""Starting from zero: a project of WAVs alone (no annotation, no model). Detections, then clusters
of the detected sounds without a model (``label_sounds_job``), then labels given to whole groups
(as the annotator's cluster view gives them, through core's AnnotationSession), then the automation
plans the first training by itself; before the first label, it plans none (and fails none)."""

import dagster as dg
import numpy as np
import pandas as pd

from dagster_test_helpers import write_synth_song
from songexplorer_core.activations import read_activations
from songexplorer_core.annotation_session import AnnotationSession
from songexplorer_core.label_sounds import DEFAULT_EMBEDDING
from songexplorer_dagster.defs.annotations.assets import annotations, ground_truth
from songexplorer_dagster.defs.annotations.sensors import annotation_files_sensor
from songexplorer_dagster.defs.detection.assets import detections
from songexplorer_dagster.defs.model.assets import trained_model
from songexplorer_dagster.defs.recordings.assets import recordings
from songexplorer_dagster.defs.resources import (
    ComputeResource, DenseSetResource, EthogramResource, MlflowResource, ProjectResource,
)
from songexplorer_dagster.defs.review.assets import activations, cluster
from songexplorer_dagster.defs.review.jobs import find_novel_labels_job, label_sounds_job
from songexplorer_dagster.partitions import recordings_partitions

KEYS = ["song-1.wav", "song-2.wav"]


def resources_for(project):
    return {"project": ProjectResource(root=str(project.root)), "mlflow": MlflowResource(),
            "compute": ComputeResource(device="cpu"), "dense_set": DenseSetResource(dense_annotators=[]),
            "ethogram": EthogramResource()}


def plan(defs, instance, cursor):
    """One tick of the automation sensor over annotations, ground truth and the model: what it asks for."""
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    asked = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()
             if result.get_requested_partitions(key)}
    return asked, result.cursor


def test_wavs_alone_to_labelled_groups_to_the_first_training_with_no_other_step(project, instance):
    for seed, key in enumerate(KEYS, start=1):
        write_synth_song(project.groundtruth, key, seed=seed, duration_s=20.0)
    resources = resources_for(project)
    instance.add_dynamic_partitions(recordings_partitions.name, KEYS)
    defs = dg.Definitions(assets=[recordings, detections, annotations, ground_truth, trained_model],
                          resources=resources)
    asked, cursor = plan(defs, instance, None)
    for key in KEYS:
        assert dg.materialize([recordings, detections, annotations], partition_key=key, instance=instance,
                              resources=resources).success
    # the (empty) annotations arrive: ground truth is planned, the model is not (it waits for ground truth)
    asked, cursor = plan(defs, instance, cursor)
    assert "ground_truth" in asked and "trained_model" not in asked

    # no annotation yet: ground truth is written but not recorded, so the model is not planned (nor fails)
    result = dg.materialize([ground_truth], instance=instance, resources=resources)
    assert result.success and result.asset_materializations_for_node("ground_truth") == []
    assert (project.outputs / "ground_truth" / "ground_truth.parquet").exists()
    asked, cursor = plan(defs, instance, cursor)
    assert "trained_model" not in asked

    # clusters of the detected sounds, with no model (the job's preset network)
    review = dg.Definitions(assets=[recordings, detections, annotations, ground_truth, trained_model, activations,
                                    cluster], jobs=[label_sounds_job], resources=resources)
    run = review.resolve_job_def("label_sounds_job").execute_in_process(instance=instance)
    assert run.success
    acts = read_activations(project.outputs / "activations" / "activations.npz")
    assert set(acts.sounds["kind"]) == {"detected"} and acts.settings["embedding"] == DEFAULT_EMBEDDING
    table = pd.read_parquet(project.outputs / "cluster" / "cluster.parquet")
    assert len(table) == acts.nsounds and set(table["recording"]) <= set(KEYS)
    meta = run.asset_materializations_for_node("cluster")[0].metadata
    assert meta["groups"].value >= 2 and meta["network"].value == DEFAULT_EMBEDDING
    assert run.asset_materializations_for_node("activations")[0].metadata["model_version"].value.startswith("none")

    # a person labels the two largest groups in the cluster view (which writes through core's session)
    sensor_context = dg.build_sensor_context(instance=instance, resources={"project": resources["project"]})
    annotation_files_sensor(sensor_context)  # baseline: no annotation file
    session = AnnotationSession(project.groundtruth, "alice")
    for group, label in ((0, "song-a"), (1, "song-b")):
        session.label = label
        for key, rows in table[table["group"] == group].groupby("recording"):
            if key not in session.recordings():
                session.open_recording(key, ntics=20 * 2500)
            for row in rows.itertuples():
                session.add(key, int(row.start), int(row.stop))
    session.save()
    labelled = pd.concat([session.annotations_frame(k) for k in session.recordings()])
    assert set(labelled["label"]) == {"song-a", "song-b"}

    # the sensor asks for those recordings' annotations; the automation then plans ground truth, then the model
    requests = annotation_files_sensor(dg.build_sensor_context(
        instance=instance, cursor=sensor_context.cursor, resources={"project": resources["project"]})).run_requests
    assert sorted(r.partition_key for r in requests) == sorted(session.recordings())
    for request in requests:
        assert dg.materialize([annotations], partition_key=request.partition_key, instance=instance,
                              resources=resources).success
    asked, cursor = plan(defs, instance, cursor)
    assert "ground_truth" in asked and "trained_model" not in asked  # the model waits for it to be recorded
    result = dg.materialize([ground_truth], instance=instance, resources=resources)
    meta = result.asset_materializations_for_node("ground_truth")[0].metadata
    assert meta["dagster/row_count"].value == len(labelled)
    asked, cursor = plan(defs, instance, cursor)
    assert "trained_model" in asked


def test_label_sounds_with_seeded_untrained_network_and_novel_labels_needs_a_champion(project, instance):
    write_synth_song(project.groundtruth, KEYS[0], seed=3, duration_s=10.0)
    resources = resources_for(project)
    instance.add_dynamic_partitions(recordings_partitions.name, KEYS[:1])
    assert dg.materialize([recordings, detections, annotations], partition_key=KEYS[0], instance=instance,
                          resources=resources).success
    config = {"ops": {"activations": {"config": {"kinds": ["detected"], "network": "untrained", "max_sounds": 60}},
                      "cluster": {"config": {"method": "pca"}}}}
    first = dg.materialize([activations, cluster], instance=instance, resources=resources, run_config=config)
    assert first.success
    once = read_activations(project.outputs / "activations" / "activations.npz")
    assert once.settings["embedding"] == "untrained" and once.layer_names[0] == "input"
    assert dg.materialize([activations], instance=instance, resources=resources,
                          run_config={"ops": {"activations": config["ops"]["activations"]}}).success
    again = read_activations(project.outputs / "activations" / "activations.npz")
    (layer,) = [i for i in once.layers if 0 < i]
    np.testing.assert_array_equal(once.layers[layer], again.layers[layer])  # the seed fixes the network
    # find novel labels clusters annotated and detected sounds with the champion: none here, said so
    review = dg.Definitions(assets=[activations, cluster], jobs=[find_novel_labels_job], resources=resources)
    run = review.resolve_job_def("find_novel_labels_job").execute_in_process(instance=instance, raise_on_error=False)
    assert not run.success
    failure = [e for e in run.all_events if e.event_type_value == "STEP_FAILURE"][0]
    assert "champion" in failure.event_specific_data.error.message.lower() or \
        "annotat" in failure.event_specific_data.error.message.lower()
