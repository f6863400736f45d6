"""Ethogram: turn per-label probabilities into predicted intervals (SongExplorer's
``src/ethogram-plugins/``), and the thresholds files that drive it (``thresholds.ckpt-<N>.csv``,
written by ``save_thresholds`` of SongExplorer's ``src/lib.py``).

Two methods, as SongExplorer's ``ethogram_plugin``:

* :func:`ethogram_threshold`: every maximal run of samples whose probability is strictly above
  the label's threshold becomes a ``predicted`` interval. Labels may overlap. SongExplorer's
  default.
* :func:`ethogram_maxprob`: every sample gets the label of highest probability; consecutive
  equal labels form one interval; no overlaps.

(both registered as plug-ins of ``songexplorer.ethograms``, where a lab's own methods are found by
name: :func:`check_method`, docs/plugins.md) and ``"auto"``, this project's default (:func:`choose_method`): ``maxprob`` for exclusive
(softmax) models, whose labels compete for every tic, and ``threshold`` for overlapped
(sigmoid) ones, whose labels are independent. Sparse validation annotations place thresholds
badly (docs/recipe.md: a mel-pulse threshold of 0.007 nearly doubled the predicted pulses, the
extra ones false); the label of highest probability is also what validation F1 measures.

Then, beyond SongExplorer, predicted *segments* much shorter than any annotated one are dropped
(:func:`drop_short_segments`): a label people annotated with ranges (sine song, a
syllable; a label with both kinds is taken for its majority, ``songexplorer_core.label_kinds``) gets a minimum duration of ``min_segment_fraction`` (default 0.5) times its shortest
annotated range, read from the model's ``annotation-durations.csv``. Point-annotated labels
(pulses) are never filtered. Why: on the demo's densely annotated recording the
label-of-highest-probability ethogram called 285 slivers of 2-27 ms "sine" at the flanks of
pulses, against 8 real bouts (shortest annotated sine range 112 ms), so counts and song rates
of sine were nonsense (docs/classify-accuracy-ethogram.md).

Interval arithmetic is SongExplorer's: a run of samples ``a..b`` (inclusive) at output rate
``r`` becomes tics ``start = round((a/r - half) * rate)``, ``stop = round((b/r + half) * rate)``
with ``half = 1/(2r)`` s, i.e. ``start = 4a - 2``, ``stop = 4b + 2`` at 4 tics per sample.

Changes from SongExplorer (documented in docs/classify-accuracy-ethogram.md):

* a run that starts at sample 0 is kept (SongExplorer dropped it); its start is clamped to tic
  0, and a stop past the recording's last tic (when the length is known) to that tic;
* rows are sorted stably by start tic, then label (SongExplorer's order among equal starts was
  unspecified, QUIRK 17);
* ``maxprob`` leaves samples whose probabilities are all zero (the uncomputed leading padding)
  unlabelled instead of giving them the first label.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from songexplorer_core.annotations import empty_intervals, intervals_frame, write_intervals_csv
from songexplorer_core.atomic import atomic_write
from songexplorer_core.label_kinds import POINTS, RANGES, majority_kind
from songexplorer_core.classify import Probabilities, read_probabilities, read_probability_wavs, \
    probabilities_npz_name, probability_wav_paths, check_classify_outputs, read_classify_manifest

METHODS = ("threshold", "maxprob")
#: Predicted segments shorter than this fraction of the label's shortest annotated range are
#: dropped (None or 0: keep everything, as SongExplorer).
DEFAULT_MIN_SEGMENT_FRACTION = 0.5
#: Peaks of a point-annotated label's probability closer than this fraction of the label's
#: shortest annotated gap are one event (None or 0: one event per run of samples, as SongExplorer).
DEFAULT_EVENT_REFRACTORY_FRACTION = 0.5
#: ... but never longer than this, seconds: annotations picked far apart (a person marking a few
#: pulses of many trains) would otherwise merge real pulses into one event. 20 ms lies below the
#: shortest inter-pulse interval of D. melanogaster song (~25 ms) and far above the spread of one
#: pulse's fragments (a few ms); set it for other species.
DEFAULT_EVENT_MAX_REFRACTORY_S = 0.02
#: An event of a point-annotated label needs its probability to peak at least this high.
#: Chosen on real song (docs/recipe.md): against 0.5 and no minimum it removed false pulses of
#: low confidence on the dev recording and the left-out tutorial recording for every model tried,
#: at the cost of at most 0.01 of recall.
DEFAULT_EVENT_MIN_PEAK = 0.7
#: Accepted everywhere a method is: the two methods, or ``"auto"`` (:func:`choose_method`).
METHOD_CHOICES = ("auto", *METHODS)
DEFAULT_METHOD = "auto"
PREDICTED = "predicted"


# thresholds files live in their own module; their names still import from here
from songexplorer_core.thresholds import (  # noqa: F401
    ThresholdsError, format_ratio, ratio_from_thresholds_name, read_thresholds_csv, read_thresholds_ratios,
    thresholds_csv_name, write_thresholds_csv,
)


# ---------------------------------------------------------------------------------------------
# interval arithmetic


def _sample_runs(on: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last sample (inclusive) of each maximal run of True in a 1-D mask."""
    padded = np.concatenate([[False], np.asarray(on, dtype=bool), [False]])
    change = np.flatnonzero(padded[1:] != padded[:-1])
    return change[0::2], change[1::2] - 1


