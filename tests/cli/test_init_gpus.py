"""``songexplorer init DIR --gpus N``: the ``gpu`` pool's limit is the number of GPUs, written into
the project's Dagster instance settings (new or existing project) and read back by Dagster."""

from __future__ import annotations

import dagster as dg
import pytest

from songexplorer_cli import main
from songexplorer_core.project import ProjectError, init_project, instance_template, set_gpu_limit


def _pool_limit(dagster_home) -> int:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return instance.get_concurrency_config().pool_config.default_pool_limit


def test_gpus_sets_the_pool_limit_of_a_new_and_of_an_existing_project(tmp_path, capsys):
    root = tmp_path / "lab"
    assert main(["init", str(root)]) == 0
    assert _pool_limit(root / "dagster_home") == 1  # the template: one GPU step at a time
    assert main(["init", str(root), "--gpus", "4"]) == 0
    assert "gpu pool: 4 step(s) at once" in capsys.readouterr().out
    assert _pool_limit(root / "dagster_home") == 4
    text = (root / "dagster_home" / "dagster.yaml").read_text()
    assert text == instance_template().replace("default_limit: 1", "default_limit: 4")  # comments kept

    assert main(["init", str(tmp_path / "other"), "--gpus", "2"]) == 0
    assert _pool_limit(tmp_path / "other" / "dagster_home") == 2


def test_gpus_must_be_a_whole_number_from_one_and_nothing_is_written_otherwise(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["init", str(tmp_path / "p"), "--gpus", "two"])
    assert main(["init", str(tmp_path / "p"), "--gpus", "0"]) != 0
    assert "--gpus must be a whole number of GPUs >= 1" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_an_instance_file_without_the_pool_limit_is_named_with_the_way_out(tmp_path):
    project = init_project(tmp_path / "p")
    (project.dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with pytest.raises(ProjectError, match="dagster instance concurrency set gpu 2"):
        set_gpu_limit(project, 2)
