"""Making a synthetic recording (:func:`make_song`): the layout of trains, bouts and distractors,
the background noise, and every sound added into it; and writing it as a WAV."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile
from scipy import signal

from songexplorer_core.annotations import empty_intervals, intervals_frame
from songexplorer_core.atomic import atomic_path
from songexplorer_core.synth.model import (
    BUMP_LABEL, CLICK_LABEL, PULSE_LABEL, SINE_LABEL, TRUTH_KIND, SongParams, SynthSong,
)

_INT16_MAX = 32767
_NOISE_CHUNK_TICS = 1 << 20


def make_song(
    duration_s: float,
    rate: int = 2500,
    params: SongParams = SongParams(),
    *,
    seed: int,
    wav: str = "synth.wav",
) -> SynthSong:
    """Generate a synthetic recording of ``duration_s`` seconds at ``rate`` Hz.

    Args:
        duration_s: length of the recording, seconds.
        rate: sample rate, Hz (tics per second); must exceed twice ``params.highest_hz``.
        params: the song model's knobs.
        seed: the same seed (with the same other arguments) gives the same recording and truth.
        wav: basename written into the tables' ``wav`` column (``write_song`` checks it).

    Returns:
        A :class:`SynthSong`. Layout, song shapes and background noise come from three
        independent random streams, so changing only the noise knobs keeps the song's layout.

    Raises:
        ValueError: for a rate too low for the frequencies asked for, event rates too high to fit
            the events with ``min_gap_s`` of silence between them, or amplitudes that would clip.
    """
    rate = _check_rate(rate, params)
    if not np.isfinite(duration_s) or duration_s <= 0:
        raise ValueError(f"duration_s must be a positive number of seconds, got {duration_s!r}")
    ntics = int(round(duration_s * rate))
    wav = Path(wav).name
    layout_seed, shape_seed, noise_seed = np.random.SeedSequence(seed).spawn(3)
    shape_rng, noise_rng = np.random.default_rng(shape_seed), np.random.default_rng(noise_seed)

    events, pulse_table = _layout(ntics, rate, params, layout_seed)
    samples = _background(ntics, rate, params, noise_rng)
    _add_pulses(samples, events, pulse_table, rate, params, shape_rng)
    _add_sines(samples, events, rate, params, shape_rng)
    _add_distractors(samples, events, rate, shape_rng)

    peak = float(np.max(np.abs(samples))) if ntics else 0.0
    if peak > _INT16_MAX:
        raise ValueError(
            f"the song would clip: its peak is {peak:.0f} counts, more than int16's {_INT16_MAX}; "
            f"lower the *_peak_counts ranges or noise_rms_counts in SongParams"
        )
    samples = np.rint(samples).astype(np.int16)

    events = events.reset_index(drop=True)
    kinds = events["event"].to_numpy()
    pulses_index = pulse_table["event"].to_numpy()
    centres = pulse_table["centre"].to_numpy(np.int64)
    halves = pulse_table["half_tics"].to_numpy(np.int64)

    def truth(rows: pd.DataFrame) -> pd.DataFrame:
        return intervals_frame(wav, rows["start"].to_numpy(), rows["stop"].to_numpy(), TRUTH_KIND,
                               rows["label"].to_numpy())

    events_table = intervals_frame(
        wav, events["start"].to_numpy(), events["stop"].to_numpy(), TRUTH_KIND, events["label"].to_numpy(),
        **{name: events[name].to_numpy() for name in _EVENT_DETAILS},
    )
    return SynthSong(
        samples=samples,
        rate=rate,
        wav=wav,
        pulses=intervals_frame(wav, centres - halves, centres + halves, TRUTH_KIND, PULSE_LABEL)
        if len(centres) else empty_intervals(),
        pulse_centres=centres,
        pulse_trains=pulses_index.astype(np.int64),
        sines=truth(events[kinds == "sine"]) if (kinds == "sine").any() else empty_intervals(),
        distractors=truth(events[np.isin(kinds, ["click", "bump"])])
        if np.isin(kinds, ["click", "bump"]).any() else empty_intervals(),
        events=events_table,
        params=params,
        seed=seed,
    )


#: Per-event columns of :attr:`SynthSong.events` beyond the interval columns (NaN where not applicable).
_EVENT_DETAILS = ("event", "n_pulses", "ipi_s", "pulse_duration_s", "carrier_hz", "sine_hz", "drift_hz",
                  "peak_counts", "phase_rad")


def _check_rate(rate, params: SongParams) -> int:
    if isinstance(rate, float) and rate.is_integer():
        rate = int(rate)
    if not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise ValueError(f"rate must be a positive whole number of tics per second (Hz), got {rate!r}")
    if rate <= 2 * params.highest_hz:
        raise ValueError(
            f"rate {rate} Hz is too low for the song model: its highest frequency is "
            f"{params.highest_hz:.0f} Hz, so the rate must exceed {2 * params.highest_hz:.0f} Hz "
            f"(raise the rate or lower pulse_carrier_range_hz / sine_range_hz / noise_lowpass_hz)"
        )
    return int(rate)


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float], size: int) -> np.ndarray:
    low, high = np.log(bounds[0]), np.log(bounds[1])
    return np.exp(rng.uniform(low, high, size))


def _expected_event_tics(rate: int, params: SongParams) -> np.ndarray:
    """Mean length in tics of a pulse train, a sine bout and a distractor."""
    mean_pulses = (params.pulses_per_train[0] + params.pulses_per_train[1]) / 2
    train = (mean_pulses - 1) * params.ipi_s + np.mean(params.pulse_duration_s)
    sine = np.mean(params.sine_duration_s)
    distractor = (params.click_fraction * np.mean(params.click_duration_s)
                  + (1 - params.click_fraction) * np.mean(params.bump_duration_s))
    return np.array([train, sine, distractor]) * rate


def _layout(ntics: int, rate: int, params: SongParams, seed_sequence: np.random.SeedSequence):
    """Place trains, bouts and distractors; return the events and the pulses of the trains.

    Events follow one another with gaps of ``min_gap_s`` plus an exponential wait whose mean
    makes the expected number of events per minute equal to the sum of the three rates.
    """
    rates = np.array([params.pulse_train_rate_per_min, params.sine_bout_rate_per_min,
                      params.distractor_rate_per_min], dtype=float)
    total_rate = rates.sum()
    min_gap = max(1, int(round(params.min_gap_s * rate)))
    empty_events = pd.DataFrame({"start": np.zeros(0, np.int64), "stop": np.zeros(0, np.int64),
                                 "label": np.zeros(0, str), **{name: [] for name in _EVENT_DETAILS}})
    empty_pulses = pd.DataFrame({"event": np.zeros(0, np.int64), "centre": np.zeros(0, np.int64),
                                 "half_tics": np.zeros(0, np.int64), "carrier_hz": [], "peak_counts": []})
    if total_rate == 0:
        return empty_events, empty_pulses
    cycle_tics = 60.0 * rate / total_rate
    mean_event_tics = float(np.dot(rates / total_rate, _expected_event_tics(rate, params)))
    mean_wait = cycle_tics - mean_event_tics - min_gap
    if mean_wait <= 0:
        raise ValueError(
            f"SongParams asks for {total_rate:g} events per minute, but events last "
            f"{mean_event_tics / rate:.2f} s on average plus min_gap_s={params.min_gap_s} s of silence, "
            f"which leaves no room: lower the *_rate_per_min values or the durations"
        )

    # Draw more events than can fit; if by bad luck they do not reach the end, draw twice as
    # many from the same stream (so the result depends only on the seed and the arguments).
    expected = total_rate * ntics / rate / 60.0
    n = int(expected * 1.3 + 4 * math.sqrt(expected) + 8)
    while True:
        rng = np.random.default_rng(seed_sequence)
        events, pulses = _draw_events(n, rate, params, rng, min_gap, mean_wait)
        if events["stop"].iloc[-1] >= ntics:
            break
        n *= 2
    # keep the events that end at least min_gap before the end, up to the first that does not
    keep = (events["stop"] <= ntics - 1 - min_gap).to_numpy(copy=True)
    keep &= np.cumsum(~keep) == 0
    kept = np.flatnonzero(keep)
    renumber = np.full(len(events), -1, np.int64)
    renumber[kept] = np.arange(len(kept))
    pulses = pulses[keep[pulses["event"].to_numpy()]].reset_index(drop=True)
    pulses["event"] = renumber[pulses["event"].to_numpy()]
    return events.iloc[kept].reset_index(drop=True), pulses


def _draw_events(n: int, rate: int, params: SongParams, rng: np.random.Generator, min_gap: int,
                 mean_wait: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw ``n`` consecutive events from the start of the recording, every value for every kind
    (so the stream does not depend on which kinds come up); return the events and their pulses."""
    rates = np.array([params.pulse_train_rate_per_min, params.sine_bout_rate_per_min,
                      params.distractor_rate_per_min], dtype=float)
    kinds = rng.choice(3, size=n, p=rates / rates.sum())
    gaps = np.rint(min_gap + rng.exponential(mean_wait, size=n)).astype(np.int64)
    n_pulses = rng.integers(int(params.pulses_per_train[0]), int(params.pulses_per_train[1]) + 1, size=n)
    train_ipi = np.clip(rng.normal(params.ipi_s, params.ipi_train_sd_s, n), *params.ipi_range_s)
    pulse_duration = rng.uniform(*params.pulse_duration_s, n)
    carrier = np.clip(rng.normal(params.pulse_carrier_hz, params.pulse_carrier_sd_hz, n),
                      *params.pulse_carrier_range_hz)
    pulse_peak = _log_uniform(rng, params.pulse_peak_counts, n)
    sine_tics = np.rint(rng.uniform(*params.sine_duration_s, n) * rate).astype(np.int64)
    sine_hz = np.clip(rng.normal(params.sine_hz, params.sine_sd_hz, n), *params.sine_range_hz)
    drift = rng.uniform(-params.sine_drift_hz, params.sine_drift_hz, n)
    sine_peak = _log_uniform(rng, params.sine_peak_counts, n)
    is_click = rng.random(n) < params.click_fraction
    click_tics = np.rint(rng.uniform(*params.click_duration_s, n) * rate).astype(np.int64)
    bump_tics = np.rint(rng.uniform(*params.bump_duration_s, n) * rate).astype(np.int64)
    distractor_peak = _log_uniform(rng, params.distractor_peak_counts, n)
    phase = rng.uniform(0, 2 * np.pi, n)

    # pulses of every train: centre offsets from the train's first pulse
    is_train = kinds == 0
    train_events = np.flatnonzero(is_train)
    counts = n_pulses[train_events]
    owner = np.repeat(train_events, counts)
    total = int(counts.sum())
    intervals = np.clip(train_ipi[owner] + rng.normal(0, params.ipi_jitter_s, total), *params.ipi_range_s)
    intervals_tics = np.rint(intervals * rate).astype(np.int64)
    first = np.zeros(total, bool)
    first[np.cumsum(counts) - counts] = True
    intervals_tics[first] = 0  # the first pulse of a train sits at offset 0
    running = np.cumsum(intervals_tics)
    offsets = running - np.repeat(running[first], counts)
    half_tics = np.rint(pulse_duration * rate / 2).astype(np.int64)
    pulse_carrier = np.clip(carrier[owner] + rng.normal(0, params.pulse_carrier_jitter_hz, total),
                            *params.pulse_carrier_range_hz)
    pulse_gain = pulse_peak[owner] * 10 ** (rng.normal(0, params.pulse_peak_jitter_db, total) / 20)

    lengths = np.empty(n, np.int64)
    last_offset = np.zeros(n, np.int64)
    last_offset[train_events] = offsets[np.cumsum(counts) - 1] if total else 0
    lengths[:] = np.where(kinds == 0, last_offset + 2 * half_tics + 1,
                          np.where(kinds == 1, sine_tics, np.where(is_click, click_tics, bump_tics)))
    lengths = np.maximum(lengths, 1)
    starts = np.cumsum(gaps) + np.concatenate([[0], np.cumsum(lengths)[:-1]])
    stops = starts + lengths - 1

    labels = np.where(kinds == 0, PULSE_LABEL, np.where(kinds == 1, SINE_LABEL,
                                                        np.where(is_click, CLICK_LABEL, BUMP_LABEL)))
    event_names = np.where(kinds == 0, "pulse-train", np.where(kinds == 1, "sine",
                                                               np.where(is_click, "click", "bump")))
    nan = np.full(n, np.nan)
    mean_ipi = nan.copy()
    if total:
        sums = np.bincount(owner, weights=np.where(first, 0.0, intervals_tics / rate), minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_ipi[train_events] = sums[train_events] / (counts - 1)
    events = pd.DataFrame({
        "start": starts, "stop": stops, "label": labels, "event": event_names,
        "n_pulses": np.where(is_train, n_pulses, 0),
        "ipi_s": mean_ipi,
        "pulse_duration_s": np.where(is_train, 2 * half_tics / rate, np.nan),
        "carrier_hz": np.where(is_train, carrier, np.nan),
        "sine_hz": np.where(kinds == 1, sine_hz, np.nan),
        "drift_hz": np.where(kinds == 1, drift, np.nan),
        "peak_counts": np.where(kinds == 0, pulse_peak, np.where(kinds == 1, sine_peak, distractor_peak)),
        "phase_rad": phase,
    })
    pulses = pd.DataFrame({
        "event": owner,
        "centre": starts[owner] + half_tics[owner] + offsets,
        "half_tics": half_tics[owner],
        "carrier_hz": pulse_carrier,
        "peak_counts": pulse_gain,
        "phase_rad": phase[owner],
    })
    return events, pulses


def _noise_filter(rate: int, params: SongParams) -> tuple[np.ndarray, float]:
    """Second-order sections of the noise-shaping filter and the RMS its output has for unit
    white input."""
    high = signal.butter(2, params.noise_highpass_hz, btype="highpass", fs=rate, output="sos")
    low = signal.butter(1, params.noise_lowpass_hz, btype="lowpass", fs=rate, output="sos")
    sos = np.concatenate([high, low])
    impulse = np.zeros(max(8192, int(64 * rate / params.noise_highpass_hz)))
    impulse[0] = 1.0
    gain = float(np.sqrt(np.sum(signal.sosfilt(sos, impulse) ** 2)))
    return sos, gain


def _background(ntics: int, rate: int, params: SongParams, rng: np.random.Generator) -> np.ndarray:
    """Coloured Gaussian background noise of RMS ``noise_rms_counts``, float32, filtered in chunks
    (so hours at high rates fit in memory)."""
    out = np.zeros(ntics, np.float32)
    if params.noise_rms_counts == 0 or ntics == 0:
        return out
    sos, gain = _noise_filter(rate, params)
    coloured_scale = params.noise_rms_counts * math.sqrt(1 - params.noise_white_fraction) / gain
    white_scale = params.noise_rms_counts * math.sqrt(params.noise_white_fraction)
    state = np.zeros((sos.shape[0], 2))
    for begin in range(0, ntics, _NOISE_CHUNK_TICS):
        end = min(ntics, begin + _NOISE_CHUNK_TICS)
        white = rng.standard_normal((2, end - begin))
        coloured, state = signal.sosfilt(sos, white[0], zi=state)
        out[begin:end] = coloured * coloured_scale + white[1] * white_scale
    return out


def _ragged(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For runs of ``lengths`` tics beginning at ``starts``: for every tic of every run, the run's
    index, the tic's index within its run, and the tic."""
    owner = np.repeat(np.arange(len(lengths)), lengths)
    local = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return owner, local, starts[owner] + local


def _peak_normalise(values: np.ndarray, owner: np.ndarray, lengths: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Scale each run of ``values`` so that its largest magnitude equals its entry in ``peaks``."""
    if not len(values):
        return values
    run_starts = np.cumsum(lengths) - lengths
    largest = np.maximum.reduceat(np.abs(values), run_starts)
    largest[largest == 0] = 1.0
    return values * (peaks / largest)[owner]


def _add_pulses(out, events, pulses, rate, params, rng) -> None:
    """Gabor pulses: ``exp(-t²/2σ²)·cos(2π f t + φ)`` with σ = extent/6, scaled to each pulse's peak."""
    if not len(pulses):
        return
    half = pulses["half_tics"].to_numpy()
    lengths = 2 * half + 1
    owner, local, tics = _ragged(pulses["centre"].to_numpy() - half, lengths)
    t = (local - half[owner]) / rate
    sigma = (lengths / rate / 6)[owner]
    phase = pulses["phase_rad"].to_numpy()[owner] + rng.normal(0, params.pulse_phase_jitter_rad, len(pulses))[owner]
    values = np.exp(-0.5 * (t / sigma) ** 2) * np.cos(2 * np.pi * pulses["carrier_hz"].to_numpy()[owner] * t + phase)
    out[tics] += _peak_normalise(values, owner, lengths, pulses["peak_counts"].to_numpy())


def _add_sines(out, events, rate, params, rng) -> None:
    """Sine bouts with a linear frequency drift, a 2nd harmonic and raised-cosine ramps."""
    bouts = events[events["event"] == "sine"]
    if not len(bouts):
        return
    starts = bouts["start"].to_numpy()
    lengths = bouts["stop"].to_numpy() - starts + 1
    owner, local, tics = _ragged(starts, lengths)
    t = local / rate
    duration = (lengths / rate)[owner]
    f0 = bouts["sine_hz"].to_numpy()[owner]
    drift = bouts["drift_hz"].to_numpy()[owner]
    # instantaneous frequency f0 + drift·(t/T - 1/2), integrated: the mean frequency is f0
    phase = 2 * np.pi * ((f0 - drift / 2) * t + drift * t**2 / (2 * duration)) + bouts["phase_rad"].to_numpy()[owner]
    harmonic_phase = rng.uniform(0, 2 * np.pi, len(bouts))[owner]
    tone = np.cos(phase) + params.sine_harmonic_ratio * np.cos(2 * phase + harmonic_phase)
    ramp = np.minimum(params.sine_ramp_s, duration / 2)
    edge = np.minimum(t, duration - 1 / rate - t)
    envelope = np.where(edge < ramp, 0.5 - 0.5 * np.cos(np.pi * np.clip(edge / np.maximum(ramp, 1e-12), 0, 1)), 1.0)
    out[tics] += _peak_normalise(tone * envelope, owner, lengths, bouts["peak_counts"].to_numpy())


def _add_distractors(out, events, rate, rng) -> None:
    """Clicks: white noise under an exponential decay (time constant 1/4 of the click).
    Bumps: a Hann-shaped deflection of random sign."""
    chosen = events[events["event"].isin(["click", "bump"])]
    if not len(chosen):
        return
    starts = chosen["start"].to_numpy()
    lengths = chosen["stop"].to_numpy() - starts + 1
    owner, local, tics = _ragged(starts, lengths)
    is_click = (chosen["event"] == "click").to_numpy()[owner]
    burst = rng.standard_normal(len(tics)) * np.exp(-local / np.maximum(lengths[owner] / 4, 0.5))
    sign = np.where(rng.random(len(chosen)) < 0.5, -1.0, 1.0)[owner]
    bump = sign * np.sin(np.pi * (local + 0.5) / lengths[owner]) ** 2
    values = np.where(is_click, burst, bump)
    out[tics] += _peak_normalise(values, owner, lengths, chosen["peak_counts"].to_numpy())


def write_song(song: SynthSong, wav_path: str | os.PathLike) -> Path:
    """Write the recording as a mono 16-bit PCM WAV, atomically; return its path.

    Raises:
        ValueError: if ``wav_path``'s basename is not ``song.wav`` (the tables would name another
            recording); make the song with ``make_song(..., wav=name)`` or use ``song.renamed(name)``.
    """
    path = Path(wav_path)
    if path.name != song.wav:
        raise ValueError(
            f"{path}: the song's tables name recording {song.wav!r}; write it under that name, "
            f"or call song.renamed({path.name!r}) first"
        )
    with atomic_path(path) as temporary:
        soundfile.write(temporary, song.samples, song.rate, subtype="PCM_16", format="WAV")
    return path
