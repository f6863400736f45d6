"""Fixtures for the Dagster layer: a temporary project and a temporary Dagster instance."""

import dagster as dg
import pytest

from dagster_test_helpers import RATE, project_instance_overrides
from songexplorer_core.project import ProjectSettings, init_project
from songexplorer_dagster.defs.resources import ProjectResource


@pytest.fixture
def project(tmp_path):
    """An empty mono 2500 Hz project (groundtruth/, outputs/, dagster_home/, songexplorer.toml)."""
    return init_project(tmp_path / "project", settings=ProjectSettings(audio_tic_rate=RATE, audio_nchannels=1))


@pytest.fixture
def project_resource(project):
    return ProjectResource(root=str(project.root))


@pytest.fixture
def instance(tmp_path):
    """A Dagster instance with SQLite storage in a temporary folder (one per test), with a
    project's event log storage."""
    home = tmp_path / "instance"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home), overrides=project_instance_overrides(home)) as instance:
        yield instance
