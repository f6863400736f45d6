"""The example plug-in package (tests/plugins/example_plugin/), installed for one test: its
package and a dist-info made from its own pyproject.toml's entry points are put in a temporary
folder on ``sys.path`` (what ``pip install`` leaves in site-packages), and taken away after."""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from pathlib import Path

import pytest

from songexplorer_core import plugins
from songexplorer_core.audio_readers import AUDIO_ENV, AudioSettings, configure_audio, forget_readers

EXAMPLE = Path(__file__).parent / "example_plugin"


def install(site: Path, source: Path) -> dict:
    """Install the package at ``source`` (a folder with pyproject.toml and its module) into
    ``site``: the module copied, ``<name>-<version>.dist-info`` with METADATA and entry_points.txt."""
    project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    for module in source.iterdir():
        if module.is_dir() and (module / "__init__.py").exists():
            shutil.copytree(module, site / module.name, ignore=shutil.ignore_patterns("__pycache__"))
    dist = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = []
    for group, entries in project.get("entry-points", {}).items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in entries.items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return project


def _forget():
    plugins.forget()
    forget_readers()
    configure_audio(AudioSettings())
    for name in [m for m in sys.modules if m.startswith(("songexplorer_example_plugin", "songexplorer_broken"))]:
        del sys.modules[name]


@pytest.fixture
def example_plugin(tmp_path, monkeypatch):
    """The example package installed; yields the folder on ``sys.path`` (``PYTHONPATH`` is set too,
    for processes the test starts)."""
    site = tmp_path / "site"
    site.mkdir()
    install(site, EXAMPLE)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv(AUDIO_ENV, AudioSettings().to_json())  # restored (removed) after the test
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    _forget()
    yield site
    _forget()


@pytest.fixture
def broken_plugin(example_plugin):
    """Besides the example package, a package whose detector fails to import."""
    source = example_plugin.parent / "broken-src"
    (source / "songexplorer_broken_plugin").mkdir(parents=True)
    (source / "songexplorer_broken_plugin" / "__init__.py").write_text(
        "raise ImportError('this lab forgot a dependency: no module named labtools')\n")
    (source / "pyproject.toml").write_text(
        '[project]\nname = "songexplorer-broken-plugin"\nversion = "0.0.1"\n'
        '[project.entry-points."songexplorer.detectors"]\nbroken = "songexplorer_broken_plugin:detector"\n')
    install(example_plugin, source)
    _forget()
    return example_plugin


@pytest.fixture
def instance(tmp_path):
    """A Dagster instance with SQLite storage in a temporary folder (one per test)."""
    import dagster as dg

    home = tmp_path / "instance"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield instance
