"""Classification speed: seconds of audio classified per wall-clock second (real-time factor).

Classifies a generated recording (default 1 hour at 2500 Hz, mono) with SongExplorer's tutorial
network (mel-cepstrum, window 6.4 ms, stride 1.6 ms, mel & DCT 7,7, two conv layers 5x5 / 3,
64/64 features, three labels; untrained weights: speed does not depend on them), three ways,
in one run:

* ours: ``classify_recording`` (spans of many taps, several spans per compiled call),
  cold (first call: tracing included) and warm (median of ``--runs``);
* baseline: SongExplorer's classify loop, one call of a compiled (``tf.function``) network per
  P = 64-tap window (764 tics in, batch 1), on the first ``--baseline-seconds`` of the recording;
  its probabilities are checked against ours on that stretch.

Usage::

    .venv/bin/python benchmarks/classify.py                 # 1 h recording, 3 warm runs
    .venv/bin/python benchmarks/classify.py --sweep         # also span/batch combinations
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from songexplorer_core.classify import (  # noqa: E402
    DEFAULT_BATCH_SIZE,
    DEFAULT_SPAN_TICS,
    Classifier,
    padding_samples,
)
from songexplorer_core.models import ModelSpec, new_trained_model  # noqa: E402

RATE = 2500
LABELS = ["mel-pulse", "mel-sine", "ambient"]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import tensorflow as tf

    return (f"{platform.node()}: {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), {cpu}; "
            f"Python {platform.python_version()}, TensorFlow {tf.__version__}")


def make_recording(path: Path, seconds: float, seed: int = 0) -> Path:
    """Noise with a few loud pulse trains, int16, written in blocks (memory stays small)."""
    rng = np.random.default_rng(seed)
    ntics = int(seconds * RATE)
    with soundfile.SoundFile(str(path), "w", samplerate=RATE, channels=1, subtype="PCM_16") as handle:
        block = 60 * RATE
        for start in range(0, ntics, block):
            n = min(block, ntics - start)
            x = rng.normal(0, 300, n)
            for centre in rng.integers(0, n, size=20):
                t = np.arange(-30, 31)
                idx = centre + t
                ok = (idx >= 0) & (idx < n)
                x[idx[ok]] += 8000 * np.sin(2 * np.pi * 250 * t[ok] / RATE) * np.exp(-(t[ok] / 10.0) ** 2)
            handle.write(np.clip(x, -32768, 32767).astype(np.int16))
    return path


def timed(function):
    """``(result, wall seconds, CPU seconds of this process)``. On a shared machine the wall time
    grows with other people's load; CPU seconds / cores estimates the wall time on an idle one."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def time_ours(tm, wav: Path, *, runs: int, span_tics: int, batch_size: int):
    """Cold: a fresh Classifier (tracing included). Warm: the same Classifier again."""
    classifier = Classifier(tm, span_tics=span_tics, batch_size=batch_size)
    probs, cold, cold_cpu = timed(lambda: classifier.classify_recording(wav))
    warm, warm_cpu = [], []
    for _ in range(runs):
        _, wall, cpu = timed(lambda: classifier.classify_recording(wav))
        warm.append(wall)
        warm_cpu.append(cpu)
    return probs, (cold, cold_cpu), (warm, warm_cpu)


