"""Accuracy: confusion matrices, precision/recall/F1, best checkpoint and thresholds, on
validation results whose right answers are worked out by hand."""

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from songexplorer_core.accuracy import (
    AccuracyError,
    AccuracyWarning,
    accuracy_report,
    balanced_precision_recall,
    confusion_matrix,
    evaluate_checkpoint,
    precision_recall_curve,
    threshold_at_ratio,
    write_accuracy_outputs,
)
from songexplorer_core.ethogram import read_thresholds_csv

LABELS = ["a", "b", "c"]


def logits_for(predicted, nlabels=3, margin=5.0):
    """Logits whose argmax is ``predicted`` ([n, P] ints)."""
    predicted = np.asarray(predicted)
    logits = np.zeros(predicted.shape + (nlabels,), dtype=np.float32)
    np.put_along_axis(logits, predicted[..., None], margin, axis=-1)
    return logits


def save_validation(path, logits, groundtruth, labels=LABELS):
    n = len(logits)
    np.savez(path, logits=np.asarray(logits, np.float32), groundtruth=np.asarray(groundtruth),
             labels=np.array(labels), wav=np.array(["r.wav"] * n), start=np.zeros(n, int),
             stop=np.zeros(n, int), kind=np.array(["annotated"] * n), label=np.array(["a"] * n),
             offset_tic=np.zeros(n, int))
    return path


# hand-worked example: 3 sounds x 2 taps, one masked tap
GT = [[0, 0], [1, -1], [2, 1]]
PRED = [[0, 1], [1, 0], [2, 2]]
# matrix rows (truth) a: [1,1,0], b: [0,1,1], c: [0,0,1]; recall .5, .5, 1
# row-normalised columns sum to .5, 1, 1.5 -> balanced precision 1, .5, 2/3
EXPECTED_MATRIX = [[1, 1, 0], [0, 1, 1], [0, 0, 1]]
EXPECTED_P = [1.0, 0.5, 2 / 3]
EXPECTED_R = [0.5, 0.5, 1.0]


def test_confusion_matrix_counts_unmasked_taps_truth_by_classification():
    matrix = confusion_matrix(np.array(GT), logits_for(PRED))
    assert matrix.tolist() == EXPECTED_MATRIX


@pytest.mark.filterwarnings("ignore::songexplorer_core.accuracy.AccuracyWarning")  # tied scores
def test_precision_recall_f1_by_hand(tmp_path):
    result = evaluate_checkpoint(save_validation(tmp_path / "validation.ckpt-7.npz", logits_for(PRED), GT))
    assert result.checkpoint == 7 and result.loss == "exclusive"
    np.testing.assert_allclose(result.precision, EXPECTED_P)
    np.testing.assert_allclose(result.recall, EXPECTED_R)
    np.testing.assert_allclose(result.f1, [2 / 3, 0.5, 0.8])
    p, r = np.mean(EXPECTED_P), np.mean(EXPECTED_R)
    assert result.overall_precision == pytest.approx(p)
    assert result.overall_recall == pytest.approx(r)
    assert result.overall_f1 == pytest.approx(2 * p * r / (p + r))
    assert result.ntrue.tolist() == [2, 2, 1]


def test_balanced_precision_ignores_how_many_taps_other_labels_have():
    # label b is confused with a at the same *rate* in both; a has 10x more taps in the second
    few = np.array([[8, 2], [2, 8]])
    many = np.array([[80, 20], [2, 8]])
    np.testing.assert_allclose(balanced_precision_recall(few)[0], balanced_precision_recall(many)[0])


