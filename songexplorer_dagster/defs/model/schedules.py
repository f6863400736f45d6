"""Schedules of the ``model`` group: the nightly retraining."""

import dagster as dg


def _latest_metadata(instance: dg.DagsterInstance, asset_key: str) -> dict | None:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset_key))
    if event is None or event.asset_materialization is None:
        return None
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


@dg.schedule(
    cron_schedule="0 3 * * *",
    target=dg.AssetSelection.assets("trained_model", "accuracy_report"),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="At 03:00, retrain when the ground truth changed since the last training.",
)
def nightly_retrain(context: dg.ScheduleEvaluationContext):
    """Retrain only if the annotations differ from those the current model learnt from."""
    ground = _latest_metadata(context.instance, "ground_truth")
    if ground is None:
        return dg.SkipReason("no ground truth yet")
    model = _latest_metadata(context.instance, "trained_model")
    if model is not None and model.get("ground_truth_hash") == ground.get("content_hash"):
        return dg.SkipReason("annotations unchanged since the last training")
    return dg.RunRequest(run_key=f"retrain-{ground.get('content_hash')}")
