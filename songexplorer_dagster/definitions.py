"""The Dagster code location: every definition found in ``songexplorer_dagster/defs/``.

``defs/`` is Dagster's ``dg`` project layout (``[tool.dg]`` in pyproject.toml): one folder per
asset group (``recordings``, ``detection``, ``annotations``, ``model``, ``predictions``,
``review``) holding its assets, checks, jobs, sensors and schedules, ``defs/resources.py`` binding
every resource, and ``defs/automation.py`` the automation sensor. ``dg check defs`` validates it.

Load it with ``dagster dev -w workspace.yaml`` (the repo-root workspace names this module), or
``dagster asset materialize -m songexplorer_dagster.definitions --select detections --partition KEY``.
Which project it works on is ``$SONGEXPLORER_PROJECT`` (default ``./songexplorer-project``); run it
with ``DAGSTER_HOME=$SONGEXPLORER_PROJECT/dagster_home`` so runs and sensor state stay with the data.

Where steps run is ``$SONGEXPLORER_EXECUTOR`` (``songexplorer_dagster.compute_resources``): unset,
every job runs here as before; ``k8s``, every job and every run automation or a sensor launches
uses dagster-k8s's ``k8s_job_executor`` (one pod per step, with the step's CPU, memory and GPUs).

Importing this module must stay fast (it is imported by every run and code-server process):
heavy libraries (scipy's detector, TensorFlow, UMAP, Panel) are imported inside the steps that use
them, never at module level.
"""

from pathlib import Path

import dagster as dg

from songexplorer_dagster.compute_resources import with_step_executor

defs = with_step_executor(dg.load_from_defs_folder(path_within_project=Path(__file__).parent))
