"""Transfer learning and autoencoder pre-training with few annotations: does starting from a
model beat training the same network from scratch? (docs/training.md, "Transfer learning" and
"Autoencoder pre-training")

**synthetic** (known truth, ``songexplorer_core.synth``): a *parent* is trained on the demo's
labels (mel-pulse, mel-sine, ambient; two 120 s recordings with 16 seed annotations per label,
as ``songexplorer demo`` makes them, the default recipe). Each new task has a *different label
set* and only ``--annotations`` (20) point annotations in all, on another 120 s recording:

* ``distractors``: ``song`` (pulse or sine), ``click``, ``bump`` and ``ambient`` (12
  distractors per minute; song points at pulse centres or inside sine bouts, clicks and bumps at
  their centres, ambient at least 0.1 s from any event), 5 per label;
* ``species``: a related species (pulse carrier 400 Hz instead of 250, IPI 50 ms instead of 35,
  sine 220 Hz instead of 155) labelled ``pulse``, ``sine``, ``noise``, 7/7/6;
* ``rig``: the same related species recorded on another rig (:data:`RIG`: a third of the gain,
  a louder background with more hiss, so pulses and sine lie close to the noise), labelled
  ``pulse``, ``sine``, ``ambient`` (the demo's name for background: the one label it shares
  with the parent), 7/7/6.

Each arm trains the same network with the same settings (the default recipe, ``--steps``
steps, mini-batch 16, no validation split): ``scratch`` (new weights), ``fine-tune`` (every
layer from the parent, a new output layer whose columns of shared labels are the parent's),
``fine-tune lr/5`` (at a fifth of the learning rate), ``two-stage`` (the output layer alone for
a third of the steps, then every layer), ``output-only`` (only the new output layer trains),
``freeze-conv1``, and where a label is shared ``fine-tune unshared`` (every output column
new). Scored on two unseen 120 s recordings of the task against their
truth: at every pulse, click and bump centre, every 25 ms of sine (clear of the ramps) and every
50 ms at least 0.1 s from any event, the label of highest probability; per-label F1 over those
points and their macro mean. Several seeds (the annotations drawn, the weights, the batches);
medians reported.

**autoencoder** (real song, ``../shared/data``; skipped when absent): the network's convolutions
are pre-trained as an autoencoder (``songexplorer_core.autoencoder``) on the three tutorial
recordings without their annotations (600 s); classifiers are then trained on ``--real-per-label``
of person1's annotations per label (drawn per seed from both tutorial recordings), from scratch
or from the encoder (every layer trained; or only the output: a linear read-out of the encoder),
and scored on the dense dev recording (``songexplorer-dense-dev``, never trained on) with
``benchmarks/accuracy_real.py``'s scoring: the project's default ethogram, mel-pulse precision,
recall and F1 at label level against person2 and person3.

Usage::

    .venv/bin/python benchmarks/transfer.py                         # both parts, seeds 1,2,3
    .venv/bin/python benchmarks/transfer.py --parts synthetic --seeds 1,2,3,4,5
    .venv/bin/python benchmarks/transfer.py --parts synthetic --tasks rig --arms fine-tune,two-stage
    .venv/bin/python benchmarks/transfer.py --work /tmp/transfer    # keep and reuse the trainings

CPU seconds of each training are printed; the machine's load is in the header.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402  (benchmarks/machine.py)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

PARENT_LABELS = ("mel-pulse", "mel-sine", "ambient")
#: The arms: ``transfer_config`` options, plus ``learning_rate`` (instead of the recipe's 0.001),
#: ``stages`` (the output layer alone for a third of the steps, then every layer for the rest)
#: and ``shared_labels`` (False: the output columns of labels the parent also has start new too,
#: as every column did before they were copied; only where the task shares a label).
ARMS = {"scratch": None, "fine-tune": {}, "fine-tune lr/5": {"learning_rate": 0.0002},
        "two-stage": {"stages": True}, "output-only": {"train_layers": ("output",)},
        "freeze-conv1": {"freeze": 1}, "fine-tune unshared": {"shared_labels": False}}
#: The new tasks: which label each kind of sound gets (None: not annotated, not scored), and the
#: song model of their recordings. ``distractors``: the demo's song with 12 distractors per
#: minute (the demo's: 3), pulse and sine both ``song``; ``species``: a related species (pulse
#: carrier 400 Hz, IPI 50 ms, sine 220 Hz), three labels of other names.
#: Another rig: the song recorded at a third of the gain (peaks in int16 counts), over a
#: background four times louder with half its power white (hiss across the song's band) instead
#: of a tenth: pulse peaks 3-15 dB and sine peaks -5 to 6 dB above the noise's RMS (the demo's:
#: 24-36 dB and 16-27 dB).
RIG = dict(pulse_peak_counts=(333.0, 1333.0), sine_peak_counts=(133.0, 467.0), distractor_peak_counts=(333.0, 1333.0),
           noise_rms_counts=240.0, noise_white_fraction=0.5)
TASKS = {
    "distractors": dict(labels=("song", "click", "bump", "ambient"),
                        names={"pulse": "song", "sine": "song", "click": "click", "bump": "bump", "quiet": "ambient"},
                        params=dict(distractor_rate_per_min=12.0)),
    "species": dict(labels=("pulse", "sine", "noise"),
                    names={"pulse": "pulse", "sine": "sine", "click": None, "bump": None, "quiet": "noise"},
                    params=dict(pulse_carrier_hz=400.0, pulse_carrier_range_hz=(300.0, 550.0), ipi_s=0.05,
                                ipi_range_s=(0.04, 0.06), sine_hz=220.0, sine_range_hz=(200.0, 240.0))),
    "rig": dict(labels=("pulse", "sine", "ambient"),
                names={"pulse": "pulse", "sine": "sine", "click": None, "bump": None, "quiet": "ambient"},
                params=dict(pulse_carrier_hz=400.0, pulse_carrier_range_hz=(300.0, 550.0), ipi_s=0.05,
                            ipi_range_s=(0.04, 0.06), sine_hz=220.0, sine_range_hz=(200.0, 240.0),
                            **RIG)),
}


def log(message: str) -> None:
    print(message, flush=True)


def _config(labels, seed: int, **changes):
    from songexplorer_core import recipes

    return recipes.recipe_config(recipes.DEFAULT_RECIPE, labels, batch_seed=seed, weights_seed=seed, **changes)


def _train(folder: Path, groundtruth: Path, config) -> tuple[Path, float]:
    """Train (or reuse) into ``folder``; the last checkpoint and the CPU seconds."""
    from songexplorer_core.train import train

    done = folder / "done.json"
    if done.exists():
        info = json.loads(done.read_text())
        return Path(info["checkpoint"]), info["cpu_s"]
    cpu = time.process_time()
    result = train(groundtruth, config, folder / "logs")
    cpu = time.process_time() - cpu
    checkpoint = result.replicates[0].checkpoint()
    done.write_text(json.dumps({"checkpoint": str(checkpoint), "cpu_s": cpu}))
    return checkpoint, cpu


# ---------------------------------------------------------------------------------------------
# synthetic


def _song(seed: int, wav: str, task: dict):
    from songexplorer_core import synth

    return synth.make_song(120.0, seed=seed, wav=wav, params=synth.SongParams(**task["params"]))


def _busy(song, margin: int) -> np.ndarray:
    """Tics within ``margin`` of a pulse train, sine bout or distractor."""
    busy = np.zeros(song.ntics + 1, np.int64)
    for start, stop in zip(song.events["start"], song.events["stop"]):
        busy[max(0, start - margin)] += 1
        busy[min(song.ntics, stop + margin + 1)] -= 1
    return np.cumsum(busy[:-1]) > 0


def _sounds(song, far_s: float) -> dict[str, np.ndarray]:
    """Tics of each kind of sound: pulse centres, sine tics clear of the ramps, click and bump
    centres, quiet tics at least ``far_s`` from any event (and a second from the ends)."""
    rate = song.rate
    ramp = int(song.params.sine_ramp_s * rate)
    quiet = np.flatnonzero(~_busy(song, int(far_s * rate)))
    out = {"pulse": np.asarray(song.pulse_centres),
           "sine": np.concatenate([np.arange(a + ramp, b - ramp + 1) for a, b in zip(song.sines["start"],
                                                                                     song.sines["stop"])]),
           "quiet": quiet[(quiet > rate) & (quiet < song.ntics - rate)]}
    for label in ("click", "bump"):
        kept = song.distractors[song.distractors["label"] == label]
        out[label] = ((kept["start"] + kept["stop"]) // 2).to_numpy()
    return out


def evaluation_points(song, task: dict) -> pd.DataFrame:
    """``tic, label`` of the scored points of an unseen recording: every pulse, click and bump
    centre, every 25 ms of sine and every 50 ms of quiet (see the module docstring)."""
    rate = song.rate
    every = {"sine": int(0.025 * rate), "quiet": int(0.05 * rate)}
    rows = [pd.DataFrame({"tic": tics[:: every.get(kind, 1)], "label": task["names"][kind]})
            for kind, tics in _sounds(song, 0.1).items() if task["names"][kind]]
    return pd.concat(rows, ignore_index=True)


def new_task_annotations(song, task: dict, total: int, seed: int) -> pd.DataFrame:
    """``total`` point annotations (kind ``annotated``) spread evenly over the task's labels, a
    label made of several kinds of sound (``song``) taking them in turn."""
    from songexplorer_core.annotations import intervals_frame

    rng = np.random.default_rng(seed)
    sounds = _sounds(song, 0.1)
    labels = task["labels"]
    counts = {label: total // len(labels) + (i < total % len(labels)) for i, label in enumerate(labels)}
    tables = []
    for label, count in counts.items():
        kinds = [kind for kind, name in task["names"].items() if name == label]
        for i, kind in enumerate(kinds):
            n = count // len(kinds) + (i < count % len(kinds))
            chosen = rng.choice(sounds[kind], min(n, len(sounds[kind])), replace=False)
            tables.append(intervals_frame(song.wav, chosen, chosen, "annotated", label))
    return pd.concat(tables, ignore_index=True).sort_values("start", kind="stable").reset_index(drop=True)


def macro_f1(checkpoint: Path, tests, labels) -> tuple[float, dict[str, float]]:
    """Macro and per-label F1 of the label of highest probability at the evaluation points."""
    from songexplorer_core import models as M
    from songexplorer_core.classify import classify_samples

    model = M.load_trained_model(checkpoint)
    truth, said = [], []
    for song, points in tests:
        probs = classify_samples(model, song.samples, rate=song.rate, edges="median")
        rows = np.clip(np.round(points["tic"].to_numpy() / probs.stride_tics).astype(int), 0, probs.nsamples - 1)
        said.append(np.asarray(probs.labels)[np.argmax(probs.values[rows], axis=1)])
        truth.append(points["label"].to_numpy())
    truth, said = np.concatenate(truth), np.concatenate(said)
    f1 = {}
    for label in labels:
        tp = np.sum((said == label) & (truth == label))
        precision = tp / max(np.sum(said == label), 1)
        recall = tp / max(np.sum(truth == label), 1)
        f1[label] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return float(np.mean(list(f1.values()))), f1


def _transfer_arm(folder: Path, groundtruth: Path, base, parent: Path, options: dict | None) -> tuple[Path, float]:
    """Train one arm (see :data:`ARMS`) into ``folder``; the last checkpoint and the CPU seconds."""
    from dataclasses import replace

    from songexplorer_core import transfer

    if options is None:
        return _train(folder, groundtruth, base)
    options = dict(options)
    if "learning_rate" in options:
        base = replace(base, learning_rate=options.pop("learning_rate"))
    if options.pop("stages", False):  # the new output layer first, then every layer from there
        head = base.nsteps // 3
        first, cpu1 = _train(folder / "output-first", groundtruth, transfer.transfer_config(
            replace(base, nsteps=head, validate_period=head), parent, train_layers=("output",)))
        rest = base.nsteps - head
        last, cpu2 = _train(folder, groundtruth, transfer.transfer_config(
            replace(base, nsteps=rest, validate_period=rest), first))
        return last, cpu1 + cpu2
    shared = options.pop("shared_labels", True)
    config = transfer.transfer_config(base, parent, **options)
    if shared:
        return _train(folder, groundtruth, config)
    original = transfer.start_from  # train() looks it up in songexplorer_core.transfer when it starts
    transfer.start_from = lambda *a, **k: original(*a, **k, shared_labels=False)
    try:
        return _train(folder, groundtruth, config)
    finally:
        transfer.start_from = original


def synthetic(args, work: Path) -> list[dict]:
    from songexplorer_core import synth
    from songexplorer_core.annotations import write_intervals_csv

    parent_gt = work / "parent" / "groundtruth"
    parent_gt.mkdir(parents=True, exist_ok=True)
    for index in range(2):  # the demo's recordings and seed annotations (songexplorer_core.demo)
        wav = f"demo-{index + 1}.wav"
        if not (parent_gt / wav).exists():
            song = synth.make_song(120.0, seed=1000 + index, wav=wav)
            write_intervals_csv(synth.seed_annotations(song, 16, seed=1000 + index, allow_fewer=True),
                                parent_gt / f"{wav}-annotated-seed.csv")
            synth.write_song(song, parent_gt / wav)
    parent, cpu = _train(work / "parent", parent_gt, _config(PARENT_LABELS, 1, nsteps=args.parent_steps,
                                                              validate_period=args.parent_steps))
    log(f"parent (demo labels, {args.parent_steps} steps): {parent} ({cpu:.0f} CPU s)")
    rows = []
    for name in args.tasks:
        task = TASKS[name]
        tests = []
        for k in range(2):
            song = _song(9000 + k, f"unseen-{k}.wav", task)
            tests.append((song, evaluation_points(song, task)))
        counts = pd.concat([p for _, p in tests])["label"].value_counts().to_dict()
        log(f"task {name}: labels {','.join(task['labels'])}; scored points on 2 unseen recordings: {counts}")
        for seed in args.seeds:
            gt = work / f"{name}-seed{seed}" / "groundtruth"
            gt.mkdir(parents=True, exist_ok=True)
            if not (gt / "task.wav").exists():
                song = _song(2000 + seed, "task.wav", task)
                write_intervals_csv(new_task_annotations(song, task, args.annotations, seed),
                                    gt / "task.wav-annotated-p.csv")
                synth.write_song(song, gt / "task.wav")
            base = _config(task["labels"], seed, nsteps=args.steps, validate_period=args.steps,
                           validate_percentage=0.0, mini_batch=16)
            for arm in args.arms:
                options = ARMS[arm]
                if options and options.get("shared_labels") is False and not set(task["labels"]) & set(PARENT_LABELS):
                    continue  # the same as fine-tune where no label is shared
                checkpoint, cpu = _transfer_arm(work / f"{name}-seed{seed}" / arm.replace(" ", "-")
                                                .replace("/", "-"), gt, base, parent, options)
                score, per_label = macro_f1(checkpoint, tests, task["labels"])
                rows.append({"part": f"synthetic {name}", "seed": seed, "arm": arm, "macro_f1": score,
                             **{f"f1_{k}": v for k, v in per_label.items()}, "cpu_s": cpu})
                log(f"  seed {seed} {arm:13s} macro F1 {score:.3f} "
                    + " ".join(f"{k} {v:.3f}" for k, v in per_label.items()) + f"  ({cpu:.0f} CPU s)")
    return rows


# ---------------------------------------------------------------------------------------------
# autoencoder on real song


def autoencoder_part(args, work: Path) -> list[dict]:
    import accuracy_real as R
    from songexplorer_core import autoencoder as A
    from songexplorer_core import transfer
    from songexplorer_core.annotations import write_intervals_csv
    from songexplorer_core.classify import classify_recording
    from songexplorer_core import models as M
    from songexplorer_core.recipes import DEFAULT_RECIPE

    if not (R.TUTORIAL / R.PS).is_file() or not (R.DENSE / R.DEV).is_file():
        log(f"{R.DATA} is absent: autoencoder part skipped")
        return []
    unannotated = [R.TUTORIAL / name for name in (R.PS, R.R2, "Antigua_20110313095210_ch26.wav")]
    ae_dir = work / "autoencoder"
    if not (ae_dir / A.ENCODER_FOLDER / "model.json").exists():
        cpu = time.process_time()
        spec = M.ModelSpec(dropout_rate=DEFAULT_RECIPE["model"]["dropout_rate"])
        result = A.pretrain(unannotated, A.AutoencoderConfig(model=spec, nsteps=args.ae_steps, validate_period=100),
                            ae_dir)
        (ae_dir / "cpu_s.txt").write_text(f"{time.process_time() - cpu:.1f}")
        log(f"autoencoder: {args.ae_steps} steps on {result.seconds_of_audio:.0f} s of unannotated song "
            f"({(ae_dir / 'cpu_s.txt').read_text()} CPU s)")
    extra = M.read_model_metadata(ae_dir / A.ENCODER_FOLDER)["extra"]["autoencoder"]
    log(f"autoencoder validation loss {extra['initial_validation_loss']:.3f} (untrained) -> "
        f"{extra['final_validation_loss']:.3f}")
    reference = {who: R.read(R.DENSE / f"{R.DEV}-annotated-{who}.csv") for who in R.DEV_PEOPLE}
    rows = []
    for seed in args.seeds:
        gt = work / f"real-seed{seed}" / "groundtruth"
        gt.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        for recording in (R.PS, R.R2):
            if not (gt / recording).exists():
                (gt / recording).symlink_to((R.TUTORIAL / recording).resolve())
        csv = gt / f"{R.PS}-annotated-few.csv"
        if not csv.exists():
            both = pd.concat([R.read(R.TUTORIAL / f"{r}-annotated-person1.csv") for r in (R.PS, R.R2)],
                             ignore_index=True)
            picked = pd.concat([group.iloc[rng.choice(len(group), min(args.real_per_label, len(group)), replace=False)]
                                for _, group in both.groupby("label")], ignore_index=True)
            for recording in (R.PS, R.R2):
                write_intervals_csv(picked[picked["wav"] == recording].reset_index(drop=True),
                                    gt / f"{recording}-annotated-few.csv")
        base = _config(R.LABELS, seed, nsteps=args.real_steps, validate_period=args.real_steps)
        arms = {"scratch": base, "from-encoder": transfer.transfer_config(base, ae_dir / A.ENCODER_FOLDER),
                "encoder-fixed": transfer.transfer_config(base, ae_dir / A.ENCODER_FOLDER, train_layers=("output",))}
        for arm, config in arms.items():
            checkpoint, cpu = _train(work / f"real-seed{seed}" / arm, gt, config)
            probs = classify_recording(M.load_trained_model(checkpoint), R.DENSE / R.DEV)
            predicted = R.ethogram("default", probs, checkpoint)
            scores = R.label_scores(reference, predicted, R.DEV)
            row = {"part": "autoencoder", "seed": seed, "arm": arm, "cpu_s": cpu}
            for who, (p, r, f1, *_) in scores.items():
                row.update({f"{who}_precision": p, f"{who}_recall": r, f"{who}_f1": f1})
            row["macro_f1"] = float(np.mean([row[f"{who}_f1"] for who in R.DEV_PEOPLE]))
            rows.append(row)
            log(f"  seed {seed} {arm:13s} dev mel-pulse F1 " + " ".join(
                f"{who} {row[f'{who}_f1']:.3f} (P {row[f'{who}_precision']:.3f} R {row[f'{who}_recall']:.3f})"
                for who in R.DEV_PEOPLE) + f"  ({cpu:.0f} CPU s)")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="synthetic,autoencoder", help="synthetic, autoencoder")
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (annotations drawn, weights, batches)")
    parser.add_argument("--tasks", default="distractors,species,rig",
                        help="synthetic: new tasks (distractors, species, rig)")
    parser.add_argument("--arms", default=",".join(ARMS), help="synthetic: arms to train (scratch always)")
    parser.add_argument("--annotations", type=int, default=20, help="synthetic: annotations of the new task, in all")
    parser.add_argument("--steps", type=int, default=300, help="synthetic: training steps of every arm")
    parser.add_argument("--parent-steps", type=int, default=1000, help="synthetic: the parent's training steps")
    parser.add_argument("--real-per-label", type=int, default=20, help="autoencoder: person1 annotations per label")
    parser.add_argument("--real-steps", type=int, default=500, help="autoencoder: classifier training steps")
    parser.add_argument("--ae-steps", type=int, default=1000, help="autoencoder: pre-training steps")
    parser.add_argument("--work", type=Path, default=None, help="keep the trainings here and reuse them")
    parser.add_argument("--csv", type=Path, default=None, help="write every row here")
    args = parser.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.tasks = [t for t in args.tasks.split(",") if t.strip()]
    args.arms = ["scratch"] + [a for a in args.arms.split(",") if a.strip() and a.strip() != "scratch"]
    from songexplorer_core.compute import configure_compute

    configure_compute("cpu")
    log(describe())
    work = args.work or Path(tempfile.mkdtemp(prefix="transfer-"))
    rows = []
    if "synthetic" in args.parts:
        rows += synthetic(args, work)
    if "autoencoder" in args.parts:
        rows += autoencoder_part(args, work)
    table = pd.DataFrame(rows)
    if table.empty:
        return 0
    log("\nmedian over seeds " + ",".join(map(str, args.seeds)) + ":")
    for part, group in table.groupby("part", sort=False):
        columns = [c for c in group.columns if c.endswith("f1") or c.endswith("precision") or c.endswith("recall")
                   or c == "cpu_s"]
        summary = group.groupby("arm", sort=False)[columns].median().dropna(axis=1, how="all")
        log(f"{part}:\n{summary.round(3).to_string()}")
        base = summary.loc["scratch", "macro_f1"]
        for arm in summary.index.drop("scratch"):
            wins = sum(group[group["arm"] == arm]["macro_f1"].to_numpy() > group[group["arm"] == "scratch"]["macro_f1"]
                       .to_numpy())
            log(f"  {arm}: median macro F1 {summary.loc[arm, 'macro_f1']:.3f} vs scratch {base:.3f} "
                f"({summary.loc[arm, 'macro_f1'] - base:+.3f}); better in {wins} of {len(args.seeds)} seeds")
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
