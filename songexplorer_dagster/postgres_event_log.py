"""The Postgres event log storage of deploy/dagster-postgres.yaml: dagster-postgres's, with the
``gpu`` pool made exact when runs claim it at the same moment.

Dagster 1.13.27 (``SqlEventLogStorage``) has two races that only show on Postgres, where several
run processes claim slots at once:

* **Claiming a slot.** dagster-postgres runs its event log in AUTOCOMMIT, so the
  ``SELECT ... FOR UPDATE SKIP LOCKED`` that finds a free slot gives up its row lock before the
  ``UPDATE`` that takes the slot, and that ``UPDATE`` does not check that the slot is still free:
  two steps claiming within the same few milliseconds both get the one slot of a pool of 1 (two
  GPU steps on one card). Here the ``UPDATE`` takes the slot only if it is still free
  (``step_key IS NULL``), so it is a compare-and-set; the step that loses waits and claims again,
  as it does when every slot is busy.
* **Creating a pool from ``default_limit``.** Two runs whose first GPU step arrives on a fresh
  database both insert the pool's limit row (one fails with ``UniqueViolation``) and can both add
  its slots (a pool of 1 with 2 slots). Here creation takes a transaction-scoped advisory lock per
  pool, upserts the limit and then counts and adds slots, so the second run finds the pool made.

tests/deploy/test_postgres_instance.py starts two runs of a GPU step at the same moment on a fresh
database, several times, and checks by step timestamps that they never overlap at limit 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as db
from dagster._core.storage.event_log.schema import ConcurrencyLimitsTable, ConcurrencySlotsTable
from dagster._core.storage.sqlalchemy_compat import db_select
from dagster._serdes import ConfigurableClassData
from dagster._utils.concurrency import ConcurrencySlotStatus
from dagster_postgres.event_log import PostgresEventLogStorage as DagsterPostgresEventLogStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config
from sqlalchemy.dialects.postgresql import insert as pg_insert

__all__ = ["PostgresEventLogStorage"]


class PostgresEventLogStorage(DagsterPostgresEventLogStorage):
    """dagster-postgres's event log storage whose pool slots are claimed and created atomically.

    Configured exactly as dagster-postgres's (``postgres_db`` or ``postgres_url``); name it in
    ``dagster.yaml`` as ``event_log_storage: {module: songexplorer_dagster.postgres_event_log,
    class: PostgresEventLogStorage, config: ...}`` (deploy/dagster-postgres.yaml does).
    """

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PostgresEventLogStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )

    def _claim_concurrency_slot(self, concurrency_key: str, run_id: str, step_key: str) -> ConcurrencySlotStatus:
        """Take one free slot of ``concurrency_key`` for the step, or report BLOCKED.

        The ``UPDATE`` re-checks ``step_key IS NULL``: under Postgres's READ COMMITTED a second
        ``UPDATE`` of the same row waits for the first and then finds the slot taken (rowcount 0).
        """
        with self.index_connection() as conn:
            free = conn.execute(
                db_select([ConcurrencySlotsTable.c.id])
                .select_from(ConcurrencySlotsTable)
                .where(
                    db.and_(
                        ConcurrencySlotsTable.c.concurrency_key == concurrency_key,
                        ConcurrencySlotsTable.c.step_key.is_(None),
                        ConcurrencySlotsTable.c.deleted.is_(False),
                    )
                )
                .with_for_update(skip_locked=True)
                .limit(1)
            ).fetchone()
            if not free or not free[0]:
                return ConcurrencySlotStatus.BLOCKED
            taken = conn.execute(
                ConcurrencySlotsTable.update()
                .values(run_id=run_id, step_key=step_key)
                .where(
                    db.and_(
                        ConcurrencySlotsTable.c.id == free[0],
                        ConcurrencySlotsTable.c.step_key.is_(None),
                        ConcurrencySlotsTable.c.deleted.is_(False),
                    )
                )
            ).rowcount
            return ConcurrencySlotStatus.CLAIMED if taken else ConcurrencySlotStatus.BLOCKED

    def initialize_concurrency_limit_to_default(self, concurrency_key: str) -> bool:
        """Create or resize ``concurrency_key`` to the instance's ``default_limit``, once even when
        several runs ask at the same moment (a transaction-scoped advisory lock per pool)."""
        if not (self.has_concurrency_limits_table and self.has_instance and self.has_default_pool_limit_col):
            return super().initialize_concurrency_limit_to_default(concurrency_key)
        self._reconcile_concurrency_limits_from_slots()
        default_limit = self._instance.global_op_concurrency_default_limit
        with self.index_transaction() as conn:
            conn.execute(db.select(db.func.pg_advisory_xact_lock(db.func.hashtext(f"dagster pool {concurrency_key}"))))
            if default_limit is None:
                conn.execute(ConcurrencyLimitsTable.delete().where(ConcurrencyLimitsTable.c.concurrency_key == concurrency_key))
                self._allocate_concurrency_slots(conn, concurrency_key, 0)
                return True
            # a limit someone set by hand (`dagster instance concurrency set`) is left as it is
            upsert = pg_insert(ConcurrencyLimitsTable).values(
                concurrency_key=concurrency_key, limit=default_limit, using_default_limit=True
            )
            conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=[ConcurrencyLimitsTable.c.concurrency_key],
                    set_={"limit": default_limit},
                    where=ConcurrencyLimitsTable.c.using_default_limit.is_(True),
                )
            )
            limit = conn.execute(
                db_select([ConcurrencyLimitsTable.c.limit]).where(
                    ConcurrencyLimitsTable.c.concurrency_key == concurrency_key
                )
            ).scalar_one()
            keys_to_assign = self._allocate_concurrency_slots(conn, concurrency_key, limit)
        if keys_to_assign:
            # new slots: steps already waiting in the pool may take them now
            self.assign_pending_steps(keys_to_assign)
        return True
