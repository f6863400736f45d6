"""Ethogram: probabilities -> predicted intervals, and the thresholds files that drive it."""

import numpy as np
import pytest

from songexplorer_core.annotations import read_intervals_csv
from songexplorer_core.classify import Probabilities, write_probabilities, write_probability_wavs
from songexplorer_core.ethogram import (
    ThresholdsError,
    ethogram_maxprob,
    ethogram_threshold,
    find_predicted_csvs,
    predicted_csv_name,
    read_thresholds_csv,
    read_thresholds_ratios,
    run_ethogram,
    samples_to_tics,
    thresholds_csv_name,
    write_thresholds_csv,
)


def probs_of(columns: dict, *, stride=4, rate=2500, ntics=None, wav="rec.wav"):
    labels = tuple(columns)
    values = np.stack([np.asarray(v, dtype=np.float32) for v in columns.values()], axis=1)
    return Probabilities(values=values, labels=labels, rate=rate, stride_tics=stride, wav=wav, ntics=ntics)


def rows(frame):
    return [(r.start, r.stop, r.label) for r in frame.itertuples()]


def test_songexplorer_interval_arithmetic_at_4_tics_per_sample():
    # start = round((a/r - half) * rate) = 4a - 2, stop = 4b + 2 at r = 625 Hz, rate = 2500 Hz
    start, stop = samples_to_tics(np.array([3, 10]), np.array([3, 12]), stride_tics=4)
    assert start.tolist() == [10, 38] and stop.tolist() == [14, 50]


def test_point_pulse_and_runs_at_both_ends_are_kept():
    a = [0.9, 0.9, 0.1, 0.1, 0.8, 0.1, 0.1, 0.95, 0.95]
    probs = probs_of({"a": a}, ntics=33)
    frame = ethogram_threshold(probs, {"a": 0.5})
    # run at sample 0 kept (SongExplorer dropped it), start clamped to tic 0;
    # a single-sample pulse at sample 4 covers tics 14..18;
    # the run reaching the last sample is closed, its stop clamped to the last tic (32)
    assert rows(frame) == [(0, 6, "a"), (14, 18, "a"), (26, 32, "a")]
    assert set(frame["kind"]) == {"predicted"} and set(frame["wav"]) == {"rec.wav"}


def test_threshold_is_strict_and_nan_never_fires():
    probs = probs_of({"a": [0.0, 0.5, 0.6, 0.5], "b": [0.9, 0.9, 0.9, 0.9]})
    frame = ethogram_threshold(probs, {"a": 0.5, "b": float("nan")})
    assert rows(frame) == [(6, 10, "a")]


def test_rows_sorted_by_start_then_label_for_equal_starts():
    probs = probs_of({"zeta": [0, 1, 1, 0, 0, 1], "alpha": [0, 1, 0, 0, 1, 1], "mid": [0, 0, 0, 0, 1, 0]})
    frame = ethogram_threshold(probs, {"zeta": 0.5, "alpha": 0.5, "mid": 0.5})
    assert rows(frame) == [(2, 6, "alpha"), (2, 10, "zeta"), (14, 22, "alpha"), (14, 18, "mid"), (18, 22, "zeta")]


def test_only_labels_in_the_thresholds_are_predicted_and_unknown_labels_are_refused():
    probs = probs_of({"a": [0, 1, 0], "b": [0, 1, 0]})
    assert rows(ethogram_threshold(probs, {"b": 0.5})) == [(2, 6, "b")]
    with pytest.raises(KeyError, match="'c'"):
        ethogram_threshold(probs, {"c": 0.5})


def test_maxprob_labels_every_computed_sample_without_overlap():
    # two leading all-zero rows are SongExplorer's padding: left unlabelled
    probs = probs_of({"a": [0, 0, 0.7, 0.6, 0.2, 0.3], "b": [0, 0, 0.3, 0.4, 0.8, 0.7]})
    frame = ethogram_maxprob(probs)
    assert rows(frame) == [(6, 14, "a"), (14, 22, "b")]


