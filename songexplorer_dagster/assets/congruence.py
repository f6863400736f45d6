"""Congruence with dense annotations: the ``congruence_report`` asset and the promotion gate.

``congruence_report`` (one materialisation per champion model) compares the champion's ethograms
of the densely annotated recordings (the ``dense_set`` resource: whose
``<wav>-annotated-<name>.csv`` files are dense) with those annotations
(``songexplorer_core.congruence``): at tic and event level, against every reference, and over a
sweep of probability thresholds. It writes SongExplorer's congruence files under
``outputs/congruence/v<model version>/`` (tables, plots, the disjoint sets mirroring
``groundtruth/``'s folders, dense thresholds), shows precision, recall and F1 per label with the
plots, and logs them to the model's MLflow run as ``dense_precision_<label>``,
``dense_recall_<label>``, ``dense_f1_<label>`` and ``dense_f1_macro``.

The promotion gate (:func:`promotion_gate`, run inside ``trained_model`` as a blocking asset
check) scores a newly trained model the same way and lets it become ``champion`` only if no
label's F1 falls by more than ``promotion_tolerance`` below the champion's
(``songexplorer_core.promotion``).
"""


import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pandas as pd

from songexplorer_core.annotations import concat_intervals, find_interval_csvs, parse_csv_name, read_intervals_csv
from songexplorer_core.atomic import atomic_write
from songexplorer_core.project import recording_key, recording_relpath
from songexplorer_dagster.assets.annotations import annotations
from songexplorer_dagster.assets.models import PROMOTION_CHECK
from songexplorer_dagster.assets.predictions import ethograms, probabilities, probabilities_npz
from songexplorer_dagster.metadata import png_markdown, table_markdown
from songexplorer_dagster.resources import ProjectResource
from songexplorer_dagster.resources.dense import DenseSetResource
from songexplorer_dagster.resources.mlflow import MlflowResource

HEADLINE = ("precision", "recall", "f1")


class DenseSetError(ValueError):
    """The dense set cannot be compared as configured; the message names the files and the fix."""


# ---------------------------------------------------------------------------------------------
# the dense set


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


def find_dense_set(project: ProjectResource, dense: DenseSetResource) -> DenseSet:
    """Every ``<wav>-annotated-<name>.csv`` of a dense annotator below ``groundtruth/``.

    Raises:
        DenseSetError: no dense annotator is named, none of them has a file, a file names a
            recording that is not in ``groundtruth/``, or ``dense_recordings`` lists a recording
            without dense annotations.
    """
    if not dense.is_configured(project):
        raise DenseSetError("no dense annotators are named: set dense_annotators of the dense_set resource "
                            "(or $SONGEXPLORER_DENSE_ANNOTATORS, or dense_annotators in the project's "
                            "songexplorer.toml), e.g. ['person2'] for <wav>-annotated-person2.csv")
    groundtruth = project.project().groundtruth
    wanted = set(dense.annotators(project))
    files: dict[str, dict[str, list[Path]]] = {}
    others = set()
    for path in find_interval_csvs(groundtruth, kinds=["annotated"]):
        parsed = parse_csv_name(path.name)
        if parsed.tag not in wanted:
            others.add(parsed.tag)
            continue
        relative = path.parent.relative_to(groundtruth) / parsed.recording
        if not (groundtruth / relative).is_file():
            raise DenseSetError(f"{path}: dense annotations by {parsed.tag} of recording {relative.as_posix()}, which "
                                f"is not in {groundtruth}; put the recording beside it, or rename or remove the file")
        files.setdefault(recording_key(relative), {}).setdefault(parsed.tag, []).append(path)
    if dense.dense_recordings:
        lacking = sorted(set(dense.dense_recordings) - set(files))
        if lacking:
            raise DenseSetError(f"dense_recordings lists {lacking} but {sorted(wanted)} annotated none of them (no "
                                f"<wav>-annotated-<name>.csv beside them in {groundtruth}); remove them from the list")
        files = {k: v for k, v in files.items() if k in set(dense.dense_recordings)}
    if not files:
        raise DenseSetError(f"no annotation file by {sorted(wanted)} under {groundtruth} (files are named "
                            f"<wav>-annotated-<name>.csv; annotators found: {sorted(others) or 'none'}); fix "
                            f"dense_annotators of the dense_set resource")
    return DenseSet(files)


