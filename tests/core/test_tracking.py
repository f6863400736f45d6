"""MLflow tracking against a temporary store: runs, registry versions, champion alias, pinning."""

import numpy as np
import pandas as pd
import pytest

from songexplorer_core.tracking import (
    CHAMPION_ALIAS, TrackingConfig, TrackingError, champion_version, download_model_folder,
    flatten_params, log_training_run, model_versions, pin_champion,
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
    assert run_b.data.metrics["validation_f1_macro"] == pytest.approx(0.95)
    assert [m.step for m in client.get_metric_history(first.run_id, "train_loss")] == [10, 20, 30]
    assert len(client.get_metric_history(first.run_id, "validation_accuracy")) == 2  # NaN skipped
    versions = model_versions(config)
    assert versions["version"].tolist() == ["1", "2"]
    assert str(champion_version(config).version) == "2"
    assert first.run_url.endswith(f"/runs/{first.run_id}")


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