def test_empty_probabilities_give_an_empty_table():
    probs = probs_of({"a": [0.1, 0.2]})
    assert len(ethogram_threshold(probs, {"a": 0.5})) == 0


def test_thresholds_head_format_round_trip(tmp_path):
    path = write_thresholds_csv({"mel-pulse": 0.6514655412125903, "mel-sine": float("nan")},
                                tmp_path / thresholds_csv_name(300))
    assert path.name == "thresholds.ckpt-300.csv"
    assert path.read_text() == "mel-pulse,0.6514655412125903\nmel-sine,nan\n"
    read = read_thresholds_csv(path)
    assert list(read) == ["mel-pulse", "mel-sine"] and read["mel-pulse"] == 0.6514655412125903
    assert np.isnan(read["mel-sine"])
    assert list(read_thresholds_ratios(path)) == [None]
    named = write_thresholds_csv({"x": 0.25}, tmp_path / thresholds_csv_name(300, 2.0))
    assert named.name == "thresholds-2.0pr.ckpt-300.csv"
    assert read_thresholds_ratios(named) == {"2.0": {"x": 0.25}}


def test_thresholds_older_header_format_with_several_ratios(tmp_path):
    path = tmp_path / "thresholds.ckpt-1024000.csv"
    path.write_text("precision/recall,1.0,2.0\nlabel1,0.5,0.7\nlabel2,0.25,0.125\n")
    tables = read_thresholds_ratios(path)
    assert tables == {"1.0": {"label1": 0.5, "label2": 0.25}, "2.0": {"label1": 0.7, "label2": 0.125}}
    assert read_thresholds_csv(path) == {"label1": 0.5, "label2": 0.25}
    assert read_thresholds_csv(path, ratio=2) == {"label1": 0.7, "label2": 0.125}


def test_bad_thresholds_file_names_file_and_line(tmp_path):
    path = tmp_path / "thresholds.ckpt-1.csv"
    path.write_text("a,0.5\nb,high\n")
    with pytest.raises(ThresholdsError, match=r"thresholds.ckpt-1.csv: line 2: .*'high'"):
        read_thresholds_csv(path)
    with pytest.raises(FileNotFoundError, match="songexplorer accuracy"):
        read_thresholds_csv(tmp_path / "missing.csv")


def test_predicted_names_new_and_old(tmp_path):
    assert predicted_csv_name("PS.wav", 1.0) == "PS.wav-predicted-1.0pr.csv"
    assert predicted_csv_name("PS.wav") == "PS.wav-predicted.csv"
    for name in ("PS.wav-predicted.csv", "PS-predicted-2.0pr.csv", "PS.wav-predicted-1.0pr.csv",
                 "PSX.wav-predicted-1.0pr.csv"):
        (tmp_path / name).write_text("")
    found = find_predicted_csvs(tmp_path, "PS.wav")
    assert {k: p.name for k, p in found.items()} == {
        None: "PS.wav-predicted.csv", "1.0": "PS.wav-predicted-1.0pr.csv", "2.0": "PS-predicted-2.0pr.csv"}


