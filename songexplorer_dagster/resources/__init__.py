"""Resources: configurable handles on the outside world (project folder, MLflow, compute) and
the settings several assets share (the dense set, the ethogram method)."""

from songexplorer_dagster.resources.compute import ComputeResource
from songexplorer_dagster.resources.ethogram import EthogramResource
from songexplorer_dagster.resources.mlflow import MlflowResource
from songexplorer_dagster.resources.project import ProjectResource

__all__ = ["ComputeResource", "EthogramResource", "MlflowResource", "ProjectResource"]
