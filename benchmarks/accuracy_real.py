"""Accuracy on real fly song a model has never seen, for any list of recipes, side by side.

Reads ``../shared/data`` (SongExplorer's tutorial recordings, its reference predictions, and the
densely annotated development recording); prints nothing but a note when it is absent.

For each candidate (a training recipe from ``songexplorer_core.recipes`` plus changes) and seed,
three trainings on the tutorial's ``person1`` annotations (mel-pulse, mel-sine, ambient):

* **both** tutorial recordings -> the dev recording (``songexplorer-dense-dev``) is classified
  and its mel-pulse events scored against each person inside that person's span, at label level,
  with the project's own congruence (``songexplorer_core.congruence``: one predicted event per
  human pulse, matched when they overlap);
* **PS only** (PS_20130625111709_ch3, round 1 of SongExplorer's tutorial) -> classifies
  20161207T102314_ch1 (round 2) and the dev recording. Its round-2 mel-pulse events are compared
  with what SongExplorer's own tutorial model predicted there (``reference-predicted/``, taken as
  the reference, label level): the **fidelity** check; its dev-recording F1 is compared with the
  figures in the dev set's README;
* **20161207 only** -> classifies PS. With the PS-only model this is leave one recording out
  (LOO): on the left-out recording, pulse recall on its person1 points, false pulses per minute
  of its ``not_mel-pulse`` ranges (notsong CSV: stretches a person marked as having no pulse),
  sine precision/recall by tics on its person1 sine ranges (precision over the tics whose truth
  is known: person1's sine ranges and the ``not_mel-sine`` ranges), and the fraction of its
  annotated ambient tics left free of song. Averaged over both directions.

Every trained model's ethogram is made several ways (``--ethograms``), each scored:
``default`` (the project's: label of highest probability, short sine/ambient slivers dropped, one
event per peak of the pulse probability), ``maxprob`` (the same with one interval per run of
samples, the default before this benchmark), ``threshold`` (SongExplorer's: the model's
thresholds at precision/recall 1).

Usage::

    .venv/bin/python benchmarks/accuracy_real.py --candidates tutorial,default --seeds 1,2
    .venv/bin/python benchmarks/accuracy_real.py --candidates tutorial --only fidelity
    .venv/bin/python benchmarks/accuracy_real.py --cache /tmp/acc   # keep models/probabilities, reuse them

Each training is ``train()`` on 2 CPU cores; CPU seconds are printed per candidate.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402  (benchmarks/machine.py)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

DATA = ROOT / ".." / "shared" / "data"
TUTORIAL = DATA / "songexplorer-tutorial"
DENSE = DATA / "songexplorer-dense-dev"
PS, R2 = "PS_20130625111709_ch3.wav", "20161207T102314_ch1.wav"
DEV = "20190122T132554a-14.wav"
DEV_PEOPLE = ("person2", "person3")
LABELS = ("mel-pulse", "mel-sine", "ambient")
PULSE, SINE, AMBIENT = LABELS
#: SongExplorer's figures on the dev recording (its README): tutorial recipe trained on PS only.
SONGEXPLORER_DEV_F1 = {"person2": 0.937, "person3": 0.842}
SPLITS = {"both": (PS, R2), "ps": (PS,), "r2": (R2,)}


@dataclass
class Candidate:
    """A recipe to compare: ``base`` (a name in ``recipes.RECIPES``) plus TrainConfig changes."""

    name: str
    base: str
    changes: dict = field(default_factory=dict)
    checkpoint: str = "last"  # accuracy.CHECKPOINT_CHOICES: "last" (SongExplorer's tutorial) or "best-f1"
    thresholds: str = "songexplorer"  # accuracy.THRESHOLD_METHODS: "songexplorer" or "exact"
    normalize: bool = False  # probe: every recording scaled to one noise floor before training/classifying
    quiet_ambient_s: float = 0.0  # probe: the detector's quiet stretches at least this long are ambient too


def candidates() -> dict[str, Candidate]:
    """Every recipe in ``recipes.RECIPES``, and the variants measured for docs/recipe.md."""
    from songexplorer_core import recipes

    out = {name: Candidate(name, name) for name in recipes.RECIPES}
    mix = {"background_label": AMBIENT, "mix": (0.3, 1.0)}
    extra = [
        # how this project trained before the fidelity work: best validation F1, exact thresholds
        Candidate("tutorial-before", "tutorial", checkpoint="best-f1", thresholds="exact"),
        Candidate("tutorial-best", "tutorial", checkpoint="best-f1"),
        Candidate("tutorial-exact", "tutorial", thresholds="exact"),
        # default-recipe variants tried on real song (docs/recipe.md)
        Candidate("default-vol", "default", {"augmentation": {"volume": (0.2, 1.0)}}),
        Candidate("default-mix", "default", {"augmentation": {**mix, "mix": (0.1, 1.0)}}),
        Candidate("default-mix3", "default", {"augmentation": mix}),
        Candidate("default-mix3p", "default", {"augmentation": {**mix, "mix_labels": (PULSE,)}}),
        Candidate("default-quiet", "default", quiet_ambient_s=0.5),
        Candidate("default-norm", "default", normalize=True),
        Candidate("default-ctx", "default", {"model": {"context_ms": 409.6}}),
        Candidate("default-spec", "default", {"model": {"representation": "spectrogram"}}),
        # replicates averaged within the default's training time: 2 x 500 steps, 3 x 333 steps
        Candidate("default-2x500", "default", {"nreplicates": 2, "nsteps": 500, "validate_period": 500}),
        Candidate("default-3x333", "default", {"nreplicates": 3, "nsteps": 333, "validate_period": 333,
                                               "save_period": 111}),
        Candidate("default-2x1000", "default", {"nreplicates": 2}),
        # the notsong CSVs' not_ ranges as negative examples of the exclusive model
        Candidate("default-neg", "default", {"negatives": True}),
        # the default now has negatives: with song mixed into background / gain augmentation
        Candidate("default-mix3n", "default", {"augmentation": mix}),
        Candidate("default-vol5n", "default", {"augmentation": {"volume": (0.5, 1.0)}}),
        Candidate("default-vol3n", "default", {"augmentation": {"volume": (0.3, 1.0)}}),
        Candidate("default-voln", "default", {"augmentation": {"volume": (0.2, 1.0)}}),
    ]
    out.update({c.name: c for c in extra})
    return out


NOISE_FLOOR = 0.001  # full scale, what --normalize probes scale every recording's noise floor to


def noise_floor(samples: np.ndarray) -> float:
    """10th percentile of the RMS of 64-tic frames: the level of a recording's quiet stretches."""
    n = len(samples) // 64 * 64
    return float(np.percentile(np.sqrt((samples[:n].reshape(-1, 64) ** 2).mean(axis=1)), 10))


