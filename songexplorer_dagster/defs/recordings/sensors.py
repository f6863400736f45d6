"""Sensors: notice recordings as they appear in ``groundtruth/`` and process them.

``new_recordings_sensor`` scans the ground-truth folder every ~15 s. A recording becomes a
partition of ``recordings`` (and gets a ``detect_recordings_job`` run) only once it has *settled*:

* temporary files (``.NAME.<random>.tmp``, what atomic writers make) and hidden files are never
  seen (``songexplorer_core.project.find_recordings`` skips them);
* a file's ``(size, mtime_ns)`` must be the same on two consecutive ticks, so a WAV still being
  copied in is left alone until the copy stops;
* a settled file whose header check fails (truncated, not a WAV: ``songexplorer_core.audio.
  recording_info``) is held back and named in the tick's log and skip reason, in case its copy has
  only paused. If it stays unchanged for ``BAD_FILE_SETTLE_TICKS`` ticks it is registered anyway, so
  its run fails with the file's problem where people look: in the run and the asset's history.

Re-ticks never duplicate anything: settled recordings are remembered in the cursor with their
``(size, mtime_ns)``, a partition is added only when the instance lacks it, and each run's
``run_key`` is ``<key>@<mtime_ns>``, which Dagster launches at most once. A recording that changes
(new ``mtime_ns``) settles again and is re-materialised. Recordings that settle on the same tick
share runs over their partition-key range (up to ``songexplorer_dagster.batches.PARTITIONS_PER_RUN``
each, :func:`batched_run_requests`); one alone gets its own run.

A tick over an unchanged folder reads no file: one directory walk and one ``stat`` per file,
compared with the cursor (headers are read once, when a file has settled). Without a cursor (the
first start, or a lost one), a recording that already has its partition and whose
``outputs/recordings/<key>.json`` names its current size and mtime is taken as processed, so
thousands of recordings materialised by hand are not all run again.

A recording whose partition exists but whose file has vanished is reported, never dropped: a
warning in the tick's log and an ``AssetObservation`` of ``recordings`` for that partition with
``missing=True``. Its partition and outputs are kept (the file may be restored, and the outputs may
be all that is left of it).

The cursor is JSON: ``{"version": 1, "pending": {key: [size, mtime_ns, unchanged_ticks]},
"registered": {key: [size, mtime_ns]}, "missing": [key, ...]}``.
"""

import hashlib
import json
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from songexplorer_core.audio import RecordingError, check_recording, recording_info, source_file
from songexplorer_core.project import ProjectError, recording_relpath
from songexplorer_dagster.batches import (  # noqa: F401 (the range tags: what tests and users import from here)
    ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, PARTITIONS_PER_RUN, contiguous_batches, range_tags,
)
from songexplorer_dagster.defs.resources import ProjectResource
from songexplorer_dagster.partitions import recordings_partitions

#: Seconds between evaluations (the daemon may wait longer when busy).
MINIMUM_INTERVAL_S = 15
#: Ticks a file failing its header check must stay unchanged before it is registered anyway
#: (about a minute at MINIMUM_INTERVAL_S): its run then fails with the file's problem.
BAD_FILE_SETTLE_TICKS = 4
#: Names listed per category in a skip reason before "and N more".
LISTED_NAMES = 10
CURSOR_VERSION = 1

Signature = tuple[int, int]  #: (size in bytes, mtime in ns) of a file


@dataclass
class WatchState:
    """What the sensor remembers between ticks (its cursor)."""

    #: key -> (size, mtime_ns, ticks it has been unchanged): files seen but not yet registered.
    pending: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    #: key -> (size, mtime_ns) of the version last registered and sent to a run.
    registered: dict[str, Signature] = field(default_factory=dict)
    #: keys whose file was found missing and already reported.
    missing: set[str] = field(default_factory=set)

    @classmethod
    def from_cursor(cls, cursor: str | None) -> "WatchState":
        """Parse a cursor written by :meth:`to_cursor`; ``None``/empty gives a fresh state.

        Raises:
            ValueError: for a cursor this version cannot read.
        """
        if not cursor:
            return cls()
        try:
            data = json.loads(cursor)
            if data.get("version") != CURSOR_VERSION:
                raise ValueError(f"cursor version {data.get('version')!r}, expected {CURSOR_VERSION}")
            return cls(
                pending={k: (int(v[0]), int(v[1]), int(v[2])) for k, v in data["pending"].items()},
                registered={k: (int(v[0]), int(v[1])) for k, v in data["registered"].items()},
                missing=set(data["missing"]),
            )
        except (json.JSONDecodeError, KeyError, TypeError, IndexError, AttributeError, ValueError) as error:
            raise ValueError(f"unreadable new_recordings_sensor cursor ({error})") from error

    def to_cursor(self) -> str:
        """The state as a compact JSON string, keys sorted (stable across ticks)."""
        return json.dumps(
            {
                "version": CURSOR_VERSION,
                "pending": {k: list(v) for k, v in sorted(self.pending.items())},
                "registered": {k: list(v) for k, v in sorted(self.registered.items())},
                "missing": sorted(self.missing),
            },
            separators=(",", ":"),
        )


