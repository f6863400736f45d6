"""Many recordings in one run (songexplorer_dagster.batches): each recording its own partition.

A run over a partition-key range (what a backfill with the per-recording assets' policy, the
automation sensor's backfills and the new-recordings sensor launch) must put each recording's
metadata and plot on its own partition's materialisation, and a recording that fails must fail
only its own partition, with its message, while the others are materialised.
"""

import dagster as dg
import pytest

from dagster_test_helpers import project_instance_overrides, write_synth_song
from songexplorer_core.classify import clear_classifier_cache
from songexplorer_core.demo import make_demo_project
from songexplorer_dagster.batches import PARTITIONS_PER_RUN, RECORDINGS_BACKFILL
from songexplorer_dagster.definitions import defs
from songexplorer_dagster.defs.annotations.assets import annotations, ground_truth
from songexplorer_dagster.defs.detection.assets import detections
from songexplorer_dagster.defs.model.assets import trained_model
from songexplorer_dagster.defs.predictions.assets import ethograms, probabilities
from songexplorer_dagster.defs.recordings.assets import recordings
from songexplorer_dagster.defs.resources import (
    ComputeResource, DenseSetResource, EthogramResource, MlflowResource, ProjectResource,
)
from songexplorer_dagster.defs.review.assets import misses
from songexplorer_dagster.partitions import recordings_partitions

RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
KEYS = ["r0.wav", "r1.wav", "r2.wav"]
TINY_TRAINING = {"nsteps": 2, "validate_period": 1, "validate_percentage": 30.0, "mini_batch": 8}


def over(keys) -> dict:
    """Run tags that make one run cover the partition range ``keys[0]..keys[-1]``."""
    return dict(zip(RANGE, (keys[0], keys[-1])))


def materialisations(result, asset: str) -> dict:
    """partition -> metadata of ``asset``'s materialisations in a run."""
    return {event.partition: event.metadata for event in result.asset_materializations_for_node(asset)}


def partition_status(instance, asset: str) -> tuple[set, set]:
    """(materialised, failed) partitions of ``asset``, as Dagster's UI counts them."""
    from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

    value = get_and_update_asset_status_cache_value(instance, dg.AssetKey(asset), recordings_partitions)
    materialised = (set(value.deserialize_materialized_partition_subsets(recordings_partitions).get_partition_keys())
                    if value.serialized_materialized_partition_subset else set())
    failed = set(value.deserialize_failed_partition_subsets(recordings_partitions).get_partition_keys())
    return materialised, failed


def step_failure(result, step: str) -> str:
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE" and e.step_key == step]
    return failure.event_specific_data.error.message


def test_every_per_recording_asset_runs_many_partitions_per_run():
    for asset in defs.assets:
        if getattr(asset, "partitions_def", None) == recordings_partitions:
            assert asset.backfill_policy == RECORDINGS_BACKFILL, asset.key
    assert RECORDINGS_BACKFILL.max_partitions_per_run == PARTITIONS_PER_RUN > 1


def test_a_batched_run_gives_each_recording_its_own_metadata_and_one_check_per_batch(project, project_resource,
                                                                                     instance):
    for index, key in enumerate(KEYS):
        write_synth_song(project.groundtruth, key, seed=index, duration_s=1.0 + index)
    instance.add_dynamic_partitions(recordings_partitions.name, KEYS)
    result = dg.materialize([recordings, detections], instance=instance, resources={"project": project_resource},
                            tags=over(KEYS))
    assert result.success
    assert len(instance.get_run_records()) == 1
    checked = materialisations(result, "recordings")
    assert {key: checked[key]["duration_s"].value for key in KEYS} == {"r0.wav": 1.0, "r1.wav": 2.0, "r2.wav": 3.0}
    assert all(f"recording={key}" in checked[key]["open_in_annotator"].value for key in KEYS)
    detected = materialisations(result, "detections")
    assert sorted(detected) == KEYS
    for key in KEYS:
        assert detected[key]["parquet"].value.endswith(f"{key}.parquet")
        assert detected[key]["dagster/row_count"].value >= 1
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 2 and all(c.passed and "all 3 recordings" in c.description for c in checks)
    # what the step says about each recording is on that recording's materialisation ...
    for key in KEYS:
        assert key in detected[key]["log"].value and "detected" in detected[key]["log"].value, detected[key]["log"]
    # ... and the run's log carries progress (first and last recording here: the batch takes
    # well under PROGRESS_EVERY_S), not one event per recording and step
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)
                if entry.dagster_event is None and entry.step_key == "detections"]
    progress = [m for m in messages if m.startswith("[")]
    assert progress == [m for m in progress if m.startswith(("[1/3] r0.wav", "[3/3] r2.wav"))] and len(progress) == 2, messages
    assert not any("r1.wav" in m for m in messages), messages


