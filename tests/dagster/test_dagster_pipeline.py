"""The supervised loop through Dagster: annotations -> ground truth -> trained model (MLflow)
-> accuracy report -> probabilities -> ethograms, materialised for real on a small demo project."""

import json

import dagster as dg
import pandas as pd
import pytest

from songexplorer_core.demo import make_demo_project
from songexplorer_core.tracking import (
    CHAMPION_ALIAS, DAGSTER_RUN_ID_TAG, DAGSTER_RUN_URL_TAG, EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, MIXED_KINDS_TAG,
    model_versions,
)
from songexplorer_dagster.defs.annotations.assets import annotations, ground_truth
from songexplorer_dagster.defs.detection.assets import detections
from songexplorer_dagster.defs.model.assets import accuracy_report, trained_model
from songexplorer_dagster.defs.predictions.assets import ethograms, probabilities
from songexplorer_dagster.defs.recordings.assets import recordings
from songexplorer_dagster.defs.annotations.sensors import annotation_files_sensor
from songexplorer_dagster.defs.model.schedules import nightly_retrain
from songexplorer_dagster.partitions import recordings_partitions
from songexplorer_dagster.defs.resources import (
    ComputeResource, DenseSetResource, EthogramResource, MlflowResource, ProjectResource,
)

SHORT_TRAINING = {"nsteps": 60, "validate_period": 20, "validate_percentage": 30.0, "mini_batch": 16}


@pytest.fixture
def demo(tmp_path):
    project = make_demo_project(tmp_path / "demo", nrecordings=3, duration_s=30, annotations_per_label=8)
    resources = {"project": ProjectResource(root=str(project.root)), "mlflow": MlflowResource(),
                 "compute": ComputeResource(device="cpu"), "dense_set": DenseSetResource(dense_annotators=[]),
                 "ethogram": EthogramResource()}
    return project, resources


def materialize_per_recording(assets, keys, instance, resources):
    for key in keys:
        result = dg.materialize(assets, partition_key=key, instance=instance, resources=resources,
                                selection=assets)
        assert result.success


