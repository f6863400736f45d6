"""new_recordings_sensor: settling, idempotence, changed and vanished recordings.

Each test drives the sensor tick by tick with ``build_sensor_context``, applying the partitions it
asks for to the instance between ticks as the Dagster daemon does.
"""

import json
import os

import dagster as dg
import numpy as np
import pytest

from dagster_test_helpers import write_synth_song, write_wav
from songexplorer_dagster.defs.recordings.assets import recordings
from songexplorer_dagster.definitions import defs
from songexplorer_dagster.partitions import recordings_partitions
from songexplorer_dagster.defs.recordings.sensors import (
    ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, BAD_FILE_SETTLE_TICKS, WatchState,
    batched_run_requests, new_recordings_sensor, plan_tick,
)


class Ticker:
    """Evaluates the sensor repeatedly, carrying the cursor and applying partition requests."""

    def __init__(self, instance, project_resource):
        self.instance = instance
        self.resources = {"project": project_resource}
        self.cursor = None

    def tick(self) -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources=self.resources, definitions=defs
        )
        result = new_recordings_sensor(context)
        assert isinstance(result, dg.SensorResult)
        for request in result.dynamic_partitions_requests or []:
            assert isinstance(request, dg.AddDynamicPartitionsRequest), "the sensor must never delete partitions"
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        self.cursor = result.cursor
        return result

    def partitions(self) -> list[str]:
        return sorted(self.instance.get_dynamic_partitions(recordings_partitions.name))


def skip_text(result) -> str:
    reason = result.skip_reason
    return reason.skip_message if isinstance(reason, dg.SkipReason) else (reason or "")


@pytest.fixture
def ticker(instance, project_resource):
    return Ticker(instance, project_resource)


def test_a_new_recording_is_registered_once_it_has_settled_then_never_again(project, ticker):
    path = write_synth_song(project.groundtruth, "round1/a.wav", seed=1)
    key = "round1%2Fa.wav"

    first = ticker.tick()
    assert not first.run_requests and not first.dynamic_partitions_requests
    assert "Settling" in skip_text(first) and key in skip_text(first)
    assert ticker.partitions() == []

    second = ticker.tick()
    (request,) = second.run_requests
    assert request.partition_key == key
    assert request.run_key == f"{key}@{path.stat().st_mtime_ns}"
    assert [list(r.partition_keys) for r in second.dynamic_partitions_requests] == [[key]]
    assert ticker.partitions() == [key]

    third = ticker.tick()
    assert not third.run_requests and not third.dynamic_partitions_requests
    assert "No new or changed recordings" in skip_text(third)
    assert not ticker.tick().run_requests


def test_several_recordings_settling_together_share_one_run_over_their_range(project, ticker):
    for index in range(3):
        write_synth_song(project.groundtruth, f"r{index}.wav", seed=index, duration_s=1.0)
    ticker.tick()
    second = ticker.tick()
    (request,) = second.run_requests
    assert request.partition_key is None
    assert request.tags[ASSET_PARTITION_RANGE_START_TAG] == "r0.wav"
    assert request.tags[ASSET_PARTITION_RANGE_END_TAG] == "r2.wav"
    assert request.run_key.startswith("r0.wav..r2.wav@")
    assert ticker.partitions() == ["r0.wav", "r1.wav", "r2.wav"]
    assert not ticker.tick().run_requests


def test_a_recording_its_run_will_refuse_is_not_batched_with_good_ones(project, ticker):
    for index in range(3):
        write_synth_song(project.groundtruth, f"r{index}.wav", seed=index, duration_s=1.0)
    write_wav(project.groundtruth / "r1.wav", np.zeros(100, dtype=np.int16), rate=44100)  # wrong rate
    ticker.tick()
    requests = ticker.tick().run_requests
    assert sorted(r.partition_key for r in requests) == ["r0.wav", "r1.wav", "r2.wav"]  # each its own run
    assert not any(ASSET_PARTITION_RANGE_START_TAG in r.tags for r in requests)