def normalized_copy(wav: Path, folder: Path) -> Path:
    """``wav`` scaled so that its noise floor is :data:`NOISE_FLOOR` (int16, in ``folder``)."""
    import soundfile as sf

    out = folder / wav.name
    if not out.exists():
        samples, rate = sf.read(wav, dtype="float32")
        scaled = np.clip(samples * (NOISE_FLOOR / noise_floor(samples)), -1, 32767 / 32768)
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(out, scaled, rate, subtype="PCM_16")
    return out


def quiet_ambient(recording: str, minimum_s: float, margin_s: float = 0.1) -> pd.DataFrame:
    """The detector's ``neither`` intervals of ``recording`` lasting at least ``minimum_s``,
    shortened by ``margin_s`` at both ends, as ``ambient`` annotations."""
    from songexplorer_core.annotations import intervals_frame

    detected = read(TUTORIAL / "reference-detected" / f"{recording}-detected.csv")
    quiet = detected[(detected["label"] == "neither") & ((detected["stop"] - detected["start"]) >= minimum_s * 2500)]
    margin = int(margin_s * 2500)
    return intervals_frame(recording, (quiet["start"] + margin).to_numpy(), (quiet["stop"] - margin).to_numpy(),
                           "annotated", AMBIENT)


def ground_truth(folder: Path, recordings, normalize: bool = False, quiet_ambient_s: float = 0.0,
                 negatives: bool = False) -> Path:
    """The recordings with their person1 annotations (links), and with ``negatives`` their
    notsong annotations (``not_mel-pulse``, ``not_mel-sine`` ranges), nothing else."""
    from songexplorer_core.annotations import write_intervals_csv

    folder.mkdir(parents=True, exist_ok=True)
    for recording in recordings:
        if quiet_ambient_s:
            write_intervals_csv(quiet_ambient(recording, quiet_ambient_s), folder / f"{recording}-annotated-quiet.csv")
        names = [recording, f"{recording}-annotated-person1.csv"]
        if negatives:
            names.append(f"{recording}-annotated-notsong.csv")
        for name in names:
            link = folder / name
            if link.exists():
                continue
            if normalize and name == recording:
                normalized_copy(TUTORIAL / name, folder)
            else:
                link.symlink_to((TUTORIAL / name).resolve())
    return folder