def test_the_whole_supervised_loop_materialises(demo, instance):
    project, resources = demo
    keys = ["demo-1.wav", "demo-2.wav", "demo-3.wav"]
    instance.add_dynamic_partitions(recordings_partitions.name, keys)
    materialize_per_recording([recordings, detections, annotations], keys, instance, resources)

    result = dg.materialize([ground_truth], instance=instance, resources=resources)
    assert result.success
    table = pd.read_parquet(project.outputs / "ground_truth" / "ground_truth.parquet")
    assert table.groupby("label").size().to_dict() == {"ambient": 16, "mel-pulse": 16, "mel-sine": 16}
    assert set(table["recording"]) == {"demo-1.wav", "demo-2.wav"}  # demo-3 is unannotated

    result = dg.materialize([trained_model, accuracy_report], instance=instance, resources=resources,
                            run_config={"ops": {"trained_model": {"config": SHORT_TRAINING}}})
    assert result.success
    meta = result.asset_materializations_for_node("trained_model")[0].metadata
    assert meta["parameters"].value == 61443
    assert set(meta["f1_per_label"].value) == {"ambient", "mel-pulse", "mel-sine"}
    assert meta["mlflow_run"].value.startswith("http://127.0.0.1:5000/#/experiments/")
    report = result.asset_materializations_for_node("accuracy_report")[0].metadata
    assert "data:image/png;base64," in report["confusion-matrix"].value
    tracking = resources["mlflow"].tracking(project.root)
    versions = model_versions(tracking)
    assert versions["version"].tolist() == ["1"] and CHAMPION_ALIAS in versions["aliases"].iloc[0]
    # MLflow as a model-training tool: named runs linked both ways, a described version with a signature
    client = tracking.client()
    run = client.get_run(versions["run_id"].iloc[0])
    assert run.info.run_name.startswith("v1 · default recipe · ambient+mel-pulse+mel-sine · ")
    assert run.data.tags[DAGSTER_RUN_ID_TAG] == result.run_id
    assert run.data.tags[DAGSTER_RUN_URL_TAG] == f"http://127.0.0.1:3000/runs/{result.run_id}"
    assert f"(http://127.0.0.1:3000/runs/{result.run_id})" in run.data.tags["mlflow.note.content"]
    assert MIXED_KINDS_TAG not in run.data.tags and "one kind" in meta["mixed_label_kinds"].value
    assert "1 F1/validation mel-sine" in run.data.metrics and "2 loss/train" in run.data.metrics
    assert meta["mlflow_run"].value.endswith(f"/runs/{run.info.run_id}?workflowType=machine_learning")
    assert meta["mlflow_experiment"].value.endswith(f"/#/experiments/{run.info.experiment_id}"
                                                    "?workflowType=machine_learning")
    assert client.get_experiment(run.info.experiment_id).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    version = client.get_model_version(tracking.registered_model, "1")
    assert version.tags["promotion"] == "champion" and "**Promotion:** champion: version 1" in version.description
    assert version.description.startswith("SongExplorer's network, default recipe, trained on ")
    import mlflow.models

    signature = mlflow.models.get_model_info(version.source).signature
    assert signature.inputs.inputs[0].shape == (-1, -1, 1) and signature.outputs.inputs[0].shape[-1] == 3

    # ethograms also in the formats songexplorer.toml names (docs/formats.md)
    import dataclasses

    from songexplorer_core.annotations import read_intervals_csv
    from songexplorer_core.formats import format_named, import_file
    from songexplorer_core.project import write_settings

    write_settings(project, dataclasses.replace(project.settings(), annotation_formats=("textgrid", "raven")))
    materialize_per_recording([probabilities, ethograms], keys, instance, resources)
    for key in keys:  # every recording, annotated or not, gets probabilities and an ethogram
        csv_rows = read_intervals_csv(project.outputs / "predicted" / f"{key}-predicted-1.0pr.csv")
        for name, suffix in (("textgrid", ".TextGrid"), ("raven", ".Table.1.selections.txt")):
            exported, _ = import_file(project.outputs / "predicted" / f"{key}-predicted-1.0pr{suffix}",
                                      format_named(name), rate=2500)
            order = ["start", "stop", "label"]
            assert exported.sort_values(order).reset_index(drop=True).equals(
                csv_rows.sort_values(order).reset_index(drop=True)), (key, name)
        assert (project.outputs / "probabilities" / f"{key}-probabilities.npz").exists()
        assert (project.outputs / "probabilities" / f"{key.removesuffix('.wav')}-mel-pulse.wav").exists()
        predicted = project.outputs / "predicted" / f"{key}-predicted-1.0pr.csv"
        assert predicted.exists()
        assert (project.outputs / "predicted" / f"{key}-ethogram.log").read_text().startswith("logdir: ")
    ethogram = pd.read_parquet(project.outputs / "ethograms" / "demo-3.wav.parquet")
    assert set(ethogram["kind"]) == {"predicted"} and len(ethogram) > 0
    # the default ethogram: most probable label, and sine / ambient slivers shorter than half
    # their shortest annotated range dropped (the bundle carries how they were annotated)
    seeds = table.assign(seconds=(table["stop"] - table["start"]) / 2500)
    log = (project.outputs / "predicted" / "demo-3.wav-ethogram.log").read_text().splitlines()
    assert "method: maxprob" in log
    minimum = json.loads(next(line for line in log if line.startswith("min_segment_s:")).split(":", 1)[1])
    assert set(minimum) == {"mel-sine", "ambient"}
    assert minimum["mel-sine"] == pytest.approx(0.5 * seeds[seeds["label"] == "mel-sine"]["seconds"].min(), abs=1e-6)
    sine = ethogram[ethogram["label"] == "mel-sine"]
    assert ((sine["stop"] - sine["start"]) / 2500 >= minimum["mel-sine"]).all()

    # the nightly schedule: nothing to do while the annotations are unchanged ...
    context = dg.build_schedule_context(instance=instance)
    assert isinstance(nightly_retrain(context), dg.SkipReason)
    # ... and a retrain once they changed
    csv = project.groundtruth / "demo-1.wav-annotated-seed.csv"
    csv.write_text(csv.read_text() + "demo-1.wav,100,100,annotated,mel-pulse\n")
    materialize_per_recording([annotations], ["demo-1.wav"], instance, resources)
    assert dg.materialize([ground_truth], instance=instance, resources=resources).success
    assert isinstance(nightly_retrain(dg.build_schedule_context(instance=instance)), dg.RunRequest)


