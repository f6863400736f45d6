"""A small demo project for the annotator's tests: two synthetic recordings with seed annotations,
their detections laid out as the detections asset writes them, and a cluster table made from real
features of the sounds (so the cluster view shows real data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from songexplorer_core.annotations import concat_intervals, find_interval_csvs, read_intervals_csv
from songexplorer_core.audio import read_recording
from songexplorer_core.demo import make_demo_project
from songexplorer_core.detect import detect_recording, detected_csv_name, write_detected_csv
from songexplorer_core.project import find_recordings


def write_detections(project) -> dict[str, pd.DataFrame]:
    """Detect every recording and write ``outputs/detections/<key>.parquet`` and
    ``outputs/detected/<wav>-detected.csv``, the layout of the detections asset."""
    found = {}
    for key, path in find_recordings(project.groundtruth).items():
        frame = detect_recording(path)
        (project.outputs / "detections").mkdir(parents=True, exist_ok=True)
        frame.to_parquet(project.outputs / "detections" / f"{key}.parquet")
        write_detected_csv(frame, project.outputs / "detected" / detected_csv_name(path))
        found[key] = frame
    return found


def sound_features(path, start: int, stop: int, *, nfft: int = 64) -> np.ndarray:
    """Log power in each frequency bin of the 0.1 s around a sound's centre (its spectral shape)."""
    rate, samples = read_recording(path, dtype="float32")
    half = int(0.05 * rate)
    centre = (start + stop) // 2
    piece = samples[max(centre - half, 0): centre + half, 0]
    frames = np.lib.stride_tricks.sliding_window_view(piece, nfft)[:: nfft // 2]
    power = (np.abs(np.fft.rfft(frames * np.hanning(nfft), axis=1)) ** 2).mean(axis=0)
    return np.log10(power + 1e-12)


def write_cluster_table(project, detections: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """``outputs/cluster/cluster.parquet``: seed annotations and loud detections, placed by the
    first two principal components of their spectral features (what a cluster step does,
    with PCA in place of UMAP), with the group each lies in."""
    recordings = find_recordings(project.groundtruth)
    annotated = concat_intervals(read_intervals_csv(p) for p in find_interval_csvs(project.groundtruth, ["annotated"]))
    loud = concat_intervals(frame[frame["label"] != "neither"] for frame in detections.values())
    sounds = concat_intervals([annotated, loud])
    features = np.array([sound_features(recordings[r.wav], r.start, r.stop) for r in sounds.itertuples()])
    centred = features - features.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    from songexplorer_core.cluster import find_clusters

    table = sounds.assign(x=xy[:, 0], y=xy[:, 1], group=find_clusters(xy))  # groups as the cluster asset finds them
    (project.outputs / "cluster").mkdir(parents=True, exist_ok=True)
    table.to_parquet(project.outputs / "cluster" / "cluster.parquet")
    return table


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """A demo project (2 recordings of 20 s at 2500 Hz, 3 seed annotations per label on the
    first) with detections and a cluster table. Tests that write into it copy it first."""
    root = tmp_path_factory.mktemp("annotator") / "demo"
    project = make_demo_project(root, nrecordings=2, duration_s=20, annotations_per_label=3)
    detections = write_detections(project)
    write_cluster_table(project, detections)
    return project


@pytest.fixture
def project(demo, tmp_path):
    """A fresh copy of the demo project for a test that annotates."""
    import shutil

    from songexplorer_core.project import Project

    shutil.copytree(demo.root, tmp_path / "demo", symlinks=True)
    return Project(tmp_path / "demo")

