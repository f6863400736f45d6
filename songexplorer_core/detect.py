"""SongExplorer's time/frequency threshold detector (``detect-plugins/time-freq-threshold.py``).

Detection marks three kinds of interval in a recording, each a row of kind ``detected``:

* ``time``: the waveform is loud. A tic is loud when ``|x - median(x)| > σ_signal · MAD(x)``
  (raw int16 values, un-normalised MAD); loud stretches closer than ``time smooth`` are merged.
* ``frequency``: the spectrum holds a line (a tone). Windows of ``N`` tics, hopped by ``N/2``,
  are tested with Thomson's multitaper harmonic F-test; a window is flagged when it holds a
  significant line inside ``frequency range``. Single flagged windows are dropped and single
  gaps filled (morphological opening, then closing, ``frequency smooth`` long).
* ``neither``: quiet, i.e. neither loud at the lower ``σ_noise`` nor tonal at the laxer ``ρ_noise``.

With the default ``quirks=True`` the rows are exactly SongExplorer's (v0.9.1),
including its odd tic conventions (Appendix A quirks 1-3 of the spec, see ``docs/detection.md``):
``time`` stops are exclusive, ``frequency`` rows use a window formula whose start can be
negative, and ``neither`` misses quiet stretches that touch either end of the recording.
``quirks=False`` gives inclusive, in-range intervals instead.

SongExplorer computed the F-test with ``nitime.utils.detect_lines`` and the morphology with
scikit-image; here the same arithmetic is done with ``scipy.signal.windows.dpss``,
``scipy.fft.rfft`` and ``scipy.ndimage``, vectorised over blocks of windows.

Units: tics are 0-based sample indices; ``rate`` is in Hz (tics per second); durations in the
parameters are milliseconds; frequencies in Hz, or cycles per tic where noted.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
import pandas as pd
from scipy import ndimage, stats
from scipy.signal import windows

from songexplorer_core.annotations import concat_intervals, empty_intervals, intervals_frame
from songexplorer_core.atomic import atomic_write

__all__ = [
    "DETECTED_KIND",
    "DetectParams",
    "DetectSettings",
    "detect",
    "detect_recording",
    "detected_csv_name",
    "write_detected_csv",
    "detected_csv_text",
    "time_runs",
    "frequency_runs",
    "quiet_runs",
    "harmonic_f_test",
    "line_flags",
    "window_flags",
    "multitaper_tapers",
    "skimage_closing",
    "skimage_opening",
    "mask_runs",
    "closed_runs",
]

#: ``kind`` of every row detection writes.
DETECTED_KIND = "detected"
#: Labels, in the order SongExplorer writes them (multi-channel recordings append the channel).
TIME_LABEL, FREQUENCY_LABEL, NEITHER_LABEL = "time", "frequency", "neither"
ROBUST_CHOICES = ("median", "mean")
#: SongExplorer runs the frequency criterion over chunks of this many tics (1024*1024);
#: windows never straddle a chunk border and runs of flagged windows are split there.
CHUNK_TICS = 1 << 20
#: Windows per block of the vectorised F-test. 128 windows of N=64 with K=7 tapers hold 1.8 MB of
#: complex spectra; 128-512 measured equally fast here (32: -35 %, 1024: -12 %).
BLOCK_WINDOWS = 128
#: SongExplorer keeps the DPSS tapers whose spectral concentration exceeds this (nitime low_bias).
TAPER_CONCENTRATION = 0.9
#: Milliseconds to seconds (SongExplorer's ``time_scale`` for ``time_units=ms``).
_MS = 0.001


# --------------------------------------------------------------------------------------------
# parameters


def _parse_pair(text: str, convert, name: str, example: str) -> tuple:
    parts = str(text).split(",")
    if len(parts) != 2:
        raise ValueError(f"{name} must be two numbers separated by a comma, like {example!r}; got {text!r}")
    try:
        return tuple(convert(part.strip()) for part in parts)
    except ValueError:
        kind = "whole numbers" if convert is int else "numbers"
        raise ValueError(f"{name} must be two {kind} separated by a comma, like {example!r}; got {text!r}") from None


def _parse_number(text: str, convert, name: str, example: str):
    try:
        return convert(str(text).strip())
    except ValueError:
        kind = "a whole number" if convert is int else "a number"
        raise ValueError(f"{name} must be {kind}, like {example!r}; got {text!r}") from None


def _parse_range(text: str) -> tuple[float, float | None]:
    parts = str(text).split("-")
    if len(parts) != 2:
        raise ValueError(
            f"frequency_range must be 'low-high' in Hz with either side optionally empty "
            f"(e.g. '0-', '100-800', '-500'); got {text!r}"
        )
    low_text, high_text = (part.strip() for part in parts)
    try:
        low = 0.0 if low_text == "" else float(low_text)
        high = None if high_text == "" else float(high_text)
    except ValueError:
        raise ValueError(f"frequency_range bounds must be numbers in Hz, like '100-800'; got {text!r}") from None
    return low, high


@dataclass(frozen=True)
class DetectParams:
    """Every parameter of SongExplorer's time-freq-threshold detector, with its defaults.

    Attributes:
        time_sigma: ``(σ_signal, σ_noise)``, whole numbers of MADs (or of standard deviations
            when ``time_sigma_robust="mean"``): loud is ``> σ_signal``, not-quiet is ``> σ_noise``.
        time_smooth_ms: loud stretches separated by fewer than this many milliseconds
            (rounded to tics) are merged. 6.4 ms = 16 tics at 2500 Hz.
        frequency_n_ms: F-test window length, milliseconds; must round to a power of two in tics
            (25.6 ms = 64 tics at 2500 Hz).
        frequency_nw: time-half-bandwidth product NW of the DPSS tapers (2·NW are computed,
            those with concentration > 0.9 are kept).
        frequency_p: ``(ρ_signal, ρ_noise)``: each is multiplied by ``1/NFFT`` to give the
            F-test's false-positive probability per frequency bin.
        frequency_range_hz: ``(low, high)`` in Hz; a window counts as tonal only for a line inside
            it. ``high=None`` means the Nyquist frequency.
        frequency_smooth_ms: flagged-window smoothing length, milliseconds; divided by the hop
            ``N/2`` (rounded down) it gives the opening/closing length in windows.
        time_sigma_robust: ``"median"`` (median and MAD) or ``"mean"`` (mean and standard deviation).
    """

    time_sigma: tuple[int, int] = (9, 4)
    time_smooth_ms: float = 6.4
    frequency_n_ms: float = 25.6
    frequency_nw: int = 4
    frequency_p: tuple[float, float] = (0.1, 1.0)
    frequency_range_hz: tuple[float, float | None] = (0.0, None)
    frequency_smooth_ms: float = 25.6
    time_sigma_robust: str = "median"

    def __post_init__(self) -> None:
        sigma = tuple(self.time_sigma)
        if len(sigma) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in sigma):
            raise ValueError(f"time_sigma must be two whole numbers (σ_signal, σ_noise), like (9, 4); got {self.time_sigma!r}")
        if min(sigma) < 0:
            raise ValueError(f"time_sigma values must be >= 0 MADs; got {self.time_sigma!r}")
        object.__setattr__(self, "time_sigma", (int(sigma[0]), int(sigma[1])))
        for name in ("time_smooth_ms", "frequency_n_ms", "frequency_smooth_ms"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.number)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number of milliseconds; got {value!r}")
            object.__setattr__(self, name, float(value))
        if not isinstance(self.frequency_nw, (int, np.integer)) or isinstance(self.frequency_nw, bool) or self.frequency_nw < 1:
            raise ValueError(f"frequency_nw must be a whole number >= 1 (SongExplorer's default is 4); got {self.frequency_nw!r}")
        object.__setattr__(self, "frequency_nw", int(self.frequency_nw))
        p = tuple(self.frequency_p)
        if len(p) != 2 or not all(isinstance(v, (int, float, np.number)) and math.isfinite(v) for v in p):
            raise ValueError(f"frequency_p must be two numbers (ρ_signal, ρ_noise), like (0.1, 1.0); got {self.frequency_p!r}")
        if min(p) <= 0:
            raise ValueError(
                f"frequency_p values must be > 0 (they scale the F-test's per-bin false-positive "
                f"probability 1/NFFT; 1.0 is nitime's default); got {self.frequency_p!r}"
            )
        object.__setattr__(self, "frequency_p", (float(p[0]), float(p[1])))
        bounds = tuple(self.frequency_range_hz)
        if len(bounds) != 2:
            raise ValueError(f"frequency_range_hz must be (low, high) in Hz, high may be None; got {self.frequency_range_hz!r}")
        low, high = bounds
        low = 0.0 if low is None else float(low)
        high = None if high is None else float(high)
        if not math.isfinite(low) or low < 0 or (high is not None and (not math.isfinite(high) or high < low)):
            raise ValueError(
                f"frequency_range_hz must satisfy 0 <= low <= high (Hz); got {self.frequency_range_hz!r}"
            )
        object.__setattr__(self, "frequency_range_hz", (low, high))
        if self.time_sigma_robust not in ROBUST_CHOICES:
            raise ValueError(f"time_sigma_robust must be one of {ROBUST_CHOICES}; got {self.time_sigma_robust!r}")

    # -- SongExplorer's string forms ------------------------------------------------------

    @classmethod
    def from_strings(
        cls,
        *,
        time_sigma: str = "9,4",
        time_smooth: str = "6.4",
        frequency_n: str = "25.6",
        frequency_nw: str = "4",
        frequency_p: str = "0.1,1.0",
        frequency_range: str = "0-",
        frequency_smooth: str = "25.6",
        time_sigma_robust: str = "median",
    ) -> DetectParams:
        """Parse the GUI's text boxes (times in ms, frequencies in Hz), e.g. ``time_sigma="9,4"``,
        ``frequency_range="0-"``. Raises ValueError naming the parameter and the expected form."""
        return cls(
            time_sigma=_parse_pair(time_sigma, int, "time_sigma", "9,4"),
            time_smooth_ms=_parse_number(time_smooth, float, "time_smooth", "6.4"),
            frequency_n_ms=_parse_number(frequency_n, float, "frequency_n", "25.6"),
            frequency_nw=_parse_number(frequency_nw, int, "frequency_nw", "4"),
            frequency_p=_parse_pair(frequency_p, float, "frequency_p", "0.1,1.0"),
            frequency_range_hz=_parse_range(frequency_range),
            frequency_smooth_ms=_parse_number(frequency_smooth, float, "frequency_smooth", "25.6"),
            time_sigma_robust=str(time_sigma_robust).strip(),
        )

    @classmethod
    def from_songexplorer(cls, parameters: Mapping[str, str]) -> DetectParams:
        """Parse SongExplorer's ``--parameters`` JSON object (keys ``time_sigma``, ``time_smooth``,
        ...; all values strings; missing keys take the defaults; unknown keys are an error)."""
        known = {"time_sigma", "time_smooth", "frequency_n", "frequency_nw", "frequency_p",
                 "frequency_range", "frequency_smooth", "time_sigma_robust"}
        unknown = sorted(set(parameters) - known)
        if unknown:
            raise ValueError(f"unknown detection parameter(s) {unknown}; expected some of {sorted(known)}")
        return cls.from_strings(**{key: str(value) for key, value in parameters.items()})

    def to_songexplorer(self) -> dict[str, str]:
        """The parameters as SongExplorer's strings (what its GUI and ``--parameters`` use)."""
        low, high = self.frequency_range_hz
        return {
            "time_sigma": f"{self.time_sigma[0]},{self.time_sigma[1]}",
            "time_smooth": repr(self.time_smooth_ms),
            "frequency_n": repr(self.frequency_n_ms),
            "frequency_nw": str(self.frequency_nw),
            "frequency_p": f"{self.frequency_p[0]!r},{self.frequency_p[1]!r}",
            "frequency_range": f"{low:g}-" + ("" if high is None else f"{high:g}"),
            "frequency_smooth": repr(self.frequency_smooth_ms),
            "time_sigma_robust": self.time_sigma_robust,
        }

    def settings(self, rate: int) -> DetectSettings:
        """Convert to tics and F-test constants for a recording sampled at ``rate`` Hz.

        Raises ValueError for parameters SongExplorer cannot run with at this rate (a window
        that is not a power of two in tics, smoothing shorter than one tic or window, too few
        well-concentrated tapers).
        """
        return DetectSettings.from_params(self, rate)


