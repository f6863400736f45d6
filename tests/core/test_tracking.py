"""MLflow tracking against a temporary store: runs, registry versions, champion alias, pinning."""

import numpy as np
import pandas as pd
import pytest

from songexplorer_core.tracking import (
    CHAMPION_ALIAS, EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, OUTCOME_TAG, REASON_TAG, TrackingConfig, TrackingError,
    champion_version, download_model_folder, experiment_url, flatten_params, keras_signature, log_training_run,
    metric_key, model_versions, pin_champion, run_metric, training_run_name,
)


@pytest.fixture
def config(tmp_path):
    return TrackingConfig.for_project_dir(tmp_path / "mlflow")


def fake_model_dir(tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "model.json").write_text('{"labels": ["pulse", "sine"]}')
    (folder / "model.keras").write_bytes(b"weights")
    return folder


def log(config, tmp_path, name, f1, lr):
    history = pd.DataFrame({"step": [10, 20, 30], "train_loss": [1.0, 0.5, 0.2],
                            "validation_accuracy": [0.5, np.nan, 0.9]})
    return log_training_run(
        config, params={"learning_rate": lr, "spec": {"nfeatures": (64, 64)}}, history=history,
        metrics={"validation_f1_macro": f1, "validation_f1_pulse": f1, "broken": float("nan")},
        model_dir=fake_model_dir(tmp_path, name), run_name=name,
    )


def test_two_trainings_are_two_comparable_runs_and_the_better_one_is_champion(config, tmp_path):
    first = log(config, tmp_path, "a", f1=0.80, lr=0.0002)
    second = log(config, tmp_path, "b", f1=0.95, lr=0.001)
    assert first.experiment_id == second.experiment_id and first.run_id != second.run_id
    assert (first.version, second.version) == ("1", "2")
    assert second.champion_version == "2"
    client = config.client()
    run_a, run_b = client.get_run(first.run_id), client.get_run(second.run_id)
    assert run_a.data.params["learning_rate"] == "0.0002" and run_b.data.params["learning_rate"] == "0.001"
    assert run_a.data.params["spec.nfeatures"] == "64,64"
    assert run_b.data.metrics["1 F1/validation macro"] == pytest.approx(0.95)
    assert run_metric(run_b.data.metrics, "validation_f1_macro") == pytest.approx(0.95)
    assert [m.step for m in client.get_metric_history(first.run_id, "2 loss/train")] == [10, 20, 30]
    assert len(client.get_metric_history(first.run_id, "3 accuracy/validation")) == 2  # NaN skipped
    versions = model_versions(config)
    assert versions["version"].tolist() == ["1", "2"]
    assert str(champion_version(config).version) == "2"
    assert first.run_url.endswith(f"/runs/{first.run_id}?workflowType=machine_learning")


def test_a_worse_new_model_does_not_take_the_alias(config, tmp_path):
    log(config, tmp_path, "a", f1=0.95, lr=0.1)
    worse = log(config, tmp_path, "b", f1=0.50, lr=0.2)
    assert worse.champion_version == "1"


def test_a_pinned_champion_overrides_the_metric_until_unpinned(config, tmp_path):
    log(config, tmp_path, "a", f1=0.70, lr=0.1)
    log(config, tmp_path, "b", f1=0.90, lr=0.2)
    assert pin_champion(config, 1) == "1"
    better = log(config, tmp_path, "c", f1=0.99, lr=0.3)
    assert better.champion_version == "1"
    assert pin_champion(config, None) == "3"
    with pytest.raises(Exception):
        pin_champion(config, 42)


def test_the_champion_model_folder_downloads(config, tmp_path):
    log(config, tmp_path, "a", f1=0.7, lr=0.1)
    folder = download_model_folder(config, champion_version(config).version, tmp_path / "dl")
    assert (folder / "model.json").read_text() == '{"labels": ["pulse", "sine"]}'


