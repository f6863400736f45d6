"""A model study in MLflow's compare view, in a real browser: a tiny 2 x 2 sweep (the synthetic
ground truth and settings of ``test_studies.py``) logged to a temporary SQLite store, ``mlflow
server`` on 127.0.0.1 (as ``test_mlflow_browser.py`` starts it), headless Debian Chromium driven
by Playwright on MLflow's compare-runs page of the four child runs. Saves
``test-artifacts/screenshots/mlflow-study-compare.png``.

Needs ``/usr/bin/chromium`` (Debian's ``chromium`` package); skipped without it.
"""

from __future__ import annotations

import json
import time
import urllib.parse

import pytest

from songexplorer_core import studies as S
from songexplorer_core.tracking import TrackingConfig, child_runs
from test_mlflow_browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, free_port, serve_mlflow
from test_studies import base, make_truth

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"needs Debian chromium at {CHROMIUM} (apt-get install -y chromium); "
                              "Playwright's browser download is not used"),
]


@pytest.fixture
def study_server(tmp_path):
    """A 2 x 2 sweep (learning rate x dropout) logged to a fresh store, ``mlflow server`` over it on
    a free port; yields ``(config, study result)``, the server stopped (its process group) after."""
    port = free_port()
    config = TrackingConfig.for_project_dir(tmp_path / "mlflow", ui_url=f"http://127.0.0.1:{port}")
    truth = make_truth(tmp_path / "truth")
    trials = S.sweep(base(), {"learning_rate": [0.001, 0.01], "model.dropout_rate": [0.2, 0.5]})
    result = S.run_study(truth, trials, tmp_path / "study", kind="sweep", base=base(), tracking=config, workers=1)
    with serve_mlflow(config, tmp_path):
        yield config, result


def test_mlflow_compares_the_four_trainings_of_a_sweep_side_by_side(study_server):
    playwright = pytest.importorskip("playwright.sync_api")
    config, result = study_server
    children = child_runs(config, result.parent_run_id)
    assert len(children) == 4
    experiment_id = children["experiment_id"].iloc[0]
    query = urllib.parse.urlencode({"runs": json.dumps(list(children["run_id"])),
                                    "experiments": json.dumps([experiment_id])})
    url = f"{config.ui_url}/#/compare-runs?{query}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1500})
        page.set_default_timeout(60_000)
        try:
            page.goto(url)
            page.get_by_text("Comparing 4 Runs", exact=False).first.wait_for()
            for name in children["tags.mlflow.runName"]:
                page.get_by_text(name, exact=True).first.wait_for()
            try:  # MLflow 3's "MLflow Assistant" side panel, open on a first visit, hides the runs' columns
                page.get_by_role("button", name="Close", exact=True).first.click(timeout=5_000)
                page.get_by_text("MLflow Assistant").first.wait_for(state="hidden", timeout=5_000)
            except playwright.TimeoutError:
                pass
            text = page.locator("body").inner_text()
            assert "learning_rate" in text and "model.dropout_rate" in text
            time.sleep(2)  # the parallel-coordinates plot draws after the tables
            page.screenshot(path=str(SCREENSHOTS / "mlflow-study-compare.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(SCREENSHOTS / "mlflow-study-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
