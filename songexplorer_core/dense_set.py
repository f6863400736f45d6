"""The dense set of a project: densely annotated recordings, a model scored on them, and their report.

A recording is in the dense set when one of the named dense annotators has a
``<wav>-annotated-<name>.csv`` beside it in ``groundtruth/`` (:func:`find_dense_set`). Those
annotations are a test set: :func:`score_model` measures a model's ethogram on them (what the
promotion gate compares, ``songexplorer_core.promotion_gate``), and :func:`dense_report` writes
the congruence report of the ethograms the project's graph made (``outputs/congruence/v<N>/``,
through ``songexplorer_core.congruence_report``). :class:`DenseSettings` holds how they are
measured (SongExplorer's congruence settings, docs/congruence.md).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from songexplorer_core.audio import recording_exists
from songexplorer_core.annotations import concat_intervals, find_interval_csvs, parse_csv_name, read_intervals_csv
from songexplorer_core.atomic import atomic_write
from songexplorer_core.project import Project, recording_key, recording_relpath
from songexplorer_core.promotion import DEFAULT_TOLERANCE

HEADLINE = ("precision", "recall", "f1")


class DenseSetError(ValueError):
    """The dense set cannot be compared as configured; the message names the files and the fix."""


@dataclass(frozen=True)
class DenseSettings:
    """Whose annotations are dense and how a model is measured on them.

    Attributes:
        annotators: names whose ``<wav>-annotated-<name>.csv`` files are dense (empty: no dense set).
        dense_recordings: only these recording keys (empty: every one they annotated).
        portion, span, absent_annotators: as ``songexplorer_core.congruence.congruence``.
        convolve_s: tolerance, seconds (intervals widened by half of it at both ends).
        measure: ``"label"`` (events) or ``"tic"``: level of the headline scores and of the gate.
        reference: the truth of the headline (``"songexplorer"``, an annotator, ``"union"``, ...).
        nprobabilities: thresholds of the report's sweep (0: none).
        error_ratio: precision/recall ratio of the dense thresholds.
        ratio: which P/R ratio's thresholds make the ethogram (``"1.0pr"``); empty: the first.
        promotion_tolerance: largest drop of any label's F1 the gate accepts.
    """

    annotators: tuple[str, ...] = ()
    dense_recordings: tuple[str, ...] = ()
    portion: str = "union"
    convolve_s: float = 0.0
    span: str = "annotations"
    absent_annotators: str = "empty"
    measure: str = "label"
    reference: str = "songexplorer"
    nprobabilities: int = 20
    error_ratio: float = 1.0
    ratio: str = ""
    promotion_tolerance: float = DEFAULT_TOLERANCE

    @property
    def configured(self) -> bool:
        return bool(self.annotators)

    def congruence_settings(self) -> dict:
        """Keyword arguments of ``songexplorer_core.congruence.congruence`` (rate excluded)."""
        return {"portion": self.portion, "convolve_s": float(self.convolve_s), "span": self.span,
                "absent_annotators": self.absent_annotators}


def recording_names(keys) -> dict[str, str]:
    """The name each recording goes by in interval tables: its basename when no other recording
    has the same one, else its key (``round1%2FPS.wav``), so names stay unique."""
    keys = list(keys)
    basenames = [recording_relpath(k).name for k in keys]
    return {k: (b if basenames.count(b) == 1 else k) for k, b in zip(keys, basenames)}


@dataclass(frozen=True)
class DenseSet:
    """The densely annotated recordings: ``files[key][annotator]`` = that person's CSVs of the
    recording (several when they annotated in several sessions)."""

    files: dict[str, dict[str, list[Path]]]

    @property
    def keys(self) -> list[str]:
        return sorted(self.files)

    @property
    def annotators(self) -> list[str]:
        return sorted({name for by in self.files.values() for name in by})

    def names(self) -> dict[str, str]:
        return recording_names(self.keys)

    def describe(self) -> str:
        return "; ".join(f"{key}: {', '.join(sorted(by))}" for key, by in sorted(self.files.items()))


def find_dense_set(project: Project, settings: DenseSettings) -> DenseSet:
    """Every ``<wav>-annotated-<name>.csv`` of a dense annotator below ``groundtruth/``.

    Raises:
        DenseSetError: no dense annotator is named, none of them has a file, a file names a
            recording that is not in ``groundtruth/``, or ``dense_recordings`` lists a recording
            without dense annotations.
    """
    if not settings.configured:
        raise DenseSetError("no dense annotators are named: set dense_annotators of the dense_set resource "
                            "(or $SONGEXPLORER_DENSE_ANNOTATORS, or dense_annotators in the project's "
                            "songexplorer.toml), e.g. ['person2'] for <wav>-annotated-person2.csv")
    groundtruth = project.groundtruth
    wanted = set(settings.annotators)
    files: dict[str, dict[str, list[Path]]] = {}
    others = set()
    for path in find_interval_csvs(groundtruth, kinds=["annotated"]):
        parsed = parse_csv_name(path.name)
        if parsed.tag not in wanted:
            others.add(parsed.tag)
            continue
        relative = path.parent.relative_to(groundtruth) / parsed.recording
        if not recording_exists(groundtruth / relative):  # a file, or a channel recording of one
            raise DenseSetError(f"{path}: dense annotations by {parsed.tag} of recording {relative.as_posix()}, which "
                                f"is not in {groundtruth}; put the recording beside it, or rename or remove the file")
        files.setdefault(recording_key(relative), {}).setdefault(parsed.tag, []).append(path)
    if settings.dense_recordings:
        lacking = sorted(set(settings.dense_recordings) - set(files))
        if lacking:
            raise DenseSetError(f"dense_recordings lists {lacking} but {sorted(wanted)} annotated none of them (no "
                                f"<wav>-annotated-<name>.csv beside them in {groundtruth}); remove them from the list")
        files = {k: v for k, v in files.items() if k in set(settings.dense_recordings)}
    if not files:
        raise DenseSetError(f"no annotation file by {sorted(wanted)} under {groundtruth} (files are named "
                            f"<wav>-annotated-<name>.csv; annotators found: {sorted(others) or 'none'}); fix "
                            f"dense_annotators of the dense_set resource")
    return DenseSet(files)


def read_dense_annotations(project: Project, dense: DenseSet) -> dict[str, pd.DataFrame]:
    """``{annotator: interval table}`` of the dense set, each row validated against its recording
    (``wav`` = the recording's name from :func:`recording_names`)."""
    from songexplorer_core.audio import recording_info
    from songexplorer_core.project import recording_path

    names = dense.names()
    tables: dict[str, list[pd.DataFrame]] = {}
    for key, by in sorted(dense.files.items()):
        wav_path = recording_path(project, key)
        ntics = recording_info(wav_path).frames
        for annotator, paths in sorted(by.items()):
            for path in paths:
                table = read_intervals_csv(path, recording_tics={wav_path.name: ntics})
                tables.setdefault(annotator, []).append(table.assign(wav=names[key]))
    return {annotator: concat_intervals(frames) for annotator, frames in tables.items()}


# ---------------------------------------------------------------------------------------------
# what a model predicts there


def ratio_name(ratio: str | None) -> str:
    """How the ``ethograms`` asset names a P/R ratio (``"1.0"`` -> ``"1.0pr"``; none -> ``"1.0pr"``)."""
    return f"{ratio}pr" if ratio else "1.0pr"


def model_thresholds(bundle: Path) -> dict[str, dict[str, float]]:
    """``{ratio name: {label: threshold}}`` of a model folder (its best checkpoint's files)."""
    from songexplorer_core.ethogram import read_thresholds_ratios

    checkpoint = (bundle / "checkpoint.txt").read_text().strip() if (bundle / "checkpoint.txt").exists() else "*"
    paths = sorted(bundle.glob(f"thresholds-*pr.ckpt-{checkpoint}.csv")) or sorted(bundle.glob("thresholds*.csv"))
    if not paths:
        raise FileNotFoundError(f"{bundle}: the model has no thresholds file; retrain it (trained_model)")
    tables = {}
    for path in paths:
        for ratio, thresholds in read_thresholds_ratios(path).items():
            tables.setdefault(ratio_name(ratio), thresholds)
    return tables


def choose_ratio(available, wanted: str) -> str:
    """``wanted`` (``"1.0pr"``, or ``"1.0"``) among ``available``; the first one when empty."""
    available = list(dict.fromkeys(available))
    if not available:
        raise DenseSetError("the model has no thresholds for any P/R ratio")
    if not wanted:
        return available[0]
    name = wanted if wanted.endswith("pr") else f"{wanted}pr"
    if name not in available:
        raise DenseSetError(f"P/R ratio {wanted!r} is not among the model's {available}; set ratio to one of them")
    return name


def read_ethogram(project: Project, key: str) -> tuple[pd.DataFrame, dict]:
    """The ``ethograms`` asset's table of recording ``key`` (column ``ratio``) and what made it
    (``model_version``, ``bundle``)."""
    parquet = project.ethogram_path(key)
    source = project.probabilities_source_path(key)
    if not parquet.exists() or not source.exists():
        raise FileNotFoundError(parquet)
    return pd.read_parquet(parquet), json.loads(source.read_text())


def check_ethograms(project: Project, dense: DenseSet) -> None:
    """Raise :class:`DenseSetError` naming each dense annotation file whose recording has no
    ethogram (not classified yet)."""
    lacking = []
    for key in dense.keys:
        if not project.ethogram_path(key).exists() or not project.probabilities_source_path(key).exists():
            files = [p for paths in dense.files[key].values() for p in paths]
            lacking.append(f"{', '.join(str(p) for p in files)} (recording {key})")
    if lacking:
        raise DenseSetError(
            f"dense annotations of {len(lacking)} recording(s) that have no ethogram: {'; '.join(lacking)}. "
            f"Materialise probabilities and ethograms for those partitions (automation does it once the recording "
            f"is a partition and a champion exists), or remove them from the dense set")


def scores_by_label(scores: pd.DataFrame, *, measure: str, reference: str) -> pd.DataFrame:
    """Rows of a congruence ``scores`` table for one measure and reference, indexed by label."""
    rows = scores[(scores["measure"] == measure) & (scores["reference"] == reference)]
    if not len(rows):
        references = sorted(set(scores["reference"]))
        raise DenseSetError(f"no congruence scores against reference {reference!r} at the {measure} level; "
                            f"references computed: {references} (set reference of the dense_set resource)")
    return rows.set_index("label")[["tp", "fp", "fn", "precision", "recall", "f1"]]


def headline_metrics(by_label: pd.DataFrame) -> dict[str, float]:
    """``dense_<precision|recall|f1>_<label>`` and ``dense_f1_macro`` (NaN-free mean over labels)."""
    metrics = {}
    for label, row in by_label.iterrows():
        for name in HEADLINE:
            metrics[f"dense_{name}_{label}"] = float(row[name])
    f1 = [float(v) for v in by_label["f1"] if math.isfinite(float(v))]
    metrics["dense_f1_macro"] = sum(f1) / len(f1) if f1 else math.nan
    return metrics


def score_model(model, bundle: Path, *, project: Project, settings: DenseSettings, dense: DenseSet,
                annotations_by: dict[str, pd.DataFrame], version: str | None = None, log=None,
                method: str = "auto", min_segment_fraction: float | None = None,
                event_refractory_fraction: float | None = None, event_min_peak: float | None = None) -> pd.DataFrame:
    """Precision, recall and F1 per label (``settings``' measure and reference) of a model's
    ethogram on the dense recordings: it classifies each one (or reuses the ``probabilities``
    asset's file when the same model version made it) and makes the ethogram as the
    ``ethograms`` asset does (``ethogram.model_ethogram`` with ``method``,
    ``min_segment_fraction``, ``event_refractory_fraction`` and ``event_min_peak``, None = the
    defaults; thresholds: the model's own for ``settings.ratio``). ``log``: something with
    ``info(str)``."""
    from songexplorer_core.classify import classify_recording, read_probabilities
    from songexplorer_core.congruence import congruence
    from songexplorer_core import ethogram as E
    from songexplorer_core.project import recording_path

    thresholds = model_thresholds(bundle)
    ratio = choose_ratio(thresholds, settings.ratio)
    durations = E.read_annotation_durations(bundle)
    choices = {"min_segment_fraction": min_segment_fraction, "event_refractory_fraction": event_refractory_fraction,
               "event_min_peak": event_min_peak}
    choices = {name: value for name, value in choices.items() if value is not None}
    names = dense.names()
    tables, rate = [], project.settings().audio_tic_rate
    for key in dense.keys:
        npz = project.probabilities_npz(key)
        source = project.probabilities_source_path(key)
        probs = None
        if version is not None and npz.exists() and source.exists() and \
                str(json.loads(source.read_text()).get("model_version")) == str(version):
            probs = read_probabilities(npz)
        if probs is None:
            started = time.monotonic()
            probs = classify_recording(model, recording_path(project, key))
            if log is not None:
                log.info(f"classified {key} with model {version or bundle.name} in {time.monotonic() - started:.1f} s")
        usable = {label: value for label, value in thresholds[ratio].items() if label in probs.labels}
        tables.append(E.model_ethogram(probs, usable, durations, method=method, wav=names[key], **choices))
    predicted = concat_intervals(tables)
    result = congruence(annotations_by, predicted, recordings=[names[k] for k in dense.keys], rate=rate,
                        measure=settings.measure, keep_sets=False, **settings.congruence_settings())
    return scores_by_label(result.scores, measure=settings.measure, reference=settings.reference)


# ---------------------------------------------------------------------------------------------
# the report of the project's ethograms


@dataclass
class DenseReport:
    """What :func:`dense_report` compared and wrote.

    Attributes:
        version: the model version whose ethograms were compared; ``bundle`` its folder.
        ratio: the P/R ratio whose ethogram was compared.
        dense: the dense set; ``report``: the ``congruence_report.CongruenceReport``.
        by_label: headline scores per label (``settings``' measure and reference).
        metrics: ``dense_<precision|recall|f1>_<label>``, ``dense_f1_macro``.
        folder: ``outputs/congruence/v<version>/``; ``seconds``: time comparing and sweeping.
    """

    version: str
    bundle: Path
    ratio: str
    dense: DenseSet
    report: object
    by_label: pd.DataFrame
    metrics: dict[str, float]
    folder: Path
    seconds: float
    notes: list[str] = field(default_factory=list)


def dense_report(project: Project, settings: DenseSettings) -> DenseReport:
    """Congruence of the project's ethograms of the dense recordings with the dense annotations:
    compared at tic and event level, swept over probability thresholds (``settings.nprobabilities``)
    and written to ``outputs/congruence/v<model version>/`` with ``headline.json``.

    Raises:
        DenseSetError: no dense set, a dense recording without an ethogram, or ethograms of
            different model versions.
    """
    from songexplorer_core.classify import read_probabilities
    from songexplorer_core.congruence_report import congruence_report
    from songexplorer_core.models.folders import read_labels_txt

    dense = find_dense_set(project, settings)
    check_ethograms(project, dense)
    annotations_by = read_dense_annotations(project, dense)
    names = dense.names()
    frames, sources = [], {}
    for key in dense.keys:
        frame, source = read_ethogram(project, key)
        frames.append(frame.assign(wav=names[key]))
        sources[key] = source
    versions = sorted({str(s["model_version"]) for s in sources.values()})
    if len(versions) > 1:
        by_version = {v: [k for k, s in sources.items() if str(s["model_version"]) == v] for v in versions}
        raise DenseSetError(f"the dense recordings' ethograms come from different models {by_version}; "
                            f"re-materialise probabilities and ethograms of the older ones")
    version = versions[0]
    bundle = Path(sources[dense.keys[0]]["bundle"])
    ratio = choose_ratio(model_thresholds(bundle), settings.ratio)
    predicted = concat_intervals([f[f["ratio"] == ratio].drop(columns="ratio") for f in frames])
    model_labels = read_labels_txt(bundle / "labels.txt") if (bundle / "labels.txt").exists() else None
    checkpoint = (bundle / "checkpoint.txt").read_text().strip() if (bundle / "checkpoint.txt").exists() else None
    folder = project.congruence_dir(version)
    started = time.monotonic()
    report = congruence_report(
        annotations_by, predicted, folder, recordings=[names[k] for k in dense.keys],
        rate=project.settings().audio_tic_rate,
        probabilities=lambda _: {names[k]: read_probabilities(project.probabilities_npz(k)) for k in dense.keys},
        nprobabilities=settings.nprobabilities, error_ratio=settings.error_ratio,
        recording_folders={names[k]: folder / recording_relpath(k).parent for k in dense.keys},
        timestamp=datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S"), checkpoint=checkpoint,
        label_order=model_labels, measure="both", **settings.congruence_settings())
    seconds = time.monotonic() - started
    notes = []
    if report.left_out_of_sweep:
        notes.append(f"the model has no output for dense label(s) {report.left_out_of_sweep}: left out of the sweep")
    by_label = scores_by_label(report.ethogram.scores, measure=settings.measure, reference=settings.reference)
    metrics = headline_metrics(by_label)
    with atomic_write(folder / "headline.json") as handle:
        json.dump({"model_version": version, "ratio": ratio, "measure": settings.measure,
                   "reference": settings.reference, "metrics": metrics, "recordings": dense.keys,
                   "annotators": dense.annotators}, handle, indent=2)
    return DenseReport(version=version, bundle=bundle, ratio=ratio, dense=dense, report=report, by_label=by_label,
                       metrics=metrics, folder=folder, seconds=seconds, notes=notes)