@pytest.mark.filterwarnings("ignore::songexplorer_core.accuracy.AccuracyWarning")  # tied scores
def test_overlapped_matrices_and_statistics(tmp_path):
    # label 0: truth present/absent/unknown; classified present when logit > 0 (sigmoid > 0.5)
    gt = np.array([[[1, 0], [1, 0], [0, 1], [0, 2]]], dtype=np.int8)
    logits = np.array([[[2.0, -1], [-2.0, 1], [3.0, 1], [-1.0, 5]]], dtype=np.float32)
    matrix = confusion_matrix(gt, logits, loss="overlapped")
    # label 0: TP 1 (tap0), FN 1 (tap1), FP 1 (tap2), TN 1 (tap3)
    # label 1: TP 1 (tap2), FN 0, FP 1 (tap1), TN 1 (tap0); tap3 unknown -> not counted
    assert matrix.tolist() == [[[1, 1], [1, 1]], [[1, 0], [1, 1]]]
    result = evaluate_checkpoint(save_validation(tmp_path / "validation.ckpt-1.npz", logits, gt, ["x", "y"]))
    assert result.loss == "overlapped"
    # label y: recall 1; rows normalised [1, 0], [.5, .5] -> precision 1/1.5
    np.testing.assert_allclose(result.recall, [0.5, 1.0])
    np.testing.assert_allclose(result.precision, [0.5, 1 / 1.5])


@pytest.mark.filterwarnings("ignore::songexplorer_core.accuracy.AccuracyWarning")  # tied scores
def test_best_f1_checkpoint_is_reported_when_asked_for(tmp_path):
    perfect = logits_for([[0, 0], [1, 1], [2, 2]])
    worse = logits_for([[0, 1], [1, 1], [2, 0]])
    gt = [[0, 0], [1, 1], [2, 2]]
    save_validation(tmp_path / "validation.ckpt-10.npz", worse, gt)
    save_validation(tmp_path / "validation.ckpt-20.npz", perfect, gt)
    save_validation(tmp_path / "validation.ckpt-30.npz", perfect, gt)  # tie: without a history the earlier wins
    save_validation(tmp_path / "validation.ckpt-40.npz", worse, gt)
    assert accuracy_report(tmp_path).best.checkpoint == 40  # by default the last, as SongExplorer's tutorial
    report = accuracy_report(tmp_path, choose="best-f1")
    assert [c.checkpoint for c in report.checkpoints] == [10, 20, 30, 40]
    assert report.best.checkpoint == 20
    assert report.label_table()["recall"].tolist() == [1.0, 1.0, 1.0]  # the best's, not ckpt 40's
    table = report.checkpoint_table()
    assert table.loc[table["best"], "checkpoint"].tolist() == [20]
    # with the training's history, a tie goes to the lower validation loss
    pd.DataFrame({"step": [10, 20, 30, 40], "train_loss": 0.5, "train_accuracy": 0.9,
                  "validation_loss": [0.9, 0.40, 0.15, 0.8], "validation_accuracy": 1.0,
                  "elapsed_s": 1.0}).to_csv(tmp_path / "history.csv", index=False)
    assert accuracy_report(tmp_path, choose="best-f1").best.checkpoint == 30
    # ... but never beats a higher F1
    pd.DataFrame({"step": [10, 20, 30, 40], "validation_loss": [0.01, 0.4, 0.3, 0.01]}).to_csv(
        tmp_path / "history.csv", index=False)
    assert accuracy_report(tmp_path, choose="best-f1").best.checkpoint == 30
    with pytest.raises(AccuracyError, match="choose must be"):
        accuracy_report(tmp_path, choose="best")


def test_threshold_at_known_ratio_on_uniform_scores():
    # true and false probabilities both uniform: precision stays 1/2, recall = 1 - t,
    # so P/R = 1 at t = 1/2 and P/R = 2 at t = 3/4
    grid = (np.arange(2000) + 0.5) / 2000
    curve = precision_recall_curve(grid, grid, label="x")
    assert threshold_at_ratio(curve, 1.0) == pytest.approx(0.5, abs=2e-3)
    assert threshold_at_ratio(curve, 2.0) == pytest.approx(0.75, abs=2e-3)
    # three false taps per true one: precision 1/4, P/R = 1/4 / (1 - t) = 1/2 at t = 1/2
    curve = precision_recall_curve(grid, np.repeat(grid, 3), label="x")
    assert threshold_at_ratio(curve, 0.5) == pytest.approx(0.5, abs=2e-3)


