"""Service tier: the project against a real PostgreSQL (started by the session fixture) with
deploy/dagster-postgres.yaml as its Dagster instance, and an MLflow server on the same Postgres.

* the instance config migrates (``dagster instance migrate``);
* the demo project's partitions materialise in concurrent runs, each with the multiprocess
  executor, and every run, step and materialisation is in the event log (nothing lost);
* the ``gpu`` pool serialises GPU steps across runs when its limit is 1 and lets two overlap at 2
  (by the steps' STEP_START / STEP_SUCCESS timestamps);
* the project's tracking code registers models on the MLflow server, moves the champion alias,
  and another process downloads the champion through the server's proxied artifacts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster import DagsterEventType, DagsterInstance

from deploy_test_helpers import postgres_dagster_home
from songexplorer_core.demo import make_demo_project
from songexplorer_core.project import find_recordings
from songexplorer_dagster.postgres_event_log import PostgresEventLogStorage as AtomicPoolEventLogStorage

pytestmark = [pytest.mark.service, pytest.mark.slow]

HERE = Path(__file__).resolve().parent


def dagster_env(postgres, db: str, home: Path, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SONGEXPLORER_PROJECT")}
    return {**env, **postgres.env(db), "DAGSTER_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def instance_at(home: Path, env: dict[str, str], monkeypatch) -> DagsterInstance:
    for key in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD"):
        monkeypatch.setenv(key, env[key])
    return DagsterInstance.from_config(str(home))


def run_all(commands: list[list[str]], env: dict[str, str], cwd: Path, timeout_s: float = 600) -> None:
    """Start every command at once, wait for all; fail with the output of any that failed."""
    processes = [subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True) for command in commands]
    failures = []
    for command, process in zip(commands, processes):
        out, _ = process.communicate(timeout=timeout_s)
        if process.returncode != 0:
            failures.append(f"{command} exited {process.returncode}:\n{out[-4000:]}")
    assert not failures, "\n".join(failures)


def step_intervals(instance: DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    """Each step's (STEP_START, STEP_SUCCESS) timestamps in ``run_id``, seconds since the epoch."""
    starts, ends = {}, {}
    for entry in instance.all_logs(run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}):
        (starts if entry.dagster_event.event_type == DagsterEventType.STEP_START else ends)[entry.step_key] = \
            entry.timestamp
    assert set(starts) == set(ends), f"run {run_id}: steps started {sorted(starts)}, succeeded {sorted(ends)}"
    return {key: (starts[key], ends[key]) for key in starts}


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_the_postgres_instance_config_migrates(postgres, tmp_path, monkeypatch):
    db = postgres.createdb("migrate")
    home = postgres_dagster_home(tmp_path / "dagster_home")
    env = dagster_env(postgres, db, home)
    out = subprocess.run([sys.executable, "-m", "dagster", "instance", "migrate"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    with instance_at(home, env, monkeypatch) as instance:
        names = {type(storage).__name__ for storage in
                 (instance.run_storage, instance.event_log_storage, instance.schedule_storage)}
        assert names == {"PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage"}
        # the project's event log storage, whose pool slots are claimed atomically
        assert isinstance(instance.event_log_storage, AtomicPoolEventLogStorage)
        assert instance.get_runs() == []
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres.url(db))
    with engine.connect() as connection:
        tables = set(sqlalchemy.inspect(connection).get_table_names())
        revision = connection.execute(sqlalchemy.text("select version_num from alembic_version")).scalar()
    engine.dispose()
    assert {"runs", "event_logs", "jobs", "concurrency_limits", "concurrency_slots"} <= tables
    assert revision  # migrated to Dagster's current schema revision


def test_demo_partitions_materialise_concurrently_nothing_lost(postgres, tmp_path, monkeypatch):
    db = postgres.createdb("demo")
    home = postgres_dagster_home(tmp_path / "dagster_home")
    project = make_demo_project(tmp_path / "project")
    keys = sorted(find_recordings(project.groundtruth))
    assert len(keys) == 3
    env = dagster_env(postgres, db, home, SONGEXPLORER_PROJECT=str(project.root))
    with instance_at(home, env, monkeypatch) as instance:
        instance.add_dynamic_partitions("recordings", keys)
    started = time.monotonic()
    run_all([[sys.executable, "-m", "dagster", "asset", "materialize", "-m", "songexplorer_dagster.definitions",
              "--select", "recordings,detections", "--partition", key] for key in keys], env, tmp_path)
    wall_s = time.monotonic() - started

    with instance_at(home, env, monkeypatch) as instance:
        records = instance.get_run_records()
        assert len(records) == len(keys)
        assert {record.dagster_run.status for record in records} == {dg.DagsterRunStatus.SUCCESS}
        assert sorted(record.dagster_run.tags["dagster/partition"] for record in records) == keys
        # every step ran in its own process: the multiprocess executor
        for record in records:
            messages = [entry.message for entry in instance.all_logs(record.dagster_run.run_id,
                                                                     of_type=DagsterEventType.ENGINE_EVENT)]
            assert any("multiprocess executor" in message for message in messages), messages
        steps = {record.dagster_run.run_id: step_intervals(instance, record.dagster_run.run_id) for record in records}
        assert all(set(run_steps) == {"recordings", "detections"} for run_steps in steps.values()), steps
        # the runs were under way at the same time (they wrote to Postgres concurrently)
        spans = [(record.start_time, record.end_time) for record in records]
        assert any(overlap(a, b) for i, a in enumerate(spans) for b in spans[i + 1:]), spans
        for asset in ("recordings", "detections"):
            materialised = instance.fetch_materializations(dg.AssetKey(asset), limit=100).records
            assert sorted(record.partition_key for record in materialised) == keys, asset
    for key in keys:
        assert project.detections_path(key).exists()
    print(f"service tier: {len(records)} concurrent runs, {sum(len(s) for s in steps.values())} steps, "
          f"{wall_s:.0f} s wall")


@pytest.mark.parametrize("limit", [1, 2])
def test_the_gpu_pool_limits_gpu_steps_across_runs(postgres, tmp_path, monkeypatch, limit):
    """Two runs started at the same moment on a fresh database: both create the pool from the
    config's default_limit and claim its slots together (Dagster 1.13.27's own storage lets both
    in at limit 1 when their claims coincide; songexplorer_dagster/postgres_event_log.py)."""
    db = postgres.createdb(f"gpu_pool_{limit}")
    home = postgres_dagster_home(tmp_path / "dagster_home", gpu_limit=limit)
    markers = tmp_path / "markers"
    markers.mkdir()
    # limit 1: the first step waits 20 s for a peer that cannot come in (the runs start together,
    # so the second's claim falls inside it); limit 2: they meet
    env = dagster_env(postgres, db, home, GPU_POOL_TEST_MARKERS=str(markers),
                      GPU_POOL_TEST_WAIT_S="20" if limit == 1 else "120")
    command = [sys.executable, "-m", "dagster", "job", "execute", "-f", str(HERE / "gpu_pool_job.py"),
               "-j", "gpu_pool_job"]
    run_all([command, command], env, tmp_path)

    with instance_at(home, env, monkeypatch) as instance:
        records = instance.get_run_records()
        assert len(records) == 2
        assert {record.dagster_run.status for record in records} == {dg.DagsterRunStatus.SUCCESS}
        first, second = (step_intervals(instance, record.dagster_run.run_id)["gpu_step"] for record in records)
        assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == limit
    if limit == 1:
        assert not overlap(first, second), (first, second)
    else:
        assert overlap(first, second), (first, second)


def claim_together(storage, action, n: int) -> list:
    """``action(storage, i)`` in ``n`` threads released by one barrier: their database calls land
    within a millisecond or so of each other (psycopg2 lets go of the GIL while it waits)."""
    barrier = threading.Barrier(n)

    def go(i):
        barrier.wait()
        return action(storage, i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(go, range(n)))


def test_simultaneous_claims_of_a_pool_of_one_give_one_slot(postgres, tmp_path, monkeypatch):
    """The race itself, many times: 8 steps of 8 runs create the pool and claim its one slot at the
    same instant. Exactly one gets it every round; the pool is created once, with one slot."""
    from dagster._utils.concurrency import ConcurrencySlotStatus

    db = postgres.createdb("pool_race")
    home = postgres_dagster_home(tmp_path / "dagster_home", gpu_limit=1)
    env = dagster_env(postgres, db, home)
    with instance_at(home, env, monkeypatch) as instance:
        storage = instance.event_log_storage
        created = claim_together(storage, lambda s, i: s.initialize_concurrency_limit_to_default("gpu"), 8)
        assert all(created)
        assert storage.get_concurrency_info("gpu").slot_count == 1
        winners = []
        for round_ in range(20):
            statuses = claim_together(
                storage, lambda s, i: s._claim_concurrency_slot("gpu", f"run-{round_}-{i}", "gpu_step"), 8)
            claimed = [i for i, status in enumerate(statuses) if status == ConcurrencySlotStatus.CLAIMED]
            winners.append(len(claimed))
            for i in claimed:
                storage.free_concurrency_slot_for_step(f"run-{round_}-{i}", "gpu_step")
        assert winners == [1] * 20, winners


DOWNLOAD = """
import sys
from pathlib import Path
from songexplorer_core.tracking import TrackingConfig, champion_version, download_model_folder
config = TrackingConfig(tracking_uri=sys.argv[1], registered_model=sys.argv[3])
champion = champion_version(config)
folder = download_model_folder(config, champion.version, sys.argv[2])
print(champion.version, (Path(folder) / "weights.txt").read_text())
"""


def test_mlflow_server_on_postgres_registers_promotes_and_serves_the_champion(mlflow_server, tmp_path):
    from songexplorer_core.tracking import TrackingConfig, log_training_run, pin_champion

    config = TrackingConfig(tracking_uri=mlflow_server.url, experiment="deploy-test", registered_model="deploy-test")
    tracked = []
    for name, f1 in (("first", 0.6), ("second", 0.9)):
        model_dir = tmp_path / name
        model_dir.mkdir()
        (model_dir / "weights.txt").write_text(f"weights of the {name} model")
        tracked.append(log_training_run(config, params={"name": name}, history=pd.DataFrame(),
                                        metrics={"validation_f1_macro": f1}, model_dir=model_dir, run_name=name))
    assert [t.version for t in tracked] == ["1", "2"]
    assert tracked[-1].champion_version == "2"  # the better F1 carries the champion alias
    # the artifacts went through the server (proxied) into its own folder, not next to the client
    run = config.client().get_run(tracked[0].run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
    assert any(path.name == "weights.txt" for path in mlflow_server.artifacts.rglob("*"))
    assert pin_champion(config, "1") == "1"  # a person's choice moves the alias

    # another process, knowing only the tracking URI, downloads the champion
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    out = subprocess.run([sys.executable, "-c", DOWNLOAD, mlflow_server.url, str(tmp_path / "download"),
                          config.registered_model],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    # keep only the last line (MLflow may print warnings before it)
    assert out.stdout.strip().splitlines()[-1] == "1 weights of the first model", out.stdout
