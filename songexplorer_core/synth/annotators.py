"""What people would annotate in a synthetic song: every sound (:func:`dense_annotations`), or a
few seeds per label placed clear of other song (:func:`seed_annotations`)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from songexplorer_core.annotations import concat_intervals, intervals_frame
from songexplorer_core.synth.model import AMBIENT_LABEL, ANNOTATED_KIND, PULSE_LABEL, SINE_LABEL, SynthSong


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
