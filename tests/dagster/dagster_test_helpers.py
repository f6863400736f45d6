"""Helpers for the Dagster tests: write synthetic and deliberately bad recordings."""

from pathlib import Path

import numpy as np
import soundfile

from songexplorer_core.synth import make_song, write_song

RATE = 2500  #: Hz, the test projects' audio_tic_rate


def write_synth_song(groundtruth: Path, relative: str, *, seed: int = 1, duration_s: float = 5.0) -> Path:
    """Write a synthetic fly-song recording (pulse trains, sine, distractors) at ``relative``."""
    path = groundtruth / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    song = make_song(duration_s, RATE, seed=seed, wav=path.name)
    return write_song(song, path)


def write_wav(path: Path, samples, rate: int = RATE) -> Path:
    """Write int16 ``samples`` (shape (ntics,) or (ntics, nchannels)) as a 16-bit PCM WAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.asarray(samples, dtype=np.int16), rate, subtype="PCM_16", format="WAV")
    return path


def files_under(folder: Path) -> list[Path]:
    """Every file (not folder) below ``folder``."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


def project_instance_overrides(home: Path) -> dict:
    """``instance_for_test`` overrides giving a test instance the event log storage a project's
    instance has (``songexplorer_core/templates/dagster.yaml``)."""
    return {"event_log_storage": {"module": "songexplorer_dagster.sqlite_event_log",
                                  "class": "BatchedSqliteEventLogStorage",
                                  "config": {"base_dir": str(Path(home) / "history" / "runs")}}}
