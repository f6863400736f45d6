"""Detection speed: seconds of audio detected per wall-clock second (real-time factor, RTF).

Measured in one run; the detector is single-threaded. Wall-clock and CPU time of this process
are both printed: on a shared machine the wall-clock figure includes time the process waited for
a core (the load average is printed), the CPU figure does not.

* the 200 s tutorial recording PS_20130625111709_ch3.wav (if ``../shared`` is present):
  ``detect`` cold (first call in the process) and warm (median of ``--runs``), default parameters;
* a 1-hour synthetic recording at 2500 Hz (``songexplorer_core.synth.make_song``: pulse trains,
  sine bouts, clicks in coloured noise), warm median;
* the multitaper F-test alone, vectorised over blocks of windows, against a naive loop that
  computes the same F-test one window at a time (``--baseline-seconds`` of the recording),
  with both results checked equal.

Usage::

    .venv/bin/python benchmarks/detect.py            # 5 warm runs, 1 h synthetic
    .venv/bin/python benchmarks/detect.py --hours 0.25 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import describe  # noqa: E402  (benchmarks/machine.py, beside this script)

from songexplorer_core.detect import (  # noqa: E402
    BLOCK_WINDOWS,
    DetectParams,
    detect,
    harmonic_f_test,
)
from songexplorer_core.detect.criteria import _chunk_windows  # noqa: E402

RATE = 2500
SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"
TUTORIAL_WAV = SHARED / "data" / "songexplorer-tutorial" / "PS_20130625111709_ch3.wav"


def timed(function, *args, **kwargs) -> tuple[tuple[float, float], object]:
    """((wall seconds, CPU seconds of this process), result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return (time.perf_counter() - wall, time.process_time() - cpu), result


def warm_median(function, runs: int, *args, **kwargs) -> tuple[float, float]:
    times = [timed(function, *args, **kwargs)[0] for _ in range(runs)]
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def naive_f_test(frames: np.ndarray, tapers: np.ndarray, nfft: int) -> np.ndarray:
    """The same F-test, one window per Python iteration (what a straightforward port does)."""
    ntapers = len(tapers)
    sums = tapers.sum(axis=1)
    sums_sq = np.sum(sums**2)
    out = np.empty((len(frames), nfft // 2 + 1))
    for i, frame in enumerate(frames):
        x = frame - frame.mean()
        spectra = np.fft.rfft(tapers * x, n=nfft, axis=-1)
        mu = np.sum(sums[:, None] * spectra, axis=0) / sums_sq
        numerator = 0.5 * np.abs(mu) ** 2 * sums_sq
        denominator = np.sum(np.abs(spectra - sums[:, None] * mu) ** 2, axis=0) / (2 * ntapers - 2)
        numerator[0] = denominator[0] = 1
        out[i] = numerator / denominator
    return out


def vectorised_f_test(frames: np.ndarray, tapers: np.ndarray, nfft: int) -> np.ndarray:
    return np.concatenate([harmonic_f_test(frames[i:i + BLOCK_WINDOWS], tapers, nfft)[0]
                           for i in range(0, len(frames), BLOCK_WINDOWS)])


def synthetic_recording(hours: float) -> tuple[np.ndarray, str]:
    try:
        from songexplorer_core.synth import make_song
    except ImportError:  # synth not available: tones and clicks in white noise
        rng = np.random.default_rng(1)
        ntics = int(hours * 3600 * RATE)
        x = rng.normal(0, 300, ntics)
        t = np.arange(800) / RATE
        for start in rng.integers(0, ntics - 800, size=ntics // (5 * RATE)):
            x[start:start + 800] += 700 * np.sin(2 * np.pi * rng.uniform(120, 600) * t)
        for start in rng.integers(0, ntics - 5, size=ntics // (2 * RATE)):
            x[start:start + 5] += rng.normal(0, 6000, 5)
        return np.clip(np.rint(x), -32768, 32767).astype(np.int16), "numpy tones + clicks in white noise"
    song = make_song(hours * 3600, RATE, seed=1)
    return song.samples, "songexplorer_core.synth.make_song(seed=1)"


def report(name: str, seconds_of_audio: float, seconds: tuple[float, float], rows=None) -> None:
    wall, cpu = seconds
    counts = "" if rows is None else "  " + ", ".join(
        f"{label} {count}" for label, count in sorted(rows["label"].value_counts().items()))
    print(f"{name:<44} wall {wall:7.3f} s {seconds_of_audio / wall:6.0f}x realtime | "
          f"CPU {cpu:7.3f} s {seconds_of_audio / cpu:6.0f}x{counts}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="warm runs per measurement (median reported)")
    parser.add_argument("--hours", type=float, default=1.0, help="length of the synthetic recording, hours")
    parser.add_argument("--baseline-seconds", type=float, default=20.0,
                        help="seconds of audio the naive per-window F-test loop runs on")
    args = parser.parse_args(argv)

    print(describe(numpy=np.__version__, scipy=scipy.__version__))
    print(f"default parameters {DetectParams().to_songexplorer()}, {RATE} Hz")
    settings = DetectParams().settings(RATE)

    if TUTORIAL_WAV.exists():
        from songexplorer_core.audio import read_recording

        _, samples = read_recording(TUTORIAL_WAV)
        duration = samples.shape[0] / RATE
        cold, rows = timed(detect, samples, RATE, wav=TUTORIAL_WAV.name)
        report(f"{TUTORIAL_WAV.name} ({duration:.0f} s), cold", duration, cold)
        warm = warm_median(detect, args.runs, samples, RATE, wav=TUTORIAL_WAV.name)
        report(f"{TUTORIAL_WAV.name} ({duration:.0f} s), warm median", duration, warm, rows)
        channel = samples[:, 0]
    else:
        print(f"({TUTORIAL_WAV} not present: tutorial recording skipped)")
        channel = None

    generated, how = synthetic_recording(args.hours)
    duration = generated.shape[0] / RATE
    print(f"synthetic recording: {duration / 3600:g} h, {how}")
    warm = warm_median(detect, max(1, min(args.runs, 3)), generated, RATE, wav="synthetic.wav")
    rows = detect(generated, RATE, wav="synthetic.wav")
    report(f"synthetic {duration / 3600:g} h, warm median", duration, warm, rows)

    source = channel if channel is not None else generated
    stretch = source[: int(args.baseline_seconds * RATE)]
    frames = _chunk_windows(stretch, 0, settings.window_tics)
    seconds = stretch.shape[0] / RATE
    naive_time, naive = timed(naive_f_test, frames, settings.tapers, settings.nfft)
    fast_time = warm_median(vectorised_f_test, args.runs, frames, settings.tapers, settings.nfft)
    fast = vectorised_f_test(frames, settings.tapers, settings.nfft)
    if not np.allclose(naive, fast, rtol=1e-10, equal_nan=True):
        raise AssertionError("the vectorised and the per-window F-test disagree")
    print(f"F-test only, {len(frames)} windows of {settings.window_tics} tics ({seconds:g} s of audio):")
    report("  naive loop, one window per iteration", seconds, naive_time)
    report(f"  vectorised, {BLOCK_WINDOWS} windows per block", seconds, fast_time)
    print(f"  speed-up: {naive_time[0] / fast_time[0]:.1f}x wall, {naive_time[1] / fast_time[1]:.1f}x CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
