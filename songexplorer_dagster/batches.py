"""Many recordings in one step: the per-recording assets' loop, each recording its own partition.

A per-recording asset (``recordings``, ``detections``, ``annotations``, ``probabilities``,
``ethograms``, ``misses``) carries :data:`RECORDINGS_BACKFILL`, so a backfill, or the automation
sensor re-classifying every recording after a new champion (its ``emit_backfills``: more than one
partition of an asset requested in a tick becomes a backfill), runs up to
:data:`PARTITIONS_PER_RUN` partitions per run (a partition-key range) instead of one run each:
one process start, one import of TensorFlow and one model load for the whole batch. A single new
recording still gets a run of its own.

:func:`per_recording` is the step's body around a function of one recording key that returns
that recording's metadata:

* each recording is done, and its files written, before the next starts. The run's log shows the
  batch's progress (``[i/n] key: ... (s)``) for the first recording, then at most every
  :data:`PROGRESS_EVERY_S` seconds, and for the last; what the step says about each recording goes
  on that recording's materialisation (metadata ``log``) and to the step's stdout, not into the
  event log one line at a time (each event is a database write: ~20-70 ms on SQLite, about a
  recording's classification). Warnings and errors go to the run's log at once, naming the
  recording;
* every recording's metadata goes on its own partition's materialisation
  (``context.add_asset_metadata(..., partition_key=...)``), as when it runs alone;
* a recording that fails does not stop the others: when the step ends, the recordings that
  succeeded are materialised (one ``AssetMaterialization`` each, with its metadata) and the step
  fails with one line per failed recording (``dagster.Failure``; core's one-line message for an
  expected failure, ``songexplorer_core.errors``). Dagster then marks exactly the failed
  recordings' partitions as failed: a partition is failed when its latest planned
  materialisation has none after it in a failed run.

A run of one partition behaves as every step did before: its metadata on the materialisation, an
expected failure as ``dagster.Failure`` with core's line, a bug with its own traceback.
"""

import time
import traceback
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence

import dagster as dg

from songexplorer_core.errors import explain, is_expected

#: Recordings per run when many are backfilled at once (a new champion, a folder of new WAVs):
#: about 200 s of classification for 60 s recordings, so the run's start (~10-20 s: a process,
#: dagster, TensorFlow, the model) is a small part of it, and several runs still share a
#: many-core machine (``max_concurrent_runs``).
PARTITIONS_PER_RUN = 250
# Dagster 1.13 marks @asset's backfill_policy parameter beta and warns once per asset at every
# import of the code location (every run and code server); the policy is what this module is for.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy` of function `asset`", category=dg.BetaWarning)
#: The run tags that make a run of the per-recording assets cover a range of partition keys (what
#: a backfill launches; Dagster's ``dagster/asset_partition_range_*``).
ASSET_PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
ASSET_PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"
#: The backfill policy of every per-recording asset (see the module docstring).
RECORDINGS_BACKFILL = dg.BackfillPolicy.multi_run(max_partitions_per_run=PARTITIONS_PER_RUN)
#: Failed recordings named in a batch's failure description before "and N more".
LISTED_FAILURES = 20
#: Seconds between the progress lines a batched step writes to the run's log.
PROGRESS_EVERY_S = 5.0

#: What the per-recording function returns: its materialisation's metadata, and optionally
#: check results (``dg.AssetCheckResult``) of that recording.
Outcome = Mapping[str, object] | tuple[Mapping[str, object], Sequence[dg.AssetCheckResult]]


