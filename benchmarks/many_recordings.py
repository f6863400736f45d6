"""Many recordings: what the Dagster graph adds to the science, per recording, at N recordings.

In one run, on a synthetic project of ``--n`` recordings of ``--duration-s`` seconds
(``songexplorer_core.demo.make_demo_project``: synthetic song of ``songexplorer_core.synth``), with
its Dagster instance in the project (``<project>/dagster_home``, written by ``init_project``: the
run queue and pools a user gets) and the real daemon (``dagster-daemon run -w workspace.yaml``:
the sensors, the automation sensor, the backfill daemon and the run queue):

1. **New champion.** The project is brought up to date in this process (recordings, detections,
   annotations, ground truth, a small model v1 and its probabilities, ethograms and misses), the
   daemon is started and left to settle, then a second small model is trained here and becomes
   the champion. Measured: from the end of that training to every recording having its ethogram
   and misses by the new model (the event log: a materialisation of each partition after the
   champion's), through whatever the automation sensor, the backfill daemon and the run queue do.
   Against it, the science alone: the same per-recording work (the functions the assets call:
   classify + write the probability files, ethogram + its files and plot, misses + files) on the
   same recordings in one process, from loading the model (TensorFlow's import included).
2. **New recordings.** ``--n`` more recordings are dropped into ``groundtruth/`` at once (renamed
   in from a folder beside it). Measured: until every one has detections, an ethogram and misses;
   against the same checks, detections, classification, ethograms and misses in one process.
3. **The sensor's tick** over ``--sensor-files`` unchanged files (tiny WAVs): the median of
   ``--ticks`` evaluations of ``new_recordings_sensor`` after they are all registered, and that
   no partition was asked for twice.

Each line prints both numbers side by side with their ratio, ``orchestration = graph - science``.

Usage::

    .venv/bin/python benchmarks/many_recordings.py --n 100
    .venv/bin/python benchmarks/many_recordings.py --n 1000 --only champion --no-new-recordings
    .venv/bin/python benchmarks/many_recordings.py --only sensor --sensor-files 10000
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402  (benchmarks/machine.py, beside this script)

#: A small model that trains in seconds; its speed of classification is the recipe's.
SMALL_TRAINING = {"nsteps": 20, "validate_period": 10, "validate_percentage": 30.0, "mini_batch": 16}
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Log:
    """The ``context.log`` the per-recording functions write to, outside Dagster."""

    def __init__(self):
        self._log = logging.getLogger("many_recordings")

    def __getattr__(self, name):
        return getattr(self._log, name)


class Context:
    log = Log()


# --------------------------------------------------------------------------------------------
# the project, brought up to date in this process


def resources():
    from songexplorer_dagster.defs.resources import (
        ComputeResource, DenseSetResource, EthogramResource, MlflowResource, ProjectResource,
    )

    return {"project": ProjectResource(), "mlflow": MlflowResource(), "compute": ComputeResource(),
            "dense_set": DenseSetResource(), "ethogram": EthogramResource()}


def materialize(assets, keys=None, *, instance, run_config=None):
    """Materialise ``assets`` here, over the partition range of ``keys`` (one run) if given."""
    import dagster as dg

    tags = {RANGE_START: keys[0], RANGE_END: keys[-1]} if keys else None
    result = dg.materialize(assets, instance=instance, resources=resources(), tags=tags, selection=assets,
                            run_config=run_config, raise_on_error=False)
    if not result.success:
        raise SystemExit(f"setup: materialising {[a.key.to_user_string() for a in assets]} failed")
    return result


def train(instance, seed: int) -> None:
    from songexplorer_dagster.defs.model.assets import trained_model

    materialize([trained_model], instance=instance,
                run_config={"ops": {"trained_model": {"config": {**SMALL_TRAINING, "weights_seed": seed}}}})


def make_champion(project) -> str:
    """Pin the newest model version as champion (without a dense set the champion is the best by
    validation, which a second small model need not be); its version."""
    from songexplorer_core.tracking import pin_champion
    from songexplorer_dagster.defs.resources import MlflowResource

    config = MlflowResource().tracking(project.root)
    versions = config.client().search_model_versions(f"name='{config.registered_model}'")
    newest = max(int(v.version) for v in versions)
    if pin_champion(config, newest) != str(newest):
        raise SystemExit(f"could not make version {newest} the champion")
    return str(newest)


# --------------------------------------------------------------------------------------------
# the daemon and what it has done


def start_daemon(log_path: Path) -> subprocess.Popen:
    handle = open(log_path, "w")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen([sys.executable, "-m", "dagster._daemon", "run", "-w", str(REPO / "workspace.yaml")],
                            cwd=str(REPO), stdout=handle, stderr=subprocess.STDOUT, env=os.environ.copy(),
                            start_new_session=True)


def stop_daemon(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def ticks(instance, name: str) -> int:
    """How many ticks the sensor ``name`` has recorded."""
    total = 0
    for state in instance.all_instigator_state():
        if state.name == name:
            total += len(instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1000))
    return total


def wait_for_ticks(instance, name: str, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while ticks(instance, name) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{name} did not tick {count} time(s) in {timeout_s:.0f} s")
        time.sleep(1)


def busy(instance) -> bool:
    """Whether a run is queued or going, or a backfill is not finished."""
    from dagster import DagsterRunStatus, RunsFilter
    from dagster._core.execution.backfill import BulkActionStatus

    going = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
             DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    if instance.get_runs_count(RunsFilter(statuses=going)):
        return True
    return any(b.status == BulkActionStatus.REQUESTED for b in instance.get_backfills())


def wait_until_quiet(instance, quiet_s: float, timeout_s: float) -> None:
    """Until nothing has run for ``quiet_s`` (the sensors and automation ticks in between found
    nothing to do): the daemon's first look at a project it has not seen."""
    deadline = time.monotonic() + timeout_s
    last_busy = time.monotonic()
    while time.monotonic() - last_busy < quiet_s:
        if busy(instance):
            last_busy = time.monotonic()
        if time.monotonic() > deadline:
            raise SystemExit(f"the daemon did not settle in {timeout_s:.0f} s")
        time.sleep(1)