def read_dense_annotations(project: ProjectResource, dense_set: DenseSet) -> dict[str, pd.DataFrame]:
    """``{annotator: interval table}`` of the dense set, each row validated against its recording
    (``wav`` = the recording's name from :func:`recording_names`)."""
    from songexplorer_core.audio import recording_info

    names = dense_set.names()
    tables: dict[str, list[pd.DataFrame]] = {}
    for key, by in sorted(dense_set.files.items()):
        wav_path = project.recording_path(key)
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


def read_ethogram(project: ProjectResource, key: str) -> tuple[pd.DataFrame, dict]:
    """The ``ethograms`` asset's table of recording ``key`` (column ``ratio``) and what made it
    (``model_version``, ``bundle``)."""
    parquet = project.project().outputs / "ethograms" / f"{key}.parquet"
    source = probabilities_npz(project, key).with_suffix(".json")
    if not parquet.exists() or not source.exists():
        raise FileNotFoundError(parquet)
    return pd.read_parquet(parquet), json.loads(source.read_text())


def check_ethograms(project: ProjectResource, dense_set: DenseSet) -> None:
    """Raise :class:`DenseSetError` naming each dense annotation file whose recording has no
    ethogram (not classified yet)."""
    lacking = []
    for key in dense_set.keys:
        parquet = project.project().outputs / "ethograms" / f"{key}.parquet"
        if not parquet.exists() or not probabilities_npz(project, key).with_suffix(".json").exists():
            files = [p for paths in dense_set.files[key].values() for p in paths]
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


def score_model(model, bundle: Path, *, project: ProjectResource, dense: DenseSetResource, dense_set: DenseSet,
                annotations_by: dict[str, pd.DataFrame], version: str | None = None, log=None,
                method: str = "auto", min_segment_fraction: float | None = None) -> pd.DataFrame:
    """Precision, recall and F1 per label (``dense_set``'s measure and reference) of a model's
    ethogram on the dense recordings: it classifies each one (or reuses the ``probabilities``
    asset's file when the same model version made it) and makes the ethogram as the
    ``ethograms`` asset does (``method``, ``min_segment_fraction``; thresholds: the model's own
    for ``dense.ratio``)."""
    from songexplorer_core.classify import classify_recording, read_probabilities
    from songexplorer_core.congruence import congruence
    from songexplorer_core.ethogram import (
        choose_method, drop_short_segments, ethogram_maxprob, ethogram_threshold, min_segment_durations,
        read_annotation_durations,
    )

    thresholds = model_thresholds(bundle)
    ratio = choose_ratio(thresholds, dense.ratio)
    minimum_s = min_segment_durations(read_annotation_durations(bundle), min_segment_fraction)
    names = dense_set.names()
    tables, rate = [], project.settings().audio_tic_rate
    for key in dense_set.keys:
        npz = probabilities_npz(project, key)
        source = npz.with_suffix(".json")
        probs = None
        if version is not None and npz.exists() and source.exists() and \
                str(json.loads(source.read_text()).get("model_version")) == str(version):
            probs = read_probabilities(npz)
        if probs is None:
            started = time.monotonic()
            probs = classify_recording(model, project.recording_path(key))
            if log is not None:
                log.info(f"classified {key} with model {version or bundle.name} in {time.monotonic() - started:.1f} s")
        usable = {label: value for label, value in thresholds[ratio].items() if label in probs.labels}
        if choose_method(method, probs) == "maxprob":
            frame = ethogram_maxprob(probs, list(usable), wav=names[key])
        else:
            frame = ethogram_threshold(probs, usable, wav=names[key])
        tables.append(drop_short_segments(frame, minimum_s, rate=probs.rate))
    predicted = concat_intervals(tables)
    result = congruence(annotations_by, predicted, recordings=[names[k] for k in dense_set.keys], rate=rate,
                        measure=dense.measure, keep_sets=False, **dense.congruence_settings())
    return scores_by_label(result.scores, measure=dense.measure, reference=dense.reference)


# ---------------------------------------------------------------------------------------------
# the report