@pytest.mark.parametrize("source", ["wav", "npz"])
def test_run_ethogram_from_probability_files(tmp_path, source):
    model_dir = tmp_path / "logs" / "train_1r"
    thresholds = write_thresholds_csv({"b": 0.5, "a": 0.5}, model_dir / "thresholds.ckpt-30.csv")
    write_thresholds_csv({"b": 0.5, "a": 0.5}, model_dir / "thresholds-2.0pr.ckpt-30.csv")
    probs = probs_of({"a": [0, 0, 0.9, 0.9, 0.1, 0.1], "b": [0, 0, 0.1, 0.1, 0.9, 0.1]}, wav="song.wav")
    out = tmp_path / "out"
    if source == "wav":
        write_probability_wavs(probs, out)
    else:
        write_probabilities(probs, out / "song.wav-probabilities.npz")
    written = run_ethogram("song.wav", thresholds, probabilities_dir=out, rate=2500, method="threshold")
    assert [p.name for p in written] == ["song.wav-predicted.csv"]
    frame = read_intervals_csv(written[0])
    assert rows(frame) == [(6, 14, "a"), (14, 18, "b")]
    log = (out / "song.wav-ethogram.log").read_text().splitlines()
    assert f"logdir: {model_dir.parent.resolve()}" in log
    assert "model: train_1r" in log and "thresholds_file: thresholds.ckpt-30.csv" in log
    assert "method: threshold" in log
    ratio_file = run_ethogram("song.wav", model_dir / "thresholds-2.0pr.ckpt-30.csv", probabilities_dir=out,
                              rate=2500, method="maxprob")
    assert [p.name for p in ratio_file] == ["song.wav-predicted-2.0pr.csv"]
    assert rows(read_intervals_csv(ratio_file[0])) == [(6, 14, "a"), (14, 22, "b")]


def test_run_ethogram_without_probabilities_says_what_to_do(tmp_path):
    thresholds = write_thresholds_csv({"a": 0.5}, tmp_path / "thresholds.ckpt-1.csv")
    with pytest.raises(FileNotFoundError, match="songexplorer classify"):
        run_ethogram("song.wav", thresholds, probabilities_dir=tmp_path, rate=2500)


@pytest.mark.parametrize("loss, expected", [
    # exclusive: labels compete for each tic, the most probable wins (tic 14..18 is b's, not a gap)
    ("exclusive", ("maxprob", [(6, 14, "a"), (14, 22, "b")])),
    # overlapped: independent sigmoids, each label above its own threshold
    ("overlapped", ("threshold", [(6, 14, "a"), (14, 18, "b")])),
])
def test_auto_method_is_maxprob_for_exclusive_and_threshold_for_overlapped_models(tmp_path, loss, expected):
    from songexplorer_core.ethogram import choose_method

    thresholds = write_thresholds_csv({"a": 0.5, "b": 0.5}, tmp_path / "train_1r" / "thresholds.ckpt-30.csv")
    probs = probs_of({"a": [0, 0, 0.9, 0.9, 0.1, 0.1], "b": [0, 0, 0.1, 0.1, 0.9, 0.45]}, wav="song.wav")
    probs = Probabilities(values=probs.values, labels=probs.labels, rate=probs.rate, stride_tics=probs.stride_tics,
                          wav=probs.wav, loss=loss)
    write_probabilities(probs, tmp_path / "song.wav-probabilities.npz")
    method, expected_rows = expected
    assert choose_method("auto", probs) == method and choose_method("threshold", probs) == "threshold"
    written = run_ethogram("song.wav", thresholds, probabilities_dir=tmp_path)  # the default is auto
    assert rows(read_intervals_csv(written[0])) == expected_rows
    assert f"method: {method}" in (tmp_path / "song.wav-ethogram.log").read_text().splitlines()
    with pytest.raises(ValueError, match="method must be one of"):
        choose_method("loudest", probs)