def wait_for(instance, assets: list[str], keys: list[str], after: int, timeout_s: float,
             version: str | None = None) -> float:
    """Seconds until every partition ``keys`` of every asset in ``assets`` is materialised after
    event-log record ``after`` (by model ``version``, when given: metadata ``model_version``);
    stops at ``timeout_s`` naming what is missing."""
    import dagster as dg

    started = time.monotonic()
    wanted = set(keys)
    done: dict[str, set] = {asset: set() for asset in assets}
    cursor = dict.fromkeys(assets, after)
    while True:
        for asset in assets:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), after_storage_id=cursor[asset]),
                limit=10_000).records
            for record in records:
                cursor[asset] = max(cursor[asset], record.storage_id)
                event = record.asset_materialization
                made_by = event.metadata.get("model_version")
                if version is None or (made_by is not None and str(made_by.value) == str(version)):
                    done[asset].add(event.partition)
        missing = {asset: len(wanted - done[asset]) for asset in assets}
        if not any(missing.values()):
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise SystemExit(f"timed out after {timeout_s:.0f} s; partitions still missing: {missing}")
        time.sleep(0.5)


def runs_summary(instance, since: float) -> str:
    from dagster import DagsterRunStatus, RunsFilter

    runs = [r for r in instance.get_run_records(RunsFilter()) if r.create_timestamp.timestamp() >= since]
    failed = sum(r.dagster_run.status == DagsterRunStatus.FAILURE for r in runs)
    backfills = {r.dagster_run.tags.get("dagster/backfill") for r in runs} - {None}
    return f"{len(runs)} run(s), {failed} failed, from {len(backfills)} backfill(s)"


# --------------------------------------------------------------------------------------------
# the science alone: the assets' per-recording functions, in one process


def science(root: Path, keys: list[str], *, new: bool) -> float:
    """Seconds for the per-recording work of ``keys`` in this process (outputs in a scratch
    project whose ``groundtruth/`` is ``root``'s), model load and TensorFlow import included."""
    from songexplorer_core.project import init_project
    from songexplorer_dagster.defs.detection.assets import DetectionConfig, _detect_one
    from songexplorer_dagster.defs.predictions.assets import _classify_one, _ethogram_one
    from songexplorer_dagster.defs.recordings.assets import _check_one
    from songexplorer_dagster.defs.resources import EthogramResource, MlflowResource, ProjectResource
    from songexplorer_dagster.defs.review.assets import _misses_one
    from songexplorer_dagster.defs.review.config import MissesConfig

    scratch = Path(tempfile.mkdtemp(prefix="science-", dir=root.parent))
    (scratch / "groundtruth").symlink_to(root / "groundtruth")
    shutil.copy(root / "songexplorer.toml", scratch / "songexplorer.toml")
    project = ProjectResource(root=str(scratch))
    paths = init_project(scratch)
    version, bundle = MlflowResource().champion_bundle(ProjectResource(root=str(root)).project())
    context, config = Context(), DetectionConfig()
    params = config.to_params()
    if not new:  # misses read the project's detections
        shutil.copytree(root / "outputs" / "detections", scratch / "outputs" / "detections", dirs_exist_ok=True)
    started = time.monotonic()
    for key in keys:
        if new:
            _check_one(context, project, key)
            _detect_one(context, config, params, project, key)
        _classify_one(context, project, paths, key, version, bundle)
        _ethogram_one(context, project, EthogramResource(), paths, key)
        _misses_one(context, MissesConfig(), project, key)
    seconds = time.monotonic() - started
    shutil.rmtree(scratch, ignore_errors=True)
    return seconds


