"""The three criteria of one channel: ``time`` (loud), ``frequency`` (a line in the spectrum,
Thomson's multitaper harmonic F-test) and ``neither`` (quiet), each as runs of tics."""

from __future__ import annotations

from typing import Iterator

import numpy as np
from scipy import stats

from songexplorer_core.detect.morphology import closed_runs, mask_runs, skimage_closing, skimage_opening
from songexplorer_core.detect.params import DetectSettings

#: SongExplorer runs the frequency criterion over chunks of this many tics (1024*1024);
#: windows never straddle a chunk border and runs of flagged windows are split there.
CHUNK_TICS = 1 << 20
#: Windows per block of the vectorised F-test. 128 windows of N=64 with K=7 tapers hold 1.8 MB of
#: complex spectra; 128-512 measured equally fast here (32: -35 %, 1024: -12 %).
BLOCK_WINDOWS = 128


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
