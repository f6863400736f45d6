"""A model study's Dagster page in a real browser: ``model_study`` materialised with tiny
Launchpad config (as ``test_dagster_studies.py`` does) into a demo project's own instance, with
``songexplorer plots`` serving its outputs, then headless Debian Chromium (Playwright) on
``dagster-webserver`` over it (as ``test_dagster_browser.py`` starts it). The asset page must show
the materialization's metadata: the number of trainings, the per-label summary table and the
comparison plots in place (by address, not behind "[Show Markdown]"). Saves
``test-artifacts/screenshots/dagster-model-study.png``.

Needs ``/usr/bin/chromium`` (Debian's ``chromium`` package); skipped without it.
"""

from __future__ import annotations

import threading

import dagster as dg
import pytest

from test_dagster_browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, serve_dagster

TINY = {"recipe": "tutorial", "nsteps": 10, "validate_period": 10, "mini_batch": 4, "workers": 1}

pytestmark = [
    pytest.mark.browser, pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Debian chromium at {CHROMIUM} (apt-get install -y "
                                                     "chromium); Playwright's browser download is not used"),
]


@pytest.fixture
def studied(tmp_path, monkeypatch):
    """A demo project (2 recordings of 30 s) in its own Dagster instance, a 2-fold x-validation
    study materialised by ``model_study``, ``songexplorer plots`` serving its outputs; yields the
    project, the plots server's address and the materialization's metadata."""
    from songexplorer_cli.plots import make_server
    from songexplorer_core.demo import make_demo_project
    from songexplorer_core.project import init_project
    from songexplorer_dagster.defs.annotations.assets import annotations, ground_truth
    from songexplorer_dagster.defs.model.study_assets import model_study
    from songexplorer_dagster.defs.recordings.assets import recordings
    from songexplorer_dagster.defs.resources import (
        ComputeResource, DenseSetResource, MlflowResource, ProjectResource,
    )
    from songexplorer_dagster.partitions import recordings_partitions

    project = make_demo_project(tmp_path / "demo", nrecordings=2, duration_s=30, annotations_per_label=12)
    init_project(project.root)  # its dagster_home/ with the instance settings
    plots = make_server(project.outputs, "127.0.0.1", 0)
    threading.Thread(target=plots.serve_forever, daemon=True).start()
    plots_url = f"http://127.0.0.1:{plots.server_address[1]}"
    monkeypatch.setenv("SONGEXPLORER_PLOTS_URL", plots_url)
    resources = {"project": ProjectResource(root=str(project.root)), "mlflow": MlflowResource(),
                 "compute": ComputeResource(device="cpu"), "dense_set": DenseSetResource(dense_annotators=[])}
    keys = ["demo-1.wav", "demo-2.wav"]
    instance = dg.DagsterInstance.from_config(str(project.dagster_home))
    try:
        instance.add_dynamic_partitions(recordings_partitions.name, keys)
        for key in keys:
            assert dg.materialize([recordings, annotations], partition_key=key, instance=instance,
                                  resources=resources).success
        assert dg.materialize([ground_truth], instance=instance, resources=resources).success
        config = {**TINY, "kind": "xvalidate", "folds": 2, "name": "two-folds"}
        result = dg.materialize([model_study], instance=instance, resources=resources,
                                run_config={"ops": {"model_study": {"config": config}}})
        assert result.success
    finally:
        instance.dispose()
    yield project, plots_url, result.asset_materializations_for_node("model_study")[0].metadata
    plots.shutdown()
    plots.server_close()


@pytest.fixture
def webserver(studied):
    project, plots_url, _ = studied
    with serve_dagster(project, plots_url) as url:
        yield url


def test_a_model_studys_dagster_page_shows_its_summary_and_plots(studied, webserver):
    from playwright import sync_api as playwright

    _, plots_url, metadata = studied
    assert metadata["trainings"].value == 2 and "f1_mean" in metadata["per_label"].value
    for key in ("compare-f1", "compare-curves", "compare-confusion"):  # shown in place, by address
        assert f"]({plots_url}/studies/two-folds/{key}.png" in metadata[key].value, metadata[key].value[:200]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1300})
        try:
            page.goto(f"{webserver}/assets/model_study", timeout=120_000)
            try:  # Dagster's first-visit "Join the Dagster community" dialog
                page.get_by_role("button", name="Skip").click(timeout=15_000)
            except playwright.TimeoutError:
                pass
            for key in ("trainings", "per_label", "per_training", "mlflow_run"):
                page.get_by_text(key, exact=True).first.wait_for(timeout=120_000)
            page.get_by_text("f1_mean").first.wait_for(timeout=60_000)  # the summary table, in place
            page.wait_for_function(
                "() => ['compare-f1', 'compare-curves', 'compare-confusion'].every(k => [...document.images]"
                ".some(i => i.src.includes('/studies/two-folds/' + k) && i.complete && i.naturalWidth > 0))",
                timeout=120_000)  # the three comparison plots, drawn in place
            assert page.get_by_text("[Show Markdown]").count() == 0
            page.screenshot(path=str(SCREENSHOTS / "dagster-model-study.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(SCREENSHOTS / "dagster-study-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
