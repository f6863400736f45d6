"""One writer per output folder, sets of outputs complete or visibly not (issue 11, item 5), and
operating-system errors as one clear line (item 6)."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from songexplorer_core import models as M
from songexplorer_core import synth
from songexplorer_core import train as T
from songexplorer_core.annotations import write_intervals_csv
from songexplorer_core.atomic import BusyError, atomic_write, output_lock
from songexplorer_core.classify import ClassifyError, Probabilities, classify_manifest_name, write_classify_outputs
from songexplorer_core.errors import explain
from songexplorer_core.ethogram import ThresholdsError, run_ethogram, write_thresholds_csv

LABELS = ("mel-pulse", "mel-sine", "ambient")


@pytest.fixture(scope="module")
def song_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("groundtruth")
    song = synth.make_song(30.0, seed=3, wav="song.wav", params=synth.SongParams(sine_bout_rate_per_min=8.0))
    synth.write_song(song, folder / song.wav)
    seeds = synth.seed_annotations(song, {"mel-pulse": 20, "mel-sine": 20, "ambient": 20}, seed=4, allow_fewer=True)
    write_intervals_csv(seeds, folder / f"{song.wav}-annotated-person1.csv")
    return folder


def config(**changes) -> T.TrainConfig:
    values = dict(labels_to_use=LABELS, nsteps=4, validate_period=2, mini_batch=8, batch_seed=1, weights_seed=1,
                  validate_percentage=40, model=M.ModelSpec(nfeatures=(8, 8)))
    values.update(changes)
    return T.TrainConfig(**values)


@pytest.fixture(scope="module")
def dataset(song_folder):
    return T.prepare_dataset(song_folder, config())


# -- one writer per folder -----------------------------------------------------------------------

_HOLD = """
import sys, time
from songexplorer_core.atomic import output_lock
with output_lock(sys.argv[1], what="train"):
    print("locked", flush=True)
    time.sleep(60)
