"""The recordings and detections assets, materialised on synthetic recordings."""

import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from songexplorer_core.annotations import read_intervals_csv
from songexplorer_core.detect import DetectParams, detect_recording
from songexplorer_core.project import ProjectError, recording_key
from songexplorer_dagster.defs.detection.assets import (
    INSIDE_CHECK,
    ORDER_CHECK,
    DetectionConfig,
    detections,
    intervals_outside,
    intervals_reversed,
)
from songexplorer_dagster.defs.recordings.assets import recordings
from songexplorer_dagster.partitions import recordings_partitions

from dagster_test_helpers import RATE, files_under, write_synth_song, write_wav


def materialize_partition(instance, project_resource, key, *, run_config=None, raise_on_error=True):
    instance.add_dynamic_partitions(recordings_partitions.name, [key])
    return dg.materialize(
        [recordings, detections],
        partition_key=key,
        instance=instance,
        resources={"project": project_resource},
        run_config=run_config,
        raise_on_error=raise_on_error,
    )


def failure_text(event) -> str:
    """The failure's message and every message in its chain of causes."""
    error, parts = event.step_failure_data.error, []
    while error is not None:
        parts.append(error.message)
        error = error.cause
    return "\n".join(parts)


def assert_same_intervals(actual: pd.DataFrame, expected: pd.DataFrame):
    columns = ["wav", "start", "stop", "kind", "label"]
    pd.testing.assert_frame_equal(
        actual[columns].astype({c: str for c in ("wav", "kind", "label")}).reset_index(drop=True),
        expected[columns].astype({c: str for c in ("wav", "kind", "label")}).reset_index(drop=True),
    )


def test_detections_writes_the_detectors_intervals_as_parquet_and_songexplorer_csv(project, project_resource, instance):
    path = write_synth_song(project.groundtruth, "round1/song.wav", seed=3)
    key = recording_key("round1/song.wav")

    result = materialize_partition(instance, project_resource, key)

    assert result.success
    expected = detect_recording(path, DetectParams(), quirks=True)  # SongExplorer's rows by default
    assert set(expected["label"]) >= {"time", "neither"}  # the synthetic song has loud and quiet parts
    parquet = project.outputs / "detections" / f"{key}.parquet"
    csv = project.outputs / "detected" / "round1" / "song.wav-detected.csv"
    assert_same_intervals(pd.read_parquet(parquet), expected)
    assert_same_intervals(read_intervals_csv(csv), expected)
    assert (expected["wav"] == "song.wav").all() and (expected["kind"] == "detected").all()

    (materialization,) = result.asset_materializations_for_node("detections")
    assert materialization.partition == key
    metadata = materialization.metadata
    assert metadata["dagster/row_count"].value == len(expected)
    assert metadata["intervals_per_label"].data == expected["label"].value_counts().to_dict()
    assert metadata["n_time"].value == int((expected["label"] == "time").sum())
    assert metadata["csv"].path == str(csv)
    preview = metadata["preview"].value  # a table in seconds, tics as extra columns
    assert [c.name for c in preview.schema.columns][:3] == ["start_s", "stop_s", "duration_s"]
    assert preview.records[0].data["start_s"] == round(preview.records[0].data["start_tic"] / RATE, 4)
    assert metadata["open_in_annotator"].value.startswith("http://127.0.0.1:5006/annotate?recording=")

    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == {INSIDE_CHECK, ORDER_CHECK}
    assert all(e.passed for e in checks.values())


def test_detected_time_intervals_cover_the_synthetic_pulses(project, project_resource, instance):
    """The asset finds the song that was put there: pulses are loud, so most of them fall inside
    a `time` interval."""
    from songexplorer_core.synth import make_song

    write_synth_song(project.groundtruth, "song.wav", seed=5)
    song = make_song(5.0, RATE, seed=5, wav="song.wav")
    materialize_partition(instance, project_resource, "song.wav")

    frame = pd.read_parquet(project.outputs / "detections" / "song.wav.parquet")
    loud = frame[frame["label"] == "time"]
    covered = np.zeros(song.ntics, bool)
    for start, stop in zip(loud["start"], loud["stop"]):
        covered[start : stop + 1] = True
    assert len(song.pulse_centres) > 5
    assert covered[song.pulse_centres].mean() > 0.8


def test_recordings_asset_records_the_checked_header(project, project_resource, instance):
    path = write_synth_song(project.groundtruth, "song.wav", seed=1, duration_s=4.0)

    result = materialize_partition(instance, project_resource, "song.wav")

    record = json.loads((project.outputs / "recordings" / "song.wav.json").read_text())
    assert record["rate_hz"] == RATE and record["channels"] == 1 and record["tics"] == 4 * RATE
    assert record["size_bytes"] == path.stat().st_size and record["mtime_ns"] == path.stat().st_mtime_ns
    metadata = result.asset_materializations_for_node("recordings")[0].metadata
    assert metadata["duration_s"].value == pytest.approx(4.0)
    assert metadata["tics"].value == 4 * RATE
    assert metadata["rate_hz"].value == RATE
    assert metadata["channels"].value == 1
    assert metadata["size_bytes"].value == path.stat().st_size
    assert metadata["path"].path == str(path)


