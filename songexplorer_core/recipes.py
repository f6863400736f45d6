"""Training recipes: SongExplorer's tutorial settings and this project's default.

A recipe is a mapping of :class:`~songexplorer_core.train.TrainConfig` settings; ``model`` and
``augmentation`` entries are mappings too, merged key by key over the
:class:`~songexplorer_core.models.ModelSpec` / :class:`~songexplorer_core.dataset.Augmentation`
defaults. :func:`recipe_config` turns one into a ``TrainConfig`` for given labels.

* :data:`TUTORIAL_SETTINGS`: SongExplorer's ``test/tutorial.sh`` training settings.
* :data:`DEFAULT_RECIPE`: changes to them, each with its reason; chosen by
  ``benchmarks/recipe.py`` on dense synthetic truth and by leaving one tutorial recording out
  (figures in ``docs/recipe.md``).
* :data:`DEFAULT_ETHOGRAM_METHOD`: how the default ethogram is made (label of highest
  probability), :func:`make_ethogram`; :data:`DEFAULT_PRECISION_RECALL_RATIO`: the ratio of the
  thresholds files written beside a model.

:func:`match_events` is the yardstick the recipe was chosen with: how many true pulses a set of
predicted intervals finds, one to one, and how many predicted intervals are false.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd

from songexplorer_core import dataset as D
from songexplorer_core import models as M
from songexplorer_core.train import TrainConfig, TrainError

#: SongExplorer's tutorial training (its ``test/tutorial.sh``): 300 steps of mini-batches
#: of 32, Adam at 0.0002, P = 2, validate and checkpoint every 30 steps on 40 % of the
#: annotations, seeds 1 / 1, its default network (mel-cepstrum, 2 conv layers, 64/64 maps,
#: 50 % dropout, 204.8 ms context), no augmentation, balanced labels, one replicate.
TUTORIAL_SETTINGS: Mapping = MappingProxyType({
    "kinds_to_use": ("annotated",),
    "nsteps": 300,
    "validate_period": 30,
    "validate_percentage": 40.0,
    "mini_batch": 32,
    "learning_rate": 0.0002,
    "optimizer": "Adam",
    "loss": "exclusive",
    # SongExplorer's exclusive loss ignores not_<label> annotations (they serve overlapped models)
    "negatives": False,
    "parallelize": 2,
    "batch_seed": 1,
    "weights_seed": 1,
    "nreplicates": 1,
    "equalize": True,
    "model": MappingProxyType({}),
    "augmentation": MappingProxyType({}),
})

#: The project's default: changes to :data:`TUTORIAL_SETTINGS` (figures in docs/recipe.md).
DEFAULT_RECIPE: Mapping = MappingProxyType({
    # 300 steps at 0.0002 leave the network half-trained: it splits pulses in two and calls
    # pulse between the pulses of a train and at sine onsets, so 10-38 % of the pulses its
    # ethogram predicted on unseen synthetic song were false. Five times the learning rate and
    # 1000 steps bring pulse precision to 0.92-0.98 at recall 0.98-1.0 (29-36 CPU-s on 2 cores).
    "learning_rate": 0.001,
    "nsteps": 1000,
    # Validate once, at the end. Sparse validation annotations are easy to separate: F1 reaches
    # 1.0 after 30-100 steps and stays there, and the best checkpoint (highest F1, earliest on
    # ties) is then a barely trained one. With one validation the trained model is the one kept.
    "validate_period": 1000,
    # ... but checkpoint every 100 steps, so a killed training resumes close to where it stopped.
    "save_period": 100,
    # Less dropout (0.2) and 8 output taps per example (a sine or ambient range then labels 8
    # neighbouring taps instead of 2). Together, with seeds 1/1: pulse precision on unseen
    # synthetic song 0.968 instead of 0.933, false pulses on held-out real song 11.7 instead of
    # 17.6 per minute; with seeds 2/2 level (0.921 vs 0.919). A small gain, within seed-to-seed
    # noise, kept because averaged over the two seeds it raised pulse precision (0.945 vs
    # 0.926). P = 8 costs 15-20 % more CPU.
    "model": MappingProxyType({"dropout_rate": 0.2}),
    "parallelize": 8,
    # not_<label> ranges (SongExplorer's notsong CSVs, which its exclusive loss ignores) are
    # sounds known not to be that label: learn from them (-log(1 - p(label)) on their taps).
    # On real song left out of training, false pulses inside not_mel-pulse ranges fell from 49.6
    # to 3.5 per minute and sine precision rose from 0.971 to 0.998, with dev F1 level or better
    # (0.957 / 0.866 against 0.949 / 0.863; docs/recipe.md). No effect without not_ annotations.
    "negatives": True,
})

#: Every recipe by name: what ``--recipe`` (CLI) and ``TrainingConfig.recipe`` (Dagster) accept.
RECIPES: Mapping[str, Mapping] = MappingProxyType({"default": DEFAULT_RECIPE, "tutorial": MappingProxyType({})})
#: The recipe used when none is named.
DEFAULT_RECIPE_NAME = "default"
#: Their names, the default first (the CLI's choices, TrainingConfig's Literal).
RECIPE_NAMES: tuple[str, ...] = tuple(RECIPES)

#: Precision / recall ratio on the validation taps of the thresholds files written beside the
#: model (SongExplorer's default, 1.0; 2.0 was tried: it halves recall).
DEFAULT_PRECISION_RECALL_RATIO = 1.0

#: How the default ethogram is made: ``"maxprob"`` (each tic gets the label of highest
#: probability, ``ethogram.ethogram_maxprob``), not SongExplorer's per-label thresholds. Sparse
#: validation annotations cannot place a threshold: when every validation tap of the other
#: labels scores near 0 for mel-pulse, precision is 1 all the way down and the threshold where
#: precision equals recall falls to the lowest-scoring annotated pulse. Trained on both tutorial
#: recordings, that put the mel-pulse threshold at 0.007 and raised the predicted pulses of
#: PS_20130625111709_ch3 from 580 to 1026, the extra ones false. The label of highest probability
#: is what validation precision, recall and F1 measure (argmax); on held-out real song it made
#: 0-38 false pulses per minute of annotated sine and ambient against 12-100 with thresholds,
#: for 2-5 % fewer annotated pulses found (docs/recipe.md).
DEFAULT_ETHOGRAM_METHOD = "maxprob"

_NESTED = {"model": M.ModelSpec, "augmentation": D.Augmentation}


def _merged(*layers: Mapping) -> dict:
    out: dict = {}
    for layer in layers:
        for key, value in layer.items():
            if key in _NESTED and isinstance(value, Mapping):
                out[key] = {**out.get(key, {}), **value}
            else:
                out[key] = value
    return out


def recipe_config(recipe: Mapping, labels: Sequence[str] | str, **overrides) -> TrainConfig:
    """A ``TrainConfig`` for ``labels`` from :data:`TUTORIAL_SETTINGS`, then ``recipe``, then
    ``overrides`` (each a TrainConfig setting; ``model=`` / ``augmentation=`` may be mappings
    of some of their fields, merged over what the recipe sets, or whole objects).

    Raises:
        TrainError: an unknown setting, naming it, or a bad value (from ``TrainConfig``).
    """
    settings = _merged(TUTORIAL_SETTINGS, recipe, overrides)
    known = set(TrainConfig.__dataclass_fields__)
    unknown = sorted(set(settings) - known)
    if unknown:
        raise TrainError(f"unknown training setting(s) {unknown}; known: {sorted(known)}")
    for key, cls in _NESTED.items():
        value = settings.get(key)
        if isinstance(value, Mapping):
            settings[key] = cls.from_dict(dict(value)) if hasattr(cls, "from_dict") else cls(**dict(value))
    settings["labels_to_use"] = labels
    return TrainConfig(**settings)


def named_recipe_config(name: str, labels: Sequence[str] | str, **overrides) -> TrainConfig:
    """:func:`recipe_config` of the recipe called ``name`` (one of :data:`RECIPE_NAMES`).

    Raises:
        TrainError: an unknown name, listing the known ones (and as :func:`recipe_config`).
    """
    if name not in RECIPES:
        raise TrainError(f"recipe must be one of {RECIPE_NAMES}, not {name!r}")
    return recipe_config(RECIPES[name], labels, **overrides)


def tutorial_recipe(labels: Sequence[str] | str, **overrides) -> TrainConfig:
    """SongExplorer's tutorial training (:data:`TUTORIAL_SETTINGS`) for ``labels``."""
    return recipe_config({}, labels, **overrides)


