"""Detection of whole recordings (every channel, every criterion), detectors chosen by name
(plug-ins of ``songexplorer.detectors``, :func:`detect_with`), and SongExplorer's
``<wav>-detected.csv``."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from songexplorer_core.annotations import concat_intervals, empty_intervals, intervals_frame
from songexplorer_core.atomic import atomic_write
from songexplorer_core.detect.criteria import frequency_runs, quiet_runs, time_runs
from songexplorer_core.detect.params import DetectParams

DETECTED_KIND = "detected"
#: The built-in detector's name (SongExplorer's ``detect_plugin`` default).
DEFAULT_DETECTOR = "time-freq-threshold"
#: Labels, in the order SongExplorer writes them (multi-channel recordings append the channel).
TIME_LABEL, FREQUENCY_LABEL, NEITHER_LABEL = "time", "frequency", "neither"


def _as_channels(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.ndim != 2:
        raise ValueError(f"samples must be shaped (ntics,) or (ntics, nchannels); got shape {samples.shape}")
    if not (np.issubdtype(samples.dtype, np.integer) or np.issubdtype(samples.dtype, np.floating)):
        raise ValueError(f"samples must be integer or floating point; got dtype {samples.dtype}")
    if np.issubdtype(samples.dtype, np.floating) and not np.all(np.isfinite(samples)):
        raise ValueError("samples contain NaN or infinite values")
    return samples


def detect(
    samples: np.ndarray,
    rate: int,
    params: DetectParams = DetectParams(),
    *,
    wav: str = "",
    quirks: bool = True,
) -> pd.DataFrame:
    """Detect loud (``time``), tonal (``frequency``) and quiet (``neither``) intervals.

    Args:
        samples: ``(ntics,)`` or ``(ntics, nchannels)``; raw int16 values give SongExplorer's
            exact thresholds (the criteria are scale-free, so floats work too).
        rate: sample rate, Hz.
        params: detection parameters (SongExplorer's defaults).
        wav: recording basename for the ``wav`` column.
        quirks: ``True`` (default) reproduces SongExplorer's rows exactly (exclusive ``time``
            stops, window-formula ``frequency`` rows that may start before tic 0, ``neither``
            missing the ends); ``False`` gives inclusive intervals inside ``[0, ntics-1]``.

    Returns:
        An interval table (``wav, start, stop, kind, label``; kind ``detected``): all ``time``
        rows, then ``frequency``, then ``neither``, each ascending. With several channels every
        channel is detected on its own and labels carry its index (``time0``, ``frequency1``,
        ``neither0``...) -- SongExplorer kept only the last channel's ``time`` rows (QUIRK 4).
    """
    samples = _as_channels(samples)
    settings = params.settings(rate)
    nchannels = samples.shape[1]
    ntics = samples.shape[0]
    if ntics == 0:
        return empty_intervals()
    per_label: dict[str, list[pd.DataFrame]] = {TIME_LABEL: [], FREQUENCY_LABEL: [], NEITHER_LABEL: []}
    for channel_index in range(nchannels):
        channel = samples[:, channel_index]
        suffix = str(channel_index) if nchannels > 1 else ""
        time_signal, time_noise = time_runs(channel, settings)
        frequency_signal, frequency_noise = frequency_runs(channel, settings, quirks=quirks)
        if not quirks:
            time_signal = time_signal - np.array([0, 1])
            time_noise = time_noise - np.array([0, 1])
        quiet = quiet_runs(time_noise, frequency_noise, ntics=ntics, quirks=quirks)
        for label, runs in ((TIME_LABEL, time_signal), (FREQUENCY_LABEL, frequency_signal), (NEITHER_LABEL, quiet)):
            if len(runs):
                per_label[label].append(intervals_frame(wav, runs[:, 0], runs[:, 1], DETECTED_KIND, label + suffix))
    frames = [frame for label in per_label for frame in per_label[label]]
    return concat_intervals(frames) if frames else empty_intervals()


def detect_recording(
    path: str | os.PathLike,
    params: DetectParams = DetectParams(),
    *,
    expected_rate: int | None = None,
    expected_channels: int | None = None,
    quirks: bool = True,
) -> pd.DataFrame:
    """Read a recording (raw int16) with :mod:`songexplorer_core.audio` and :func:`detect` it.

    ``expected_rate`` (Hz) / ``expected_channels`` make a mismatching file an error, as
    SongExplorer's ``audio_tic_rate`` / ``audio_nchannels`` checks do.

    Raises:
        songexplorer_core.audio.RecordingError: naming the file, if it is missing, unreadable or
            does not match; ValueError naming the file for parameters unusable at its rate.
    """
    from songexplorer_core.audio import check_recording, read_recording

    path = Path(path)
    info = check_recording(path, expected_rate=expected_rate, expected_channels=expected_channels)
    rate, samples = read_recording(path, dtype="int16")
    try:
        return detect(samples, rate, params, wav=path.name, quirks=quirks)
    except ValueError as error:
        raise ValueError(f"{info.path}: {error}") from error


def time_freq_threshold(samples: np.ndarray, rate: int, *, wav: str,
                        parameters: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The built-in detector as a plug-in of ``songexplorer.detectors`` (docs/plugins.md):
    :func:`detect` with SongExplorer's parameters as its GUI writes them (``time_sigma="9,4"``,
    times in ms, frequencies in Hz; :meth:`DetectParams.from_songexplorer`) and
    ``songexplorer_quirks`` (bool, default true: SongExplorer's rows exactly)."""
    parameters = dict(parameters or {})
    quirks = parameters.pop("songexplorer_quirks", True)
    if isinstance(quirks, str) and quirks.strip().lower() in ("true", "false"):  # as the CLI and Dagster give it
        quirks = quirks.strip().lower() == "true"
    if not isinstance(quirks, bool):
        raise ValueError(f"songexplorer_quirks is true or false, not {quirks!r}")
    return detect(samples, rate, DetectParams.from_songexplorer(parameters), wav=wav, quirks=quirks)