def congruence_dir(project: ProjectResource, version: str) -> Path:
    """``outputs/congruence/v<version>/``."""
    return project.project().outputs / "congruence" / f"v{version}"


@dg.asset(
    deps=[dg.AssetDep(ethograms, partition_mapping=dg.AllPartitionMapping()),
          dg.AssetDep(probabilities, partition_mapping=dg.AllPartitionMapping()),
          dg.AssetDep(annotations, partition_mapping=dg.AllPartitionMapping())],
    group_name="review",
    kinds={"matplotlib", "csv", "mlflow"},
    # eager() alone never fires while any recording partition is missing (its ~any_deps_missing() clause)
    automation_condition=dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing()),
    description=__doc__,
)
def congruence_report(context: dg.AssetExecutionContext, project: ProjectResource, mlflow: MlflowResource,
                      dense_set: DenseSetResource) -> dg.MaterializeResult:
    """Congruence of the champion's ethograms with the dense annotations, logged to its MLflow run."""
    from songexplorer_core.congruence import (
        congruence, congruence_sweep, write_congruence_report, write_dense_thresholds, write_disjoint_csvs,
    )
    from songexplorer_core.classify import read_probabilities
    from songexplorer_core.tracking import log_metrics_to_run

    if not dense_set.is_configured(project):
        context.log.info("no dense annotators named in the dense_set resource: nothing to compare")
        return dg.MaterializeResult(metadata={
            "dense_set": dg.MetadataValue.md("No dense annotations configured: name the annotators whose "
                                             "`<wav>-annotated-<name>.csv` files are dense in the `dense_set` "
                                             "resource (`dense_annotators`, `$SONGEXPLORER_DENSE_ANNOTATORS`, or "
                                             "`dense_annotators` in the project's `songexplorer.toml`)."),
        })
    dense = find_dense_set(project, dense_set)
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
    ratio = choose_ratio(model_thresholds(bundle), dense_set.ratio)
    predicted = concat_intervals([f[f["ratio"] == ratio].drop(columns="ratio") for f in frames])
    rate = project.settings().audio_tic_rate
    recordings = [names[k] for k in dense.keys]
    started = time.monotonic()
    result = congruence(annotations_by, predicted, recordings=recordings, rate=rate, measure="both",
                        **dense_set.congruence_settings())
    sweep = None
    model_labels = (bundle / "labels.txt").read_text().split() if (bundle / "labels.txt").exists() else None
    if dense_set.nprobabilities > 0:
        probs = {names[k]: read_probabilities(probabilities_npz(project, k)) for k in dense.keys}
        labels = [label for label in result.labels if all(label in p.labels for p in probs.values())]
        left_out = [label for label in result.labels if label not in labels]
        if left_out:
            context.log.warning(f"the model has no output for dense label(s) {left_out}: left out of the sweep")
        if labels:
            sweep = congruence_sweep(probs, annotations_by, thresholds=dense_set.nprobabilities, labels=labels,
                                     measure="both", **dense_set.congruence_settings())
    seconds = time.monotonic() - started

    folder = congruence_dir(project, version)
    written = write_congruence_report(folder, ethogram=result, sweep=sweep, error_ratio=dense_set.error_ratio)
    folders = {names[k]: folder / recording_relpath(k).parent for k in dense.keys}
    written += write_disjoint_csvs(result, folder, folders=folders)
    if sweep is not None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        checkpoint = (bundle / "checkpoint.txt").read_text().strip() if (bundle / "checkpoint.txt").exists() else None
        written += write_dense_thresholds(sweep, folder, error_ratio=dense_set.error_ratio, timestamp=stamp,
                                          checkpoint=checkpoint, label_order=model_labels)
    by_label = scores_by_label(result.scores, measure=dense_set.measure, reference=dense_set.reference)
    metrics = headline_metrics(by_label)
    with atomic_write(folder / "headline.json") as handle:
        json.dump({"model_version": version, "ratio": ratio, "measure": dense_set.measure,
                   "reference": dense_set.reference, "metrics": metrics, "recordings": dense.keys,
                   "annotators": dense.annotators}, handle, indent=2)

    tracking = mlflow.tracking(project.project().root)
    client = tracking.client()
    run_id = client.get_model_version(tracking.registered_model, version).run_id
    log_metrics_to_run(tracking, run_id, metrics)
    experiment_id = client.get_run(run_id).info.experiment_id
    from songexplorer_core.promotion import current_champion

    champion = current_champion(tracking)
    if champion is not None and champion != version:
        context.log.warning(f"the ethograms are from model version {version} but the champion is now {champion}; "
                            f"this report is for version {version} (it is redone once the ethograms follow)")
    context.log.info(f"congruence of model v{version} on {len(dense.keys)} dense recording(s) by "
                     f"{dense.annotators} in {seconds:.2f} s: {metrics}")

    shown = by_label.reset_index()
    metadata = {
        "model_version": dg.MetadataValue.text(version),
        "mlflow_run": dg.MetadataValue.url(tracking.run_url(experiment_id, run_id)),
        "headline": table_markdown(shown),
        "measure": dg.MetadataValue.text(dense_set.measure),
        "reference": dg.MetadataValue.text(dense_set.reference),
        "ratio": dg.MetadataValue.text(ratio),
        "dense_recordings": dg.MetadataValue.json(dense.keys),
        "annotators": dg.MetadataValue.json(dense.annotators),
        "all_scores": table_markdown(result.scores, max_rows=60),
        "seconds": dg.MetadataValue.float(round(seconds, 3)),
        "folder": dg.MetadataValue.path(str(folder)),
        "files": dg.MetadataValue.int(len(written)),
        **{name: dg.MetadataValue.float(value) for name, value in metrics.items() if math.isfinite(value)},
    }
    if sweep is not None:
        metadata["dense_thresholds"] = dg.MetadataValue.json(
            {label: round(value, 4) for label, value in sweep.dense_thresholds(
                dense_set.error_ratio, measure=dense_set.measure).items() if math.isfinite(value)})
    for label in result.labels:
        for suffix, title in (("png", "sweep"), ("counts.png", "ethogram counts")):
            png = folder / f"congruence.{dense_set.measure}.{label}.{suffix}"
            if png.exists():
                metadata[f"{label} {title}"] = png_markdown(png, f"{label}: {title} ({dense_set.measure} level)")
    return dg.MaterializeResult(metadata=metadata)


