"""What keeps the graph up to date without anyone asking.

* ``annotation_files_sensor``: a changed, new or deleted ``<wav>-annotated-<name>.csv`` (the
  annotator saves these) re-materialises that recording's ``annotations`` partition; the
  ``ground_truth`` follows by automation and the model shows as stale.
* ``automation_sensor``: evaluates the assets' automation conditions (eager per-recording
  annotations, probabilities and ethograms; the first model once there is ground truth). Dagster's
  own default automation sensor starts stopped; this one runs from the start.
* ``nightly_retrain``: at 03:00, retrains when the ground truth changed since the model was trained.
"""

import json
from pathlib import Path

import dagster as dg

from songexplorer_core.annotations import find_interval_csvs, parse_csv_name
from songexplorer_core.project import recording_key
from songexplorer_dagster.assets.annotations import annotations
from songexplorer_dagster.assets.models import accuracy_report, trained_model
from songexplorer_dagster.partitions import recordings_partitions
from songexplorer_dagster.resources import ProjectResource


def annotation_file_states(groundtruth: Path) -> dict[str, list[int]]:
    """``{csv path relative to groundtruth: [mtime_ns, size]}`` of every annotated CSV."""
    states = {}
    for path in find_interval_csvs(groundtruth, kinds=["annotated"]):
        stat = path.stat()
        states[path.relative_to(groundtruth).as_posix()] = [stat.st_mtime_ns, stat.st_size]
    return states


def recording_key_of_csv(relative_csv: str) -> str | None:
    """The key of the recording an annotation CSV (path relative to groundtruth/) belongs to."""
    parsed = parse_csv_name(Path(relative_csv).name)
    if parsed is None:
        return None
    return recording_key(Path(relative_csv).parent / parsed.recording)


@dg.sensor(
    target=[annotations],
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=__doc__,
)
def annotation_files_sensor(context: dg.SensorEvaluationContext, project: ProjectResource):
    """Re-materialise ``annotations`` for recordings whose annotation CSVs changed."""
    groundtruth = project.project().groundtruth
    current = annotation_file_states(groundtruth)
    if context.cursor is None:
        # First tick: remember what is there; new recordings get their annotations by automation.
        context.update_cursor(json.dumps(current))
        return dg.SkipReason(f"watching {len(current)} annotation file(s)")
    previous = json.loads(context.cursor)
    changed = {p for p in current if previous.get(p) != current[p]} | (set(previous) - set(current))
    known = set(context.instance.get_dynamic_partitions(recordings_partitions.name))
    keys, unknown = set(), []
    for relative in sorted(changed):
        key = recording_key_of_csv(relative)
        if key in known:
            keys.add(key)
        else:
            unknown.append(relative)
    if unknown:
        context.log.warning(f"annotation file(s) for recordings that are not partitions (yet): {unknown[:5]}")
    context.update_cursor(json.dumps(current))
    if not keys:
        return dg.SkipReason("no annotation file changed")
    stamp = json.dumps({p: current.get(p) for p in sorted(changed)}, sort_keys=True)
    for key in sorted(keys):
        context.log.info(f"annotations of {key} changed")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=key, run_key=f"annotations:{key}:{hash(stamp)}") for key in sorted(keys)]
    )


automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Materialises assets whose automation conditions say so (new recordings, new champion).",
)


def _latest_metadata(instance: dg.DagsterInstance, asset_key: str) -> dict | None:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset_key))
    if event is None or event.asset_materialization is None:
        return None
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


@dg.schedule(
    cron_schedule="0 3 * * *",
    target=dg.AssetSelection.assets(trained_model, accuracy_report),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="At 03:00, retrain when the ground truth changed since the last training.",
)
def nightly_retrain(context: dg.ScheduleEvaluationContext):
    """Retrain only if the annotations differ from those the current model learnt from."""
    ground = _latest_metadata(context.instance, "ground_truth")
    if ground is None:
        return dg.SkipReason("no ground truth yet")
    model = _latest_metadata(context.instance, "trained_model")
    if model is not None and model.get("ground_truth_hash") == ground.get("content_hash"):
        return dg.SkipReason("annotations unchanged since the last training")
    return dg.RunRequest(run_key=f"retrain-{ground.get('content_hash')}")
