"""MLflow as a Dagster resource: where training runs and registered models go.

Deliberately not dagster-mlflow, which pins pandas < 3 (dagster#33325): this small resource
only hands out a :class:`songexplorer_core.tracking.TrackingConfig`. By default the tracking
store is SQLite and the artifacts a folder, both inside the project (``<project>/mlflow/``), which
is also what README command 1's MLflow UI serves; set ``tracking_uri`` for a shared server.
"""

import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from songexplorer_core.tracking import TrackingConfig


def _default_ui_url() -> str:
    return os.environ.get("SONGEXPLORER_MLFLOW_UI", "http://127.0.0.1:5000")


class MlflowResource(dg.ConfigurableResource):
    """Where every trained model is logged (one experiment and one registered model per project)."""

    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI; empty means SQLite inside the project (<project>/mlflow/mlflow.db).",
    )
    experiment: str = Field(default="songexplorer", description="Experiment holding every training run.")
    registered_model: str = Field(
        default="songexplorer", description="Registered model whose versions are the trained models."
    )
    ui_url: str = Field(
        default_factory=_default_ui_url,
        description="Address of the MLflow UI, for links in asset metadata (SONGEXPLORER_MLFLOW_UI).",
    )

    def tracking(self, project_root: str | os.PathLike) -> TrackingConfig:
        """The tracking configuration for the project at ``project_root``."""
        overrides = {"experiment": self.experiment, "registered_model": self.registered_model, "ui_url": self.ui_url}
        if self.tracking_uri:
            return TrackingConfig(tracking_uri=self.tracking_uri, **overrides)
        return TrackingConfig.for_project_dir(Path(project_root) / "mlflow", **overrides)
