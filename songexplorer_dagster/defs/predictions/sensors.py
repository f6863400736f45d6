"""A new model re-classifies every recording: ``new_model_sensor``.

When ``trained_model`` is materialised (a training that became champion, or one the gate kept out:
``probabilities`` then reuses the files the unchanged champion made), every recording's
``probabilities``, ``ethograms`` and ``misses`` are stale. This sensor asks for them in runs over
partition-key ranges of up to ``songexplorer_dagster.batches.PARTITIONS_PER_RUN`` recordings (each
a run of ``probabilities`` -> ``ethograms`` -> ``misses`` with the model loaded once), straight
into the run queue. Left to the automation sensor alone, the same request became a backfill that
Dagster's backfill daemon (a fixed 30 s loop) turned into runs ~20 s later: most of what a new
champion cost over 100 recordings (docs/dagster.md, "Many recordings").

Automation does not react to a new model for ``probabilities`` (its condition,
``conditions.eager_except_for_new_models``, is ``eager()`` ignoring ``trained_model``); it still
classifies a new or changed recording by itself. Where both could ask for a recording (a new WAV
whose ``eager()`` was waiting for the first model), neither asks twice: automation does not ask for
a partition that a queued or running run plans, and this sensor leaves out recordings that a run
planned after the model, and waits while a backfill of ``probabilities`` requested after the model
is under way. (Both evaluating in the same instant can ask twice: the work is done twice, the
result is the same.)

Runs hold up to ``PARTITIONS_PER_RUN`` recordings each. Spreading 100 recordings over two runs
(one per run the queue lets go at once) was measured slower, not faster: both runs' ``probabilities``
steps are in the ``gpu`` pool, so the queue held the second run until the first one's
classification ended, and each run paid its own start, TensorFlow import and model load
(docs/dagster.md, "Many recordings").

Asked for: recordings whose ``recordings`` partition is materialised (the WAV passed its check)
and whose latest ``probabilities`` came before the newest ``trained_model``, or never came. The
cursor is the newest ``trained_model`` materialisation handled, and each run's ``run_key`` names
it, so a tick never asks twice.
"""

import dagster as dg
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus
from dagster._core.storage.dagster_run import NOT_FINISHED_STATUSES

from songexplorer_dagster.batches import contiguous_batches, range_tags
from songexplorer_dagster.compute_resources import chained_run_config
from songexplorer_dagster.partitions import recordings_partitions

#: What a new model makes stale in every recording, in one run per batch.
RECLASSIFIED = ["probabilities", "ethograms", "misses"]
MODEL = dg.AssetKey("trained_model")
PROBABILITIES = dg.AssetKey("probabilities")
#: Seconds between ticks (each a couple of event-log queries): every loop of the sensor daemon,
#: which comes round every 5 s in dagster 1.13 (``MIN_INTERVAL_LOOP_TIME``), so a new model waits
#: 0-5 s for its runs rather than 5-10 s.
MINIMUM_INTERVAL_S = 1


def stale_recordings(instance: dg.DagsterInstance, model_storage_id: int) -> list[str]:
    """Recordings checked (``recordings`` materialised) whose latest ``probabilities`` came before
    the model materialisation ``model_storage_id``, or never came."""
    checked = set(instance.get_materialized_partitions(dg.AssetKey("recordings")))
    classified = instance.get_latest_storage_id_by_partition(PROBABILITIES, dg.DagsterEventType.ASSET_MATERIALIZATION)
    return [key for key in instance.get_dynamic_partitions(recordings_partitions.name)
            if key in checked and classified.get(key, -1) < model_storage_id]


def recordings_under_way(instance: dg.DagsterInstance, model_storage_id: int) -> set[str]:
    """Recordings whose ``probabilities`` a queued or running run planned after the model
    materialisation ``model_storage_id`` (so it will classify them with that model)."""
    planned = instance.event_log_storage.get_latest_asset_partition_materialization_attempts_without_materializations(
        PROBABILITIES, after_storage_id=model_storage_id)
    run_ids = sorted({run_id for run_id, _ in planned.values()})
    if not run_ids:
        return set()
    live = {run.run_id for run in instance.get_runs(dg.RunsFilter(run_ids=run_ids, statuses=NOT_FINISHED_STATUSES))}
    return {key for key, (run_id, _) in planned.items() if run_id in live}


def backfill_under_way(instance: dg.DagsterInstance, model_timestamp: float) -> str | None:
    """The id of a backfill of ``probabilities`` requested after the model, if one is under way."""
    for backfill in instance.get_backfills(filters=BulkActionsFilter(statuses=[BulkActionStatus.REQUESTED])):
        if backfill.backfill_timestamp >= model_timestamp and PROBABILITIES in (backfill.asset_selection or ()):
            return backfill.backfill_id
    return None


@dg.sensor(
    target=dg.AssetSelection.assets(*RECLASSIFIED),
    minimum_interval_seconds=MINIMUM_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A new trained_model: re-classify every recording (probabilities, ethograms, misses) "
                "in runs of many recordings each.",
)
def new_model_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """Ask for ``RECLASSIFIED`` over every stale recording once per new ``trained_model`` (see the
    module docstring)."""
    latest = context.instance.fetch_materializations(MODEL, limit=1).records
    if not latest:
        return dg.SkipReason("no trained_model yet")
    model, model_timestamp = latest[0].storage_id, latest[0].timestamp
    if context.cursor and int(context.cursor) >= model:
        return dg.SkipReason(f"trained_model materialisation {context.cursor} already handled")
    backfill = backfill_under_way(context.instance, model_timestamp)
    if backfill:
        return dg.SkipReason(f"backfill {backfill} of probabilities is under way; waiting for it")
    order = context.instance.get_dynamic_partitions(recordings_partitions.name)
    under_way = recordings_under_way(context.instance, model)
    stale = [key for key in stale_recordings(context.instance, model) if key not in under_way]
    requests = [dg.RunRequest(asset_selection=[dg.AssetKey(a) for a in RECLASSIFIED],
                              run_key=f"model@{model}:{batch[0]}..{batch[-1]}", run_config=chained_run_config(),
                              **({"partition_key": batch[0]} if len(batch) == 1 else {"tags": range_tags(batch)}))
                for batch in contiguous_batches(stale, order)]
    context.log.info(f"trained_model materialisation {model}: {len(stale)} recording(s) to re-classify in "
                     f"{len(requests)} run(s)" + (f"; {len(under_way)} already under way" if under_way else ""))
    return dg.SensorResult(run_requests=requests, cursor=str(model))