def time_songexplorer_loop(tm, wav: Path, seconds: float, parallelize: int = 64):
    """SongExplorer's classify: one compiled call per window of ``parallelize`` taps, batch 1."""
    import tensorflow as tf

    audio, _ = soundfile.read(str(wav), frames=int(seconds * RATE), dtype="int16", always_2d=True)
    audio = audio.astype(np.float32) / 32768
    nin = tm.input_tics(parallelize)
    hop = tm.stride_tics * parallelize
    model = tm.keras_model

    @tf.function(input_signature=[tf.TensorSpec([1, nin, 1], tf.float32)])
    def inference_step(x):
        return tf.nn.softmax(model(x, training=False), axis=-1)

    inference_step(np.zeros((1, nin, 1), np.float32))  # trace, as freeze did ahead of time
    rows = [np.zeros((padding_samples(tm.context_tics, tm.shiftby_tics, tm.stride_tics), len(LABELS)), np.float32)]
    n = len(audio)

    def loop():
        for offset in range(0, n + 1, hop):
            window = audio[offset: offset + nin]
            pad = offset + nin - n
            if pad > 0:
                window = np.pad(window, ((0, pad), (0, 0)), mode="median")
            out = inference_step(window[None]).numpy()[0]
            if pad > 0:
                rows.append(out[: len(out) - int(np.ceil(pad / tm.stride_tics))])
                break
            rows.append(out)

    _, wall, cpu = timed(loop)
    return np.concatenate(rows), wall, cpu


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3600.0, help="recording length, s (default 3600)")
    parser.add_argument("--runs", type=int, default=3, help="warm runs of ours; the median is reported (default 3)")
    parser.add_argument("--baseline-seconds", type=float, default=300.0,
                        help="seconds of the recording the baseline loop classifies (default 300)")
    parser.add_argument("--span-tics", type=int, default=DEFAULT_SPAN_TICS, help="classify span_tics")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="classify batch_size")
    parser.add_argument("--sweep", action="store_true", help="also time span/batch combinations (one run each)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    cores = len(os.sched_getaffinity(0))
    print(machine())
    load = os.getloadavg()[0]
    print(f"load average before: {load:.2f} (other processes on these {cores} cores slow the wall times)")
    tm = new_trained_model(ModelSpec(), labels=LABELS, rate=RATE, seed=1)
    print(f"network: tutorial (mel-cepstrum 6.4/1.6 ms, 7,7, 5x5,3, 64,64), context {tm.context_tics} tics, "
          f"stride {tm.stride_tics} tics, {len(LABELS)} labels")
    results = {"machine": machine(), "seconds": args.seconds, "load_before": load, "cores": cores}
    with tempfile.TemporaryDirectory() as tmp:
        wav = make_recording(Path(tmp) / "benchmark.wav", args.seconds)
        probs, (cold, cold_cpu), (warm, warm_cpu) = time_ours(
            tm, wav, runs=args.runs, span_tics=args.span_tics, batch_size=args.batch_size)
        median, median_cpu = statistics.median(warm), statistics.median(warm_cpu)
        print(f"ours, span {args.span_tics} tics x batch {args.batch_size}: cold {cold:.2f} s "
              f"({args.seconds / cold:.0f}x realtime), warm median of {args.runs} {median:.2f} s "
              f"({args.seconds / median:.0f}x realtime); runs {[round(w, 2) for w in warm]} s; "
              f"CPU {median_cpu:.2f} s -> {args.seconds / (median_cpu / cores):.0f}x realtime on {cores} idle cores")
        results.update(ours_cold_s=cold, ours_warm_s=warm, ours_warm_median_s=median, ours_rtf=args.seconds / median,
                       ours_cpu_s=warm_cpu, ours_cpu_rtf=args.seconds / (median_cpu / cores),
                       span_tics=args.span_tics, batch_size=args.batch_size)

        baseline_seconds = min(args.baseline_seconds, args.seconds)
        loop_values, loop_s, loop_cpu = time_songexplorer_loop(tm, wav, baseline_seconds)
        print(f"baseline, SongExplorer loop (one compiled call per 64-tap window) on {baseline_seconds:.0f} s: "
              f"{loop_s:.2f} s ({baseline_seconds / loop_s:.0f}x realtime); CPU {loop_cpu:.2f} s -> "
              f"{baseline_seconds / (loop_cpu / cores):.0f}x realtime on {cores} idle cores")
        speedup = (args.seconds / median) / (baseline_seconds / loop_s)
        speedup_cpu = (args.seconds / median_cpu) / (baseline_seconds / loop_cpu)
        print(f"speed-up over the baseline: {speedup:.1f}x wall, {speedup_cpu:.1f}x CPU time")
        # same probabilities where both computed them (the baseline stops context/2 short of its stretch)
        n = len(loop_values)
        difference = float(np.abs(loop_values[:n] - probs.values[:n]).max())
        print(f"largest difference from the baseline's probabilities over its {n} samples: {difference:.2e}")
        results.update(baseline_seconds=baseline_seconds, baseline_s=loop_s, baseline_cpu_s=loop_cpu,
                       baseline_rtf=baseline_seconds / loop_s, baseline_cpu_rtf=baseline_seconds / (loop_cpu / cores),
                       speedup=speedup, speedup_cpu=speedup_cpu, max_difference=difference)

        if args.sweep:
            sweep = []
            for span in (2**12, 2**14, 2**16, 2**18):
                for batch in (1, 4, 16):
                    if span * batch > 2**21:
                        continue
                    _, _, ((elapsed,), (cpu,)) = time_ours(tm, wav, runs=1, span_tics=span, batch_size=batch)
                    sweep.append({"span_tics": span, "batch_size": batch, "s": elapsed, "cpu_s": cpu,
                                  "rtf": args.seconds / elapsed, "cpu_rtf": args.seconds / (cpu / cores)})
                    print(f"  sweep span {span:>7} x batch {batch:>2}: {elapsed:.2f} s ({args.seconds / elapsed:.0f}x "
                          f"realtime), CPU {cpu:.2f} s ({args.seconds / (cpu / cores):.0f}x on idle cores)")
            results["sweep"] = sweep
        results["load_after"] = os.getloadavg()[0]
        print(f"load average after: {results['load_after']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
