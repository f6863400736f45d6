"""Trainings side by side: the same study (replicates of SongExplorer's tutorial training on
generated song) run one at a time with all threads, then side by side with the threads shared.

    .venv/bin/python benchmarks/studies.py [--trainings 4] [--nsteps 300] [--workers 2]

Prints the wall time of each and their ratio (the speed-up). Both runs are taken in this one
process run, so they share the machine's load.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trainings", type=int, default=4)
    parser.add_argument("--nsteps", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from songexplorer_core import studies as S
    from songexplorer_core import synth
    from songexplorer_core.annotations import write_intervals_csv
    from songexplorer_core.recipes import tutorial_recipe

    labels = ("mel-pulse", "mel-sine", "ambient")
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        truth = Path(tmp) / "gt"
        truth.mkdir()
        for i in range(2):
            song = synth.make_song(60.0, seed=10 + i, wav=f"song{i}.wav",
                                   params=synth.SongParams(sine_bout_rate_per_min=8.0))
            synth.write_song(song, truth / song.wav)
            write_intervals_csv(synth.seed_annotations(song, {x: 30 for x in labels}, seed=20 + i, allow_fewer=True),
                                truth / f"{song.wav}-annotated-person1.csv")
        base = tutorial_recipe(labels, nsteps=args.nsteps, validate_period=args.nsteps)
        trials = S.replicates(base, args.trainings)
        walls = {}
        for workers in (1, args.workers):
            threads = max(1, cores // workers)
            started = time.monotonic()
            # both in spawned processes, so both pay TensorFlow's start-up per training
            S.run_trials(truth, trials, Path(tmp) / f"w{workers}", workers=workers, threads=threads, device="cpu",
                         spawn=True)
            walls[workers] = time.monotonic() - started
            print(f"{args.trainings} trainings of {args.nsteps} steps, {workers} side by side x {threads} threads: "
                  f"{walls[workers]:.1f} s wall (load average {os.getloadavg()[0]:.1f})", flush=True)
        print(f"speed-up: {walls[1] / walls[args.workers]:.2f}x on {cores} cores")


if __name__ == "__main__":
    main()
