"""A wheel built from the tree is complete: installed into a new virtualenv that cannot see the
source tree, ``songexplorer init`` and ``songexplorer demo`` run, the Dagster definitions load,
and ``dagster asset materialize`` of ``recordings,detections`` for one partition writes its files.

Installing every dependency afresh takes far longer than a test may (TensorFlow, Dagster,
MLflow...), so the new venv gets the wheel alone (``--no-deps``) and borrows the dependencies
from the test's own environment through a ``.pth`` line naming its site-packages. Python does not
read the ``.pth`` files inside a folder added that way, so this tree's editable install (a
``.pth`` finder in that site-packages) stays inactive; every command runs from a temporary folder
outside the tree, and the test checks that each of our packages is imported from the new venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("songexplorer_core", "songexplorer_cli", "songexplorer_annotator", "songexplorer_dagster")
#: What the wheel is built from: the tree as git would ship it, less the test suite and docs.
SKIP = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "tests", "docs",
                              "benchmarks", "test-artifacts", "songexplorer-project", ".tmp_dagster_home_*", ".cache")


def run(command, cwd, env):
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_the_wheel_alone_runs_init_demo_and_loads_the_dagster_definitions(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=SKIP, symlinks=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DAGSTER_HOME", "SONGEXPLORER_PROJECT")}
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(tmp_path / "dist"), str(source)], tmp_path, env)
    (wheel,) = (tmp_path / "dist").glob("songexplorer_dagster-*.whl")

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        tmp_path, env)
    purelib = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       tmp_path, env).strip())
    (purelib / "zz-borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "work"
    work.mkdir()
    where = run([str(python), "-c", "import importlib\n"
                 f"for name in {PACKAGES!r}: print(importlib.import_module(name).__file__)"], work, env)
    assert all(Path(line).is_relative_to(venv) for line in where.split()), where

    songexplorer = str(venv / "bin" / "songexplorer")  # the wheel's console script
    assert "project" in run([songexplorer, "init", "fresh"], work, env)
    assert (work / "fresh" / "dagster_home" / "dagster.yaml").read_text().startswith("# Dagster instance settings")
    assert "2 recording(s)" in run([songexplorer, "demo", "demo", "--recordings", "2", "--duration", "5"], work, env)

    env |= {"SONGEXPLORER_PROJECT": str(work / "demo"), "DAGSTER_HOME": str(work / "demo" / "dagster_home")}
    dagster = [str(python), "-m", "dagster"]
    out = run([*dagster, "definitions", "validate", "-m", "songexplorer_dagster.definitions"], work, env)
    assert "passed validation" in out, out
    listed = run([*dagster, "asset", "list", "-m", "songexplorer_dagster.definitions"], work, env).split()
    assert {"recordings", "detections", "trained_model", "probabilities", "ethograms"} <= set(listed), listed
    assert run([songexplorer, "register"], work, env).split() == ["demo-1.wav", "demo-2.wav"]

    # One partition of the graph, materialised by the installed package into the project.
    run([*dagster, "asset", "materialize", "-m", "songexplorer_dagster.definitions",
         "--select", "recordings,detections", "--partition", "demo-1.wav"], work, env)
    runs = run([str(python), "-c", "import dagster as dg\nwith dg.DagsterInstance.get() as instance:\n"
                "    print(*[(r.status.value, r.tags.get('dagster/partition')) for r in instance.get_runs()])"],
               work, env)
    assert runs.strip() == "('SUCCESS', 'demo-1.wav')", runs  # recorded in the project's own instance
    assert (work / "demo" / "outputs" / "recordings" / "demo-1.wav.json").is_file()
    assert (work / "demo" / "outputs" / "detections" / "demo-1.wav.parquet").is_file()
    assert (work / "demo" / "outputs" / "detected" / "demo-1.wav-detected.csv").is_file()
    assert not (work / "demo" / "outputs" / "detections" / "demo-2.wav.parquet").exists()
