"""Sensors of the ``annotations`` group: annotation files edited by people or the annotator."""

import json
from pathlib import Path

import dagster as dg

from songexplorer_core.annotations import find_interval_csvs, parse_csv_name
from songexplorer_core.formats import find_annotation_files, format_of_file, name_info
from songexplorer_core.project import recording_key
from songexplorer_dagster.defs.resources import ProjectResource
from songexplorer_dagster.partitions import recordings_partitions


def annotation_file_states(groundtruth: Path, formats: tuple[str, ...] = ()) -> dict[str, list[int]]:
    """``{path relative to groundtruth: [mtime_ns, size]}`` of every annotated CSV, and of every
    annotation file in ``formats`` (the project's ``annotation_formats``) beside its recording."""
    states = {}
    for path in [*find_interval_csvs(groundtruth, kinds=["annotated"]), *find_annotation_files(groundtruth, formats)]:
        stat = path.stat()
        states[path.relative_to(groundtruth).as_posix()] = [stat.st_mtime_ns, stat.st_size]
    return states


def recording_key_of_csv(relative_csv: str) -> str | None:
    """The key of the recording an annotation CSV (path relative to groundtruth/) belongs to."""
    parsed = parse_csv_name(Path(relative_csv).name)
    fmt = format_of_file(relative_csv) if parsed is None else None
    if fmt is not None:
        parsed = name_info(relative_csv, fmt)
    if parsed is None:
        return None
    return recording_key(Path(relative_csv).parent / parsed.recording)


@dg.sensor(
    target=["annotations"],
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=("A changed, new or deleted <wav>-annotated-<name>.csv (the annotator saves these), or an "
                 "annotation file in the project's annotation_formats (Raven, Audacity, TextGrid, DAS), "
                 "re-materialises that recording's annotations; ground_truth follows by automation."),
)
def annotation_files_sensor(context: dg.SensorEvaluationContext, project: ProjectResource):
    """Re-materialise ``annotations`` for recordings whose annotation CSVs changed."""
    groundtruth = project.project().groundtruth
    current = annotation_file_states(groundtruth, project.settings().annotation_formats)
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
