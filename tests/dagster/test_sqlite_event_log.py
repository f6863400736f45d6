"""The project's SQLite event log storage (songexplorer_dagster/sqlite_event_log.py): a batch of
events is written in one transaction per database, and what it stores is what Dagster's own
storage stores event by event."""

import sqlite3
from pathlib import Path

import dagster as dg
import pytest

from dagster_test_helpers import project_instance_overrides
from songexplorer_core.project import instance_template
from songexplorer_dagster.sqlite_event_log import BatchedSqliteEventLogStorage

RECORDINGS = dg.StaticPartitionsDefinition([f"rec-{i:02d}.wav" for i in range(12)])


@dg.asset(partitions_def=RECORDINGS, check_specs=[dg.AssetCheckSpec("loud_enough", asset="sounds")])
def sounds(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    for key in context.partition_keys:
        context.add_asset_metadata({"sounds": int(key[4:6]), "log": f"INFO: {key} detected"}, partition_key=key)
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(check_name="loud_enough", passed=True)])


@dg.asset(partitions_def=RECORDINGS, deps=[sounds])
def song(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    for key in context.partition_keys:
        context.add_asset_metadata({"pulses": 2 * int(key[4:6])}, partition_key=key)
    return dg.MaterializeResult()


@dg.asset(partitions_def=RECORDINGS)
def flaky(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    if context.partition_key == "rec-03.wav":
        raise dg.Failure("rec-03.wav: unreadable")
    return dg.MaterializeResult(metadata={"ok": True})


def _range(first: str, last: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def _run_twice(instance: dg.DagsterInstance) -> None:
    assert dg.materialize([sounds, song], instance=instance, tags=_range("rec-00.wav", "rec-11.wav")).success
    assert dg.materialize([sounds, song], instance=instance, tags=_range("rec-02.wav", "rec-05.wav")).success
    assert not dg.materialize([flaky], instance=instance, partition_key="rec-03.wav", raise_on_error=False).success
    assert dg.materialize([flaky], instance=instance, partition_key="rec-04.wav").success


def _index_rows(home: Path) -> dict[str, list]:
    """What the index database holds, without ids and times (which differ between two runs)."""
    with sqlite3.connect(home / "history" / "runs" / "index.db") as db:
        return {
            "events": sorted(db.execute("SELECT dagster_event_type, asset_key, partition, step_key FROM event_logs")),
            # data versions are made from run ids, so only which tags each event has is compared
            "tags": sorted(db.execute("SELECT asset_key, key FROM asset_event_tags")),
            "assets": sorted(db.execute("SELECT asset_key, last_materialization IS NOT NULL FROM asset_keys")),
            "checks": sorted(db.execute("SELECT asset_key, check_name, execution_status FROM asset_check_executions")),
        }


def _latest_partition(instance: dg.DagsterInstance, key: str) -> str | None:
    record = instance.get_latest_materialization_event(dg.AssetKey(key))
    return record.dagster_event.partition if record else None


@pytest.fixture
def stores(tmp_path):
    """The same runs stored by Dagster's SQLite event log and by the project's."""
    outcome = {}
    for name, overrides in (("dagster", None), ("project", "project")):
        home = tmp_path / name
        home.mkdir()
        with dg.instance_for_test(temp_dir=str(home), overrides=project_instance_overrides(home) if overrides
                                  else None) as instance:
            _run_twice(instance)
            outcome[name] = {
                "storage": type(instance.event_log_storage),
                "rows": _index_rows(home),
                "materialized": {key: instance.get_materialized_partitions(dg.AssetKey(key))
                                 for key in ("sounds", "song", "flaky")},
                "latest": {key: _latest_partition(instance, key) for key in ("sounds", "song", "flaky")},
                "metadata": {record.partition_key: record.asset_materialization.metadata["pulses"].value
                             for record in instance.fetch_materializations(dg.AssetKey("song"), limit=100).records},
            }
    return outcome


def test_a_range_run_stores_what_dagsters_storage_stores(stores):
    dagster, project = stores["dagster"], stores["project"]
    assert project["storage"] is BatchedSqliteEventLogStorage
    assert dagster["storage"] is not BatchedSqliteEventLogStorage
    assert project["rows"] == dagster["rows"]
    assert ('["song"]', "dagster/data_version") in project["rows"]["tags"]
    assert ('["sounds"]', "loud_enough", "SUCCEEDED") in project["rows"]["checks"]
    # 12 + 4 materialisations of each asset, each with its own partition and metadata
    kinds = [row[0] for row in project["rows"]["events"]]
    assert kinds.count("ASSET_MATERIALIZATION") == 2 * 16 + 1
    assert kinds.count("ASSET_MATERIALIZATION_PLANNED") == 2 * 16 + 2
    assert project["materialized"] == dagster["materialized"]
    assert project["materialized"]["song"] == {f"rec-{i:02d}.wav" for i in range(12)}
    assert project["materialized"]["flaky"] == {"rec-04.wav"}
    # the latest materialisation is one of the last run's (Dagster yields a range's in no set order)
    for store in (project, dagster):
        assert store["latest"]["song"] in {"rec-02.wav", "rec-03.wav", "rec-04.wav", "rec-05.wav"}
        assert store["latest"]["flaky"] == "rec-04.wav"
    assert project["metadata"] == {f"rec-{i:02d}.wav": 2 * i for i in range(12)}


def test_a_batch_is_written_in_one_transaction_per_database(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home), overrides=project_instance_overrides(home)) as instance:
        storage = instance.event_log_storage
        assert dg.materialize([sounds], instance=instance, partition_key="rec-00.wav").success  # databases made
        opened = []
        original = BatchedSqliteEventLogStorage._connect

        def counting(self, shard):
            opened.append(shard)
            return original(self, shard)

        monkeypatch.setattr(BatchedSqliteEventLogStorage, "_connect", counting)
        result = dg.materialize([sounds, song], instance=instance, tags=_range("rec-00.wav", "rec-11.wav"))
        assert result.success
        run_id = result.run_id
        # the plan (24 materialisations, 1 check) and each step's 12 materialisations: Dagster's
        # storage opens a connection to each database per event (about 50 each way here)
        assert opened.count("index") < 30, opened.count("index")
        assert opened.count(run_id) < 40, opened.count(run_id)
        assert len(storage.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records) == 24


def test_the_project_instance_uses_it_with_its_files_where_dagster_keeps_them(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(instance_template())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.event_log_storage, BatchedSqliteEventLogStorage)
        assert dg.materialize([sounds], instance=instance, partition_key="rec-01.wav").success
    assert (home / "history" / "runs" / "index.db").is_file()


def test_without_a_base_dir_it_keeps_its_files_in_the_instances_folder(tmp_path, monkeypatch):
    """As ``dagster dev`` (or ``dg check defs``) run from a checkout without DAGSTER_HOME: the
    instance lives in a temporary folder the storage learns when the instance registers it."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    folder = tmp_path / "temporary-instance"
    folder.mkdir()
    overrides = {"event_log_storage": {"module": "songexplorer_dagster.sqlite_event_log",
                                       "class": "BatchedSqliteEventLogStorage"}}
    with dg.DagsterInstance.local_temp(str(folder), overrides=overrides) as instance:
        assert isinstance(instance.event_log_storage, BatchedSqliteEventLogStorage)
        assert dg.materialize([sounds], instance=instance, partition_key="rec-01.wav").success
        assert instance.get_materialized_partitions(dg.AssetKey("sounds")) == {"rec-01.wav"}
    assert (folder / "history" / "runs" / "index.db").is_file()