def detect_with(
    detector: str,
    path: str | os.PathLike,
    parameters: Mapping[str, Any] | None = None,
    *,
    expected_rate: int | None = None,
    expected_channels: int | None = None,
) -> pd.DataFrame:
    """Detect recording ``path`` with the detector named ``detector`` (a plug-in of
    ``songexplorer.detectors``, :mod:`songexplorer_core.plugins`): it is given the samples at
    the int16 scale ``(ntics, nchannels)``, the rate in Hz, the recording's name and
    ``parameters``, and returns an interval table of kind ``detected`` (tics inclusive).

    Raises:
        songexplorer_core.plugins.PluginError: an unknown or broken detector, naming the installed ones.
        songexplorer_core.audio.RecordingError: naming the file, if it is missing, unreadable or
            does not match; ValueError naming the file and the detector for what it refuses or returns.
    """
    from songexplorer_core import plugins
    from songexplorer_core.annotations import validate_intervals
    from songexplorer_core.audio import check_recording, read_recording

    run = plugins.load("detectors", detector)
    path = Path(path)
    info = check_recording(path, expected_rate=expected_rate, expected_channels=expected_channels)
    rate, samples = read_recording(path, dtype="int16")
    try:
        frame = run(samples, rate, wav=path.name, parameters=dict(parameters or {}))
    except ValueError as error:
        raise ValueError(f"{info.path}: detector {detector!r}: {error}") from error
    if not isinstance(frame, pd.DataFrame) or not {"wav", "start", "stop", "kind", "label"} <= set(frame.columns):
        raise ValueError(f"{info.path}: detector {detector!r} returned {type(frame).__name__}, not an interval table "
                         f"(wav, start, stop, kind, label); see docs/plugins.md")
    frame = intervals_frame(*(frame[c].to_numpy() for c in ("wav", "start", "stop", "kind", "label")))
    if detector != DEFAULT_DETECTOR:  # the built-in's quirk rows (QUIRK 1-2) are checked by the caller
        frame = validate_intervals(frame, source=f"detector {detector!r} on {path.name}")
        outside = frame[(frame["start"] < 0) | (frame["stop"] >= info.frames)]
        if len(outside):
            raise ValueError(f"{info.path}: detector {detector!r} returned {len(outside)} interval(s) outside tics "
                             f"0..{info.frames - 1}, e.g. {outside.iloc[0].to_dict()}")
    return frame


# --------------------------------------------------------------------------------------------
# output


def detected_csv_name(wav: str | os.PathLike) -> str:
    """SongExplorer's output name for a recording: ``<basename>-detected.csv``
    (e.g. ``PS_20130625111709_ch3.wav-detected.csv``)."""
    return f"{Path(wav).name}-detected.csv"


def detected_csv_text(frame: pd.DataFrame) -> str:
    """SongExplorer's headerless ``wav,start,stop,kind,label`` lines (``\\n`` line ends).

    Unlike the shared interval writer this accepts the negative ``frequency`` starts that
    SongExplorer itself writes (QUIRK 2)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for wav, start, stop, kind, label in frame[["wav", "start", "stop", "kind", "label"]].itertuples(index=False, name=None):
        writer.writerow([wav, int(start), int(stop), kind, label])
    return buffer.getvalue()


def write_detected_csv(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write detections as SongExplorer's ``-detected.csv``, atomically (temp file + rename)."""
    path = Path(path)
    text = detected_csv_text(frame)
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return path
