"""Jobs of the ``model`` group."""

import dagster as dg

#: Train a model on the current ground truth and draw its accuracy (what the nightly schedule and
#: the "retrain" button run).
train_model_job = dg.define_asset_job(
    name="train_model_job",
    selection=dg.AssetSelection.assets("trained_model", "accuracy_report"),
    description="Train on the ground truth, log to MLflow, and draw the accuracy report.",
)
