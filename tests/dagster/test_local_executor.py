"""The local executor (songexplorer_dagster.compute_resources.LOCAL_EXECUTOR): a process per step
forked from a server by default; a chain of steps in the run's own process when the run's config
asks (what new_model_sensor's batched runs do)."""

import json
import os
from pathlib import Path

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableJob

from songexplorer_dagster.compute_resources import LOCAL_EXECUTOR, chained_run_config


@dg.op(config_schema={"out": str})
def first(context) -> int:
    Path(context.op_config["out"], "first").write_text(json.dumps(os.getpid()))
    return 1


@dg.op(config_schema={"out": str})
def second(context, value: int) -> int:
    Path(context.op_config["out"], "second").write_text(json.dumps(os.getpid()))
    return value + 1


@dg.job(executor_def=LOCAL_EXECUTOR)
def chain():
    second(first())


def _pids(instance, out: Path, run_config: dict) -> tuple[int, int]:
    ops = {"ops": {"first": {"config": {"out": str(out)}}, "second": {"config": {"out": str(out)}}}}
    with dg.execute_job(ReconstructableJob.for_file(__file__, "chain"), instance, run_config={**ops, **run_config}) as result:
        assert result.success
    return json.loads((out / "first").read_text()), json.loads((out / "second").read_text())


def test_steps_get_processes_of_their_own_unless_the_run_asks_for_one_chain(instance, tmp_path, monkeypatch):
    monkeypatch.delenv("SONGEXPLORER_EXECUTOR", raising=False)
    assert chained_run_config() == {"execution": {"config": {"in_process": True}}}
    separate = _pids(instance, tmp_path, {})
    assert os.getpid() not in separate and separate[0] != separate[1]
    chained = _pids(instance, tmp_path, chained_run_config())
    assert chained == (os.getpid(), os.getpid())


def test_on_kubernetes_a_chain_keeps_a_pod_per_step(monkeypatch):
    monkeypatch.setenv("SONGEXPLORER_EXECUTOR", "k8s")
    assert chained_run_config() == {}
