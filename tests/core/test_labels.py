"""Labels are names, never paths: refused where they enter (the CSV reader, labels.txt, model.json,
training settings), and file names built from them stay in their folder whatever they hold
(docs/reliability.md, Inputs)."""

import json

import numpy as np
import pytest
import soundfile

from songexplorer_core import annotations as A
from songexplorer_core.annotation_session import AnnotationSession, SessionError
from songexplorer_core.classify import Probabilities, read_probability_wavs, write_probability_wavs
from songexplorer_core.labels import (
    LabelError,
    UnsafePathError,
    check_label,
    child_path,
    label_problem,
    parse_labels,
)
from songexplorer_core.models.constants import ModelError
from songexplorer_core.models.folders import read_labels_txt, read_model_metadata, write_labels_txt

GOOD = ["mel-pulse", "ambient", "sine song", "time0", "not_pulse", "a.b", "chant-é", "歌", "x" * 100]
BAD = {
    "": "is empty",
    " pulse": "starts or ends with a space",
    "a/b": "path separator",
    "a\\b": "path separator",
    "../../../../groundtruth/X": "path separator",
    "..": "'..'",
    ".": "'..'",
    "a..b": "'..'",
    "mel,pulse": "comma",
    "mel\npulse": "control character U+000A",
    "mel\rpulse": "control character U+000D",
    "mel\tpulse": "control character U+0009",
    "mel\x00pulse": "control character U+0000",
    "pulse\u202egnos": "control character U+202E",  # right-to-left override: hides a name's real order
    "pulse\u2028": "control character U+2028",
    "x" * 101: "more than 100",
    "é" * 51: "more than 100",  # bytes, not characters: a file name is at most 255 bytes
}


@pytest.mark.parametrize("label", GOOD)
def test_names_are_labels(label):
    assert label_problem(label) is None and check_label(label) == label


@pytest.mark.parametrize("label, problem", BAD.items())
def test_paths_commas_control_characters_and_blanks_are_not(label, problem):
    assert problem in label_problem(label)
    with pytest.raises(LabelError, match=r"--labels: label .* a label is a name"):
        check_label(label, where="--labels")


def test_label_lists_are_split_on_commas_and_checked_whole():
    assert parse_labels(" mel-pulse, ambient ,,") == ("mel-pulse", "ambient")
    assert parse_labels(["mel-pulse", " ambient "]) == ("mel-pulse", "ambient")
    with pytest.raises(LabelError, match="comma"):
        parse_labels(["mel,pulse"])  # an item of a list is one label: a comma in it is refused, not split
    with pytest.raises(LabelError, match="path separator"):
        parse_labels("ok,../x")
    with pytest.raises(LabelError, match="not text"):
        parse_labels([3])


@pytest.mark.parametrize("name", ["../x.wav", "a/b.wav", "/etc/passwd", "..", ".", "", "a\x00b", "a\\b"])
def test_file_names_built_from_labels_cannot_leave_their_folder(tmp_path, name):
    with pytest.raises(UnsafePathError, match="refusing to write"):
        child_path(tmp_path, name)
    assert child_path(tmp_path, "rec-mel-pulse.wav") == tmp_path / "rec-mel-pulse.wav"


def test_a_symbolic_link_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "recording.wav").write_bytes(b"precious")
    (tmp_path / "out" / "rec-x.wav").symlink_to(tmp_path / "recording.wav")
    with pytest.raises(UnsafePathError, match="resolves outside"):
        child_path(tmp_path / "out", "rec-x.wav")


def test_classify_cannot_write_a_probability_wav_outside_its_folder(tmp_path):
    """The failure this fixes: a label with a path in it made classify replace a recording."""
    groundtruth = tmp_path / "groundtruth"
    groundtruth.mkdir()
    recording = groundtruth / "X.wav"
    soundfile.write(str(recording), np.arange(100, dtype=np.int16), 2500, subtype="PCM_16")
    before = recording.read_bytes()
    out = tmp_path / "outputs" / "probabilities"
    probs = Probabilities(values=np.full((10, 2), 0.5, np.float32),
                          labels=("pulse", "/../../../groundtruth/X"), rate=2500, stride_tics=4, wav="rec.wav")
    with pytest.raises(UnsafePathError, match="refusing to write"):
        write_probability_wavs(probs, out)
    assert recording.read_bytes() == before
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        "groundtruth/X.wav", "outputs/probabilities/rec-pulse.wav"]
    with pytest.raises(UnsafePathError):
        read_probability_wavs(out, "rec.wav", ["../../groundtruth/X"], rate=2500)


