"""The ``annotations`` group: what people labelled, per recording, and the ground truth across recordings."""

import json

import dagster as dg
import pandas as pd

from songexplorer_core.annotations import (
    COLUMNS,
    concat_intervals,
    drop_duplicate_intervals,
    empty_intervals,
    interval_csvs_for_recording,
    parse_csv_name,
    read_intervals_csv,
)
from songexplorer_core.atomic import atomic_path, atomic_write
from songexplorer_core.audio import recording_info
from songexplorer_core.formats import foreign_files_for_recording, read_annotation_file
from songexplorer_core.outputs import content_hash
from songexplorer_dagster.batches import RECORDINGS_BACKFILL, per_recording
from songexplorer_dagster.conditions import eager_over_recordings
from songexplorer_dagster.failures import fails_clearly
from songexplorer_dagster.defs.resources import DenseSetResource, ProjectResource
from songexplorer_dagster.partitions import recordings_partitions

ANNOTATOR = "annotator"


def _counts_table(frame: pd.DataFrame, by: str) -> str:
    if not len(frame):
        return "(no annotations)"
    table = frame.groupby([by, "label"]).size().unstack(fill_value=0)
    return table.to_markdown()


@dg.asset(
    partitions_def=recordings_partitions,
    deps=["recordings"],
    group_name="annotations",
    kinds={"csv", "parquet"},
    automation_condition=dg.AutomationCondition.eager(),
    backfill_policy=RECORDINGS_BACKFILL,
)
@fails_clearly
def annotations(context: dg.AssetExecutionContext, project: ProjectResource):
    """One recording's annotations, every annotator's: each ``<wav>-annotated-<name>.csv``
    beside it (both SongExplorer naming styles) and, when ``songexplorer.toml`` names
    ``annotation_formats``, each Raven table, Audacity label track, TextGrid or DAS CSV beside it
    in those formats (``<stem>.TextGrid``...: annotator = the format's name), every row validated against the recording (a bad
    row fails the step naming file and line; nothing is dropped silently), written to
    ``outputs/annotations/<key>.parquet`` with an ``annotator`` column.

    ``annotation_files_sensor`` re-materialises a recording's partition when its CSVs change
    (the annotator saves there), so ``ground_truth`` follows and the model shows as stale.
    Many recordings run in batches, one partition each (``songexplorer_dagster.batches``).
    """
    yield from per_recording(context, lambda key, step: _annotations_one(step, project, key), what="annotations read")


def _annotations_one(context: dg.AssetExecutionContext, project: ProjectResource, key: str) -> dict:
    wav_path = project.recording_path(key)
    ntics = recording_info(wav_path).frames
    tables, files, notes = [], [], []
    for csv_path in interval_csvs_for_recording(wav_path, kinds=("annotated",)):
        # Raises AnnotationError naming the file and each bad line (past the end, stop < start, a label
        # that is not a name, ...); exact duplicate rows are kept once, with a note naming the lines
        table = read_intervals_csv(csv_path, recording_tics={wav_path.name: ntics}, notes=notes)
        annotator = parse_csv_name(csv_path.name).tag
        tables.append(table.assign(**{ANNOTATOR: annotator}))
        files.append(csv_path.name)
    settings = project.settings()
    # other tools' files beside the recording, in the formats songexplorer.toml names (docs/formats.md)
    for path, fmt, info in foreign_files_for_recording(wav_path, settings.annotation_formats):
        table = read_annotation_file(path, fmt, rate=settings.audio_tic_rate, wav=wav_path.name, kind="annotated",
                                     recording_tics={wav_path.name: ntics}, notes=notes)
        tables.append(table.assign(**{ANNOTATOR: info.tag}))
        files.append(path.name)
    frame = concat_intervals(tables) if tables else empty_intervals().assign(**{ANNOTATOR: pd.Series([], dtype=str)})
    frame = frame.assign(recording=key)
    for note in notes:
        context.log.warning(note)
    path = project.project().annotations_path(key)
    with atomic_path(path) as temporary:
        frame.to_parquet(temporary, index=False)
    counts = {str(k): int(v) for k, v in frame["label"].value_counts().items()}
    context.log.info(f"{wav_path.name}: {len(frame)} annotation(s) in {len(files)} file(s): {counts}")
    return {
        "dagster/row_count": dg.MetadataValue.int(len(frame)),
        "annotations_per_label": dg.MetadataValue.json(counts),
        "per_annotator": dg.MetadataValue.md(_counts_table(frame, ANNOTATOR)),
        "files": dg.MetadataValue.json(files),
        "parquet": dg.MetadataValue.path(str(path)),
    }


