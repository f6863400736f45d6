"""A demo project filled with synthetic fly song and seed annotations.

It mirrors SongExplorer's tutorial: the first recordings carry sparse seed annotations (as a
person makes to start training: pulses as points, sine and ambient as ranges), the last one
carries none, like a new recording waiting to be classified. With ``dense=True`` that last one
also carries dense annotations by :data:`DEMO_DENSE_ANNOTATOR` (every pulse and sine bout the
generator put in, as an exhaustive annotator would mark them), and the project's settings name
that annotator as dense: the congruence report and the promotion gate then have a test set that
training never sees.
"""

from __future__ import annotations

import os
from pathlib import Path

from songexplorer_core.annotations import annotated_csv_name, write_intervals_csv
from songexplorer_core.project import Project, ProjectSettings, init_project
from songexplorer_core.synth import SongParams, dense_annotations, make_song, seed_annotations, write_song

DEMO_ANNOTATOR = "seed"
DEMO_DENSE_ANNOTATOR = "dense"


def make_demo_project(
    directory: str | os.PathLike,
    *,
    nrecordings: int = 3,
    duration_s: float = 120.0,
    rate: int = 2500,
    annotations_per_label: int = 16,
    nannotated: int | None = None,
    seed: int = 1,
    dense: bool = False,
    progress=None,
) -> Project:
    """Create (or complete) a demo project of synthetic recordings.

    Args:
        directory: project folder.
        nrecordings: how many recordings (``demo-<i>.wav``) to generate.
        duration_s: length of each recording, seconds.
        rate: sample rate, Hz.
        annotations_per_label: seed annotations per label in each annotated recording.
        nannotated: how many recordings get seed annotations (default: all but the last).
        seed: random seed; the same seed gives the same project.
        dense: give the recordings without seed annotations dense annotations by
            :data:`DEMO_DENSE_ANNOTATOR` and name that annotator dense in ``songexplorer.toml``.
        progress: optional callable ``progress(message)``.

    Existing recordings are left as they are, so running it twice changes nothing.
    """
    dense_annotators = (DEMO_DENSE_ANNOTATOR,) if dense else ()
    project = init_project(directory, settings=ProjectSettings(audio_tic_rate=rate, audio_nchannels=1,
                                                               dense_annotators=dense_annotators))
    if nannotated is None:
        nannotated = max(1, nrecordings - 1)
    for index in range(nrecordings):
        wav_name = f"demo-{index + 1}.wav"
        wav_path = project.groundtruth / wav_name
        if wav_path.exists():
            continue
        song = make_song(duration_s, rate, SongParams(), seed=seed * 1000 + index, wav=wav_name)
        if index < nannotated:
            # allow_fewer: a short song may hold fewer sine bouts than asked for; take what it has
            seeds = seed_annotations(song, annotations_per_label, seed=seed * 1000 + index, allow_fewer=True)
            write_intervals_csv(seeds, project.groundtruth / annotated_csv_name(wav_name, DEMO_ANNOTATOR))
        elif dense:
            write_intervals_csv(dense_annotations(song),
                                project.groundtruth / annotated_csv_name(wav_name, DEMO_DENSE_ANNOTATOR))
        # the recording last, so a watching sensor never sees it without its annotations
        write_song(song, wav_path)
        if progress:
            progress(f"wrote {wav_path}")
    return project


def add_demo_recording(project: Project, *, duration_s: float = 120.0, seed: int = 1) -> Path:
    """Drop one more synthetic recording into ``groundtruth/`` (as a lab would copy a new WAV).

    It is named ``demo-<n>.wav`` after the first free number and its song is drawn with the seed
    ``make_demo_project`` would give the n-th recording of a project made with ``seed``
    (``seed * 1000 + n - 1``), so each added recording is new song, never a copy of another."""
    number = 1
    while (project.groundtruth / f"demo-{number}.wav").exists():
        number += 1
    wav_name = f"demo-{number}.wav"
    song = make_song(duration_s, project.settings().audio_tic_rate, SongParams(), seed=seed * 1000 + number - 1,
                     wav=wav_name)
    return write_song(song, project.groundtruth / wav_name)