def _tics(ms: float, rate: int) -> int:
    # SongExplorer: round(float(text) * time_scale * audio_tic_rate), evaluated left to right.
    return round(ms * _MS * rate)


@functools.lru_cache(maxsize=16)
def multitaper_tapers(window_tics: int, nw: int) -> tuple[np.ndarray, np.ndarray]:
    """DPSS tapers for the F-test: the 2·NW Slepian sequences of length ``window_tics`` (unit
    energy), keeping those with spectral concentration > 0.9 (nitime's ``low_bias=True``).

    Returns ``(tapers, concentrations)``, tapers shaped ``(K, window_tics)``. Read-only arrays.
    """
    tapers, ratios = windows.dpss(window_tics, nw, 2 * nw, sym=True, norm=2, return_ratios=True)
    keep = ratios > TAPER_CONCENTRATION
    tapers, ratios = np.ascontiguousarray(tapers[keep]), ratios[keep]
    tapers.flags.writeable = False
    ratios.flags.writeable = False
    return tapers, ratios


@dataclass(frozen=True)
class DetectSettings:
    """:class:`DetectParams` resolved for one sample rate: everything in tics, windows or
    cycles per tic, plus the F-test thresholds."""

    rate: int  #: Hz
    sigma_signal: int
    sigma_noise: int
    robust: str
    time_smooth_tics: int  #: closing length of the time masks, tics (Ts)
    window_tics: int  #: F-test window N, tics (a power of two); windows hop by N/2
    nw: int
    ntapers: int  #: K, tapers kept
    nfft: int  #: FFT length, 2**ceil(log2(N)+2)
    p_signal: float  #: per-bin false-positive probability, ρ_signal / NFFT
    p_noise: float
    threshold_signal: float  #: F(2, K-1) inverse survival at p_signal
    threshold_noise: float
    low_cycles: float  #: frequency range, cycles per tic (Hz / rate)
    high_cycles: float
    smooth_windows: int  #: opening/closing length of the window flags, windows (Fs)

    @classmethod
    def from_params(cls, params: DetectParams, rate: int) -> DetectSettings:
        if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
            raise ValueError(f"rate must be a positive whole number of Hz; got {rate!r}")
        rate = int(rate)
        time_smooth_tics = _tics(params.time_smooth_ms, rate)
        if time_smooth_tics < 1:
            raise ValueError(
                f"time smooth {params.time_smooth_ms:g} ms is {time_smooth_tics} tics at {rate} Hz; "
                f"it must be at least one tic ({1000 / rate:g} ms)"
            )
        n = _tics(params.frequency_n_ms, rate)
        if n <= 0 or n & (n - 1):
            higher = 1 << max(2, math.ceil(math.log2(max(n, 1))))
            lower = max(4, higher // 2)
            raise ValueError(
                f"freq N should be a power of two when converted to tics: {params.frequency_n_ms:g} ms is "
                f"{n} tics at {rate} Hz. Try {lower / rate * 1000:g} ms (={lower} tics) or "
                f"{higher / rate * 1000:g} ms (={higher} tics) instead."
            )
        if n < 4:
            raise ValueError(f"freq N {params.frequency_n_ms:g} ms is {n} tics at {rate} Hz; it must be at least 4 tics")
        if not params.frequency_nw < n / 2:
            raise ValueError(
                f"freq NW={params.frequency_nw} is too large for a window of {n} tics: NW must be "
                f"less than N/2 = {n // 2}; lower freq NW or lengthen freq N"
            )
        tapers, _ = multitaper_tapers(n, params.frequency_nw)
        ntapers = len(tapers)
        if ntapers < 2:
            raise ValueError(
                f"freq NW={params.frequency_nw} with a {n}-tic window keeps {ntapers} taper(s) with "
                f"concentration > {TAPER_CONCENTRATION}; the F-test needs at least 2: raise freq NW"
            )
        smooth_windows = _tics(params.frequency_smooth_ms, rate) // (n // 2)
        if smooth_windows < 1:
            raise ValueError(
                f"freq smooth {params.frequency_smooth_ms:g} ms is shorter than the window hop "
                f"N/2 = {n // 2} tics ({n / 2 / rate * 1000:g} ms) at {rate} Hz; make it at least "
                f"freq N ({params.frequency_n_ms:g} ms), as SongExplorer's GUI does"
            )
        nfft = 2 ** int(np.ceil(np.log2(n) + 2))
        p_signal = 1 / nfft * params.frequency_p[0]
        p_noise = 1 / nfft * params.frequency_p[1]
        for name, p in (("ρ_signal", p_signal), ("ρ_noise", p_noise)):
            if not 0 < p < 1:
                raise ValueError(f"frequency_p {name} / NFFT must be below 1 (NFFT = {nfft}); got {p * nfft:g}")
        low_hz, high_hz = params.frequency_range_hz
        return cls(
            rate=rate,
            sigma_signal=params.time_sigma[0],
            sigma_noise=params.time_sigma[1],
            robust=params.time_sigma_robust,
            time_smooth_tics=time_smooth_tics,
            window_tics=n,
            nw=params.frequency_nw,
            ntapers=ntapers,
            nfft=nfft,
            p_signal=p_signal,
            p_noise=p_noise,
            threshold_signal=float(stats.f.isf(p_signal, 2, ntapers - 1)),
            threshold_noise=float(stats.f.isf(p_noise, 2, ntapers - 1)),
            low_cycles=0.0 if low_hz == 0 else float(low_hz) / rate,
            high_cycles=0.5 if high_hz is None else float(high_hz) / rate,
            smooth_windows=smooth_windows,
        )

    @property
    def tapers(self) -> np.ndarray:
        """The DPSS tapers, shape ``(ntapers, window_tics)``."""
        return multitaper_tapers(self.window_tics, self.nw)[0]


# --------------------------------------------------------------------------------------------
# morphology (scikit-image's grey closing/opening, default mode="reflect", 1-D flat footprint)


def _footprints(length: int) -> tuple[np.ndarray, np.ndarray]:
    # scikit-image pads an even footprint with a zero at its start to make it odd, and mirrors it
    # for one of the two passes; scipy's grey_dilation mirrors once more internally.
    footprint = np.ones(length, dtype=bool)
    if length % 2 == 0:
        footprint = np.concatenate(([False], footprint))
    return footprint, footprint[::-1]


def _closing_by_footprint(mask: np.ndarray, length: int) -> np.ndarray:
    _, mirrored = _footprints(length)
    dilated = ndimage.grey_dilation(mask, footprint=mirrored, mode="reflect")
    return ndimage.grey_erosion(dilated, footprint=mirrored, mode="reflect")


def _opening_by_footprint(mask: np.ndarray, length: int) -> np.ndarray:
    padded, _ = _footprints(length)
    eroded = ndimage.grey_erosion(mask, footprint=padded, mode="reflect")
    return ndimage.grey_dilation(eroded, footprint=padded, mode="reflect")


def skimage_closing(mask: np.ndarray, length: int) -> np.ndarray:
    """``skimage.morphology.closing(mask, np.ones(length))`` for a 1-D boolean mask.

    False gaps shorter than ``length`` between True runs are filled; at the ends of the array the
    border is reflected (scikit-image's default), so a run ending within about ``length/2``
    samples of an end is extended to it (for length 16: gaps of <= 8 at the start, <= 7 at the end).
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.size == 0 or length <= 1:
        return mask.copy()
    if mask.size <= 2 * length:
        return _closing_by_footprint(mask, length)
    # Same windows as the footprints above, with scipy's O(n) running max/min; identical results
    # once the array is longer than the footprint (the reflected border then fits in the array).
    shift = -1 if length % 2 == 0 else 0
    dilated = ndimage.maximum_filter1d(mask, length, origin=shift, mode="reflect")
    return ndimage.minimum_filter1d(dilated, length, origin=0, mode="reflect")


def skimage_opening(mask: np.ndarray, length: int) -> np.ndarray:
    """``skimage.morphology.opening(mask, np.ones(length))`` for a 1-D boolean mask: True runs
    shorter than ``length`` are removed (border reflected, as :func:`skimage_closing`)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.size == 0 or length <= 1:
        return mask.copy()
    if mask.size <= 2 * length:
        return _opening_by_footprint(mask, length)
    shift = -1 if length % 2 == 0 else 0
    eroded = ndimage.minimum_filter1d(mask, length, origin=shift, mode="reflect")
    return ndimage.maximum_filter1d(eroded, length, origin=0, mode="reflect")


def mask_runs(mask: np.ndarray) -> np.ndarray:
    """Maximal True runs of a 1-D mask as an ``(n, 2)`` int64 array of ``[first, last + 1)``
    (exclusive stop, as scikit-image's ``regionprops`` bounding boxes)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    edges = np.flatnonzero(np.diff(mask.view(np.int8), prepend=0, append=0))
    return edges.reshape(-1, 2).astype(np.int64)


def closed_runs(mask: np.ndarray, length: int) -> np.ndarray:
    """``mask_runs(skimage_closing(mask, length))`` computed on the runs (no second mask).

    Gaps shorter than ``length`` between runs are merged; with scikit-image's reflected border a
    first run starting at most ``length // 2`` tics after tic 0 is extended to it, and a last run
    ending at most ``(length - 1) // 2`` tics before the end is extended to the end.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.size <= 2 * length or length <= 1:
        return mask_runs(skimage_closing(mask, length))
    runs = mask_runs(mask)
    if runs.size == 0:
        return runs
    keep_gap = runs[1:, 0] - runs[:-1, 1] >= length
    starts = runs[np.r_[True, keep_gap], 0]
    stops = runs[np.r_[keep_gap, True], 1]
    if starts[0] <= length // 2:
        starts[0] = 0
    if mask.size - stops[-1] <= (length - 1) // 2:
        stops[-1] = mask.size
    return np.column_stack((starts, stops))


# --------------------------------------------------------------------------------------------
# time criterion


def _centre_and_spread(channel: np.ndarray, robust: str) -> tuple[float, float]:
    if robust == "median":
        centre = np.median(channel)
        return centre, stats.median_abs_deviation(channel)
    return np.mean(channel), np.std(channel)


def time_runs(channel: np.ndarray, settings: DetectSettings) -> tuple[np.ndarray, np.ndarray]:
    """Loud stretches of one channel.

    Args:
        channel: the samples, 1-D (raw int16 values for SongExplorer-identical thresholds).
        settings: from :meth:`DetectParams.settings`.

    Returns:
        ``(signal, noise)``: ``(n, 2)`` int64 arrays of ``[start, stop)`` tics (exclusive stop)
        where ``|x - centre| > σ·spread`` after closing gaps shorter than ``time_smooth_tics``;
        ``signal`` uses σ_signal, ``noise`` σ_noise.
    """
    centre, spread = _centre_and_spread(channel, settings.robust)
    deviation = np.abs(channel - centre)
    signal = closed_runs(deviation > settings.sigma_signal * spread, settings.time_smooth_tics)
    noise = closed_runs(deviation > settings.sigma_noise * spread, settings.time_smooth_tics)
    return signal, noise


# --------------------------------------------------------------------------------------------
# frequency criterion: Thomson's multitaper harmonic F-test


def harmonic_f_test(
    frames: np.ndarray, tapers: np.ndarray, nfft: int, *, workspace: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Thomson's harmonic F statistic for every window (row) of ``frames`` at once.

    The arithmetic of ``nitime.utils.detect_lines``: each window has its mean removed, is
    multiplied by each taper and zero-padded to ``nfft``; with ``Y_k(f)`` the tapered spectra
    (bins ``0..nfft/2``) and ``U_k = Σ_t taper_k(t)``,
    ``μ(f) = Σ_k U_k Y_k(f) / Σ_k U_k²`` and
    ``F(f) = ½|μ|² Σ_k U_k² / (Σ_k |Y_k - U_k μ|² / (2K-2))``, with ``F(0) = 1``.

    Args:
        frames: ``(nwindows, N)`` real samples.
        tapers: ``(K, N)`` tapers (see :func:`multitaper_tapers`).
        nfft: FFT length (>= N).
        workspace: optional zeroed float64 buffer of shape ``(K, >= nwindows, nfft)`` reused
            between calls; only its first ``N`` columns are written, the rest must stay zero.

    Returns:
        ``(F, mu)``, both ``(nwindows, nfft//2 + 1)``: F float64, mu complex128. Windows that are
        constant give NaN for F (0/0) and are never detected.
    """
    frames = np.asarray(frames, dtype=np.float64)
    ntapers, window_tics = tapers.shape
    nwindows = frames.shape[0]
    demeaned = frames - np.mean(frames, axis=-1)[:, None]
    # Tapered windows zero-padded to nfft, written straight into the padded buffer (faster than
    # rfft(..., n=nfft)); numpy's pocketfft gives the same bits as the scipy.fftpack.fft nitime
    # calls, for these real inputs. Taper-major layout, spectra: (tapers, windows, bins), so each
    # taper's spectra are one contiguous block.
    if workspace is None:
        workspace = np.zeros((ntapers, nwindows, nfft))
    padded = workspace[:, :nwindows]
    np.multiply(demeaned[None, :, :], tapers[:, None, :], out=padded[..., :window_tics])
    spectra = np.fft.rfft(padded, axis=-1)
    taper_sums = tapers.sum(axis=1)
    taper_sums_sq = np.sum(taper_sums**2)
    # nitime's sums over tapers, np.sum(..., axis=-2), add k = 0, 1, ... in turn; so do these
    # loops. Its complex products U_k * Y_k (U_k real) are done on the (re, im) float pairs:
    # the same values without the complex multiply. F is bit-for-bit nitime's formula.
    pairs = spectra.view(np.float64)  # (tapers, windows, 2 * bins): re, im, re, im, ...
    mu_pairs = pairs[0] * taper_sums[0]
    scratch = np.empty_like(mu_pairs)
    for k in range(1, ntapers):
        np.multiply(pairs[k], taper_sums[k], out=scratch)
        mu_pairs += scratch
    mu = mu_pairs.view(np.complex128)
    mu /= taper_sums_sq  # a complex division, as nitime's (not the same bits as dividing re, im)
    with np.errstate(invalid="ignore", divide="ignore"):
        numerator = np.abs(mu)
        np.square(numerator, out=numerator)
        numerator *= 0.5
        numerator *= taper_sums_sq
        numerator[..., 0] = 1
        denominator = np.zeros(mu.shape)
        power = np.empty(mu.shape)
        residual = scratch.view(np.complex128)
        for k in range(ntapers):
            np.multiply(mu_pairs, taper_sums[k], out=scratch)
            np.subtract(pairs[k], scratch, out=scratch)
            np.abs(residual, out=power)
            np.square(power, out=power)
            denominator += power
        denominator /= 2 * ntapers - 2
        denominator[..., 0] = 1
        f_stat = numerator / denominator
    return f_stat, mu


def _flag_lines(rows, bins, amplitude, nwindows, *, ntapers, nfft, low_cycles, high_cycles) -> np.ndarray:
    """Windows with a line in range, from the detected (row, bin) pairs in row-major order."""
    flags = np.zeros(nwindows, dtype=bool)
    if rows.size == 0:
        return flags
    new_group = np.ones(rows.size, dtype=bool)
    new_group[1:] = (rows[1:] != rows[:-1]) | (bins[1:] - bins[:-1] >= ntapers)
    group = np.cumsum(new_group) - 1
    group_max = np.maximum.reduceat(amplitude, np.flatnonzero(new_group))
    candidates = np.flatnonzero(amplitude == group_max[group])
    first = np.ones(candidates.size, dtype=bool)
    first[1:] = group[candidates[1:]] != group[candidates[:-1]]
    keep = candidates[first]
    line_rows, line_bins = rows[keep], bins[keep]
    frequency = line_bins / float(nfft)
    inside = (line_bins > 0) & (low_cycles <= frequency) & (frequency <= high_cycles)
    flags[line_rows[inside]] = True
    return flags


def line_flags(
    f_stat: np.ndarray,
    mu: np.ndarray,
    threshold: float,
    *,
    ntapers: int,
    nfft: int,
    low_cycles: float = 0.0,
    high_cycles: float = 0.5,
) -> np.ndarray:
    """Which windows hold a significant spectral line inside ``[low_cycles, high_cycles]``.

    nitime's rule: bins with ``F > threshold`` are detected; successive detected bins less than
    ``ntapers`` apart form a group, of which only the bin with the largest ``|μ|`` (the first on
    ties) is kept; bin 0 is never a line. A line's frequency is ``bin / nfft`` cycles per tic.

    Returns a boolean array, one value per row of ``f_stat``.
    """
    rows, bins = np.nonzero(f_stat > threshold)
    return _flag_lines(rows, bins, np.abs(mu[rows, bins]), f_stat.shape[0], ntapers=ntapers, nfft=nfft,
                       low_cycles=low_cycles, high_cycles=high_cycles)


def _line_flags_both(f_stat, mu, settings: DetectSettings) -> tuple[np.ndarray, np.ndarray]:
    """:func:`line_flags` at the signal and the noise threshold, sharing the detected bins."""
    lax = min(settings.threshold_signal, settings.threshold_noise)
    rows, bins = np.nonzero(f_stat > lax)
    values, amplitude = f_stat[rows, bins], np.abs(mu[rows, bins])
    common = dict(ntapers=settings.ntapers, nfft=settings.nfft,
                  low_cycles=settings.low_cycles, high_cycles=settings.high_cycles)
    flags = []
    for threshold in (settings.threshold_signal, settings.threshold_noise):
        keep = values > threshold
        flags.append(_flag_lines(rows[keep], bins[keep], amplitude[keep], f_stat.shape[0], **common))
    return flags[0], flags[1]


def _chunk_windows(channel: np.ndarray, offset: int, window_tics: int) -> np.ndarray:
    """SongExplorer's windows of one chunk: starts ``offset + k·N/2`` while the window ends at or
    before ``last = min(n, offset + CHUNK_TICS) // N * N``; shape ``(nwindows, N)`` (a view)."""
    last = min(channel.shape[0], offset + CHUNK_TICS) // window_tics * window_tics
    if last - offset < window_tics:
        return np.empty((0, window_tics), dtype=channel.dtype)
    view = np.lib.stride_tricks.sliding_window_view(channel[offset:last], window_tics)
    return view[:: window_tics // 2]


def window_flags(
    channel: np.ndarray, settings: DetectSettings, *, block_windows: int = BLOCK_WINDOWS
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Raw F-test flags of every window, chunk by chunk.

    Yields ``(offset, flags_signal, flags_noise)`` per chunk of :data:`CHUNK_TICS` tics: window
    ``k`` of the chunk starts at tic ``offset + k·N/2``; flags are before any smoothing.
    The F statistic is computed once per window for both thresholds, ``block_windows`` at a time.
    """
    tapers = settings.tapers
    workspace = np.zeros((settings.ntapers, min(block_windows, CHUNK_TICS), settings.nfft))
    for offset in range(0, channel.shape[0], CHUNK_TICS):
        frames = _chunk_windows(channel, offset, settings.window_tics)
        signal = np.zeros(frames.shape[0], dtype=bool)
        noise = np.zeros(frames.shape[0], dtype=bool)
        for start in range(0, frames.shape[0], block_windows):
            stop = min(start + block_windows, frames.shape[0])
            f_stat, mu = harmonic_f_test(frames[start:stop], tapers, settings.nfft, workspace=workspace)
            signal[start:stop], noise[start:stop] = _line_flags_both(f_stat, mu, settings)
        yield offset, signal, noise


def frequency_runs(
    channel: np.ndarray, settings: DetectSettings, *, quirks: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Tonal stretches of one channel.

    Window flags are opened then closed with a footprint of ``smooth_windows`` windows (per
    chunk, as SongExplorer). A run of flagged windows ``x .. y-1`` of the chunk at ``offset``
    becomes:

    * ``quirks=True``: SongExplorer's ``(offset + x·N/2 - N/4, offset + y·N/2 + N/4)``, whose
      start is negative for a run at the very start;
    * ``quirks=False``: the tics those windows cover, inclusive:
      ``(offset + x·N/2, offset + (y-1)·N/2 + N - 1)``.

    Returns ``(signal, noise)`` as ``(n, 2)`` int64 arrays of ``(start, stop)`` tics.
    """
    n, half, quarter = settings.window_tics, settings.window_tics // 2, settings.window_tics // 4
    found: dict[str, list[np.ndarray]] = {"signal": [], "noise": []}
    for offset, *flags in window_flags(channel, settings):
        for name, flag in zip(("signal", "noise"), flags):
            smoothed = skimage_closing(skimage_opening(flag, settings.smooth_windows), settings.smooth_windows)
            runs = mask_runs(smoothed)
            if quirks:
                found[name].append(np.column_stack((offset + runs[:, 0] * n // 2 - quarter,
                                                    offset + runs[:, 1] * n // 2 + quarter)))
            else:
                found[name].append(np.column_stack((offset + runs[:, 0] * half,
                                                    offset + (runs[:, 1] - 1) * half + n - 1)))
    return _stacked(found["signal"]), _stacked(found["noise"])


def _stacked(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts).astype(np.int64) if parts else np.empty((0, 2), np.int64)


# --------------------------------------------------------------------------------------------
# neither


def _uncovered(intervals: list[np.ndarray], length: int, *, python_slices: bool) -> np.ndarray:
    """Maximal runs of ``range(length)`` covered by no ``[start, stop]`` (inclusive) interval, as
    ``(n, 2)`` ``[first, last + 1)``; computed from the sorted intervals, not tic by tic.

    With ``python_slices`` an interval covers what SongExplorer's ``a[start:stop+1]`` does: a
    negative start counts from the end, so the interval usually covers nothing (QUIRK 2).
    """
    parts = [part for part in intervals if part.size]
    if length <= 0:
        return np.empty((0, 2), dtype=np.int64)
    if not parts:
        return np.array([[0, length]], dtype=np.int64)
    both = np.concatenate(parts).astype(np.int64)
    starts, stops = both[:, 0], both[:, 1] + 1
    if python_slices:
        starts = np.where(starts < 0, np.maximum(starts + length, 0), starts)
        stops = np.where(stops < 0, np.maximum(stops + length, 0), stops)
    starts, stops = np.clip(starts, 0, length), np.clip(stops, 0, length)
    valid = starts < stops
    starts, stops = starts[valid], stops[valid]
    if starts.size == 0:
        return np.array([[0, length]], dtype=np.int64)
    order = np.argsort(starts, kind="stable")
    starts, reach = starts[order], np.maximum.accumulate(stops[order])
    gap_starts = np.r_[0, reach]
    gap_stops = np.r_[starts, length]
    gaps = gap_starts < gap_stops
    return np.column_stack((gap_starts[gaps], gap_stops[gaps]))


def quiet_runs(
    time_noise: np.ndarray, frequency_noise: np.ndarray, *, ntics: int | None = None, quirks: bool = True
) -> np.ndarray:
    """Stretches covered by neither the time-noise nor the frequency-noise intervals.

    ``quirks=True`` is SongExplorer's ``combine_events``: intervals are treated as inclusive
    ``a[start:stop+1]`` on an array as long as the largest stop (so an exclusive time stop covers
    one tic more, and a negative frequency start wraps); quiet runs touching the first tic or the
    last tic of that array are not reported. ``quirks=False`` uses the recording's ``ntics`` and
    reports every quiet run.

    Returns an ``(n, 2)`` int64 array of inclusive ``(start, stop)`` tics.
    """
    if quirks:
        stops = [part[:, 1].max() for part in (time_noise, frequency_noise) if part.size]
        length = int(max(stops + [0]))
    else:
        if ntics is None:
            raise ValueError("quiet_runs(quirks=False) needs ntics, the recording's length in tics")
        length = int(ntics)
    runs = _uncovered([time_noise, frequency_noise], length, python_slices=quirks)
    if quirks and runs.size:
        runs = runs[(runs[:, 0] > 0) & (runs[:, 1] < length)]
    return np.column_stack((runs[:, 0], runs[:, 1] - 1)).astype(np.int64)


# --------------------------------------------------------------------------------------------
# whole recordings


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