def test_the_csv_reader_refuses_labels_that_are_not_names_naming_file_and_line(tmp_path):
    path = tmp_path / "rec.wav-annotated-p.csv"
    path.write_text("rec.wav,1,2,annotated,pulse\n"
                    "rec.wav,3,4,annotated,../../x\n"
                    'rec.wav,5,6,annotated,"a\nb"\n'
                    "rec.wav,7,8,annotated,\n")
    with pytest.raises(A.AnnotationError) as info:
        A.read_intervals_csv(path)
    message = str(info.value)
    assert "rec.wav-annotated-p.csv: 3 bad line(s)" in message
    assert "line 2: label '../../x' holds a path separator" in message
    assert "line 3: label 'a\\nb' holds the control character U+000A" in message
    assert "line 5: label '' is empty" in message  # a quoted newline makes the file one line longer
    # the annotated label of six-column mistakes files is a label too
    mistakes = tmp_path / "rec.wav-mistakes.csv"
    mistakes.write_text("rec.wav,1,4,mistaken,sine,a/b\n")
    with pytest.raises(A.AnnotationError, match="line 1: annotated_label 'a/b' holds a path separator"):
        A.read_intervals_csv(mistakes)


def test_a_table_with_a_bad_label_is_never_written(tmp_path):
    frame = A.intervals_frame("rec.wav", [1], [2], "annotated", ["a/b"])
    with pytest.raises(A.AnnotationError, match="label 'a/b' holds a path separator"):
        A.write_intervals_csv(frame, tmp_path / "rec.wav-annotated-p.csv")
    assert not list(tmp_path.iterdir())


def test_labels_txt_and_model_json_labels_are_checked(tmp_path):
    write_labels_txt(["mel-pulse", "ambient"], tmp_path / "labels.txt")
    assert read_labels_txt(tmp_path / "labels.txt") == ["mel-pulse", "ambient"]
    (tmp_path / "labels.txt").write_text("mel pulse\r\nambient\n")  # one per line, spaces inside kept
    assert read_labels_txt(tmp_path / "labels.txt") == ["mel pulse", "ambient"]
    (tmp_path / "labels.txt").write_text("pulse\n../../groundtruth/X\n")
    with pytest.raises(LabelError, match=r"labels\.txt: label '\.\./\.\./groundtruth/X' holds a path separator"):
        read_labels_txt(tmp_path / "labels.txt")
    meta = {"format": "x", "labels": ["pulse", "a/b"], "rate": 1, "nchannels": 1, "loss": "exclusive",
            "context_tics": 1, "shiftby_tics": 0, "stride_tics": 1, "spec": {}}
    from songexplorer_core.models.constants import METADATA_FILE, MODEL_FORMAT

    meta["format"] = MODEL_FORMAT
    (tmp_path / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"model\.json: label 'a/b' holds a path separator"):
        read_model_metadata(tmp_path)


def test_training_settings_refuse_labels_that_are_not_names():
    from songexplorer_core.train import TrainConfig, TrainError

    assert TrainConfig(labels_to_use="mel-pulse, ambient").labels_to_use == ("mel-pulse", "ambient")
    with pytest.raises(TrainError, match=r"labels_to_use: label '\.\./x' holds a path separator"):
        TrainConfig(labels_to_use="pulse,../x")
    with pytest.raises(TrainError, match=r"overlapped_prefix 'no/' holds a path separator"):
        TrainConfig(labels_to_use="pulse", loss="overlapped", overlapped_prefix="no/")


def test_an_annotation_session_refuses_a_label_that_is_not_a_name(tmp_path):
    soundfile.write(str(tmp_path / "rec.wav"), np.zeros(1000, np.int16), 2500, subtype="PCM_16")
    session = AnnotationSession(tmp_path, "person1", label="../../x")
    session.open_recording("rec.wav", ntics=1000)
    with pytest.raises(SessionError, match="label '../../x' holds a path separator"):
        session.add("rec.wav", 10, 20)
    session.label = "pulse"
    session.add("rec.wav", 10, 20)
    session.save()
    assert (tmp_path / "rec.wav-annotated-person1.csv").read_text() == "rec.wav,10,20,annotated,pulse\n"