def contiguous_batches(keys: Collection[str], order: Sequence[str], *, alone: Collection[str] = (),
                       per_run: int = PARTITIONS_PER_RUN) -> list[list[str]]:
    """``keys`` cut into batches a run can cover by a partition-key range: neighbours in the
    partitions' ``order``, up to ``per_run`` each. A key missing from ``order``, or one of
    ``alone``, is a batch of its own; a key of ``order`` not in ``keys`` ends a batch (a range
    covers every key between its ends)."""
    position = {key: index for index, key in enumerate(order)}
    batches: list[list[str]] = []
    for key in sorted(keys, key=lambda key: position.get(key, len(position))):
        last = batches[-1] if batches else None
        if (last is not None and len(last) < per_run and key in position and last[-1] in position
                and key not in alone and last[-1] not in alone
                and position[key] == position[last[-1]] + 1):
            last.append(key)
        else:
            batches.append([key])
    return batches


def range_tags(batch: Sequence[str]) -> dict[str, str]:
    """The run tags of a run over ``batch`` (its first and last key)."""
    return {ASSET_PARTITION_RANGE_START_TAG: batch[0], ASSET_PARTITION_RANGE_END_TAG: batch[-1]}


def _split(outcome: Outcome) -> tuple[Mapping[str, object], Sequence[dg.AssetCheckResult]]:
    if isinstance(outcome, tuple):
        return outcome
    return outcome, ()


def _describe(error: BaseException) -> str:
    if isinstance(error, dg.Failure):
        return error.description or str(error)
    if is_expected(error):
        return explain(error)
    return f"{type(error).__name__}: {error}"


def _combined_checks(results: dict[str, Sequence[dg.AssetCheckResult]]) -> list[dg.AssetCheckResult]:
    """One result per check over a batch (a range step evaluates each check once): passed when
    every recording's passed, the failing recordings named with their descriptions."""
    by_check: dict[str, list[tuple[str, dg.AssetCheckResult]]] = {}
    for key, checks in results.items():
        for result in checks:
            by_check.setdefault(result.check_name, []).append((key, result))
    combined = []
    for name, pairs in by_check.items():
        failed = [(key, r) for key, r in pairs if not r.passed]
        lines = [f"{key}: {r.description}" for key, r in failed[:LISTED_FAILURES]]
        if len(failed) > LISTED_FAILURES:
            lines.append(f"and {len(failed) - LISTED_FAILURES} more")
        description = (f"{len(failed)} of {len(pairs)} recordings: " + "; ".join(lines) if failed
                       else f"passed for all {len(pairs)} recordings")
        first = pairs[0][1]
        combined.append(dg.AssetCheckResult(
            check_name=name, passed=not failed, severity=first.severity, description=description,
            metadata={"recordings": dg.MetadataValue.int(len(pairs)),
                      "failed_recordings": dg.MetadataValue.json([key for key, _ in failed])}))
    return combined


class RecordingLog:
    """What a per-recording function writes to ``step.log`` inside a batched step: info and debug
    lines kept for the recording's metadata (and printed to the step's stdout), warnings and errors
    to the run's log at once, prefixed with the recording."""

    def __init__(self, log: "dg.DagsterLogManager", key: str):
        self._log, self._key, self.lines = log, key, []

    def _keep(self, level: str, message: str) -> None:
        line = f"{level}: {message}"
        self.lines.append(line)
        print(f"{self._key}: {line}")

    def debug(self, message: str, *args, **kwargs) -> None:
        self._keep("DEBUG", str(message))

    def info(self, message: str, *args, **kwargs) -> None:
        self._keep("INFO", str(message))

    def warning(self, message: str, *args, **kwargs) -> None:
        self.lines.append(f"WARNING: {message}")
        self._log.warning(f"{self._key}: {message}", *args, **kwargs)

    warn = warning

    def error(self, message: str, *args, **kwargs) -> None:
        self.lines.append(f"ERROR: {message}")
        self._log.error(f"{self._key}: {message}", *args, **kwargs)

    def exception(self, message: str, *args, **kwargs) -> None:
        self.error(message, *args, **kwargs)


class RecordingStep:
    """The part of the step's context a per-recording function uses (``.log``), for one recording
    of a batch."""

    def __init__(self, context: dg.AssetExecutionContext, key: str):
        self.log = RecordingLog(context.log, key)


