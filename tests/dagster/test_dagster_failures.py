"""Steps fail with one line naming what is wrong and where (issue 11, items 6 and 8): the same
message the command line prints, as the step's ``dagster.Failure`` description."""

import dagster as dg
import pytest

from songexplorer_dagster.defs.detection.assets import detections
from songexplorer_dagster.defs.recordings.assets import recordings
from songexplorer_dagster.partitions import recordings_partitions

from dagster_test_helpers import write_synth_song


def _materialize(instance, project_resource, key):
    instance.add_dynamic_partitions(recordings_partitions.name, [key])
    return dg.materialize([recordings, detections], partition_key=key, instance=instance,
                          resources={"project": project_resource}, raise_on_error=False)


@pytest.mark.parametrize("line, words", [
    ("audio_tic_rate = \"fast\"", "audio_tic_rate must be a whole number >= 1 (Hz), not 'fast'"),
    ("audio_tic_rate = -2500", "audio_tic_rate must be a whole number >= 1 (Hz), not -2500"),
    ("audio_tic_rat = 2500", "unknown setting(s) ['audio_tic_rat']"),
])
def test_a_bad_settings_value_fails_the_step_naming_the_file(project, project_resource, instance, line, words):
    write_synth_song(project.groundtruth, "song.wav", seed=4)
    project.settings_path.write_text(line + "\n")
    result = _materialize(instance, project_resource, "song.wav")
    assert not result.success
    failure = result.get_step_failure_events()[0]
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith(f"{project.settings_path}: ") and words in description


def test_an_output_path_that_is_a_file_fails_the_step_with_one_line(project, project_resource, instance):
    write_synth_song(project.groundtruth, "song.wav", seed=4)
    project.outputs.mkdir(exist_ok=True)
    (project.outputs / "recordings").write_text("a file where a folder should be")
    result = _materialize(instance, project_resource, "song.wav")
    failure = result.get_step_failure_events()[0]
    description = failure.step_failure_data.user_failure_data.description
    assert description == (f"{project.outputs / 'recordings'}: is a file, not a folder; give a folder path "
                           f"(or move the file away)")