def test_threshold_for_separable_scores_falls_between_the_classes():
    true = np.linspace(0.7, 0.99, 50)
    false = np.linspace(0.01, 0.3, 50)
    # precision = recall = 1 for every threshold in the gap [0.3, 0.7): its middle
    assert threshold_at_ratio(precision_recall_curve(true, false), 1.0) == pytest.approx(0.5)
    # P/R = 2 needs recall 1/2: between the 25th and 26th of the 50 true scores
    assert threshold_at_ratio(precision_recall_curve(true, false), 2.0) == pytest.approx(true[24], abs=0.01)


def test_exact_thresholds_use_softmax_probabilities_and_ignore_masked_taps(tmp_path):
    # two labels, softmax probability of 'a' = p exactly (logits log p, log 1-p)
    grid = (np.arange(1000) + 0.5) / 1000
    p = np.concatenate([grid, grid, np.full(500, 0.99)])
    gt = np.concatenate([np.zeros(1000), np.ones(1000), -np.ones(500)]).astype(int)  # last 500 masked
    logits = np.stack([np.log(p), np.log1p(-p)], axis=-1)[:, None, :]
    path = save_validation(tmp_path / "validation.ckpt-3.npz", logits, gt[:, None], ["a", "b"])
    result = evaluate_checkpoint(path, ratios=(1.0, 2.0), threshold_method="exact")
    # on softmax probabilities, precision = 1/2 and recall = 1 - t: t = 0.5 at P/R 1.
    assert result.thresholds[1.0]["a"] == pytest.approx(0.5, abs=3e-3)
    assert result.thresholds[2.0]["a"] == pytest.approx(0.75, abs=3e-3)
    assert result.thresholds[1.0]["b"] == pytest.approx(0.5, abs=3e-3)
    # SongExplorer's (the default) thresholds the logistic of the logit, log p -> p/(1+p), so
    # P/R = 1 at p = 1/2 gives 1/3 (on its 20-point grid); masked taps are still left out
    songexplorer = evaluate_checkpoint(path, ratios=(1.0,))
    assert songexplorer.thresholds[1.0]["a"] == pytest.approx(1 / 3, abs=0.015)


def test_label_without_validation_taps_warns_and_gets_nan(tmp_path):
    gt = [[0, 0], [1, 1], [1, 0]]
    path = save_validation(tmp_path / "validation.ckpt-5.npz", logits_for([[0, 0], [1, 1], [1, 2]]), gt)
    with pytest.warns(AccuracyWarning, match=r"no validation taps of \['c'\]"):
        result = evaluate_checkpoint(path)
    assert math.isnan(result.recall[2]) and math.isnan(result.precision[2])
    assert math.isnan(result.thresholds[1.0]["c"])
    assert not math.isnan(result.thresholds[1.0]["a"])
    assert not math.isnan(result.overall_f1)  # NaN labels are skipped in the means


def test_bad_validation_file_is_named(tmp_path):
    path = tmp_path / "validation.ckpt-1.npz"
    np.savez(path, logits=np.zeros((2, 2, 3), np.float32), groundtruth=np.full((2, 2), 5), labels=np.array(LABELS))
    with pytest.raises(AccuracyError, match=r"validation.ckpt-1.npz: groundtruth holds \[5\]"):
        evaluate_checkpoint(path)
    with pytest.raises(AccuracyError, match="no validation.ckpt"):
        accuracy_report(tmp_path / "nothing-here")


