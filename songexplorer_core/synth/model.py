"""The song model's knobs (:class:`SongParams`) and a made song with its truth (:class:`SynthSong`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd

from songexplorer_core.annotations import intervals_frame

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
