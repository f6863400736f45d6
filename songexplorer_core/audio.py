"""Reading recordings: whole files or spans of tics, with rate and channel checks.

A *tic* is one audio sample; tic indices are 0-based. SongExplorer reads 16-bit PCM WAVs and
works on the raw int16 values for detection, and on values divided by 32768 for the networks;
both are available here through ``dtype``. Recordings in any other format libsndfile reads
(8/24/32-bit PCM, 32/64-bit float, ...) are brought to that same int16 scale (full scale 1.0 =
32768), so a float WAV from Audacity gives the same results as its 16-bit export.

Which reader reads a file, the high-pass filter and the channel map that makes several
recordings of one file (a channel recording's path is ``<file>-<name>``) are
:mod:`songexplorer_core.audio_readers`'; every function here takes a recording's path, a file's
or a channel recording's alike.

Recordings are never modified: everything here only reads.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from songexplorer_core.audio_readers import (
    AudioSettings,
    RecordingError,
    audio_settings,
    channel_map,
    highpass,
    highpass_pad_tics,
    highpass_sos,
    is_audio_name,
    open_file,
    read_header,
    reader_for,
    split_channel_path,
)

__all__ = ["INT16_SCALE", "RECORDING_EXTENSIONS", "RecordingError", "RecordingInfo", "RecordingReader",
           "RecordingWarning", "check_recording", "is_recording", "read_recording", "recording_exists",
           "recording_info", "source_file"]

#: SongExplorer divides int16 samples by this to get floats in [-1, 1).
INT16_SCALE = 32768.0

#: File extensions SongExplorer's load-wav plug-in treats as recordings; every suffix an installed
#: reader takes is one here (``songexplorer_core.audio_readers.recording_extensions``).
RECORDING_EXTENSIONS = (".wav", ".WAV")


@dataclass(frozen=True)
class RecordingInfo:
    """What a recording's header says about it."""

    path: Path  #: the recording's path (``<file>-<name>`` for a channel recording)
    rate: int  #: sample rate, Hz (tics per second)
    channels: int
    frames: int  #: number of tics
    subtype: str  #: e.g. "PCM_16"
    size_bytes: int  #: of the file holding it
    #: the file's channels this recording is made of (``None``: all of them)
    file_channels: tuple[int, ...] | None = None

    @property
    def duration_s(self) -> float:
        """Duration in seconds."""
        return self.frames / self.rate if self.rate else 0.0


def source_file(path: str | os.PathLike) -> Path:
    """The file holding recording ``path``: itself, or for a channel recording
    ``<file>-<name>`` (``songexplorer_core.audio_readers``) its file."""
    return split_channel_path(path)[0]


def recording_exists(path: str | os.PathLike) -> bool:
    """True when recording ``path`` is there: a file, or a channel recording whose file is."""
    return source_file(path).is_file()


def _resolve(path: Path, settings: AudioSettings):
    """``(file, reader, header of the file, channels or None)`` of recording ``path``."""
    file, name = split_channel_path(path)
    if not file.exists():
        if name is not None:
            raise RecordingError(f"{path}: no such recording: its file {file} is missing. Restore the file.")
        raise RecordingError(f"{path}: no such recording. Check the path or restore the file.")
    if not file.is_file():
        raise RecordingError(f"{path}: not a file.")
    reader = reader_for(file, settings)
    header = read_header(reader, file)
    if name is None:
        return file, reader, header, None
    mapping = channel_map(reader, file, header, settings)
    if name not in mapping:
        raise RecordingError(
            f"{path}: {file.name} holds no recording {name!r}: its channel map names {sorted(mapping) or 'none'}. "
            f"Fix the name, or the project's audio_channel_map.")
    return file, reader, header, mapping[name]


