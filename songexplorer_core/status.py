"""What a project holds, in a few lines: ``songexplorer status``.

Read from the project folder and its MLflow store only (no Dagster): the recordings, the
annotations per label (and per annotator), the champion model and its scores (validation F1 per
label; F1 on the dense annotations when ``congruence_report`` or the promotion gate logged them),
and what is stale: recordings not yet detected or classified, ethograms made by another version
than the champion, annotation files changed since the champion was trained.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import pandas as pd

from songexplorer_core.annotations import find_interval_csvs, parse_csv_name, read_intervals_csv
from songexplorer_core.project import Project, find_recordings, recording_key


@dataclass
class Champion:
    """The model classification uses: its version, how many versions there are, its scores."""

    version: str
    nversions: int
    run_id: str
    created_ms: int
    validation_f1: dict[str, float] = field(default_factory=dict)
    dense_f1: dict[str, float] = field(default_factory=dict)


@dataclass
class ProjectStatus:
    root: str
    rate: int
    nchannels: int
    recordings: list[str]
    annotations: pd.DataFrame  # label x annotator counts
    dense_annotators: tuple[str, ...]
    champion: Champion | None
    stale: list[str]


def _scores(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    """Per-label scores logged as ``<prefix><label>`` (e.g. ``validation_f1_``), under that name or
    the ordered MLflow name ``tracking.metric_key`` gives it (``1 F1/validation <label>``)."""
    from songexplorer_core.tracking import metric_key

    ordered = metric_key(prefix + "LABEL").removesuffix("LABEL")
    found = {}
    for name, value in sorted(metrics.items()):
        for start in (prefix, ordered):
            label = name.removeprefix(start) if start and name.startswith(start) else None
            if label and label not in ("macro", "overall") and math.isfinite(value):
                found[label] = value
    return found


def read_champion(tracking) -> Champion | None:
    """The champion of ``tracking`` (a ``TrackingConfig``), or ``None`` before the first model."""
    from songexplorer_core.tracking import CHAMPION_ALIAS, model_versions

    versions = model_versions(tracking)
    chosen = versions[versions["aliases"].str.split(",").map(lambda a: CHAMPION_ALIAS in a)]
    if chosen.empty:
        return None
    row = chosen.iloc[0]
    metrics = tracking.client().get_run(row["run_id"]).data.metrics if row["run_id"] else {}
    return Champion(version=str(row["version"]), nversions=len(versions), run_id=str(row["run_id"]),
                    created_ms=int(row["created_ms"]), validation_f1=_scores(metrics, "validation_f1_"),
                    dense_f1=_scores(metrics, "dense_f1_"))


def project_status(project: Project, tracking=None) -> ProjectStatus:
    """What ``project`` holds and what is stale; ``tracking`` (a ``TrackingConfig``; default the
    project's own ``mlflow/`` store) says where its models are."""
    from songexplorer_core.tracking import TrackingConfig

    settings = project.settings()
    recordings = {recording_key(path.relative_to(project.groundtruth)): path
                  for path in find_recordings(project.groundtruth).values()}
    counts, newest_annotation_ns = [], {}
    for path in find_interval_csvs(project.groundtruth, kinds=["annotated"]):
        annotator = parse_csv_name(path.name).tag or "?"
        frame = read_intervals_csv(path)
        counts.append(frame.groupby("label").size().rename(annotator))
        newest_annotation_ns[path] = path.stat().st_mtime_ns
    table = (pd.concat(counts, axis=1).fillna(0).astype(int).T.groupby(level=0).sum().T
             if counts else pd.DataFrame())
    champion = None
    if tracking is not None or (project.mlflow_dir / "mlflow.db").exists():
        champion = read_champion(tracking or TrackingConfig.for_project_dir(project.mlflow_dir))

    stale = []
    undetected = [k for k in recordings if not project.detections_path(k).exists()]
    if undetected:
        stale.append(f"{len(undetected)} recording(s) not detected yet: {', '.join(undetected[:5])}")
    if champion is not None:
        unclassified, other = [], []
        for key in recordings:
            source = project.probabilities_source_path(key)
            if not project.ethogram_path(key).exists() or not source.exists():
                unclassified.append(key)
            elif str(json.loads(source.read_text()).get("model_version")) != champion.version:
                other.append(key)
        if unclassified:
            stale.append(f"{len(unclassified)} recording(s) without an ethogram: {', '.join(unclassified[:5])}")
        if other:
            stale.append(f"{len(other)} recording(s) classified by another version than the champion "
                         f"v{champion.version}: {', '.join(other[:5])}")
        changed = [p for p, ns in newest_annotation_ns.items() if ns // 1_000_000 > champion.created_ms]
        if changed:
            stale.append(f"{len(changed)} annotation file(s) changed since the champion was trained "
                         f"(the nightly retraining or trained_model picks them up): "
                         f"{', '.join(p.name for p in changed[:3])}")
    return ProjectStatus(root=str(project.root), rate=settings.audio_tic_rate, nchannels=settings.audio_nchannels,
                         recordings=sorted(recordings), annotations=table,
                         dense_annotators=tuple(settings.dense_annotators), champion=champion, stale=stale)


def _f1s(scores: dict[str, float]) -> str:
    return ", ".join(f"{label} {value:.3f}" for label, value in scores.items()) or "none logged"


def format_status(status: ProjectStatus) -> str:
    """``status`` as the lines ``songexplorer status`` prints."""
    lines = [f"project {status.root}: {len(status.recordings)} recording(s), {status.rate} Hz, "
             f"{status.nchannels} channel(s)"]
    if status.annotations.empty:
        lines.append("annotations: none yet (the annotator, or <wav>-annotated-<name>.csv files)")
    else:
        per_label = status.annotations.sum(axis=1)
        lines.append(f"annotations: {int(per_label.sum())} by {len(status.annotations.columns)} annotator(s) "
                     f"({', '.join(map(str, status.annotations.columns))})")
        for label, row in status.annotations.iterrows():
            who = ", ".join(f"{name} {n}" for name, n in row.items() if n)
            lines.append(f"  {label}: {int(row.sum())} ({who})")
    dense = ", ".join(status.dense_annotators) or "none (no congruence report, no promotion gate)"
    lines.append(f"dense annotators: {dense}")
    if status.champion is None:
        lines.append("champion: none yet (the first model is trained once there are annotations)")
    else:
        c = status.champion
        lines.append(f"champion: version {c.version} of {c.nversions} (MLflow run {c.run_id})")
        lines.append(f"  validation F1: {_f1s(c.validation_f1)}")
        if c.dense_f1:
            lines.append(f"  dense-set F1: {_f1s(c.dense_f1)}")
    lines += ["stale:"] + [f"  {item}" for item in status.stale] if status.stale else ["stale: nothing"]
    return "\n".join(lines)