def test_no_partition_is_ever_asked_for_twice(project, ticker, instance):
    """Over ticks with files settling, registered by `songexplorer register` meanwhile, changed,
    and after the cursor is lost, every partition is requested at most once."""
    for index in range(6):
        write_synth_song(project.groundtruth, f"r{index}.wav", seed=index, duration_s=0.5)
    instance.add_dynamic_partitions(recordings_partitions.name, ["r4.wav"])  # registered by hand
    asked = []

    def tick():
        result = ticker.tick()
        for request in result.dynamic_partitions_requests or []:
            asked.extend(request.partition_keys)
        return result

    tick()
    tick()
    write_synth_song(project.groundtruth, "r6.wav", seed=6, duration_s=0.5)
    path = project.groundtruth / "r2.wav"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # changed
    tick()
    tick()
    ticker.cursor = None  # the cursor lost: every file settles again, none is added again
    for _ in range(3):
        tick()
    assert sorted(asked) == sorted(set(asked)) == [f"r{i}.wav" for i in range(7) if i != 4]
    assert ticker.partitions() == [f"r{i}.wav" for i in range(7)]
    assert len(instance.get_dynamic_partitions(recordings_partitions.name)) == 7


def test_batched_run_requests_group_neighbours_up_to_the_batch_size():
    order = ["a", "b", "c", "d", "e", "f"]
    run = {key: index for index, key in enumerate(order)}
    del run["d"]  # not to process: the ranges are a..c and e..f
    def shape(requests):
        return [(r.tags.get(ASSET_PARTITION_RANGE_START_TAG), r.tags.get(ASSET_PARTITION_RANGE_END_TAG),
                 r.partition_key) for r in requests]

    assert shape(batched_run_requests(run, order, per_run=2)) == [("a", "b", None), (None, None, "c"), ("e", "f", None)]
    assert shape(batched_run_requests(run, order, alone={"b"})) == [
        (None, None, "a"), (None, None, "b"), (None, None, "c"), ("e", "f", None)]
    assert [r.run_key for r in batched_run_requests({"a": 5}, order)] == ["a@5"]
    again = batched_run_requests(run, order)
    assert [r.run_key for r in again] == [r.run_key for r in batched_run_requests(dict(run), list(order))]