def covered(frame: pd.DataFrame, ntics: int) -> np.ndarray:
    """Tics inside any interval of ``frame``."""
    change = np.zeros(ntics + 1, np.int64)
    np.add.at(change, np.clip(frame["start"].to_numpy(np.int64), 0, ntics), 1)
    np.add.at(change, np.clip(frame["stop"].to_numpy(np.int64) + 1, 0, ntics), -1)
    return np.cumsum(change[:-1]) > 0


def train_split(candidate: Candidate, seed: int, split: str, work: Path, log) -> tuple[Path, float]:
    """Train ``candidate`` on ``split``; returns the chosen checkpoint folder and train CPU s."""
    from songexplorer_core import recipes
    from songexplorer_core.accuracy import accuracy_report, write_accuracy_outputs
    from songexplorer_core.train import train

    folder = work / f"{candidate.name}-seed{seed}-{split}"
    done = folder / "chosen.json"
    if done.exists():
        info = json.loads(done.read_text())
        return Path(info["checkpoint"]), info["cpu_s"]
    if folder.exists():
        shutil.rmtree(folder)
    config = recipes.recipe_config(recipes.RECIPES[candidate.base], LABELS,
                                   **{"batch_seed": seed, "weights_seed": seed, **candidate.changes})
    cpu = time.process_time()
    result = train(ground_truth(folder / "groundtruth", SPLITS[split], candidate.normalize,
                                candidate.quiet_ambient_s, config.negatives), config, folder / "logs")
    cpu = time.process_time() - cpu
    members = []
    for replicate in result.replicates:
        report = accuracy_report(replicate.model_dir, choose=candidate.checkpoint,
                                 threshold_method=candidate.thresholds)
        write_accuracy_outputs(report, plots="none")
        members.append(str(replicate.model_dir / f"ckpt-{report.best.checkpoint}"))
    done.write_text(json.dumps({"checkpoint": members[0], "members": members, "cpu_s": cpu}))
    log(f"  trained {folder.name}: {cpu:.1f} CPU s, {', '.join(Path(m).name for m in members)}")
    return Path(members[0]), cpu


def members(checkpoint: Path) -> list[Path]:
    """Every replicate's chosen checkpoint of the training whose first replicate is ``checkpoint``."""
    info = json.loads((checkpoint.parent.parent.parent / "chosen.json").read_text())
    return [Path(m) for m in info.get("members", [info["checkpoint"]])]


def probabilities(checkpoint: Path, wav: Path, cache: Path, normalize: bool = False):
    from songexplorer_core.classify import classify_recording, read_probabilities, write_probabilities
    from songexplorer_core import models

    import dataclasses

    path = cache / f"{wav.name}-probabilities.npz"
    if path.exists():
        return read_probabilities(path)
    if normalize:
        wav = normalized_copy(wav, cache / "normalized")
    # replicates (nreplicates > 1): the mean of their probabilities, as an ensemble would
    each = [classify_recording(models.load_trained_model(c), wav) for c in members(checkpoint)]
    probs = dataclasses.replace(each[0], values=np.mean([p.values for p in each], axis=0).astype(np.float32))
    write_probabilities(probs, path)
    return probs