def default_recipe(labels: Sequence[str] | str, **overrides) -> TrainConfig:
    """This project's default training (:data:`DEFAULT_RECIPE`) for ``labels``."""
    return recipe_config(DEFAULT_RECIPE, labels, **overrides)


def make_ethogram(probs, thresholds: Mapping[str, float] | None = None, *,
                  method: str = DEFAULT_ETHOGRAM_METHOD, min_segment_s: Mapping[str, float] | None = None,
                  events: Mapping[str, float] | None = None, event_min_peak: float | None = None) -> pd.DataFrame:
    """Predicted intervals of one recording's ``classify.Probabilities``, by ``method``:
    ``"maxprob"`` (``thresholds`` unused), ``"threshold"`` (``thresholds``: ``{label:
    probability}``, e.g. from ``accuracy``) or ``"auto"`` (maxprob for exclusive models,
    threshold for overlapped ones: ``ethogram.choose_method``). ``min_segment_s``: ``{label:
    seconds}`` below which predicted intervals are dropped (``ethogram.min_segment_durations``).
    ``events``: ``{label: refractory seconds}`` for labels that give one interval per peak of
    their probability (``ethogram.event_refractory``), the peak reaching ``event_min_peak``
    (default ``ethogram.DEFAULT_EVENT_MIN_PEAK``)."""
    from songexplorer_core.ethogram import (
        DEFAULT_EVENT_MIN_PEAK, METHOD_CHOICES, choose_method, drop_short_segments, ethogram_maxprob,
        ethogram_threshold,
    )

    if method not in METHOD_CHOICES:
        raise ValueError(f"method must be one of {METHOD_CHOICES}, not {method!r}")
    method = choose_method(method, probs)
    peak = DEFAULT_EVENT_MIN_PEAK if event_min_peak is None else float(event_min_peak)
    if method == "maxprob":
        frame = ethogram_maxprob(probs, events=events, event_min_peak=peak)
    elif method == "threshold":
        if thresholds is None:
            raise ValueError("the threshold method needs thresholds: {label: probability}")
        frame = ethogram_threshold(probs, thresholds, events=events, event_min_peak=peak)
    else:
        raise AssertionError(method)  # choose_method returns one of METHODS
    return drop_short_segments(frame, min_segment_s or {}, rate=probs.rate)