def test_a_changed_annotation_file_requests_its_recordings_annotations(demo, instance):
    project, resources = demo
    instance.add_dynamic_partitions(recordings_partitions.name, ["demo-1.wav", "demo-2.wav", "demo-3.wav"])
    context = dg.build_sensor_context(instance=instance, resources={"project": resources["project"]})
    first = annotation_files_sensor(context)
    assert isinstance(first, dg.SkipReason)  # first tick: baseline only
    cursor = context.cursor
    assert isinstance(annotation_files_sensor(dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"project": resources["project"]})), dg.SkipReason)
    # the annotator saves a new file for demo-3 (atomically, as core does)
    from songexplorer_core.annotations import intervals_frame, write_intervals_csv
    write_intervals_csv(intervals_frame("demo-3.wav", 10, 10, "annotated", "mel-pulse"),
                        project.groundtruth / "demo-3.wav-annotated-alice.csv")
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"project": resources["project"]})
    result = annotation_files_sensor(context)
    assert [r.partition_key for r in result.run_requests] == ["demo-3.wav"]
    # deleting a file is a change too
    (project.groundtruth / "demo-2.wav-annotated-seed.csv").unlink()
    result = annotation_files_sensor(dg.build_sensor_context(
        instance=instance, cursor=context.cursor, resources={"project": resources["project"]}))
    assert [r.partition_key for r in result.run_requests] == ["demo-2.wav"]


def test_training_without_annotations_of_a_label_names_it(demo, instance):
    project, resources = demo
    instance.add_dynamic_partitions(recordings_partitions.name, ["demo-1.wav", "demo-2.wav"])
    materialize_per_recording([recordings, annotations], ["demo-1.wav", "demo-2.wav"], instance, resources)
    assert dg.materialize([ground_truth], instance=instance, resources=resources).success
    config = {**SHORT_TRAINING, "labels_to_use": ["mel-pulse", "courtship-hum"]}
    with pytest.raises(Exception, match="courtship-hum"):
        dg.materialize([trained_model], instance=instance, resources=resources,
                       run_config={"ops": {"trained_model": {"config": config}}})
    assert not (project.outputs / "models" / "latest.json").exists()


def test_automation_trains_the_first_model_once_there_is_ground_truth(demo, instance):
    project, resources = demo
    keys = ["demo-1.wav", "demo-2.wav"]
    instance.add_dynamic_partitions(recordings_partitions.name, keys)
    selection = dg.AssetSelection.assets(trained_model)
    defs = dg.Definitions(assets=[trained_model, ground_truth], resources=resources)
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection)
    assert result.total_requested == 0  # no ground truth yet
    materialize_per_recording([recordings, annotations], keys, instance, resources)
    assert dg.materialize([ground_truth], instance=instance, resources=resources).success
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection,
                                               cursor=result.cursor)
    assert result.total_requested == 1