def ethogram(method: str, probs, checkpoint: Path) -> pd.DataFrame:
    """``default``: the project's ethogram (``ethogram.run_ethogram``'s defaults: label of highest
    probability, short sine/ambient slivers dropped, one event per pulse peak reaching
    ``DEFAULT_EVENT_MIN_PEAK``); ``maxprob``: the same with SongExplorer's one interval per run
    of samples; ``threshold``: SongExplorer's ethogram with the model's thresholds file."""
    from songexplorer_core import ethogram as E
    from songexplorer_core import recipes

    model_dir = checkpoint.parent
    step = checkpoint.name.split("-")[-1]
    table = E.read_annotation_durations(model_dir)
    segments = E.min_segment_durations(table)
    if method == "default":
        return recipes.make_ethogram(probs, method="auto", min_segment_s=segments, events=E.event_refractory(table))
    if method == "maxprob":
        return recipes.make_ethogram(probs, method="maxprob", min_segment_s=segments)
    if method == "threshold":
        thresholds = E.read_thresholds_csv(model_dir / E.thresholds_csv_name(step, 1.0))
        return recipes.make_ethogram(probs, thresholds, method="threshold")
    raise SystemExit(f"unknown ethogram {method!r}: default, maxprob or threshold")


def read(path: Path) -> pd.DataFrame:
    from songexplorer_core.annotations import read_intervals_csv

    return read_intervals_csv(path)


def label_scores(reference: dict[str, pd.DataFrame], predicted: pd.DataFrame, wav: str) -> dict[str, tuple]:
    """Per reference key: mel-pulse (P, R, F1, tp, fp, fn) at label level inside its span."""
    from songexplorer_core.congruence import congruence

    out = {}
    for who, table in reference.items():
        result = congruence({who: table}, predicted, recordings=[wav], labels=[PULSE], measure="label",
                            keep_sets=False)
        s = result.scores
        row = s[(s["label"] == PULSE) & (s["measure"] == "label") & (s["reference"] == who)].iloc[0]
        out[who] = (row["precision"], row["recall"], row["f1"], int(row["tp"]), int(row["fp"]), int(row["fn"]))
    return out


