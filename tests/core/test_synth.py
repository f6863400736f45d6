"""Synthetic song: its truth must be exactly what is in the samples, for any seed and rate."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import soundfile
from scipy import signal

from songexplorer_core.annotations import COLUMNS, read_intervals_csv, write_intervals_csv
from songexplorer_core.audio import read_recording
from songexplorer_core.synth import (
    AMBIENT_LABEL,
    PULSE_LABEL,
    SINE_LABEL,
    SongParams,
    SynthSong,
    dense_annotations,
    make_song,
    seed_annotations,
    write_song,
)

RATES = (2500, 5000, 44100)


@pytest.fixture(scope="module")
def song() -> SynthSong:
    return make_song(600, seed=7)


@pytest.fixture(scope="module", params=RATES)
def song_at_rate(request) -> SynthSong:
    return make_song(120, request.param, seed=11)


def _train_ipis_s(song: SynthSong) -> np.ndarray:
    same_train = song.pulse_trains[1:] == song.pulse_trains[:-1]
    return np.diff(song.pulse_centres)[same_train] / song.rate


def _song_free(song: SynthSong, margin_tics: int) -> np.ndarray:
    """Boolean mask of tics at least ``margin_tics`` away from any pulse train, bout or distractor."""
    busy = np.zeros(song.ntics + 1, int)
    events = song.events
    np.add.at(busy, np.maximum(events["start"].to_numpy() - margin_tics, 0), 1)
    np.add.at(busy, np.minimum(events["stop"].to_numpy() + margin_tics + 1, song.ntics), -1)
    return np.cumsum(busy)[:-1] == 0


# --------------------------------------------------------------------------------------------
# determinism and layout


def test_same_seed_same_song_and_other_seed_other_song():
    a, b = make_song(60, seed=3), make_song(60, seed=3)
    np.testing.assert_array_equal(a.samples, b.samples)
    for name in ("pulses", "sines", "distractors", "events"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.pulse_centres, b.pulse_centres)
    c = make_song(60, seed=4)
    assert not np.array_equal(a.pulse_centres, c.pulse_centres[: len(a.pulse_centres)])
    assert np.mean(a.samples != c.samples) > 0.9


def test_noise_knobs_do_not_move_the_song():
    quiet = make_song(60, seed=5, params=SongParams(noise_rms_counts=20.0))
    loud = make_song(60, seed=5, params=SongParams(noise_rms_counts=150.0))
    pd.testing.assert_frame_equal(quiet.events, loud.events)
    ambient = _song_free(quiet, 0)
    ratio = np.std(loud.samples[ambient].astype(float)) / np.std(quiet.samples[ambient].astype(float))
    assert ratio == pytest.approx(150 / 20, rel=0.05)


def test_truth_intervals_lie_inside_the_recording_and_do_not_overlap(song_at_rate):
    song = song_at_rate
    assert song.ntics == 120 * song.rate
    min_gap = round(song.params.min_gap_s * song.rate)
    events = song.events
    assert len(events) > 10
    assert (events["start"] >= min_gap).all()
    assert (events["stop"] <= song.ntics - 1 - min_gap).all()
    assert (events["stop"] >= events["start"]).all()
    # consecutive events (trains, bouts, distractors) are separated by at least min_gap of silence
    assert (events["start"].to_numpy()[1:] - events["stop"].to_numpy()[:-1] > min_gap - 1).all()
    pulses = song.pulses
    assert (pulses["start"].to_numpy()[1:] > pulses["stop"].to_numpy()[:-1]).all()
    assert ((pulses["start"] < song.pulse_centres) & (song.pulse_centres < pulses["stop"])).all()
    # every pulse lies inside its own train
    train = events.iloc[song.pulse_trains]
    assert (train["label"] == PULSE_LABEL).all()
    assert (pulses["start"].to_numpy() >= train["start"].to_numpy()).all()
    assert (pulses["stop"].to_numpy() <= train["stop"].to_numpy()).all()
    counts = np.bincount(song.pulse_trains, minlength=len(events))[events["label"] == PULSE_LABEL]
    np.testing.assert_array_equal(counts, events.loc[events["label"] == PULSE_LABEL, "n_pulses"])
    for table in (song.pulses, song.sines, song.distractors, song.events):
        assert list(table.columns[:5]) == list(COLUMNS)
        assert (table["wav"] == song.wav).all()
        assert (table["kind"] == "truth").all()


def test_event_rates_match_the_parameters():
    params = SongParams(pulse_train_rate_per_min=6.0, sine_bout_rate_per_min=4.0, distractor_rate_per_min=2.0)
    song = make_song(1800, seed=1, params=params)
    minutes = song.duration_s / 60
    counts = song.events["label"].value_counts()
    assert counts[PULSE_LABEL] / minutes == pytest.approx(6.0, rel=0.15)
    assert counts[SINE_LABEL] / minutes == pytest.approx(4.0, rel=0.15)
    assert (counts["click"] + counts["bump"]) / minutes == pytest.approx(2.0, rel=0.25)
    bouts_s = (song.sines["stop"] - song.sines["start"] + 1) / song.rate
    assert bouts_s.min() >= 0.2 - 1 / song.rate and bouts_s.max() <= 1.5 + 1 / song.rate


def test_no_song_gives_only_background():
    params = SongParams(pulse_train_rate_per_min=0, sine_bout_rate_per_min=0, distractor_rate_per_min=0)
    song = make_song(10, seed=0, params=params)
    assert len(song.events) == len(song.pulses) == len(song.sines) == len(song.distractors) == 0
    assert np.std(song.samples.astype(float)) == pytest.approx(params.noise_rms_counts, rel=0.05)


# --------------------------------------------------------------------------------------------
# what is in the samples


def test_ipi_distribution_matches_the_parameters(song):
    ipis = _train_ipis_s(song)
    params = song.params
    assert len(ipis) > 1000
    tic = 1 / song.rate
    assert ipis.min() >= params.ipi_range_s[0] - tic and ipis.max() <= params.ipi_range_s[1] + tic
    assert ipis.mean() == pytest.approx(params.ipi_s, abs=0.001)
    expected_sd = np.hypot(params.ipi_train_sd_s, params.ipi_jitter_s)
    assert ipis.std() == pytest.approx(expected_sd, rel=0.25)
    trains = song.events[song.events["label"] == PULSE_LABEL]
    assert trains["n_pulses"].between(*params.pulses_per_train).all()

    slow = replace(params, ipi_s=0.042, ipi_range_s=(0.035, 0.05))
    slow_ipis = _train_ipis_s(make_song(300, seed=7, params=slow))
    assert slow_ipis.mean() == pytest.approx(0.042, abs=0.001)


def test_sine_bouts_peak_at_their_frequency(song_at_rate):
    song = song_at_rate
    x = song.samples.astype(float)
    bouts = song.events[song.events["label"] == SINE_LABEL]
    assert len(bouts) >= 5
    nperseg = int(0.4 * song.rate)
    for bout in bouts.itertuples():
        if bout.stop - bout.start + 1 < nperseg:
            continue
        freqs, power = signal.welch(x[bout.start : bout.stop + 1], song.rate, nperseg=nperseg)
        assert freqs[np.argmax(power)] == pytest.approx(bout.sine_hz, abs=5.0)
    params = song.params
    assert bouts["sine_hz"].between(*params.sine_range_hz).all()
    assert bouts["sine_hz"].mean() == pytest.approx(params.sine_hz, abs=5.0)

    low = make_song(60, song.rate, seed=2, params=replace(params, sine_hz=135.0, sine_sd_hz=0.0, sine_drift_hz=0.0))
    freqs, power = signal.welch(
        np.concatenate([low.samples[b.start : b.stop + 1] for b in low.sines.itertuples()]).astype(float),
        low.rate, nperseg=int(0.8 * low.rate))
    assert freqs[np.argmax(power)] == pytest.approx(135.0, abs=1.5)


def test_pulse_energy_sits_at_the_truth(song_at_rate):
    song = song_at_rate
    x = song.samples.astype(float)
    band = signal.butter(4, [100, 600], btype="bandpass", fs=song.rate, output="sos")
    envelope = np.abs(signal.hilbert(signal.sosfiltfilt(band, x)))
    ambient = envelope[_song_free(song, round(0.05 * song.rate))]
    # the loudest tic of each pulse's extent is close to its centre
    offsets = []
    for start, stop, centre in zip(song.pulses["start"], song.pulses["stop"], song.pulse_centres):
        offsets.append(np.argmax(envelope[start : stop + 1]) + start - centre)
    offsets_ms = np.abs(offsets) / song.rate * 1000
    assert np.median(offsets_ms) < 1.0 and np.percentile(offsets_ms, 95) < 2.5
    # pulses stand far above the background, and the gaps between pulses fall back to it
    centres_power = np.median(envelope[song.pulse_centres] ** 2)
    assert centres_power > 100 * np.median(ambient**2)
    same_train = song.pulse_trains[1:] == song.pulse_trains[:-1]
    between = ((song.pulses["stop"].to_numpy()[:-1] + song.pulses["start"].to_numpy()[1:]) // 2)[same_train]
    assert np.median(envelope[between] ** 2) < 3 * np.median(ambient**2)
    # the peak amplitude of each pulse is what the truth says (noise aside)
    peaks = [np.max(np.abs(x[s : e + 1])) for s, e in zip(song.pulses["start"], song.pulses["stop"])]
    trains = song.events.iloc[song.pulse_trains]["peak_counts"].to_numpy()
    ratio = np.median(np.array(peaks) / trains)
    assert 0.85 < ratio < 1.2


def test_pulse_carrier_follows_the_parameters():
    params = SongParams(pulse_carrier_hz=320.0, pulse_carrier_sd_hz=0.0, pulse_carrier_jitter_hz=0.0,
                        pulse_duration_s=(0.009, 0.010))
    song = make_song(60, 5000, seed=9, params=params)
    x = song.samples.astype(float)
    window = int(0.02 * song.rate)
    spectra = []
    for centre in song.pulse_centres:
        segment = x[centre - window // 2 : centre + window // 2]
        spectra.append(np.abs(np.fft.rfft(segment, n=4 * window)) ** 2)
    freqs = np.fft.rfftfreq(4 * window, 1 / song.rate)
    assert freqs[np.argmax(np.mean(spectra, axis=0))] == pytest.approx(320.0, abs=25.0)


def test_background_is_coloured_at_the_requested_level(song):
    x = song.samples.astype(float)
    ambient = x[_song_free(song, round(0.05 * song.rate))]
    mad = np.median(np.abs(ambient - np.median(ambient)))
    assert mad == pytest.approx(0.6745 * song.params.noise_rms_counts, rel=0.1)
    freqs, power = signal.welch(ambient, song.rate, nperseg=512)
    low = power[(freqs > 30) & (freqs < 90)].mean()
    high = power[(freqs > 600) & (freqs < 1100)].mean()
    assert 10 * np.log10(low / high) > 10


def test_distractors_are_as_loud_as_song_but_not_song(song):
    x = song.samples.astype(float)
    distractors = song.distractors
    assert set(distractors["label"]) == {"click", "bump"}
    peaks = np.array([np.max(np.abs(x[s : e + 1])) for s, e in zip(distractors["start"], distractors["stop"])])
    mad = np.median(np.abs(x - np.median(x)))
    assert (peaks > 9 * mad).mean() > 0.9  # SongExplorer's default time threshold finds them
    song_tics = np.zeros(song.ntics, bool)
    for s, e in zip(song.sines["start"], song.sines["stop"]):
        song_tics[s : e + 1] = True
    for s, e in zip(song.pulses["start"], song.pulses["stop"]):
        song_tics[s : e + 1] = True
    for s, e in zip(distractors["start"], distractors["stop"]):
        assert not song_tics[s : e + 1].any()


def test_int16_without_clipping_and_clipping_is_refused(song_at_rate):
    song = song_at_rate
    assert song.samples.dtype == np.int16 and song.samples.shape == (song.ntics,)
    assert np.abs(song.samples.astype(int)).max() < 32767
    with pytest.raises(ValueError, match="clip"):
        make_song(30, song.rate, seed=1, params=SongParams(pulse_peak_counts=(30000.0, 40000.0)))


def test_one_hour_generates_in_a_few_seconds():
    begin = time.perf_counter()
    song = make_song(3600, 2500, seed=1)
    elapsed = time.perf_counter() - begin
    assert song.ntics == 9_000_000 and len(song.pulses) > 5000
    assert elapsed < 10.0, f"one hour took {elapsed:.1f} s"


# --------------------------------------------------------------------------------------------
# files and annotations


def test_written_wav_round_trips(tmp_path):
    song = make_song(20, 5000, seed=2, wav="fly.wav")
    path = write_song(song, tmp_path / "fly.wav")
    assert path == tmp_path / "fly.wav"
    info = soundfile.info(path)
    assert (info.samplerate, info.channels, info.subtype, info.format) == (5000, 1, "PCM_16", "WAV")
    rate, samples = read_recording(path)
    assert rate == 5000
    np.testing.assert_array_equal(samples[:, 0], song.samples)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fly.wav"]  # no temporary file left behind


def test_writing_under_another_name_needs_renaming(tmp_path):
    song = make_song(5, seed=2)
    with pytest.raises(ValueError, match="renamed"):
        write_song(song, tmp_path / "other.wav")
    renamed = song.renamed("other.wav")
    write_song(renamed, tmp_path / "other.wav")
    assert (renamed.pulses["wav"] == "other.wav").all() and (renamed.events["wav"] == "other.wav").all()
    np.testing.assert_array_equal(renamed.pulses["start"], song.pulses["start"])


def test_seed_annotations_are_a_subset_of_the_truth(song, tmp_path):
    table = seed_annotations(song, {PULSE_LABEL: 40, SINE_LABEL: 12, AMBIENT_LABEL: 15}, seed=1)
    assert table["label"].value_counts().to_dict() == {PULSE_LABEL: 40, AMBIENT_LABEL: 15, SINE_LABEL: 12}
    assert (table["kind"] == "annotated").all() and (table["wav"] == song.wav).all()
    assert table["start"].is_monotonic_increasing

    pulses = table[table["label"] == PULSE_LABEL]
    assert (pulses["start"] == pulses["stop"]).all()
    assert set(pulses["start"]) <= set(song.pulse_centres.tolist())
    assert pulses["start"].nunique() == 40

    sines = table[table["label"] == SINE_LABEL]
    ramp = round(song.params.sine_ramp_s * song.rate)
    inside = [np.flatnonzero((song.sines["start"] + ramp <= s) & (e <= song.sines["stop"] - ramp))
              for s, e in zip(sines["start"], sines["stop"])]
    assert [len(bouts) for bouts in inside] == [1] * 12
    assert len({int(bouts[0]) for bouts in inside}) == 12  # one range per bout, like a person
    assert (sines["stop"] > sines["start"]).all()

    ambient = table[table["label"] == AMBIENT_LABEL]
    margin = round(0.05 * song.rate)
    truth = song.song()
    assert (ambient["start"].to_numpy()[1:] > ambient["stop"].to_numpy()[:-1]).all()
    for s, e in zip(ambient["start"], ambient["stop"]):
        assert 0.5 * song.rate <= e - s + 1 <= 3.0 * song.rate
        assert not ((truth["start"] - margin <= e) & (s <= truth["stop"] + margin)).any()

    again = seed_annotations(song, {PULSE_LABEL: 40, SINE_LABEL: 12, AMBIENT_LABEL: 15}, seed=1)
    pd.testing.assert_frame_equal(table, again)
    other = seed_annotations(song, {PULSE_LABEL: 40, SINE_LABEL: 12, AMBIENT_LABEL: 15}, seed=2)
    assert not table["start"].equals(other["start"])

    # they are valid SongExplorer CSV rows
    path = write_intervals_csv(table, tmp_path / f"{song.wav}-annotated-person1.csv")
    pd.testing.assert_frame_equal(read_intervals_csv(path, recording_tics={song.wav: song.ntics}), table)


def test_seed_annotations_with_one_count_and_jitter(song):
    table = seed_annotations(song, 10, seed=3, pulse_jitter_s=0.002)
    assert table["label"].value_counts().to_dict() == {PULSE_LABEL: 10, SINE_LABEL: 10, AMBIENT_LABEL: 10}
    points = table[table["label"] == PULSE_LABEL]["start"].to_numpy()
    row = np.searchsorted(song.pulses["start"].to_numpy(), points, side="right") - 1
    assert (points <= song.pulses["stop"].to_numpy()[row]).all()  # each jittered point stays in its pulse
    assert not set(points) <= set(song.pulse_centres.tolist())  # and the jitter does move them


def test_more_seed_ranges_than_bouts_split_the_bouts():
    song = make_song(60, seed=4)
    nbouts = len(song.sines)
    table = seed_annotations(song, {SINE_LABEL: 3 * nbouts, AMBIENT_LABEL: 40}, seed=5, sine_min_s=0.05)
    sines = table[table["label"] == SINE_LABEL]
    assert len(sines) == 3 * nbouts
    assert (sines["stop"] - sines["start"] + 1 >= 0.05 * song.rate).all()
    assert (sines["start"].to_numpy()[1:] > sines["stop"].to_numpy()[:-1]).all()  # no overlaps
    bout = np.searchsorted(song.sines["start"].to_numpy(), sines["start"].to_numpy(), side="right") - 1
    assert (sines["stop"].to_numpy() <= song.sines["stop"].to_numpy()[bout]).all()
    # spread like a person: every bout with room for three ranges gets three
    ramp = round(song.params.sine_ramp_s * song.rate)
    roomy = (song.sines["stop"] - song.sines["start"] + 1 - 2 * ramp >= 3 * 0.05 * song.rate).to_numpy()
    assert (np.bincount(bout, minlength=nbouts)[roomy] >= 3).all()
    ambient = table[table["label"] == AMBIENT_LABEL]
    assert len(ambient) == 40
    assert (ambient["start"].to_numpy()[1:] > ambient["stop"].to_numpy()[:-1]).all()
    truth = song.song()
    for s, e in zip(ambient["start"], ambient["stop"]):
        assert not ((truth["start"] <= e) & (s <= truth["stop"])).any()


def test_seed_annotations_refuse_more_than_the_song_has():
    song = make_song(30, seed=4)
    with pytest.raises(ValueError, match="'mel-pulse' annotations but the song has only"):
        seed_annotations(song, {PULSE_LABEL: len(song.pulses) + 1}, seed=0)
    seconds_of_sine = (song.sines["stop"] - song.sines["start"] + 1).sum() / song.rate
    with pytest.raises(ValueError, match="mel-sine.*longer song"):
        seed_annotations(song, {SINE_LABEL: int(seconds_of_sine / 0.1) + 1}, seed=0)
    with pytest.raises(ValueError, match="ambient.*longer song"):
        seed_annotations(song, {AMBIENT_LABEL: int(song.duration_s / 0.5) + 1}, seed=0)
    fewer = seed_annotations(song, {PULSE_LABEL: len(song.pulses) + 5, SINE_LABEL: 10_000}, seed=0, allow_fewer=True)
    assert (fewer["label"] == PULSE_LABEL).sum() == len(song.pulses)
    assert (fewer["label"] == SINE_LABEL).sum() == int(((song.sines["stop"] - song.sines["start"] + 1
                                                          - 2 * round(0.03 * song.rate)) // round(0.1 * song.rate)).sum())
    with pytest.raises(ValueError, match="unknown label"):
        seed_annotations(song, {"mel-song": 3}, seed=0)


def test_dense_annotations_hold_every_pulse_and_bout(song):
    table = dense_annotations(song)
    pulses = table[table["label"] == PULSE_LABEL]
    sines = table[table["label"] == SINE_LABEL]
    np.testing.assert_array_equal(pulses["start"], song.pulse_centres)
    assert (pulses["stop"] == pulses["start"]).all()
    np.testing.assert_array_equal(sines[["start", "stop"]], song.sines[["start", "stop"]])
    assert len(table) == len(song.pulses) + len(song.sines)
    assert (table["kind"] == "annotated").all()


# --------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"ipi_range_s": (0.045, 0.025)}, "low <= high"),
        ({"pulse_duration_s": (0.01, 0.03)}, "overlap"),
        ({"noise_rms_counts": -1.0}, "noise_rms_counts"),
        ({"noise_highpass_hz": 200.0}, "noise_highpass_hz"),
        ({"click_fraction": 1.5}, "click_fraction"),
    ],
)
def test_bad_parameters_are_refused_with_the_fix(changes, message):
    with pytest.raises(ValueError, match=message):
        SongParams(**changes)


def test_rate_too_low_or_events_too_dense_are_refused():
    with pytest.raises(ValueError, match="rate 500 Hz is too low"):
        make_song(10, 500, seed=0)
    with pytest.raises(ValueError, match="no room"):
        make_song(10, seed=0, params=SongParams(pulse_train_rate_per_min=200.0))
    with pytest.raises(ValueError, match="duration_s"):
        make_song(0, seed=0)
