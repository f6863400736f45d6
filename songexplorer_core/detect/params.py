"""Detection's parameters: SongExplorer's GUI values (:class:`DetectParams`, milliseconds and Hz,
parsed from its text fields) and the same resolved for one sample rate (:class:`DetectSettings`:
tics, windows, cycles per tic, F-test thresholds)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
from scipy import stats
from scipy.signal import windows

ROBUST_CHOICES = ("median", "mean")
#: SongExplorer keeps the DPSS tapers whose spectral concentration exceeds this (nitime low_bias).
TAPER_CONCENTRATION = 0.9
#: Milliseconds to seconds (SongExplorer's ``time_scale`` for ``time_units=ms``).
_MS = 0.001


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