# ---------------------------------------------------------------------------------------------
# the promotion gate (a check of trained_model)

def promotion_gate(context, *, project: ProjectResource, mlflow: MlflowResource, dense: DenseSetResource,
                   candidate_version: str, candidate_run_id: str, candidate_model, candidate_bundle: Path,
                   method: str = "auto", min_segment_fraction: float | None = None
                   ) -> tuple[dg.AssetCheckResult, str | None]:
    """Decide whether the newly logged ``candidate_version`` becomes champion, carry the decision
    out in the registry, and describe it as the result of the blocking check
    ``PROMOTION_CHECK`` of ``trained_model``. Returns ``(check result, champion afterwards)``.

    The training must have been logged with ``champion_metric=GATE_DECIDES`` when ``dense`` is
    configured (logging then left the alias alone). The candidate's dense scores are logged to
    its MLflow run (``dense_f1_<label>``...). Without dense annotators the check passes, saying
    the gate was skipped. When the candidate cannot be scored (a broken dense set), it is
    refused unless there is no champion yet; the reason says why. Both models' ethograms are
    made by ``method`` (the ``ethogram`` resource's), as the ``ethograms`` asset makes them.
    """
    from songexplorer_core.models import load_trained_model
    from songexplorer_core.promotion import (
        PINNED, REFUSED, PromotionDecision, apply_decision, current_champion, decide_promotion, pinned_decision,
        pinned_version,
    )
    from songexplorer_core.tracking import log_metrics_to_run
    from songexplorer_dagster.assets.predictions import champion_bundle

    tracking = mlflow.tracking(project.project().root)
    champion = current_champion(tracking)
    if not dense.is_configured(project):
        return dg.AssetCheckResult(
            check_name=PROMOTION_CHECK, passed=True,
            description=("no dense annotations: gate skipped (the champion is the version with the best validation "
                         "F1; name dense_annotators in the dense_set resource to gate promotions on dense "
                         f"annotations). Champion: version {champion}."),
            metadata={"outcome": dg.MetadataValue.text("skipped"),
                      "champion_version": dg.MetadataValue.text(str(champion))},
        ), champion

    started = time.monotonic()
    pinned = pinned_version(tracking)
    try:
        dense_set = find_dense_set(project, dense)
        annotations_by = read_dense_annotations(project, dense_set)
        candidate = score_model(candidate_model, candidate_bundle, project=project, dense=dense, dense_set=dense_set,
                                annotations_by=annotations_by, version=candidate_version, log=context.log,
                                method=method, min_segment_fraction=min_segment_fraction)
    except Exception as error:  # noqa: BLE001 - a model that cannot be scored is not promoted over a champion
        problem = f"{type(error).__name__}: {error}"
        if champion is None:
            decision = decide_promotion({}, None, candidate=candidate_version, champion=None,
                                        tolerance=dense.promotion_tolerance)
            decision = PromotionDecision(True, decision.outcome, decision.candidate, None,
                                         f"{decision.reason}, unscored: the dense set could not be used ({problem})")
        else:
            decision = PromotionDecision(
                False, REFUSED, str(candidate_version), champion,
                f"refused: version {candidate_version} could not be scored on the dense annotations, so it cannot be "
                f"compared with champion version {champion} ({problem}); the champion stays version {champion}")
        if pinned is not None:
            decision = pinned_decision(decision, pinned)
        after = apply_decision(tracking, decision)
        context.log.warning(f"promotion gate: {decision.reason}")
        return dg.AssetCheckResult(
            check_name=PROMOTION_CHECK, passed=decision.promote or decision.outcome == PINNED,
            severity=dg.AssetCheckSeverity.ERROR, description=decision.reason,
            metadata={"outcome": dg.MetadataValue.text(decision.outcome),
                      "champion_version": dg.MetadataValue.text(str(after))},
        ), after

    log_metrics_to_run(tracking, candidate_run_id, headline_metrics(candidate))
    champion_scores = None
    if champion is not None and champion != str(candidate_version):
        try:
            version, bundle = champion_bundle(project, mlflow)
            champion_scores = score_model(load_trained_model(bundle), bundle, project=project, dense=dense,
                                          dense_set=dense_set, annotations_by=annotations_by, version=version,
                                          log=context.log, method=method,
                                          min_segment_fraction=min_segment_fraction)["f1"].to_dict()
        except Exception as error:  # noqa: BLE001 - a champion that cannot be used any more is replaced
            context.log.warning(f"champion version {champion} could not be scored on the dense set "
                                f"({type(error).__name__}: {error}); the candidate is compared with nothing")
            champion_scores = {}
    decision = decide_promotion(candidate["f1"].to_dict(), champion_scores, candidate=candidate_version,
                                champion=champion, tolerance=dense.promotion_tolerance)
    if pinned is not None:
        decision = pinned_decision(decision, pinned)
    after = apply_decision(tracking, decision)
    seconds = time.monotonic() - started
    context.log.info(f"promotion gate ({seconds:.1f} s): {decision.reason}")
    table = pd.DataFrame(decision.table())
    return dg.AssetCheckResult(
        check_name=PROMOTION_CHECK,
        passed=bool(decision.promote or decision.outcome == PINNED),
        severity=dg.AssetCheckSeverity.ERROR,
        description=decision.reason,
        metadata={
            "outcome": dg.MetadataValue.text(decision.outcome),
            "champion_version": dg.MetadataValue.text(str(after)),
            "candidate_version": dg.MetadataValue.text(str(candidate_version)),
            "tolerance": dg.MetadataValue.float(float(decision.tolerance)),
            "per_label_f1": table_markdown(table) if len(table) else dg.MetadataValue.md("(no labels)"),
            "candidate_scores": table_markdown(candidate.reset_index()),
            "dense_recordings": dg.MetadataValue.json(dense_set.keys),
            "measure": dg.MetadataValue.text(dense.measure),
            "reference": dg.MetadataValue.text(dense.reference),
            "seconds": dg.MetadataValue.float(round(seconds, 2)),
        },
    ), after


__all__ = ["DenseSet", "DenseSetError", "check_ethograms", "congruence_report", "find_dense_set", "promotion_gate",
           "read_dense_annotations", "recording_names", "score_model"]