def split_at_peaks(on: np.ndarray, column: np.ndarray, distance: int, height: float = 0.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Runs of True in ``on`` re-cut so that each holds one peak of ``column``.

    Peaks are local maxima of ``column`` inside the runs (a flat top counts once, at its
    middle), at least ``distance`` samples apart: of two closer ones the higher is kept
    (``scipy.signal.find_peaks``). A run holding several kept peaks is split at the lowest
    sample between each two; a run holding none is dropped (it is a fragment of the event whose
    peak suppressed it). Returns first and last sample (inclusive) of each event, in order.
    """
    from scipy.signal import find_peaks  # noqa: PLC0415 (scipy.signal is slow to import)

    first, last = _sample_runs(on)
    if first.size == 0:
        return first, last
    masked = np.where(np.asarray(on, dtype=bool), np.asarray(column, dtype=np.float64), -1.0)
    peaks, _ = find_peaks(np.concatenate([[-2.0], masked, [-2.0]]), distance=max(1, int(distance)))
    peaks = peaks - 1
    peaks = peaks[np.asarray(on, dtype=bool)[peaks] & (masked[peaks] >= height)]
    run = np.searchsorted(first, peaks, side="right") - 1
    starts, stops = [], []
    for r in np.unique(run):
        mine = peaks[run == r]
        bounds = [int(first[r])]
        for a, b in zip(mine[:-1], mine[1:]):
            lowest = int(a + np.argmin(masked[a: b + 1]))
            bounds.append(min(max(lowest, a + 1), b))  # the trough starts the later event
        bounds.append(int(last[r]) + 1)
        starts += bounds[:-1]
        stops += [x - 1 for x in bounds[1:]]
    return np.asarray(starts, dtype=np.int64), np.asarray(stops, dtype=np.int64)


def _runs(on: np.ndarray, column: np.ndarray, label: str, probs: Probabilities,
          events: Mapping[str, float] | None, min_peak: float) -> tuple[np.ndarray, np.ndarray]:
    refractory_s = (events or {}).get(label)
    if refractory_s:
        return split_at_peaks(on, column, int(round(refractory_s * probs.output_rate)), min_peak)
    return _sample_runs(on)


def samples_to_tics(first: np.ndarray, last: np.ndarray, *, stride_tics: int,
                    ntics: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """SongExplorer's conversion of inclusive sample runs to inclusive tic intervals:
    ``start = round((first - 1/2) * stride)``, ``stop = round((last + 1/2) * stride)`` (NumPy's
    round half to even), clamped to ``[0, ntics - 1]``."""
    first = np.asarray(first, dtype=np.float64)
    last = np.asarray(last, dtype=np.float64)
    start = np.round((2 * first - 1) * stride_tics / 2).astype(np.int64)
    stop = np.round((2 * last + 1) * stride_tics / 2).astype(np.int64)
    start = np.maximum(start, 0)
    if ntics is not None:
        stop = np.minimum(stop, ntics - 1)
    return start, stop


def _table(wav: str, starts: list, stops: list, labels: list) -> pd.DataFrame:
    if not starts or sum(len(s) for s in starts) == 0:
        return empty_intervals()
    start = np.concatenate(starts)
    stop = np.concatenate(stops)
    label = np.concatenate(labels)
    frame = intervals_frame(wav=wav, start=start, stop=stop, kind=PREDICTED, label=label)
    return frame.sort_values(["start", "label"], kind="stable").reset_index(drop=True)


def check_method(method: str) -> str:
    """``method`` if it is ``auto``, a built-in method or an installed ethogram plug-in
    (``songexplorer.ethograms``).

    Raises:
        ValueError: naming the methods there are (``songexplorer_core.plugins.PluginError``).
    """
    if method in METHOD_CHOICES:
        return method
    from songexplorer_core import plugins

    if not isinstance(method, str) or method not in plugins.installed("ethograms"):
        raise plugins.PluginError(f"ethogram method must be one of {sorted({*METHOD_CHOICES, *plugins.names('ethograms')})}"
                                  f", not {method!r} (a lab's method is a plug-in: docs/plugins.md)")
    return method


def maxprob_method(probs: Probabilities, thresholds: Mapping[str, float], *, wav: str | None = None,
                   events: Mapping[str, float] | None = None, event_min_peak: float = DEFAULT_EVENT_MIN_PEAK
                   ) -> pd.DataFrame:
    """:func:`ethogram_maxprob` with an ethogram plug-in's arguments (the thresholds only name
    the labels)."""
    return ethogram_maxprob(probs, list(thresholds), wav=wav, events=events, event_min_peak=event_min_peak)


def choose_method(method: str, probs: Probabilities) -> str:
    """The method ``method`` means for these probabilities: itself, or for ``"auto"``
    ``"maxprob"`` when the model is exclusive (softmax) and ``"threshold"`` when overlapped.

    Raises:
        ValueError: ``method`` is neither one of :data:`METHOD_CHOICES` nor an installed plug-in.
    """
    check_method(method)
    if method != "auto":
        return method
    return "maxprob" if probs.loss == "exclusive" else "threshold"


def ethogram_threshold(probs: Probabilities, thresholds: Mapping[str, float], *, wav: str | None = None,
                       events: Mapping[str, float] | None = None, event_min_peak: float = DEFAULT_EVENT_MIN_PEAK
                       ) -> pd.DataFrame:
    """Predicted intervals: runs of samples with probability strictly above each label's threshold.

    Args:
        probs: the recording's probabilities.
        thresholds: ``{label: threshold}`` (a NaN threshold never fires; a label with no
            threshold is not predicted).
        wav: recording basename for the ``wav`` column (default ``probs.wav``).
        events: ``{label: refractory seconds}``: these labels give one interval per peak of
            their probability (:func:`split_at_peaks`), peaks closer than the refractory
            interval being one event (:func:`event_refractory`).
        event_min_peak: those events need their probability to peak at least this high.

    Returns:
        An interval table (kind ``predicted``), sorted by start tic then label.
    """
    wav = _wav_name(probs, wav)
    starts, stops, labels = [], [], []
    for label, threshold in thresholds.items():
        column = probs.column(label)
        first, last = _runs(column > float(threshold), column, label, probs, events, event_min_peak)
        start, stop = samples_to_tics(first, last, stride_tics=probs.stride_tics, ntics=probs.ntics)
        starts.append(start)
        stops.append(stop)
        labels.append(np.full(len(start), label, dtype=object))
    return _table(wav, starts, stops, labels)


def ethogram_maxprob(probs: Probabilities, labels: Sequence[str] | None = None, *, wav: str | None = None,
                     events: Mapping[str, float] | None = None, event_min_peak: float = DEFAULT_EVENT_MIN_PEAK
                     ) -> pd.DataFrame:
    """Predicted intervals: at each sample the label of maximum probability; consecutive equal
    labels form one interval. Samples whose probabilities are all zero (SongExplorer's leading
    padding) are left unlabelled.

    Args:
        labels: which labels compete (default all), e.g. a thresholds file's labels.
        events, event_min_peak: as for :func:`ethogram_threshold`: one interval per peak for
            these labels.
    """
    wav = _wav_name(probs, wav)
    labels = list(probs.labels if labels is None else labels)
    values = np.stack([probs.column(label) for label in labels], axis=1) if labels else \
        np.zeros((probs.nsamples, 0), np.float32)
    if values.shape[1] == 0 or values.shape[0] == 0:
        return empty_intervals()
    winner = np.argmax(values, axis=1)
    winner[values.max(axis=1) <= 0] = -1
    starts, stops, names = [], [], []
    for index, label in enumerate(labels):
        first, last = _runs(winner == index, values[:, index], label, probs, events, event_min_peak)
        start, stop = samples_to_tics(first, last, stride_tics=probs.stride_tics, ntics=probs.ntics)
        starts.append(start)
        stops.append(stop)
        names.append(np.full(len(start), label, dtype=object))
    return _table(wav, starts, stops, names)


def read_annotation_durations(model_dir: str | os.PathLike) -> pd.DataFrame | None:
    """A model folder's ``annotation-durations.csv`` (written by training), or ``None`` for
    models trained before it existed or by SongExplorer."""
    from songexplorer_core.dataset import ANNOTATION_DURATIONS_FILE

    path = Path(model_dir) / ANNOTATION_DURATIONS_FILE
    if not path.exists():
        return None
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a readable CSV ({error}); retrain the model or delete the file") from None
    missing = {"label", "points", "ranges", "shortest_range_s"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; retrain the model or delete the file")
    return table


def _kinds(durations: pd.DataFrame) -> pd.Series:
    """Each row's label kind: ``ranges`` or ``points`` by the majority of its annotations
    (``label_kinds.majority_kind``), ``""`` when tied; from the counts, so tables written before
    the ``kind`` column read the same."""
    return pd.Series([majority_kind(int(p), int(r)) or "" for p, r in zip(durations["points"], durations["ranges"])],
                     index=durations.index, dtype=object)


def min_segment_durations(durations: pd.DataFrame | None, fraction: float | None = DEFAULT_MIN_SEGMENT_FRACTION
                          ) -> dict[str, float]:
    """``{label: seconds}``: the shortest predicted interval kept for each range label (more of
    its annotations ranges than points: ``label_kinds``), ``fraction`` x its shortest annotated
    range. Point labels, and labels with as many points as ranges, get no minimum; so does
    everything when ``fraction`` is None or 0 or ``durations`` is None."""
    if durations is None or not fraction:
        return {}
    if fraction < 0:
        raise ValueError(f"min_segment_fraction must be >= 0, not {fraction}")
    segments = durations[_kinds(durations) == RANGES]
    return {str(row.label): float(fraction) * float(row.shortest_range_s) for row in segments.itertuples()
            if math.isfinite(float(row.shortest_range_s))}


def event_refractory(durations: pd.DataFrame | None, fraction: float | None = DEFAULT_EVENT_REFRACTORY_FRACTION,
                     max_s: float = DEFAULT_EVENT_MAX_REFRACTORY_S) -> dict[str, float]:
    """``{label: seconds}``: for each point label (pulses; more of its annotations points than
    ranges: ``label_kinds``), ``fraction`` x the shortest gap between two of its point
    annotations, at most ``max_s``; peaks of its probability closer than that are one event
    (:func:`split_at_peaks`). Range labels, ties, or fewer than
    two points in a recording, get none; so does everything when ``fraction`` is None or 0 or
    ``durations`` is None (e.g. a model trained before ``shortest_gap_s`` was written)."""
    if durations is None or not fraction or "shortest_gap_s" not in durations.columns:
        return {}
    if fraction < 0:
        raise ValueError(f"event_refractory_fraction must be >= 0, not {fraction}")
    points = durations[_kinds(durations) == POINTS]
    return {str(row.label): min(float(fraction) * float(row.shortest_gap_s), float(max_s))
            for row in points.itertuples()
            if math.isfinite(float(row.shortest_gap_s)) and float(row.shortest_gap_s) > 0}


def drop_short_segments(frame: pd.DataFrame, minimum_s: Mapping[str, float], *, rate: int) -> pd.DataFrame:
    """``frame`` without the intervals of a label in ``minimum_s`` lasting less than its minimum
    (``(stop - start) / rate`` seconds, the way annotated ranges are measured)."""
    if not minimum_s or not len(frame):
        return frame
    floor = frame["label"].astype(str).map(dict(minimum_s)).astype(float).fillna(0.0).to_numpy()
    seconds = (frame["stop"] - frame["start"]).to_numpy() / float(rate)
    return frame[seconds >= floor].reset_index(drop=True)


def _wav_name(probs: Probabilities, wav: str | None) -> str:
    name = wav or probs.wav
    if not name:
        raise ValueError("the recording's name is unknown: pass wav=...")
    return Path(name).name


# ---------------------------------------------------------------------------------------------
# file names and the whole step


def predicted_csv_name(wav: str, ratio: float | str | None = None) -> str:
    """``<wav>-predicted-<ratio>pr.csv``, or SongExplorer v0.9.1's ``<wav>-predicted.csv`` when
    the ratio is unknown (e.g. dense thresholds)."""
    wav = Path(wav).name
    return f"{wav}-predicted.csv" if ratio is None else f"{wav}-predicted-{format_ratio(ratio)}pr.csv"


def find_predicted_csvs(folder: str | os.PathLike, wav: str) -> dict[str | None, Path]:
    """Predicted-interval CSVs of one recording in a folder, in any of SongExplorer's names:
    ``<wav>-predicted.csv`` (v0.9.1), ``<stem>-predicted-<ratio>pr.csv`` (older) and this
    project's ``<wav>-predicted-<ratio>pr.csv``. Returns ``{ratio or None: path}``."""
    folder = Path(folder)
    wav = Path(wav).name
    stem = wav[:-4] if wav.lower().endswith(".wav") else wav
    found: dict[str | None, Path] = {}
    for prefix in dict.fromkeys((wav, stem)):
        plain = folder / f"{prefix}-predicted.csv"
        if plain.exists():
            found.setdefault(None, plain)
        pattern = re.compile(re.escape(prefix) + r"-predicted-(?P<ratio>.+)pr\.csv$")
        for path in sorted(folder.glob(f"{glob_escape(prefix)}-predicted-*pr.csv")):
            match = pattern.match(path.name)
            if match:
                found.setdefault(match.group("ratio"), path)
    return found


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def load_probabilities(folder: str | os.PathLike, wav: str, labels: Sequence[str], *, rate: int | None = None
                       ) -> Probabilities:
    """The probabilities of ``wav`` from ``folder``: the ``.npz`` written by classify if present,
    otherwise SongExplorer's per-label probability WAVs, which need ``rate`` (the recording's
    tic rate, Hz) because they only carry the output rate (classify's ``<wav>-classify.json``
    records it). Files classify's manifest does not vouch for (an interrupted classification, a
    file left by an earlier model) are refused (:func:`classify.check_classify_outputs`).

    Raises:
        FileNotFoundError: the recording was not classified into ``folder``.
        ClassifyError: the outputs there are incomplete or mix classifications.
    """
    folder = Path(folder)
    npz = folder / probabilities_npz_name(wav)
    if npz.exists():
        check_classify_outputs(folder, wav, [npz])
        probs = read_probabilities(npz)
        if rate is not None and probs.rate != int(rate):
            raise ValueError(f"{npz}: was computed at {probs.rate} Hz but the audio tic rate given is {rate} Hz")
        return probs
    wavs = probability_wav_paths(folder, wav, labels)
    if not any(path.exists() for path in wavs):
        where = f"{folder}: no such folder" if not folder.is_dir() else f"{folder} holds neither {npz.name} nor " \
            f"{wavs[0].name if wavs else 'its probability WAVs'}"
        raise FileNotFoundError(f"{Path(wav).name} has not been classified: {where}. Run `songexplorer classify` on "
                                f"it (or check the probabilities folder)")
    manifest = check_classify_outputs(folder, wav, [path for path in wavs if path.exists()])
    if rate is None and manifest is not None:
        rate = manifest.get("rate")
    if rate is None:
        raise ValueError(f"{folder}: the probability WAVs of {Path(wav).name} carry only their own rate and no "
                         f"{npz.name} records the recording's: give its tic rate (--audio-tic-rate)")
    return read_probability_wavs(folder, wav, labels, rate=rate)


