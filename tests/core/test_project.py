"""Project folders: layout, recording keys, and never touching the ground truth."""

import numpy as np
import pytest
import soundfile

from songexplorer_core.project import (
    Project, ProjectError, find_recordings, init_project, recording_key, recording_path, recording_relpath,
)


def make_groundtruth(root):
    (root / "round1").mkdir(parents=True)
    soundfile.write(str(root / "round1" / "a.wav"), np.zeros(2500, np.int16), 5000, subtype="PCM_16")
    soundfile.write(str(root / "b.wav"), np.zeros(2500, np.int16), 5000, subtype="PCM_16")
    (root / "b.wav-annotated-p.csv").write_text("b.wav,1,2,annotated,x\n")
    return root


@pytest.mark.parametrize("relative", ["a.wav", "round1/a.wav", "x%2F/y.wav", "dir with space/r.wav"])
def test_recording_keys_are_reversible_and_flat(relative):
    key = recording_key(relative)
    assert "/" not in key
    assert recording_relpath(key).as_posix() == relative


def test_keys_that_escape_the_groundtruth_are_refused(tmp_path):
    with pytest.raises(ProjectError):
        recording_key("../secret.wav")
    with pytest.raises(ProjectError):
        recording_path(Project(tmp_path), "..%2Fsecret.wav")


def test_init_from_groundtruth_copies_without_modifying_and_reads_rate(tmp_path):
    source = make_groundtruth(tmp_path / "lab-data")
    before = {p: p.read_bytes() for p in source.rglob("*") if p.is_file()}
    project = init_project(tmp_path / "proj", from_groundtruth=source)
    assert {p: p.read_bytes() for p in source.rglob("*") if p.is_file()} == before
    assert project.settings().audio_tic_rate == 5000
    assert sorted(find_recordings(project.groundtruth)) == ["b.wav", "round1%2Fa.wav"]
    assert (project.dagster_home / "dagster.yaml").exists()
    # idempotent without --from; a second --from into a filled project is refused (no merging)
    assert init_project(tmp_path / "proj") == project
    with pytest.raises(ProjectError, match="already exists"):
        init_project(tmp_path / "proj", from_groundtruth=source)


def test_init_can_link_instead_of_copy(tmp_path):
    source = make_groundtruth(tmp_path / "lab-data")
    project = init_project(tmp_path / "proj", from_groundtruth=source, link=True)
    assert project.groundtruth.is_symlink() and len(find_recordings(project.groundtruth)) == 2


def test_project_inside_its_own_source_is_refused(tmp_path):
    source = make_groundtruth(tmp_path / "lab-data")
    with pytest.raises(ProjectError, match="inside"):
        init_project(source / "proj", from_groundtruth=source)


def test_settings_name_dense_annotators_and_a_malformed_list_names_the_file(tmp_path):
    from songexplorer_core.project import ProjectError, ProjectSettings, init_project

    project = init_project(tmp_path / "p", settings=ProjectSettings(audio_tic_rate=2500,
                                                                    dense_annotators=("person2", "person3")))
    assert project.settings() == ProjectSettings(audio_tic_rate=2500, dense_annotators=("person2", "person3"))
    project.settings_path.write_text('audio_tic_rate = 2500\ndense_annotators = "person2"\n')
    with pytest.raises(ProjectError, match=r"songexplorer\.toml: dense_annotators must be a list"):
        project.settings()
    project.settings_path.write_text("audio_tic_rate = 2500\n")  # older projects name none
    assert project.settings().dense_annotators == ()


def test_the_instance_template_is_package_data_and_the_repo_root_file_is_the_same(tmp_path):
    from pathlib import Path

    import yaml

    from songexplorer_core.project import instance_template

    project = init_project(tmp_path / "p")
    assert (project.dagster_home / "dagster.yaml").read_text() == instance_template()
    assert yaml.safe_load(instance_template())["concurrency"]["pools"]["default_limit"] == 1  # the gpu pool
    # `dagster dev` from a checkout without DAGSTER_HOME reads the repo-root dagster.yaml
    repo_root = Path(__file__).resolve().parents[2]
    assert (repo_root / "dagster.yaml").read_text() == instance_template()


def test_recordings_are_found_in_path_order_skipping_hidden_temporary_and_old_folders(tmp_path):
    root = tmp_path / "groundtruth"
    tone = np.zeros(10, dtype=np.int16)
    for relative in ["b.wav", "a/z.wav", "a-b.wav", "a/%odd.WAV", "deep/er/x.wav", ".hidden/y.wav",
                     "oldfiles-20200101T000000/old.wav", "a/congruence-20200101T000000/c.wav"]:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(root / relative, tone, 2500)
    (root / ".b.wav").write_bytes(b"hidden")
    (root / ".b.wav.x1.tmp").write_bytes(b"temporary")
    (root / "notes.txt").write_text("not a recording")
    (root / "folder.wav").mkdir()
    (root / "dangling.wav").symlink_to(root / "nowhere.wav")
    found = find_recordings(root)
    assert list(found) == [".hidden%2Fy.wav", "a%2F%25odd.WAV", "a%2Fz.wav", "a-b.wav",
                           "b.wav", "deep%2Fer%2Fx.wav"]
    assert all(found[key] == root / recording_relpath(key) for key in found)
    assert find_recordings(tmp_path / "absent") == {}
