"""The automation plan on a fresh demo project: tick by tick, as the daemon evaluates the assets'
automation conditions, no step is scheduled before the files it reads can exist.

Nothing is computed: after each tick the requested steps are recorded as done (runless
materialisations), some a tick late, as slow runs would be. The sensors' part (recordings,
detections, annotations) is recorded the same way, as their runs would leave it."""

from collections import Counter

import dagster as dg
import pytest

from songexplorer_core.annotations import find_interval_csvs
from songexplorer_core.demo import DEMO_DENSE_ANNOTATOR, make_demo_project
from songexplorer_core.project import find_recordings, recording_key
from songexplorer_dagster.definitions import defs
from songexplorer_dagster.partitions import recordings_partitions

PARTITIONED = {"recordings", "detections", "annotations", "probabilities", "ethograms", "misses"}


def inputs_of(asset: str, key: str | None, dense: list[str]) -> list[tuple[str, str | None]]:
    """What a step reads: the asset partitions that must exist before it starts (any one of a list
    written as ``("any", name)``)."""
    return {
        "detections": [("recordings", key)],
        "annotations": [("recordings", key)],
        "ground_truth": [("any", "annotations")],
        "trained_model": [("ground_truth", None)],
        "accuracy_report": [("trained_model", None)],
        "probabilities": [("recordings", key), ("trained_model", None)],
        "ethograms": [("probabilities", key)],
        "misses": [("detections", key), ("ethograms", key)],
        "summaries": [("any", "ethograms")],
        "congruence_report": [(name, d) for d in dense for name in ("annotations", "probabilities", "ethograms")],
    }[asset]


class Daemon:
    """Ticks of the automation sensor over a test instance; requested steps complete after
    ``late`` ticks (0: before the next tick)."""

    def __init__(self, instance, dense: list[str], late: dict[str, int]):
        self.instance, self.dense, self.late = instance, dense, late
        self.done: set[tuple[str, str | None]] = set()
        self.pending: list[tuple[int, str, str | None]] = []
        self.cursor, self.tick, self.requested = None, 0, Counter()
        self.problems: list[str] = []

    def materialize(self, asset: str, key: str | None) -> None:
        self.instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=asset, partition=key))
        self.done.add((asset, key))

    def exists(self, asset: str, key: str | None, same_run: set) -> bool:
        if asset == "any":
            return any(a == key for a, _ in self.done)
        # a step of the same run (same partition) runs first: its output exists when this one starts
        return (asset, key) in self.done or (asset, key) in same_run

    def run_tick(self) -> int:
        self.tick += 1
        result = dg.evaluate_automation_conditions(defs=defs, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        requested = [(asset.to_user_string(), k) for asset in sorted(defs.resolve_asset_graph().get_all_asset_keys())
                     for k in sorted(result.get_requested_partitions(asset), key=str)]
        for asset, key in requested:
            self.requested[asset] += 1
            same_run = {(a, k) for a, k in requested if k == key and (a, k) != (asset, key)}
            for needed in inputs_of(asset, key, self.dense):
                if not self.exists(*needed, same_run):
                    self.problems.append(f"tick {self.tick}: {asset}[{key}] scheduled before {needed} exists")
            delay = self.late.get(key, 0) if asset in PARTITIONED else 0
            self.pending.append((self.tick + delay, asset, key))
        ready = [p for p in self.pending if p[0] <= self.tick]
        self.pending = [p for p in self.pending if p[0] > self.tick]
        for _, asset, key in ready:
            self.materialize(asset, key)
        return len(requested)

    def settle(self, max_ticks: int = 25) -> None:
        quiet = 0
        while quiet < 3:
            assert self.tick < max_ticks, f"automation never settles: {self.requested}"
            quiet = 0 if self.run_tick() or self.pending else quiet + 1


def sensors_record(daemon: Daemon, keys: list[str]) -> None:
    """What new_recordings_sensor and annotation_files_sensor's runs leave: each recording checked,
    detected, its annotations read."""
    daemon.instance.add_dynamic_partitions(recordings_partitions.name, keys)
    for key in keys:
        for asset in ("recordings", "detections", "annotations"):
            daemon.materialize(asset, key)


@pytest.mark.parametrize("late", [{}, {"demo-1.wav": 1, "demo-3.wav": 3}],
                         ids=["prompt", "some-late"])
def test_no_step_is_scheduled_before_its_inputs_can_exist(tmp_path, instance, late):
    project = make_demo_project(tmp_path / "demo", nrecordings=3, duration_s=5, annotations_per_label=2,
                                dense=True)
    keys = sorted(recording_key(p.relative_to(project.groundtruth)) for p in find_recordings(project.groundtruth).values())
    dense = sorted(p.name.split("-annotated-")[0] for p in find_interval_csvs(project.groundtruth, kinds=["annotated"])
                   if p.name.endswith(f"-annotated-{DEMO_DENSE_ANNOTATOR}.csv"))
    assert keys == ["demo-1.wav", "demo-2.wav", "demo-3.wav"] and dense == ["demo-3.wav"]
    daemon = Daemon(instance, dense, late)
    daemon.run_tick()  # the daemon's first tick, before any recording settled
    sensors_record(daemon, keys)
    daemon.settle()
    assert daemon.problems == []
    # the plan did its work: one first model, every recording classified, each report made
    assert daemon.requested["trained_model"] == 1
    assert {k for a, k in daemon.done if a == "ethograms"} == set(keys)
    assert daemon.requested["congruence_report"] >= 1 and daemon.requested["summaries"] >= 1

    # a lab copies in a new, densely annotated recording: the report waits for its ethogram
    daemon.dense.append("demo-4.wav")
    daemon.late["demo-4.wav"] = 2
    before = daemon.requested["congruence_report"]
    sensors_record(daemon, ["demo-4.wav"])
    daemon.settle(daemon.tick + 25)
    assert daemon.problems == []
    assert daemon.requested["congruence_report"] > before


def test_a_recording_that_failed_its_check_does_not_hold_the_reports_back(tmp_path, instance):
    """A bad WAV's partition stays missing for good; the reports over every recording still run."""
    daemon = Daemon(instance, ["demo-3.wav"], {})
    daemon.run_tick()
    sensors_record(daemon, ["demo-1.wav", "demo-2.wav", "demo-3.wav"])
    instance.add_dynamic_partitions(recordings_partitions.name, ["bad.wav"])  # its recordings step failed
    daemon.settle()
    assert daemon.problems == []
    assert daemon.requested["congruence_report"] >= 1 and daemon.requested["summaries"] >= 1
    assert ("ethograms", "bad.wav") not in daemon.done