def test_a_growing_file_is_not_registered_until_its_copy_has_finished(project, ticker, tmp_path):
    complete = write_synth_song(tmp_path / "source", "a.wav", seed=2).read_bytes()
    target = project.groundtruth / "a.wav"
    thirds = [complete[: len(complete) // 3], complete[: 2 * len(complete) // 3], complete]
    for step, data in enumerate(thirds):
        target.write_bytes(data)
        os.utime(target, ns=(10**18 + step * 10**9, 10**18 + step * 10**9))  # coarse clocks: force a new mtime
        result = ticker.tick()
        assert not result.run_requests, f"registered while still being copied (step {step})"
        assert ticker.partitions() == []
    (request,) = ticker.tick().run_requests  # unchanged since the last tick, and complete
    assert request.partition_key == "a.wav"


def test_a_file_that_stops_half_copied_is_held_back_and_named_then_registered_to_show_its_error(project, ticker, tmp_path):
    complete = write_synth_song(tmp_path / "source", "a.wav", seed=2).read_bytes()
    target = project.groundtruth / "a.wav"
    target.write_bytes(complete[: len(complete) // 2])

    ticker.tick()  # first seen: settling
    for _ in range(BAD_FILE_SETTLE_TICKS - 1):
        held = ticker.tick()
        assert not held.run_requests and ticker.partitions() == []
        assert "Held back" in skip_text(held) and f"{target}: truncated WAV" in skip_text(held)
    forced = ticker.tick()  # unchanged for BAD_FILE_SETTLE_TICKS ticks: its run will show the error
    assert [r.partition_key for r in forced.run_requests] == ["a.wav"]
    assert ticker.partitions() == ["a.wav"]


def test_temporary_and_hidden_files_are_never_registered(project, ticker):
    write_synth_song(project.groundtruth, "a.wav", seed=1, duration_s=1.0)
    (project.groundtruth / ".a.wav.k3j9.tmp.wav").write_bytes(b"RIFF")
    (project.groundtruth / ".hidden.wav").write_bytes(b"RIFF")
    ticker.tick()
    assert [r.partition_key for r in ticker.tick().run_requests] == ["a.wav"]
    assert ticker.partitions() == ["a.wav"]


def test_a_changed_recording_is_processed_again(project, ticker):
    path = write_synth_song(project.groundtruth, "a.wav", seed=1, duration_s=2.0)
    ticker.tick()
    (first,) = ticker.tick().run_requests

    write_synth_song(project.groundtruth, "a.wav", seed=7, duration_s=2.0)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = ticker.tick()
    assert not changed.run_requests and "Settling" in skip_text(changed)
    (second,) = ticker.tick().run_requests
    assert second.partition_key == "a.wav"
    assert second.run_key != first.run_key and second.run_key == f"a.wav@{path.stat().st_mtime_ns}"
    assert not ticker.tick().run_requests


def test_a_vanished_recording_is_reported_once_and_its_partition_kept(project, ticker, capfd):
    path = write_synth_song(project.groundtruth, "a.wav", seed=1, duration_s=1.0)
    write_synth_song(project.groundtruth, "b.wav", seed=2, duration_s=1.0)
    ticker.tick()
    ticker.tick()
    path.unlink()

    capfd.readouterr()
    result = ticker.tick()
    log = capfd.readouterr().err  # the sensor's log (Dagster's console handler writes to stderr)
    (observation,) = result.asset_events
    assert isinstance(observation, dg.AssetObservation)
    assert observation.asset_key == recordings.key and observation.partition == "a.wav"
    assert observation.metadata["missing"].value is True
    assert observation.metadata["path"].value == str(path)
    assert f"WARNING - recording 'a.wav' is missing: {path} no longer exists" in log
    assert not result.run_requests and not result.dynamic_partitions_requests
    assert ticker.partitions() == ["a.wav", "b.wav"]

    again = ticker.tick()  # still missing: named in the skip reason, not observed twice
    assert not again.asset_events
    assert "Missing recordings" in skip_text(again) and "a.wav" in skip_text(again)

    write_synth_song(project.groundtruth, "a.wav", seed=1, duration_s=1.0)  # restored...
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # ...as a new version
    ticker.tick()
    assert [r.partition_key for r in ticker.tick().run_requests] == ["a.wav"]
    assert "a.wav" not in WatchState.from_cursor(ticker.cursor).missing


def test_the_cursor_is_json_and_a_corrupt_one_starts_afresh(project, ticker, capfd):
    write_synth_song(project.groundtruth, "a.wav", seed=1, duration_s=1.0)
    ticker.tick()
    state = json.loads(ticker.cursor)
    assert state["pending"]["a.wav"][2] == 0 and state["registered"] == {}

    ticker.cursor = "not json"
    capfd.readouterr()
    ticker.tick()
    assert "WARNING - unreadable new_recordings_sensor cursor" in capfd.readouterr().err
    assert WatchState.from_cursor(ticker.cursor).pending.keys() == {"a.wav"}


def test_plan_tick_is_a_pure_function_of_files_partitions_and_state(tmp_path):
    signatures = {"a.wav": (10, 1), "b.wav": (20, 2)}
    files = {key: tmp_path / key for key in signatures}
    sign = lambda path: signatures.get(path.name)  # noqa: E731
    fine = lambda path: None  # noqa: E731

    first = plan_tick(WatchState(), files, set(), signature=sign, problem=fine)
    assert first.settling == ["a.wav", "b.wav"] and not first.run
    second = plan_tick(first.state, files, set(), signature=sign, problem=fine)
    assert second.add == ["a.wav", "b.wav"] and second.run == {"a.wav": 1, "b.wav": 2}
    third = plan_tick(second.state, files, {"a.wav", "b.wav"}, signature=sign, problem=fine)
    assert not third.run and not third.add and not third.settling
    assert WatchState.from_cursor(third.state.to_cursor()) == third.state


def test_recordings_already_checked_are_not_run_again_without_a_cursor(project, project_resource, ticker, instance):
    """Partitions registered and materialised without the daemon (`songexplorer register`, a
    script) or a lost cursor: a recording whose record names its current size and mtime is steady."""
    for index in range(2):
        write_synth_song(project.groundtruth, f"r{index}.wav", seed=index, duration_s=0.5)
    instance.add_dynamic_partitions(recordings_partitions.name, ["r0.wav", "r1.wav"])
    assert dg.materialize([recordings], instance=instance, resources={"project": project_resource},
                          partition_key="r0.wav").success
    first = ticker.tick()
    assert "r0.wav" not in skip_text(first) and "r1.wav" in skip_text(first)  # r1 was never checked
    assert [r.partition_key for r in ticker.tick().run_requests] == ["r1.wav"]
    assert WatchState.from_cursor(ticker.cursor).registered.keys() == {"r0.wav", "r1.wav"}
    assert dg.materialize([recordings], instance=instance, resources={"project": project_resource},
                          partition_key="r1.wav").success  # what its run does
    path = project.groundtruth / "r0.wav"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # changed since its check
    ticker.cursor = None
    ticker.tick()
    assert [r.partition_key for r in ticker.tick().run_requests] == ["r0.wav"]
