"""Which MLflow store the Dagster resource uses: the project's own SQLite store by default,
``$MLFLOW_TRACKING_URI`` when the process was started with it (a pod on a cluster), and never
a store another project's run left behind in this process."""

import os
import subprocess
import sys

import mlflow

from songexplorer_dagster.defs.resources import MlflowResource


def test_a_store_set_by_an_earlier_training_does_not_leak_into_the_next_resource(tmp_path):
    before = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        # what songexplorer_core.tracking does for every project it logs to
        mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'other-project.db'}")
        resource = MlflowResource()
        assert resource.tracking_uri is None
        assert resource.tracking(tmp_path / "project").tracking_uri.endswith("project/mlflow/mlflow.db")
    finally:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before
        mlflow.set_tracking_uri(None)


def test_a_process_started_with_mlflow_tracking_uri_logs_there():
    code = ("from songexplorer_dagster.defs.resources import MlflowResource; "
            "print(MlflowResource().tracking('/lab/project').tracking_uri)")
    env = {**os.environ, "MLFLOW_TRACKING_URI": "http://songexplorer-mlflow:5000"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "http://songexplorer-mlflow:5000"