def check_thresholds_match_model(thresholds_path: str | os.PathLike, folder: str | os.PathLike, wav: str) -> None:
    """Refuse thresholds of one model on probabilities another made, where both are known
    (classify's manifest names the model; the thresholds file sits with its model).

    Raises:
        ThresholdsError: naming both models.
    """
    from songexplorer_core.models import model_identity, thresholds_model_folder  # noqa: PLC0415

    record = read_classify_manifest(folder, wav)
    made_by = (record or {}).get("model") or {}
    model_folder = thresholds_model_folder(thresholds_path)
    if not made_by.get("sha256") or model_folder is None:
        return
    if model_identity(model_folder)["sha256"] != made_by["sha256"]:
        raise ThresholdsError(f"{thresholds_path}: thresholds of the model in {model_folder}, but the probabilities "
                              f"of {Path(wav).name} in {folder} were made by another model ({made_by.get('folder')}, "
                              f"checkpoint {made_by.get('checkpoint')}); classify with the thresholds' model or use "
                              f"the thresholds of the model that classified")


def model_ethogram(probs: Probabilities, thresholds: Mapping[str, float], durations: pd.DataFrame | None, *,
                   method: str = DEFAULT_METHOD, wav: str | None = None,
                   min_segment_fraction: float | None = DEFAULT_MIN_SEGMENT_FRACTION,
                   event_refractory_fraction: float | None = DEFAULT_EVENT_REFRACTORY_FRACTION,
                   event_min_peak: float = DEFAULT_EVENT_MIN_PEAK) -> pd.DataFrame:
    """One recording's ethogram as this project makes it from a model: ``method`` (``auto``:
    label of highest probability for exclusive models, ``thresholds`` for overlapped ones), one
    event per probability peak for labels the model's annotations marked with points
    (:func:`event_refractory`), short slivers of range labels dropped
    (:func:`min_segment_durations`). ``durations``: the model folder's
    ``annotation-durations.csv`` (:func:`read_annotation_durations`; None: neither applies)."""
    if not 0.0 <= float(event_min_peak) <= 1.0:
        raise ValueError(f"event_min_peak is a probability, between 0 and 1, not {event_min_peak}")
    method = choose_method(method, probs)
    events = event_refractory(durations, event_refractory_fraction)
    if method == "threshold":
        frame = ethogram_threshold(probs, thresholds, wav=wav, events=events, event_min_peak=event_min_peak)
    elif method == "maxprob":
        frame = ethogram_maxprob(probs, list(thresholds), wav=wav, events=events, event_min_peak=event_min_peak)
    else:
        frame = _plugin_ethogram(method, probs, thresholds, wav=wav, events=events, event_min_peak=event_min_peak)
    return drop_short_segments(frame, min_segment_durations(durations, min_segment_fraction), rate=probs.rate)


