"""Real song: the default recipe trained on SongExplorer's tutorial recordings.

Trains on both tutorial recordings' ``person1`` annotations (labels mel-pulse, mel-sine,
ambient; ``../shared/data/songexplorer-tutorial``) with a recipe from
``songexplorer_core.recipes`` (default: the project's default), then classifies both recordings
and the unannotated Antigua recording and makes their ethograms the recipe's way (label of
highest probability) and SongExplorer's (thresholds at the precision/recall ratio). Prints:

* the training's wall and CPU seconds (``train()`` alone, TensorFlow already started) and the
  load average;
* validation precision, recall and F1 per label at the best checkpoint, and the thresholds;
* predicted intervals per label per recording and ethogram (and pulses per minute, seconds of sine);
* for the two annotated recordings (which it trained on, so an upper bound, not a test): the
  annotated pulses the ethogram finds (±12 tics) and the annotated sine / ambient tics it labels
  sine / leaves free of song.

Usage::

    .venv/bin/python benchmarks/real_song.py                      # default recipe
    .venv/bin/python benchmarks/real_song.py --recipe tutorial
    .venv/bin/python benchmarks/real_song.py --out /tmp/real      # keep model, probabilities, ethograms
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

import numpy as np  # noqa: E402

from songexplorer_core import recipes  # noqa: E402

TUTORIAL = ROOT / ".." / "shared" / "data" / "songexplorer-tutorial"
ANNOTATED = ("PS_20130625111709_ch3.wav", "20161207T102314_ch1.wav")
UNANNOTATED = ("Antigua_20110313095210_ch26.wav",)
LABELS = ("mel-pulse", "mel-sine", "ambient")
TOLERANCE_TICS = 12


def ground_truth(folder: Path) -> Path:
    """Both tutorial recordings with their person1 annotations (links), nothing else."""
    folder.mkdir(parents=True, exist_ok=True)
    for recording in ANNOTATED:
        for name in (recording, f"{recording}-annotated-person1.csv"):
            link = folder / name
            if not link.exists():
                link.symlink_to((TUTORIAL / name).resolve())
    return folder


def covered(frame, ntics: int) -> np.ndarray:
    """Tics inside any interval of ``frame``."""
    change = np.zeros(ntics + 1, np.int64)
    np.add.at(change, np.clip(frame["start"].to_numpy(), 0, ntics), 1)
    np.add.at(change, np.clip(frame["stop"].to_numpy() + 1, 0, ntics), -1)
    return np.cumsum(change[:-1]) > 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", choices=["default", "tutorial"], default="default",
                        help="songexplorer_core.recipes.default_recipe or tutorial_recipe")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder to keep the model, probabilities and ethograms in (default: a temporary one)")
    args = parser.parse_args()
    if not (TUTORIAL / ANNOTATED[0]).is_file():
        print(f"{TUTORIAL} is absent: nothing to do")
        return 0

    from songexplorer_core.compute import configure_compute

    configure_compute("cpu")
    from songexplorer_core import models
    from songexplorer_core.accuracy import accuracy_report, write_accuracy_outputs
    from songexplorer_core.annotations import read_intervals_csv, write_intervals_csv
    from songexplorer_core.audio import recording_info
    from songexplorer_core.classify import Classifier, classify_recording, write_probabilities
    from songexplorer_core.ethogram import (
        DEFAULT_MIN_SEGMENT_FRACTION, event_refractory, min_segment_durations, predicted_csv_name,
        read_annotation_durations,
    )
    from songexplorer_core.train import train

    work = Path(tempfile.mkdtemp(prefix="bench-real-")) if args.out is None else args.out
    if args.out is not None and (work / "logs").exists():
        raise SystemExit(f"{work / 'logs'} exists: give an empty --out folder (training would resume there)")
    try:
        config = (recipes.default_recipe if args.recipe == "default" else recipes.tutorial_recipe)(LABELS)
        ratio = recipes.DEFAULT_PRECISION_RECALL_RATIO
        print(describe())
        print(f"recipe: {args.recipe}: nsteps {config.nsteps}, learning rate {config.learning_rate}, mini-batch "
              f"{config.mini_batch}, P {config.parallelize}, validate every {config.validate_period} steps on "
              f"{config.validate_percentage:g} %, seeds {config.batch_seed}/{config.weights_seed}; thresholds at "
              f"precision/recall {ratio:g}")
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        wall, cpu = time.perf_counter(), time.process_time()
        result = train(ground_truth(work / "groundtruth"), config, work / "logs")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"train(): {wall:.1f} s wall, {cpu:.1f} s CPU; load average after: "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print("annotations used:", result.counts)

        model_dir = result.replicates[0].model_dir
        report = accuracy_report(model_dir, ratios=(ratio,))
        write_accuracy_outputs(report, plots="none")
        best = report.best
        thresholds = best.thresholds[ratio]
        print(f"\nbest checkpoint: ckpt-{best.checkpoint} (validated: {[c.checkpoint for c in report.checkpoints]})")
        print("| label | validation taps | precision | recall | F1 | threshold |")
        print("|---|---|---|---|---|---|")
        for i, label in enumerate(best.labels):
            print(f"| {label} | {best.ntrue[i]} | {best.precision[i]:.3f} | {best.recall[i]:.3f} | {best.f1[i]:.3f} "
                  f"| {thresholds[label]:.3f} |")

        classifier = Classifier(models.load_trained_model(model_dir / f"ckpt-{best.checkpoint}"))
        out = work / "predictions"
        out.mkdir(exist_ok=True)
        durations = read_annotation_durations(model_dir)
        minimum_s = min_segment_durations(durations, DEFAULT_MIN_SEGMENT_FRACTION)
        events = event_refractory(durations)
        print(f"\nethograms: 'default' = {recipes.DEFAULT_ETHOGRAM_METHOD} with segments shorter than "
              f"{ {k: round(v, 3) for k, v in minimum_s.items()} } s dropped and one event per peak of "
              f"{ {k: round(v, 4) for k, v in events.items()} } s refractory; 'maxprob' without either; "
              f"'threshold' = SongExplorer's thresholds above")
        print("| recording | ethogram | minutes | mel-pulse | pulses/min | mel-sine | sine s | ambient | classify s |")
        print("|---|---|---|---|---|---|---|---|---|")
        ethograms = {}
        for recording in ANNOTATED + UNANNOTATED:
            started = time.perf_counter()
            probs = classify_recording(classifier, TUTORIAL / recording)
            seconds = time.perf_counter() - started
            write_probabilities(probs, out / f"{recording}-probabilities.npz")
            minutes = recording_info(TUTORIAL / recording).duration_s / 60
            for method in ("default", "maxprob", "threshold"):
                predicted = recipes.make_ethogram(
                    probs, thresholds, method=recipes.DEFAULT_ETHOGRAM_METHOD if method == "default" else method,
                    min_segment_s=minimum_s if method == "default" else None,
                    events=events if method == "default" else None)
                name = predicted_csv_name(recording, None if method != "threshold" else ratio)
                write_intervals_csv(predicted, out / name.replace("-predicted", f"-predicted-{method}"))
                ethograms.setdefault(recording, {})[method] = predicted
                counts = predicted["label"].value_counts()
                sine = predicted[predicted["label"] == "mel-sine"]
                sine_s = float((sine["stop"] - sine["start"] + 1).sum()) / probs.rate
                print(f"| {recording} | {method} | {minutes:.2f} | {counts.get('mel-pulse', 0)} | "
                      f"{counts.get('mel-pulse', 0) / minutes:.0f} | {counts.get('mel-sine', 0)} | {sine_s:.1f} | "
                      f"{counts.get('ambient', 0)} | {seconds:.2f} |")

        print("\nAgainst the annotations it trained on (an upper bound, not a test):")
        print("| recording | ethogram | pulses found | sine tics labelled sine | ambient tics free of song |")
        print("|---|---|---|---|---|")
        for recording, method in ((r, m) for r in ANNOTATED for m in ethograms[r]):
            truth = read_intervals_csv(TUTORIAL / f"{recording}-annotated-person1.csv")
            predicted = ethograms[recording][method]
            ntics = recording_info(TUTORIAL / recording).frames
            found = recipes.pulse_scores(predicted, truth[truth["label"] == "mel-pulse"]["start"],
                                         tolerance_tics=TOLERANCE_TICS)
            sine_true = covered(truth[truth["label"] == "mel-sine"], ntics)
            ambient_true = covered(truth[truth["label"] == "ambient"], ntics)
            said_sine = covered(predicted[predicted["label"] == "mel-sine"], ntics)
            said_song = said_sine | covered(predicted[predicted["label"] == "mel-pulse"], ntics)
            print(f"| {recording} | {method} | {found.tp}/{found.ntrue} | {(said_sine & sine_true).sum() / sine_true.sum():.3f} | "
                  f"{(ambient_true & ~said_song).sum() / ambient_true.sum():.3f} |")
        if args.out is not None:
            print(f"\nmodel: {model_dir}; probabilities and ethograms: {out}")
    finally:
        if args.out is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