def recording_info(path: str | os.PathLike) -> RecordingInfo:
    """Read a recording's header (rate, channels, tics) without loading its samples.

    Raises :class:`RecordingError` naming the file for a missing, truncated or non-audio file.
    """
    path = Path(path)
    file, _, header, channels = _resolve(path, audio_settings())
    return RecordingInfo(
        path=path,
        rate=header.rate,
        channels=header.channels if channels is None else len(channels),
        frames=header.frames,
        subtype=header.subtype,
        size_bytes=file.stat().st_size,
        file_channels=channels,
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


#: Frames read at once from a recording stored as floats (bounds the float64 copy).
_BLOCK_TICS = 1 << 18
_DTYPES = ("int16", "float32")


class RecordingWarning(UserWarning):
    """A recording was read, but something about its samples is worth knowing (float samples
    beyond full scale, clipped for detection); the message names the file."""


class RecordingReader:
    """An open recording, read span by span in SongExplorer's units whatever its sample format,
    its reader, its high-pass filter and its channel map (:mod:`songexplorer_core.audio_readers`).

    SongExplorer's common unit is the int16 scale: ``dtype="int16"`` gives int16 sample values
    (16-bit PCM as stored; 8-bit PCM times 256; 24- and 32-bit PCM and float rounded to int16,
    full scale 1.0 = 32768), ``dtype="float32"`` the same scale divided by 32768 (full scale
    [-1, 1), 24-bit and float recordings at their full precision). With a high-pass filter the
    span is filtered with extra tics on each side (``audio_readers.highpass_pad_tics``), so a span
    reads the same as that part of the whole filtered recording. NaN or infinite samples are
    refused with the file and tic named.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike):
        settings = audio_settings()
        self.path = Path(path)
        file, reader, header, channels = _resolve(self.path, settings)
        self.info = RecordingInfo(path=self.path, rate=header.rate,
                                  channels=header.channels if channels is None else len(channels),
                                  frames=header.frames, subtype=header.subtype, size_bytes=file.stat().st_size,
                                  file_channels=channels)
        self.file = file
        self._channels = None if channels is None else list(channels)
        self._sos = None
        self._pad = 0
        if settings.highpass_hz:
            self._sos = highpass_sos(settings.highpass_hz, settings.highpass_order, header.rate)
            self._pad = highpass_pad_tics(settings.highpass_hz, settings.highpass_order, header.rate)
        self._handle = open_file(reader, file)

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
        first, last = (max(0, start - self._pad), min(self.info.frames, stop + self._pad)) if self._sos is not None \
            else (start, stop)
        try:
            samples = self._read_raw(first, last)
        except (OSError, RuntimeError) as error:
            raise RecordingError(f"{self.path}: could not read tics {start}-{stop}: {error}") from error
        if len(samples) != last - first:
            raise RecordingError(f"{self.path}: could only read {len(samples)} of tics {first}-{last}; the file "
                                 f"is damaged: copy the recording again from its source.")
        if self._sos is not None:
            floats = samples / INT16_SCALE if samples.dtype == np.int16 else samples
            samples = highpass(np.asarray(floats, dtype=np.float64), self._sos)[start - first: stop - first]
        if samples.dtype == np.int16:
            return samples if dtype == "int16" else samples.astype(np.float32) / np.float32(INT16_SCALE)
        if len(samples) and np.abs(samples).max() > 1.0:
            warnings.warn(
                f"{self.path}: some samples of this {self.info.subtype or 'float'} recording lie beyond full scale "
                f"(|x| > 1.0): detection clips them to int16, the networks see them as they are. If the recording "
                f"is stored at another scale, re-export it normalised to [-1, 1].", RecordingWarning, stacklevel=2)
        if dtype == "int16":
            return np.clip(np.rint(samples * INT16_SCALE), -32768.0, 32767.0).astype(np.int16)
        return samples.astype(np.float32)

    def _read_raw(self, start: int, stop: int) -> np.ndarray:
        """Tics ``[start, stop)`` as the reader gives them, this recording's channels only: int16
        at the int16 scale as stored, or float64 at full scale 1.0, read block by block; NaN or
        infinite samples refused."""
        blocks, at = [], start
        while at < stop:
            block = np.asarray(self._handle.read(at, min(stop, at + _BLOCK_TICS)))
            if block.ndim == 1:
                block = block[:, None]
            if self._channels is not None:
                block = block[:, self._channels]
            if block.dtype != np.int16:
                if not np.issubdtype(block.dtype, np.floating):
                    raise RecordingError(f"{self.path}: its audio reader gave {block.dtype} samples; a reader "
                                         f"gives int16 (int16 scale) or floats (full scale 1.0), docs/plugins.md")
                block = block.astype(np.float64, copy=False)
                finite = np.isfinite(block)
                if not finite.all():
                    tic, channel = np.argwhere(~finite)[0]
                    raise RecordingError(
                        f"{self.path}: sample {block[tic, channel]} at tic {at + int(tic)} (channel {int(channel)}) "
                        f"is not a number; a recording must hold finite samples. Re-export it from its source (or "
                        f"repair those samples) and put it back.")
            blocks.append(block)
            if not len(block):
                break
            at += len(block)
        if not blocks:
            return np.zeros((0, self.info.channels), dtype=np.int16)
        if len({b.dtype for b in blocks}) > 1:
            blocks = [b / INT16_SCALE if b.dtype == np.int16 else b for b in blocks]
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


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
        path: the recording (a file, or a channel recording ``<file>-<name>``).
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
    """True for a file name that is a recording: a suffix some installed audio reader takes
    (``.wav``, ``.flac``, ... for the built-in one), not hidden. The probability WAVs classify
    writes (``<recording>.wav-<label>.wav``) are never recordings here because derived files live
    under ``outputs/``, not beside the recordings."""
    return is_audio_name(os.path.basename(os.fspath(path)))  # not Path(): once per file of large folders
