"""The app's wiring without a browser: Bokeh events and key presses become the right gestures,
only the visible window is sent, probabilities and clusters show when they exist, and two
sessions on one recording both keep their work."""

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
from bokeh.events import DoubleTap, SelectionGeometry, Tap

from songexplorer_annotator.app import AnnotatorApp
from songexplorer_core.classify import Probabilities, write_probabilities
from songexplorer_core.project import init_project

KEY = "demo-1.wav"
RATE = 2500


def csv_rows(project, name):
    path = project.groundtruth / f"{KEY}-annotated-{name}.csv"
    return path.read_text().splitlines() if path.exists() else []


def detected(project, label="time"):
    frame = pd.read_parquet(project.outputs / "detections" / f"{KEY}.parquet")
    frame = frame[frame["label"] == label]
    return frame.iloc[len(frame) // 2]


@pytest.fixture
def app(project):
    app = AnnotatorApp(project, annotator="tester", query={"recording": KEY})
    assert app.recording_view.recording is not None and app.recording_view.recording.key == KEY
    return app


def test_the_name_is_asked_until_a_usable_one_is_given(project):
    app = AnnotatorApp(project)
    assert app.session is None and app.body.objects == [app.name_prompt]
    assert not app.set_annotator("two words")
    assert "annotator name" in app.shared.message.object and app.session is None
    app._stored_name("")  # this browser remembers no name: still asking
    assert app.session is None
    app._stored_name("remembered")  # this browser remembers one: not asked again
    assert app.session.annotator == "remembered" and app.keys.annotator == "remembered"
    assert app.body.objects == [app.tabs]


def test_only_the_visible_window_is_sent(tmp_path):
    project = init_project(tmp_path / "long")
    rng = np.random.default_rng(1)
    soundfile.write(str(project.groundtruth / "long.wav"), rng.normal(0, 100, 600 * RATE).astype(np.int16), RATE)
    app = AnnotatorApp(project, annotator="tester", context_s=4, plot_width=1000)
    assert app.recording_view.open_recording("long.wav")
    assert (app.recording_view.plots.x_range.start, app.recording_view.plots.x_range.end) == (0, 4)
    assert len(app.recording_view.plots.wave_source.data["t"]) <= 4000 and max(app.recording_view.plots.wave_source.data["t"]) <= 4
    image = app.recording_view.plots.spectrogram_source.data["image"][0]
    assert image.shape[1] <= 500
    assert len(app.recording_view.plots.overview_source.data["t"]) <= 2000  # the whole recording, reduced
    app.recording_view.navigate("end")
    assert app.recording_view.plots.x_range.end == 600 and app.recording_view.plots.x_range.start == 596
    assert min(app.recording_view.plots.wave_source.data["t"]) >= 596


def test_double_taps_and_a_drag_annotate_and_save(app, project):
    sound = detected(project)
    centre_s = (sound.start + sound.stop + 1) / 2 / RATE
    app.recording_view.centre_on(KEY, centre_s * RATE)
    app.labels.choose(1)  # the second box holds the demo's second most common label
    label = app.session.label
    assert label
    app.recording_view.plots.waveform._trigger_event(DoubleTap(app.recording_view.plots.waveform, x=centre_s, y=0.5))  # upper half: the sound's box
    rows = [(s.start, s.stop, s.label) for s in app.session.annotations(KEY)]
    assert rows == [(int(sound.start), int(sound.stop), label)]
    assert app.recording_view.plots.lower_source.data["text"] == [label]
    point_s = app.recording_view.plots.x_range.start + 0.2
    app.recording_view.plots.spectrogram._trigger_event(DoubleTap(app.recording_view.plots.spectrogram, x=point_s, y=100.0))  # lower half: a point
    app.recording_view.plots.waveform._trigger_event(SelectionGeometry(app.recording_view.plots.waveform, geometry=dict(
        type="rect", x0=app.recording_view.plots.x_range.end - 0.5, x1=app.recording_view.plots.x_range.end - 0.3, y0=-1, y1=1), final=True))
    assert len(app.session.annotations(KEY)) == 3
    assert "3 unsaved" in app.save_indicator.object
    app.save()
    assert "all saved" in app.save_indicator.object
    point = int(round(point_s * RATE))
    assert sorted(csv_rows(project, "tester")) == sorted([
        f"{KEY},{int(sound.start)},{int(sound.stop)},annotated,{label}",
        f"{KEY},{point},{point},annotated,{label}",
        f"{KEY},{int(round((app.recording_view.plots.x_range.end - 0.5) * RATE))},{int(round((app.recording_view.plots.x_range.end - 0.3) * RATE))},annotated,{label}",
    ])
    # a double-tap on an annotation in the lower half removes it
    app.recording_view.plots.waveform._trigger_event(DoubleTap(app.recording_view.plots.waveform, x=point_s, y=-0.5))
    assert len(app.session.annotations(KEY)) == 2 and "1 unsaved" in app.save_indicator.object


def test_keys_choose_labels_navigate_undo_redo_and_save(app, project):
    start = app.recording_view.view.start
    app.handle_key("ArrowRight")
    assert app.recording_view.view.start == start + app.recording_view.view.width // 2
    app.handle_key("ArrowUp")
    assert app.recording_view.view.width == int(round(app.recording_view.context_s * RATE / 2))
    app.handle_key("o")
    assert app.recording_view.view.width == int(app.recording_view.context_s * RATE)
    app.handle_key("End")
    assert app.recording_view.view.stop == app.recording_view.recording.ntics
    app.handle_key("Home")
    assert app.recording_view.view.start == 0
    app.handle_key("3")
    assert app.session.label == app.labels.inputs[2].value and app.labels.count_buttons[2].color == "primary"
    app.recording_view.double_click(0.5, upper=False)
    assert app.labels.count_buttons[2].label == "1"
    app.handle_key("0")
    assert app.session.label == ""
    app.handle_key("Ctrl+z")
    assert app.session.annotations(KEY) == [] and app.labels.count_buttons[2].label == "0"
    app.handle_key("Ctrl+Z")
    assert len(app.session.annotations(KEY)) == 1
    app.handle_key("Ctrl+s")
    assert len(csv_rows(project, "tester")) == 1
    app.recording_view.navigate("reset")
    app.recording_view.view = app.recording_view.view.centred_on(10 * RATE)
    following = app.session.neighbour(KEY, app.recording_view.view.centre, +1)
    app.handle_key(".")  # next sound: the view centres on it
    assert following.start > 10 * RATE and abs(app.recording_view.view.centre - (following.start + following.stop) / 2) <= 1


def test_undo_pans_to_the_sound_it_changes(app):
    app.labels.choose(0)
    app.recording_view.double_click(1.0, upper=False)
    app.recording_view.navigate("end")
    assert app.recording_view.view.start > RATE
    app.recording_view.undo()
    assert app.recording_view.view.start <= RATE <= app.recording_view.view.stop and app.session.annotations(KEY) == []


def test_typing_a_label_selects_its_box(app):
    box = app.labels.inputs[4]
    box.value_input = "courtship"
    assert app.session.label == "courtship" and app.labels.count_buttons[4].color == "primary"


def test_playback_sends_the_visible_window_resampled(app):
    app.playback.toggle()
    audio, rate = soundfile.read(io.BytesIO(app.playback.audio.object))
    assert rate == 10000 and len(audio) == app.recording_view.view.width * 4
    assert not app.playback.audio.paused and app.playback.playhead.visible
    app.playback.audio.time = 1.5
    assert app.playback.playhead.location == pytest.approx(app.recording_view.view.start / RATE + 1.5)
    app.playback.toggle()
    assert app.playback.audio.paused


def test_probability_traces_show_when_the_recording_was_classified(project):
    app = AnnotatorApp(project, annotator="tester")
    app.recording_view.open_recording(KEY)
    assert not app.recording_view.plots.probability.visible
    ntics = 20 * RATE
    values = np.zeros((ntics // 4, 2), np.float32)
    values[:, 0] = np.linspace(0, 1, ntics // 4)
    values[:, 1] = 1 - values[:, 0]
    folder = project.outputs / "probabilities"
    folder.mkdir()
    write_probabilities(Probabilities(values, ("mel-pulse", "ambient"), RATE, 4, wav=KEY, ntics=ntics),
                        folder / f"{KEY}.npz")
    app.recording_view.open_recording(KEY)
    assert app.recording_view.plots.probability.visible
    data = app.recording_view.plots.probability_source.data
    assert data["label"] == ["mel-pulse", "ambient"]
    assert min(data["xs"][0]) >= app.recording_view.plots.x_range.start - 0.01 and max(data["xs"][0]) <= app.recording_view.plots.x_range.end + 0.01
    np.testing.assert_allclose(data["ys"][0] + data["ys"][1], 1.0, atol=1e-6)


def test_cluster_view_says_no_clusters_yet_then_shows_snippets(project):
    cluster_file = project.outputs / "cluster" / "cluster.parquet"
    table = pd.read_parquet(cluster_file)
    cluster_file.rename(cluster_file.with_suffix(".bak"))
    app = AnnotatorApp(project, annotator="tester")
    assert "No clusters yet" in app.cluster_view.cluster_info.object and not app.cluster_view.cluster_plots.visible
    cluster_file.with_suffix(".bak").rename(cluster_file)
    app.cluster_view.cluster_refresh.clicks += 1
    assert app.cluster_view.cluster_plots.visible and len(app.cluster_view.scatter_source.data["x"]) == len(table)
    shown = app.cluster_view.scatter_source.data  # the hover shows seconds, tics as well
    np.testing.assert_allclose(shown["start_s"], np.asarray(shown["start"]) / RATE)
    app.cluster_view.kind_filter.value = ["annotated"]
    assert set(app.cluster_view.scatter_source.data["kind"]) == {"annotated"}
    app.cluster_view.kind_filter.value = []
    # tap near a sound: the grid fills with the sounds nearest it, nearest first
    first = table.iloc[0]
    app.cluster_view.scatter._trigger_event(Tap(app.cluster_view.scatter, x=float(first["x"]), y=float(first["y"])))
    assert len(app.cluster_view.snippet_source.data["image"]) == min(app.cluster_view.nsnippets, len(table))
    assert app.cluster_view._snippet_rows.iloc[0]["start"] == first["start"]
    # a box selection: the sounds inside it, nearest its centre first
    x, y = float(first["x"]), float(first["y"])
    app.cluster_view.scatter._trigger_event(SelectionGeometry(app.cluster_view.scatter, geometry=dict(
        type="rect", x0=x - 1e-6, x1=x + 1e-6, y0=y - 1e-6, y1=y + 1e-6), final=True))
    assert len(app.cluster_view._snippet_rows) >= 1 and (app.cluster_view._snippet_rows["x"] == x).all()
    app.cluster_view.scatter._trigger_event(Tap(app.cluster_view.scatter, x=x, y=y))
    # click a snippet: the recording view centres on its sound
    app.cluster_view.snippets._trigger_event(Tap(app.cluster_view.snippets, x=0.5, y=-0.5))
    assert app.recording_view.recording.key == KEY and abs(app.recording_view.view.centre - (first["start"] + first["stop"]) / 2) <= 1
    # double-click it: annotate its sound with the current label (a correction for a seed row)
    app.labels.choose(0)
    app.cluster_view.snippets._trigger_event(DoubleTap(app.cluster_view.snippets, x=0.5, y=-0.5))
    ticks = [(s.start, s.stop) for s in app.session.annotations(KEY)]
    assert ticks == [(int(first["start"]), int(first["stop"]))]
    assert "→" in app.cluster_view.snippet_text.data["text"][0]


def test_two_sessions_on_one_recording_keep_both_annotators_work(project):
    alice = AnnotatorApp(project, annotator="alice", query={"recording": KEY})
    bob = AnnotatorApp(project, annotator="bob", query={"recording": KEY})
    alice_tab2 = AnnotatorApp(project, annotator="alice", query={"recording": KEY})
    for app, seconds in ((alice, 1.0), (bob, 1.0), (alice_tab2, 2.0)):
        app.labels.choose(0)
        app.recording_view.double_click(seconds, upper=False)
    alice.save()
    bob.save()
    alice_tab2.save()
    label = alice.session.label
    assert csv_rows(project, "alice") == [f"{KEY},2500,2500,annotated,{label}", f"{KEY},5000,5000,annotated,{label}"]
    assert csv_rows(project, "bob") == [f"{KEY},2500,2500,annotated,{label}"]


# ---------------------------------------------------------------------------------------------
# what each recording has to review, and links from Dagster (issue 12 item 4)


def write_misses(project, key, starts):
    from songexplorer_core.annotations import intervals_frame

    path = project.misses_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    intervals_frame([key] * len(starts), starts, [s + 50 for s in starts], "missed", "other").to_parquet(path)


def write_mistakes(project, rows):
    """``outputs/mistakes/mistakes.parquet`` as the mistakes asset writes it; rows: (key, start, kind)."""
    from songexplorer_core.annotations import intervals_frame

    keys, starts, kinds = zip(*rows)
    table = intervals_frame(list(keys), list(starts), [s + 20 for s in starts], list(kinds), "mel-pulse",
                            annotated_label="mel-sine")
    table["recording"] = list(keys)
    project.mistakes_path.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(project.mistakes_path)


def test_the_recording_with_most_to_review_opens_first_at_its_first_such_sound(project):
    # detections only: the first recording, at its first detected sound
    app = AnnotatorApp(project, annotator="tester")
    first_detected = int(pd.read_parquet(project.detections_path(KEY))["start"].min())
    assert app.recording_view.recording.key == KEY
    assert app.recording_view.view.start <= first_detected < app.recording_view.view.stop
    labels = {value: label for label, value in app.recording_view.select.options.items()}
    assert labels[KEY].startswith(f"{KEY} · ") and "detections" in labels[KEY] and "miss" not in labels[KEY]

    # misses in demo-2: it comes first, at its first miss
    write_misses(project, "demo-2.wav", [30_000, 12_500])
    app = AnnotatorApp(project, annotator="tester")
    assert app.recording_view.recording.key == "demo-2.wav"
    view = app.recording_view.view
    assert view.start <= 12_500 < view.stop and view.start == 12_500 - RATE  # a quarter of the 4 s window before it
    labels = {value: label for label, value in app.recording_view.select.options.items()}
    assert "2 misses" in labels["demo-2.wav"] and "miss" not in labels[KEY]
    assert "1 with misses" in app.recording_view.review_note.object
    assert "opened demo-2.wav, the first with a miss to review, at its first one (5.000 s)" in app.recording_view.review_note.object

    # a mistaken sound in demo-1 (a correct one in demo-2): demo-1 first, at the mistake
    write_mistakes(project, [(KEY, 40_000, "mistaken"), (KEY, 20_000, "correct"), ("demo-2.wav", 5_000, "correct")])
    app = AnnotatorApp(project, annotator="tester")
    assert app.recording_view.recording.key == KEY and app.recording_view.view.start == 40_000 - RATE
    reviews = app.shared.catalog.review()
    assert reviews[KEY].mistakes == 1 and reviews["demo-2.wav"].mistakes == 0 and reviews["demo-2.wav"].misses == 2
    assert not reviews[KEY].predictions

    # probabilities mark a recording as predicted
    ntics = app.recording_view.recording.ntics
    project.probabilities_npz("demo-2.wav").parent.mkdir(parents=True, exist_ok=True)
    write_probabilities(Probabilities(np.full((ntics // 4, 1), 0.5), ("mel-pulse",), RATE, 4, wav="demo-2.wav",
                                      ntics=ntics), project.probabilities_npz("demo-2.wav"))
    assert app.shared.catalog.review()["demo-2.wav"].predictions


def test_an_unreadable_output_does_not_stop_the_app(project):
    write_misses(project, "demo-2.wav", [12_500])
    project.mistakes_path.parent.mkdir(parents=True, exist_ok=True)
    project.mistakes_path.write_bytes(b"not parquet")
    project.misses_path(KEY).write_bytes(b"PAR1 broken")
    app = AnnotatorApp(project, annotator="tester")
    assert app.recording_view.recording.key == "demo-2.wav"  # the readable misses still count


def test_a_link_opens_its_recording_at_its_place_and_not_the_first_to_review(project):
    write_misses(project, "demo-2.wav", [12_500])
    app = AnnotatorApp(project, annotator="tester", query={"recording": KEY, "start": "7.5", "width": "2"})
    view = app.recording_view.view
    assert app.recording_view.recording.key == KEY and (view.start, view.width) == (int(7.5 * RATE), 2 * RATE)
    assert "7.500–9.500 s" in app.recording_view.position.object


@pytest.mark.parametrize("query, expected", [
    ({"width": "1e308"}, (0, 20 * RATE)), ({"width": "inf"}, (0, 4 * RATE)), ({"start": "1e308"}, (16 * RATE, 4 * RATE)),
    ({"width": "1e-300"}, (0, 20)), ({"start": "-3", "width": "nan"}, (0, 4 * RATE)),
    ({"start": "nonsense"}, (0, 4 * RATE)),
])
def test_any_start_and_width_in_a_link_give_a_window_inside_the_recording(project, query, expected):
    app = AnnotatorApp(project, annotator="tester", query={"recording": KEY, **query})
    assert (app.recording_view.view.start, app.recording_view.view.width) == expected


def test_a_link_may_name_the_recording_by_its_path_under_groundtruth(project):
    folder = project.groundtruth / "round1"
    folder.mkdir()
    (project.groundtruth / "demo-2.wav").rename(folder / "demo-2.wav")
    app = AnnotatorApp(project, annotator="tester", query={"recording": "round1/demo-2.wav", "start": "3"})
    assert app.recording_view.recording.key == "round1%2Fdemo-2.wav"
    app = AnnotatorApp(project, annotator="tester", query={"recording": "round1%2Fdemo-2.wav"})
    assert app.recording_view.recording.key == "round1%2Fdemo-2.wav"
    app = AnnotatorApp(project, annotator="tester", query={"recording": "round1/../../songexplorer.toml"})
    assert app.recording_view.recording is None and "not a recording of this project" in app.shared.message.object


def test_the_empty_cluster_tab_names_the_dagster_jobs_that_fill_it_with_links(project, monkeypatch):
    from songexplorer_annotator.cluster_view import CLUSTER_JOBS

    monkeypatch.setenv("SONGEXPLORER_DAGSTER_UI", "http://127.0.0.1:3999/")
    (project.outputs / "cluster" / "cluster.parquet").unlink()
    text = AnnotatorApp(project, annotator="tester").cluster_view.cluster_info.object
    assert "No clusters yet" in text and "outputs/cluster/cluster.parquet" in text
    for job in CLUSTER_JOBS:
        assert f'href="http://127.0.0.1:3999/locations/songexplorer/jobs/{job}" target="_blank"' in text


def test_the_cluster_jobs_named_are_the_dagster_jobs_that_write_the_cluster_file():
    """The annotator does not import Dagster (tests/test_rooms.py); this holds its names equal to
    the jobs and the code location (workspace.yaml) they live in."""
    import yaml

    from songexplorer_annotator.cluster_view import CLUSTER_JOBS, DAGSTER_LOCATION
    from songexplorer_dagster.defs.review import jobs

    assert set(CLUSTER_JOBS) == set(jobs.WORKFLOW_KINDS)
    for name in CLUSTER_JOBS:
        assert ["cluster"] in [key.path for key in getattr(jobs, name).selection.selected_keys], name
    workspace = yaml.safe_load((Path(__file__).resolve().parents[2] / "workspace.yaml").read_text())
    assert [entry["python_module"]["location_name"] for entry in workspace["load_from"]] == [DAGSTER_LOCATION]


def test_a_gesture_of_the_other_kind_is_told_which_gesture_fits_the_label(app):
    # the demo annotates mel-pulse with points and mel-sine with ranges (songexplorer_core.label_kinds)
    app.labels.inputs[4].value_input = "mel-pulse"
    app.recording_view.drag(1.0, 1.2)
    message = app.shared.message.object
    assert "label &#x27;mel-pulse&#x27; is annotated as points elsewhere (0 ranges, " in message
    assert "double-click the sound in the lower half to make a point instead" in message
    app.recording_view.undo()
    app.labels.inputs[4].value_input = "mel-sine"
    app.recording_view.double_click(2.0, upper=False)
    assert "drag across the sound to make a range instead" in app.shared.message.object
    app.recording_view.undo()
    app.shared.show_info("")
    app.recording_view.drag(3.0, 3.4)  # a range of a range label: nothing to say
    assert app.shared.message.object == ""


# -- labelling a whole group of sounds (starting from zero) ----------------------------------------


def own_rows(project, name):
    """Every row of ``name``'s annotation CSVs in the project: (wav, start, stop, label)."""
    from songexplorer_core.annotations import read_intervals_csv

    rows = []
    for path in sorted(project.groundtruth.rglob(f"*-annotated-{name}.csv")):
        frame = read_intervals_csv(path)
        rows += [(r.wav, int(r.start), int(r.stop), r.label) for r in frame.itertuples()]
    return sorted(rows)


def test_a_tap_selects_a_group_and_label_selection_annotates_every_sound_of_it(project):
    app = AnnotatorApp(project, annotator="tester")
    view = app.cluster_view
    table = pd.read_parquet(project.outputs / "cluster" / "cluster.parquet")
    assert "group" in view.colour_by.options and "groups: tap a sound to select its group" in view.cluster_info.object
    detected_groups = table[(table["kind"] == "detected") & (table["group"] >= 0)]
    group = int(detected_groups["group"].value_counts().index[0])
    members = table[table["group"] == group]
    first = members[members["kind"] == "detected"].iloc[0]
    assert view.labeller.button.disabled
    view.scatter._trigger_event(Tap(view.scatter, x=float(first["x"]), y=float(first["y"])))
    assert len(view.labeller.selected) == len(members) and not view.labeller.button.disabled
    assert f"{len(members)} sounds selected" in view.labeller.info.object and f"group {group}" in view.labeller.info.object
    view.labeller.label_input.value_input = "song-a"
    view.labeller.button.clicks += 1
    expected = sorted((r.wav, int(r.start), int(r.stop), "song-a") for r in members.itertuples() if r.kind != "annotated")
    assert f"labelled {len(expected)} sound(s) &#x27;song-a&#x27;" in app.shared.message.object
    app.save()
    assert own_rows(project, "tester") == expected
    # labelling the same group again changes nothing; another label relabels this session's rows
    assert view.labeller.label_selection() == 0
    assert view.labeller.label_selection("song-b") == len(expected)
    app.save()
    assert {row[3] for row in own_rows(project, "tester")} == {"song-b"}


def test_a_lasso_selects_what_it_encloses_and_a_bad_label_is_refused(project):
    app = AnnotatorApp(project, annotator="tester")
    view = app.cluster_view
    table = pd.read_parquet(project.outputs / "cluster" / "cluster.parquet")
    x0, x1 = float(table["x"].min()) - 1, float(np.median(table["x"]))
    y0, y1 = float(table["y"].min()) - 1, float(table["y"].max()) + 1
    view.scatter._trigger_event(SelectionGeometry(view.scatter, geometry=dict(
        type="poly", x=[x0, x1, x1, x0], y=[y0, y0, y1, y1]), final=True))
    inside = table[table["x"] < x1]
    assert len(view.labeller.selected) == len(inside) and "the lasso" in view.labeller.info.object
    assert view.labeller.label_selection("../etc") == 0 and "alert" in app.shared.message.object
    assert own_rows(project, "tester") == []


def test_label_selection_needs_a_name(project):
    app = AnnotatorApp(project)
    view = app.cluster_view
    view.select_group_at(0.0, 0.0)
    assert view.labeller.label_selection("song-a") == 0 and "give your name first" in app.shared.message.object
