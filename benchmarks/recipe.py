"""Choosing the default training recipe: candidates compared on what a user cares about.

The default is judged on recordings it has never seen, annotated densely by people: every pulse
found, no false ones. Validation F1 on sparse annotations is only a proxy, so each candidate
(a set of changes to SongExplorer's tutorial settings, ``songexplorer_core.recipes``) is
trained three times and scored on recordings it did not train on:

* **synthetic** (dense truth): two generated 120 s recordings with 16 seed annotations per
  label each (96 annotations, as a person starts); the model (best checkpoint by validation F1)
  classifies *other* generated 120 s recordings (``--unseen-seeds``, default 90 and 91) and its
  ethogram is compared with every pulse and sine bout in them:
  pulse precision / recall one to one (``recipes.match_events``, tolerance ±12 tics = 4.8 ms,
  about half the longest pulse), sine precision / recall per tic.
* **leave one recording out** (real song, sparse truth): train on one SongExplorer tutorial
  recording's ``person1`` annotations (mel-pulse, mel-sine, ambient; 40 % validation as usual),
  classify the *other* recording and compare its ethogram with that recording's ``person1``
  annotations: pulse recall (annotated pulses found, same tolerance), false pulses (predicted
  pulse intervals touching an annotated ambient or sine range, per minute of those ranges),
  sine recall (annotated sine tics predicted sine), ambient kept clean (annotated ambient tics
  predicted neither pulse nor sine). Both directions; skipped when ``../shared`` is absent
  or with ``--no-loo``.

Each training is scored with two ethograms (one row each): ``thresholds`` (SongExplorer's
per-label thresholds at the candidate's precision/recall ratio, default 1) and ``maxprob``
(the label of highest probability at each tic).

Every row is appended to ``benchmarks/recipe.csv`` (with the machine's load average; training
wall and CPU seconds are of ``train()`` alone, TensorFlow already started). ``--show`` prints the
table from the CSV without training.

Usage::

    .venv/bin/python benchmarks/recipe.py                       # every candidate
    .venv/bin/python benchmarks/recipe.py --candidates tutorial,default
    .venv/bin/python benchmarks/recipe.py --candidates fast,default --unseen-seeds 90,91,92,93,99 --no-loo
    .venv/bin/python benchmarks/recipe.py --show
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from songexplorer_core import recipes  # noqa: E402

TUTORIAL = ROOT / ".." / "shared" / "data" / "songexplorer-tutorial"
RECORDINGS = ("PS_20130625111709_ch3.wav", "20161207T102314_ch1.wav")
LABELS = ("mel-pulse", "mel-sine", "ambient")
CSV = ROOT / "benchmarks" / "recipe.csv"
TOLERANCE_TICS = 12

#: name -> changes to SongExplorer's tutorial settings (``ratio``: the precision/recall ratio of
#: the ethogram's thresholds, default 1).
_FAST = {"learning_rate": 0.001, "nsteps": 1000, "validate_period": 1000}
CANDIDATES: dict[str, dict] = {
    "tutorial": {},
    "steps1000": {"nsteps": 1000, "validate_period": 100},
    "lr1e-3": {"learning_rate": 0.001},
    "lr1e-3_steps1000": {"learning_rate": 0.001, "nsteps": 1000, "validate_period": 100},
    # the same, validated only at the end (so the last checkpoint is the best one)
    "fast": _FAST,
    "fast_P16": dict(_FAST, parallelize=16),
    "fast_augment": dict(_FAST, augmentation={"volume": (0.5, 2.0), "noise": (0.0, 0.003)}),
    "fast_dropout0.2": dict(_FAST, model={"dropout_rate": 0.2}),
    "fast_ratio2": dict(_FAST, ratio=2.0),
    "fast_dropout0.2_P8": dict(_FAST, parallelize=8, model={"dropout_rate": 0.2}),
    "default": dict(recipes.DEFAULT_RECIPE, ratio=recipes.DEFAULT_PRECISION_RECALL_RATIO),
    # seed noise: the comparison again with other weights and batches
    "tutorial_seed2": {"batch_seed": 2, "weights_seed": 2},
    "fast_seed2": dict(_FAST, batch_seed=2, weights_seed=2),
    "default_seed2": dict(recipes.DEFAULT_RECIPE, batch_seed=2, weights_seed=2),
}


# ---------------------------------------------------------------------------------------------
# data


def synthetic_case(folder: Path, unseen_seeds=(90, 91)):
    """Training ground truth (2 x 120 s, 16 seed annotations per label each) and unseen 120 s
    recordings (one per seed); returns the unseen ``SynthSong``s (written into ``folder/unseen``)."""
    from songexplorer_core import synth
    from songexplorer_core.annotations import write_intervals_csv

    (folder / "groundtruth").mkdir(parents=True)
    (folder / "unseen").mkdir()
    for i in range(2):
        song = synth.make_song(120.0, seed=10 + i, wav=f"song{i}.wav")
        synth.write_song(song, folder / "groundtruth" / song.wav)
        seeds = synth.seed_annotations(song, 16, seed=20 + i)
        write_intervals_csv(seeds, folder / "groundtruth" / f"{song.wav}-annotated-person1.csv")
    unseen = []
    for seed in unseen_seeds:
        song = synth.make_song(120.0, seed=seed, wav=f"unseen{seed}.wav")
        synth.write_song(song, folder / "unseen" / song.wav)
        unseen.append(song)
    return unseen


def tutorial_fold(folder: Path, recording: str) -> Path:
    """A ground-truth folder holding one tutorial recording and its person1 annotations."""
    folder.mkdir(parents=True)
    for name in (recording, f"{recording}-annotated-person1.csv"):
        (folder / name).symlink_to((TUTORIAL / name).resolve())
    return folder


# ---------------------------------------------------------------------------------------------
# one candidate


def train_and_choose(groundtruth: Path, settings: dict, out: Path, ratio: float):
    """Train, then the best checkpoint (validation F1), its thresholds at ``ratio`` and its model."""
    from songexplorer_core import models
    from songexplorer_core import train as T
    from songexplorer_core.accuracy import accuracy_report
    from songexplorer_core.classify import Classifier

    config = recipes.recipe_config(settings, LABELS)
    wall, cpu = time.perf_counter(), time.process_time()
    result = T.train(groundtruth, config, out)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    report = accuracy_report(result.replicates[0].model_dir, ratios=(ratio,))
    best = report.best
    model = models.load_trained_model(result.replicates[0].model_dir / f"ckpt-{best.checkpoint}")
    return {"wall": wall, "cpu": cpu, "best": best, "thresholds": best.thresholds[ratio], "model": model,
            "classifier": Classifier(model)}


#: How an ethogram is made from probabilities: ``thresholds``: SongExplorer's per-label
#: thresholds at the precision/recall ratio (``ethogram_threshold``); ``maxprob``: each tic gets
#: the label of highest probability (``ethogram_maxprob``), no thresholds.
ETHOGRAMS = ("thresholds", "maxprob")


def ethograms(trained: dict, wav_path: Path) -> dict[str, pd.DataFrame]:
    """``{rule: predicted intervals}`` of one recording, for every rule of :data:`ETHOGRAMS`."""
    from songexplorer_core.classify import classify_recording
    from songexplorer_core.ethogram import ethogram_maxprob, ethogram_threshold

    probs = classify_recording(trained["classifier"], wav_path)
    return {"thresholds": ethogram_threshold(probs, trained["thresholds"]), "maxprob": ethogram_maxprob(probs)}


def mask_of(frame: pd.DataFrame, ntics: int) -> np.ndarray:
    """Tics covered by any interval of ``frame``."""
    change = np.zeros(ntics + 1, np.int64)
    np.add.at(change, np.clip(frame["start"].to_numpy(), 0, ntics), 1)
    np.add.at(change, np.clip(frame["stop"].to_numpy() + 1, 0, ntics), -1)
    return np.cumsum(change[:-1]) > 0


def synthetic_scores(trained: dict, unseen, folder: Path, rule: str) -> dict:
    from songexplorer_core.recipes import match_events

    pulses = [0, 0, 0]  # tp, npredicted, ntrue
    sine = [0, 0, 0]  # true-positive tics, predicted tics, true tics
    for song in unseen:
        predicted = ethograms(trained, folder / "unseen" / song.wav)[rule]
        rows = predicted[predicted["label"] == "mel-pulse"]
        s = match_events(song.pulse_centres, rows["start"], rows["stop"], tolerance_tics=TOLERANCE_TICS)
        pulses = [pulses[0] + s.tp, pulses[1] + s.npredicted, pulses[2] + s.ntrue]
        said = mask_of(predicted[predicted["label"] == "mel-sine"], song.ntics)
        true = mask_of(song.sines, song.ntics)
        sine = [sine[0] + int((said & true).sum()), sine[1] + int(said.sum()), sine[2] + int(true.sum())]
    best = trained["best"]
    f1 = dict(zip(best.labels, best.f1))
    return {
        "syn_train_wall_s": trained["wall"], "syn_train_cpu_s": trained["cpu"], "syn_best_ckpt": best.checkpoint,
        "syn_val_f1_pulse": f1["mel-pulse"], "syn_val_f1_sine": f1["mel-sine"], "syn_val_f1_ambient": f1["ambient"],
        "syn_pulse_precision": pulses[0] / max(pulses[1], 1), "syn_pulse_recall": pulses[0] / pulses[2],
        "syn_pulses_predicted": pulses[1], "syn_pulses_true": pulses[2],
        "syn_sine_precision": sine[0] / max(sine[1], 1), "syn_sine_recall": sine[0] / sine[2],
    }


def held_out_scores(trained: dict, recording: str, rule: str) -> dict:
    """Ethogram of a held-out tutorial recording against its person1 annotations."""
    from songexplorer_core.annotations import read_intervals_csv
    from songexplorer_core.audio import recording_info
    from songexplorer_core.recipes import match_events

    predicted = ethograms(trained, TUTORIAL / recording)[rule]
    truth = read_intervals_csv(TUTORIAL / f"{recording}-annotated-person1.csv")
    ntics = recording_info(TUTORIAL / recording).frames
    pulses = predicted[predicted["label"] == "mel-pulse"]
    true_pulses = truth[truth["label"] == "mel-pulse"]["start"]
    found = match_events(true_pulses, pulses["start"], pulses["stop"], tolerance_tics=TOLERANCE_TICS)
    quiet = truth[truth["label"].isin(["ambient", "mel-sine"])]
    touching = np.zeros(len(pulses), bool)
    for a, b in zip(quiet["start"], quiet["stop"]):
        touching |= (pulses["start"].to_numpy() <= b) & (pulses["stop"].to_numpy() >= a)
    quiet_min = (quiet["stop"] - quiet["start"] + 1).sum() / trained["model"].rate / 60
    sine_true = mask_of(truth[truth["label"] == "mel-sine"], ntics)
    ambient_true = mask_of(truth[truth["label"] == "ambient"], ntics)
    said_sine = mask_of(predicted[predicted["label"] == "mel-sine"], ntics)
    said_song = said_sine | mask_of(pulses, ntics)
    best = trained["best"]
    f1 = dict(zip(best.labels, best.f1))
    return {
        "train_wall_s": trained["wall"], "val_f1_pulse": f1["mel-pulse"], "val_f1_sine": f1["mel-sine"],
        "pulse_recall": found.recall, "false_pulses_per_min": int(touching.sum()) / quiet_min,
        "sine_recall": (said_sine & sine_true).sum() / sine_true.sum(),
        "ambient_clean": (ambient_true & ~said_song).sum() / ambient_true.sum(),
        "pulses_predicted": len(pulses),
    }


def run_candidate(name: str, changes: dict, work: Path, unseen, *, loo: bool = True) -> list[dict]:
    """Train the candidate on the synthetic case and (``loo``) both folds; one row per ethogram rule."""
    changes = dict(changes)
    ratio = float(changes.pop("ratio", 1.0))
    synthetic = train_and_choose(work / "synthetic" / "groundtruth", changes, work / "runs" / name / "synthetic", ratio)
    folds = []
    if loo and (TUTORIAL / RECORDINGS[0]).is_file():
        for train_on, test_on in (RECORDINGS, RECORDINGS[::-1]):
            folds.append((train_and_choose(work / "folds" / train_on, changes, work / "runs" / name / train_on, ratio),
                          test_on))
    rows = []
    for rule in ETHOGRAMS:
        row = {"candidate": name, "changes": json.dumps(changes, sort_keys=True, default=list), "ratio": ratio,
               "ethogram": rule, "unseen_seeds": " ".join(str(song.seed) for song in unseen)}
        row.update(synthetic_scores(synthetic, unseen, work / "synthetic", rule))
        for tag, (trained, test_on) in zip(("ps", "2016"), folds):  # ps: trained on PS_..., tested on 2016...
            row.update({f"loo_{tag}_{key}": value for key, value in held_out_scores(trained, test_on, rule).items()})
        row["load_average"] = os.getloadavg()[0]
        row["when"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# the table


SHOW = [
    ("candidate", "candidate", "{}"),
    ("ethogram", "ethogram", "{}"),
    ("unseen_seeds", "unseen", "{}"),
    ("syn_train_wall_s", "train s", "{:.0f}"),
    ("syn_val_f1_pulse", "valF1 p", "{:.2f}"),
    ("syn_val_f1_sine", "valF1 s", "{:.2f}"),
    ("syn_pulse_precision", "syn pulse P", "{:.3f}"),
    ("syn_pulse_recall", "syn pulse R", "{:.3f}"),
    ("syn_sine_precision", "syn sine P", "{:.3f}"),
    ("syn_sine_recall", "syn sine R", "{:.3f}"),
    ("loo_pulse_recall", "LOO pulse R", "{:.3f}"),
    ("loo_false_pulses_per_min", "LOO false p/min", "{:.1f}"),
    ("loo_sine_recall", "LOO sine R", "{:.3f}"),
    ("loo_ambient_clean", "LOO amb clean", "{:.3f}"),
]


def table(frame: pd.DataFrame) -> str:
    """Markdown table; LOO columns are the mean of the two directions."""
    frame = frame.copy()
    frame["ethogram"] = frame["ethogram"].fillna("thresholds") if "ethogram" in frame else "thresholds"
    frame["unseen_seeds"] = frame["unseen_seeds"].fillna("90 91") if "unseen_seeds" in frame else "90 91"
    for key in ("pulse_recall", "false_pulses_per_min", "sine_recall", "ambient_clean"):
        columns = [f"loo_ps_{key}", f"loo_2016_{key}"]
        frame[f"loo_{key}"] = frame[columns].mean(axis=1) if set(columns) <= set(frame.columns) else np.nan
    lines = ["| " + " | ".join(title for _, title, _ in SHOW) + " |", "|" + "---|" * len(SHOW)]
    for _, row in frame.iterrows():
        cells = []
        for key, _, fmt in SHOW:
            value = row.get(key)
            cells.append("" if value is None or (isinstance(value, float) and np.isnan(value)) else fmt.format(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def append_row(path: Path, row: dict) -> None:
    """Add ``row`` to the CSV at ``path`` (columns united with the earlier rows'), atomically."""
    from songexplorer_core.atomic import atomic_write

    frame = pd.DataFrame([row])
    if path.exists():
        frame = pd.concat([pd.read_csv(path), frame], ignore_index=True)
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidates", default=",".join(CANDIDATES),
                        help=f"comma-separated names among {list(CANDIDATES)}")
    parser.add_argument("--csv", type=Path, default=CSV, help="rows are appended here")
    parser.add_argument("--show", action="store_true", help="print the table from --csv and stop")
    parser.add_argument("--unseen-seeds", default="90,91",
                        help="seeds of the unseen synthetic recordings (120 s each) the ethograms are scored on")
    parser.add_argument("--no-loo", action="store_true", help="skip leaving a tutorial recording out")
    args = parser.parse_args()
    if args.show:
        print(table(pd.read_csv(args.csv)))
        return
    names = [n.strip() for n in args.candidates.split(",") if n.strip()]
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise SystemExit(f"unknown candidate(s) {unknown}; known: {list(CANDIDATES)}")

    from songexplorer_core.compute import configure_compute

    configure_compute("cpu")
    work = Path(tempfile.mkdtemp(prefix="bench-recipe-"))
    try:
        unseen = synthetic_case(work / "synthetic", [int(x) for x in args.unseen_seeds.split(",")])
        if args.no_loo:
            pass
        elif (TUTORIAL / RECORDINGS[0]).is_file():
            for recording in RECORDINGS:
                tutorial_fold(work / "folds" / recording, recording)
        else:
            print("../shared absent: leave-one-recording-out skipped")
        rows = []
        for name in names:
            for row in run_candidate(name, CANDIDATES[name], work, unseen, loo=not args.no_loo):
                rows.append(row)
                append_row(args.csv, row)
                print(table(pd.DataFrame([row])).splitlines()[-1], flush=True)
        print()
        print(table(pd.DataFrame(rows)))
        walls = [r["syn_train_wall_s"] for r in rows]
        print(f"median train() wall {statistics.median(walls):.1f} s; load average {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
