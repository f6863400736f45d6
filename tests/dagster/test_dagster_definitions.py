"""The code location: it loads, it is wired as documented, it imports quickly, and the
`dagster` command line can validate it and materialise a partition of a real project folder."""

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from dagster_test_helpers import write_synth_song
from songexplorer_core.annotations import read_intervals_csv
from songexplorer_core.detect import DetectParams, detect_recording
from songexplorer_core.project import PROJECT_ENV
from songexplorer_dagster.definitions import defs
from songexplorer_dagster.partitions import recordings_partitions
from songexplorer_dagster.defs.resources import ProjectResource

REPO = Path(__file__).resolve().parents[2]


def test_definitions_load_and_are_wired_as_documented():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert {key.to_user_string() for key in graph.get_all_asset_keys()} == {
        "recordings", "detections", "annotations", "ground_truth", "trained_model", "accuracy_report",
        "probabilities", "ethograms", "misses", "mistakes", "activations", "cluster", "summaries", "congruence_report",
        "model_study"}
    per_recording = {"recordings", "detections", "annotations", "probabilities", "ethograms", "misses"}
    for key in per_recording:
        assert defs.resolve_assets_def(key).partitions_def == recordings_partitions
    training = graph.get(dg.AssetKey("trained_model"))
    assert training.pools == {"gpu"}
    # Kubernetes requests come from the executor's per-step config (compute_resources), not op tags
    assert "dagster-k8s/config" not in defs.resolve_assets_def("trained_model").op.tags
    detections = defs.resolve_assets_def("detections")
    assert detections.partitions_def == recordings_partitions
    assert {dep.to_user_string() for dep in graph.get(dg.AssetKey("detections")).parent_keys} == {"recordings"}
    assert {check.name for check in detections.check_keys} == {"intervals_within_recording", "start_not_after_stop"}
    for key in graph.get_all_asset_keys():
        spec = graph.get(key)
        assert spec.group_name and spec.kinds and spec.description

    sensor = defs.resolve_sensor_def("new_recordings_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds <= 30
    assert sensor.job_name == "detect_recordings_job"
    job = defs.resolve_job_def("detect_recordings_job")
    assert job.partitions_def == recordings_partitions
    assert {key.to_user_string() for key in job.asset_layer.selected_asset_keys} == {"recordings", "detections"}


def test_project_resource_defaults_to_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(PROJECT_ENV, str(tmp_path / "lab"))
    assert ProjectResource().project().root == (tmp_path / "lab").resolve()
    monkeypatch.delenv(PROJECT_ENV)
    monkeypatch.chdir(tmp_path)
    assert ProjectResource().project().root == tmp_path.resolve() / "songexplorer-project"


def _run(args, env, timeout):
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_code_location_imports_without_heavy_libraries():
    code = (
        "import sys, time; t = time.perf_counter(); import songexplorer_dagster.definitions; "
        "print(time.perf_counter() - t); "
        "print(','.join(m for m in ('tensorflow', 'keras', 'umap', 'panel', 'bokeh', 'mlflow') if m in sys.modules))"
    )
    done = _run([sys.executable, "-c", code], dict(os.environ), timeout=60)
    assert done.returncode == 0, done.stderr
    seconds, heavy = done.stdout.splitlines()[-2:]
    assert heavy == "", f"songexplorer_dagster imported {heavy} at module level"
    assert float(seconds) < 10  # ~1.5 s here; generous for a loaded CI machine


@pytest.mark.slow  # two `dagster` processes, ~10-25 s here; still part of the default suite
@pytest.mark.timeout(180)
def test_dagster_cli_validates_the_workspace_and_materialises_a_partition(project, monkeypatch):
    """The documented commands, against a temporary project: `dagster definitions validate -w
    workspace.yaml` and `dagster asset materialize ... --partition KEY`."""
    path = write_synth_song(project.groundtruth, "round1/song.wav", seed=11, duration_s=3.0)
    key = "round1%2Fsong.wav"
    env = {**os.environ, PROJECT_ENV: str(project.root), "DAGSTER_HOME": str(project.dagster_home)}
    monkeypatch.setenv("DAGSTER_HOME", str(project.dagster_home))  # the project's own instance
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(recordings_partitions.name, [key])

    start = time.perf_counter()
    validated = _run([sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"], env, 120)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "passed validation" in validated.stdout + validated.stderr

    materialized = _run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "songexplorer_dagster.definitions",
         "--select", "recordings,detections", "--partition", key],
        env,
        120,
    )
    assert materialized.returncode == 0, materialized.stdout + materialized.stderr
    elapsed = time.perf_counter() - start  # ~20 s on an idle 2-core machine; pytest-timeout guards
    print(f"dagster definitions validate + asset materialize: {elapsed:.1f} s")

    expected = detect_recording(path, DetectParams(), quirks=True)
    parquet = pd.read_parquet(project.outputs / "detections" / f"{key}.parquet")
    csv = read_intervals_csv(project.outputs / "detected" / "round1" / "song.wav-detected.csv")
    assert parquet[["start", "stop"]].values.tolist() == expected[["start", "stop"]].values.tolist()
    assert csv["label"].tolist() == expected["label"].tolist()
    with dg.DagsterInstance.get() as instance:  # the run was recorded in the project's instance
        event = instance.get_latest_materialization_event(dg.AssetKey("detections"))
    assert event is not None and event.asset_materialization.partition == key


def test_automation_is_on_from_the_start():
    for name in ("new_recordings_sensor", "annotation_files_sensor", "automation_sensor"):
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
    assert defs.resolve_schedule_def("nightly_retrain").default_status == dg.DefaultScheduleStatus.RUNNING


@pytest.mark.slow  # a `dg` process that loads the code location, ~15 s here
@pytest.mark.timeout(180)
def test_dg_check_defs_passes():
    """The project is a `dg` project ([tool.dg] in pyproject.toml, definitions in
    songexplorer_dagster/defs/) and `dg check defs` loads every definition."""
    command = [sys.executable, "-c", "import sys; from dagster_dg_cli.cli import main; sys.argv[0] = 'dg'; main()"]
    done = _run([*command, "check", "defs"], dict(os.environ), timeout=170)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All definitions loaded successfully" in done.stdout + done.stderr


def test_each_asset_shows_its_own_description():
    graph = defs.resolve_asset_graph()
    descriptions = {key.to_user_string(): graph.get(key).description for key in graph.get_all_asset_keys()}
    assert all(descriptions.values())
    assert len(set(descriptions.values())) == len(descriptions), "two assets share a description"


def test_asset_modules_import_no_other_asset_module():
    """Asset modules are leaves: dependencies are named by asset key, library code lives in core."""
    defs_dir = REPO / "songexplorer_dagster" / "defs"
    for path in defs_dir.glob("*/*.py"):
        text = path.read_text()
        imported = {line.split()[1] for line in text.splitlines() if line.startswith("from songexplorer_dagster.defs.")}
        group = f"songexplorer_dagster.defs.{path.parent.name}."
        foreign = {m for m in imported if not m.startswith(group) and m != "songexplorer_dagster.defs.resources"}
        assert not foreign, f"{path.relative_to(REPO)} imports {sorted(foreign)}"


def test_the_project_names_the_annotators_cluster_file(project):
    from songexplorer_core.cluster import cluster_path

    assert project.cluster_path == cluster_path(project.outputs)
