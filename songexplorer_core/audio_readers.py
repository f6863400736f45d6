"""Audio readers (SongExplorer's ``audio_read_plugin``): which files are recordings, how their
samples are read, a high-pass filter, and how a multi-channel file becomes several recordings.

* A **reader** is a plug-in of group ``songexplorer.audio_readers`` (``songexplorer_core.plugins``):
  a class or factory called with the reader's options, returning an object with ``extensions``
  (the file suffixes it reads), ``info(path) -> AudioHeader`` and ``read(path, start_tic,
  stop_tic) -> samples`` (docs/plugins.md). The built-in ``soundfile`` reader
  (:class:`SoundfileReader`) reads every format libsndfile reads (WAV in any sample format,
  FLAC, OGG, AIFF, ...). The reader of a file is the one the settings name, else the one whose
  extensions hold the file's suffix.
* The **high-pass filter** (SongExplorer's ``highpass-filter`` plug-in): a Butterworth filter of
  ``highpass_order`` at ``highpass_hz``, zero phase (``scipy.signal.sosfiltfilt``), applied to
  whatever a reader returns.
* The **channel map** (SongExplorer's ``audio_read_rec2ch``): ``{name: [channel, ...]}``; a file
  the map applies to becomes one recording per name, called ``<file name>-<name>``
  (``rig.wav`` with ``{left: [0], right: [1]}`` gives recordings ``rig.wav-left`` and
  ``rig.wav-right``, as SongExplorer names them). A map with one name keeps the file's own
  name. A channel recording has no file of its own: :func:`split_channel_path` finds its file.

The settings in force (:class:`AudioSettings`, from the project's ``songexplorer.toml``, the
command line or Dagster's project resource) are set once per process with
:func:`configure_audio` and read by :mod:`songexplorer_core.audio`; they travel to child
processes in ``$SONGEXPLORER_AUDIO``. Recordings are never modified: everything here reads.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from songexplorer_core import plugins

#: The environment variable holding the settings in force, for child processes (JSON).
AUDIO_ENV = "SONGEXPLORER_AUDIO"
#: The built-in reader's name.
DEFAULT_READER = "soundfile"
#: File suffixes the built-in reader takes for recordings: the containers libsndfile reads.
SOUNDFILE_EXTENSIONS = (".wav", ".wave", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".aifc", ".au", ".snd",
                        ".w64", ".rf64", ".caf", ".mp3")
#: What a channel-map name may be: it ends a recording's name after a ``-``.
_CHANNEL_NAME = re.compile(r"[A-Za-z0-9_]+")
#: Never a channel name: SongExplorer's ``<wav>-<YYYYMMDDTHHMMSS>-annotated-<name>.csv`` sessions.
_TIMESTAMP = re.compile(r"\d{8}T\d{6}")


class RecordingError(ValueError):
    """A recording cannot be used; the message names the file and how to fix it."""


@dataclass(frozen=True)
class AudioHeader:
    """What a reader says about a file without reading its samples."""

    rate: int  #: Hz (tics per second)
    channels: int
    frames: int  #: tics
    subtype: str = ""  #: the sample format, e.g. ``PCM_16``, ``FLOAT``


@dataclass(frozen=True)
class AudioSettings:
    """How recordings are read: SongExplorer's ``audio_read_plugin`` and its kwargs.

    Attributes:
        reader: the reader's name (a plug-in of ``songexplorer.audio_readers``); empty: by the
            file's suffix.
        options: keyword options the reader is made with, as ``((name, value), ...)``.
        highpass_hz: cut-off of the high-pass filter, Hz; 0: no filter.
        highpass_order: order of the Butterworth filter (SongExplorer's default 2).
        channel_map: ``((recording name, (channel, ...)), ...)``, channels 0-based; empty: each
            file is one recording with all its channels.
    """

    reader: str = ""
    options: tuple[tuple[str, Any], ...] = ()
    highpass_hz: float = 0.0
    highpass_order: int = 2
    channel_map: tuple[tuple[str, tuple[int, ...]], ...] = field(default=())

    @classmethod
    def make(cls, *, reader: str = "", options: Mapping[str, Any] | None = None, highpass_hz: float = 0.0,
             highpass_order: int = 2, channel_map: Mapping[str, Any] | None = None,
             where: str = "audio settings") -> AudioSettings:
        """Settings from plain values (TOML, JSON, command-line flags), checked.

        Raises:
            RecordingError: naming ``where`` and the bad value.
        """
        if not isinstance(reader, str):
            raise RecordingError(f"{where}: audio_reader must be a reader's name, not {reader!r}")
        try:
            cutoff = float(highpass_hz)
        except (TypeError, ValueError):
            cutoff = -1.0
        if isinstance(highpass_hz, bool) or not math.isfinite(cutoff) or cutoff < 0:
            raise RecordingError(f"{where}: audio_highpass_hz is a cut-off in Hz, >= 0 (0: no filter), not "
                                 f"{highpass_hz!r}")
        if isinstance(highpass_order, bool) or not isinstance(highpass_order, int) or not 1 <= highpass_order <= 10:
            raise RecordingError(f"{where}: the high-pass filter's order is a whole number from 1 to 10, not "
                                 f"{highpass_order!r}")
        pairs = []
        for name, channels in dict(channel_map or {}).items():
            if not isinstance(name, str) or not _CHANNEL_NAME.fullmatch(name) or _TIMESTAMP.fullmatch(name):
                raise RecordingError(f"{where}: channel-map name {name!r} must be letters, digits or '_' (it ends "
                                     f"recording names: <file>-<name>) and not a YYYYMMDDTHHMMSS time")
            if isinstance(channels, int) and not isinstance(channels, bool):
                channels = [channels]
            if (not isinstance(channels, (list, tuple)) or not channels
                    or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in channels)):
                raise RecordingError(f"{where}: channel map {name!r} must list 0-based channel numbers, e.g. "
                                     f"{name} = [0], not {channels!r}")
            pairs.append((name, tuple(int(c) for c in channels)))
        return cls(reader=reader.strip(), options=tuple(sorted(dict(options or {}).items())), highpass_hz=cutoff,
                   highpass_order=int(highpass_order), channel_map=tuple(pairs))

    def to_json(self) -> str:
        return json.dumps({"reader": self.reader, "options": dict(self.options), "highpass_hz": self.highpass_hz,
                           "highpass_order": self.highpass_order,
                           "channel_map": {name: list(chs) for name, chs in self.channel_map}}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AudioSettings:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise RecordingError(f"${AUDIO_ENV} is not JSON ({error})") from error
        return cls.make(where=f"${AUDIO_ENV}", **data)


_CONFIGURED: AudioSettings | None = None


def configure_audio(settings: AudioSettings) -> AudioSettings:
    """Put ``settings`` in force for this process and the processes it starts (``$SONGEXPLORER_AUDIO``).
    The reader is checked now, so an unknown name fails here naming the installed ones."""
    global _CONFIGURED
    if settings.reader:
        make_reader(settings.reader, settings.options)
    _CONFIGURED = settings
    os.environ[AUDIO_ENV] = settings.to_json()
    return settings


def audio_settings() -> AudioSettings:
    """The settings in force: :func:`configure_audio`'s, else ``$SONGEXPLORER_AUDIO``'s, else the
    defaults (readers by suffix, no filter, one recording per file)."""
    global _CONFIGURED
    if _CONFIGURED is None:
        text = os.environ.get(AUDIO_ENV, "").strip()
        _CONFIGURED = AudioSettings.from_json(text) if text else AudioSettings()
    return _CONFIGURED


# --------------------------------------------------------------------------------------------
# readers

_READERS: dict[tuple[str, tuple], Any] = {}


def make_reader(name: str, options: tuple[tuple[str, Any], ...] = ()) -> Any:
    """Reader ``name`` made with ``options`` (once per process).

    Raises:
        songexplorer_core.plugins.PluginError: unknown or broken reader, naming the installed ones.
    """
    key = (name, tuple(options))
    if key not in _READERS:
        if name == DEFAULT_READER and name not in plugins.installed("audio_readers"):
            factory = SoundfileReader  # a tree used without being installed: its entry points are absent
        else:
            factory = plugins.load("audio_readers", name)
        try:
            _READERS[key] = factory(**dict(options))
        except TypeError as error:
            raise plugins.PluginError(f"audio reader {name!r} does not take the options {dict(options)}: {error}") \
                from error
    return _READERS[key]


def _readers_by_suffix() -> dict[str, str]:
    """``{suffix: reader name}`` over the installed readers (made with no options); the built-in
    reader's suffixes first, a lab's reader taking the suffixes nobody else reads."""
    suffixes: dict[str, str] = {}
    loaded = {DEFAULT_READER: SoundfileReader, **plugins.load_group("audio_readers")}
    for name in sorted(loaded, key=lambda n: (n != DEFAULT_READER, n)):
        try:
            reader = make_reader(name)
        except plugins.PluginError:
            continue
        for suffix in getattr(reader, "extensions", ()):
            suffixes.setdefault(str(suffix).lower(), name)
    return suffixes


_SUFFIXES: dict[str, str] | None = None


def recording_extensions() -> tuple[str, ...]:
    """Every suffix some installed reader takes for a recording (lower case, with the dot)."""
    global _SUFFIXES
    if _SUFFIXES is None:
        _SUFFIXES = _readers_by_suffix()
    return tuple(_SUFFIXES)


def forget_readers() -> None:
    """Forget made readers and suffixes (after installing a reader in a running process; tests)."""
    global _SUFFIXES
    _READERS.clear()
    _SUFFIXES = None


def reader_for(path: Path, settings: AudioSettings | None = None) -> Any:
    """The reader of file ``path``: the one ``settings`` names, else the one for its suffix.

    Raises:
        RecordingError: no installed reader takes this suffix.
    """
    settings = audio_settings() if settings is None else settings
    if settings.reader:
        return make_reader(settings.reader, settings.options)
    recording_extensions()
    name = (_SUFFIXES or {}).get(path.suffix.lower())
    if name is None:
        raise RecordingError(f"{path}: no audio reader reads {path.suffix or 'files without a suffix'!r} files "
                             f"(readers installed for {', '.join(recording_extensions())}); convert it to WAV or "
                             f"FLAC, or install a reader for it (docs/plugins.md)")
    return make_reader(name, settings.options if name == settings.reader else ())


def read_header(reader: Any, path: Path) -> AudioHeader:
    """A reader's ``info(path)`` as an :class:`AudioHeader` (a plug-in may return a tuple
    ``(rate, channels, frames[, subtype])``), checked."""
    header = reader.info(path)
    if not isinstance(header, AudioHeader):
        header = AudioHeader(*header)
    if header.rate < 1 or header.channels < 1 or header.frames < 0:
        raise RecordingError(f"{path}: the audio reader says rate {header.rate} Hz, {header.channels} channel(s), "
                             f"{header.frames} tics; a recording needs a rate and channels")
    return header


# --------------------------------------------------------------------------------------------
# channel recordings


def is_audio_name(name: str) -> bool:
    """True for a file name some installed reader takes (not hidden)."""
    return not name.startswith(".") and name.lower().endswith(recording_extensions())


def split_channel_path(path: str | os.PathLike) -> tuple[Path, str | None]:
    """``(file, channel-map name)`` of a recording path: ``.../rig.wav-left`` -> ``(.../rig.wav,
    "left")``; a file's own path -> ``(path, None)``."""
    path = Path(path)
    if is_audio_name(path.name):
        return path, None
    stem, dash, name = path.name.rpartition("-")
    if dash and _CHANNEL_NAME.fullmatch(name) and not _TIMESTAMP.fullmatch(name) and is_audio_name(stem):
        return path.with_name(stem), name
    return path, None


