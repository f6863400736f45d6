"""Reading recordings: whole files or spans of tics, with rate and channel checks.

A *tic* is one audio sample; tic indices are 0-based. SongExplorer reads 16-bit PCM WAVs and
works on the raw int16 values for detection, and on values divided by 32768 for the networks;
both are available here through ``dtype``. Recordings in any other format libsndfile reads
(8/24/32-bit PCM, 32/64-bit float, ...) are brought to that same int16 scale (full scale 1.0 =
32768), so a float WAV from Audacity gives the same results as its 16-bit export.

Recordings are never modified: everything here only reads.
"""

from __future__ import annotations

import os
import struct
import warnings
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


#: Sample formats libsndfile reads into int16 exactly as they are (8-bit values scaled by 256,
#: u-law and A-law decoded to 16 bits): read as int16 directly. Every other format (24- and
#: 32-bit PCM, 32- and 64-bit float, ADPCM...) is read as floats and scaled to int16 units:
#: libsndfile reads a float WAV into int16 without scaling, i.e. as silence.
_INT16_EXACT_SUBTYPES = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "ULAW", "ALAW"})
#: Frames read at once from a recording stored in another format (bounds the float64 copy).
_BLOCK_TICS = 1 << 18
_DTYPES = ("int16", "float32")


class RecordingWarning(UserWarning):
    """A recording was read, but something about its samples is worth knowing (float samples
    beyond full scale, clipped for detection); the message names the file."""


class RecordingReader:
    """An open recording, read span by span in SongExplorer's units whatever its sample format.

    SongExplorer's common unit is the int16 scale: ``dtype="int16"`` gives int16 sample values
    (16-bit PCM as stored; 8-bit PCM times 256; 24- and 32-bit PCM and float rounded to int16,
    full scale 1.0 = 32768), ``dtype="float32"`` the same scale divided by 32768 (full scale
    [-1, 1), 24-bit and float recordings at their full precision). NaN or infinite samples are
    refused with the file and tic named.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike):
        self.info = recording_info(path)
        self.path = self.info.path
        try:
            self._handle = soundfile.SoundFile(str(self.path))
        except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
            raise RecordingError(f"{self.path}: not a readable audio file ({error}).") from error
        self.exact_int16 = self.info.subtype in _INT16_EXACT_SUBTYPES

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._handle.close()

    def read(self, start_tic: int, stop_tic: int, dtype: str = "int16") -> np.ndarray:
        """Tics ``[start_tic, stop_tic)`` (clamped to the recording) as ``(ntics, nchannels)``.

        Raises:
            RecordingError: naming the file, for an unreadable span or NaN/infinite samples.
        """
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be 'int16' or 'float32', not {dtype!r}")
        start = max(0, int(start_tic))
        stop = max(start, min(self.info.frames, int(stop_tic)))
        try:
            self._handle.seek(start)
            if self.exact_int16:
                samples = self._handle.read(stop - start, dtype="int16", always_2d=True)
                if dtype == "float32":
                    samples = samples.astype(np.float32) / np.float32(INT16_SCALE)
            else:
                samples = self._read_scaled(start, stop, dtype)
        except (soundfile.LibsndfileError, RuntimeError) as error:
            raise RecordingError(f"{self.path}: could not read tics {start}-{stop}: {error}") from error
        if len(samples) != stop - start:
            raise RecordingError(f"{self.path}: could only read {len(samples)} of tics {start}-{stop}; the file "
                                 f"is damaged: copy the recording again from its source.")
        return samples

    def _read_scaled(self, start: int, stop: int, dtype: str) -> np.ndarray:
        """Read a span stored in a format int16 cannot hold exactly, block by block as float64
        (libsndfile scales integer PCM to [-1, 1) and leaves floats as stored)."""
        out = np.empty((stop - start, self.info.channels), dtype=np.int16 if dtype == "int16" else np.float32)
        at, beyond = 0, False
        while at < len(out):
            block = self._handle.read(min(_BLOCK_TICS, len(out) - at), dtype="float64", always_2d=True)
            if not len(block):
                return out[:at]
            finite = np.isfinite(block)
            if not finite.all():
                tic, channel = np.argwhere(~finite)[0]
                raise RecordingError(
                    f"{self.path}: sample {block[tic, channel]} at tic {start + at + int(tic)} (channel "
                    f"{int(channel)}) is not a number; a recording must hold finite samples. Re-export it from "
                    f"its source (or repair those samples) and put it back.")
            beyond = beyond or bool(np.abs(block).max() > 1.0)
            if dtype == "int16":
                out[at: at + len(block)] = np.clip(np.rint(block * INT16_SCALE), -32768.0, 32767.0)
            else:
                out[at: at + len(block)] = block
            at += len(block)
        if beyond:
            warnings.warn(
                f"{self.path}: some samples of this {self.info.subtype} recording lie beyond full scale (|x| > 1.0): "
                f"detection clips them to int16, the networks see them as they are. If the recording is stored at "
                f"another scale, re-export it normalised to [-1, 1].", RecordingWarning, stacklevel=3)
        return out


def read_recording(
    path: str | os.PathLike,
    start_tic: int | None = None,
    stop_tic: int | None = None,
    *,
    dtype: str = "int16",
) -> tuple[int, np.ndarray]:
    """Read tics ``[start_tic, stop_tic)`` of a recording (the whole file by default), whatever
    its sample format (8/16/24/32-bit PCM, 32/64-bit float, u-law, A-law, ADPCM: see
    :class:`RecordingReader`).

    Args:
        path: the WAV file.
        start_tic: first tic to read (0-based, clamped to >= 0).
        stop_tic: one past the last tic to read (clamped to the recording's length).
        dtype: ``"int16"`` for sample values at SongExplorer's int16 scale (what detection
            uses: 16-bit PCM as stored, other formats scaled so that full scale is 32768) or
            ``"float32"`` for those values divided by 32768 (what the networks use).

    Returns:
        ``(rate, samples)`` with rate in Hz and samples shaped ``(ntics, nchannels)``.

    Raises:
        RecordingError: naming the file, for a missing, truncated or unreadable recording, or
            one holding NaN or infinite samples.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be 'int16' or 'float32', not {dtype!r}")
    with RecordingReader(path) as reader:
        start = 0 if start_tic is None else start_tic
        stop = reader.info.frames if stop_tic is None else stop_tic
        return reader.info.rate, reader.read(start, stop, dtype)


def is_recording(path: str | os.PathLike) -> bool:
    """True for a file name SongExplorer treats as a recording (``.wav``), excluding the
    probability WAVs classify writes (``<recording>.wav-<label>.wav`` are never recordings here
    because derived files live under ``outputs/``, not beside the recordings)."""
    name = Path(path).name
    return name.endswith(RECORDING_EXTENSIONS) and not name.startswith(".")