def loo_scores(predicted: pd.DataFrame, recording: str) -> dict[str, float]:
    from songexplorer_core.audio import recording_info

    truth = read(TUTORIAL / f"{recording}-annotated-person1.csv")
    notsong = read(TUTORIAL / f"{recording}-annotated-notsong.csv")
    ntics = recording_info(TUTORIAL / recording).frames
    rate = recording_info(TUTORIAL / recording).rate
    pulses = predicted[predicted["label"] == PULSE]
    points = truth[truth["label"] == PULSE]["start"].to_numpy(np.int64)
    # a person1 pulse is found when a predicted pulse event overlaps it, one to one
    from songexplorer_core.recipes import match_events

    found = match_events(points, pulses["start"].to_numpy(), pulses["stop"].to_numpy())
    no_pulse = notsong[notsong["label"] == f"not_{PULSE}"]
    no_pulse_mask = covered(no_pulse, ntics)
    pulse_mask_events = [no_pulse_mask[max(0, a):min(ntics, b + 1)].any() for a, b in
                         zip(pulses["start"].to_numpy(), pulses["stop"].to_numpy())]
    false_pulses = int(np.sum(pulse_mask_events))
    minutes = no_pulse_mask.sum() / rate / 60
    sine_true = covered(truth[truth["label"] == SINE], ntics)
    sine_not = covered(notsong[notsong["label"] == f"not_{SINE}"], ntics) & ~sine_true
    said_sine = covered(predicted[predicted["label"] == SINE], ntics)
    known = sine_true | sine_not
    ambient_true = covered(truth[truth["label"] == AMBIENT], ntics)
    said_song = said_sine | covered(pulses, ntics)
    return {
        "pulse_recall": found.tp / max(found.ntrue, 1),
        "false_pulses_per_min": false_pulses / minutes if minutes else float("nan"),
        "sine_precision": (said_sine & sine_true).sum() / max((said_sine & known).sum(), 1),
        "sine_recall": (said_sine & sine_true).sum() / max(sine_true.sum(), 1),
        "ambient_clean": (ambient_true & ~said_song).sum() / max(ambient_true.sum(), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidates", default="tutorial,default", help="comma-separated; --list shows them")
    parser.add_argument("--list", action="store_true", help="list the candidates and exit")
    parser.add_argument("--seeds", default="1", help="comma-separated batch/weights seeds")
    parser.add_argument("--ethograms", default="default,maxprob,threshold",
                        help="comma-separated: default, maxprob, threshold")
    parser.add_argument("--only", default="dev,fidelity,loo", help="which of dev,fidelity,loo to run")
    parser.add_argument("--cache", type=Path, default=None, help="keep trainings and probabilities here and reuse them")
    args = parser.parse_args()
    if not (TUTORIAL / PS).is_file() or not (DENSE / DEV).is_file():
        print(f"{DATA} is absent: nothing to do")
        return 0
    known = candidates()
    if args.list:
        for c in known.values():
            print(f"{c.name}: {c.base} + {c.changes} (checkpoint {c.checkpoint}, thresholds {c.thresholds}"
                  f"{', normalized' if c.normalize else ''}"
                  f"{f', quiet stretches >= {c.quiet_ambient_s} s as ambient' if c.quiet_ambient_s else ''})")
        return 0
    chosen = [known[n] for n in args.candidates.split(",") if n]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    methods = [m for m in args.ethograms.split(",") if m]
    only = set(args.only.split(","))

    from songexplorer_core.compute import configure_compute

    configure_compute("cpu")
    import tensorflow as tf

    work = args.cache or Path(tempfile.mkdtemp(prefix="bench-accuracy-"))
    work.mkdir(parents=True, exist_ok=True)
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    print(describe(tensorflow=tf.__version__))
    dev_truth = {p: read(DENSE / f"{DEV}-annotated-{p}.csv") for p in DEV_PEOPLE}
    reference = read(TUTORIAL / "reference-predicted" / f"{R2}-predicted.csv")
    reference = reference[reference["label"] == PULSE].assign(kind="annotated")
    rows = []
    try:
        for candidate in chosen:
            for seed in seeds:
                log(f"{candidate.name} seed {seed}")
                cpu = {}
                ckpt = {}
                splits = (["both"] if "dev" in only else []) + (["ps"] if only & {"fidelity", "loo"} else []) + \
                    (["r2"] if "loo" in only else [])
                for split in splits:
                    ckpt[split], cpu[split] = train_split(candidate, seed, split, work, log)
                for method in methods:
                    row = {"candidate": candidate.name, "seed": seed, "ethogram": method,
                           "train_cpu_s": cpu.get("both", cpu.get("ps", float("nan")))}
                    if "dev" in only:
                        probs = probabilities(ckpt["both"], DENSE / DEV, ckpt["both"].parent, candidate.normalize)
                        scores = label_scores(dev_truth, ethogram(method, probs, ckpt["both"]), DEV)
                        for who, (p, r, f1, *_rest) in scores.items():
                            row.update({f"dev_{who}_P": p, f"dev_{who}_R": r, f"dev_{who}_F1": f1})
                    if "fidelity" in only:
                        probs = probabilities(ckpt["ps"], TUTORIAL / R2, ckpt["ps"].parent, candidate.normalize)
                        predicted = ethogram(method, probs, ckpt["ps"])
                        p, r, f1, tp, fp, fn = label_scores({"songexplorer": reference}, predicted, R2)["songexplorer"]
                        row.update(fid_pulses=int((predicted["label"] == PULSE).sum()), fid_P=p, fid_R=r)
                        probs = probabilities(ckpt["ps"], DENSE / DEV, ckpt["ps"].parent, candidate.normalize)
                        scores = label_scores(dev_truth, ethogram(method, probs, ckpt["ps"]), DEV)
                        for who, (p, r, f1, *_rest) in scores.items():
                            row[f"psdev_{who}_F1"] = f1
                    if "loo" in only:
                        parts = []
                        for train_on, left_out in (("ps", R2), ("r2", PS)):
                            probs = probabilities(ckpt[train_on], TUTORIAL / left_out, ckpt[train_on].parent, candidate.normalize)
                            parts.append(loo_scores(ethogram(method, probs, ckpt[train_on]), left_out))
                        for key in parts[0]:
                            row[f"loo_{key}"] = float(np.mean([p[key] for p in parts]))
                    rows.append(row)
                    log("  " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                         for k, v in row.items()))
    finally:
        if args.cache is None:
            shutil.rmtree(work, ignore_errors=True)
    table = pd.DataFrame(rows)
    if len(seeds) > 1 and len(table):
        numeric = [c for c in table.columns if c not in ("candidate", "seed", "ethogram")]
        mean = table.groupby(["candidate", "ethogram"], sort=False)[numeric].mean().reset_index()
        mean.insert(1, "seed", "mean")
        table = pd.concat([table, mean], ignore_index=True)
    print(table.to_markdown(index=False, floatfmt=".3f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