@dataclass
class WatchPlan:
    """What one tick decided; :func:`plan_tick` makes it, the sensor acts on it."""

    state: WatchState  #: the cursor to store
    add: list[str] = field(default_factory=list)  #: new partitions
    run: dict[str, int] = field(default_factory=dict)  #: key -> mtime_ns of the version to process
    settling: list[str] = field(default_factory=list)  #: new or changed since the last tick
    held: dict[str, str] = field(default_factory=dict)  #: settled but header check failed: key -> why
    forced: dict[str, str] = field(default_factory=dict)  #: held too long, registered anyway: key -> why
    vanished: list[str] = field(default_factory=list)  #: partition exists, file gone, first noticed now
    still_missing: list[str] = field(default_factory=list)  #: reported on an earlier tick


def file_signature(path: Path) -> Signature | None:
    """``(size bytes, mtime ns)`` of a recording's file (a channel recording's: ``audio.source_file``),
    or ``None`` if it has disappeared."""
    try:
        stat = os.stat(source_file(path))
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns


def header_problem(path: Path) -> str | None:
    """Why a recording's header cannot be read (truncated, not a WAV...), or ``None`` if it can."""
    try:
        recording_info(path)
    except RecordingError as error:
        return str(error)
    except OSError as error:
        return f"{path}: cannot be read ({error})"
    return None


def plan_tick(
    state: WatchState,
    files: Mapping[str, Path],
    known: set[str],
    *,
    signature: Callable[[Path], Signature | None] = file_signature,
    problem: Callable[[Path], str | None] = header_problem,
    bad_file_settle_ticks: int = BAD_FILE_SETTLE_TICKS,
    processed: Callable[[str], Signature | None] = lambda key: None,
) -> WatchPlan:
    """Decide one tick from the recordings found now and the partitions that exist.

    Args:
        state: the previous tick's state (not modified).
        files: ``{key: path}`` of the recordings in ``groundtruth/`` now.
        known: partition keys that already exist.
        signature: ``(size, mtime_ns)`` of a path, ``None`` if it is gone.
        problem: why a path's header is unreadable, ``None`` if it is fine.
        bad_file_settle_ticks: unchanged ticks after which a file with an unreadable header is
            registered anyway.
        processed: ``(size, mtime_ns)`` of the version of a recording ``recordings`` last checked
            (its record under ``outputs/recordings/``), ``None`` if none: a known partition whose
            file is that version is steady even when the cursor does not list it (a lost cursor,
            partitions registered and materialised without the daemon), so it is not run again.
    """
    plan = WatchPlan(state=WatchState(registered=dict(state.registered)))
    present = set()
    for key, path in files.items():
        current = signature(path)
        if current is None:
            continue  # deleted between listing and stat: it was never there
        present.add(key)
        if key in known and (state.registered.get(key) == current
                             or (key not in state.registered and key not in state.pending
                                 and processed(key) == current)):
            plan.state.registered[key] = current
            continue  # steady: already registered and processed
        previous = state.pending.get(key)
        if previous is None or previous[:2] != current:
            plan.state.pending[key] = (*current, 0)
            plan.settling.append(key)
            continue
        unchanged = previous[2] + 1
        why = problem(path)
        if why is not None:
            if unchanged < bad_file_settle_ticks:
                plan.state.pending[key] = (*current, unchanged)
                plan.held[key] = why
                continue
            plan.forced[key] = why
        if key not in known:
            plan.add.append(key)
        plan.run[key] = current[1]
        plan.state.registered[key] = current
    gone = sorted(known - present)
    plan.vanished = [key for key in gone if key not in state.missing]
    plan.still_missing = [key for key in gone if key in state.missing]
    plan.state.missing = set(gone)
    return plan


def batched_run_requests(run: Mapping[str, int], order: Sequence[str], *, alone: Collection[str] = (),
                         per_run: int = PARTITIONS_PER_RUN) -> list[dg.RunRequest]:
    """Runs for the recordings to process (``run``: key -> mtime_ns), in the partitions' order
    (``order``: the existing partitions, then those this tick adds). A recording by itself, or
    one of ``alone`` (a file its run will refuse), gets a run of its own (``run_key``
    ``<key>@<mtime_ns>``): a failed run stops the steps after it, and a good recording's
    detections must not wait on a bad one's. Recordings that are neighbours in that order share a
    run over their partition-key range, up to ``per_run`` each (``run_key``
    ``<first>..<last>@<digest of every key@mtime_ns>``), so many new WAVs start one process,
    not one each (``songexplorer_dagster.batches``)."""
    groups = contiguous_batches(run, order, alone=alone, per_run=per_run)
    requests = []
    for group in groups:
        if len(group) == 1:
            requests.append(dg.RunRequest(partition_key=group[0], run_key=f"{group[0]}@{run[group[0]]}"))
            continue
        digest = hashlib.sha1("\n".join(f"{key}@{run[key]}" for key in group).encode()).hexdigest()[:16]
        requests.append(dg.RunRequest(
            run_key=f"{group[0]}..{group[-1]}@{digest}",
            tags=range_tags(group)))
    return requests