"""


def _holder(folder):
    child = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "locked"
    return child


def test_a_second_training_into_the_same_folder_is_refused_naming_the_first(song_folder, dataset, tmp_path):
    child = _holder(tmp_path)
    try:
        with pytest.raises(BusyError) as caught:
            T.train(song_folder, config(), tmp_path, dataset=dataset)
        message = str(caught.value)
        assert f"process {child.pid} on host {socket.gethostname()}" in message and "started " in message
        assert not (tmp_path / "train_1r").exists()  # nothing written
    finally:
        child.kill()
        child.wait()
    # the holder died without removing its lock (kill -9): the next training takes it over
    assert (tmp_path / ".songexplorer-writer.lock").exists()
    result = T.train(song_folder, config(), tmp_path, dataset=dataset)
    assert result.checkpoint_steps == [0, 2, 4]
    assert not (tmp_path / ".songexplorer-writer.lock").exists()


def test_a_lock_in_this_process_refuses_too_and_is_released(tmp_path):
    with output_lock(tmp_path, what="classify"):
        with pytest.raises(BusyError, match=f"process {os.getpid()} on host"):
            with output_lock(tmp_path, what="classify"):
                pass
    with output_lock(tmp_path, what="classify"):
        pass


def test_a_lock_of_another_host_is_not_taken_over(tmp_path):
    (tmp_path / ".songexplorer-writer.lock").write_text(json.dumps(
        {"pid": 1, "host": "elsewhere.example", "started": "2024-01-01T00:00:00"}))
    with pytest.raises(BusyError, match="on host elsewhere.example.*delete"):
        with output_lock(tmp_path, what="train"):
            pass


def test_resuming_with_other_hyperparameters_is_refused_unless_asked_for(song_folder, dataset, tmp_path):
    T.train(song_folder, config(nsteps=2), tmp_path, dataset=dataset)
    with pytest.raises(T.TrainError, match=r"other hyperparameters \(learning_rate: 0.0002 -> 0.01.*train.json"):
        T.train(song_folder, config(nsteps=4, learning_rate=0.01), tmp_path, dataset=dataset)
    with pytest.raises(T.TrainError, match=r"batch_seed: 1 -> 7"):
        T.train(song_folder, config(nsteps=4, batch_seed=7), tmp_path, dataset=dataset)
    assert T.checkpoint_steps(tmp_path / "train_1r") == [0, 2]
    result = T.train(song_folder, config(nsteps=4, learning_rate=0.01), tmp_path, dataset=dataset,
                     allow_changed_hyperparameters=True)
    assert result.replicates[0].resumed_from == 2 and result.checkpoint_steps == [0, 2, 4]
    assert "changed hyperparameters (allowed): learning_rate" in (tmp_path / "train_1r" / "train.log").read_text()
    assert json.loads((tmp_path / "train_1r" / "train.json").read_text())["learning_rate"] == 0.01


def test_history_keeps_every_step_when_killed_between_checkpoint_and_history(song_folder, dataset, tmp_path,
                                                                               monkeypatch):
    class Killed(BaseException):
        pass

    write_history = T._write_history

    def killed_at_step_4(model_dir, rows):
        if rows and rows[-1]["step"] == 4:
            raise Killed
        write_history(model_dir, rows)

    monkeypatch.setattr(T, "_write_history", killed_at_step_4)
    with pytest.raises(Killed):
        T.train(song_folder, config(nsteps=6), tmp_path, dataset=dataset)
    monkeypatch.setattr(T, "_write_history", write_history)
    result = T.train(song_folder, config(nsteps=6), tmp_path, dataset=dataset)
    assert list(result.history["step"]) == [1, 2, 3, 4, 5, 6]


def test_stale_temporary_files_of_a_killed_training_are_removed(song_folder, dataset, tmp_path):
    model_dir = tmp_path / "train_1r"
    model_dir.mkdir()
    (model_dir / ".history.csv.abcd1234.tmp").write_text("half")
    (model_dir / ".validation.ckpt-2.npz.zz99yy88.tmp").write_bytes(b"half")
    (model_dir / ".ckpt-2.0123456789ab.tmp").mkdir()
    T.train(song_folder, config(nsteps=2), tmp_path, dataset=dataset)
    assert not [p.name for p in model_dir.iterdir() if p.name.startswith(".")]


# -- classify's outputs as one set ---------------------------------------------------------------


def _probs(seed: float, labels=("a", "b")) -> Probabilities:
    values = np.full((50, len(labels)), 1.0 / len(labels), np.float32)
    values[10:20, 0] = seed
    values[10:20, 1:] = (1 - seed) / (len(labels) - 1)
    return Probabilities(values=values, labels=labels, rate=2500, stride_tics=4, loss="exclusive", wav="r.wav",
                         ntics=200)


@pytest.fixture
def thresholds(tmp_path):
    path = tmp_path / "thresholds.csv"
    write_thresholds_csv({"a": 0.5, "b": 0.5}, path)
    return path


def test_ethogram_refuses_a_stale_npz_left_by_another_model(tmp_path, thresholds):
    out = tmp_path / "out"
    write_classify_outputs(_probs(0.9), out, "r.wav", model={"folder": "/models/A", "sha256": "a" * 64})
    # the second model writes only the WAVs: the .npz is model A's
    write_classify_outputs(_probs(0.1), out, "r.wav", model={"folder": "/models/B", "sha256": "b" * 64},
                           formats=("wav",))
    with pytest.raises(ClassifyError, match=r"r.wav-probabilities.npz: not among the outputs .*/models/B"):
        run_ethogram("r.wav", thresholds, probabilities_dir=out, method="threshold")


def test_ethogram_refuses_a_set_a_kill_left_half_written(tmp_path, thresholds, monkeypatch):
    import songexplorer_core.classify as C

    out = tmp_path / "out"
    write_classify_outputs(_probs(0.9), out, "r.wav", model={"folder": "/models/A", "sha256": "a" * 64})
    run_ethogram("r.wav", thresholds, probabilities_dir=out, method="threshold")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(C, "write_probabilities", killed)  # after the WAVs of model B, before its npz
    with pytest.raises(KeyboardInterrupt):
        write_classify_outputs(_probs(0.1), out, "r.wav", model={"folder": "/models/B", "sha256": "b" * 64})
    with pytest.raises(ClassifyError, match=r"r.wav-classify.json: classify was interrupted .*/models/B"):
        run_ethogram("r.wav", thresholds, probabilities_dir=out, method="threshold")
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp") or ".tmp." in p.name]


def test_a_file_changed_after_classify_is_refused(tmp_path, thresholds):
    out = tmp_path / "out"
    written = write_classify_outputs(_probs(0.9), out, "r.wav", model={"folder": "/models/A"}, formats=("npz",))
    other = tmp_path / "other"
    write_classify_outputs(_probs(0.1), other, "r.wav", model={"folder": "/models/B"}, formats=("npz",))
    written[0].write_bytes((other / written[0].name).read_bytes())
    with pytest.raises(ClassifyError, match="changed since classify wrote it"):
        run_ethogram("r.wav", thresholds, probabilities_dir=out, method="threshold")


def test_probability_wavs_need_no_tic_rate_when_classify_recorded_it(tmp_path, thresholds):
    out = tmp_path / "out"
    write_classify_outputs(_probs(0.9), out, "r.wav", model={"folder": "/models/A"}, formats=("wav",))
    assert run_ethogram("r.wav", thresholds, probabilities_dir=out, method="threshold")
    assert json.loads((out / classify_manifest_name("r.wav")).read_text())["complete"] is True


def test_ethogram_of_an_unclassified_recording_says_so(tmp_path, thresholds):
    (tmp_path / "out").mkdir()
    with pytest.raises(FileNotFoundError) as caught:
        run_ethogram("r.wav", thresholds, probabilities_dir=tmp_path / "out", method="threshold")
    assert "has not been classified" in str(caught.value) and "tic-rate" not in str(caught.value)


def test_thresholds_for_labels_the_probabilities_lack_name_the_file(tmp_path):
    out = tmp_path / "out"
    write_classify_outputs(_probs(0.9), out, "r.wav", model={"folder": "/models/A"})
    path = tmp_path / "thresholds-other.csv"
    write_thresholds_csv({"a": 0.5, "zebra-finch": 0.5}, path)
    with pytest.raises(ThresholdsError, match=r"thresholds-other.csv: has thresholds for label\(s\) \['zebra-finch'\]"):
        run_ethogram("r.wav", path, probabilities_dir=out, method="threshold")


def test_thresholds_of_another_model_are_refused(tmp_path):
    def model_folder(name, payload):
        folder = tmp_path / name
        folder.mkdir()
        (folder / M.METADATA_FILE).write_text("{}")
        (folder / M.MODEL_FILE).write_bytes(payload)
        write_thresholds_csv({"a": 0.5, "b": 0.5}, folder / "thresholds.csv")
        return folder

    a, b = model_folder("A", b"weights of A"), model_folder("B", b"weights of B")
    out = tmp_path / "out"
    write_classify_outputs(_probs(0.9), out, "r.wav", model=M.model_identity(a))
    assert run_ethogram("r.wav", a / "thresholds.csv", probabilities_dir=out, method="threshold")
    with pytest.raises(ThresholdsError, match=r"thresholds of the model in .*/B, but .* made by another model"):
        run_ethogram("r.wav", b / "thresholds.csv", probabilities_dir=out, method="threshold")


def test_classify_into_outputs_another_classify_is_writing_is_refused(tmp_path):
    out = tmp_path / "out"
    with output_lock(out, what="classify (r.wav)", name=".r.wav.classify.lock"):
        with pytest.raises(BusyError, match="is writing classify"):
            write_classify_outputs(_probs(0.9), out, "r.wav", model={"folder": "/models/A"})


# -- operating-system errors -----------------------------------------------------------------------


def test_a_full_disk_names_the_file_and_the_free_space(tmp_path):
    target = tmp_path / "history.csv"

    with pytest.raises(OSError) as caught:
        with atomic_write(target) as handle:
            handle.write("x")
            raise OSError(errno.ENOSPC, "No space left on device")  # what write/flush/fsync raise then
    message = explain(caught.value)
    assert str(target) in message and "no space left" in message and " free there" in message
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_named(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OSError) as caught:
            with atomic_write(folder / "x.csv") as handle:
                handle.write("x")
        assert explain(caught.value).startswith(f"{folder / 'x.csv'}: permission denied")
    finally:
        folder.chmod(0o755)


def test_an_output_path_that_is_a_file_is_named(tmp_path):
    blocker = tmp_path / "out"
    blocker.write_text("not a folder")
    with pytest.raises(OSError) as caught:
        with atomic_write(blocker / "sub" / "x.csv") as handle:
            handle.write("x")
    assert explain(caught.value) == f"{blocker}: is a file, not a folder; give a folder path (or move the file away)"


def test_a_corrupt_validation_file_is_named(tmp_path):
    from songexplorer_core.accuracy import load_validation

    path = tmp_path / "validation.ckpt-2.npz"
    np.savez(path, logits=np.zeros((3, 2, 3), np.float32), groundtruth=np.zeros((3, 2), np.int32))
    data = path.read_bytes()
    for broken in (data[: len(data) // 2], data[:100] + b"\0" * 50 + data[150:]):
        path.write_bytes(broken)
        with pytest.raises(ValueError, match="validation.ckpt-2.npz: cannot be read"):
            load_validation(path)


def test_a_corrupt_probabilities_file_is_named(tmp_path):
    from songexplorer_core.classify import read_probabilities, write_probabilities

    path = write_probabilities(_probs(0.9), tmp_path / "r.wav-probabilities.npz")
    data = path.read_bytes()
    path.write_bytes(data[:120] + b"\xff" * 40 + data[160:])
    with pytest.raises(ClassifyError, match="r.wav-probabilities.npz: not a probabilities file"):
        read_probabilities(path)

