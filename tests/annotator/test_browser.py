"""The annotator in a real browser: headless Debian Chromium driven by Playwright against
``songexplorer annotate`` served on 127.0.0.1.

It names the annotator, selects a recording, annotates a detected sound with a double-click, drags
a range, double-clicks empty space for a point, removes an annotation, undoes once, and checks the
CSV on disk after each save; it plays the window (the playhead moves), fills the cluster view's
snippet grid, and reloads the page (the name is not asked again). It saves screenshots of the
recording view and the cluster view under ``test-artifacts/screenshots/``.

A second test opens the annotator as a user does from the Dagster UI: the printed address (with
its token) first, where it opens the recording with the most to review, then a link without the
token to another recording at a given place (``annotator-from-link.png``); an error in a callback
shows one line on the page, and no traceback reaches the browser.

Needs ``/usr/bin/chromium`` (Debian's ``chromium`` package; Playwright's own browser download is
not used); skipped without it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from annotator_test_helpers import start_annotator, stop_annotator

from songexplorer_core.annotation_session import AnnotationSession

CHROMIUM = Path(os.environ.get("SONGEXPLORER_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
KEY = "demo-1.wav"
RATE = 2500

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"needs Debian chromium at {CHROMIUM} (apt-get install -y chromium); "
                              "Playwright's browser download is not used"),
]

# JavaScript: screen position of data point (x, y) in the Bokeh figure named `name`, and the data
# x of a screen position; Panel renders into shadow roots, so the view tree is walked.
FIND_VIEW = """
(name) => {
  const doc = Bokeh.documents[Bokeh.documents.length - 1];
  const model = doc.get_model_by_name(name);
  const walk = (view) => {
    if (view.model === model) return view;
    for (const child of (view.child_views || [])) { const found = walk(child); if (found) return found; }
    return null;
  };
  for (const root of Bokeh.index.roots) { const view = walk(root); if (view) return view; }
  return null;
}
"""
TO_SCREEN = "([name, x, y]) => { const v = (" + FIND_VIEW + """)(name);
  const r = v.el.getBoundingClientRect();
  return [Math.round(r.left + v.frame.x_scale.compute(x)), Math.round(r.top + v.frame.y_scale.compute(y))]; }"""
TO_DATA_X = "([name, sx]) => { const v = (" + FIND_VIEW + """)(name);
  const r = v.el.getBoundingClientRect(); return v.frame.x_scale.invert(sx - r.left); }"""


@pytest.fixture
def server(project):
    """``songexplorer annotate`` on a free port of 127.0.0.1; its address with the token."""
    process, url = start_annotator(project, "--autosave", "0")
    yield url
    stop_annotator(process)


def a_detected_sound(project):
    """A loud detected sound of demo-1 (a pulse, up to 150 ms), that no annotation or shorter sound
    overlaps, so that a double-click on it can only mean it; at least 1.5 s from either end."""
    session = AnnotationSession(project.groundtruth, "probe")
    import pandas as pd

    frame = pd.read_parquet(project.outputs / "detections" / f"{KEY}.parquet")
    session.open_recording(KEY, ntics=20 * RATE, other_sounds=frame)
    margin = 40  # tics: more than the double-click proximity at this zoom
    for sound in session.used_sounds(KEY):
        centre = (sound.start + sound.stop) / 2
        if sound.kind != "detected" or sound.label != "time" or not 1.5 * RATE < centre < 18.5 * RATE:
            continue
        if not 5 <= sound.duration_tics <= 0.15 * RATE:
            continue
        if session.sound_under(KEY, centre, proximity=margin) == sound:
            return sound
    raise AssertionError("the demo recording has no isolated loud detected sound")


def rows(path: Path) -> list[str]:
    return sorted(path.read_text().splitlines()) if path.exists() else []


def wait_for(predicate, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_annotate_in_the_browser_and_the_csv_holds_exactly_the_expected_rows(project, server):
    playwright = pytest.importorskip("playwright.sync_api")
    sound = a_detected_sound(project)
    start_s = sound.start / RATE - 0.3  # the view: 1.6 s with the sound in its left quarter
    csv = project.groundtruth / f"{KEY}-annotated-tester.csv"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1420, "height": 1250})
        page.set_default_timeout(20_000)
        try:
            # a parameter naming a file outside groundtruth/ is refused
            page.goto(f"{server}&recording=..%2F..%2Fsongexplorer.toml&start={start_s:.3f}&width=1.6")
            page.get_by_placeholder("your name").fill("tester")
            page.get_by_role("button", name="Start annotating").click()
            page.get_by_role("alert").filter(has_text="is not a recording of this project").wait_for()

            # select the recording
            choices = page.locator("select").first  # each recording with what it has to review
            choices.select_option(label=choices.locator("option", has_text=f"{KEY} · ").first.text_content())
            page.get_by_text(f"of 20.0 s ({RATE} Hz)").wait_for()

            def screen(x, y, figure="waveform"):
                return page.evaluate(TO_SCREEN, [figure, x, y])

            def data_tic(sx, figure="waveform"):
                return int(round(page.evaluate(TO_DATA_X, [figure, sx]) * RATE))

            def save_and_read(expected):
                page.get_by_role("button", name="Save", exact=True).click()
                page.get_by_text("all saved").wait_for()
                return wait_for(lambda: rows(csv) == sorted(expected) and rows(csv), f"{csv.name} to hold {expected}")

            # a new label, typed into the fourth label box (typing selects it)
            page.get_by_placeholder("label 4").fill("song")
            page.get_by_text("label: song").wait_for()

            # double-click the detected sound's box (upper half): annotate its interval
            sx, sy = screen((sound.start + sound.stop + 1) / 2 / RATE, 0.6)
            page.mouse.dblclick(sx, sy)
            detected_row = f"{KEY},{sound.start},{sound.stop},annotated,song"
            page.get_by_text("1 unsaved").wait_for()

            # drag a range in the lower half, right of the sound
            x0, y = screen(sound.stop / RATE + 0.25, -0.5)
            x1, _ = screen(sound.stop / RATE + 0.55, -0.5)
            range_row = f"{KEY},{data_tic(x0)},{data_tic(x1)},annotated,song"
            page.mouse.move(x0, y)
            page.mouse.down()
            for step in range(1, 11):
                page.mouse.move(x0 + (x1 - x0) * step / 10, y)
            page.mouse.up()
            page.get_by_text("2 unsaved").wait_for()

            # double-click empty space in the lower half: a point
            px, py = screen(sound.stop / RATE + 0.8, -0.5)
            page.mouse.dblclick(px, py)
            point_tic = data_tic(px)
            point_row = f"{KEY},{point_tic},{point_tic},annotated,song"
            page.get_by_text("3 unsaved").wait_for()
            save_and_read([detected_row, range_row, point_row])

            # double-click the detected sound's annotation (lower half): remove it
            sx, sy = screen((sound.start + sound.stop + 1) / 2 / RATE, -0.5)
            page.mouse.dblclick(sx, sy)
            page.get_by_text("1 unsaved").wait_for()
            save_and_read([range_row, point_row])

            # undo once (Ctrl+Z): the removed annotation comes back
            page.locator("body").click(position={"x": 1300, "y": 1200})  # focus outside the text boxes
            page.keyboard.press("Control+z")
            page.get_by_text("1 unsaved").wait_for()
            final = save_and_read([detected_row, range_row, point_row])
            assert final == sorted([detected_row, range_row, point_row])
            assert [line.split(",")[4] for line in final] == ["song"] * 3
            page.screenshot(path=str(SCREENSHOTS / "recording-view.png"), full_page=True)

            # playback: the visible window, resampled so that the browser accepts it
            page.get_by_role("button", name="▶ Play").click()
            page.get_by_role("button", name="❚❚ Pause").wait_for()
            audio_ok = wait_for(lambda: page.evaluate(
                """() => { const find = (root) => { for (const el of root.querySelectorAll('*')) {
                     if (el.tagName === 'AUDIO') return el; if (el.shadowRoot) { const a = find(el.shadowRoot); if (a) return a; } }
                     return null; };
                   const a = find(document); return a && a.error === null && a.readyState >= 1 ? a.duration : 0; }"""),
                "the audio element to load the visible window")
            assert audio_ok == pytest.approx(1.6, abs=0.05)
            page.wait_for_function(  # the playhead moves across the window as it plays
                "(start) => { const d = Bokeh.documents[Bokeh.documents.length - 1];"
                " const p = d.get_model_by_name('playhead'); return p.visible && p.location > start + 0.2; }",
                arg=start_s)

            # the cluster view: the scatter of sounds, and the snippets nearest a tapped point
            page.locator(".bk-tab", has_text="Cluster").click()
            page.get_by_text("sounds from cluster.parquet").wait_for()
            import pandas as pd

            table = pd.read_parquet(project.outputs / "cluster" / "cluster.parquet")
            first = table.iloc[0]
            tx, ty = screen(float(first["x"]), float(first["y"]), figure="scatter")
            page.mouse.click(tx, ty)
            page.wait_for_function(
                "() => { const d = Bokeh.documents[Bokeh.documents.length - 1];"
                " const s = d.get_model_by_name('snippets');"
                " return s && s.renderers[0].data_source.get_length() >= 10; }")
            time.sleep(0.5)
            page.screenshot(path=str(SCREENSHOTS / "cluster-view.png"), full_page=True)

            # the name was asked once: this browser remembers it
            page.reload()
            page.get_by_text("annotating as tester").wait_for()
            # the name prompt is replaced in the same update; the browser may lay it out a moment later
            playwright.expect(page.get_by_placeholder("your name")).to_have_count(0, timeout=5000)
        except Exception:
            page.screenshot(path=str(SCREENSHOTS / "failure.png"), full_page=True)
            log = (project.root / "annotate.log").read_text()
            print(f"server log:\n{log[-5000:]}\nCSV: {rows(csv)}\nscreenshot: {SCREENSHOTS / 'failure.png'}")
            raise
        finally:
            browser.close()
    # nothing else was written into the ground truth
    written = sorted(p.name for p in project.groundtruth.iterdir() if p.suffix == ".csv")
    assert written == [f"{KEY}-annotated-seed.csv", f"{KEY}-annotated-tester.csv"]


def test_a_dagster_link_opens_its_recording_at_its_place_and_errors_stay_one_line(project):
    playwright = pytest.importorskip("playwright.sync_api")
    from urllib.parse import urlsplit

    from songexplorer_annotator.cluster_view import DAGSTER_UI_ENV
    from songexplorer_core.annotations import intervals_frame

    # demo-2 has misses (so it is the first to review); no clusters yet
    misses = project.misses_path("demo-2.wav")
    misses.parent.mkdir(parents=True, exist_ok=True)
    intervals_frame(["demo-2.wav"] * 2, [30_000, 12_500], [30_050, 12_550], "missed", "other").to_parquet(misses)
    (project.outputs / "cluster" / "cluster.parquet").unlink()
    os.environ[DAGSTER_UI_ENV] = "http://127.0.0.1:3000"
    process, url = start_annotator(project, "--annotator", "tester", "--autosave", "0")
    base = url.split("?")[0]
    assert urlsplit(url).query.startswith("token=")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    frames = []
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1420, "height": 1000})
        page.set_default_timeout(20_000)
        page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(str(payload))))
        try:
            # the printed address: the recording with the most to review, at its first miss
            page.goto(url)
            page.get_by_text("4.000–8.000 s of 20.0 s").wait_for()  # the miss at 5 s, a quarter in
            assert page.locator("select").first.input_value().startswith("demo-2.wav · 2 misses")
            page.get_by_text("opened demo-2.wav, the first with a miss to review").wait_for()

            # the empty Cluster tab links to the Dagster jobs that fill it
            page.locator(".bk-tab", has_text="Cluster").click()
            page.get_by_text("No clusters yet.").wait_for()
            link = page.locator('a[href="http://127.0.0.1:3000/locations/songexplorer/jobs/examine_errors_job"]')
            assert link.count() == 1 and link.get_attribute("target") == "_blank"

            # a link as the Dagster UI makes it: no token (the cookie carries it), a recording, a place
            page.goto(f"{base}?recording=demo-1.wav&start=7.5&width=2")
            page.get_by_text("7.500–9.500 s of 20.0 s").wait_for()
            assert page.locator("select").first.input_value().startswith(f"{KEY} · ")
            assert "token" not in page.url
            time.sleep(0.5)
            page.screenshot(path=str(SCREENSHOTS / "annotator-from-link.png"), full_page=True)

            # the same link in a browser that never had the token: no session
            other = browser.new_context().new_page()
            response = other.goto(f"{base}?recording=demo-1.wav&start=7.5")
            assert response.status == 403 and "access token" in other.content()
            assert other.evaluate("() => typeof Bokeh") == "undefined"

            # an error in a callback (a choice the widget does not have): one line, no traceback
            page.evaluate("""() => { const d = Bokeh.documents[Bokeh.documents.length - 1];
                for (const m of d.all_models) { if (m.constructor.__name__ === 'RadioButtonGroup') { m.active = 99; } } }""")
            page.get_by_role("alert").filter(has_text="Something went wrong (IndexError").wait_for()
            time.sleep(0.5)
            assert "Traceback" not in page.inner_text("body") and not any("Traceback" in f for f in frames)
        except Exception:
            page.screenshot(path=str(SCREENSHOTS / "failure-link.png"), full_page=True)
            print(f"server log:\n{(project.root / 'annotate.log').read_text()[-5000:]}")
            raise
        finally:
            browser.close()
            stop_annotator(process)
            del os.environ[DAGSTER_UI_ENV]
    log = (project.root / "annotate.log").read_text()
    assert "Traceback" in log and "IndexError" in log  # the details went to the log


def test_label_a_whole_group_of_detected_sounds_in_the_cluster_view(project):
    """Starting from zero: a tap on a sound of the cluster view selects its group, a label typed and
    *Label selection* annotate every sound of it, and the save writes them all (one CSV per recording)."""
    playwright = pytest.importorskip("playwright.sync_api")
    import numpy as np
    import pandas as pd

    from songexplorer_core.annotations import read_intervals_csv

    table = pd.read_parquet(project.outputs / "cluster" / "cluster.parquet")
    grouped = table[table["group"] >= 0]
    xy = table[["x", "y"]].to_numpy()
    # the detected sound farthest from any sound of another group: a tap on it cannot mean another group
    clearance = [np.min(np.hypot(*(xy[table["group"] != row.group] - [row.x, row.y]).T), initial=np.inf)
                 for row in grouped.itertuples()]
    target = grouped.iloc[int(np.argmax(np.where(grouped["kind"] == "detected", clearance, -1)))]
    members = table[table["group"] == target["group"]]
    expected = sorted((r.wav, int(r.start), int(r.stop), "song-a") for r in members.itertuples()
                      if r.kind != "annotated")
    process, url = start_annotator(project, "--annotator", "tester", "--autosave", "0")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def own_rows():
        found = []
        for path in sorted(project.groundtruth.rglob("*-annotated-tester.csv")):
            found += [(r.wav, int(r.start), int(r.stop), r.label) for r in read_intervals_csv(path).itertuples()]
        return sorted(found)

    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1420, "height": 1100})
        page.set_default_timeout(20_000)
        try:
            page.goto(url)
            page.locator(".bk-tab", has_text="Cluster").click()
            page.get_by_text("sounds from cluster.parquet").wait_for()
            page.get_by_text("groups: tap a sound to select its group").wait_for()
            sx, sy = page.evaluate(TO_SCREEN, ["scatter", float(target["x"]), float(target["y"])])
            page.mouse.click(sx, sy)
            page.get_by_text(f"{len(members)} sounds selected").wait_for()
            page.get_by_placeholder("label for the selection").fill("song-a")
            page.get_by_role("button", name="Label selection").click()
            page.get_by_text(f"labelled {len(expected)} sound(s) 'song-a'").wait_for()
            time.sleep(0.5)
            page.screenshot(path=str(SCREENSHOTS / "cluster-label-group.png"), full_page=True)
            page.get_by_role("button", name="Save", exact=True).click()
            page.get_by_text("all saved").wait_for()
            wait_for(lambda: own_rows() == expected, f"the CSVs to hold the {len(expected)} labelled sounds")
        except Exception:
            page.screenshot(path=str(SCREENSHOTS / "failure-cluster-label.png"), full_page=True)
            print(f"server log:\n{(project.root / 'annotate.log').read_text()[-5000:]}\nrows: {own_rows()[:5]}")
            raise
        finally:
            browser.close()
            stop_annotator(process)