def test_a_failing_recording_in_a_batched_run_fails_only_its_own_partition(project, project_resource, instance):
    for index, key in enumerate(KEYS):
        write_synth_song(project.groundtruth, key, seed=index, duration_s=1.0)
    (project.groundtruth / "r1.wav").write_text("not audio at all")
    instance.add_dynamic_partitions(recordings_partitions.name, KEYS)
    result = dg.materialize([recordings], instance=instance, resources={"project": project_resource},
                            tags=over(KEYS), raise_on_error=False)
    assert not result.success
    assert sorted(materialisations(result, "recordings")) == ["r0.wav", "r2.wav"]
    message = step_failure(result, "recordings")
    assert "1 of 3 recordings failed (the other 2 are materialised)" in message
    assert f"r1.wav: {project.groundtruth / 'r1.wav'}: not a readable audio file" in message
    assert partition_status(instance, "recordings") == ({"r0.wav", "r2.wav"}, {"r1.wav"})
    assert (project.outputs / "recordings" / "r0.wav.json").exists()
    assert not (project.outputs / "recordings" / "r1.wav.json").exists()


def test_one_recording_alone_fails_as_before_with_cores_line(project, project_resource, instance):
    (project.groundtruth / "bad.wav").write_text("not audio at all")
    instance.add_dynamic_partitions(recordings_partitions.name, ["bad.wav"])
    result = dg.materialize([recordings], instance=instance, resources={"project": project_resource},
                            partition_key="bad.wav", raise_on_error=False)
    message = step_failure(result, "recordings")
    assert message.startswith(f"dagster._core.definitions.events.Failure: {project.groundtruth / 'bad.wav'}: "
                              f"not a readable audio file")
    assert "recordings failed" not in message


@pytest.fixture(scope="module")
def classified(tmp_path_factory):
    """A demo project of 3 recordings of 10 s with a 2-step champion, its instance and resources."""
    root = tmp_path_factory.mktemp("batches")
    project = make_demo_project(root / "demo", nrecordings=3, duration_s=10, annotations_per_label=4)
    resources = {"project": ProjectResource(root=str(project.root)), "mlflow": MlflowResource(),
                 "compute": ComputeResource(device="cpu"), "dense_set": DenseSetResource(dense_annotators=[]),
                 "ethogram": EthogramResource()}
    keys = ["demo-1.wav", "demo-2.wav", "demo-3.wav"]
    (root / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(root / "instance"),
                              overrides=project_instance_overrides(root / "instance")) as instance:
        instance.add_dynamic_partitions(recordings_partitions.name, keys)
        assert dg.materialize([recordings, detections, annotations], instance=instance, resources=resources,
                              tags=over(keys)).success
        assert dg.materialize([ground_truth], instance=instance, resources=resources).success
        assert dg.materialize([trained_model], instance=instance, resources=resources,
                              run_config={"ops": {"trained_model": {"config": TINY_TRAINING}}}).success
        yield {"project": project, "resources": resources, "instance": instance, "keys": keys}


def test_a_new_champion_classifies_every_recording_in_one_run_with_one_model_load(classified, monkeypatch):
    import songexplorer_core.models as models

    loads = []
    load = models.load_trained_model
    monkeypatch.setattr(models, "load_trained_model", lambda folder, **kw: loads.append(folder) or load(folder, **kw))
    clear_classifier_cache()
    keys, instance = classified["keys"], classified["instance"]
    result = dg.materialize([probabilities, ethograms, misses], instance=instance, resources=classified["resources"],
                            tags=over(keys))
    assert result.success
    assert len(loads) == 1  # the model is loaded once for the three recordings
    probs = materialisations(result, "probabilities")
    assert sorted(probs) == keys and all(probs[k]["model_version"].value == "1" for k in keys)
    assert all(probs[k]["npz"].value.endswith(f"{k}-probabilities.npz") for k in keys)
    shown = materialisations(result, "ethograms")
    assert sorted(shown) == keys
    for key in keys:  # each partition's own plot, preview and annotator link
        assert f"{key}-ethogram.png" in shown[key]["ethogram"].value or "data:image/png" in shown[key]["ethogram"].value
        assert f"recording={key}" in shown[key]["open_in_annotator"].value
        assert shown[key]["csvs"].value and all(key in path for path in shown[key]["csvs"].value)
        assert "preview" in shown[key]
    assert sorted(materialisations(result, "misses")) == keys


def test_a_recording_failing_to_classify_in_a_batch_leaves_the_others_classified(classified):
    keys, instance, project = classified["keys"], classified["instance"], classified["project"]
    broken = project.groundtruth / keys[1]
    original = broken.read_bytes()
    try:
        broken.write_bytes(original[: len(original) // 2])  # truncated since it was checked
        result = dg.materialize([probabilities], instance=instance, resources=classified["resources"],
                                tags=over(keys), raise_on_error=False)
    finally:
        broken.write_bytes(original)
    assert not result.success
    assert sorted(materialisations(result, "probabilities")) == [keys[0], keys[2]]
    message = step_failure(result, "probabilities")
    assert "1 of 3 recordings failed" in message and f"{keys[1]}: {broken}: truncated WAV" in message
    materialised, failed = partition_status(instance, "probabilities")
    assert failed == {keys[1]} and {keys[0], keys[2]} <= materialised
