"""Mistakes: on a constructed case (a hand-made model that says "loud" where the audio is loud)
every annotated sound is correct or mistaken by definition; the 6-column files; exclusive and
overlapped models; and the activations -> cluster -> mistakes command-line chain."""

from dataclasses import dataclass

import numpy as np
import pytest
import soundfile

from songexplorer_core.activations import ActivationsError, compute_activations, write_activations
from songexplorer_core.annotations import (
    ANNOTATED_LABEL,
    intervals_frame,
    read_intervals_csv,
    write_intervals_csv,
)
from songexplorer_core.dataset import GroundTruth
from songexplorer_core.mistakes import find_mistakes, mistakes_file_name, mistakes_table, write_mistakes_csvs

keras = pytest.importorskip("keras")

RATE = 2500
NTICS = 10_000
BURSTS = ((1000, 1200), (7000, 7300))  # loud stretches, tics [start, stop)


@dataclass
class HandModel:
    """Honours the TrainedModel contract: (batch, ntics, 1) -> logits (batch, ntaps, 2)."""

    keras_model: object
    labels: list
    loss: str = "exclusive"
    rate: int = RATE
    nchannels: int = 1
    context_tics: int = 64
    shiftby_tics: int = 0
    stride_tics: int = 4


def loudness_model(second_logit=0.0, context_tics=64, stride_tics=4, gain=2000.0):
    """Logits ``(gain * mean square of the window - 1, second_logit)``: the first label wins
    wherever the window's RMS exceeds ~0.022 of full scale."""
    audio = keras.Input(shape=(None, 1))
    power = keras.layers.Multiply()([audio, audio])
    mean = keras.layers.Conv1D(1, context_tics, strides=stride_tics)
    logit = mean(power)
    mean.set_weights([np.full((context_tics, 1, 1), gain / context_tics, np.float32), np.array([-1.0], np.float32)])
    other = keras.layers.Lambda(lambda x: x * 0.0 + second_logit)(logit)
    return keras.Model(audio, keras.layers.Concatenate()([logit, other]))


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    rng = np.random.default_rng(0)
    samples = rng.normal(0, 300, NTICS)  # ~0.01 of full scale: quiet
    for start, stop in BURSTS:
        samples[start:stop] = rng.normal(0, 10_000, stop - start)  # ~0.3: loud
    folder = tmp_path_factory.mktemp("gt")
    (folder / "sub").mkdir()
    path = folder / "sub" / "r.wav"
    soundfile.write(str(path), samples.astype(np.int16), RATE, subtype="PCM_16")
    return folder, path


def annotations(labels_at):
    rows = [(s, e, label) for s, e, label in labels_at]
    return intervals_frame("r.wav", [r[0] for r in rows], [r[1] for r in rows], "annotated", [r[2] for r in rows])


def test_exclusive_mistakes_match_the_definition(recording):
    folder, path = recording
    model = HandModel(loudness_model(), labels=["loud", "quiet"])
    table = annotations([
        (1100, 1100, "loud"),    # inside a burst: correct
        (3000, 3100, "loud"),    # quiet audio: mistaken, predicted quiet
        (5000, 5000, "quiet"),   # correct
        (7050, 7250, "quiet"),   # centre 7150 inside a burst: mistaken, predicted loud
        (9000, 9000, "other"),   # a label the model does not have: not judged
    ])
    truth = GroundTruth.from_tables(table, {"r.wav": path})
    with pytest.warns(UserWarning, match=r"label\(s\) \['other'\] that the model does not output"):
        acts = compute_activations(model, truth.intervals, truth.recordings, layers=[])
        result = mistakes_table(acts)
    assert result[["start", "stop", "kind", "label", ANNOTATED_LABEL]].values.tolist() == [
        [1100, 1100, "correct", "loud", "loud"],
        [3000, 3100, "mistaken", "quiet", "loud"],
        [5000, 5000, "correct", "quiet", "quiet"],
        [7050, 7250, "mistaken", "loud", "quiet"],
    ]
    # find_mistakes judges only the model's labels, so "other" is simply not chosen
    assert find_mistakes(model, truth)[["start", "kind"]].values.tolist() == [
        [1100, "correct"], [3000, "mistaken"], [5000, "correct"], [7050, "mistaken"]]


