"""The project's MLflow experiment in a real browser: headless Debian Chromium driven by Playwright
against ``mlflow server`` on a temporary SQLite store holding two logged trainings.

The link the project gives (``tracking.experiment_url``) must open the experiment on its training
runs (MLflow 3's UI otherwise opens experiments on its GenAI pages), the runs named by what they
are; a run's model-metrics charts start with the F1 section. Screenshots of both pages are saved
under ``test-artifacts/screenshots/``.

Needs ``/usr/bin/chromium`` (Debian's ``chromium`` package; Playwright's own browser download is
not used); skipped without it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from songexplorer_core.tracking import (
    TrackingConfig, experiment_url, log_metrics_to_run, log_training_run, training_run_name,
)

CHROMIUM = Path(os.environ.get("SONGEXPLORER_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LABELS = ("mel-pulse", "mel-sine")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"needs Debian chromium at {CHROMIUM} (apt-get install -y chromium); "
                              "Playwright's browser download is not used"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_training(config: TrackingConfig, tmp_path: Path, n: int, f1: float) -> str:
    """One training as ``training_run.train_and_log`` logs it (history per step, final metrics per
    label, the model folder), dense scores added as the promotion gate adds them."""
    folder = tmp_path / f"model{n}"
    folder.mkdir()
    (folder / "model.json").write_text('{"labels": ["mel-pulse", "mel-sine"]}')
    steps = list(range(10, 110, 10))
    history = pd.DataFrame({"step": steps, "train_loss": [1 / s for s in steps],
                            "train_accuracy": [1 - 1 / s for s in steps],
                            "validation_loss": [1.2 / s for s in steps],
                            "validation_accuracy": [1 - 1.2 / s for s in steps]})
    metrics = {"validation_f1_macro": f1, "validation_f1": f1, "validation_precision": f1, "validation_recall": f1,
               "best_checkpoint": 100.0, "parameters": 61443.0, "train_seconds": 60.0 * n}
    for label in LABELS:
        metrics |= {f"validation_{m}_{label}": f1 for m in ("f1", "precision", "recall")}
    tracked = log_training_run(
        config, params={"learning_rate": 0.001 * n, "nsteps": 1000}, history=history, metrics=metrics,
        model_dir=folder, run_name=training_run_name(recipe="default", labels=LABELS, when=datetime(2026, 12, 3, 9 + n)),
        description=f"training {n}")
    log_metrics_to_run(config, tracked.run_id, {f"dense_{m}_{label}": f1 - 0.05 for m in ("f1", "precision", "recall")
                                               for label in LABELS})
    return tracked.run_id


@contextlib.contextmanager
def serve_mlflow(config: TrackingConfig, folder):
    """``mlflow server`` for ``config`` on its ``ui_url``'s port of 127.0.0.1, log in ``folder``;
    stopped (its process group) on exit."""
    port = urllib.parse.urlparse(config.ui_url).port
    log_path = folder / "mlflow-server.log"
    log = open(log_path, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", config.tracking_uri, "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{config.ui_url}/health", timeout=2) as response:
                    assert response.status == 200
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not start: {log_path.read_text()}")
                time.sleep(0.5)
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


@pytest.fixture
def mlflow_server(tmp_path):
    """``mlflow server`` on a free port of 127.0.0.1 over a store with two trainings; yields
    ``(config, run id of the second)`` with ``config.ui_url`` the server, stopped (its process group) after."""
    port = free_port()
    config = TrackingConfig.for_project_dir(tmp_path / "mlflow", ui_url=f"http://127.0.0.1:{port}")
    log_training(config, tmp_path, 1, 0.80)
    second = log_training(config, tmp_path, 2, 0.95)
    with serve_mlflow(config, tmp_path):
        yield config, second


def test_the_experiment_link_opens_on_the_training_runs_and_f1_charts_come_first(mlflow_server):
    playwright = pytest.importorskip("playwright.sync_api")
    config, run_id = mlflow_server
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 800})  # a fresh profile: MLflow's defaults
        page.set_default_timeout(60_000)
        try:
            page.goto(experiment_url(config))
            page.get_by_text("v2 · default recipe · mel-pulse+mel-sine · 2026-12-03 11:00").wait_for()
            page.get_by_text("v1 · default recipe · mel-pulse+mel-sine · 2026-12-03 10:00").wait_for()
            page.get_by_text("2 matching runs").wait_for()
            assert "/runs" in page.url and "workflowType=machine_learning" in page.url, page.url
            assert page.get_by_role("heading", name="Runs").count() >= 1
            assert page.get_by_text("Start tracing your LLM application").count() == 0
            page.screenshot(path=str(SCREENSHOTS / "mlflow-experiment-training-runs.png"))

            page.goto(config.run_url(page.url.split("/experiments/")[1].split("/")[0], run_id)
                      .replace("?", "/model-metrics?"))
            page.get_by_text("1 F1", exact=True).first.wait_for()
            time.sleep(2)  # the charts draw after their section headers
            text = page.locator("body").inner_text()
            positions = [text.find(section) for section in ("1 F1", "2 loss", "3 accuracy", "4 precision",
                                                            "5 recall")]
            assert -1 not in positions and positions == sorted(positions), positions
            page.screenshot(path=str(SCREENSHOTS / "mlflow-run-model-metrics.png"))
        finally:
            browser.close()
