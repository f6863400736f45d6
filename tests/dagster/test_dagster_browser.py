"""A recording's Dagster page in a real browser: headless Debian Chromium (Playwright) against
``dagster-webserver`` on 127.0.0.1, over a demo project whose recording was classified for real
(a tiny model). The page must show the recording's ethogram in place (not behind "[Show
Markdown]"), served by ``songexplorer plots``, and link to the annotator at the first predicted
sound. Saves ``test-artifacts/screenshots/dagster-recording-ethogram.png``.

Needs ``/usr/bin/chromium`` (Debian's ``chromium`` package); skipped without it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

CHROMIUM = Path(os.environ.get("SONGEXPLORER_CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
KEY = "demo-1.wav"
TINY_TRAINING = {"nsteps": 4, "validate_period": 2, "validate_percentage": 30.0, "mini_batch": 8}

pytestmark = [
    pytest.mark.browser, pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Debian chromium at {CHROMIUM} (apt-get install -y "
                                                     "chromium); Playwright's browser download is not used"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def classified(tmp_path, monkeypatch):
    """A demo project (3 recordings of 20 s) in its own Dagster instance, a tiny model trained and
    demo-1 classified, with ``songexplorer plots`` serving its outputs."""
    from songexplorer_cli.plots import make_server
    from songexplorer_core.demo import make_demo_project
    from songexplorer_core.project import init_project
    from songexplorer_dagster.defs.annotations.assets import annotations, ground_truth
    from songexplorer_dagster.defs.model.assets import trained_model
    from songexplorer_dagster.defs.predictions.assets import ethograms, probabilities
    from songexplorer_dagster.defs.recordings.assets import recordings
    from songexplorer_dagster.defs.resources import (
        ComputeResource, DenseSetResource, EthogramResource, MlflowResource, ProjectResource,
    )
    from songexplorer_dagster.partitions import recordings_partitions

    project = make_demo_project(tmp_path / "demo", nrecordings=3, duration_s=20, annotations_per_label=6)
    init_project(project.root)  # its dagster_home/ with the instance settings
    plots = make_server(project.outputs, "127.0.0.1", 0)
    threading.Thread(target=plots.serve_forever, daemon=True).start()
    plots_url = f"http://127.0.0.1:{plots.server_address[1]}"
    monkeypatch.setenv("SONGEXPLORER_PLOTS_URL", plots_url)
    for name in ("ANNOTATOR_PORT", "SONGEXPLORER_ANNOTATOR_URL"):
        monkeypatch.delenv(name, raising=False)
    resources = {"project": ProjectResource(root=str(project.root)), "mlflow": MlflowResource(),
                 "compute": ComputeResource(device="cpu"), "dense_set": DenseSetResource(dense_annotators=[]),
                 "ethogram": EthogramResource()}
    keys = ["demo-1.wav", "demo-2.wav", "demo-3.wav"]
    instance = dg.DagsterInstance.from_config(str(project.dagster_home))
    try:
        instance.add_dynamic_partitions(recordings_partitions.name, keys)
        for key in keys:
            assert dg.materialize([recordings, annotations], partition_key=key, instance=instance,
                                  resources=resources).success
        assert dg.materialize([ground_truth], instance=instance, resources=resources).success
        assert dg.materialize([trained_model], instance=instance, resources=resources,
                              run_config={"ops": {"trained_model": {"config": TINY_TRAINING}}}).success
        result = dg.materialize([probabilities, ethograms], partition_key=KEY, instance=instance,
                                resources=resources)
        assert result.success
    finally:
        instance.dispose()
    metadata = result.asset_materializations_for_node("ethograms")[0].metadata
    yield project, plots_url, metadata
    plots.shutdown()
    plots.server_close()


@contextlib.contextmanager
def serve_dagster(project, plots_url: str):
    """``dagster-webserver`` for ``project``'s instance on a free port of 127.0.0.1, its plots by
    ``plots_url``; yields the UI's address, stopped (its process group) on exit."""
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(project.dagster_home), "SONGEXPLORER_PROJECT": str(project.root),
           "SONGEXPLORER_PLOTS_URL": plots_url}
    log_path = project.root / "webserver.log"
    log = open(log_path, "w")
    process = subprocess.Popen([sys.executable, "-m", "dagster_webserver", "-w", str(ROOT / "workspace.yaml"),
                                "-h", "127.0.0.1", "-p", str(port)], cwd=project.dagster_home, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
                    assert response.status == 200
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"dagster-webserver did not start: {log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


@pytest.fixture
def webserver(classified):
    project, plots_url, _ = classified
    with serve_dagster(project, plots_url) as url:
        yield url


def test_a_recordings_dagster_page_shows_its_ethogram_in_place_and_links_to_the_annotator(classified, webserver):
    from playwright import sync_api as playwright

    project, plots_url, metadata = classified
    ethogram = metadata["ethogram"].value
    assert len(ethogram) < 1000 and f"]({plots_url}/ethograms/" in ethogram  # shown in place, by address
    link = metadata["open_in_annotator"].value
    assert link.startswith("http://127.0.0.1:5006/annotate?recording=demo-1.wav&start=")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1300})
        try:
            page.goto(f"{webserver}/assets/ethograms?view=partitions&partition={KEY}", timeout=120_000)
            try:  # Dagster's first-visit "Join the Dagster community" dialog
                page.get_by_role("button", name="Skip").click(timeout=15_000)
            except playwright.TimeoutError:
                pass
            page.wait_for_function(
                "() => [...document.images].some(i => i.src.includes('/ethograms/') && i.complete"
                " && i.naturalWidth > 0)", timeout=120_000)
            image = page.locator("img[src*='/ethograms/']").first
            image.scroll_into_view_if_needed()
            box, column = image.bounding_box(), page.viewport_size
            assert 300 < box["width"] and box["x"] + box["width"] <= column["width"]  # the whole plot, in place
            assert page.locator(f"a[href='{link}']").count() >= 1  # the link to the annotator
            page.screenshot(path=str(SCREENSHOTS / "dagster-recording-ethogram.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(SCREENSHOTS / "dagster-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
