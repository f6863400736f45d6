"""Studies on tiny generated song: k folds partition the annotations, generalization withholds
whole recordings, sweeps refuse unknown parameters, a 2 x 2 sweep is one MLflow parent with four
children, an ensemble's probabilities are its members' mean, housekeeping keeps best and last."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from songexplorer_core import dataset as D
from songexplorer_core import studies as S
from songexplorer_core import synth
from songexplorer_core.annotations import write_intervals_csv
from songexplorer_core.studies.plan import _annotations, _sets, kept_for_fraction
from songexplorer_core.train import TrainConfig

LABELS = ("mel-pulse", "mel-sine", "ambient")


def make_truth(folder, n=3, seconds=30.0, per_label=12):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        song = synth.make_song(seconds, seed=40 + i, wav=f"song{i}.wav",
                               params=synth.SongParams(sine_bout_rate_per_min=10.0))
        synth.write_song(song, folder / song.wav)
        seeds = synth.seed_annotations(song, {label: per_label for label in LABELS}, seed=50 + i, allow_fewer=True)
        write_intervals_csv(seeds, folder / f"{song.wav}-annotated-person1.csv")
    return folder


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    return make_truth(tmp_path_factory.mktemp("studytruth"))


def base(**changes) -> TrainConfig:
    values = dict(labels_to_use=LABELS, nsteps=10, validate_period=10, mini_batch=8, batch_seed=1, weights_seed=1,
                  validate_percentage=40, steps_per_call=5)
    values.update(changes)
    return TrainConfig(**values)


def validation_keys(truth, config):
    table = _annotations(truth, config)
    sets = _sets(table, config)
    return table, {(w, s, e) for w, s, e, x in zip(table["wav"], table["start"], table["stop"], sets)
                   if x == D.VALIDATION}, sets


def test_k_folds_validate_on_disjoint_sets_holding_every_annotation_once(truth):
    trials = S.xvalidate(truth, base(), 3)
    assert [t.name for t in trials] == ["xvalidate_1k", "xvalidate_2k", "xvalidate_3k"]
    table, _, _ = validation_keys(truth, base())
    folds = [validation_keys(truth, t.config)[1] for t in trials]
    everything = set(zip(table["wav"], table["start"], table["stop"]))
    assert sum(len(f) for f in folds) == len(everything) == len(table)
    assert set().union(*folds) == everything
    for i in range(3):
        for j in range(i + 1, 3):
            assert not folds[i] & folds[j]


def test_negative_k_trains_on_one_fold(truth):
    positive, negative = S.xvalidate(truth, base(), 3), S.xvalidate(truth, base(), -3)
    for p, n in zip(positive, negative):
        table, _, p_sets = validation_keys(truth, p.config)
        _, _, n_sets = validation_keys(truth, n.config)
        assert list(p_sets == D.VALIDATION) == list(n_sets == D.TRAINING)
        assert (n_sets == D.TRAINING).sum() < len(table) / 2


def test_generalize_omit_one_validates_on_exactly_one_whole_recording(truth):
    trials = S.generalize(truth, base(), omit="one")
    assert [t.withheld for t in trials] == [("song0.wav",), ("song1.wav",), ("song2.wav",)]
    for trial in trials:
        table, _, sets = validation_keys(truth, trial.config)
        assert set(table["wav"][sets == D.VALIDATION]) == set(trial.withheld)
        assert set(table["wav"][sets == D.TRAINING]) == {"song0.wav", "song1.wav", "song2.wav"} - set(trial.withheld)
    only = S.generalize(truth, base(), omit="all-but-one")
    assert only[0].withheld == ("song1.wav", "song2.wav")
    groups = S.generalize(truth, base(), groups=2)
    assert [t.withheld for t in groups] == [("song0.wav", "song2.wav"), ("song1.wav",)]


def test_bad_studies_are_refused_naming_the_fix(truth, tmp_path):
    with pytest.raises(S.StudyError, match=r"unknown parameter 'learnig_rate'.*learning_rate.*model.kernel_sizes"):
        S.sweep(base(), {"learnig_rate": [0.1]})
    n = len(_annotations(truth, base()))
    with pytest.raises(S.StudyError, match=rf"only {n} annotation.*at most {n} folds"):
        S.xvalidate(truth, base(), n + 1)
    # one ambient annotation only: some fold validates (or trains) without it
    sparse = make_truth(tmp_path / "sparse", n=1, per_label=12)
    table = pd.read_csv(sparse / "song0.wav-annotated-person1.csv", header=None)
    ambient = table[table[4] == "ambient"]
    pd.concat([table[table[4] != "ambient"], ambient.head(1)]).to_csv(
        sparse / "song0.wav-annotated-person1.csv", header=False, index=False)
    with pytest.raises(S.StudyError, match=r"fold \d of 3: its (training|validation) set has no annotations of "
                                           r"\['ambient'\]\. Use fewer folds"):
        S.xvalidate(sparse, base(), 3)
    with pytest.raises(S.StudyError, match="at least two recordings"):
        S.generalize(sparse, base())
    assert not (tmp_path / "study").exists()


def test_sweep_grid_and_values_from_the_command_line():
    vary = S.parse_vary(["learning_rate=0.001,0.01", "kernel_sizes=5x5,3;3x3,3"])
    assert vary == {"learning_rate": [0.001, 0.01], "kernel_sizes": ["5x5,3", "3x3,3"]}
    trials = S.sweep(base(), vary)
    assert len(trials) == 4
    assert [t.config.learning_rate for t in trials] == [0.001, 0.001, 0.01, 0.01]
    assert trials[1].config.model.kernel_sizes == ((3, 3), 3)
    assert trials[1].varied == {"learning_rate": 0.001, "model.kernel_sizes": "3x3,3"}
    # a composition: a sweep of 2-fold x-validations
    assert len(S.compose(S.sweep(base(), {"learning_rate": [0.001, 0.01]}), lambda c: S.replicates(c, 2))) == 4


def test_learning_curve_nests_training_sets_and_keeps_validation(truth):
    trials = S.learning_curve(truth, base(mini_batch=2), (0.5, 1.0))
    table = _annotations(truth, base())
    half, full = kept_for_fraction(table, 0.5), kept_for_fraction(table, 1.0)
    assert full.all() and 0.3 < half.mean() < 0.7 and (half <= kept_for_fraction(table, 0.8)).all()
    assert [t.fraction for t in trials] == [0.5, 1.0]


@pytest.fixture(scope="module")
def sweep_study(truth, tmp_path_factory):
    from songexplorer_core.tracking import TrackingConfig

    root = tmp_path_factory.mktemp("sweep")
    tracking = TrackingConfig.for_project_dir(root / "mlflow")
    b = base()
    trials = S.sweep(b, {"learning_rate": [0.001, 0.01], "model.dropout_rate": [0.2, 0.5]})
    seen = []
    result = S.run_study(truth, trials, root / "study", kind="sweep", base=b, tracking=tracking, workers=1,
                         progress=seen.append)
    return result, tracking, seen


def test_a_2x2_sweep_is_one_parent_and_four_comparable_children(sweep_study):
    from songexplorer_core.tracking import child_runs, metric_key

    result, tracking, seen = sweep_study
    children = child_runs(tracking, result.parent_run_id)
    assert len(children) == 4
    assert sorted(children["params.learning_rate"]) == ["0.001", "0.001", "0.01", "0.01"]
    assert sorted(children["params.model.dropout_rate"]) == ["0.2", "0.2", "0.5", "0.5"]
    # the keys of every training run (tracking.metric_key: F1 first)
    for name in ("validation_f1_macro", "validation_f1_mel-pulse", "train_loss"):
        assert children[f"metrics.{metric_key(name)}"].notna().all()
    client = tracking.client()
    assert len(client.get_metric_history(children["run_id"].iloc[0], metric_key("train_loss"))) == 10
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert "f1_mean_mel-pulse" not in parent.data.metrics  # four settings: prefixed by each
    assert any(k.endswith("f1_mean_mel-pulse") for k in parent.data.metrics)
    names = {a.path for a in client.list_artifacts(result.parent_run_id)}
    assert {"summary-trials.csv", "summary-labels.csv", "compare-f1.png", "compare-curves.png",
            "compare-confusion.png"} <= names
    child_files = {a.path for a in client.list_artifacts(children["run_id"].iloc[0])}
    assert {"trained_model", "history.csv", "thresholds.ckpt-10.csv", "confusion-matrix.png"} <= child_files
    # nothing registered: a study never moves the champion
    assert client.search_model_versions(f"name='{tracking.registered_model}'") == []
    assert seen and seen[-1].done == seen[-1].total == 4 and {p.trial for p in seen} == {t["name"] for t in result.results}


def test_compare_redraws_the_summary(sweep_study):
    result, _, _ = sweep_study
    for name in ("compare-f1.png", "summary-labels.csv"):
        (result.study_dir / name).unlink()
    summary = S.compare(result.study_dir)
    assert (result.study_dir / "compare-f1.png").stat().st_size > 1000
    assert len(summary.labels) == 4 * 3 and (summary.labels["n"] == 1).all()
    with pytest.raises(S.StudyError, match="not a study folder"):
        S.compare(result.study_dir / "nowhere")


def test_rerunning_a_study_skips_finished_trainings_and_refuses_another_study(sweep_study, truth):
    result, tracking, _ = sweep_study
    trials = S.sweep(base(), {"learning_rate": [0.001, 0.01], "model.dropout_rate": [0.2, 0.5]})
    again = S.run_study(truth, trials, result.study_dir, kind="sweep", base=base(), workers=1)
    assert [r["train_seconds"] for r in again.results] == [r["train_seconds"] for r in result.results]
    with pytest.raises(S.StudyError, match="holds another study"):
        S.run_study(truth, S.replicates(base(), 2), result.study_dir, kind="replicates", base=base(), workers=1)


@pytest.fixture(scope="module")
def replicate_study(truth, tmp_path_factory):
    root = tmp_path_factory.mktemp("replicates")
    b = base(nsteps=20, validate_period=20)
    return S.run_study(truth, S.replicates(b, 3), root / "study", kind="replicates", base=b, workers=1)


def test_an_ensemble_averages_its_members_probabilities(replicate_study, tmp_path):
    from songexplorer_core import classify as C
    from songexplorer_core import models as M

    made = S.make_ensemble([replicate_study.study_dir], tmp_path / "ensemble")
    assert made.validation["method"] == "ensemble" and len(made.members) == 3
    for name in ("model/model.keras", "model/thresholds.ckpt-0.csv", "model/labels.txt", "ensemble.json"):
        assert (made.folder / name).exists()
    ensemble = M.load_trained_model(made.bundle)  # loads like any model folder
    song = synth.make_song(4.0, seed=99, wav="new.wav")
    samples = song.samples
    mine = C.classify_samples(ensemble, samples, rate=song.rate).values
    members = [C.classify_samples(M.load_trained_model(m.checkpoint_dir), samples, rate=song.rate).values
               for m in made.members]
    np.testing.assert_allclose(mine, np.mean(members, axis=0), atol=2e-6)


def test_ensemble_of_mismatched_models_is_refused_and_writes_nothing(replicate_study, truth, tmp_path):
    other = S.run_study(truth, [S.Trial(name="two_labels", config=base(labels_to_use=LABELS[:2]))],
                        tmp_path / "other", kind="sweep", base=base(), workers=1)
    member = replicate_study.results[0]["model_dir"]
    with pytest.raises(S.EnsembleError, match=r"labels .* Ensemble only models trained with the same labels"):
        S.make_ensemble([member, other.results[0]["model_dir"]], tmp_path / "bad")
    with pytest.raises(S.EnsembleError, match="at least two models"):
        S.make_ensemble([member], tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_delete_ckpts_keeps_best_and_last(truth, tmp_path):
    b = base(nsteps=20, validate_period=5)
    S.run_study(truth, [S.Trial(name="long", config=b)], tmp_path / "study", kind="sweep", base=b, workers=1)
    model_dir = tmp_path / "study" / "long" / "train_1r"
    before = sorted(p.name for p in model_dir.glob("ckpt-*"))
    assert len(before) == 5
    dry = S.delete_ckpts(tmp_path / "study", dry_run=True)
    assert sorted(p.name for p in model_dir.glob("ckpt-*")) == before and dry.bytes > 0
    freed = S.delete_ckpts(tmp_path / "study")
    left = sorted(p.name for p in model_dir.glob("ckpt-*"))
    assert "ckpt-20" in left and len(left) <= 2 and freed.bytes == dry.bytes
    assert len(freed.removed) == 5 - len(left)


def test_retention_keeps_the_newest_runs_and_the_latest(tmp_path):
    models = tmp_path / "models"
    for name in ("20250101T000000", "20250102T000000", "20250103T000000", "registry"):
        (models / name).mkdir(parents=True)
        (models / name / "x").write_bytes(b"12345")
    (models / "latest.json").write_text(json.dumps({"run_dir": str(models / "20250101T000000")}))
    freed = S.retain_model_runs(models, 1)
    assert sorted(p.name for p in models.iterdir()) == ["20250101T000000", "20250103T000000", "latest.json",
                                                        "registry"]
    assert freed.bytes == 5


def test_replicates_of_one_training_are_child_runs_with_their_spread(truth, tmp_path):
    from songexplorer_core.tracking import DEFAULT_CHAMPION_METRIC, TrackingConfig, child_runs, run_metric
    from songexplorer_core.training_run import train_and_log

    tracking = TrackingConfig.for_project_dir(tmp_path / "mlflow")
    run = train_and_log(truth, base(nreplicates=2), tmp_path / "run", tracking, champion_metric=DEFAULT_CHAMPION_METRIC)
    children = child_runs(tracking, run.tracked.run_id)
    assert sorted(children["tags.mlflow.runName"]) == ["replicate 1", "replicate 2"]
    assert [r["replicate"] for r in run.replicates] == [1, 2]
    parent = tracking.client().get_run(run.tracked.run_id).data.metrics
    f1s = [r["validation_f1_macro"] for r in run.replicates]
    # the run's keys have chart sections (tracking.metric_key); run_metric reads them by name
    assert run_metric(parent, "validation_f1_macro_std") == pytest.approx(np.std(f1s, ddof=1))
    assert run_metric(parent, "replicates") == 2 and np.isfinite(run_metric(parent, "validation_f1_mel-pulse_std"))


def test_an_ensemble_registers_as_a_version_without_moving_the_champion(replicate_study, tmp_path):
    from songexplorer_core.studies.study import log_ensemble
    from songexplorer_core.tracking import TrackingConfig, model_versions

    tracking = TrackingConfig.for_project_dir(tmp_path / "mlflow")
    made = S.make_ensemble([replicate_study.study_dir], tmp_path / "ensemble")
    tracked = log_ensemble(tracking, made)
    versions = model_versions(tracking)
    assert versions["version"].tolist() == [tracked.version] and versions["aliases"].iloc[0] == ""