def per_recording(context: dg.AssetExecutionContext, one: Callable[..., Outcome], *,
                  what: str = "done") -> Iterator[dg.MaterializeResult | dg.AssetMaterialization]:
    """The body of a per-recording asset over every partition of its run (see the module
    docstring): ``yield from per_recording(context, lambda key, step: ...)``.

    Args:
        context: the step's context; its ``partition_keys`` are the recordings to do.
        one: ``one(key, step)`` does one recording and returns its metadata, or ``(metadata, check
            results)``; it logs through ``step.log`` (the context itself for a run of one
            recording, a :class:`RecordingStep` in a batch).
        what: what was done, for the per-recording log line.

    Raises:
        dagster.Failure: naming each recording that failed with its message, after the others
            are materialised (a single recording's bug is raised as it is, with its traceback).
    """
    keys = list(context.partition_keys)
    outcomes: dict[str, tuple[Mapping[str, object], Sequence[dg.AssetCheckResult]]] = {}
    failures: dict[str, BaseException] = {}
    started = time.monotonic()
    last_progress = None
    for index, key in enumerate(keys, 1):
        began = time.monotonic()
        step = context if len(keys) == 1 else RecordingStep(context, key)
        try:
            metadata, checks = _split(one(key, step))
        except Exception as error:  # noqa: BLE001 (one recording's failure is its partition's, below)
            if len(keys) == 1:
                if isinstance(error, dg.Failure) or not is_expected(error):
                    raise
                raise dg.Failure(description=explain(error),
                                 metadata={"error": dg.MetadataValue.text(type(error).__name__)}) from error
            failures[key] = error
            context.log.error(f"[{index}/{len(keys)}] {key}: failed: {_describe(error)}"
                              + ("" if is_expected(error) or isinstance(error, dg.Failure)
                                 else "\n" + "".join(traceback.format_exception(error))))
            continue
        if len(keys) > 1:
            metadata = {**metadata, "log": dg.MetadataValue.text("\n".join(step.log.lines))}
            now = time.monotonic()
            if last_progress is None or index == len(keys) or now - last_progress >= PROGRESS_EVERY_S:
                context.log.info(f"[{index}/{len(keys)}] {key}: {what} ({now - began:.2f} s)")
                last_progress = now
        outcomes[key] = (metadata, checks)
    if len(keys) == 1:
        metadata, checks = outcomes[keys[0]]
        yield dg.MaterializeResult(metadata=dict(metadata), check_results=list(checks) or None)
        return
    context.log.info(f"{len(outcomes)} of {len(keys)} recordings {what} in {time.monotonic() - started:.1f} s"
                     + (f"; {len(failures)} failed" if failures else ""))
    if not failures:
        for key, (metadata, _) in outcomes.items():
            context.add_asset_metadata(dict(metadata), partition_key=key)
        checks = _combined_checks({key: c for key, (_, c) in outcomes.items() if c})
        yield dg.MaterializeResult(check_results=checks or None)
        return
    for key, (metadata, _) in outcomes.items():
        yield dg.AssetMaterialization(asset_key=context.asset_key, partition=key, metadata=dict(metadata))
    lines = [f"{key}: {_describe(error)}" for key, error in list(failures.items())[:LISTED_FAILURES]]
    if len(failures) > LISTED_FAILURES:
        lines.append(f"and {len(failures) - LISTED_FAILURES} more")
    raise dg.Failure(
        description=f"{len(failures)} of {len(keys)} recordings failed (the other {len(outcomes)} are "
                    f"materialised):\n" + "\n".join(lines),
        metadata={"failed_recordings": dg.MetadataValue.json(sorted(failures)),
                  "materialised_recordings": dg.MetadataValue.int(len(outcomes))},
    ) from next(iter(failures.values()))
