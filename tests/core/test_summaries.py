"""Song summaries: event counts and rates, coverage, bouts, inter-pulse intervals, the ethogram
raster, on constructed cases with known answers and on synthetic song."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from songexplorer_core.annotations import concat_intervals, intervals_frame, read_intervals_csv
from songexplorer_core.summaries import (
    SummaryError,
    bouts,
    inter_pulse_intervals,
    plot_ethogram,
    song_summary,
    summary_by_label,
    write_summaries,
)
from songexplorer_core.synth import dense_annotations, make_song

RATE = 2500


def train(first_centre, n, ipi_tics, *, wav="a.wav", label="pulse", half=5):
    centres = first_centre + ipi_tics * np.arange(n)
    return intervals_frame(wav, centres - half, centres + half, "predicted", label)


@pytest.fixture
def two_trains():
    # 10 pulses 87 tics (34.8 ms) apart, then 2 s later 5 pulses 100 tics (40 ms) apart
    return concat_intervals([train(1000, 10, 87), train(1000 + 9 * 87 + 5000, 5, 100)])


def test_inter_pulse_intervals_of_regular_trains(two_trains):
    ipis = inter_pulse_intervals(two_trains, rate=RATE)
    assert len(ipis) == 9 + 4  # the 2 s between the trains is not an IPI
    assert np.allclose(ipis["ipi_s"].to_numpy(), [0.0348] * 9 + [0.04] * 4)
    assert ipis["tic"].iloc[0] == 1087
    summary = song_summary(two_trains, {"a.wav": 60.0}, rate=RATE).set_index("label")
    assert summary.loc["pulse", "ipi_n"] == 13
    assert summary.loc["pulse", "ipi_mean_s"] == pytest.approx((9 * 0.0348 + 4 * 0.04) / 13)
    assert summary.loc["pulse", "ipi_median_s"] == pytest.approx(0.0348)
    assert summary.loc["pulse", "ipi_sd_s"] == pytest.approx(np.std([0.0348] * 9 + [0.04] * 4, ddof=1))


def test_bouts_group_events_separated_by_at_most_the_gap(two_trains):
    found = bouts(two_trains, rate=RATE, max_gap_s=0.5)
    first_stop = 1000 + 9 * 87 + 5
    assert list(zip(found["start"], found["stop"], found["events"])) == [
        (995, first_stop, 10), (first_stop + 4990, first_stop + 4990 + 4 * 100 + 10, 5)]
    assert set(found["kind"]) == {"bout"}
    assert len(bouts(two_trains, rate=RATE, max_gap_s=2.0)) == 1  # the gap is 4990 tics = 1.996 s
    assert len(bouts(two_trains, rate=RATE, max_gap_s=1.99)) == 2
    summary = song_summary(two_trains, {"a.wav": 60.0}, rate=RATE, max_gap_s=0.5).set_index("label")
    durations = [(first_stop - 995 + 1) / RATE, (4 * 100 + 11) / RATE]
    assert summary.loc["pulse", "bouts"] == 2
    assert summary.loc["pulse", "bout_mean_s"] == pytest.approx(np.mean(durations))
    assert summary.loc["pulse", "bout_max_s"] == pytest.approx(max(durations))


def test_song_rate_per_minute_and_coverage_across_recordings():
    events = concat_intervals([
        train(1000, 30, 1000, wav="one.wav", label="sine", half=0),  # 30 one-tic events in 60 s
        train(1000, 30, 1000, wav="two.wav", label="sine", half=0),  # 30 in 120 s
        intervals_frame("two.wav", [0, 1000], [2499, 3499], "predicted", "pulse"),  # overlapping
    ])
    summary = song_summary(events, {"one.wav": 60.0, "two.wav": 120.0, "three.wav": 30.0}, rate=RATE)
    table = summary.set_index(["recording", "label"])
    assert table.loc[("one.wav", "sine"), "events_per_min"] == 30
    assert table.loc[("two.wav", "sine"), "events_per_min"] == 15
    assert table.loc[("three.wav", "sine"), "events"] == 0
    assert table.loc[("three.wav", "sine"), "bouts"] == 0 and np.isnan(table.loc[("three.wav", "sine"), "bout_mean_s"])
    assert table.loc[("two.wav", "pulse"), "coverage"] == pytest.approx(3500 / RATE / 120)
    assert table.loc[("one.wav", "sine"), "coverage"] == pytest.approx(30 / RATE / 60)
    assert len(summary) == 6  # every recording x label
    assert np.isnan(table.loc[("one.wav", "sine"), "ipi_n"])  # not a pulse label
    pooled = summary_by_label(summary).set_index("label")
    assert pooled.loc["sine", "events"] == 60
    assert pooled.loc["sine", "events_per_min"] == pytest.approx(60 / 3.5)


def test_synthetic_song_ipis_and_counts_match_what_was_drawn():
    song = make_song(120, seed=4)
    truth = dense_annotations(song)
    summary = song_summary(truth, {song.wav: song.duration_s}, rate=song.rate).set_index("label")
    trains = song.events[song.events["event"] == "pulse-train"]
    assert summary.loc["mel-pulse", "events"] == len(song.pulse_centres)
    # every IPI inside a train is counted, none between trains (they are >= 0.15 s apart)
    assert summary.loc["mel-pulse", "ipi_n"] == len(song.pulse_centres) - len(trains)
    ipis = inter_pulse_intervals(truth, rate=song.rate)
    assert ipis["ipi_s"].between(*song.params.ipi_range_s).all()
    drawn = np.average(trains["ipi_s"], weights=trains["n_pulses"] - 1)
    assert summary.loc["mel-pulse", "ipi_mean_s"] == pytest.approx(drawn, abs=0.001)
    assert summary.loc["mel-sine", "events"] == len(song.sines)
    assert np.isnan(summary.loc["mel-sine", "ipi_n"])


def test_recordings_without_a_duration_and_bad_gaps_are_refused(two_trains):
    with pytest.raises(SummaryError, match=r"no duration for recording\(s\) \['a.wav'\]"):
        song_summary(two_trains, {"b.wav": 60.0}, rate=RATE)
    with pytest.raises(SummaryError, match="max_gap_s"):
        bouts(two_trains, rate=RATE, max_gap_s=-1)


def test_ethogram_raster_draws_one_bar_per_interval_in_each_recordings_row(two_trains):
    events = concat_intervals([two_trains, intervals_frame("b.wav", [100], [2000], "predicted", "sine")])
    figure = plot_ethogram(events, {"a.wav": 60.0, "b.wav": 30.0}, rate=RATE)
    ax = figure.axes[0]
    bars = [len(collection.get_paths()) for collection in ax.collections]
    assert sorted(bars) == [1, 15]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a.wav", "b.wav"]
    assert ax.get_xlim() == (0, 60.0)


def test_write_summaries_files(two_trains, tmp_path):
    written = write_summaries(two_trains, {"a.wav": 60.0}, tmp_path, rate=RATE)
    assert {p.name for p in written} == {"summary.csv", "summary-by-label.csv", "ipis.csv", "bouts.csv",
                                         "ethogram.png"}
    assert (tmp_path / "ethogram.png").read_bytes()[:4] == b"\x89PNG"
    back = pd.read_csv(tmp_path / "summary.csv")
    assert back.loc[0, "events"] == 15 and back.loc[0, "ipi_n"] == 13
    assert len(read_intervals_csv(tmp_path / "bouts.csv", allow_unknown_kinds=True)) == 2
