"""Comparing one recording and label: the disjoint sets (everyone, only X, not X) at tic and
event level, and TP/FP/FN against every reference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from songexplorer_core.congruence.intervals import (
    _EMPTY, _cells, _clip, _count_runs, _even_cells, _Matches, _membership, _not_events, _only_events, _runs,
    _take, greedy_match,
)
from songexplorer_core.congruence.prepare import _Case
from songexplorer_core.congruence.terms import EVERYONE, SONGEXPLORER_REFERENCE


@dataclass
class _Outcome:
    counts: dict[str, dict[str, float]]  # measure -> column -> count
    tallies: list[dict]  # rows: measure, reference, tp, fp, fn
    sets: list[tuple[str, tuple[np.ndarray, np.ndarray]]] = field(default_factory=list)  # (kind, cells)


def _compare(case: _Case, predicted: tuple[np.ndarray, np.ndarray], *, model: str, measures: Sequence[str],
             keep_sets: bool) -> _Outcome:
    if case.span is None:
        model_cells = (_EMPTY, _EMPTY)
    else:
        model_cells = _clip(_cells(*predicted), 2 * case.span[0], 2 * case.span[1])
    keys = (model,) + case.annotators
    sets = (model_cells,) + case.humans
    nkeys, nhumans = len(keys), len(case.annotators)
    bounds, member = _membership(sets)
    tics = _even_cells(bounds[:-1], bounds[1:] - 1) if bounds.size > 1 else _EMPTY
    cover = member.sum(axis=0)
    everyone_mask = cover == nkeys
    only_masks = member & (cover == 1)
    not_masks = ~member & (cover == nkeys - 1)
    humans_any = member[1:].any(axis=0)
    humans_all = member[1:].all(axis=0)
    model_mask = member[0]

    outcome = _Outcome(counts={}, tallies=[])
    if keep_sets:
        outcome.sets.append((EVERYONE, _runs(bounds, everyone_mask)))

    if "tic" in measures:
        counts = {EVERYONE: int(tics[everyone_mask].sum())}
        for k, key in enumerate(keys):
            counts[f"only {key}"] = int(tics[only_masks[k]].sum())
            counts[f"not {key}"] = int(tics[not_masks[k]].sum()) if nkeys > 2 else pd.NA
            if keep_sets:
                outcome.sets.append((f"tic-only{key}", _runs(bounds, only_masks[k])))
                if nkeys > 2:
                    outcome.sets.append((f"tic-not{key}", _runs(bounds, not_masks[k])))
        outcome.counts["tic"] = counts
        fn = counts[f"not {model}"] if nhumans >= 2 else counts[f"only {keys[1]}"]
        outcome.tallies.append(_tally("tic", SONGEXPLORER_REFERENCE, counts[EVERYONE], counts[f"only {model}"], fn))
        references = [(name, member[1 + h]) for h, name in enumerate(case.annotators)]
        if nhumans >= 2:
            references += [("union", humans_any), ("intersection", humans_all)]
        for name, ref in references:
            outcome.tallies.append(_tally("tic", name, int(tics[model_mask & ref].sum()),
                                          int(tics[model_mask & ~ref].sum()), int(tics[~model_mask & ref].sum())))

    if "label" in measures:
        everyone = _count_runs(everyone_mask)
        counts = {EVERYONE: everyone}
        matches = _Matches(sets)
        for k, key in enumerate(keys):
            alone = _only_events(matches, k)
            counts[f"only {key}"] = int(alone.sum())
            if keep_sets:
                outcome.sets.append((f"label-only{key}", _take(sets[k], alone)))
            if nkeys > 2:
                missed = _not_events(sets, k)
                counts[f"not {key}"] = int(missed[0].size)
                if keep_sets:
                    outcome.sets.append((f"label-not{key}", missed))
            else:
                counts[f"not {key}"] = pd.NA
        outcome.counts["label"] = counts
        fn = counts[f"not {model}"] if nhumans >= 2 else counts[f"only {keys[1]}"]
        outcome.tallies.append(_tally("label", SONGEXPLORER_REFERENCE, everyone, counts[f"only {model}"], fn))
        for h, name in enumerate(case.annotators):
            outcome.tallies.append(_tally("label", name, _count_runs(model_mask & member[1 + h]),
                                          np.count_nonzero(matches(0, 1 + h) < 0),
                                          np.count_nonzero(matches(1 + h, 0) < 0)))
        if nhumans >= 2:
            for name, ref_mask in (("union", humans_any), ("intersection", humans_all)):
                ref_cells = _runs(bounds, ref_mask)
                outcome.tallies.append(_tally("label", name, _count_runs(model_mask & ref_mask),
                                              np.count_nonzero(greedy_match(model_cells, ref_cells) < 0),
                                              np.count_nonzero(greedy_match(ref_cells, model_cells) < 0)))
    return outcome


def _tally(measure: str, reference: str, tp, fp, fn) -> dict:
    return {"measure": measure, "reference": reference, "tp": int(tp), "fp": int(fp), "fn": int(fn)}
