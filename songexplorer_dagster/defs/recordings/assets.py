"""The ``recordings`` group: the WAV files in the project's ``groundtruth/``, one partition each."""

import json

import dagster as dg

from songexplorer_core.atomic import atomic_write
from songexplorer_core.audio import check_recording, source_file
from songexplorer_core.links import annotator_url
from songexplorer_core.project import recording_relpath
from songexplorer_dagster.batches import RECORDINGS_BACKFILL, per_recording
from songexplorer_dagster.failures import fails_clearly
from songexplorer_dagster.partitions import recordings_partitions
from songexplorer_dagster.defs.resources import ProjectResource


@dg.asset(
    partitions_def=recordings_partitions,
    group_name="recordings",
    kinds={"wav", "soundfile", "json"},
    backfill_policy=RECORDINGS_BACKFILL,
)
@fails_clearly
def recordings(context: dg.AssetExecutionContext, project: ProjectResource):
    """One WAV of ``groundtruth/``, checked: a complete, readable file at the project's
    ``audio_tic_rate`` (Hz) with ``audio_nchannels`` channels (``songexplorer_core.audio.check_recording``).

    A bad file fails the step with a message naming the file and the fix, and nothing is
    written. A good one gets ``outputs/recordings/<key>.json`` (what its header said, and the
    file's size and modification time when it was checked); its duration (s), rate (Hz),
    channels and tics are the metadata. The recording itself is never modified. Many
    recordings run in batches, one partition each (``songexplorer_dagster.batches``).
    """
    yield from per_recording(context, lambda key, step: _check_one(step, project, key), what="checked")


def _check_one(context: dg.AssetExecutionContext, project: ProjectResource, key: str) -> dict:
    path = project.recording_path(key)
    settings = project.settings()
    # Raises RecordingError ("<path>: sample rate is 44100 Hz but this project expects 2500 Hz.
    # Resample ...") before anything is written.
    info = check_recording(
        path, expected_rate=settings.audio_tic_rate, expected_channels=settings.audio_nchannels
    )
    stat = source_file(path).stat()  # a channel recording's file (songexplorer_core.audio_readers)
    record = {
        "key": key,
        "path": recording_relpath(key).as_posix(),  # relative to groundtruth/
        "rate_hz": info.rate,
        "channels": info.channels,
        "tics": info.frames,
        "duration_s": info.duration_s,
        "subtype": info.subtype,
        **({"file_channels": list(info.file_channels)} if info.file_channels is not None else {}),
        "size_bytes": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
    }
    record_path = project.project().recording_record_path(key)
    with atomic_write(record_path) as handle:
        json.dump(record, handle, indent=2)
    context.log.info(f"{path}: {info.duration_s:.1f} s, {info.rate} Hz, {info.channels} channel(s)")
    return {
        "duration_s": dg.MetadataValue.float(info.duration_s),
        "rate_hz": dg.MetadataValue.int(info.rate),
        "channels": dg.MetadataValue.int(info.channels),
        "tics": dg.MetadataValue.int(info.frames),
        "size_bytes": dg.MetadataValue.int(stat.st_size),
        "subtype": dg.MetadataValue.text(info.subtype),
        "path": dg.MetadataValue.path(str(path)),
        "record": dg.MetadataValue.path(str(record_path)),
        "open_in_annotator": dg.MetadataValue.url(annotator_url(key, 0.0)),
    }
