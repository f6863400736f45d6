"""Synthetic Drosophila-like courtship song with known truth.

A :class:`SynthSong` is a mono int16 recording plus the exact position of everything that was put
into it: every pulse (its extent and centre tic), every sine bout, and every non-song distractor
(click or bump). Tests use it where the right answer must be known (detection, training,
congruence); the demo project uses it instead of real recordings.

The model of song (see ``docs/synth.md`` for the full description and the calibration against
SongExplorer's tutorial recordings):

* **background**: Gaussian noise shaped by a 2nd-order high-pass and a 1st-order low-pass
  (a hump near 30-60 Hz falling off at 6 dB/octave, like the tutorial recordings), plus a white floor;
* **pulse trains**: Gabor pulses (Gaussian-windowed cosine, 150-400 Hz carrier, 5-10 ms long)
  spaced by the inter-pulse interval (IPI, ~35 ms) in trains of 5-30 pulses;
* **sine bouts**: a 130-170 Hz tone with a slow linear frequency drift, a weak second harmonic,
  and raised-cosine onset/offset ramps, 0.2-1.5 s long;
* **distractors**: broadband clicks (1-4 ms decaying noise bursts) and low-frequency bumps
  (20-80 ms Hann-shaped deflections), as loud as song, so that "loud" does not mean "song".

Trains, bouts and distractors never overlap and are separated by at least ``min_gap_s`` of
background. Everything is drawn from ``numpy.random.default_rng`` streams derived from one
``seed``, so a seed gives the same recording every time. Tics are 0-based sample indices and
interval stops are inclusive, as in SongExplorer's CSVs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile
from scipy import signal

from songexplorer_core.annotations import concat_intervals, empty_intervals, intervals_frame
from songexplorer_core.atomic import atomic_path

#: Labels of SongExplorer's tutorial.
PULSE_LABEL = "mel-pulse"
SINE_LABEL = "mel-sine"
AMBIENT_LABEL = "ambient"
#: Labels of the distractors in :attr:`SynthSong.distractors` (a classifier should call them ambient).
CLICK_LABEL = "click"
BUMP_LABEL = "bump"
#: ``kind`` of the truth tables; annotation tables made from them have kind ``annotated``.
TRUTH_KIND = "truth"
ANNOTATED_KIND = "annotated"

_INT16_MAX = 32767
_NOISE_CHUNK_TICS = 1 << 20


@dataclass(frozen=True)
class SongParams:
    """Every knob of the song model. Ranges are ``(low, high)`` tuples, inclusive.

    Defaults imitate D. melanogaster courtship song as recorded in SongExplorer's tutorial data
    (2500 Hz, peak pulse amplitudes of a few thousand counts over a background of ~60 counts
    RMS). Amplitudes are in int16 counts, so the signal-to-noise ratio of a pulse is
    ``20*log10(peak / noise_rms_counts)`` dB (30-36 dB by default). Nothing depends on the sample
    rate except that it must exceed twice the highest frequency asked for.
    """

    # --- pulse song
    pulse_train_rate_per_min: float = 8.0  #: expected pulse trains per minute of recording
    pulses_per_train: tuple[int, int] = (5, 30)  #: pulses in a train, uniform integer
    ipi_s: float = 0.035  #: mean inter-pulse interval (centre to centre), seconds
    ipi_train_sd_s: float = 0.003  #: s.d. of a train's own IPI around ``ipi_s``, seconds
    ipi_jitter_s: float = 0.0015  #: s.d. of each interval around its train's IPI, seconds
    ipi_range_s: tuple[float, float] = (0.025, 0.045)  #: every IPI is clipped to this, seconds
    pulse_duration_s: tuple[float, float] = (0.005, 0.010)  #: pulse extent (±3σ of its envelope), uniform per train
    pulse_carrier_hz: float = 250.0  #: mean carrier frequency of pulses, Hz
    pulse_carrier_sd_hz: float = 50.0  #: s.d. of a train's carrier across trains, Hz
    pulse_carrier_jitter_hz: float = 10.0  #: s.d. of each pulse's carrier around its train's, Hz
    pulse_carrier_range_hz: tuple[float, float] = (150.0, 400.0)  #: carriers are clipped to this, Hz
    pulse_peak_counts: tuple[float, float] = (1000.0, 4000.0)  #: train peak amplitude, log-uniform, int16 counts
    pulse_peak_jitter_db: float = 1.5  #: s.d. of each pulse's peak around its train's, dB
    pulse_phase_jitter_rad: float = 0.3  #: s.d. of each pulse's carrier phase around its train's, radians
    # --- sine song
    sine_bout_rate_per_min: float = 5.0  #: expected sine bouts per minute of recording
    sine_duration_s: tuple[float, float] = (0.2, 1.5)  #: bout length including ramps, uniform, seconds
    sine_hz: float = 155.0  #: mean sine frequency, Hz
    sine_sd_hz: float = 8.0  #: s.d. of a bout's frequency across bouts, Hz
    sine_range_hz: tuple[float, float] = (130.0, 170.0)  #: bout frequencies are clipped to this, Hz
    sine_drift_hz: float = 6.0  #: largest change of frequency from start to end of a bout (uniform ±), Hz
    sine_harmonic_ratio: float = 0.1  #: amplitude of the 2nd harmonic relative to the fundamental
    sine_ramp_s: float = 0.03  #: raised-cosine onset and offset ramp length, seconds
    sine_peak_counts: tuple[float, float] = (400.0, 1400.0)  #: bout peak amplitude, log-uniform, int16 counts
    # --- distractors (non-song transients)
    distractor_rate_per_min: float = 3.0  #: expected clicks + bumps per minute of recording
    click_fraction: float = 0.5  #: fraction of distractors that are clicks (the rest are bumps)
    click_duration_s: tuple[float, float] = (0.001, 0.004)  #: click length, uniform, seconds
    bump_duration_s: tuple[float, float] = (0.02, 0.08)  #: bump length, uniform, seconds
    distractor_peak_counts: tuple[float, float] = (1000.0, 4000.0)  #: peak, log-uniform, int16 counts
    # --- background
    noise_rms_counts: float = 60.0  #: RMS of the background noise, int16 counts (0 = silent)
    noise_highpass_hz: float = 30.0  #: corner of the 2nd-order high-pass shaping the noise, Hz
    noise_lowpass_hz: float = 60.0  #: corner of the 1st-order low-pass shaping the noise, Hz
    noise_white_fraction: float = 0.1  #: fraction of the noise power that is white (flat), 0-1
    # --- layout
    min_gap_s: float = 0.15  #: least silence between consecutive events and at the ends, seconds

    def __post_init__(self) -> None:
        problems = []
        for item in fields(self):
            value = getattr(self, item.name)
            values = value if isinstance(value, tuple) else (value,)
            if any(not np.isfinite(v) or v < 0 for v in values):
                problems.append(f"{item.name}={value!r} must be finite and >= 0")
            if isinstance(value, tuple) and (len(value) != 2 or value[0] > value[1]):
                problems.append(f"{item.name}={value!r} must be a (low, high) pair with low <= high")
        if problems:
            raise ValueError("SongParams: " + "; ".join(problems))
        positive = ("ipi_s", "pulse_carrier_hz", "sine_hz", "noise_highpass_hz", "noise_lowpass_hz")
        ranges_positive = (
            "pulses_per_train", "ipi_range_s", "pulse_duration_s", "pulse_carrier_range_hz",
            "pulse_peak_counts", "sine_duration_s", "sine_range_hz", "sine_peak_counts",
            "click_duration_s", "bump_duration_s", "distractor_peak_counts",
        )
        problems += [f"{name} must be > 0" for name in positive if getattr(self, name) <= 0]
        problems += [f"{name} must be > 0 at both ends" for name in ranges_positive if getattr(self, name)[0] <= 0]
        if not all(float(n).is_integer() for n in self.pulses_per_train):
            problems.append(f"pulses_per_train={self.pulses_per_train!r} must be whole numbers")
        if self.ipi_range_s[0] <= self.pulse_duration_s[1]:
            problems.append(
                f"ipi_range_s low end {self.ipi_range_s[0]} s must exceed the longest pulse "
                f"{self.pulse_duration_s[1]} s, or pulses would overlap"
            )
        if not 0 <= self.click_fraction <= 1 or not 0 <= self.noise_white_fraction <= 1:
            problems.append("click_fraction and noise_white_fraction must lie in [0, 1]")
        if self.noise_highpass_hz >= self.noise_lowpass_hz:
            problems.append("noise_highpass_hz must be below noise_lowpass_hz")
        if self.sine_drift_hz / 2 >= self.sine_range_hz[0]:
            problems.append("sine_drift_hz/2 must be below the lowest sine frequency")
        if problems:
            raise ValueError("SongParams: " + "; ".join(problems))

    @property
    def highest_hz(self) -> float:
        """The highest frequency the model puts into a recording on purpose, Hz."""
        return max(
            self.pulse_carrier_range_hz[1],
            2 * (self.sine_range_hz[1] + self.sine_drift_hz / 2),
            self.noise_lowpass_hz,
            self.noise_highpass_hz,
        )


@dataclass(frozen=True, eq=False)
class SynthSong:
    """A synthetic recording and the truth about it.

    Truth tables are interval tables (columns ``wav, start, stop, kind, label``; 0-based,
    inclusive tics; kind ``"truth"``), sorted by ``start``.
    """

    samples: np.ndarray  #: int16, shape (ntics,)
    rate: int  #: tics per second, Hz
    wav: str  #: recording basename used in the ``wav`` column of every table
    pulses: pd.DataFrame  #: one row per pulse: its extent, label ``mel-pulse``
    pulse_centres: np.ndarray  #: int64 centre tic of each pulse, aligned with ``pulses`` rows
    pulse_trains: np.ndarray  #: int64 index (into ``events``) of each pulse's train, aligned with ``pulses``
    sines: pd.DataFrame  #: one row per sine bout (including ramps), label ``mel-sine``
    distractors: pd.DataFrame  #: one row per click / bump, labels ``click`` / ``bump``
    events: pd.DataFrame  #: one row per train / bout / distractor with the values drawn for it
    params: SongParams = field(default_factory=SongParams)
    seed: int = 0

    @property
    def ntics(self) -> int:
        """Length of the recording, tics."""
        return int(self.samples.shape[0])

    @property
    def duration_s(self) -> float:
        """Length of the recording, seconds."""
        return self.ntics / self.rate

    def pulse_points(self) -> pd.DataFrame:
        """Every pulse as a point interval (``start == stop ==`` centre tic), kind ``truth``."""
        return intervals_frame(self.wav, self.pulse_centres, self.pulse_centres, TRUTH_KIND, PULSE_LABEL)

    def song(self) -> pd.DataFrame:
        """Pulse-train and sine-bout extents (what is *not* ambient), sorted by start, kind ``truth``."""
        song = self.events[self.events["label"].isin([PULSE_LABEL, SINE_LABEL])]
        return intervals_frame(self.wav, song["start"].to_numpy(), song["stop"].to_numpy(), TRUTH_KIND,
                               song["label"].to_numpy())

    def renamed(self, wav: str) -> SynthSong:
        """The same song with ``wav`` (a basename) in every table."""
        wav = Path(wav).name
        tables = {name: getattr(self, name).assign(wav=wav).astype({"wav": self.pulses["wav"].dtype})
                  for name in ("pulses", "sines", "distractors", "events")}
        return replace(self, wav=wav, **tables)


# --------------------------------------------------------------------------------------------
# generation


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


# --------------------------------------------------------------------------------------------
# output


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


def dense_annotations(song: SynthSong) -> pd.DataFrame:
    """Every pulse as a point at its centre and every sine bout as a range, kind ``annotated``,
    sorted by start: what a perfect, exhaustive annotator would save."""
    points = intervals_frame(song.wav, song.pulse_centres, song.pulse_centres, ANNOTATED_KIND, PULSE_LABEL)
    sines = song.sines.assign(kind=ANNOTATED_KIND)
    return _sorted(concat_intervals([points, sines]))


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["start", "stop", "label"], kind="stable").reset_index(drop=True)


def seed_annotations(
    song: SynthSong,
    n_per_label: int | Mapping[str, int],
    *,
    seed: int,
    pulse_jitter_s: float = 0.0,
    sine_coverage: tuple[float, float] = (0.5, 1.0),
    sine_min_s: float = 0.1,
    ambient_s: tuple[float, float] = (0.5, 3.0),
    margin_s: float = 0.05,
    allow_fewer: bool = False,
) -> pd.DataFrame:
    """A sparse annotation table like a person makes to start training, kind ``annotated``.

    * ``mel-pulse``: points at the centres of randomly chosen pulses (any trains);
    * ``mel-sine``: ranges inside randomly chosen sine bouts, clear of the onset/offset ramps;
    * ``ambient``: ranges in randomly chosen song-free stretches, at least ``margin_s`` from any
      pulse train or sine bout (they may contain clicks and bumps, as real ambient does).

    Ranges are spread like a person spreads them: one per bout (or stretch) in random order, and
    only when more are asked for than there are bouts does a bout get a second, third ...
    range; a bout holding ``k`` ranges is cut into ``k`` equal slots with one range in each, so
    ranges never overlap.

    Args:
        song: from :func:`make_song`.
        n_per_label: annotations per label: one count for all three labels, or a mapping from
            any of ``mel-pulse``, ``mel-sine``, ``ambient`` to a count (missing labels get none).
        seed: which pulses, bouts and stretches are chosen, and where the ranges lie in them.
        pulse_jitter_s: s.d. of the annotator's click around a pulse's centre, seconds (0 = on
            the centre tic); the point always stays inside the pulse.
        sine_coverage: fraction of its slot (a bout's ramp-free part, when it holds one range) a
            sine range covers, uniform (low, high).
        sine_min_s: shortest sine range, seconds; a bout's ramp-free part holds at most
            ``its length // sine_min_s`` ranges.
        ambient_s: length of an ambient range, uniform (low, high), seconds; a stretch holds at
            most ``its length // low`` ranges.
        margin_s: least distance from an ambient range to any pulse train or sine bout, seconds.
        allow_fewer: where the song has fewer pulses, or room for fewer ranges, than asked for,
            annotate all it has instead of raising.

    Raises:
        ValueError: if the song has fewer pulses, or room for fewer sine or ambient ranges, than
            asked for (unless ``allow_fewer``), naming the label and the fix.
    """
    counts = _requested_counts(n_per_label)
    if not 0 < sine_coverage[0] <= sine_coverage[1] <= 1:
        raise ValueError(f"sine_coverage={sine_coverage!r} must satisfy 0 < low <= high <= 1")
    if not 0 < ambient_s[0] <= ambient_s[1]:
        raise ValueError(f"ambient_s={ambient_s!r} must satisfy 0 < low <= high (seconds)")
    if not sine_min_s > 0 or pulse_jitter_s < 0 or margin_s < 0:
        raise ValueError("sine_min_s must be > 0, and pulse_jitter_s and margin_s >= 0 (seconds)")
    rng = np.random.default_rng(seed)
    rate = song.rate
    tables = []

    n = counts.get(PULSE_LABEL, 0)
    if n:
        available = len(song.pulse_centres)
        n = _check_enough(n, available, PULSE_LABEL, f"has only {available} pulses",
                          "pulse_train_rate_per_min", allow_fewer)
        chosen = np.sort(rng.choice(available, size=n, replace=False))
        centres = song.pulse_centres[chosen]
        if pulse_jitter_s > 0:
            half = ((song.pulses["stop"] - song.pulses["start"]) // 2).to_numpy()[chosen]
            jitter = np.rint(rng.normal(0, pulse_jitter_s * rate, n)).astype(np.int64)
            centres = centres + np.clip(jitter, -half, half)
        tables.append(intervals_frame(song.wav, centres, centres, ANNOTATED_KIND, PULSE_LABEL))

    n = counts.get(SINE_LABEL, 0)
    if n:
        ramp = int(round(song.params.sine_ramp_s * rate))
        shortest = max(1, int(round(sine_min_s * rate)))
        start = song.sines["start"].to_numpy() + ramp
        room = song.sines["stop"].to_numpy() - ramp - start + 1
        capacity = np.maximum(room, 0) // shortest
        n = _check_enough(n, int(capacity.sum()), SINE_LABEL,
                          f"has room for only {int(capacity.sum())} sine ranges of at least {sine_min_s} s "
                          f"in its {len(room)} bouts", "sine_bout_rate_per_min (or lower sine_min_s)", allow_fewer)
        slot_start, slot_tics = _slots(start, room, _spread(capacity, n, rng))
        length = np.clip(np.rint(slot_tics * rng.uniform(*sine_coverage, n)), shortest, slot_tics).astype(np.int64)
        first = slot_start + np.floor(rng.random(n) * (slot_tics - length + 1)).astype(np.int64)
        tables.append(intervals_frame(song.wav, first, first + length - 1, ANNOTATED_KIND, SINE_LABEL))

    n = counts.get(AMBIENT_LABEL, 0)
    if n:
        low, high = (max(1, int(round(s * rate))) for s in ambient_s)
        gap_start, gap_stop = _song_free(song, int(round(margin_s * rate)))
        room = gap_stop - gap_start + 1
        capacity = room // low
        n = _check_enough(n, int(capacity.sum()), AMBIENT_LABEL,
                          f"has room for only {int(capacity.sum())} ambient ranges of at least {ambient_s[0]} s "
                          f"between its song", "*_rate_per_min (or lower ambient_s)", allow_fewer)
        slot_start, slot_tics = _slots(gap_start, room, _spread(capacity, n, rng))
        length = np.rint(rng.uniform(low, np.minimum(high, slot_tics))).astype(np.int64)
        first = slot_start + np.floor(rng.random(n) * (slot_tics - length + 1)).astype(np.int64)
        tables.append(intervals_frame(song.wav, first, first + length - 1, ANNOTATED_KIND, AMBIENT_LABEL))

    return _sorted(concat_intervals(tables))


def _spread(capacity: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """How many of ``n`` ranges each unit (bout, stretch) gets: one each in a random order, then
    a second each, ..., never more than its ``capacity``."""
    order = rng.permutation(len(capacity))
    taken = np.zeros(len(capacity), np.int64)
    rounds = 0
    while n > 0:
        open_units = order[capacity[order] > rounds]
        taken[open_units[:n]] += 1
        n -= min(n, len(open_units))
        rounds += 1
    return taken


def _slots(start: np.ndarray, room: np.ndarray, taken: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut each unit's ``room`` tics from ``start`` into ``taken`` equal slots; return each slot's
    first tic and length, ordered by unit."""
    units = np.repeat(np.arange(len(taken)), taken)
    index = np.arange(int(taken.sum())) - np.repeat(np.cumsum(taken) - taken, taken)
    slot_tics = room[units] // taken[units]
    return start[units] + index * slot_tics, slot_tics


def _requested_counts(n_per_label) -> dict[str, int]:
    labels = (PULSE_LABEL, SINE_LABEL, AMBIENT_LABEL)
    if isinstance(n_per_label, Mapping):
        unknown = set(n_per_label) - set(labels)
        if unknown:
            raise ValueError(f"n_per_label names unknown label(s) {sorted(unknown)}; use {list(labels)}")
        counts = dict(n_per_label)
    else:
        counts = dict.fromkeys(labels, n_per_label)
    for label, count in counts.items():
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"n_per_label[{label!r}]={count!r} must be a whole number >= 0")
    return {label: int(count) for label, count in counts.items()}


def _check_enough(asked: int, available: int, label: str, what: str, knob: str, allow_fewer: bool) -> int:
    """How many to make: ``asked``, or ``available`` if fewer and ``allow_fewer``."""
    if asked > available and not allow_fewer:
        raise ValueError(
            f"asked for {asked} {label!r} annotations but the song {what}; make a longer song "
            f"(duration_s), raise SongParams.{knob}, or pass allow_fewer=True"
        )
    return min(asked, available)


def _song_free(song: SynthSong, margin: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last tic of each stretch at least ``margin`` tics away from any train or bout."""
    song_events = song.song()
    busy_start = np.maximum(song_events["start"].to_numpy() - margin, 0)
    busy_stop = np.minimum(song_events["stop"].to_numpy() + margin, song.ntics - 1)
    gap_start = np.concatenate([[0], busy_stop + 1])
    gap_stop = np.concatenate([busy_start - 1, [song.ntics - 1]])
    keep = gap_stop >= gap_start
    return gap_start[keep], gap_stop[keep]