# --------------------------------------------------------------------------------------------
# the sensor's tick


def sensor_tick(folder: Path, nfiles: int, nticks: int) -> tuple[float, float, int, int]:
    """(median s of a tick over ``nfiles`` unchanged files, the registering tick's s, cursor
    bytes, partitions requested twice) with ``new_recordings_sensor`` driven as the daemon does."""
    import dagster as dg
    import numpy as np
    import soundfile

    from songexplorer_core.project import ProjectSettings, init_project
    from songexplorer_dagster.definitions import defs
    from songexplorer_dagster.defs.recordings.sensors import new_recordings_sensor
    from songexplorer_dagster.defs.resources import ProjectResource

    project = init_project(folder / "sensor-project", settings=ProjectSettings(audio_tic_rate=2500, audio_nchannels=1))
    tone = (np.sin(np.arange(25) / 3.0) * 1000).astype(np.int16)
    for index in range(nfiles):
        sub = project.groundtruth / f"day{index // 1000:02d}"
        sub.mkdir(exist_ok=True)
        soundfile.write(sub / f"rec-{index:05d}.wav", tone, 2500, subtype="PCM_16")
    (folder / "sensor-instance").mkdir()
    requested: list[str] = []
    with dg.instance_for_test(temp_dir=str(folder / "sensor-instance")) as instance:
        cursor = None
        durations = []
        for tick in range(2 + nticks):
            context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                              resources={"project": ProjectResource(root=str(project.root))})
            began = time.perf_counter()
            result = new_recordings_sensor(context)
            durations.append(time.perf_counter() - began)
            for request in result.dynamic_partitions_requests or []:
                requested += list(request.partition_keys)
                instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            cursor = result.cursor
            if tick >= 2 and (result.run_requests or result.dynamic_partitions_requests):
                raise SystemExit("the sensor asked for something over unchanged files")
        registered = len(instance.get_dynamic_partitions("recordings"))
    if registered != nfiles:
        raise SystemExit(f"{registered} partitions for {nfiles} files")
    return statistics.median(durations[2:]), durations[1], len(cursor or ""), len(requested) - len(set(requested))