def test_segments_shorter_than_half_the_shortest_annotated_range_are_dropped_points_never(tmp_path):
    import pandas as pd

    from songexplorer_core.dataset import ANNOTATION_DURATIONS_FILE
    from songexplorer_core.ethogram import drop_short_segments, min_segment_durations, read_annotation_durations

    durations = pd.DataFrame({"label": ["pulse", "sine"], "points": [40, 0], "ranges": [0, 12],
                              "shortest_range_s": [float("nan"), 0.1], "median_range_s": [float("nan"), 0.3]})
    minimum = min_segment_durations(durations, 0.5)
    assert minimum == {"sine": 0.05}  # pulses are points: never filtered
    assert min_segment_durations(durations, 0) == {} and min_segment_durations(None, 0.5) == {}
    # at 2500 Hz, 4 tics per sample: a 3-sample sine sliver (tics 10..22, 4.8 ms) next to a pulse,
    # a 40-sample bout (tics 30..190, 64 ms) and a 1-sample pulse (4 tics)
    sliver_bout = [0, 0, 0.9, 0.9, 0.9, 0, 0, 0] + [0.9] * 40 + [0, 0]
    pulse = [0, 0, 0, 0, 0, 0.9] + [0] * 44
    rest = [1 - a - b for a, b in zip(sliver_bout, pulse)]
    probs = probs_of({"pulse": pulse, "sine": sliver_bout, "ambient": rest}, wav="song.wav")
    frame = ethogram_maxprob(probs)
    kept = drop_short_segments(frame, minimum, rate=2500)
    assert rows(kept[kept["label"] != "ambient"]) == [(18, 22, "pulse"), (30, 190, "sine")]
    assert len(frame) - len(kept) == 1  # only the sliver went
    # run_ethogram reads the minimums from the model folder and says what it used
    model_dir = tmp_path / "train_1r"
    thresholds = write_thresholds_csv({"pulse": 0.5, "sine": 0.5, "ambient": 0.5}, model_dir / "thresholds.ckpt-9.csv")
    durations.to_csv(model_dir / ANNOTATION_DURATIONS_FILE, index=False)
    assert read_annotation_durations(model_dir)["label"].tolist() == ["pulse", "sine"]
    write_probabilities(probs, tmp_path / "song.wav-probabilities.npz")
    (written,) = run_ethogram("song.wav", thresholds, probabilities_dir=tmp_path)
    assert rows(read_intervals_csv(written)) == rows(kept)
    assert 'min_segment_s: {"sine": 0.05}' in (tmp_path / "song.wav-ethogram.log").read_text()
    (unfiltered,) = run_ethogram("song.wav", thresholds, probabilities_dir=tmp_path, min_segment_fraction=0)
    assert rows(read_intervals_csv(unfiltered)) == rows(frame)


def test_a_damaged_annotation_durations_file_is_named_with_the_fix(tmp_path):
    from songexplorer_core.dataset import ANNOTATION_DURATIONS_FILE
    from songexplorer_core.ethogram import read_annotation_durations

    (tmp_path / ANNOTATION_DURATIONS_FILE).write_text("label,points\nsine,0\n")
    with pytest.raises(ValueError, match=r"annotation-durations\.csv: missing column\(s\) \['ranges', 'shortest"):
        read_annotation_durations(tmp_path)
    (tmp_path / ANNOTATION_DURATIONS_FILE).write_bytes(b"")
    with pytest.raises(ValueError, match="not a readable CSV.*retrain the model or delete the file"):
        read_annotation_durations(tmp_path)
    assert read_annotation_durations(tmp_path / "elsewhere") is None  # SongExplorer's models have none