def _plugin_ethogram(method: str, probs: Probabilities, thresholds: Mapping[str, float], **arguments) -> pd.DataFrame:
    """A lab's ethogram method (``songexplorer.ethograms``), its table checked and sorted as ours."""
    from songexplorer_core import plugins
    from songexplorer_core.annotations import validate_intervals

    frame = plugins.load("ethograms", method)(probs, thresholds, **arguments)
    frame = validate_intervals(frame, source=f"ethogram method {method!r}")
    return frame.sort_values(["start", "label"], kind="stable").reset_index(drop=True)


def run_ethogram(
    wav: str,
    thresholds_path: str | os.PathLike,
    *,
    probabilities_dir: str | os.PathLike,
    rate: int | None = None,
    out_dir: str | os.PathLike | None = None,
    method: str = DEFAULT_METHOD,
    min_segment_fraction: float | None = DEFAULT_MIN_SEGMENT_FRACTION,
    event_refractory_fraction: float | None = DEFAULT_EVENT_REFRACTORY_FRACTION,
    event_min_peak: float = DEFAULT_EVENT_MIN_PEAK,
) -> list[Path]:
    """The whole ethogram step for one recording: read thresholds and probabilities, write one
    ``<wav>-predicted-<ratio>pr.csv`` per ratio in the thresholds file (``<wav>-predicted.csv``
    when the file does not state its ratio) and ``<wav>-ethogram.log`` with the ``logdir:``,
    ``model:`` and ``thresholds_file:`` lines congruence reads, and the ``method:`` used.

    With ``maxprob`` the thresholds only name the labels, so every ratio's CSV holds the same
    rows (the files keep SongExplorer's names for whatever reads them by ratio). Segments
    shorter than ``min_segment_fraction`` of their label's shortest annotated range are dropped
    when the thresholds file's folder holds the model's ``annotation-durations.csv``
    (:func:`min_segment_durations`; None or 0 keeps them all). Point labels (pulses) give one interval per peak of their probability, peaks closer than
    ``event_refractory_fraction`` of the label's shortest annotated gap being one
    (:func:`event_refractory`; None or 0: one interval per run of samples, as SongExplorer), and
    whose peak reaches ``event_min_peak``.

    Returns:
        The CSVs written.
    """
    check_method(method)
    thresholds_path = Path(thresholds_path)
    tables = read_thresholds_ratios(thresholds_path)
    labels = list(next(iter(tables.values())))
    probs = load_probabilities(probabilities_dir, wav, labels, rate=rate)
    check_thresholds_match_model(thresholds_path, probabilities_dir, wav)
    unknown = [label for label in labels if label not in probs.labels]
    if unknown:
        raise ThresholdsError(f"{thresholds_path}: has thresholds for label(s) {unknown} that the probabilities of "
                              f"{Path(wav).name} in {probabilities_dir} do not have (they have {list(probs.labels)}); "
                              f"use the thresholds of the model that classified it")
    method = choose_method(method, probs)
    durations = read_annotation_durations(thresholds_path.parent)
    minimum_s = min_segment_durations(durations, min_segment_fraction)
    events = event_refractory(durations, event_refractory_fraction)
    out_dir = Path(probabilities_dir if out_dir is None else out_dir)
    written = []
    for ratio, thresholds in tables.items():
        nan = [label for label, value in thresholds.items() if not np.isfinite(value)]
        if nan and method == "threshold":
            warnings.warn(f"{thresholds_path}: no finite threshold for {nan}; those labels are not predicted",
                          stacklevel=2)
        frame = model_ethogram(probs, thresholds, durations, method=method, wav=wav,
                               min_segment_fraction=min_segment_fraction,
                               event_refractory_fraction=event_refractory_fraction, event_min_peak=event_min_peak)
        written.append(write_intervals_csv(frame, out_dir / predicted_csv_name(wav, ratio)))
    model_dir = thresholds_path.resolve().parent
    log = out_dir / f"{Path(wav).name}-ethogram.log"
    with atomic_write(log, "w", encoding="utf-8") as handle:
        handle.write(f"logdir: {model_dir.parent}\nmodel: {model_dir.name}\n"
                     f"thresholds_file: {thresholds_path.name}\nwav_file: {Path(wav).name}\n"
                     f"audio_tic_rate: {probs.rate}\nmethod: {method}\n"
                     f"min_segment_s: {json.dumps({k: round(v, 6) for k, v in minimum_s.items()})}\n"
                     f"event_refractory_s: {json.dumps({k: round(v, 6) for k, v in events.items()})}\n"
                     f"event_min_peak: {event_min_peak:g}\n")
    return written