def test_the_decision_is_at_the_sound_not_126_tics_early(recording):
    folder, path = recording
    model = HandModel(loudness_model(), labels=["loud", "quiet"])
    # quiet at 1300 (its window [1236, 1364) is after the burst ending at 1199), while the window
    # SongExplorer used, centred 126 tics earlier at 1174, is loud
    table = annotations([(1300, 1300, "quiet"), (1300 - 126, 1300 - 126, "quiet")])
    result = find_mistakes(model, GroundTruth.from_tables(table, {"r.wav": path}))
    assert result[["start", "kind", "label"]].values.tolist() == [[1174, "mistaken", "loud"],
                                                                  [1300, "correct", "quiet"]]


def test_overlapped_models_judge_presence_and_absence(recording):
    _, path = recording
    model = HandModel(loudness_model(second_logit=-5.0), labels=["loud", "hum"], loss="overlapped")
    table = annotations([
        (1100, 1100, "loud"),       # present and heard: correct
        (1150, 1150, "not_loud"),   # said absent where it is loud: mistaken, predicted loud
        (4000, 4000, "not_loud"),   # correct, predicted not_loud
        (4500, 4500, "hum"),        # never heard (p = 0.007): mistaken, predicted not_hum
        (5000, 5000, "not_hum"),    # correct
    ])
    result = find_mistakes(model, GroundTruth.from_tables(table, {"r.wav": path}))
    assert result[["kind", "label", ANNOTATED_LABEL]].values.tolist() == [
        ["correct", "loud", "loud"], ["mistaken", "loud", "not_loud"], ["correct", "not_loud", "not_loud"],
        ["mistaken", "not_hum", "hum"], ["correct", "not_hum", "not_hum"]]
    assert find_mistakes(model, GroundTruth.from_tables(table, {"r.wav": path}), threshold=0.001)[
        "kind"].tolist()[3:] == ["correct", "mistaken"]


def test_no_annotated_sound_with_a_model_label_is_a_clear_error(recording):
    _, path = recording
    model = HandModel(loudness_model(), labels=["loud", "quiet"])
    table = annotations([(1100, 1100, "song")])
    with pytest.raises(ActivationsError, match=r"label\(s\) \['loud', 'quiet'\].*labels of the chosen kinds: \['song'\]"):
        find_mistakes(model, GroundTruth.from_tables(table, {"r.wav": path}))


def test_six_column_files_per_recording_in_its_sub_folder(recording, tmp_path):
    folder, _ = recording
    model = HandModel(loudness_model(), labels=["loud", "quiet"])
    write_intervals_csv(annotations([(3000, 3100, "loud"), (1100, 1100, "loud")]),
                        folder / "sub" / "r.wav-annotated-person1.csv")
    result = find_mistakes(model, folder)
    assert result["recording"].tolist() == ["sub/r.wav", "sub/r.wav"]
    written = write_mistakes_csvs(result, tmp_path / "out")
    assert written == [tmp_path / "out" / "sub" / "r.wav-mistakes.csv"]
    assert written[0].read_text() == "r.wav,1100,1100,correct,loud,loud\nr.wav,3000,3100,mistaken,quiet,loud\n"
    back = read_intervals_csv(written[0])
    assert back[ANNOTATED_LABEL].tolist() == ["loud", "loud"]
    assert mistakes_file_name("PS_1.wav") == "PS_1.wav-mistakes.csv"