def test_pulse_events_one_interval_per_peak_fragments_merged_doubles_split():
    import pandas as pd

    from songexplorer_core.ethogram import event_refractory, split_at_peaks

    # samples (4 tics each): a pulse split into two runs by a one-sample dip (fragments, peaks 2
    # samples apart), a run holding two pulses 8 samples apart with a trough between them, and
    # one lone pulse
    column = np.zeros(40)
    column[2:4], column[5:7] = [0.6, 0.7], [0.9, 0.6]          # fragments: peaks at 3 and 5
    column[12:23] = [0.6, 0.8, 0.95, 0.8, 0.6, 0.55, 0.6, 0.7, 0.9, 0.8, 0.6]  # peaks at 14 and 20
    column[30:33] = [0.7, 0.99, 0.7]
    on = column > 0.5
    first, last = split_at_peaks(on, column, distance=4)
    assert list(zip(first.tolist(), last.tolist())) == [(5, 6), (12, 16), (17, 22), (30, 32)]
    # peaks closer than the refractory distance are one event: the lower one's run is dropped
    first, last = split_at_peaks(on, column, distance=7)
    assert list(zip(first.tolist(), last.tolist())) == [(5, 6), (12, 22), (30, 32)]
    # an ethogram with events for pulses; sine (ranges) keeps its runs
    probs = probs_of({"pulse": column, "other": np.where(on, 0.0, 1.0)})
    events = ethogram_maxprob(probs, events={"pulse": 4 * 4 / 2500})
    assert len(events[events["label"] == "pulse"]) == 4
    assert len(ethogram_maxprob(probs).query("label == 'pulse'")) == 4  # runs: 2, 3, 5-6 ... are 4 runs
    assert len(ethogram_threshold(probs, {"pulse": 0.5}, events={"pulse": 7 * 4 / 2500})) == 3
    # the refractory interval comes from the shortest gap between annotated pulses
    durations = pd.DataFrame({"label": ["pulse", "sine"], "points": [40, 0], "ranges": [0, 12],
                              "shortest_range_s": [float("nan"), 0.1], "median_range_s": [float("nan"), 0.3],
                              "shortest_gap_s": [0.024, float("nan")]})
    assert event_refractory(durations) == {"pulse": pytest.approx(0.012)}
    assert event_refractory(durations, 0) == {} and event_refractory(durations.drop(columns="shortest_gap_s")) == {}
    # annotations picked far apart never merge real pulses: at most 20 ms by default
    assert event_refractory(durations.assign(shortest_gap_s=[1.0, float("nan")])) == {"pulse": 0.02}
    # events need their peak to reach event_min_peak (0.7 by default)
    faint = probs_of({"pulse": [0, 0.6, 0.65, 0.6, 0, 0, 0.9, 0], "other": [1, 0.4, 0.35, 0.4, 1, 1, 0.1, 1]})
    assert len(ethogram_maxprob(faint, events={"pulse": 0.004}).query("label == 'pulse'")) == 1
    assert len(ethogram_maxprob(faint, events={"pulse": 0.004}, event_min_peak=0.5).query("label == 'pulse'")) == 2
    assert len(ethogram_maxprob(faint).query("label == 'pulse'")) == 2  # no events: SongExplorer's runs


def test_run_ethogram_gives_one_event_per_pulse_from_the_model_folder(tmp_path):
    import pandas as pd

    from songexplorer_core.dataset import ANNOTATION_DURATIONS_FILE

    column = np.zeros(60)
    column[10:21] = [0.6, 0.8, 0.95, 0.8, 0.6, 0.55, 0.6, 0.7, 0.9, 0.8, 0.6]  # two pulses in one run
    probs = probs_of({"pulse": column, "ambient": 1 - column}, wav="song.wav")
    model_dir = tmp_path / "train_1r"
    thresholds = write_thresholds_csv({"pulse": 0.5, "ambient": 0.5}, model_dir / "thresholds.ckpt-9.csv")
    pd.DataFrame({"label": ["pulse", "ambient"], "points": [30, 0], "ranges": [0, 5],
                  "shortest_range_s": [float("nan"), 0.5], "median_range_s": [float("nan"), 1.0],
                  "shortest_gap_s": [0.02, float("nan")]}).to_csv(model_dir / ANNOTATION_DURATIONS_FILE, index=False)
    write_probabilities(probs, tmp_path / "song.wav-probabilities.npz")
    (written,) = run_ethogram("song.wav", thresholds, probabilities_dir=tmp_path)
    pulses = read_intervals_csv(written).query("label == 'pulse'")
    assert len(pulses) == 2  # refractory 10 ms = 6 samples < 6 samples between the peaks
    assert 'event_refractory_s: {"pulse": 0.01}' in (tmp_path / "song.wav-ethogram.log").read_text()
    with pytest.raises(ValueError, match="event_min_peak is a probability"):
        run_ethogram("song.wav", thresholds, probabilities_dir=tmp_path, event_min_peak=70)
    (runs,) = run_ethogram("song.wav", thresholds, probabilities_dir=tmp_path, event_refractory_fraction=0)
    assert len(read_intervals_csv(runs).query("label == 'pulse'")) == 1  # SongExplorer's: one run
