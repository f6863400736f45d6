"""The demo project: synthetic recordings with seed annotations, reproducible and idempotent."""

from songexplorer_core.annotations import find_interval_csvs, read_intervals_csv
from songexplorer_core.audio import recording_info
from songexplorer_core.demo import add_demo_recording, make_demo_project
from songexplorer_core.project import find_recordings


def test_demo_project_has_annotated_and_unannotated_recordings(tmp_path):
    project = make_demo_project(tmp_path / "demo", nrecordings=3, duration_s=30, annotations_per_label=4)
    recordings = find_recordings(project.groundtruth)
    assert list(recordings) == ["demo-1.wav", "demo-2.wav", "demo-3.wav"]
    assert recording_info(recordings["demo-1.wav"]).duration_s == 30
    csvs = find_interval_csvs(project.groundtruth, kinds=["annotated"])
    assert [p.name for p in csvs] == ["demo-1.wav-annotated-seed.csv", "demo-2.wav-annotated-seed.csv"]
    tics = {name: recording_info(path).frames for name, path in recordings.items()}
    table = read_intervals_csv(csvs[0], recording_tics=tics)  # validates against the recording
    assert set(table["label"]) == {"mel-pulse", "mel-sine", "ambient"}
    assert (table["kind"] == "annotated").all()


def test_demo_is_reproducible_and_running_it_again_changes_nothing(tmp_path):
    a = make_demo_project(tmp_path / "a", nrecordings=2, duration_s=20, annotations_per_label=3, seed=5)
    b = make_demo_project(tmp_path / "b", nrecordings=2, duration_s=20, annotations_per_label=3, seed=5)
    wav_a, wav_b = a.groundtruth / "demo-1.wav", b.groundtruth / "demo-1.wav"
    assert wav_a.read_bytes() == wav_b.read_bytes()
    mtime = wav_a.stat().st_mtime_ns
    make_demo_project(tmp_path / "a", nrecordings=2, duration_s=20, annotations_per_label=3, seed=5)
    assert wav_a.stat().st_mtime_ns == mtime


def test_adding_a_recording(tmp_path):
    project = make_demo_project(tmp_path / "d", nrecordings=1, duration_s=10, annotations_per_label=2)
    path = add_demo_recording(project, duration_s=10)
    assert path.name == "demo-2.wav" and len(find_recordings(project.groundtruth)) == 2


def test_dense_demo_gives_the_unannotated_recording_its_whole_truth_and_names_the_annotator(tmp_path):
    from songexplorer_core.demo import DEMO_DENSE_ANNOTATOR
    from songexplorer_core.synth import SongParams, make_song

    project = make_demo_project(tmp_path / "demo", nrecordings=3, duration_s=20, annotations_per_label=3, dense=True)
    assert project.settings().dense_annotators == (DEMO_DENSE_ANNOTATOR,)
    csvs = [p.name for p in find_interval_csvs(project.groundtruth, kinds=["annotated"])]
    assert csvs == ["demo-1.wav-annotated-seed.csv", "demo-2.wav-annotated-seed.csv",
                    "demo-3.wav-annotated-dense.csv"]
    dense = read_intervals_csv(project.groundtruth / "demo-3.wav-annotated-dense.csv")
    song = make_song(20, 2500, SongParams(), seed=1002, wav="demo-3.wav")  # what make_demo_project generated
    pulses = dense[dense["label"] == "mel-pulse"]
    assert sorted(pulses["start"]) == sorted(song.pulse_centres) and (pulses["start"] == pulses["stop"]).all()
    assert len(dense[dense["label"] == "mel-sine"]) == len(song.sines) > 0
