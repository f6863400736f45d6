"""Other tools' annotation files in Dagster: with ``annotation_formats`` in songexplorer.toml, a
TextGrid, a Raven table, an Audacity track or a DAS CSV beside a recording is read by the
``annotations`` asset (and so reaches ``ground_truth``), its edits wake the annotations sensor,
and a bad row fails the step naming the file and the line."""

import dataclasses
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from songexplorer_core.annotations import intervals_frame, write_intervals_csv
from songexplorer_core.project import write_settings
from songexplorer_dagster.defs.annotations.assets import annotations, ground_truth
from songexplorer_dagster.defs.annotations.sensors import annotation_files_sensor
from songexplorer_dagster.defs.recordings.assets import recordings
from songexplorer_dagster.defs.resources import DenseSetResource
from songexplorer_dagster.partitions import recordings_partitions

from dagster_test_helpers import RATE, write_wav

SAMPLES = Path(__file__).parents[1] / "core" / "format_samples"


@pytest.fixture
def song_project(project, project_resource, instance):
    """``groundtruth/song.wav`` (5 s at 2500 Hz) with a TextGrid, a Raven table and a SongExplorer CSV."""
    write_wav(project.groundtruth / "song.wav", np.zeros(5 * RATE))
    shutil.copy(SAMPLES / "song.TextGrid", project.groundtruth / "song.TextGrid")
    shutil.copy(SAMPLES / "song.Table.1.selections.txt", project.groundtruth / "song.Table.1.selections.txt")
    write_intervals_csv(intervals_frame("song.wav", 100, 100, "annotated", "mel-pulse"),
                        project.groundtruth / "song.wav-annotated-anna.csv")
    instance.add_dynamic_partitions(recordings_partitions.name, ["song.wav"])
    return project, {"project": project_resource}


def with_formats(project, *names):
    write_settings(project, dataclasses.replace(project.settings(), annotation_formats=names))


def materialize(instance, resources, *, raise_on_error=True):
    return dg.materialize([recordings, annotations], partition_key="song.wav", instance=instance, resources=resources,
                          raise_on_error=raise_on_error)


def test_files_in_the_configured_formats_are_annotations(song_project, instance):
    project, resources = song_project
    assert materialize(instance, resources).success
    table = pd.read_parquet(project.outputs / "annotations" / "song.wav.parquet")
    assert set(table["annotator"]) == {"anna"}  # no formats configured: only SongExplorer's CSVs

    with_formats(project, "textgrid", "raven")
    result = materialize(instance, resources)
    table = pd.read_parquet(project.outputs / "annotations" / "song.wav.parquet")
    assert table.groupby("annotator").size().to_dict() == {"anna": 1, "raven": 3, "textgrid": 4}
    textgrid = table[table["annotator"] == "textgrid"]
    assert textgrid[["start", "stop", "label"]].values.tolist() == [
        [1000, 2000, "mel-sine"], [3086, 3086, "mel-pulse"], [5001, 8750, "canto del ñandú"],
        [10001, 10001, 'say "hi"']]
    assert set(table["kind"]) == {"annotated"}
    files = result.asset_materializations_for_node("annotations")[0].metadata["files"].value
    assert files == ["song.wav-annotated-anna.csv", "song.Table.1.selections.txt", "song.TextGrid"]
    gt = dg.materialize([ground_truth], instance=instance, resources={**resources, "dense_set": DenseSetResource()})
    assert gt.success
    truth = pd.read_parquet(project.outputs / "ground_truth" / "ground_truth.parquet")
    # Raven's and Praat's files hold the same three sounds: counted once in the ground truth
    assert len(truth) == 1 + 4


def test_a_bad_row_fails_the_step_naming_file_and_line(song_project, instance):
    project, resources = song_project
    with_formats(project, "audacity")
    (project.groundtruth / "song.txt").write_text("0.1\t0.2\tok\n0.5\t9.0\tlate\n", encoding="utf-8")
    result = materialize(instance, resources, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.user_failure_data.description
    assert "song.txt" in message and "line 2: stop 9.0 s (tic 22500) is past the end of song.wav" in message


def test_the_sensor_notices_files_in_the_configured_formats(song_project, instance):
    project, resources = song_project
    with_formats(project, "das")
    context = dg.build_sensor_context(instance=instance, resources=resources)
    assert isinstance(annotation_files_sensor(context), dg.SkipReason)  # baseline
    shutil.copy(SAMPLES / "song_annotations.csv", project.groundtruth / "song_annotations.csv")
    (project.groundtruth / "unrelated_annotations.csv").write_text("name,start_seconds,stop_seconds\n")
    result = annotation_files_sensor(dg.build_sensor_context(instance=instance, cursor=context.cursor,
                                                             resources=resources))
    assert [r.partition_key for r in result.run_requests] == ["song.wav"]
    # a format the project does not name is not watched
    shutil.copy(SAMPLES / "song.txt", project.groundtruth / "song.txt")
    again = annotation_files_sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor,
                                                            resources=resources))
    assert isinstance(again, dg.SkipReason)