def test_a_save_in_the_annotator_rematerialises_that_recordings_annotations(demo, instance):
    """The annotator's session saves a point annotation; the sensor requests exactly that recording's
    `annotations` partition, and materialising it picks the new row up; nobody touches Dagster."""
    from songexplorer_core.annotation_session import AnnotationSession

    project, resources = demo
    keys = ["demo-1.wav", "demo-2.wav", "demo-3.wav"]
    instance.add_dynamic_partitions(recordings_partitions.name, keys)
    materialize_per_recording([recordings, annotations], keys, instance, resources)
    sensor_resources = {"project": resources["project"]}
    context = dg.build_sensor_context(instance=instance, resources=sensor_resources)
    annotation_files_sensor(context)  # baseline

    session = AnnotationSession(project.groundtruth, "alice", label="mel-pulse")
    session.open_recording("demo-3.wav", ntics=30 * 2500)
    session.double_click_lower("demo-3.wav", 12345)
    session.save()

    result = annotation_files_sensor(dg.build_sensor_context(instance=instance, cursor=context.cursor,
                                                             resources=sensor_resources))
    assert [r.partition_key for r in result.run_requests] == ["demo-3.wav"]
    run = dg.materialize([annotations], partition_key="demo-3.wav", instance=instance, resources=resources)
    assert run.success
    table = pd.read_parquet(project.outputs / "annotations" / "demo-3.wav.parquet")
    assert table[["start", "stop", "label", "annotator"]].values.tolist() == [[12345, 12345, "mel-pulse", "alice"]]


@pytest.mark.parametrize("held_out, training_rows_of", [
    # default: the dense annotator's files stay out, everyone else's annotations of that recording train
    ("annotations", {"demo-1.wav": "seed", "demo-2.wav": "seed", "demo-3.wav": "seed"}),
    # the whole dense recording stays out
    ("recordings", {"demo-1.wav": "seed", "demo-2.wav": "seed"}),
    # SongExplorer's way: everything trains
    ("none", {"demo-1.wav": "seed", "demo-2.wav": "seed", "demo-3.wav": "seed+dense"}),
])
def test_dense_annotations_are_kept_out_of_the_training_ground_truth(tmp_path, instance, held_out, training_rows_of):
    from songexplorer_core.annotations import annotated_csv_name, write_intervals_csv
    from songexplorer_core.demo import DEMO_DENSE_ANNOTATOR
    from songexplorer_core.synth import seed_annotations

    project = make_demo_project(tmp_path / "demo", nrecordings=3, duration_s=20, annotations_per_label=3, dense=True)
    dense_file = project.groundtruth / annotated_csv_name("demo-3.wav", DEMO_DENSE_ANNOTATOR)
    ndense = len(pd.read_csv(dense_file, header=None))
    # a sparse seed on the dense recording too, by someone else
    seed_rows = pd.read_csv(project.groundtruth / "demo-1.wav-annotated-seed.csv", header=None).head(2)
    seed_rows[0] = "demo-3.wav"
    seed_rows.to_csv(project.groundtruth / "demo-3.wav-annotated-seed.csv", header=False, index=False)
    # the project's songexplorer.toml names the dense annotator; the resource's field is left empty
    resources = {"project": ProjectResource(root=str(project.root)),
                 "dense_set": DenseSetResource(dense_annotators=[], held_out_of_training=held_out)}
    keys = ["demo-1.wav", "demo-2.wav", "demo-3.wav"]
    instance.add_dynamic_partitions(recordings_partitions.name, keys)
    materialize_per_recording([recordings, annotations], keys, instance, resources)
    result = dg.materialize([ground_truth], instance=instance, resources=resources)
    table = pd.read_parquet(project.outputs / "ground_truth" / "ground_truth.parquet")
    held = pd.read_parquet(project.outputs / "ground_truth" / "held_out.parquet")
    by_recording = {key: "+".join(sorted(set(rows["annotator"]), reverse=True))
                    for key, rows in table.groupby("recording")}
    assert by_recording == training_rows_of
    expected_held = {"annotations": ndense, "recordings": ndense + 2, "none": 0}[held_out]
    assert len(held) == expected_held
    every_row = sum(len(pd.read_csv(f, header=None)) for f in project.groundtruth.glob("*-annotated-*.csv"))
    assert len(table) + len(held) == every_row  # nothing lost: every row trains or is held out
    meta = result.asset_materializations_for_node("ground_truth")[0].metadata
    assert meta["held_out_dense_annotations"].value == expected_held
    recordings_json = json.loads((project.outputs / "ground_truth" / "recordings.json").read_text())
    assert sorted(recordings_json) == sorted(training_rows_of)
