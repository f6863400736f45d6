"""Reading recordings: whole files or spans of tics, with rate and channel checks.

A *tic* is one audio sample; tic indices are 0-based. SongExplorer reads 16-bit PCM WAVs and
works on the raw int16 values for detection, and on values divided by 32768 for the networks;
both are available here through ``dtype``.

Recordings are never modified: everything here only reads.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

#: SongExplorer divides int16 samples by this to get floats in [-1, 1).
INT16_SCALE = 32768.0

#: File extensions treated as recordings (SongExplorer's load-wav plug-in).
RECORDING_EXTENSIONS = (".wav", ".WAV")


class RecordingError(ValueError):
    """A recording cannot be used; the message names the file and how to fix it."""


@dataclass(frozen=True)
class RecordingInfo:
    """What a recording's header says about it."""

    path: Path
    rate: int  #: sample rate, Hz (tics per second)
    channels: int
    frames: int  #: number of tics
    subtype: str  #: e.g. "PCM_16"
    size_bytes: int

    @property
    def duration_s(self) -> float:
        """Duration in seconds."""
        return self.frames / self.rate if self.rate else 0.0


def _check_riff_complete(path: Path) -> None:
    """Refuse a WAV whose data chunk is shorter than its header claims (a truncated copy).

    libsndfile reads such files quietly up to where the bytes stop, which would silently shift
    every downstream result; SongExplorer's scipy reader fails obscurely instead.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return  # not RIFF/WAVE: soundfile decides (it may be another container or garbage)
        offset = 12
        while offset + 8 <= size:
            handle.seek(offset)
            chunk = handle.read(8)
            if len(chunk) < 8:
                break
            chunk_id = chunk[:4]
            (chunk_size,) = struct.unpack("<I" if head[:4] == b"RIFF" else ">I", chunk[4:])
            if chunk_id == b"data":
                available = size - (offset + 8)
                # 0xFFFFFFFF / 0 are used by streaming writers for "unknown": accept those.
                if chunk_size not in (0, 0xFFFFFFFF) and chunk_size > available:
                    raise RecordingError(
                        f"{path}: truncated WAV: its header announces {chunk_size} bytes of audio "
                        f"but only {available} are present. The copy is incomplete; copy the "
                        f"recording again from its source."
                    )
                return
            offset += 8 + chunk_size + (chunk_size & 1)


def recording_info(path: str | os.PathLike) -> RecordingInfo:
    """Read a recording's header (rate, channels, tics) without loading its samples.

    Raises :class:`RecordingError` naming the file for a missing, truncated or non-audio file.
    """
    path = Path(path)
    if not path.exists():
        raise RecordingError(f"{path}: no such recording. Check the path or restore the file.")
    if not path.is_file():
        raise RecordingError(f"{path}: not a file.")
    _check_riff_complete(path)
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise RecordingError(
            f"{path}: not a readable audio file ({error}). SongExplorer recordings are "
            f"uncompressed PCM WAV files; re-export it as WAV or remove it from the ground-truth folder."
        ) from error
    return RecordingInfo(
        path=path,
        rate=int(info.samplerate),
        channels=int(info.channels),
        frames=int(info.frames),
        subtype=str(info.subtype),
        size_bytes=path.stat().st_size,
    )


def check_recording(
    path: str | os.PathLike,
    *,
    expected_rate: int | None = None,
    expected_channels: int | None = None,
) -> RecordingInfo:
    """Return the recording's info after checking its rate (Hz) and channel count.

    Raises :class:`RecordingError` naming the file, what was found, what was expected and the fix.
    """
    info = recording_info(path)
    if expected_rate is not None and info.rate != int(expected_rate):
        raise RecordingError(
            f"{info.path}: sample rate is {info.rate} Hz but this project expects {expected_rate} Hz. "
            f"Resample the recording to {expected_rate} Hz (e.g. `sox in.wav -r {expected_rate} out.wav`) "
            f"or set the project's audio_tic_rate to {info.rate} if every recording uses it."
        )
    if expected_channels is not None and info.channels != int(expected_channels):
        raise RecordingError(
            f"{info.path}: has {info.channels} channel(s) but this project expects {expected_channels}. "
            f"Split it into mono files (e.g. `sox in.wav out.wav remix 1`) or set the project's "
            f"audio_nchannels to {info.channels}."
        )
    if info.frames == 0:
        raise RecordingError(f"{info.path}: the recording holds no samples.")
    return info


def read_recording(
    path: str | os.PathLike,
    start_tic: int | None = None,
    stop_tic: int | None = None,
    *,
    dtype: str = "int16",
) -> tuple[int, np.ndarray]:
    """Read tics ``[start_tic, stop_tic)`` of a recording (the whole file by default).

    Args:
        path: the WAV file.
        start_tic: first tic to read (0-based, clamped to >= 0).
        stop_tic: one past the last tic to read (clamped to the recording's length).
        dtype: ``"int16"`` for the raw sample values (what detection uses) or ``"float32"`` for
            values divided by 32768 (what the networks use).

    Returns:
        ``(rate, samples)`` with rate in Hz and samples shaped ``(ntics, nchannels)``.
    """
    info = recording_info(path)
    start = 0 if start_tic is None else max(0, int(start_tic))
    stop = info.frames if stop_tic is None else min(info.frames, int(stop_tic))
    if stop < start:
        stop = start
    try:
        if dtype == "int16":
            samples = soundfile.read(str(path), start=start, stop=stop, dtype="int16", always_2d=True)[0]
        elif dtype == "float32":
            samples = soundfile.read(str(path), start=start, stop=stop, dtype="int16", always_2d=True)[0]
            samples = samples.astype(np.float32) / np.float32(INT16_SCALE)
        else:
            raise ValueError(f"dtype must be 'int16' or 'float32', not {dtype!r}")
    except soundfile.LibsndfileError as error:
        raise RecordingError(f"{path}: could not read tics {start}-{stop}: {error}") from error
    return info.rate, samples


def is_recording(path: str | os.PathLike) -> bool:
    """True for a file name SongExplorer treats as a recording (``.wav``), excluding the
    probability WAVs classify writes (``<recording>.wav-<label>.wav`` are never recordings here
    because derived files live under ``outputs/``, not beside the recordings)."""
    name = Path(path).name
    return name.endswith(RECORDING_EXTENSIONS) and not name.startswith(".")
