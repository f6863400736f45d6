"""What the annotator may open: only recordings under groundtruth/ (no path traversal through any
parameter), and the outputs derived from them."""

import numpy as np
import pandas as pd
import pytest
import soundfile

from songexplorer_annotator.app import AnnotatorApp
from songexplorer_annotator.catalog import AccessError, Catalog
from songexplorer_core.annotations import intervals_frame
from songexplorer_core.classify import Probabilities, write_probabilities
from songexplorer_core.project import init_project


def tone_wav(path, seconds=1.0, rate=2500, hz=200.0):
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(str(path), (3000 * np.sin(2 * np.pi * hz * t)).astype(np.int16), rate, subtype="PCM_16")
    return path


@pytest.fixture
def small(tmp_path):
    project = init_project(tmp_path / "p")
    (project.groundtruth / "round1").mkdir()
    tone_wav(project.groundtruth / "round1" / "a.wav")
    tone_wav(project.groundtruth / "b.wav")
    tone_wav(tmp_path / "outside.wav")
    (tmp_path / "secret.txt").write_text("secret")
    return project


ATTEMPTS = [
    "../outside.wav", "..%2Foutside.wav", "..%2F..%2Fsecret.txt", "round1%2F..%2F..%2Foutside.wav",
    "/etc/passwd", "%2Fetc%2Fpasswd", "round1/a.wav", "b.wav%00", "", "songexplorer.toml",
    "..", "%2E%2E%2Foutside.wav", "link.wav",
]


def test_only_the_projects_recordings_are_listed_and_opened(small, tmp_path):
    (small.groundtruth / "link.wav").symlink_to(tmp_path / "outside.wav")  # a link leading out
    catalog = Catalog(small)
    assert catalog.keys() == ["b.wav", "round1%2Fa.wav"]
    assert catalog.recording("round1%2Fa.wav").path == (small.groundtruth / "round1" / "a.wav").resolve()
    assert catalog.recording("b.wav").ntics == 2500
    for attempt in ATTEMPTS + [str(tmp_path / "outside.wav"), str(small.groundtruth / "b.wav")]:
        with pytest.raises(AccessError, match="not a recording of this project"):
            catalog.recording(attempt)


def test_a_query_naming_a_file_outside_groundtruth_is_refused_before_it_is_opened(small, tmp_path, monkeypatch):
    opened = []
    import songexplorer_annotator.catalog as catalog_module

    real_info = catalog_module.recording_info
    monkeypatch.setattr(catalog_module, "recording_info", lambda path: opened.append(path) or real_info(path))
    for attempt in ("../outside.wav", "..%2F..%2Fsecret.txt", "%2Fetc%2Fpasswd", "songexplorer.toml"):
        app = AnnotatorApp(small, annotator="tester", query={"recording": attempt})
        assert app.recording_view.recording is None and "not a recording of this project" in app.shared.message.object, attempt
    for attempt in ATTEMPTS:
        assert not app.recording_view.open_recording(attempt)
        assert app.recording_view.recording is None
    assert all(small.groundtruth.resolve() in p.resolve().parents for p in opened)
    assert app.recording_view.open_recording("round1%2Fa.wav") and app.recording_view.recording.key == "round1%2Fa.wav"


def test_intervals_come_from_parquet_then_csvs_of_other_kinds(small):
    catalog = Catalog(small)
    detections = small.outputs / "detections"
    detections.mkdir()
    intervals_frame("a.wav", [10, 100], [20, 300], "detected", ["time", "frequency"]).to_parquet(
        detections / "round1%2Fa.wav.parquet")
    detected = small.outputs / "detected" / "round1"
    detected.mkdir(parents=True)
    # the same detections as SongExplorer's CSV (skipped: parquet has that kind), with its negative
    # frequency start (QUIRK 2), and predictions only as a CSV
    (detected / "a.wav-detected.csv").write_text("a.wav,-5,20,detected,time\n")
    predicted = small.outputs / "predicted" / "round1"
    predicted.mkdir(parents=True)
    (predicted / "a.wav-predicted-1.0pr.csv").write_text("a.wav,-3,40,predicted,mel-pulse\nb.wav,1,2,predicted,x\n")
    table = catalog.intervals("round1%2Fa.wav")
    assert sorted(table[["start", "stop", "kind", "label"]].itertuples(index=False, name=None)) == [
        (0, 40, "predicted", "mel-pulse"), (10, 20, "detected", "time"), (100, 300, "detected", "frequency")]
    assert catalog.intervals("b.wav").empty  # nothing for b.wav in its own folder


def test_no_outputs_yet_means_no_intervals_and_no_probabilities(small):
    catalog = Catalog(small)
    assert catalog.intervals("b.wav").empty
    assert catalog.probabilities("b.wav") is None


def test_probabilities_are_found_under_outputs(small):
    probs = Probabilities(values=np.full((625, 2), 0.5, np.float32), labels=("mel-pulse", "ambient"), rate=2500,
                          stride_tics=4, wav="b.wav", ntics=2500)
    folder = small.outputs / "probabilities"
    folder.mkdir()
    write_probabilities(probs, folder / "b.wav.npz")
    found = Catalog(small).probabilities("b.wav")
    assert found.labels == ("mel-pulse", "ambient") and found.nsamples == 625


def test_a_parquet_without_interval_columns_is_named(small):
    folder = small.outputs / "detections"
    folder.mkdir()
    pd.DataFrame({"a": [1]}).to_parquet(folder / "b.wav.parquet")
    with pytest.raises(ValueError, match=r"b.wav.parquet: not an interval table"):
        Catalog(small).intervals("b.wav")
