"""Session fixtures of the service and container tiers: one PostgreSQL, one MLflow server.

Each is started once per session, binds 127.0.0.1 and is stopped by its pid in a finalizer.
"""

import shutil
import tempfile
from pathlib import Path

import pytest

from deploy_test_helpers import MlflowServer, Postgres


@pytest.fixture(scope="session")
def postgres(request):
    server = Postgres.start()
    request.addfinalizer(server.stop)
    return server


@pytest.fixture(scope="session")
def mlflow_server(request, postgres):
    folder = Path(tempfile.mkdtemp(prefix="songexplorer-mlflow-"))
    request.addfinalizer(lambda: shutil.rmtree(folder, ignore_errors=True))
    server = MlflowServer.start(postgres, folder)
    request.addfinalizer(server.stop)
    return server