def is_channel_name(name: str) -> bool:
    """True for ``<audio file name>-<channel-map name>`` (the recording's name, not a file's)."""
    return split_channel_path(Path(name))[1] is not None


def channel_map(reader: Any, path: Path, header: AudioHeader, settings: AudioSettings | None = None
                ) -> dict[str, tuple[int, ...]]:
    """The recordings file ``path`` holds, ``{name: channels}`` (SongExplorer's ``audio_read_rec2ch``):
    the reader's ``recordings(path, header)`` if it has one, else the settings' channel map;
    ``{}`` means the file is one recording with every channel."""
    settings = audio_settings() if settings is None else settings
    recordings = getattr(reader, "recordings", None)
    mapping = dict(recordings(path, header)) if callable(recordings) else dict(settings.channel_map)
    for name, channels in mapping.items():
        beyond = [c for c in channels if not 0 <= int(c) < header.channels]
        if beyond:
            raise RecordingError(f"{path}: the channel map gives recording {name!r} channel(s) {beyond}, but the "
                                 f"file has {header.channels} (0 to {header.channels - 1}); fix audio_channel_map")
    return {name: tuple(int(c) for c in channels) for name, channels in mapping.items()}


def expand_recordings(files: Mapping[str, Path], settings: AudioSettings | None = None) -> dict[str, Path]:
    """``{key: file}`` of audio files -> ``{key: recording path}`` with each multi-recording file
    replaced by its channel recordings (``rig.wav`` -> ``rig.wav-left``, ``rig.wav-right``: the
    key and the path both get ``-<name>``), sorted by key. Files whose header cannot be read are
    kept as they are, so whoever reads them reports why."""
    settings = audio_settings() if settings is None else settings
    expanded: dict[str, Path] = {}
    # One reader per suffix, not per file: a sensor expands 10,000 files every tick, and with no
    # channel map and no reader that splits files there is no header to read at all.
    splits: dict[str, Any] = {}
    for key, path in files.items():
        mapping: dict[str, tuple[int, ...]] = {}
        suffix = os.path.splitext(os.fspath(path))[1].lower()
        try:
            if suffix not in splits:
                reader = reader_for(Path(path), settings)
                splits[suffix] = reader if (settings.channel_map
                                            or callable(getattr(reader, "recordings", None))) else None
            reader = splits[suffix]
            if reader is not None:
                mapping = channel_map(reader, Path(path), read_header(reader, Path(path)), settings)
        except (RecordingError, OSError, plugins.PluginError):
            mapping = {}
        if len(mapping) > 1:
            for name in mapping:
                expanded[f"{key}-{name}"] = Path(path).with_name(f"{Path(path).name}-{name}")
        else:
            expanded[key] = Path(path)
    return dict(sorted(expanded.items()))


