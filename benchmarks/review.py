"""Speed of the "finding and fixing mistakes" steps (review): congruence first; more measurements
(activations, cluster, ...) are appended to ``MEASUREMENTS``.

Congruence, the target case of SongExplorer's tutorial (355 s there, measured running SongExplorer v0.9.1's test/tutorial.sh on a 2-core CPU machine): two one-minute
2500 Hz recordings of synthetic song (about 380 pulses each, like the tutorial's dense
recording's 374/398), densely annotated by two annotators (a perfect one and one who jitters
pulses by a few tics, misses 5 % of them, adds a few, and places sine-bout ends loosely; both
also mark the ambient stretches between songs), and a model's probabilities for three labels at
625 Hz, swept over 20 thresholds; tic and label level. Timed: the whole ``congruence_sweep``
(thresholding probabilities into intervals included) plus ``congruence`` of one ethogram, median
of ``--runs`` warm runs after one cold run.

Activations + cluster (the issue's target: <= 10 s for 2 000 sounds and <= 20 s for 10 000, warm,
on 2 cores; SongExplorer took 85 s for 2 000): SongExplorer's tutorial network (mel-cepstrum,
two conv layers, 64/64 features), trained for ``--train-steps`` steps on a generated 30-minute
recording, applied at 2 000 and 10 000 of its sounds (dense pulses, sine bouts, clicks and bumps,
ambient stretches; drawn with ``max_sounds``), storing the last hidden layer (``conv2``, 7 616
numbers per sound), then UMAP with the defaults (standardise, 50 principal components, 10
neighbours, 200 epochs, seed 0). *Warm*: after one warm-up fit in the process (numba's JIT and
TensorFlow's tracing paid), median of ``--runs``. *Cold*: the first activations + cluster call in
a fresh process (``import umap``, JIT and tracing included; TensorFlow already imported to load
the model), median of ``--cold-runs`` processes.

Usage::

    .venv/bin/python benchmarks/review.py              # all measurements
    .venv/bin/python benchmarks/review.py congruence --runs 7
    .venv/bin/python benchmarks/review.py activations-cluster --runs 3 --cold-runs 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import describe  # noqa: E402  (benchmarks/machine.py, beside this script)

from songexplorer_core.annotations import concat_intervals, intervals_frame  # noqa: E402
from songexplorer_core.classify import Probabilities  # noqa: E402
from songexplorer_core.congruence import congruence, congruence_sweep  # noqa: E402
from songexplorer_core.ethogram import ethogram_threshold  # noqa: E402
from songexplorer_core.synth import (  # noqa: E402
    AMBIENT_LABEL,
    PULSE_LABEL,
    SINE_LABEL,
    SongParams,
    SynthSong,
    dense_annotations,
    make_song,
)

RATE = 2500
STRIDE = 4
LABELS = (PULSE_LABEL, SINE_LABEL, AMBIENT_LABEL)
#: SongExplorer v0.9.1's congruence on the tutorial's 60 s dense recording, 3 labels, 2 people,
#: 20 thresholds, as SongExplorer's tutorial congruence sweep.
SONGEXPLORER_CONGRUENCE_S = 355.0


def median_time(run: Callable[[], object], runs: int) -> tuple[float, float, list[float], float]:
    """Cold wall time of the first call, then the median wall time of ``runs`` more, those times,
    and their median CPU time of this process (less sensitive to other jobs on a shared machine);
    seconds."""
    start = time.perf_counter()
    run()
    cold = time.perf_counter() - start
    times, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return cold, statistics.median(times), times, statistics.median(cpu)


# ---------------------------------------------------------------------------------------------
# the congruence case


def ambient_between_songs(song: SynthSong, margin_s: float = 0.05) -> pd.DataFrame:
    """The stretches between pulse trains and sine bouts, ``margin_s`` clear of them: how an
    annotator marks ambient densely."""
    events = song.song().sort_values("start")
    margin = int(margin_s * song.rate)
    starts = np.concatenate([[0], events["stop"].to_numpy() + 1 + margin])
    stops = np.concatenate([events["start"].to_numpy() - 1 - margin, [song.ntics - 1]])
    keep = stops - starts > 2 * margin
    return intervals_frame(song.wav, starts[keep], stops[keep], "annotated", AMBIENT_LABEL)


def careless_annotations(song: SynthSong, truth: pd.DataFrame, *, seed: int) -> pd.DataFrame:
    """A second annotator: pulses jittered by up to 3 tics, 5 % missed, 2 % extra; sine ends off
    by up to 0.05 s; ambient as the first annotator."""
    rng = np.random.default_rng(seed)
    pulses = truth[truth["label"] == PULSE_LABEL]
    keep = rng.random(len(pulses)) > 0.05
    centre = pulses["start"].to_numpy()[keep] + rng.integers(-3, 4, keep.sum())
    extra = rng.integers(0, song.ntics, max(1, len(pulses) // 50))
    centre = np.clip(np.concatenate([centre, extra]), 0, song.ntics - 1)
    sines = truth[truth["label"] == SINE_LABEL]
    wobble = int(0.05 * song.rate)
    start = sines["start"].to_numpy() + rng.integers(-wobble, wobble + 1, len(sines))
    stop = sines["stop"].to_numpy() + rng.integers(-wobble, wobble + 1, len(sines))
    start, stop = np.clip(start, 0, song.ntics - 1), np.clip(stop, 0, song.ntics - 1)
    ok = start <= stop
    return concat_intervals([
        intervals_frame(song.wav, centre, centre, "annotated", PULSE_LABEL),
        intervals_frame(song.wav, start[ok], stop[ok], "annotated", SINE_LABEL),
        truth[truth["label"] == AMBIENT_LABEL],
    ]).sort_values("start", kind="stable").reset_index(drop=True)


def model_probabilities(song: SynthSong, *, seed: int) -> Probabilities:
    """Probabilities a decent model might give: each label's truth, smoothed over a few samples,
    plus noise, normalised to sum to 1 per sample (an exclusive model at 625 Hz)."""
    rng = np.random.default_rng(seed)
    nsamples = song.ntics // STRIDE
    tics = np.arange(nsamples) * STRIDE
    on = np.zeros((nsamples, len(LABELS)))
    for column, frame in ((0, song.pulses), (1, song.sines)):
        for start, stop in frame[["start", "stop"]].to_numpy():
            on[(tics >= start) & (tics <= stop), column] = 1.0
    on[:, 2] = 1.0 - on[:, :2].max(axis=1)
    kernel = np.hanning(7) / np.hanning(7).sum()
    smooth = np.stack([np.convolve(on[:, i], kernel, mode="same") for i in range(len(LABELS))], axis=1)
    logits = 4.0 * smooth + rng.normal(0.0, 0.6, smooth.shape)
    values = np.exp(logits - logits.max(axis=1, keepdims=True))
    values /= values.sum(axis=1, keepdims=True)
    return Probabilities(values=values.astype(np.float32), labels=LABELS, rate=song.rate, stride_tics=STRIDE,
                         wav=song.wav, ntics=song.ntics)


@dataclass(frozen=True)
class CongruenceCase:
    probabilities: list[Probabilities]
    annotations: dict[str, pd.DataFrame]
    predictions: pd.DataFrame
    pulses_per_recording: list[int]


def congruence_case(nrecordings: int = 2, duration_s: float = 60.0, seed: int = 1) -> CongruenceCase:
    params = replace(SongParams(), pulse_train_rate_per_min=22.0, sine_bout_rate_per_min=5.0)
    people: dict[str, list[pd.DataFrame]] = {"Person1": [], "Person2": []}
    probabilities = []
    pulses = []
    for index in range(nrecordings):
        song = make_song(duration_s, RATE, params, seed=seed + index, wav=f"dense{index + 1}.wav")
        truth = concat_intervals([dense_annotations(song), ambient_between_songs(song)])
        people["Person1"].append(truth)
        people["Person2"].append(careless_annotations(song, truth, seed=seed + 100 + index))
        probabilities.append(model_probabilities(song, seed=seed + 200 + index))
        pulses.append(len(song.pulse_centres))
    annotations = {name: concat_intervals(frames) for name, frames in people.items()}
    predictions = concat_intervals(ethogram_threshold(p, {label: 0.5 for label in LABELS}) for p in probabilities)
    return CongruenceCase(probabilities, annotations, predictions, pulses)


def measure_congruence(runs: int) -> dict:
    case = congruence_case()

    def run():
        congruence(case.annotations, case.predictions)
        return congruence_sweep(case.probabilities, case.annotations, thresholds=20)

    sweep = run()
    cold, median, times, cpu = median_time(run, runs)
    scores = sweep.scores
    best = scores[(scores["reference"] == "songexplorer")].groupby(["label", "measure"])["f1"].max()
    return {
        "what": "congruence: 2 x 60 s at 2500 Hz, 2 annotators + model, 3 labels, 20 thresholds, tic+label",
        "pulses per recording": case.pulses_per_recording,
        "cold s": round(cold, 3),
        "median s": round(median, 3),
        "runs s": [round(t, 3) for t in times],
        "median CPU s": round(cpu, 3),
        "load average (1 min)": round(os.getloadavg()[0], 1),
        "SongExplorer s": SONGEXPLORER_CONGRUENCE_S,
        "speed-up": round(SONGEXPLORER_CONGRUENCE_S / median),
        "best F1 (sanity)": {f"{label}/{measure}": round(float(value), 3) for (label, measure), value in best.items()},
    }


# ---------------------------------------------------------------------------------------------
# activations + cluster

#: SongExplorer v0.9.1's activations + UMAP of 2 000 sounds on this kind of machine (the issue).
SONGEXPLORER_ACTIVATIONS_CLUSTER_S = 85.0
SOUND_COUNTS = (2000, 10_000)
#: Options of this measurement (set by ``main``).
OPTIONS = {"train_steps": 100, "cold_runs": 1, "workdir": None}


def activations_workdir() -> Path:
    """A folder with the generated recording, its sounds and the briefly trained tutorial model
    (made once per run of this script; the cold-run child processes reuse it)."""
    if OPTIONS["workdir"] is not None:
        return Path(OPTIONS["workdir"])
    import tempfile

    from songexplorer_core.annotations import write_intervals_csv
    from songexplorer_core.dataset import GroundTruth
    from songexplorer_core.synth import seed_annotations, write_song
    from songexplorer_core.train import TrainConfig, train

    folder = Path(tempfile.mkdtemp(prefix="review-activations-"))
    params = replace(SongParams(), pulse_train_rate_per_min=22.0, sine_bout_rate_per_min=5.0)
    song = make_song(1800.0, RATE, params, seed=7, wav="long.wav")
    write_song(song, folder / song.wav)
    seeds = seed_annotations(song, {PULSE_LABEL: 60, SINE_LABEL: 60, AMBIENT_LABEL: 60}, seed=8, allow_fewer=True)
    sounds = concat_intervals([dense_annotations(song), song.distractors.assign(kind="annotated"),
                               seeds[seeds["label"] == AMBIENT_LABEL]])
    write_intervals_csv(sounds, folder / "sounds.csv")
    truth = GroundTruth.from_tables(seeds, {song.wav: folder / song.wav})
    steps = int(OPTIONS["train_steps"])
    config = TrainConfig(labels_to_use=LABELS, nsteps=max(steps, 1), validate_period=max(steps, 1), mini_batch=32,
                         batch_seed=1, weights_seed=1, validate_percentage=20)
    if steps > 0:
        result = train(truth, config, folder / "train")
        checkpoint = result.replicates[0].checkpoint()
    else:
        from songexplorer_core.models import new_trained_model, save_trained_model

        checkpoint = save_trained_model(new_trained_model(config.model, labels=LABELS, rate=RATE, seed=1),
                                        folder / "untrained")
    (folder / "model.txt").write_text(str(checkpoint))
    OPTIONS["workdir"] = str(folder)
    return folder


def _activations_case(folder: Path):
    from songexplorer_core.annotations import read_intervals_csv
    from songexplorer_core.models import load_trained_model

    model = load_trained_model((folder / "model.txt").read_text())
    sounds = read_intervals_csv(folder / "sounds.csv")
    return model, sounds, {"long.wav": folder / "long.wav"}


def _activations_and_cluster(model, sounds, recordings, n: int) -> dict:
    """One activations + UMAP run; wall and CPU seconds of each part."""
    from songexplorer_core.activations import compute_activations, select_sounds
    from songexplorer_core.cluster import cluster_activations

    chosen = select_sounds(sounds, equalize_ratio=0, max_sounds=n, seed=n)
    t0, c0 = time.perf_counter(), time.process_time()
    acts = compute_activations(model, chosen, recordings)
    t1, c1 = time.perf_counter(), time.process_time()
    frame = cluster_activations(acts)
    t2, c2 = time.perf_counter(), time.process_time()
    assert len(frame) == n and frame[["x", "y"]].notna().all().all()
    return {"activations s": t1 - t0, "cluster s": t2 - t1, "total s": t2 - t0, "total CPU s": c2 - c0,
            "layer MB": acts.nbytes() / 1e6}


def cold_child(folder: str, n: int) -> None:
    """Run in a fresh process: time the first activations + cluster call, print it as JSON."""
    import json

    OPTIONS["workdir"] = folder
    model, sounds, recordings = _activations_case(Path(folder))
    print("RESULT " + json.dumps(_activations_and_cluster(model, sounds, recordings, n)))


def _cold(folder: Path, n: int) -> dict:
    import json
    import subprocess

    done = subprocess.run([sys.executable, __file__, "--cold-child", str(folder), str(n)], capture_output=True,
                          text=True, check=True)
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def measure_activations_cluster(runs: int) -> dict:
    folder = activations_workdir()
    model, sounds, recordings = _activations_case(folder)
    results = {
        "what": f"activations (conv2, tutorial network, {OPTIONS['train_steps']} training steps) + UMAP 2-D "
                f"(standardise, PCA 50, 10 neighbours, 200 epochs, seed 0), sounds of a 30 min generated recording",
        "sounds available": len(sounds),
    }
    cold = {n: [_cold(folder, n) for _ in range(max(int(OPTIONS["cold_runs"]), 0))] for n in SOUND_COUNTS}
    _activations_and_cluster(model, sounds, recordings, 5000)  # warm-up: JIT (NN graph, layout), tracing
    for n in SOUND_COUNTS:
        warm = [_activations_and_cluster(model, sounds, recordings, n) for _ in range(max(runs, 1))]

        def median(key, rows=warm):
            return round(statistics.median(r[key] for r in rows), 2)

        results[f"{n} sounds warm: activations s"] = median("activations s")
        results[f"{n} sounds warm: cluster s"] = median("cluster s")
        results[f"{n} sounds warm: total s"] = median("total s")
        results[f"{n} sounds warm: runs s"] = [round(r["total s"], 2) for r in warm]
        results[f"{n} sounds warm: total CPU s"] = median("total CPU s")
        results[f"{n} sounds: layer MB (float16)"] = round(warm[0]["layer MB"], 1)
        if cold[n]:
            results[f"{n} sounds cold: total s"] = median("total s", cold[n])
            results[f"{n} sounds cold: runs s"] = [round(r["total s"], 2) for r in cold[n]]
    results["SongExplorer 2000 sounds s"] = SONGEXPLORER_ACTIVATIONS_CLUSTER_S
    results["speed-up at 2000 (warm)"] = round(SONGEXPLORER_ACTIVATIONS_CLUSTER_S / results["2000 sounds warm: total s"])
    results["load average (1 min)"] = round(os.getloadavg()[0], 1)
    return results


#: Every measurement of this script, in order: (name, function(runs) -> dict of results).
MEASUREMENTS: list[tuple[str, Callable[[int], dict]]] = [
    ("congruence", measure_congruence),
    ("activations-cluster", measure_activations_cluster),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"measurements to run (default all: "
                        f"{', '.join(name for name, _ in MEASUREMENTS)})")
    parser.add_argument("--runs", type=int, default=5, help="warm runs for the median (default 5)")
    parser.add_argument("--cold-runs", type=int, default=1,
                        help="activations-cluster: fresh processes timed for the cold figure (default 1)")
    parser.add_argument("--train-steps", type=int, default=100,
                        help="activations-cluster: training steps of the tutorial network, 0 = untrained "
                        "(default 100)")
    parser.add_argument("--cold-child", nargs=2, metavar=("FOLDER", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cold_child:
        cold_child(args.cold_child[0], int(args.cold_child[1]))
        return 0
    OPTIONS.update(train_steps=args.train_steps, cold_runs=args.cold_runs)
    known = dict(MEASUREMENTS)
    unknown = [name for name in args.names if name not in known]
    if unknown:
        parser.error(f"unknown measurement(s) {unknown}; known: {list(known)}")
    print(describe())
    for name in args.names or list(known):
        print(f"\n== {name}")
        for key, value in known[name](args.runs).items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
