"""Resources: configurable handles on the outside world (project folder, MLflow, compute)."""

from songexplorer_dagster.resources.compute import ComputeResource
from songexplorer_dagster.resources.mlflow import MlflowResource
from songexplorer_dagster.resources.project import ProjectResource

__all__ = ["ComputeResource", "MlflowResource", "ProjectResource"]
