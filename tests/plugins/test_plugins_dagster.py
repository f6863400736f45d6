"""Each plug-in seam chosen by Dagster config (the example package installed), and recordings
in other formats and a 2-channel recording mapped to two recordings through the whole graph:
detect, annotate, train, classify, ethogram (docs/plugins.md)."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import soundfile

from songexplorer_core.demo import make_demo_project
from songexplorer_core.project import ProjectSettings, init_project
from songexplorer_dagster.defs.annotations.assets import annotations, ground_truth
from songexplorer_dagster.defs.detection.assets import detections
from songexplorer_dagster.defs.model.assets import trained_model
from songexplorer_dagster.defs.predictions.assets import ethograms, probabilities
from songexplorer_dagster.defs.recordings.assets import recordings
from songexplorer_dagster.defs.recordings.sensors import file_signature, plan_tick, WatchState
from songexplorer_dagster.defs.resources import (
    ComputeResource, DenseSetResource, EthogramResource, MlflowResource, ProjectResource,
)
from songexplorer_dagster.partitions import recordings_partitions

RATE = 2500
TINY_TRAINING = {"architecture": "example-tiny", "nsteps": 4, "validate_period": 2, "mini_batch": 8,
                 "validate_percentage": 40.0}


def materialize(assets, keys, instance, resources, run_config=None):
    for key in keys:
        result = dg.materialize(assets, partition_key=key, instance=instance, resources=resources, selection=assets,
                                run_config=run_config)
        assert result.success, key


def detected(project, key) -> pd.DataFrame:
    return pd.read_parquet(project.detections_path(key)).drop(columns=["wav"])


def test_reader_and_detector_plugins_from_dagster_config(example_plugin, tmp_path, instance):
    project = init_project(tmp_path / "raw", settings=ProjectSettings(audio_tic_rate=RATE, audio_nchannels=1))
    rng = np.random.default_rng(1)
    samples = (rng.normal(0, 0.01, 5000) + np.where((np.arange(5000) // 500) % 2, 0.5, 0.0)).astype("<f4")
    samples.tofile(project.groundtruth / "a.f32raw")
    resource = ProjectResource(root=str(project.root), audio_reader="example-raw")
    assert list(resource.find_recordings()) == ["a.f32raw"]
    instance.add_dynamic_partitions(recordings_partitions.name, ["a.f32raw"])
    config = {"ops": {"detections": {"config": {"detector": "example-loud",
                                                "detector_parameters": {"threshold": "8000"}}}}}
    materialize([recordings, detections], ["a.f32raw"], instance, {"project": resource}, config)
    rows = pd.read_parquet(project.detections_path("a.f32raw"))
    assert set(rows["label"]) == {"loud"} and set(rows["wav"]) == {"a.f32raw"}
    assert rows[["start", "stop"]].values.tolist() == [[500 * i, 500 * i + 499] for i in range(1, 10, 2)]
    assert (project.outputs / "detected" / "a.f32raw-detected.csv").exists()
    # an unknown detector fails the step naming the installed ones
    bad = {"ops": {"detections": {"config": {"detector": "nope"}}}}
    result = dg.materialize([recordings, detections], partition_key="a.f32raw", instance=instance,
                            resources={"project": resource}, selection=[detections], run_config=bad,
                            raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("detections").error
    assert "no detector named 'nope'" in failure.message or "no detector named 'nope'" in str(failure.cause)


def test_formats_and_a_two_channel_recording_end_to_end(example_plugin, tmp_path, instance):
    project = make_demo_project(tmp_path / "demo", nrecordings=2, nannotated=1, duration_s=20,
                                annotations_per_label=6)
    one = soundfile.read(str(project.groundtruth / "demo-1.wav"), dtype="int16")[0]
    two = soundfile.read(str(project.groundtruth / "demo-2.wav"), dtype="int16")[0]
    full_scale = two / 32768.0
    gt = project.groundtruth
    soundfile.write(str(gt / "float.wav"), full_scale, RATE, subtype="FLOAT")
    soundfile.write(str(gt / "deep.wav"), full_scale, RATE, subtype="PCM_24")
    soundfile.write(str(gt / "song.flac"), full_scale, RATE, subtype="PCM_24", format="FLAC")
    soundfile.write(str(gt / "rig.wav"), np.stack([two, one], axis=1), RATE, subtype="PCM_16")
    with open(project.settings_path, "a") as handle:
        handle.write("audio_channel_map = {left = [0], right = [1]}\n")
    # the right channel is a copy of demo-1: its seed annotations, named for the channel recording
    seeds = (gt / "demo-1.wav-annotated-seed.csv").read_text()
    (gt / "rig.wav-right-annotated-seed.csv").write_text(seeds.replace("demo-1.wav,", "rig.wav-right,"))
    before = {path.name: path.read_bytes() for path in gt.iterdir()}

    project_resource = ProjectResource(root=str(project.root))
    resources = {"project": project_resource, "mlflow": MlflowResource(), "compute": ComputeResource(device="cpu"),
                 "dense_set": DenseSetResource(dense_annotators=[]), "ethogram": EthogramResource(method="example-half")}
    files = project_resource.find_recordings()
    keys = ["deep.wav", "demo-1.wav", "demo-2.wav", "float.wav", "rig.wav-left", "rig.wav-right", "song.flac"]
    assert list(files) == keys
    assert files["rig.wav-left"] == gt.resolve() / "rig.wav-left"
    # the new-recordings sensor registers both channel recordings once their file has settled
    assert file_signature(files["rig.wav-left"]) == file_signature(gt / "rig.wav")
    first = plan_tick(WatchState(), files, set())
    assert plan_tick(first.state, files, set()).add == keys
    # ... and the annotator lists them
    from songexplorer_annotator.catalog import Catalog

    assert Catalog(project).keys() == keys

    instance.add_dynamic_partitions(recordings_partitions.name, keys)
    materialize([recordings, detections, annotations], keys, instance, resources)
    for key in ("float.wav", "deep.wav", "song.flac", "rig.wav-left"):
        pd.testing.assert_frame_equal(detected(project, key), detected(project, "demo-2.wav"))
    pd.testing.assert_frame_equal(detected(project, "rig.wav-right"), detected(project, "demo-1.wav"))
    assert (project.outputs / "detected" / "rig.wav-left-detected.csv").read_text().startswith("rig.wav-left,")

    assert dg.materialize([ground_truth], instance=instance, resources=resources).success
    truth = pd.read_parquet(project.ground_truth_path)
    counts = truth.groupby("recording").size().to_dict()
    assert set(counts) == {"demo-1.wav", "rig.wav-right"} and counts["demo-1.wav"] == counts["rig.wav-right"]
    result = dg.materialize([trained_model], instance=instance, resources=resources,
                            run_config={"ops": {"trained_model": {"config": TINY_TRAINING}}})
    assert result.success
    metadata = result.asset_materializations_for_node("trained_model")[0].metadata
    default_size = 61443  # SongExplorer's network on these labels (tests/dagster/test_dagster_pipeline.py)
    assert metadata["parameters"].value < default_size / 4  # the example's one layer of four maps

    materialize([probabilities, ethograms], keys, instance, resources)
    from songexplorer_core.classify import read_probabilities

    probs = {key: read_probabilities(project.probabilities_npz(key)).values for key in keys}
    for key in ("float.wav", "deep.wav", "song.flac", "rig.wav-left"):
        np.testing.assert_allclose(probs[key], probs["demo-2.wav"], atol=1e-4)
    np.testing.assert_allclose(probs["rig.wav-right"], probs["demo-1.wav"], atol=1e-6)
    for key in keys:
        log = (project.predicted_dir(key) / f"{key}-ethogram.log").read_text()
        assert "method: example-half" in log
    ethogram = pd.read_parquet(project.ethogram_path("rig.wav-left"))
    assert set(ethogram["wav"]) == {"rig.wav-left"}
    # recordings are never modified
    assert {path.name: path.read_bytes() for path in gt.iterdir() if path.name in before} == before