# ---------------------------------------------------------------------------------------------
# the yardstick


@dataclass(frozen=True)
class EventScores:
    """One-to-one agreement of predicted intervals with true events.

    Attributes:
        ntrue: true events; npredicted: predicted intervals.
        tp: matched pairs; fp: predicted intervals matching nothing; fn: true events missed.
        precision, recall, f1: fractions (NaN on 0/0).
    """

    ntrue: int
    npredicted: int
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / self.npredicted if self.npredicted else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / self.ntrue if self.ntrue else float("nan")

    @property
    def f1(self) -> float:
        total = self.ntrue + self.npredicted
        return 2 * self.tp / total if total else float("nan")


def match_events(true_tics, starts, stops, *, tolerance_tics: int = 0) -> EventScores:
    """Match true events (one tic each, e.g. pulse centres) to predicted intervals one to one.

    A predicted interval ``[start, stop]`` (tics, inclusive) can match a true event at tic ``t``
    when ``start - tolerance_tics <= t <= stop + tolerance_tics``. Pairs are made greedily in
    time order (each true event takes the free interval that can match it and ends first), which
    gives the most pairs possible. An interval
    covering two pulses finds one of them, the other is a miss; two intervals on one pulse give
    one match and one false interval.

    Args:
        true_tics: tics of the true events (any order).
        starts, stops: the predicted intervals, tics, inclusive (any order, may overlap).
        tolerance_tics: how far outside an interval a true event may lie, tics.
    """
    true_tics = np.sort(np.asarray(true_tics, dtype=np.int64))
    starts = np.asarray(starts, dtype=np.int64)
    stops = np.asarray(stops, dtype=np.int64)
    if starts.shape != stops.shape:
        raise ValueError(f"starts and stops differ in length: {starts.shape} vs {stops.shape}")
    if tolerance_tics < 0:
        raise ValueError(f"tolerance_tics must be >= 0, not {tolerance_tics}")
    # every true event in time order takes, among the free intervals that can match it, the one
    # that ends first: a maximum matching of points to intervals
    order = np.argsort(starts, kind="stable")
    lo, hi = starts[order] - tolerance_tics, stops[order] + tolerance_tics
    free: list[int] = []  # heap of the ends of intervals opened so far
    opened = matched = 0
    for t in true_tics:
        while opened < lo.size and lo[opened] <= t:
            heapq.heappush(free, int(hi[opened]))
            opened += 1
        while free and free[0] < t:
            heapq.heappop(free)
        if free:
            heapq.heappop(free)
            matched += 1
    return EventScores(ntrue=int(true_tics.size), npredicted=int(starts.size), tp=matched,
                       fp=int(starts.size) - matched, fn=int(true_tics.size) - matched)


def pulse_scores(predicted: pd.DataFrame, true_tics, *, label: str = "mel-pulse", wav: str | None = None,
                 tolerance_tics: int = 0) -> EventScores:
    """:func:`match_events` of the ``label`` rows of an interval table (of ``wav`` if given)."""
    rows = predicted[predicted["label"] == label]
    if wav is not None:
        rows = rows[rows["wav"] == wav]
    return match_events(true_tics, rows["start"].to_numpy(), rows["stop"].to_numpy(),
                        tolerance_tics=tolerance_tics)
