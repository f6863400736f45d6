"""The SQLite event log storage of a project's instance (``songexplorer init``): Dagster's, writing
a batch of events in one transaction.

A run over a range of recordings (``songexplorer_dagster.batches``) stores one
``ASSET_MATERIALIZATION_PLANNED`` event per asset and recording when it is created, and one
materialisation per recording at the end of each step: 1,500 events for a run of 250 recordings
over three assets. Dagster 1.13.27's ``SqliteEventLogStorage`` writes every event on its own: a
new SQLAlchemy engine (so every statement is compiled again), a connection and a commit for the
run's database, then the same for the index database, plus a third connection asking whether the
tags table exists. Measured on the 2-core machine, 1,000 events of a range run of 250 recordings
took ~10 s to store, ~10 ms each.

Dagster already hands the events of one output or of one run's plan to the storage together
(``store_event_batch``) when ``DAGSTER_EVENT_BATCH_SIZE`` is set (it is what Dagster's hosted
storage uses); its SQLite storage then still writes them one by one. This storage:

* writes a batch in one transaction per database: the events into the run's database, then their
  copies into the index database with their asset tags and each asset's latest event, the same
  rows the event-by-event path writes (``tests/dagster/test_sqlite_event_log.py`` compares them);
* keeps one engine per database file (with no pooled connection, as Dagster's: nothing is held
  open across a fork), so statements are compiled once per process;
* sets ``DAGSTER_EVENT_BATCH_SIZE`` (:data:`EVENT_BATCH_SIZE`) in the processes that load the
  instance, unless it is set already, since Dagster reads it from the environment.

The databases are Dagster's own files and schema: a project can switch between this storage and
Dagster's in ``dagster_home/dagster.yaml`` at any time.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from dagster import Field, StringSource
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, BATCH_WRITABLE_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

__all__ = ["BatchedSqliteEventLogStorage", "EVENT_BATCH_SIZE"]

#: Events Dagster buffers before handing them to ``store_event_batch`` (a batch also ends with its
#: output or its run's plan): a run of 250 recordings over three assets plans 750 materialisations.
EVENT_BATCH_SIZE = 1000
#: Database files whose engines a process keeps (the index and the runs it writes or reads).
ENGINES_KEPT = 32


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log storage (a database per run and an index database), writing a
    batch of events in one transaction per database (see the module docstring).

    Name it in ``dagster.yaml`` as ``event_log_storage: {module: songexplorer_dagster.sqlite_event_log,
    class: BatchedSqliteEventLogStorage}``. ``config: {base_dir: ...}`` is optional: by default
    the databases are where Dagster's own storage keeps them, ``history/runs`` in the instance's
    folder (``DAGSTER_HOME``, or the temporary folder of ``dagster dev`` run without it), known
    once the instance registers the storage.
    """

    def __init__(self, base_dir: str | None = None, inst_data: ConfigurableClassData | None = None):
        os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", str(EVENT_BATCH_SIZE))
        self._engines: OrderedDict[tuple[int, str], Engine] = OrderedDict()
        self._engines_lock = threading.Lock()
        self._tables_seen: set[str] = set()
        self._deferred_inst_data = inst_data
        if base_dir is not None:
            super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def config_type(cls) -> Mapping[str, Any]:
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None,
                          config_value: Mapping[str, Any]) -> BatchedSqliteEventLogStorage:
        return cls(base_dir=config_value.get("base_dir"), inst_data=inst_data)

    def register_instance(self, instance) -> None:
        if not hasattr(self, "_base_dir"):  # no base_dir configured: the instance's own folder
            super().__init__(os.path.join(instance.root_directory, "history", "runs"),
                             inst_data=self._deferred_inst_data)
        super().register_instance(instance)

    def _engine(self, shard: str) -> Engine:
        # keyed by process too: a forked child makes its own (NullPool holds no connection, so
        # an inherited engine would be harmless, but its statement cache is the parent's)
        key = (os.getpid(), shard)
        with self._engines_lock:
            engine = self._engines.get(key)
            if engine is None:
                engine = create_engine(self.conn_string_for_shard(shard), poolclass=NullPool,
                                       connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
                self._engines[key] = engine
                while len(self._engines) > ENGINES_KEPT:
                    self._engines.popitem(last=False)
            else:
                self._engines.move_to_end(key)
            return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def has_table(self, table_name: str) -> bool:
        # asked on every write of asset tags; a table, once there, stays
        if table_name in self._tables_seen:
            return True
        found = super().has_table(table_name)
        if found:
            self._tables_seen.add(table_name)
        return found

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Store ``events`` (asset events of one run: materialisations, observations, planned
        materialisations and asset-check plans) with one transaction per database; the rows are
        those :meth:`store_event` writes for each in turn."""
        events = list(events)
        if not events:
            return
        if len({event.run_id for event in events}) != 1 or not all(
                event.is_dagster_event and event.dagster_event_type in BATCH_WRITABLE_EVENTS for event in events):
            super().store_event_batch(events)
            return
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), [self._event_to_row(event) for event in events])
        asset_events = [event for event in events if event.dagster_event_type in ASSET_EVENTS]
        if asset_events:
            with self.index_transaction() as conn:
                event_ids = [conn.execute(self.prepare_insert_event(event)).inserted_primary_key[0]
                             for event in asset_events]
                self._store_asset_event_tags(conn, asset_events, event_ids)
                # each asset's row records its latest event, so only the last of each asset counts
                latest: dict[str, tuple[EventLogEntry, int]] = {}
                for event, event_id in zip(asset_events, event_ids, strict=True):
                    latest[event.get_dagster_event().asset_key.to_string()] = (event, event_id)
                for event, event_id in latest.values():
                    self._store_asset_event(conn, event, event_id)
        for event in events:
            if event.dagster_event_type in ASSET_CHECK_EVENTS:
                with self.index_connection() as conn:
                    event_id = conn.execute(self.prepare_insert_event(event)).inserted_primary_key[0]
                self.store_asset_check_event(event, event_id)