# ---------------------------------------------------------------------------------------------
# the command line, with a saved network


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A ground truth of tones and clicks annotated as such, and a saved tiny convolutional model."""
    models = pytest.importorskip("songexplorer_core.models")
    rng = np.random.default_rng(1)
    root = tmp_path_factory.mktemp("cli")
    gt = root / "gt"
    (gt / "round1").mkdir(parents=True)
    ntics = 40 * 400 + 400
    samples = rng.normal(0, 30, ntics)
    centres = 200 + np.arange(40) * 400
    labels = np.array(["tone", "click"] * 20)
    for centre, label in zip(centres, labels):
        if label == "tone":
            samples[centre - 50: centre + 50] += 5000 * np.sin(2 * np.pi * 250 * np.arange(100) / RATE)
        else:
            samples[centre - 2: centre + 3] += rng.normal(0, 5000, 5)
    soundfile.write(str(gt / "round1" / "tc.wav"), samples.astype(np.int16), RATE, subtype="PCM_16")
    write_intervals_csv(intervals_frame("tc.wav", centres, centres, "annotated", labels),
                        gt / "round1" / "tc.wav-annotated-person1.csv")
    spec = models.ModelSpec(context_ms=51.2, nfeatures=(8, 8), dropout_rate=0.0)
    model = models.new_trained_model(spec, labels=["tone", "click"], rate=RATE, seed=2)
    models.save_trained_model(model, root / "model")
    return root, gt, model


def test_activations_cluster_and_mistakes_commands(project, capsys):
    from songexplorer_core.activations import read_activations
    from songexplorer_cli import main
    from songexplorer_core.cluster import read_cluster

    root, gt, model = project
    npz = root / "outputs" / "activations.npz"
    assert main(["activations", "--groundtruth", str(gt), "--model", str(root / "model"), "--out", str(npz),
                 "--layers", "representation,conv2", "--equalize-ratio", "0", "--max-sounds", "30",
                 "--no-progress"]) == 0
    acts = read_activations(npz)
    assert acts.nsounds == 30 and acts.stored_layers == (1, 3, 4) and acts.settings["model"] == str(root / "model")
    assert "30 sounds" in capsys.readouterr().out

    parquet = root / "outputs" / "cluster" / "cluster.parquet"
    assert main(["cluster", str(npz), "--out", str(parquet), "--epochs", "30", "--no-progress"]) == 0
    frame = read_cluster(parquet)
    assert sorted(frame["layer"].unique()) == [1, 3] and len(frame) == 60
    assert main(["cluster", str(npz), "--out", str(parquet), "--method", "pca", "--ndims", "3", "--layers", "1",
                 "--no-progress"]) == 0
    assert list(read_cluster(parquet)[["x", "y", "z"]].shape) == [30, 3]

    out = root / "outputs" / "mistakes"
    assert main(["mistakes", "--groundtruth", str(gt), "--model", str(root / "model"), "--out-dir", str(out),
                 "--no-progress"]) == 0
    written = read_intervals_csv(out / "round1" / "tc.wav-mistakes.csv")
    assert len(written) == 40 and set(written["kind"]) <= {"correct", "mistaken"}
    expected = find_mistakes(model, gt)
    assert written["kind"].tolist() == expected["kind"].tolist()
    assert "of 40 sound(s) mistaken" in capsys.readouterr().out

    # the same judgement from the activations file, for its 30 sounds
    out2 = root / "outputs" / "mistakes2"
    assert main(["mistakes", "--activations", str(npz), "--out-dir", str(out2)]) == 0
    from_file = read_intervals_csv(out2 / "round1" / "tc.wav-mistakes.csv")
    merged = from_file.merge(written, on=["start", "stop"], suffixes=("", "_all"))
    assert len(merged) == 30 and (merged["kind"] == merged["kind_all"]).all()


def test_command_errors_are_one_line_messages(project, capsys):
    from songexplorer_cli import main

    root, gt, _ = project
    assert main(["activations", "--groundtruth", str(gt), "--model", str(root / "model"), "--out",
                 str(root / "x.npz"), "--kinds", "missed", "--no-progress"]) == 2
    assert "no sounds of kind(s) ['missed']" in capsys.readouterr().err
    assert main(["activations", "--groundtruth", str(gt), "--model", str(root / "model"), "--out",
                 str(root / "x.npz"), "--layers", "9", "--no-progress"]) == 2
    assert "valid indices are 0-4" in capsys.readouterr().err
    assert main(["mistakes", "--out-dir", str(root / "m")]) == 2
    assert "--groundtruth and --model" in capsys.readouterr().err
    assert main(["cluster", str(root / "none.npz"), "--out", str(root / "c.parquet")]) == 2
    assert "no such activations file" in capsys.readouterr().err
    assert not (root / "x.npz").exists()


def test_mistakes_from_activations_need_annotated_sounds(project, tmp_path, capsys):
    from songexplorer_cli import main

    root, gt, model = project
    truth = GroundTruth.from_folder(gt)
    detected = truth.intervals.assign(kind="detected")
    acts = compute_activations(model, detected, truth.recordings, layers=[])
    write_activations(acts, tmp_path / "a.npz")
    # the command refuses, naming the file, and writes nothing
    assert main(["mistakes", "--activations", str(tmp_path / "a.npz"), "--out-dir", str(tmp_path)]) == 2
    assert "a.npz: holds no sounds of kind(s) ['annotated']" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*-mistakes.csv"))