def test_no_champion_is_a_clear_error(config):
    with pytest.raises(TrackingError, match="no 'champion' version yet"):
        champion_version(config)


def test_flatten_params():
    assert flatten_params({"a": 1, "b": {"c": [1, 2], "d": None}}) == {"a": "1", "b.c": "1,2", "b.d": "None"}


def test_metric_keys_put_f1_first_in_mlflow_chart_sections():
    # MLflow orders chart sections (the key before its last "/") alphabetically, "Model metrics" last
    assert metric_key("validation_f1_mel-pulse") == "1 F1/validation mel-pulse"
    assert metric_key("dense_f1_macro") == "1 F1/dense macro" and metric_key("validation_f1") == "1 F1/validation overall"
    assert metric_key("train_loss") == "2 loss/train" and metric_key("validation_accuracy") == "3 accuracy/validation"
    assert metric_key("dense_recall_mel-sine") == "5 recall/dense mel-sine"
    assert metric_key("best_checkpoint") == "best_checkpoint" and metric_key("elapsed_s") == "elapsed_s"
    sections = sorted({metric_key(n).rpartition("/")[0] for n in ("dense_precision_a", "validation_recall_a",
                                                                   "train_accuracy", "train_loss", "dense_f1_a")})
    assert sections == ["1 F1", "2 loss", "3 accuracy", "4 precision", "5 recall"]
    # runs logged before the sections are still read
    assert run_metric({"validation_f1_macro": 0.5}, "validation_f1_macro") == 0.5


def test_the_experiment_is_a_model_training_experiment_and_links_open_its_runs(config, tmp_path):
    url = experiment_url(config)
    experiment = config.client().get_experiment_by_name(config.experiment)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND == "custom_model_development"
    assert url == f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}?workflowType=machine_learning"


def test_runs_are_named_after_what_they_are_and_versions_say_their_outcome(config, tmp_path):
    from datetime import datetime

    name = training_run_name(recipe="default", labels=["mel-pulse", "mel-sine"], when=datetime(2026, 12, 3, 12, 40))
    assert name == "default recipe · mel-pulse+mel-sine · 2026-12-03 12:40"
    assert "5 labels" in training_run_name(recipe="tutorial", labels=list("abcde"))
    first = log_training_run(config, params={}, history=None, metrics={"validation_f1_macro": 0.9},
                             model_dir=fake_model_dir(tmp_path, "a"), run_name=name, description="trained on *x*")
    log_training_run(config, params={}, history=None, metrics={"validation_f1_macro": 0.5},
                     model_dir=fake_model_dir(tmp_path, "b"), run_name=name, description="trained on *y*")
    client = config.client()
    assert client.get_run(first.run_id).info.run_name == f"v1 · {name}"
    assert client.get_run(first.run_id).data.tags["mlflow.note.content"] == "trained on *x*"
    one, two = (client.get_model_version(config.registered_model, v) for v in ("1", "2"))
    assert one.tags[OUTCOME_TAG] == "champion" and two.tags[OUTCOME_TAG] == "kept out"
    assert two.tags[REASON_TAG] == ("kept out: its validation_f1_macro 0.500 is below champion version 1's 0.900")
    assert two.description == f"trained on *y*\n\n**Promotion:** {two.tags[REASON_TAG]}"
    assert one.description.startswith("trained on *x*\n\n**Promotion:** champion: version 1 has the best")


def test_the_keras_signature_leaves_batch_and_length_free():
    keras = pytest.importorskip("keras")
    inputs = keras.Input(shape=(None, 1), dtype="float32")
    model = keras.Model(inputs, keras.layers.Conv1D(3, 5, strides=4)(inputs))
    signature = keras_signature(model, np.zeros((1, 64, 1), np.float32))
    assert signature.inputs.inputs[0].shape == (-1, -1, 1) and signature.outputs.inputs[0].shape == (-1, -1, 3)