@dg.asset(
    deps=[dg.AssetDep(annotations, partition_mapping=dg.AllPartitionMapping())],
    group_name="annotations",
    kinds={"parquet"},
    # after annotations update; waits for partitions on their way, ignores those that cannot come
    automation_condition=eager_over_recordings(["annotations"]),
    # a project of recordings alone has no ground truth yet: trained_model waits while it is missing
    output_required=False,
)
def ground_truth(context: dg.AssetExecutionContext, project: ProjectResource, dense_set: DenseSetResource):
    """Every recording's annotations in one table, what training reads:
    ``outputs/ground_truth/ground_truth.parquet`` and the recordings' paths (``recordings.json``).

    Dense annotations (the ``dense_set`` resource) are a test set and stay out of it by default
    (``held_out_of_training``); they are counted in the metadata and listed in
    ``outputs/ground_truth/held_out.parquet``.

    Starting from zero (recordings, no annotation yet): the empty files are written but no
    materialisation is recorded until the first annotation, so ``trained_model``, which trains by
    itself once ground truth exists, waits for it instead of failing (docs/dagster.md, "Starting
    from zero"). Once recorded, an empty ground truth is recorded too.
    """
    result = _ground_truth(context, project, dense_set)
    if result is not None:
        yield result


@fails_clearly
def _ground_truth(context: dg.AssetExecutionContext, project: ProjectResource, dense_set: DenseSetResource
                  ) -> dg.MaterializeResult | None:
    keys = context.instance.get_dynamic_partitions(recordings_partitions.name)
    tables, recording_paths, missing = [], {}, []
    for key in sorted(keys):
        path = project.project().annotations_path(key)
        if not path.exists():
            missing.append(key)
            continue
        table = pd.read_parquet(path)
        if len(table):
            tables.append(table)
            recording_paths[key] = str(project.recording_path(key))
    if missing:
        context.log.warning(f"no annotations materialised yet for {len(missing)} recording(s): {missing[:5]}")
    frame = pd.concat(tables, ignore_index=True) if tables else empty_intervals().assign(
        recording=pd.Series([], dtype=str), **{ANNOTATOR: pd.Series([], dtype=str)})
    held = dense_set.held_out(frame, project)
    held_out, frame = frame[held].reset_index(drop=True), frame[~held].reset_index(drop=True)
    if len(held_out):
        context.log.info(f"held out of training ({dense_set.held_out_of_training}): {len(held_out)} dense "
                         f"annotation(s) of {held_out['recording'].nunique()} recording(s) by "
                         f"{sorted(set(held_out[ANNOTATOR]))}")
    # the same sound in two annotators' files (or one file under both naming styles) counts once
    notes = []
    frame = drop_duplicate_intervals(frame, by=[*COLUMNS, "recording"], where="ground truth", notes=notes)
    for note in notes:
        context.log.warning(note)
    recording_paths = {key: p for key, p in recording_paths.items() if key in set(frame["recording"])}
    paths = project.project()
    path = paths.ground_truth_path
    with atomic_path(path) as temporary:
        frame.to_parquet(temporary, index=False)
    with atomic_path(paths.held_out_path) as temporary:
        held_out.to_parquet(temporary, index=False)
    with atomic_write(paths.ground_truth_recordings_path) as handle:
        json.dump(recording_paths, handle, indent=2)
    counts = {str(k): int(v) for k, v in frame["label"].value_counts().items()} if len(frame) else {}
    context.log.info(f"ground truth: {len(frame)} annotation(s) in {len(recording_paths)} recording(s): {counts}")
    if not len(frame) and context.instance.get_latest_materialization_event(context.asset_key) is None:
        context.log.info("no annotations yet: ground truth not recorded, the first model waits for the first "
                         "annotation (label sounds in the annotator's cluster view: the label_sounds_job fills it)")
        return None
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(frame)),
            "annotations_per_label": dg.MetadataValue.json(counts),
            "recordings_annotated": dg.MetadataValue.int(len(recording_paths)),
            "held_out_dense_annotations": dg.MetadataValue.int(len(held_out)),
            "held_out_recordings": dg.MetadataValue.json(sorted(set(held_out["recording"]))),
            "content_hash": dg.MetadataValue.text(content_hash(frame)),
            "per_recording": dg.MetadataValue.md(_counts_table(frame, "recording")),
            "parquet": dg.MetadataValue.path(str(path)),
        }
    )

