"""Short predicted segments on a densely annotated recording: what dropping them does.

Builds the demo project (``songexplorer_core.demo``: three 120 s recordings, seeds on the first
two, ``demo-3.wav`` densely annotated with every pulse and sine bout the generator put in),
trains the default recipe on the seeds (dense annotations held out, as ``ground_truth`` does),
classifies ``demo-3.wav`` and makes its ethogram with the default method for several
``min_segment_fraction`` values. Prints, per fraction, the minimum durations used, the
intervals per label and the congruence with the dense truth (SongExplorer's reference; events
and tics) for pulse and sine.

Usage::

    .venv/bin/python benchmarks/segments.py
    .venv/bin/python benchmarks/segments.py --fractions 0,0.5 --out /tmp/segments   # keep the files
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import describe  # noqa: E402  (benchmarks/machine.py, beside this script)

DENSE_WAV = "demo-3.wav"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fractions", default="0,0.25,0.5,1", help="min_segment_fraction values to compare")
    parser.add_argument("--out", type=Path, default=None, help="keep the project here (default: a temp folder)")
    args = parser.parse_args(argv)

    from songexplorer_core.compute import configure_compute

    configure_compute("cpu")

    from songexplorer_core import dataset as D
    from songexplorer_core import models, recipes
    from songexplorer_core.annotations import read_intervals_csv
    from songexplorer_core.classify import classify_recording
    from songexplorer_core.congruence import congruence
    from songexplorer_core.demo import DEMO_DENSE_ANNOTATOR, make_demo_project
    from songexplorer_core.ethogram import min_segment_durations, read_annotation_durations
    from songexplorer_core.train import train

    print(describe())
    work = Path(tempfile.mkdtemp(prefix="bench-segments-")) if args.out is None else args.out
    try:
        project = make_demo_project(work / "demo", dense=True)
        truth_file = project.groundtruth / f"{DENSE_WAV}-annotated-{DEMO_DENSE_ANNOTATOR}.csv"
        frame = D.GroundTruth.from_folder(project.groundtruth, kinds=["annotated"])
        seeds = frame.intervals[frame.intervals["wav"] != DENSE_WAV]  # the dense set never trains
        ground = D.GroundTruth(intervals=seeds, recordings=frame.recordings, root=frame.root)
        config = recipes.default_recipe("mel-pulse,mel-sine,ambient")
        started = time.perf_counter()
        result = train(ground, config, work / "logs")
        print(f"trained the default recipe on {len(seeds)} seed annotations in {time.perf_counter() - started:.1f} s "
              f"(load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})")
        model_dir = result.replicates[0].model_dir
        model = models.load_trained_model(model_dir / f"ckpt-{config.nsteps}")
        probs = classify_recording(model, project.groundtruth / DENSE_WAV)
        truth = read_intervals_csv(truth_file)
        durations = read_annotation_durations(model_dir)
        print(f"annotation durations (from training):\n{durations.to_string(index=False)}")
        print(f"dense truth of {DENSE_WAV}: {truth['label'].value_counts().to_dict()}")
        print("\n| min_segment_fraction | minimum s | intervals | sine P / R (events) | sine F1 (tics) | "
              "pulse P / R (events) |")
        print("|---|---|---|---|---|---|")
        for fraction in (float(x) for x in args.fractions.split(",")):
            minimum = min_segment_durations(durations, fraction)
            predicted = recipes.make_ethogram(probs, min_segment_s=minimum)
            scores = congruence({DEMO_DENSE_ANNOTATOR: truth}, predicted, recordings=[DENSE_WAV], rate=probs.rate,
                                measure="both", keep_sets=False).scores
            scores = scores[scores["reference"] == "songexplorer"].set_index(["measure", "label"])

            def cell(measure, label, *names):
                return " / ".join(f"{scores.loc[(measure, label), n]:.3f}" for n in names)

            counts = predicted["label"].value_counts().to_dict()
            print(f"| {fraction:g} | {', '.join(f'{k} {v:.3f}' for k, v in minimum.items()) or '-'} | "
                  f"{', '.join(f'{k} {v}' for k, v in sorted(counts.items()))} | "
                  f"{cell('label', 'mel-sine', 'precision', 'recall')} | {cell('tic', 'mel-sine', 'f1')} | "
                  f"{cell('label', 'mel-pulse', 'precision', 'recall')} |")
    finally:
        if args.out is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
