"""Classification speed: seconds of audio classified per wall-clock second (real-time factor).

Classifies a generated recording (default 1 hour at 2500 Hz, mono) with SongExplorer's tutorial
network (mel-cepstrum, window 6.4 ms, stride 1.6 ms, mel & DCT 7,7, two conv layers 5x5 / 3,
64/64 features, three labels; untrained weights: speed does not depend on them), in one run:

* ours: ``classify_recording`` (spans of many taps, several spans per compiled call, the
  network's slow convolutions evaluated as matrix products by ``models.inference_network``),
  cold (first call: tracing included) and warm (median of ``--runs``);
* ours with the Keras model as built (``Classifier(..., matmul_convolutions=False)``, what
  classify did before ``inference_network``), warm, its runs alternating with ours so both see
  the same load; the two must agree to 1e-5;
* baseline: SongExplorer's classify loop, one call of a compiled (``tf.function``) network per
  P = 64-tap window (764 tics in, batch 1), on the first ``--baseline-seconds`` of the recording;
  its probabilities are checked against ours on that stretch.

TensorFlow is set up as the Dagster assets set it up (``compute.configure_compute("cpu")``:
oneDNN off, TensorFlow's default threads) unless ``--onednn`` / ``--threads`` say otherwise.

Usage::

    .venv/bin/python benchmarks/classify.py                 # 1 h recording, 3 warm runs
    .venv/bin/python benchmarks/classify.py --sweep         # also span/batch combinations
    .venv/bin/python benchmarks/classify.py --onednn        # oneDNN kernels on
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import describe  # noqa: E402  (benchmarks/machine.py, beside this script)

from songexplorer_core.classify import (  # noqa: E402
    DEFAULT_BATCH_SIZE,
    DEFAULT_SPAN_TICS,
    Classifier,
    padding_samples,
)
from songexplorer_core.compute import configure_compute  # noqa: E402
from songexplorer_core.models import ModelSpec, new_trained_model  # noqa: E402

RATE = 2500
LABELS = ["mel-pulse", "mel-sine", "ambient"]


def machine() -> str:
    import tensorflow as tf

    return describe(tensorflow=tf.__version__)


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


def time_ours(tm, wav: Path, *, runs: int, span_tics: int, batch_size: int, as_built: bool = False):
    """Cold: a fresh Classifier (tracing included). Warm: the same Classifier again, ``runs``
    times. With ``as_built``, also a Classifier calling the Keras model as built, warmed up, then
    timed alternately with ours. Returns ``(probs, (cold, cold_cpu), (warm, warm_cpu), as_built)``,
    ``as_built`` = ``(probs, walls, cpus)`` or ``None``."""
    classifier = Classifier(tm, span_tics=span_tics, batch_size=batch_size)
    probs, cold, cold_cpu = timed(lambda: classifier.classify_recording(wav))
    other = other_probs = None
    if as_built:
        other = Classifier(tm, span_tics=span_tics, batch_size=batch_size, matmul_convolutions=False)
        other_probs = other.classify_recording(wav)
    warm, warm_cpu, other_warm, other_cpu = [], [], [], []
    for _ in range(runs):
        _, wall, cpu = timed(lambda: classifier.classify_recording(wav))
        warm.append(wall)
        warm_cpu.append(cpu)
        if other is not None:
            _, wall, cpu = timed(lambda: other.classify_recording(wav))
            other_warm.append(wall)
            other_cpu.append(cpu)
    return probs, (cold, cold_cpu), (warm, warm_cpu), (other_probs, other_warm, other_cpu) if as_built else None


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
    parser.add_argument("--sweep", action="store_true",
                        help="also time span/batch combinations (median of 3 warm runs each)")
    parser.add_argument("--onednn", action="store_true", help="TensorFlow's oneDNN CPU kernels on (default off)")
    parser.add_argument("--threads", type=int, help="TensorFlow intra-op threads, inter-op 1 (default: TensorFlow's)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    cores = len(os.sched_getaffinity(0))
    info = configure_compute("cpu", args.threads, onednn=args.onednn)
    print(machine())
    onednn = {True: "on", False: "off", None: "unknown"}[info.onednn]
    print(f"TensorFlow: oneDNN {onednn}, intra-op threads {info.intra_op_threads or 'default'}, "
          f"inter-op threads {info.inter_op_threads or 'default'}")
    load = os.getloadavg()[0]
    print(f"load average before: {load:.2f} (other processes on these {cores} cores slow the wall times)")
    tm = new_trained_model(ModelSpec(), labels=LABELS, rate=RATE, seed=1)
    print(f"network: tutorial (mel-cepstrum 6.4/1.6 ms, 7,7, 5x5,3, 64,64), context {tm.context_tics} tics, "
          f"stride {tm.stride_tics} tics, {len(LABELS)} labels")
    results = {"machine": machine(), "seconds": args.seconds, "load_before": load, "cores": cores,
               "onednn": info.onednn, "intra_op_threads": info.intra_op_threads,
               "inter_op_threads": info.inter_op_threads}
    with tempfile.TemporaryDirectory() as tmp:
        wav = make_recording(Path(tmp) / "benchmark.wav", args.seconds)
        probs, (cold, cold_cpu), (warm, warm_cpu), (built_probs, built_warm, built_cpu) = time_ours(
            tm, wav, runs=args.runs, span_tics=args.span_tics, batch_size=args.batch_size, as_built=True)
        median, median_cpu = statistics.median(warm), statistics.median(warm_cpu)
        print(f"ours, span {args.span_tics} tics x batch {args.batch_size}: cold {cold:.2f} s "
              f"({args.seconds / cold:.0f}x realtime), warm median of {args.runs} {median:.2f} s "
              f"({args.seconds / median:.0f}x realtime); runs {[round(w, 2) for w in warm]} s; "
              f"CPU {median_cpu:.2f} s -> {args.seconds / (median_cpu / cores):.0f}x realtime on {cores} idle cores")
        results.update(ours_cold_s=cold, ours_warm_s=warm, ours_warm_median_s=median, ours_rtf=args.seconds / median,
                       ours_cpu_s=warm_cpu, ours_cpu_rtf=args.seconds / (median_cpu / cores),
                       span_tics=args.span_tics, batch_size=args.batch_size)
        built_median, built_median_cpu = statistics.median(built_warm), statistics.median(built_cpu)
        built_difference = float(np.abs(built_probs.values - probs.values).max())
        print(f"ours with the Keras model as built (runs alternating with the above): warm median "
              f"{built_median:.2f} s ({args.seconds / built_median:.0f}x realtime); runs "
              f"{[round(w, 2) for w in built_warm]} s; CPU {built_median_cpu:.2f} s -> "
              f"{args.seconds / (built_median_cpu / cores):.0f}x realtime on {cores} idle cores; "
              f"matrix-product convolutions are {built_median / median:.2f}x faster by wall time, "
              f"{built_median_cpu / median_cpu:.2f}x by CPU time; largest difference {built_difference:.1e}")
        results.update(as_built_warm_s=built_warm, as_built_cpu_s=built_cpu,
                       as_built_rtf=args.seconds / built_median,
                       as_built_cpu_rtf=args.seconds / (built_median_cpu / cores),
                       as_built_max_difference=built_difference)

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
            for span in (2**12, 2**14, 2**15, 2**16, 2**18):
                for batch in (1, 2, 4, 16):
                    if span * batch > 2**20:
                        continue
                    _, _, (walls, cpus), _ = time_ours(tm, wav, runs=3, span_tics=span, batch_size=batch)
                    elapsed, cpu = statistics.median(walls), statistics.median(cpus)
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
