"""The project's code location plus its training job with Dagster's step-per-container executor
(dagster-docker's ``docker_executor``), for the container tier (tests/deploy/test_container_tier.py).

The job selects exactly what ``train_model_job`` selects (``trained_model``, ``accuracy_report``);
each of its steps runs in its own container of the project's image. The run config (the test
writes it) names the image, the host network, the shared folder mounted at the same path, and
the instance's Postgres variables.
"""

import dagster as dg
from dagster_docker import docker_executor

from songexplorer_dagster.defs.model.jobs import train_model_job
from songexplorer_dagster.definitions import defs as project_defs

train_in_containers_job = dg.define_asset_job(
    name="train_in_containers_job",
    selection=train_model_job.selection,
    executor_def=docker_executor,
    description="train_model_job, one container per step.",
)

defs = dg.Definitions.merge(project_defs, dg.Definitions(jobs=[train_in_containers_job]))
