"""A new trained_model re-classifies every recording through ``new_model_sensor``: batched runs
over partition-key ranges, straight to the queue; never a recording twice.

Nothing is computed: materialisations are recorded (runless events) as runs would leave them."""

import dagster as dg
from dagster._core.events import AssetMaterializationPlannedData, DagsterEvent, DagsterEventType
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._core.utils import make_new_run_id

from songexplorer_dagster.batches import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from songexplorer_dagster.definitions import defs
from songexplorer_dagster.defs.predictions.sensors import RECLASSIFIED, new_model_sensor
from songexplorer_dagster.partitions import recordings_partitions

KEYS = ["a.wav", "b.wav", "c.wav", "d.wav", "e.wav"]


def record(instance, asset: str, keys=(None,)) -> None:
    for key in keys:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=asset, partition=key))


def tick(instance, cursor=None):
    return new_model_sensor(dg.build_sensor_context(instance=instance, cursor=cursor))


def runs(result) -> list[tuple]:
    """(first, last, assets) of each run a tick asks for."""
    return [(r.tags.get(ASSET_PARTITION_RANGE_START_TAG, r.partition_key),
             r.tags.get(ASSET_PARTITION_RANGE_END_TAG, r.partition_key),
             sorted(k.to_user_string() for k in r.asset_selection)) for r in result.run_requests]


def planned(instance, keys, status=DagsterRunStatus.STARTED) -> str:
    """A run (``status``) that plans ``probabilities`` for ``keys``, as a queued or running run does."""
    run = instance.add_run(DagsterRun(job_name="__ASSET_JOB", run_id=make_new_run_id(), status=status))
    for key in keys:
        instance.report_dagster_event(DagsterEvent(
            event_type_value=DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value, job_name="__ASSET_JOB",
            event_specific_data=AssetMaterializationPlannedData(dg.AssetKey("probabilities"), partition=key)),
            run_id=run.run_id)
    return run.run_id


def test_a_new_model_asks_once_for_every_checked_recording_in_runs_over_ranges(instance):
    instance.add_dynamic_partitions(recordings_partitions.name, KEYS)
    assert isinstance(tick(instance), dg.SkipReason)  # no model yet
    record(instance, "recordings", ["a.wav", "b.wav", "d.wav", "e.wav"])  # c.wav failed its check
    record(instance, "trained_model")
    first = tick(instance)
    assets = sorted(RECLASSIFIED)
    # c.wav ends the range a..b (a range covers every key between its ends)
    assert runs(first) == [("a.wav", "b.wav", assets), ("d.wav", "e.wav", assets)]
    assert len({r.run_key for r in first.run_requests}) == 2
    # probabilities -> ethograms -> misses is a chain: its steps share the run's process locally
    assert all(r.run_config == {"execution": {"config": {"in_process": True}}} for r in first.run_requests)
    again = tick(instance, first.cursor)
    assert isinstance(again, dg.SkipReason) and "already handled" in again.skip_message
    record(instance, "probabilities", ["a.wav", "b.wav", "d.wav", "e.wav"])

    # a second model; b.wav re-classified since (a changed WAV's run) is not asked for again
    record(instance, "trained_model")
    record(instance, "probabilities", ["b.wav"])
    second = tick(instance, first.cursor)
    assert runs(second) == [("a.wav", "a.wav", assets), ("d.wav", "e.wav", assets)]
    assert not {r.run_key for r in second.run_requests} & {r.run_key for r in first.run_requests}


def test_recordings_a_run_already_plans_with_the_new_model_are_left_to_it(instance):
    """Automation got there first (a run planned after the model): those are not asked for;
    a run planned before the model, or one that has finished, does not count."""
    instance.add_dynamic_partitions(recordings_partitions.name, KEYS)
    record(instance, "recordings", KEYS)
    planned(instance, ["a.wav"])  # before the model: it classifies with the old one
    record(instance, "trained_model")
    planned(instance, ["b.wav", "c.wav"])
    planned(instance, ["d.wav"], status=DagsterRunStatus.FAILURE)
    result = tick(instance)
    assert runs(result) == [("a.wav", "a.wav", sorted(RECLASSIFIED)), ("d.wav", "e.wav", sorted(RECLASSIFIED))]


def requested(result, asset: str) -> set:
    return set(result.get_requested_partitions(dg.AssetKey(asset)))


def test_automation_classifies_new_recordings_and_leaves_a_new_model_to_the_sensor(instance):
    selection = dg.AssetSelection.assets("probabilities")

    def evaluate(cursor):
        return dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection,
                                                 cursor=cursor)

    result = evaluate(None)  # the daemon's first tick, before any recording
    instance.add_dynamic_partitions(recordings_partitions.name, KEYS[:2])
    record(instance, "recordings", KEYS[:2])
    result = evaluate(result.cursor)
    assert requested(result, "probabilities") == set()  # no model yet
    record(instance, "trained_model")
    result = evaluate(result.cursor)
    assert requested(result, "probabilities") == set(KEYS[:2])  # new recordings waiting for a model
    record(instance, "probabilities", KEYS[:2])
    record(instance, "trained_model")
    result = evaluate(result.cursor)
    assert requested(result, "probabilities") == set()  # a new model: new_model_sensor's
    instance.add_dynamic_partitions(recordings_partitions.name, ["c.wav"])
    record(instance, "recordings", ["c.wav"])
    result = evaluate(result.cursor)
    assert requested(result, "probabilities") == {"c.wav"}  # a new recording: automation's