# --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="recordings (and again as many new ones)")
    parser.add_argument("--duration-s", type=float, default=60.0, help="seconds per recording")
    parser.add_argument("--sensor-files", type=int, default=10_000, help="files for the sensor's tick")
    parser.add_argument("--ticks", type=int, default=5, help="timed ticks over unchanged files")
    parser.add_argument("--only", choices=["champion", "sensor"], help="run only this part")
    parser.add_argument("--timeout-s", type=float, default=3600.0, help="give up waiting after this long")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--reuse", type=Path, help="a folder --keep kept: its project is already up to date")
    parser.add_argument("--no-new-recordings", action="store_true",
                        help="measure the new champion only (not the --n new recordings dropped in after it)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING)
    print(describe())
    folder = args.reuse or Path(tempfile.mkdtemp(prefix="many-recordings-"))
    lines = []
    try:
        if args.only in (None, "champion"):
            lines += graph_against_science(folder, args)
        if args.only in (None, "sensor"):
            median, registering, cursor_bytes, twice = sensor_tick(folder, args.sensor_files, args.ticks)
            lines.append(f"sensor tick over {args.sensor_files} unchanged files: {median:.3f} s (median of "
                         f"{args.ticks}); the tick registering them all {registering:.1f} s; cursor "
                         f"{cursor_bytes / 1024:.0f} KiB; partitions asked for twice: {twice}")
    finally:
        if not args.keep and not args.reuse:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            say(f"kept {folder}")
    print("\n".join(["", "many_recordings: results"] + lines))


def graph_against_science(folder: Path, args) -> list[str]:
    root = folder / "project"
    os.environ["SONGEXPLORER_PROJECT"] = str(root)
    os.environ["DAGSTER_HOME"] = str(root / "dagster_home")
    os.environ.pop("SONGEXPLORER_DENSE_ANNOTATORS", None)
    import dagster as dg

    from songexplorer_core.demo import make_demo_project
    from songexplorer_core.synth import SongParams, make_song, write_song
    from songexplorer_core.project import find_recordings
    from songexplorer_dagster.defs.annotations.assets import annotations, ground_truth
    from songexplorer_dagster.defs.detection.assets import detections
    from songexplorer_dagster.defs.predictions.assets import ethograms, probabilities
    from songexplorer_dagster.defs.recordings.assets import recordings
    from songexplorer_dagster.defs.review.assets import misses

    started = time.monotonic()
    reused = args.reuse is not None
    project = make_demo_project(root, nrecordings=args.n, duration_s=args.duration_s, nannotated=min(args.n, 10))
    keys = sorted(key for key in find_recordings(project.groundtruth) if not key.startswith("new-"))
    say(f"{len(keys)} recordings of {args.duration_s:.0f} s written ({time.monotonic() - started:.0f} s); "
        f"instance settings: {(project.dagster_home / 'dagster.yaml').read_text().count(chr(10))} lines from init")
    lines = []
    instance = dg.DagsterInstance.get()
    if not reused:
        instance.add_dynamic_partitions("recordings", keys)
        materialize([recordings, detections, annotations], keys, instance=instance)
        materialize([ground_truth], instance=instance)
        train(instance, seed=1)
        materialize([probabilities, ethograms, misses], keys, instance=instance)
        say(f"project up to date with model v1 ({time.monotonic() - started:.0f} s)")

    daemon = start_daemon(folder / "daemon.log")
    try:
        wait_for_ticks(instance, "automation_sensor", 2, timeout_s=600)
        wait_until_quiet(instance, quiet_s=75, timeout_s=args.timeout_s)
        say(f"daemon running, nothing to do; training model v2 here; {runs_summary(instance, 0)} so far")
        train(instance, seed=2 + int(time.time()) % 1000 if reused else 2)
        version = make_champion(project)
        after = instance.event_log_storage.get_maximum_record_id()
        since = time.time()
        graph = wait_for(instance, ["ethograms", "misses"], keys, after, args.timeout_s, version=version)
        say(f"new champion -> every ethogram and misses: {graph:.1f} s; {runs_summary(instance, since)}")
        wait_until_quiet(instance, quiet_s=10, timeout_s=args.timeout_s)  # the reports after it, not timed
        alone = science(root, keys, new=False)
        lines.append(side_by_side(f"new champion, {len(keys)} recordings of {args.duration_s:.0f} s "
                                  f"(classify + ethogram + misses)", graph, alone))

        if args.no_new_recordings:
            return lines
        staging = root / "incoming"
        staging.mkdir()
        new_keys = []
        for index in range(args.n):
            name = f"new-{index + 1:05d}.wav"
            write_song(make_song(args.duration_s, project.settings().audio_tic_rate, SongParams(), seed=90_000 + index,
                                 wav=name), staging / name)
            new_keys.append(name)
        after = instance.event_log_storage.get_maximum_record_id()
        since = time.time()
        for name in new_keys:
            os.replace(staging / name, project.groundtruth / name)
        say(f"{len(new_keys)} new recordings dropped into groundtruth/")
        graph = wait_for(instance, ["detections", "ethograms", "misses"], new_keys, after, args.timeout_s)

        say(f"new recordings -> detections, ethograms and misses: {graph:.1f} s; {runs_summary(instance, since)}")
        wait_until_quiet(instance, quiet_s=10, timeout_s=args.timeout_s)
        alone = science(root, new_keys, new=True)
        lines.append(side_by_side(f"{len(new_keys)} new recordings (check + detect + classify + ethogram + misses)",
                                  graph, alone))
    finally:
        stop_daemon(daemon)
    return lines


def side_by_side(what: str, graph: float, alone: float) -> str:
    orchestration = graph - alone
    return (f"{what}: graph {graph:.1f} s, science alone {alone:.1f} s; orchestration {orchestration:.1f} s = "
            f"{orchestration / alone:.2f} x the science")


if __name__ == "__main__":
    main()