# --------------------------------------------------------------------------------------------
# the built-in reader


def check_riff_complete(path: Path) -> None:
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


#: Sample formats libsndfile reads into int16 exactly as they are (8-bit values scaled by 256,
#: u-law and A-law decoded to 16 bits): read as int16 directly. Every other format (24- and
#: 32-bit PCM, 32- and 64-bit float, ADPCM, FLAC's 24 bits...) is read as floats: libsndfile
#: reads a float WAV into int16 without scaling, i.e. as silence.
INT16_EXACT_SUBTYPES = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "ULAW", "ALAW"})


class SoundfileReader:
    """The built-in reader: every format libsndfile reads (``soundfile``). ``read`` gives int16
    for the formats int16 holds exactly and float64 (full scale 1.0) for the others."""

    extensions = SOUNDFILE_EXTENSIONS

    def info(self, path: Path) -> AudioHeader:
        check_riff_complete(path)
        try:
            info = soundfile.info(str(path))
        except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
            raise RecordingError(
                f"{path}: not a readable audio file ({error}). Recordings are audio files libsndfile "
                f"reads (WAV, FLAC, ...); re-export it as WAV or remove it from the ground-truth folder."
            ) from error
        return AudioHeader(rate=int(info.samplerate), channels=int(info.channels), frames=int(info.frames),
                           subtype=str(info.subtype))

    def open(self, path: Path) -> _SoundfileHandle:
        return _SoundfileHandle(path)

    def read(self, path: Path, start_tic: int, stop_tic: int) -> np.ndarray:
        with self.open(path) as handle:
            return handle.read(start_tic, stop_tic)


