"""What the recording view draws and plays, computed for the visible window only.

A long recording is never sent to the browser whole: the waveform is reduced to at most a few
thousand points (the minimum and maximum of each bin, so clicks and pulses stay visible), the
spectrogram to a few hundred columns, and playback to the visible span. Long windows are read in
chunks, or frame by frame, so memory stays bounded whatever the recording's length.

Tics are 0-based sample indices of the recording; seconds are ``tic / rate``.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile
from scipy import signal

from songexplorer_core.audio import read_recording

#: Browsers refuse WAVs below 3 kHz (headless Chromium: a 2500 Hz WAV fails with MediaError 4); playback is resampled to at least this, Hz.
MIN_PLAYBACK_RATE = 8000
#: Playback above this is resampled down to it, Hz (browsers differ above 96 kHz).
MAX_PLAYBACK_RATE = 96000
#: Windows longer than this many tics are read in chunks / frame by frame.
CHUNK_TICS = 1 << 20


@dataclass(frozen=True)
class Trace:
    """A waveform ready to draw: ``tics`` (float, may repeat for min/max pairs) and ``values``
    divided by ``scale`` (int16 counts; by default the window's largest magnitude) and clipped to
    [-1, 1]; ``peak`` is the window's largest magnitude, int16 counts."""

    tics: np.ndarray
    values: np.ndarray
    peak: float
    scale: float


@dataclass(frozen=True)
class Spectrogram:
    """Power in dB, ``power[frequency, column]``, for columns centred at ``tics`` (first to last
    column centre) and frequencies ``0 .. nyquist`` Hz."""

    power: np.ndarray
    first_tic: float
    last_tic: float
    nyquist: float
    low_db: float  #: suggested bottom of the colour scale, dB
    high_db: float  #: suggested top of the colour scale, dB


def _channel(path: Path, start: int, stop: int, channel: int) -> np.ndarray:
    rate, samples = read_recording(path, start, stop, dtype="int16")
    del rate
    if samples.shape[1] <= channel:
        raise ValueError(f"{path}: has {samples.shape[1]} channel(s); channel {channel} does not exist")
    return samples[:, channel]


def waveform_trace(path: str | Path, start_tic: int, stop_tic: int, *, max_points: int = 4000,
                   channel: int = 0, scale: float | None = None) -> Trace:
    """The waveform of tics ``[start_tic, stop_tic)`` with at most ``max_points`` points.

    ``scale`` (int16 counts) is what 1.0 stands for; pass the whole recording's peak so a quiet
    window looks quiet (default: this window's peak).

    Short windows are returned sample for sample; longer ones as the minimum and maximum of
    ``max_points // 2`` equal bins, read in chunks of :data:`CHUNK_TICS`.
    """
    path = Path(path)
    start_tic, stop_tic = int(start_tic), int(stop_tic)
    n = max(stop_tic - start_tic, 0)
    if n == 0:
        return Trace(np.zeros(0), np.zeros(0), 0.0, float(scale or 1.0))
    if n <= max_points:
        values = _channel(path, start_tic, stop_tic, channel).astype(np.float64)
        tics = np.arange(start_tic, start_tic + len(values), dtype=np.float64)
    else:
        nbins = max(max_points // 2, 1)
        edges = np.linspace(start_tic, stop_tic, nbins + 1).round().astype(np.int64)
        lows = np.empty(nbins)
        highs = np.empty(nbins)
        first = 0
        while first < nbins:
            last = min(nbins, first + max(1, int(CHUNK_TICS // max(n / nbins, 1))))
            chunk = _channel(path, edges[first], edges[last], channel).astype(np.float64)
            offsets = edges[first:last] - edges[first]
            offsets = offsets[offsets < len(chunk)]
            if len(chunk) == 0 or len(offsets) == 0:
                lows[first:last] = highs[first:last] = 0.0
            else:
                lows[first:first + len(offsets)] = np.minimum.reduceat(chunk, offsets)
                highs[first:first + len(offsets)] = np.maximum.reduceat(chunk, offsets)
                lows[first + len(offsets):last] = highs[first + len(offsets):last] = 0.0
            first = last
        centres = (edges[:-1] + edges[1:]) / 2.0
        tics = np.repeat(centres, 2)
        values = np.empty(2 * nbins)
        values[0::2] = lows
        values[1::2] = highs
    peak = float(np.max(np.abs(values))) if len(values) else 0.0
    if scale is None or scale <= 0:
        scale = peak if peak > 0 else 1.0
    return Trace(tics, np.clip(values / scale, -1.0, 1.0), peak, float(scale))


def spectrogram_window_tics(rate: int, window_s: float = 0.025) -> int:
    """The FFT length for the view: the power of two nearest ``window_s`` seconds, 32-2048 tics."""
    tics = max(window_s * rate, 1.0)
    return int(min(max(2 ** round(math.log2(tics)), 32), 2048))


def window_spectrogram(path: str | Path, start_tic: int, stop_tic: int, *, rate: int, max_columns: int = 600,
                       nfft: int | None = None, channel: int = 0,
                       percentiles: tuple[float, float] = (50.0, 99.9)) -> Spectrogram:
    """The spectrogram of tics ``[start_tic, stop_tic)`` with at most ``max_columns`` columns.

    ``low_db``/``high_db`` are the ``percentiles`` of its power: a colour scale where the
    background is dark and song stands out.

    Columns are Hann-windowed ``nfft``-tic frames (default :func:`spectrogram_window_tics`)
    centred at evenly spaced tics across the window; when frames would not overlap, each frame is
    read by itself, so a zoomed-out view of an hour-long recording reads only ``max_columns *
    nfft`` tics.
    """
    path = Path(path)
    nfft = nfft or spectrogram_window_tics(rate)
    start_tic, stop_tic = int(start_tic), int(stop_tic)
    n = max(stop_tic - start_tic, 1)
    ncolumns = int(max(1, min(max_columns, math.ceil(4 * n / nfft))))
    centres = np.linspace(start_tic, stop_tic, ncolumns + 2)[1:-1] if ncolumns > 1 else np.array([(start_tic + stop_tic) / 2])
    firsts = np.round(centres - nfft / 2).astype(np.int64)
    if ncolumns * nfft < 2 * n and n > CHUNK_TICS:
        frames = np.zeros((ncolumns, nfft))
        for i, first in enumerate(firsts):
            chunk = _channel(path, max(first, 0), first + nfft, channel).astype(np.float64)
            offset = max(0, -first)
            frames[i, offset:offset + len(chunk)] = chunk
    else:
        lo = int(max(firsts.min(), 0))
        hi = int(firsts.max() + nfft)
        data = _channel(path, lo, hi, channel).astype(np.float64)
        padded = np.zeros(hi - lo + 2 * nfft)
        padded[nfft:nfft + len(data)] = data
        index = (firsts - lo + nfft)[:, None] + np.arange(nfft)[None, :]
        index = np.clip(index, 0, len(padded) - 1)
        frames = padded[index]
    frames = frames - frames.mean(axis=1, keepdims=True)
    window = signal.get_window("hann", nfft)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    power_db = 10 * np.log10(power.T + 1e-10)
    finite = power_db[np.isfinite(power_db)]
    low, high = (np.percentile(finite, list(percentiles)) if finite.size else (0.0, 1.0))
    if high <= low:
        high = low + 1.0
    return Spectrogram(power_db.astype(np.float32), float(centres[0]), float(centres[-1]), rate / 2.0,
                       float(low), float(high))


def playback_rate(rate: int, *, min_rate: int = MIN_PLAYBACK_RATE, max_rate: int = MAX_PLAYBACK_RATE) -> int:
    """The rate a recording at ``rate`` Hz is played at: the smallest whole multiple of ``rate``
    that reaches ``min_rate`` when ``rate`` is below it (2500 Hz -> 10000 Hz), ``max_rate`` when
    ``rate`` is above that, else ``rate`` itself."""
    if rate < min_rate:
        return int(rate * math.ceil(min_rate / rate))
    if rate > max_rate:
        return int(max_rate)
    return int(rate)


def playback_wav(path: str | Path, start_tic: int, stop_tic: int, *, rate: int, channel: int = 0,
                 min_rate: int = MIN_PLAYBACK_RATE, max_rate: int = MAX_PLAYBACK_RATE) -> tuple[bytes, int]:
    """The WAV file (bytes) to play tics ``[start_tic, stop_tic)``, resampled so browsers play it.

    The recording's timing and pitch are kept: only the sample rate changes
    (``scipy.signal.resample_poly``), so one second of playback is one second of recording.

    Returns:
        ``(wav_bytes, playback_rate_hz)``.
    """
    samples = _channel(Path(path), int(start_tic), int(stop_tic), channel).astype(np.float64)
    out_rate = playback_rate(rate, min_rate=min_rate, max_rate=max_rate)
    if out_rate != rate and len(samples):
        ratio = Fraction(out_rate, rate).limit_denominator(1000)
        samples = signal.resample_poly(samples, ratio.numerator, ratio.denominator)
    audio = np.clip(np.round(samples), -32768, 32767).astype(np.int16)
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, out_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue(), out_rate
