"""The study commands: a 2-fold x-validation run from the command line with two trainings side
by side, logged to MLflow, compared, ensembled and cleaned up; bad input refused with nothing
written."""

from __future__ import annotations

import json

import pytest

from songexplorer_cli import main
from songexplorer_core import synth
from songexplorer_core.annotations import write_intervals_csv

LABELS = ("mel-pulse", "mel-sine", "ambient")


def make_truth(folder, n=2, seconds=30.0, per_label=12):
    for i in range(n):
        song = synth.make_song(seconds, seed=40 + i, wav=f"song{i}.wav",
                               params=synth.SongParams(sine_bout_rate_per_min=10.0))
        synth.write_song(song, folder / song.wav)
        seeds = synth.seed_annotations(song, {label: per_label for label in LABELS}, seed=50 + i, allow_fewer=True)
        write_intervals_csv(seeds, folder / f"{song.wav}-annotated-person1.csv")
    return folder

TRAINING = ["--recipe", "tutorial", "--nsteps", "10", "--validate-period", "10", "--mini-batch", "8",
            "--labels", ",".join(LABELS), "--no-progress"]


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    return make_truth(tmp_path_factory.mktemp("clitruth"), n=2)


def test_bad_studies_are_refused_before_anything_is_written(truth, tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["xvalidate", "--groundtruth", str(truth), "--out", str(out), "--folds", "1000", *TRAINING]) == 2
    assert "at most" in capsys.readouterr().err and not out.exists()
    assert main(["sweep", "--groundtruth", str(truth), "--out", str(out), "--vary", "learnig_rate=0.1",
                 *TRAINING]) == 2
    err = capsys.readouterr().err
    assert "unknown parameter 'learnig_rate'" in err and "learning_rate" in err and not out.exists()


def test_xvalidate_side_by_side_then_compare_ensemble_and_delete_ckpts(truth, tmp_path, capsys):
    from songexplorer_core.tracking import TrackingConfig, child_runs

    out, store = tmp_path / "study", tmp_path / "mlflow"
    assert main(["xvalidate", "--groundtruth", str(truth), "--out", str(out), "--folds", "2", "--workers", "2",
                 "--mlflow", str(store), "--threads", "1", *TRAINING]) == 0
    printed = capsys.readouterr().out
    assert "mel-pulse: F1" in printed and "(n=2)" in printed and "MLflow parent run" in printed
    study = json.loads((out / "study.json").read_text())
    assert [t["name"] for t in study["trials"]] == ["xvalidate_1k", "xvalidate_2k"]
    children = child_runs(TrackingConfig.for_project_dir(store), study["mlflow_parent_run_id"])
    assert sorted(children["tags.mlflow.runName"]) == ["xvalidate_1k", "xvalidate_2k"]

    (out / "compare-f1.png").unlink()
    assert main(["compare", str(out)]) == 0 and (out / "compare-f1.png").exists()

    assert main(["ensemble", str(out), "--out", str(tmp_path / "ensemble")]) == 0
    assert "out-of-fold" in capsys.readouterr().out
    assert (tmp_path / "ensemble" / "model" / "thresholds.ckpt-0.csv").exists()

    assert main(["delete-ckpts", str(out)]) == 0
    assert "freed" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "xvalidate_1k" / "train_1r").glob("ckpt-*")) == ["ckpt-10"]