class _SoundfileHandle:
    """An open file of :class:`SoundfileReader`, read span by span."""

    def __init__(self, path: Path):
        try:
            self._file = soundfile.SoundFile(str(path))
        except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
            raise RecordingError(f"{path}: not a readable audio file ({error}).") from error
        self.exact_int16 = self._file.subtype in INT16_EXACT_SUBTYPES

    def __enter__(self) -> _SoundfileHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def read(self, start_tic: int, stop_tic: int) -> np.ndarray:
        self._file.seek(start_tic)
        return self._file.read(stop_tic - start_tic, dtype="int16" if self.exact_int16 else "float64",
                               always_2d=True)


class _GenericHandle:
    """A reader without ``open``: each span read with ``read(path, start, stop)``."""

    def __init__(self, reader: Any, path: Path):
        self.reader, self.path = reader, path

    def read(self, start_tic: int, stop_tic: int) -> np.ndarray:
        samples = np.asarray(self.reader.read(self.path, start_tic, stop_tic))
        return samples[:, None] if samples.ndim == 1 else samples

    def close(self) -> None:
        pass


def open_file(reader: Any, path: Path):
    """An open handle on ``path`` with ``read(start_tic, stop_tic)`` and ``close()``."""
    opener = getattr(reader, "open", None)
    return opener(path) if callable(opener) else _GenericHandle(reader, path)


# --------------------------------------------------------------------------------------------
# the high-pass filter


def highpass_sos(cutoff_hz: float, order: int, rate: int) -> np.ndarray:
    """Second-order sections of a Butterworth high-pass filter (scipy's ``butter``).

    Raises:
        RecordingError: a cut-off at or above the Nyquist frequency (rate / 2, Hz).
    """
    from scipy.signal import butter

    if not 0 < cutoff_hz < rate / 2:
        raise RecordingError(f"audio_highpass_hz={cutoff_hz:g} Hz must lie between 0 and the Nyquist frequency "
                             f"({rate / 2:g} Hz at {rate} Hz)")
    return butter(order, cutoff_hz, "highpass", fs=rate, output="sos")


def highpass_pad_tics(cutoff_hz: float, order: int, rate: int) -> int:
    """Tics read beyond each side of a span so the zero-phase filter's edges settle: eight periods
    of the cut-off per order (the filter's response has decayed far below one int16 step by then),
    and at least SongExplorer's ``3 * (2 * nsections + 1)``."""
    nsections = (order + 1) // 2
    return max(3 * (2 * nsections + 1), int(math.ceil(8 * order * rate / cutoff_hz)))


def highpass(samples: np.ndarray, sos: np.ndarray) -> np.ndarray:
    """``samples`` (ntics, nchannels, floats) filtered forwards and backwards along time (zero
    phase, SongExplorer's ``sosfiltfilt(..., padtype=None)``)."""
    from scipy.signal import sosfiltfilt

    if len(samples) == 0:
        return samples
    return sosfiltfilt(sos, samples, axis=0, padtype=None)
