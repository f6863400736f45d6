"""SongExplorer's time/frequency threshold detector, on recordings whose contents are known."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
from scipy import special, stats
from scipy.signal import windows

from songexplorer_cli import main as cli_main
from songexplorer_core.detect import (
    CHUNK_TICS,
    DetectParams,
    detect,
    detect_recording,
    detected_csv_text,
    frequency_runs,
    harmonic_f_test,
    line_flags,
    multitaper_tapers,
    closed_runs,
    mask_runs,
    quiet_runs,
    skimage_closing,
    skimage_opening,
    time_runs,
    window_flags,
    write_detected_csv,
)

RATE = 2500
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
TUTORIAL = SHARED / "data" / "songexplorer-tutorial"
TUTORIAL_WAVS = ("PS_20130625111709_ch3.wav", "20161207T102314_ch1.wav", "Antigua_20110313095210_ch26.wav")


# --------------------------------------------------------------------------------------------
# generated recordings with known contents


def noise(ntics, sigma=300.0, seed=0):
    return np.random.default_rng(seed).normal(0.0, sigma, ntics)


def add_click(x, start, length=5, peak=9000.0):
    """A decaying broadband click occupying tics [start, start+length)."""
    x[start:start + length] += peak * np.exp(-np.arange(length) / length) * np.where(np.arange(length) % 2, -1, 1)


def add_tone(x, start, length, hz, amplitude):
    t = np.arange(length) / RATE
    x[start:start + length] += amplitude * np.sin(2 * np.pi * hz * t + 0.3)


def as_int16(x):
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def overlaps(rows, start, stop):
    """Rows (start, stop) overlapping the inclusive tic span [start, stop]."""
    return rows[(rows["start"] <= stop) & (rows["stop"] >= start)]


@pytest.fixture(scope="module")
def song():
    """60 s of noise with 30 clicks and 30 tone bursts at known, separated positions."""
    rng = np.random.default_rng(42)
    ntics = 60 * RATE
    x = noise(ntics, seed=1)
    slots = np.arange(60) * RATE + RATE // 4  # one event per second
    order = rng.permutation(60)
    clicks, tones = [], []
    for i, slot in enumerate(slots[order]):
        if i % 2 == 0:
            add_click(x, slot, peak=float(rng.uniform(6000, 12000)))
            clicks.append((slot, slot + 4))
        else:
            length = int(rng.integers(400, 800))  # 160-320 ms
            add_tone(x, slot, length, hz=float(rng.uniform(150, 600)), amplitude=float(rng.uniform(500, 900)))
            tones.append((slot, slot + length - 1))
    return as_int16(x), sorted(clicks), sorted(tones)


# --------------------------------------------------------------------------------------------
# parameters


def test_defaults_are_songexplorers_and_resolve_to_its_tics():
    params = DetectParams()
    assert params == DetectParams.from_strings()
    assert params == DetectParams.from_songexplorer(
        {"time_sigma": "9,4", "time_smooth": "6.4", "frequency_n": "25.6", "frequency_nw": "4",
         "frequency_p": "0.1,1.0", "frequency_range": "0-", "frequency_smooth": "25.6",
         "time_sigma_robust": "median"})
    assert DetectParams.from_songexplorer(params.to_songexplorer()) == params
    settings = params.settings(RATE)
    assert settings.time_smooth_tics == 16
    assert settings.window_tics == 64 and settings.nfft == 256
    assert settings.ntapers == 7  # of 8 DPSS tapers, 7 have concentration > 0.9
    assert settings.smooth_windows == 2
    assert settings.p_signal == pytest.approx(0.1 / 256) and settings.p_noise == pytest.approx(1 / 256)
    assert settings.threshold_signal == pytest.approx(38.04, abs=0.01)
    assert settings.threshold_noise == pytest.approx(16.05, abs=0.01)
    assert (settings.low_cycles, settings.high_cycles) == (0.0, 0.5)


def test_string_forms_parse_like_songexplorers_gui():
    params = DetectParams.from_strings(time_sigma="6, 3", frequency_range="100-800", frequency_p="0.5,2",
                                       time_sigma_robust="mean")
    assert params.time_sigma == (6, 3)
    assert params.frequency_range_hz == (100.0, 800.0)
    assert params.frequency_p == (0.5, 2.0)
    assert DetectParams.from_strings(frequency_range="-600").frequency_range_hz == (0.0, 600.0)
    settings = params.settings(RATE)
    assert (settings.low_cycles, settings.high_cycles) == (100 / RATE, 800 / RATE)


@pytest.mark.parametrize(
    "strings, message",
    [
        ({"time_sigma": "9"}, "time_sigma must be two"),
        ({"time_sigma": "9.5,4"}, "whole numbers"),
        ({"frequency_p": "0.1"}, "frequency_p must be two"),
        ({"frequency_p": "0,1"}, "must be > 0"),
        ({"frequency_range": "100"}, "low-high"),
        ({"frequency_range": "a-b"}, "numbers in Hz"),
        ({"frequency_range": "800-100"}, "low <= high"),
        ({"frequency_nw": "four"}, "frequency_nw must be a whole number"),
        ({"time_smooth": "-1"}, "positive number of milliseconds"),
        ({"time_sigma_robust": "max"}, "time_sigma_robust must be one of"),
    ],
)
def test_bad_strings_are_refused_naming_the_parameter(strings, message):
    with pytest.raises(ValueError, match=message):
        DetectParams.from_strings(**strings)


def test_unknown_songexplorer_key_is_refused():
    with pytest.raises(ValueError, match="unknown detection parameter"):
        DetectParams.from_songexplorer({"time_sigmas": "9,4"})


@pytest.mark.parametrize(
    "params, message",
    [
        (DetectParams(frequency_n_ms=20.0), r"power of two when converted to tics: 20 ms is 50 tics.*12.8 ms \(=32 tics\).*25.6 ms \(=64 tics\)"),
        (DetectParams(time_smooth_ms=0.1), "at least one tic"),
        (DetectParams(frequency_smooth_ms=10.0), "shorter than the window hop"),
        (DetectParams(frequency_nw=40), "less than N/2"),
        (DetectParams(frequency_p=(400.0, 1.0)), "below 1"),
    ],
)
def test_parameters_unusable_at_the_rate_are_explained(params, message):
    with pytest.raises(ValueError, match=message):
        params.settings(RATE)


# --------------------------------------------------------------------------------------------
# morphology: scikit-image's closing/opening with its default border mode


def runs_of(mask):
    mask = np.asarray(mask, dtype=np.int8)
    edges = np.flatnonzero(np.diff(np.r_[0, mask, 0]))
    return [tuple(pair) for pair in edges.reshape(-1, 2)]


def test_closing_fills_gaps_shorter_than_the_footprint():
    for gap, filled in ((15, True), (16, False)):
        mask = np.r_[np.zeros(40), np.ones(30), np.zeros(gap), np.ones(30), np.zeros(40)].astype(bool)
        expected = [(40, 70 + gap + 30)] if filled else [(40, 70), (70 + gap, 70 + gap + 30)]
        assert runs_of(skimage_closing(mask, 16)) == expected


def test_closing_reflects_at_the_borders_as_skimage_does():
    # A run this close to the start of the array is extended to tic 0 (8 or fewer tics away
    # for a 16-tic footprint), and to the end when 7 or fewer away: skimage 0.26's reflect mode.
    for gap, extended in ((8, True), (9, False)):
        mask = np.r_[np.zeros(gap), np.ones(30), np.zeros(60)].astype(bool)
        assert runs_of(skimage_closing(mask, 16))[0][0] == (0 if extended else gap)
    for gap, extended in ((7, True), (8, False)):
        mask = np.r_[np.zeros(60), np.ones(30), np.zeros(gap)].astype(bool)
        assert runs_of(skimage_closing(mask, 16))[-1][1] == (mask.size if extended else mask.size - gap)
    assert not skimage_closing(np.zeros(50, bool), 16).any()


def test_running_filters_agree_with_the_footprint_definition():
    from songexplorer_core.detect.morphology import _closing_by_footprint, _opening_by_footprint

    rng = np.random.default_rng(0)
    for length in (2, 3, 4, 15, 16, 17):
        for _ in range(200):
            mask = rng.random(int(rng.integers(1, 8 * length))) < rng.random()
            np.testing.assert_array_equal(skimage_closing(mask, length), _closing_by_footprint(mask, length))
            np.testing.assert_array_equal(skimage_opening(mask, length), _opening_by_footprint(mask, length))


def test_closing_computed_on_runs_equals_closing_the_mask():
    rng = np.random.default_rng(1)
    for length in (1, 2, 3, 8, 15, 16, 17):
        for _ in range(300):
            mask = rng.random(int(rng.integers(1, 10 * length + 5))) < rng.random() ** 2
            if rng.random() < 0.3:
                mask[: rng.integers(0, mask.size + 1)] = False
            if rng.random() < 0.3:
                mask[rng.integers(0, mask.size + 1):] = False
            np.testing.assert_array_equal(closed_runs(mask, length), mask_runs(skimage_closing(mask, length)))


def test_opening_removes_single_windows_and_keeps_pairs():
    mask = np.zeros(30, bool)
    mask[[5, 10, 11, 20, 21, 22]] = True
    assert runs_of(skimage_opening(mask, 2)) == [(10, 12), (20, 23)]
    # at the borders: a lone first window goes, a lone last window stays (reflect mode)
    edges = np.zeros(10, bool)
    edges[[0, 9]] = True
    assert runs_of(skimage_opening(edges, 2)) == [(9, 10)]


# --------------------------------------------------------------------------------------------
# the multitaper F-test


def reference_f_test(window, tapers, nfft):
    """Thomson's harmonic F-test of one window, written out plainly (full complex FFT)."""
    x = window.astype(float) - window.mean()
    ntapers = len(tapers)
    spectra = np.array([np.fft.fft(taper * x, nfft)[: nfft // 2 + 1] for taper in tapers])
    sums = tapers.sum(axis=1)
    mu = sums @ spectra / (sums @ sums)
    f_stat = np.ones(nfft // 2 + 1)
    for b in range(1, nfft // 2 + 1):
        residual = sum(abs(spectra[k, b] - sums[k] * mu[b]) ** 2 for k in range(ntapers))
        with np.errstate(invalid="ignore"):
            f_stat[b] = 0.5 * abs(mu[b]) ** 2 * (sums @ sums) / (residual / (2 * ntapers - 2))
    return f_stat, mu


def reference_lines(f_stat, mu, threshold, ntapers, nfft):
    """nitime's detect_lines rule for one window: line frequencies in cycles per tic."""
    groups = []
    for b in np.flatnonzero(f_stat > threshold):
        if groups and b - groups[-1][-1] < ntapers:
            groups[-1].append(b)
        else:
            groups.append([b])
    best = [max(group, key=lambda b: abs(mu[b])) for group in groups]
    return [b / nfft for b in best if b > 0]


def test_tapers_are_the_well_concentrated_slepian_sequences():
    tapers, ratios = multitaper_tapers(64, 4)
    all_tapers, all_ratios = windows.dpss(64, 4, 8, return_ratios=True)
    assert tapers.shape == (7, 64) and np.all(ratios > 0.9) and all_ratios[7] < 0.9
    np.testing.assert_allclose(np.sum(tapers**2, axis=1), 1.0)
    np.testing.assert_allclose(tapers, all_tapers[:7])


def test_vectorised_f_test_equals_the_per_window_computation():
    rng = np.random.default_rng(7)
    x = noise(64 * 300, seed=7)
    add_tone(x, 3000, 4000, 312.0, 400.0)
    add_tone(x, 9000, 2000, 95.0, 150.0)
    frames = as_int16(x).reshape(-1, 64)
    frames = np.concatenate([frames, rng.integers(-3, 4, (5, 64)), np.full((2, 64), 17)])  # near-silent, constant
    tapers, _ = multitaper_tapers(64, 4)
    f_stat, mu = harmonic_f_test(frames, tapers, 256)
    for i, frame in enumerate(frames):
        expected_f, expected_mu = reference_f_test(frame, tapers, 256)
        if np.ptp(frame) == 0:
            assert np.all(np.isnan(f_stat[i, 1:]))  # 0/0: never a line
            continue
        np.testing.assert_allclose(f_stat[i], expected_f, rtol=1e-9)
        np.testing.assert_allclose(mu[i], expected_mu, rtol=1e-9, atol=1e-9 * np.abs(expected_mu).max())
    settings = DetectParams().settings(RATE)
    for threshold in (settings.threshold_signal, settings.threshold_noise, 3.0):
        for low, high in ((0.0, 0.5), (0.1, 0.2), (0.0, 0.05)):
            flags = line_flags(f_stat, mu, threshold, ntapers=7, nfft=256, low_cycles=low, high_cycles=high)
            expected = [any(low <= f <= high for f in reference_lines(fs, m, threshold, 7, 256))
                        for fs, m in zip(f_stat, mu)]
            np.testing.assert_array_equal(flags, expected)
    assert flags[:40].sum() < flags[47:110].sum()  # the 312 Hz tone (tics 3000-7000) is found


def test_f_statistic_of_white_noise_follows_its_f_distribution():
    tapers, _ = multitaper_tapers(64, 4)
    frames = noise((4000, 64), sigma=1000.0, seed=3)
    f_stat, _ = harmonic_f_test(frames, tapers, 256)
    interior = f_stat[:, 12:117]  # away from 0 Hz (the mean is removed) and Nyquist
    for p in (0.05, 0.01):
        # Thomson's statistic has 2 and 2K-2 degrees of freedom under the null
        assert (interior > stats.f.isf(p, 2, 2 * 7 - 2)).mean() == pytest.approx(p, rel=0.15)


def test_white_noise_flags_no_more_windows_than_the_per_bin_p_value_allows():
    x = as_int16(noise(200 * RATE, seed=11))
    settings = DetectParams().settings(RATE)
    (offset, signal, quiet), = list(window_flags(x, settings))
    nbins = settings.nfft // 2
    # Bonferroni: a window has a false line with probability at most nbins * p
    assert signal.mean() <= nbins * settings.p_signal
    assert quiet.mean() <= nbins * settings.p_noise
    rows = detect(x, RATE)
    assert (rows["label"] == "frequency").sum() <= 0.01 * len(signal)


# --------------------------------------------------------------------------------------------
# detection on recordings with known events


def test_finds_clicks_as_time_and_tone_bursts_as_frequency(song):
    samples, clicks, tones = song
    rows = detect(samples, RATE, wav="song.wav")
    assert set(rows["kind"]) == {"detected"} and set(rows["wav"]) == {"song.wav"}
    time_rows = rows[rows["label"] == "time"]
    frequency_rows = rows[rows["label"] == "frequency"]
    quiet_rows = rows[rows["label"] == "neither"]
    found_clicks = sum(len(overlaps(time_rows, a, b)) > 0 for a, b in clicks)
    found_tones = sum(len(overlaps(frequency_rows, a, b)) > 0 for a, b in tones)
    assert found_clicks >= 0.95 * len(clicks)
    assert found_tones >= 0.95 * len(tones)
    # what is found is what was put there
    on_tones = sum(any(a <= r.stop and r.start <= b for a, b in tones) for r in frequency_rows.itertuples())
    assert on_tones >= 0.9 * len(frequency_rows)
    on_clicks = sum(any(a - 16 <= r.stop and r.start <= b + 16 for a, b in clicks) for r in time_rows.itertuples())
    assert on_clicks >= 0.9 * len(time_rows)
    # nothing that was put there is called quiet, except up to 3N/4 = 48 tics at a tone's ends:
    # windows straddling an end hold too little of the tone, and SongExplorer's window formula
    # places frequency rows N/4 = 16 tics early
    for a, b in clicks:
        assert overlaps(quiet_rows, a, b).empty
    for a, b in tones:
        assert overlaps(quiet_rows, a + 48, b - 48).empty
    # rows come time, frequency, neither, each ascending
    order = rows["label"].map({"time": 0, "frequency": 1, "neither": 2})
    assert order.is_monotonic_increasing
    for label in ("time", "frequency", "neither"):
        assert rows.loc[rows["label"] == label, "start"].is_monotonic_increasing


def expected_noise_events(ntics, sigma, threshold, smooth_tics):
    """Events in Gaussian noise: an exceedance of |x| > threshold (integer samples) starts a new
    event unless another came within the previous ``smooth_tics`` tics (closing merges them)."""
    p = special.erfc((threshold + 0.5) / sigma / np.sqrt(2))
    return ntics * p * (1 - p) ** smooth_tics


@pytest.mark.parametrize("sigma_signal", [4, 5])
def test_pure_noise_gives_the_time_events_the_threshold_implies(sigma_signal):
    sigma = 1000.0
    x = as_int16(noise(1_000_000, sigma=sigma, seed=sigma_signal))
    mad = stats.median_abs_deviation(x)
    settings = DetectParams(time_sigma=(sigma_signal, 2)).settings(RATE)
    signal, _ = time_runs(x, settings)
    expected = expected_noise_events(x.size, sigma, np.floor(sigma_signal * mad), settings.time_smooth_tics)
    assert abs(len(signal) - expected) <= 5 * np.sqrt(expected)


def test_pure_noise_has_no_time_events_at_the_default_threshold():
    x = as_int16(noise(2_000_000, sigma=1000.0, seed=5))
    rows = detect(x, RATE)
    # 9 MADs is 6.07 standard deviations: about 0.003 exceedances expected in 2M tics
    assert (rows["label"] == "time").sum() == 0
    assert (rows["label"] == "neither").sum() > 0


def test_block_size_does_not_change_the_flags(song):
    samples, _, _ = song
    settings = DetectParams().settings(RATE)
    reference = list(window_flags(samples[:, None][:, 0], settings, block_windows=4096))
    for block in (1, 7, 128):
        for (o1, s1, n1), (o2, s2, n2) in zip(reference, window_flags(samples, settings, block_windows=block)):
            assert o1 == o2
            np.testing.assert_array_equal(s1, s2)
            np.testing.assert_array_equal(n1, n2)


def test_recordings_shorter_than_a_window_still_get_time_rows():
    # SongExplorer stops with an error on these (skimage on an empty window array)
    assert detect(np.zeros(0, np.int16), RATE).empty
    x = np.zeros(50, np.int16)
    x[20:23] = 1000
    rows = detect(x, RATE)
    assert rows[["start", "stop", "label"]].values.tolist() == [[20, 23, "time"]]


def test_tone_across_a_chunk_border_is_split_there():
    ntics = CHUNK_TICS + 20_000
    x = noise(ntics, seed=9)
    add_tone(x, CHUNK_TICS - 5000, 10_000, 250.0, 800.0)
    rows = detect(as_int16(x), RATE)
    frequency = rows[rows["label"] == "frequency"]
    near = overlaps(frequency, CHUNK_TICS - 5000, CHUNK_TICS + 5000)
    assert len(near) == 2  # SongExplorer analyses 1048576-tic chunks separately
    first, second = near.iloc[0], near.iloc[1]
    assert first["stop"] <= CHUNK_TICS + 16 and first["start"] <= CHUNK_TICS - 4000
    assert second["start"] == CHUNK_TICS - 16 and second["stop"] >= CHUNK_TICS + 4000


# --------------------------------------------------------------------------------------------
# SongExplorer's tic conventions (quirks 1-3) and the fixed alternative


def test_time_rows_have_exclusive_stops_unless_fixed():
    x = noise(20_000, seed=2)
    x[8000:8005] = 15000.0
    samples = as_int16(x)
    quirky = detect(samples, RATE)
    fixed = detect(samples, RATE, quirks=False)
    assert quirky.loc[quirky["label"] == "time", ["start", "stop"]].values.tolist() == [[8000, 8005]]
    assert fixed.loc[fixed["label"] == "time", ["start", "stop"]].values.tolist() == [[8000, 8004]]


def test_frequency_rows_use_the_window_formula_unless_fixed():
    x = noise(20_000, seed=3)
    add_tone(x, 0, 2048, 300.0, 900.0)  # windows 0..62 (hop 32) hold the tone
    samples = as_int16(x)
    quirky = detect(samples, RATE)
    fixed = detect(samples, RATE, quirks=False)
    first = quirky[quirky["label"] == "frequency"].iloc[0]
    assert first["start"] == -16  # x*N/2 - N/4 for a run starting at window 0
    assert (first["stop"] - 16) % 32 == 0
    first_fixed = fixed[fixed["label"] == "frequency"].iloc[0]
    assert first_fixed["start"] == 0
    assert first_fixed["stop"] == first["stop"] + 16 - 1  # the last window's last tic
    assert (fixed["start"] >= 0).all() and (fixed["stop"] < samples.size).all() and (fixed["stop"] >= fixed["start"]).all()


def test_quiet_runs_reproduce_combine_events():
    time_noise = np.array([[10, 20]])  # exclusive stop: covers 10..20 in combine_events
    frequency_noise = np.array([[-16, 48], [100, 160]])  # -16 wraps: covers nothing
    assert quiet_runs(time_noise, frequency_noise).tolist() == [[21, 99]]  # 0..9 touches tic 0: dropped
    fixed = quiet_runs(np.array([[10, 19]]), np.array([[0, 47], [100, 159]]), ntics=200, quirks=False)
    assert fixed.tolist() == [[48, 99], [160, 199]]
    assert quiet_runs(np.empty((0, 2), int), np.empty((0, 2), int)).shape == (0, 2)


def combine_events_reference(events1, events2):
    """SongExplorer's combine_events(..., not a and not b), tic by tic with Python slices."""
    length = max([int(e[1]) for e in list(events1) + list(events2)] + [0])
    a, b = np.zeros(length, bool), np.zeros(length, bool)
    for event in events1:
        a[int(event[0]):int(event[1]) + 1] = True
    for event in events2:
        b[int(event[0]):int(event[1]) + 1] = True
    quiet = ~a & ~b
    changes = np.flatnonzero(np.diff(quiet))
    runs, i = [], 1
    while i < len(changes):
        if not quiet[changes[i]]:
            i += 1
            continue
        runs.append([changes[i - 1] + 1, changes[i]])
        i += 2
    return runs


def test_quiet_runs_equal_combine_events_on_random_intervals():
    rng = np.random.default_rng(2)
    for _ in range(2000):
        length = int(rng.integers(1, 300))

        def intervals(count):
            starts = rng.integers(-40, length, count)
            return np.column_stack((starts, starts + rng.integers(0, 60, count)))

        time_noise, frequency_noise = intervals(rng.integers(0, 6)), intervals(rng.integers(0, 6))
        assert quiet_runs(time_noise, frequency_noise).tolist() == combine_events_reference(time_noise, frequency_noise)


def test_quiet_end_of_recording_is_reported_only_when_fixed():
    x = noise(30_000, seed=4)
    add_click(x, 10_000)
    samples = as_int16(x)
    quirky = detect(samples, RATE)
    fixed = detect(samples, RATE, quirks=False)
    quiet, quiet_fixed = quirky[quirky["label"] == "neither"], fixed[fixed["label"] == "neither"]
    assert quiet["stop"].max() < samples.size - 1
    assert quiet_fixed["stop"].max() == samples.size - 1
    assert quiet["start"].min() > 0 and quiet_fixed["start"].min() == 0


# --------------------------------------------------------------------------------------------
# several channels


def test_each_channel_is_detected_on_its_own_with_numbered_labels(song):
    samples, _, _ = song
    other = noise(samples.size, sigma=200.0, seed=8)
    add_tone(other, 40_000, 3000, 440.0, 700.0)
    add_click(other, 90_000, peak=8000.0)
    stereo = np.column_stack([samples, as_int16(other)])
    rows = detect(stereo, RATE, wav="stereo.wav")
    assert set(rows["label"]) == {"time0", "frequency0", "neither0", "time1", "frequency1", "neither1"}
    for channel in (0, 1):
        mono = detect(stereo[:, channel], RATE, wav="stereo.wav")
        mine = rows[rows["label"].str.endswith(str(channel))].reset_index(drop=True)
        mono["label"] = mono["label"] + str(channel)
        pd.testing.assert_frame_equal(mine, mono)
    kinds = rows["label"].str[:-1].map({"time": 0, "frequency": 1, "neither": 2})
    assert kinds.is_monotonic_increasing  # all time rows, then frequency, then neither
    # mono output keeps SongExplorer's unnumbered labels
    assert set(detect(samples, RATE)["label"]) == {"time", "frequency", "neither"}


# --------------------------------------------------------------------------------------------
# files and the command line


def write_wav(path, samples, rate=RATE):
    soundfile.write(str(path), samples, rate, subtype="PCM_16")
    return path


def test_detect_recording_reads_the_file_and_names_it_in_errors(tmp_path, song):
    samples, _, _ = song
    path = write_wav(tmp_path / "song.wav", samples)
    rows = detect_recording(path)
    pd.testing.assert_frame_equal(rows, detect(samples, RATE, wav="song.wav"))
    with pytest.raises(ValueError, match="missing.wav"):
        detect_recording(tmp_path / "missing.wav")
    with pytest.raises(ValueError, match="song.wav.*2500 Hz but this project expects 5000"):
        detect_recording(path, expected_rate=5000)
    odd_rate = write_wav(tmp_path / "odd.wav", samples[:30_000], rate=3000)
    with pytest.raises(ValueError, match="odd.wav.*power of two"):
        detect_recording(odd_rate)


def test_detected_csv_is_songexplorers_format_written_atomically(tmp_path):
    rows = detect(as_int16(np.r_[noise(3000, seed=6)]), RATE, wav="a.wav")
    extra = pd.DataFrame({"wav": ["a.wav"], "start": [-16], "stop": [48], "kind": ["detected"], "label": ["frequency"]})
    rows = pd.concat([rows, extra], ignore_index=True)
    path = write_detected_csv(rows, tmp_path / "a.wav-detected.csv")
    text = path.read_text()
    assert text == detected_csv_text(rows)
    assert text.endswith("a.wav,-16,48,detected,frequency\n") and "\r" not in text
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav-detected.csv"]


def test_cli_writes_one_csv_per_recording_and_skips_bad_files_by_name(tmp_path, song, capsys):
    samples, _, _ = song
    good = write_wav(tmp_path / "good.wav", samples)
    other = write_wav(tmp_path / "other.wav", samples[: 20 * RATE])
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav")
    out = tmp_path / "out"
    code = cli_main(["detect", str(good), str(bad), str(other), "--out-dir", str(out), "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert "bad.wav" in err and "not a readable audio file" in err
    assert sorted(p.name for p in out.iterdir()) == ["good.wav-detected.csv", "other.wav-detected.csv"]
    assert (out / "good.wav-detected.csv").read_text() == detected_csv_text(detect_recording(good))
    # parameters reach the detector
    code = cli_main(["detect", str(other), "--out-dir", str(out), "--no-progress", "--time-sigma", "4,2",
                     "--fix-quirks"])
    assert code == 0
    expected = detect_recording(other, DetectParams(time_sigma=(4, 2)), quirks=False)
    assert (out / "other.wav-detected.csv").read_text() == detected_csv_text(expected)


def test_cli_refuses_bad_parameters_before_writing_anything(tmp_path, song, capsys):
    samples, _, _ = song
    good = write_wav(tmp_path / "good.wav", samples[: 5 * RATE])
    out = tmp_path / "out"
    assert cli_main(["detect", str(good), "--out-dir", str(out), "--time-sigma", "9"]) == 2
    assert "time_sigma must be two" in capsys.readouterr().err
    # N in tics depends on the rate: known up front with --audio-tic-rate, else per recording
    assert cli_main(["detect", str(good), "--out-dir", str(out), "--frequency-n-ms", "20",
                     "--audio-tic-rate", "2500"]) == 2
    assert "power of two" in capsys.readouterr().err
    assert cli_main(["detect", str(good), "--out-dir", str(out), "--frequency-n-ms", "20", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "good.wav" in err and "power of two" in err
    assert not out.exists() or not any(out.iterdir())


# --------------------------------------------------------------------------------------------
# SongExplorer's own output on its tutorial recordings


@pytest.mark.parametrize("wav", TUTORIAL_WAVS)
def test_reproduces_songexplorers_detections_row_for_row(wav):
    if not (TUTORIAL / wav).exists():
        pytest.skip("../shared/data/songexplorer-tutorial is not present")
    reference = (TUTORIAL / "reference-detected" / f"{wav}-detected.csv").read_text()
    assert detected_csv_text(detect_recording(TUTORIAL / wav)) == reference