def _refused(project: ProjectResource, keys: Collection[str]) -> set[str]:
    """Of several recordings about to share runs, those ``recordings`` will refuse (wrong rate or
    channels: ``songexplorer_core.audio.check_recording``); a header is read once per settled file."""
    if len(keys) < 2:
        return set()
    settings = project.settings()
    refused = set()
    for key in keys:
        try:
            check_recording(project.recording_path(key), expected_rate=settings.audio_tic_rate,
                            expected_channels=settings.audio_nchannels)
        except (RecordingError, ProjectError, OSError):
            refused.add(key)
    return refused


def _names(keys, limit: int = LISTED_NAMES) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def processed_signature(project: ProjectResource, key: str) -> Signature | None:
    """``(size, mtime_ns)`` that ``recordings`` recorded for ``key`` when it last checked it
    (``outputs/recordings/<key>.json``), ``None`` without a readable record."""
    try:
        record = json.loads(project.project().recording_record_path(key).read_text())
        return int(record["size_bytes"]), int(record["mtime_ns"])
    except (OSError, ValueError, KeyError, TypeError, ProjectError):
        return None


def _expected_path(project: ProjectResource, key: str) -> str:
    try:
        return str(project.project().groundtruth / recording_relpath(key))
    except ProjectError as error:
        return f"(not a recording key: {error})"


def _skip_reason(plan: WatchPlan) -> str:
    parts = ["No new or changed recordings to process."]
    if plan.settling:
        parts.append(f"Settling (registered once unchanged for one more tick): {_names(plan.settling)}.")
    if plan.held:
        parts.append(
            "Held back, header unreadable (still being copied?): "
            + "; ".join(plan.held[key] for key in list(plan.held)[:LISTED_NAMES])
        )
    missing = plan.vanished + plan.still_missing
    if missing:
        parts.append(f"Missing recordings (partitions and outputs kept): {_names(missing)}.")
    return " ".join(parts)


@dg.sensor(
    job_name="detect_recordings_job",
    minimum_interval_seconds=MINIMUM_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Registers each settled WAV in groundtruth/ as a partition of `recordings` and runs "
        "detect_recordings_job for it; re-runs changed WAVs; reports vanished ones."
    ),
)
def new_recordings_sensor(context: dg.SensorEvaluationContext, project: ProjectResource) -> dg.SensorResult:
    """Register settled recordings, request their runs, report vanished ones (see module docstring)."""
    try:
        state = WatchState.from_cursor(context.cursor)
    except ValueError as error:
        context.log.warning(f"{error}; starting afresh (runs already launched are not repeated: run keys)")
        state = WatchState()
    files = project.find_recordings()
    existing = list(context.instance.get_dynamic_partitions(recordings_partitions.name))
    plan = plan_tick(state, files, set(existing), processed=lambda key: processed_signature(project, key))

    events = []
    for key in plan.vanished:
        path = _expected_path(project, key)
        context.log.warning(
            f"recording {key!r} is missing: {path} no longer exists. Its partition and outputs are "
            f"kept; restore the file to process it again."
        )
        last = state.registered.get(key)
        metadata = {"missing": True, "path": dg.MetadataValue.path(path)}
        if last is not None:
            metadata.update(last_size_bytes=last[0], last_mtime_ns=str(last[1]))
        events.append(
            dg.AssetObservation(
                asset_key=dg.AssetKey("recordings"),
                partition=key,
                description=f"{path} has vanished from the ground-truth folder",
                metadata=metadata,
            )
        )
    for key, why in plan.held.items():
        context.log.info(f"holding back {key!r} until it settles: {why}")
    for key, why in plan.forced.items():
        context.log.warning(
            f"registering {key!r} although its header is unreadable (unchanged for "
            f"{BAD_FILE_SETTLE_TICKS} ticks), so its run reports the problem: {why}"
        )
    run_requests = batched_run_requests(plan.run, existing + plan.add,
                                        alone=set(plan.forced) | _refused(project, plan.run))
    if run_requests:
        context.log.info(f"processing {len(plan.run)} recording(s) in {len(run_requests)} run(s): {_names(plan.run)}")
    return dg.SensorResult(
        run_requests=run_requests or None,
        skip_reason=None if run_requests else _skip_reason(plan),
        dynamic_partitions_requests=[recordings_partitions.build_add_request(plan.add)] if plan.add else None,
        asset_events=events or None,
        cursor=plan.state.to_cursor(),
    )