def _truncated(path):
    write_synth_song(path.parent, path.name, seed=2)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _not_a_wav(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("wav,start,stop,kind,label\nthis is a CSV saved under a .wav name\n")


def _wrong_rate(path):
    write_wav(path, np.zeros(8000, np.int16), rate=8000)


def _stereo(path):
    write_wav(path, np.zeros((RATE, 2), np.int16))


@pytest.mark.parametrize(
    "make_bad, expected_words",
    [
        (_truncated, "truncated"),
        (_not_a_wav, "not a readable audio file"),
        (_wrong_rate, "8000 Hz but this project expects 2500 Hz"),
        (_stereo, "2 channel(s) but this project expects 1"),
    ],
    ids=["truncated", "not-a-wav", "wrong-rate", "stereo-in-mono-project"],
)
def test_a_bad_recording_fails_its_step_naming_the_file_and_writes_nothing(
    project, project_resource, instance, make_bad, expected_words
):
    path = project.groundtruth / "bad.wav"
    make_bad(path)

    result = materialize_partition(instance, project_resource, "bad.wav", raise_on_error=False)

    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert failure.step_key == "recordings"
    message = failure_text(failure)
    assert str(path) in message and expected_words in message
    assert "detections" not in {e.step_key for e in result.get_step_success_events()}
    assert files_under(project.outputs) == []


def test_detection_parameters_come_from_run_config(project, project_resource, instance):
    path = write_synth_song(project.groundtruth, "song.wav", seed=4)
    config = {"time_sigma": [5, 2], "frequency_range_hz": [100.0, 800.0], "time_smooth_ms": 12.8}

    materialize_partition(instance, project_resource, "song.wav", run_config={"ops": {"detections": {"config": config}}})

    params = DetectParams(time_sigma=(5, 2), frequency_range_hz=(100.0, 800.0), time_smooth_ms=12.8)
    expected = detect_recording(path, params, quirks=True)
    assert not expected.equals(detect_recording(path, DetectParams(), quirks=True))  # the config matters
    assert_same_intervals(pd.read_parquet(project.outputs / "detections" / "song.wav.parquet"), expected)


def test_unusable_parameters_fail_with_the_parameter_named(project, project_resource, instance):
    write_synth_song(project.groundtruth, "song.wav", seed=4)

    result = materialize_partition(
        instance, project_resource, "song.wav", run_config={"ops": {"detections": {"config": {"frequency_nw": 0}}}},
        raise_on_error=False,
    )

    (failure,) = result.get_step_failure_events()
    assert failure.step_key == "detections"
    assert "frequency_nw must be a whole number >= 1" in failure_text(failure)
    assert not (project.outputs / "detections").exists()


def test_detection_config_defaults_are_songexplorers(project):
    """DetectionConfig mirrors DetectParams: the defaults must not drift apart."""
    assert DetectionConfig().to_params() == DetectParams()
    assert DetectionConfig.model_fields.keys() - {"songexplorer_quirks", "detector", "detector_parameters"} == {
        "time_sigma", "time_smooth_ms", "frequency_n_ms", "frequency_nw", "frequency_p",
        "frequency_range_hz", "frequency_smooth_ms", "time_sigma_robust",
    }
    import dataclasses

    assert {f.name for f in dataclasses.fields(DetectParams)} == DetectionConfig.model_fields.keys() - {"songexplorer_quirks", "detector", "detector_parameters"}


def test_songexplorer_rows_by_default_and_inclusive_rows_on_request(project, project_resource, instance):
    """A tone from the first tic: SongExplorer's window formula starts its `frequency` row before
    tic 0 (quirk 2). By default the rows are kept exactly as SongExplorer writes them and the range
    check holds them to SongExplorer's own bounds; with the quirks off every row is inside the
    recording."""
    tics = np.arange(4 * RATE)
    tone = (3000 * np.sin(2 * np.pi * 150 * tics / RATE)).astype(np.int16)
    tone[RATE:] = np.random.default_rng(0).normal(0, 30, tics.size - RATE).astype(np.int16)
    path = write_wav(project.groundtruth / "tone.wav", tone)

    quirky = materialize_partition(instance, project_resource, "tone.wav")
    expected = detect_recording(path, DetectParams(), quirks=True)
    assert (expected["start"] < 0).any()
    csv_text = (project.outputs / "detected" / "tone.wav-detected.csv").read_text()
    assert csv_text.splitlines()[0].count(",") == 4
    assert_same_intervals(pd.read_parquet(project.outputs / "detections" / "tone.wav.parquet"), expected)
    checks = {e.check_name: e for e in quirky.get_asset_check_evaluations()}
    assert checks[INSIDE_CHECK].passed and checks[ORDER_CHECK].passed
    assert not intervals_outside(expected, tone.size).empty  # outside 0..ntics-1, inside SongExplorer's bounds

    fixed = materialize_partition(
        instance, project_resource, "tone.wav",
        run_config={"ops": {"detections": {"config": {"songexplorer_quirks": False}}}},
    )
    frame = pd.read_parquet(project.outputs / "detections" / "tone.wav.parquet")
    assert "frequency" in set(frame["label"]) and frame["start"].min() >= 0 and frame["stop"].max() < tone.size
    assert all(e.passed for e in fixed.get_asset_check_evaluations())


def test_interval_checks_find_the_bad_rows():
    from songexplorer_core.annotations import intervals_frame

    frame = intervals_frame("a.wav", [-3, 0, 5, 90], [2, 99, 4, 100], "detected", "time")
    assert intervals_outside(frame, 100)["start"].tolist() == [-3, 90]
    assert intervals_reversed(frame)["start"].tolist() == [5]


def test_project_resource_refuses_keys_outside_the_groundtruth(project_resource):
    with pytest.raises(ProjectError):
        project_resource.recording_path("..%2F..%2Fetc%2Fpasswd.wav")
    with pytest.raises(ProjectError):
        project_resource.project().detections_path("..%2Fx.wav")
    assert project_resource.project().detected_csv_path("a%2Fb%2Fc.wav").relative_to(project_resource.project().outputs).as_posix() == (
        "detected/a/b/c.wav-detected.csv"
    )
