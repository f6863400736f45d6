"""Which embedding clusters detected sounds best before any model exists ("label sounds").

For each seed, a synthetic song (``songexplorer_core.synth``: pulse trains, sine bouts, clicks
and bumps over noise) is detected (``songexplorer_core.detect``, inclusive intervals) and every
detected sound is named by the truth it overlaps most (``mel-pulse``, ``mel-sine``, ``click``,
``bump``; ``ambient`` when none). Then, for each embedding of ``songexplorer_core.label_sounds``
(``untrained``: SongExplorer's seeded untrained network, its last hidden layer; ``spectral``:
the log-power spectrogram around the sound), the sounds are embedded with the project's default
UMAP (``songexplorer_core.cluster``) and grouped as the cluster view groups them
(``find_clusters``, HDBSCAN on the 2-D coordinates). Printed per seed and embedding:

* ``ari_groups``: adjusted Rand index of those groups against the truth (sounds in no group
  form one group of their own);
* ``ari_kmeans``: the same for k-means with k = the number of truth labels, on the coordinates;
* ``purity``: the fraction of sounds whose group's majority label is their own;
* seconds of CPU for the activations and the embedding.

Usage: ``python benchmarks/label_sounds.py [--seeds 1 2 3] [--duration 60] [--csv out.csv]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from songexplorer_core.annotations import concat_intervals  # noqa: E402
from songexplorer_core.cluster import ClusterParams, embed, find_clusters  # noqa: E402
from songexplorer_core.detect import detect  # noqa: E402
from songexplorer_core.label_sounds import EMBEDDINGS, activations_without_model, truth_of_sounds  # noqa: E402
from songexplorer_core.synth import make_song, write_song  # noqa: E402

RATE = 2500


def purity(truth: np.ndarray, groups: np.ndarray) -> float:
    frame = pd.DataFrame({"truth": truth, "group": groups})
    return float(frame.groupby("group")["truth"].agg(lambda t: t.value_counts().iloc[0]).sum() / len(frame))


def measure(seed: int, duration_s: float, folder: Path) -> list[dict]:
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    song = make_song(duration_s, RATE, seed=seed, wav=f"song{seed}.wav")
    path = write_song(song, folder / song.wav)
    detected = detect(song.samples, RATE, wav=song.wav, quirks=False)
    truth = concat_intervals([song.pulses, song.sines, song.distractors])
    names = truth_of_sounds(detected, truth)
    sounds = detected.assign(recording=song.wav)
    rows = []
    for embedding in EMBEDDINGS:
        started = time.process_time()
        acts = activations_without_model(embedding, sounds, {song.wav: path}, rate=RATE, seed=seed)
        act_s = time.process_time() - started
        index = acts.requested[0] if acts.requested else acts.stored_layers[0]
        started = time.process_time()
        coordinates = embed(acts.layers[index], ClusterParams(seed=0)).coordinates
        groups = find_clusters(coordinates)
        embed_s = time.process_time() - started
        k = len(set(names))
        kmeans = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(coordinates)
        rows.append(dict(seed=seed, embedding=embedding, layer=acts.layer_names[index], sounds=len(names),
                         truth_labels=k, groups=int(groups.max()) + 1, unassigned=int((groups < 0).sum()),
                         ari_groups=round(adjusted_rand_score(names, groups), 3),
                         ari_kmeans=round(adjusted_rand_score(names, kmeans), 3),
                         purity=round(purity(names, groups), 3), activations_s=round(act_s, 1),
                         embed_s=round(embed_s, 1)))
        print(rows[-1], flush=True)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of song per seed")
    parser.add_argument("--csv", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            rows += measure(seed, args.duration, Path(folder))
    table = pd.DataFrame(rows)
    summary = table.groupby("embedding")[["ari_groups", "ari_kmeans", "purity", "activations_s", "embed_s"]].mean()
    print(table.to_markdown(index=False))
    print(summary.round(3).to_markdown())
    if args.csv:
        table.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
