"""Training speed: wall-clock seconds for SongExplorer's tutorial training (300 steps).

The tutorial network (mel-cepstrum, 2 conv layers 5x5/3 with 64/64 features, dropout 50 %,
61 443 parameters), P = 2, mini-batch 32, Adam 0.0002, validate (and checkpoint) every 30 steps
at 40 % validation, seeds 1/1 -- SongExplorer's ``test/tutorial.sh`` settings, which took it
9-11.5 s (plus 2-5 s of start-up) on the same 2-core machines (measured running SongExplorer's
test/tutorial.sh, TensorFlow 2.15).

Ground truth: SongExplorer's tutorial recording PS_20130625111709_ch3.wav with its ``person1``
annotations (labels mel-pulse, mel-sine, ambient) if ``../shared`` is present, else a generated
200 s recording (``songexplorer_core.synth``) with 70/12/15 seed annotations.

Printed, each with wall-clock and CPU seconds of this process (on a shared machine wall time
includes waiting for a core; the load average is printed):

* **cold**: a fresh ``songexplorer train`` process (Python + TensorFlow start-up included) and,
  inside it, the ``train()`` call alone (dataset, model, tracing, 300 steps, 10 validations,
  11 checkpoints);
* **warm**: ``train()`` again in this process, TensorFlow already started (median of ``--runs``);
* **steps only**: 300 compiled training steps of an already-traced model (median of ``--runs``).

Usage::

    .venv/bin/python benchmarks/train.py            # 3 warm runs
    .venv/bin/python benchmarks/train.py --runs 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import describe  # noqa: E402  (benchmarks/machine.py, beside this script)

SHARED = ROOT / ".." / "shared"
TUTORIAL = SHARED / "data" / "songexplorer-tutorial"
RECORDING = "PS_20130625111709_ch3.wav"
LABELS = "mel-pulse,mel-sine,ambient"
SETTINGS = ["--labels", LABELS, "--kinds", "annotated", "--nsteps", "300", "--validate-period", "30",
            "--validate-percentage", "40", "--mini-batch", "32", "--batch-seed", "1", "--weights-seed", "1"]


def ground_truth(folder: Path) -> str:
    """Fill ``folder`` with the tutorial ground truth (or a generated one); return a description."""
    if (TUTORIAL / RECORDING).is_file():
        for name in (RECORDING, f"{RECORDING}-annotated-person1.csv"):
            (folder / name).symlink_to((TUTORIAL / name).resolve())
        return f"SongExplorer tutorial: {RECORDING} + person1 annotations"
    from songexplorer_core import synth  # noqa: PLC0415
    from songexplorer_core.annotations import write_intervals_csv  # noqa: PLC0415

    song = synth.make_song(200.0, seed=1, wav="synthetic.wav")
    synth.write_song(song, folder / song.wav)
    seeds = synth.seed_annotations(song, {"mel-pulse": 70, "mel-sine": 12, "ambient": 15}, seed=2, allow_fewer=True)
    write_intervals_csv(seeds, folder / f"{song.wav}-annotated-person1.csv")
    return "generated: 200 s synthetic song + 70/12/15 seed annotations (../shared absent)"


def timed(function, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return (time.perf_counter() - wall, time.process_time() - cpu), result


def cold_run(folder: Path, out: Path) -> tuple[float, float | None]:
    """Wall seconds of a fresh ``songexplorer train`` process, and its own train() seconds."""
    code = (
        "import sys, time\n"
        "from songexplorer_cli import main\n"
        f"sys.exit(main(['train', '--groundtruth', {str(folder)!r}, '--out', {str(out)!r}, '--no-progress', "
        f"'--device', 'cpu', *{SETTINGS!r}]))\n"
    )
    wall = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - wall
    if done.returncode != 0:
        raise SystemExit(f"cold run failed:\n{done.stderr[-3000:]}")
    log = (out / "train_1r" / "train.log").read_text()
    return wall, _train_seconds(log)


def _train_seconds(log: str) -> float | None:
    """Seconds between the log's start and finish stamps (SongExplorer measured the same way)."""
    import datetime as dt  # noqa: PLC0415

    lines = log.splitlines()
    start = next((x for x in lines if x.endswith(": start time")), None)
    finish = next((x for x in reversed(lines) if x.endswith(": finish time")), None)
    if not (start and finish):
        return None
    parse = lambda x: dt.datetime.fromisoformat(x.rsplit(": ", 1)[0])  # noqa: E731
    return (parse(finish) - parse(start)).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="warm repetitions (median reported)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        folder = work / "groundtruth"
        folder.mkdir()
        source = ground_truth(folder)
        print(describe())
        print(f"ground truth: {source}")
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

        cold_wall, cold_train = cold_run(folder, work / "cold")
        print(f"cold  songexplorer train process: {cold_wall:6.2f} s wall "
              f"(train() inside it, start to finish stamps: {cold_train:.2f} s)")

        from songexplorer_core.compute import configure_compute  # noqa: PLC0415

        info = configure_compute("cpu")
        from songexplorer_core import train as T  # noqa: PLC0415
        from songexplorer_cli import build_parser  # noqa: PLC0415
        from songexplorer_cli.train import config_from_args  # noqa: PLC0415

        config = config_from_args(build_parser().parse_args(
            ["train", "--groundtruth", str(folder), "--out", str(work), *SETTINGS]))
        print(f"TensorFlow: oneDNN {'on' if info.onednn else 'off'}, threads intra {info.intra_op_threads} "
              f"inter {info.inter_op_threads} (0 = TensorFlow's default)")
        warm, accuracies = [], []
        for run in range(args.runs + 1):  # the first run starts TensorFlow; not counted
            out = work / f"warm{run}"
            (wall, cpu), result = timed(T.train, folder, config, out)
            history = result.history.dropna(subset=["validation_accuracy"])
            accuracies.append(history["validation_accuracy"].iloc[-1])
            if run:
                warm.append((wall, cpu))
            shutil.rmtree(out)
        print(f"warm  train() 300 steps + 10 validations + 11 checkpoints: median "
              f"{statistics.median(w for w, _ in warm):6.2f} s wall, {statistics.median(c for _, c in warm):6.2f} s CPU "
              f"over {len(warm)} runs; final validation accuracy {100 * accuracies[-1]:.1f} % "
              f"(SongExplorer: 95.5 %)")

        steps_only = _steps_only(T, folder, config, args.runs)
        print(f"steps only: 300 compiled training steps: median {statistics.median(w for w, _ in steps_only):6.2f} s wall, "
              f"{statistics.median(c for _, c in steps_only):6.2f} s CPU")
        print(f"SongExplorer (test/tutorial.sh, same machines): train 300 steps 9-11.5 s + 2-5 s start-up; "
              f"target here <= 10 s for the steps")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _steps_only(T, folder, config, runs):
    import numpy as np  # noqa: PLC0415

    from songexplorer_core import models as M  # noqa: PLC0415

    dataset = T.prepare_dataset(folder, config)
    model = M.build_model(config.model, labels=dataset.labels, rate=dataset.rate, seed=1)
    optimizer = T._make_optimizer(config.optimizer, config.learning_rate)
    optimizer.build(model.trainable_variables)
    steps = T._Steps(model, optimizer, loss=config.loss, nchannels=dataset.nchannels, nlabels=len(dataset.labels))
    rng = np.random.default_rng(1)
    batches = [dataset.training_batch(config.mini_batch, rng) for _ in range(300)]
    audio = np.stack([b.audio for b in batches])
    targets = np.stack([b.targets for b in batches])
    steps.run(audio[:1], targets[:1])  # trace
    out = []
    for _ in range(runs):
        def go():
            for i in range(0, 300, config.steps_per_call):
                steps.run(audio[i:i + config.steps_per_call], targets[i:i + config.steps_per_call])
        out.append(timed(go)[0])
    return out


if __name__ == "__main__":
    main()
