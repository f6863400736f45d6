"""The ``review`` group's measure against dense annotations: the ``congruence_report`` asset."""

import math

import dagster as dg

from songexplorer_dagster.conditions import eager_over_recordings
from songexplorer_dagster.failures import fails_clearly
from songexplorer_dagster.defs.resources import DenseSetResource, MlflowResource, ProjectResource
from songexplorer_dagster.metadata import png_markdown, table_value

NO_DENSE_SET = ("No dense annotations configured: name the annotators whose `<wav>-annotated-<name>.csv` files are "
                "dense in the `dense_set` resource (`dense_annotators`, `$SONGEXPLORER_DENSE_ANNOTATORS`, or "
                "`dense_annotators` in the project's `songexplorer.toml`).")



def levels_explained(measure: str, reference: str, rate: int) -> str:
    """What the two levels of congruence count, and which one the headline numbers are (short
    markdown: Dagster shows it in place)."""
    return (f"**tic level**: every tic (1/{rate} s) of the densely annotated stretch counts once, so a "
            f"predicted pulse a few tics wider or narrower than the annotated one makes false positives or "
            f"misses: short sounds score low here even when each one is found. **label level**: each "
            f"annotated or predicted sound counts once, matched when they overlap (SongExplorer's "
            f"congruence, docs/congruence.md). The headline table and the `dense_*` numbers are at the "
            f"**{measure}** level, against **{reference}**; `all_scores` has both levels.")


@dg.asset(
    deps=[dg.AssetDep("ethograms", partition_mapping=dg.AllPartitionMapping()),
          dg.AssetDep("probabilities", partition_mapping=dg.AllPartitionMapping()),
          dg.AssetDep("annotations", partition_mapping=dg.AllPartitionMapping())],
    group_name="review",
    kinds={"matplotlib", "csv", "mlflow"},
    # after its inputs update; waits for partitions on their way, ignores those that cannot come
    automation_condition=eager_over_recordings(["ethograms", "probabilities"]),
)
@fails_clearly
def congruence_report(context: dg.AssetExecutionContext, project: ProjectResource, mlflow: MlflowResource,
                      dense_set: DenseSetResource) -> dg.MaterializeResult:
    """The champion's ethograms of the densely annotated recordings (the ``dense_set`` resource)
    compared with those annotations at tic and event level, against every reference, and over a
    sweep of probability thresholds (``songexplorer_core.dense_set.dense_report``, the same report
    as ``songexplorer congruence``): SongExplorer's congruence files under
    ``outputs/congruence/v<model version>/`` (tables, plots, disjoint sets mirroring
    ``groundtruth/``'s folders, dense thresholds). Precision, recall and F1 per label are shown
    with the plots and logged to the model's MLflow run as ``dense_precision_<label>``,
    ``dense_recall_<label>``, ``dense_f1_<label>`` and ``dense_f1_macro``.
    """
    from songexplorer_core.dense_set import dense_report
    from songexplorer_core.promotion import current_champion
    from songexplorer_core.tracking import log_metrics_to_run

    settings = dense_set.settings(project)
    if not settings.configured:
        context.log.info("no dense annotators named in the dense_set resource: nothing to compare")
        return dg.MaterializeResult(metadata={"dense_set": dg.MetadataValue.md(NO_DENSE_SET)})
    paths = project.project()
    done = dense_report(paths, settings)
    for note in done.notes:
        context.log.warning(note)

    version, metrics = done.version, done.metrics
    tracking = mlflow.tracking(paths.root)
    client = tracking.client()
    run_id = client.get_model_version(tracking.registered_model, version).run_id
    log_metrics_to_run(tracking, run_id, metrics)
    experiment_id = client.get_run(run_id).info.experiment_id
    champion = current_champion(tracking)
    if champion is not None and champion != version:
        context.log.warning(f"the ethograms are from model version {version} but the champion is now {champion}; "
                            f"this report is for version {version} (it is redone once the ethograms follow)")
    context.log.info(f"congruence of model v{version} on {len(done.dense.keys)} dense recording(s) by "
                     f"{done.dense.annotators} in {done.seconds:.2f} s: {metrics}")

    result, sweep, measure = done.report.ethogram, done.report.sweep, settings.measure
    metadata = {
        "model_version": dg.MetadataValue.text(version),
        "mlflow_run": dg.MetadataValue.url(tracking.run_url(experiment_id, run_id)),
        "headline": table_value(done.by_label.reset_index().assign(level=measure, against=settings.reference)),
        "levels": dg.MetadataValue.md(levels_explained(measure, settings.reference,
                                                      project.settings().audio_tic_rate)),
        "measure": dg.MetadataValue.text(measure),
        "reference": dg.MetadataValue.text(settings.reference),
        "ratio": dg.MetadataValue.text(done.ratio),
        "dense_recordings": dg.MetadataValue.json(done.dense.keys),
        "annotators": dg.MetadataValue.json(done.dense.annotators),
        "all_scores": table_value(result.scores.rename(columns={"measure": "level"}), max_rows=60),
        "seconds": dg.MetadataValue.text(f"{done.seconds:.2f} s"),
        "folder": dg.MetadataValue.path(str(done.folder)),
        "files": dg.MetadataValue.int(len(done.report.written)),
        **{name: dg.MetadataValue.float(value) for name, value in metrics.items() if math.isfinite(value)},
    }
    if sweep is not None:
        metadata["dense_thresholds"] = dg.MetadataValue.json(
            {label: round(value, 4) for label, value in sweep.dense_thresholds(
                settings.error_ratio, measure=measure).items() if math.isfinite(value)})
    for label in result.labels:
        for suffix, title in (("png", "sweep"), ("counts.png", "ethogram counts")):
            png = done.folder / f"congruence.{measure}.{label}.{suffix}"
            if png.exists():
                metadata[f"{label} {title}"] = png_markdown(png, f"{label}: {title} ({measure} level)", paths.outputs)
    return dg.MaterializeResult(metadata=metadata)