@pytest.mark.filterwarnings("ignore::songexplorer_core.accuracy.AccuracyWarning")  # tied scores
def test_songexplorer_logits_file_with_labels_txt(tmp_path):
    (tmp_path / "labels.txt").write_text("a\nb\nc")
    np.savez(tmp_path / "logits.validation.ckpt-300.npz", logits=logits_for(PRED).astype(np.float64),
             groundtruth=np.array(GT, dtype=np.float64))
    report = accuracy_report(tmp_path)
    assert report.best.checkpoint == 300 and report.labels == ("a", "b", "c")
    assert report.best.confusion.tolist() == EXPECTED_MATRIX


def test_write_outputs_thresholds_tables_and_plots(tmp_path):
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 3, size=(60, 2))
    logits = logits_for(gt, margin=1.0) + rng.normal(0, 1, size=(60, 2, 3)).astype(np.float32)
    for step in (10, 20):
        save_validation(tmp_path / f"validation.ckpt-{step}.npz", logits, gt)
    pd.DataFrame({"step": [1, 2, 3], "loss": [1.0, 0.5, 0.3], "accuracy": [0.3, 0.6, 0.8]}).to_csv(
        tmp_path / "history.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every label has taps: nothing to warn about
        report = accuracy_report(tmp_path, ratios=(1.0, 2.0))
    written = {p.name for p in write_accuracy_outputs(report, tmp_path / "out")}
    for name in ("thresholds.ckpt-10.csv", "thresholds-1.0pr.ckpt-20.csv", "thresholds-2.0pr.ckpt-20.csv",
                 "accuracy.csv", "accuracy-labels.csv", "accuracy.json", "confusion-matrix.ckpt-10.png",
                 "precision-recall.ckpt-20.png", "confusion-matrix.png", "train-validation-loss.png"):
        assert name in written
        assert (tmp_path / "out" / name).stat().st_size > 0
    best = report.best.checkpoint
    thresholds = read_thresholds_csv(tmp_path / "out" / f"thresholds.ckpt-{best}.csv")
    assert list(thresholds) == LABELS
    assert thresholds == pytest.approx(report.best.thresholds[1.0])
    higher = read_thresholds_csv(tmp_path / "out" / f"thresholds-2.0pr.ckpt-{best}.csv")
    assert all(higher[x] >= thresholds[x] for x in LABELS)  # favouring precision raises thresholds
    summary = json.loads((tmp_path / "out" / "accuracy.json").read_text())
    assert summary["best_checkpoint"] == best and set(summary["thresholds"]) == {"1.0", "2.0"}
    assert (tmp_path / "out" / "confusion-matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temp files left


def test_unreachable_ratio_warns_and_takes_the_closest_threshold():
    # the top score is shared by one true and two false taps: P/R is 1/2 at t < 0.5 (P 2/4, R 1)
    # and 2/3 just above 0.5 (P 1/3, R 1/2); 1.0 is never reached
    curve = precision_recall_curve(np.array([0.9, 0.5]), np.array([0.9, 0.9]), label="x")
    with pytest.warns(AccuracyWarning, match="never reaches 1.0"):
        threshold = threshold_at_ratio(curve, 1.0)
    assert threshold == pytest.approx(0.5)


def test_command_line_on_a_folder_of_training_runs(tmp_path, capsys):
    from songexplorer_cli import main

    rng = np.random.default_rng(1)
    gt = rng.integers(0, 3, size=(40, 2))
    for model, noise in (("train_1r", 0.5), ("train_2r", 2.0)):
        (tmp_path / model).mkdir()
        for step in (30, 60):
            logits = logits_for(gt, margin=2.0) + rng.normal(0, noise, size=(40, 2, 3)).astype(np.float32)
            save_validation(tmp_path / model / f"validation.ckpt-{step}.npz", logits, gt)
    assert main(["accuracy", str(tmp_path), "--error-ratio", "1,2", "--plots", "best", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "train_1r: 2 checkpoint(s); kept (last) ckpt-60" in out and "train_2r" in out
    for model in ("train_1r", "train_2r"):
        summary = json.loads((tmp_path / model / "accuracy.json").read_text())
        best = summary["best_checkpoint"]
        assert (tmp_path / model / f"thresholds-2.0pr.ckpt-{best}.csv").exists()
        assert (tmp_path / model / "confusion-matrix.png").exists()
        assert not (tmp_path / model / f"confusion-matrix.ckpt-{best}.png").exists()  # --plots best
    assert main(["accuracy", str(tmp_path / "train_1r"), "--choose", "best-f1", "--threshold-method", "exact",
                 "--plots", "none", "--no-progress"]) == 0
    assert "kept (best-f1) ckpt-" in capsys.readouterr().out
    assert main(["accuracy", str(tmp_path / "train_1r" / "nothing")]) == 2
    assert "no validation.ckpt" in capsys.readouterr().err


def test_average_precision_of_perfect_and_of_chance_scores():
    perfect = precision_recall_curve(np.array([0.8, 0.9]), np.array([0.1, 0.2, 0.3]))
    assert perfect.average_precision == pytest.approx(1.0)
    grid = (np.arange(1000) + 0.5) / 1000
    assert precision_recall_curve(grid, grid).average_precision == pytest.approx(0.5, abs=0.01)


def _songexplorer_reference(true, false, ratio, n=20):
    """SongExplorer's src/lib.py calculate_precision_recall_specificity, one label, as written there."""
    from scipy import interpolate

    grid = np.linspace(min(true), max(true), n)
    probabilities = np.exp(grid) / (np.exp(grid) + 1)
    precisions, recalls = np.full(n, np.nan), np.full(n, np.nan)
    for i, g in enumerate(grid):
        tp = np.sum(true >= g)
        fp = np.sum(false >= g)
        precisions[i] = tp / (tp + fp)
        recalls[i] = tp / (tp + (len(true) - tp))
    return float(interpolate.interp1d(precisions / recalls, probabilities, fill_value="extrapolate")(ratio))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ratio", [0.5, 1.0, 2.0])
def test_songexplorer_thresholds_equal_songexplorers_own_computation(seed, ratio):
    from songexplorer_core.accuracy import songexplorer_threshold

    rng = np.random.default_rng(seed)
    true = rng.normal(2.0, 1.5, size=80)
    false = rng.normal(-1.0, 1.5, size=200)
    assert songexplorer_threshold(true, false, ratio) == pytest.approx(_songexplorer_reference(true, false, ratio))


def test_songexplorer_threshold_known_answers():
    from songexplorer_core.accuracy import songexplorer_threshold

    # nothing false: precision 1 everywhere, P/R = 1 at the lowest true logit (0 -> logistic 0.5)
    assert songexplorer_threshold(np.linspace(0, 1, 11), np.array([]), 1.0) == pytest.approx(0.5)
    assert songexplorer_threshold(np.array([3.0]), np.array([0.0]), 1.0) == pytest.approx(1 / (1 + math.exp(-3)))
    with pytest.warns(AccuracyWarning, match="no true validation taps"):
        assert math.isnan(songexplorer_threshold(np.array([]), np.array([1.0]), 1.0))


def test_thresholds_are_songexplorers_by_default_and_exact_when_asked(tmp_path):
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 3, size=(60, 2))
    logits = logits_for(gt, margin=2.0) + rng.normal(0, 1, size=(60, 2, 3)).astype(np.float32)
    save_validation(tmp_path / "validation.ckpt-10.npz", logits, gt)
    default = accuracy_report(tmp_path).best.thresholds[1.0]
    exact = accuracy_report(tmp_path, threshold_method="exact").best.thresholds[1.0]
    for index, label in enumerate(LABELS):
        column = logits[..., index]
        expected = _songexplorer_reference(column[gt == index], column[gt != index], 1.0)
        assert default[label] == pytest.approx(expected)
        assert 0.0 < exact[label] < 1.0
    assert default != pytest.approx(exact)  # logistic of logits vs softmax probabilities
    with pytest.raises(AccuracyError, match="threshold_method"):
        accuracy_report(tmp_path, threshold_method="logits")
