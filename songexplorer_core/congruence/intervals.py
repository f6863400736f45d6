"""Sets of closed/open intervals with integer ends, on the half-tic grid, and SongExplorer's
greedy one-to-one matching of their events.

Semantics follow SongExplorer v0.9.1 (which used the ``portion`` library): intervals are closed
real intervals with integer ends; two intervals merge only when they overlap or share an end, so
``[1,1]`` and ``[2,2]`` stay two events. Internally a set is held on a grid of half tics: cell
``2t`` is tic ``t`` and cell ``2t+1`` the open gap between tics ``t`` and ``t+1``; any union of
intervals with integer ends (open or closed) is exactly a union of cells, so set algebra becomes
sorted-interval sweeps with NumPy, and nothing loops over tics or, in the common cases, intervals.

Label-level matching (SongExplorer's greedy rule): for each event ``a`` of key ``k`` in time
order, and each other key ``j``, the first not-yet-matched event of ``j`` that overlaps ``a`` is
matched to it and removed.  ``a`` is "only k" if it matched nothing in any other key.  "not k" uses
one other key ``k1`` (the first of the others: the model for an annotator, the first annotator
for the model): an event of ``k1`` that overlaps nothing of ``k`` and matches an event in every
remaining key is counted, and those matches are removed.

A set is a pair ``(lo, hi)`` of sorted int64 arrays of cells, inclusive, of components that neither
overlap nor touch (a component is an "atomic interval" of the ``portion`` library).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_EMPTY = np.empty(0, dtype=np.int64)


def _cells(start: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The union of closed tic intervals ``[start, stop]`` as merged cell components."""
    return _merge(np.asarray(start, dtype=np.int64) * 2, np.asarray(stop, dtype=np.int64) * 2)


def _merge(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge cell intervals that overlap or touch into sorted components."""
    if lo.size == 0:
        return _EMPTY, _EMPTY
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], hi[order]
    reach = np.maximum.accumulate(hi)
    first = np.empty(lo.size, dtype=bool)
    first[0] = True
    first[1:] = lo[1:] > reach[:-1] + 1
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:] - 1, lo.size - 1)
    return lo[starts], reach[ends]


def _clip(cells: tuple[np.ndarray, np.ndarray], first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    """Intersect a set with the cells ``first..last``."""
    lo, hi = cells
    keep = (hi >= first) & (lo <= last)
    return np.maximum(lo[keep], first), np.minimum(hi[keep], last)


def _even_cells(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Tics (even cells) in each cell interval ``lo..hi``."""
    return hi // 2 - (lo + 1) // 2 + 1


def _tic_bounds(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First and last tic of each component, and which components hold a tic at all."""
    first, last = (lo + 1) // 2, hi // 2
    return first, last, first <= last


def _membership(sets: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Cut the line at every component end of every set.

    Returns ``bounds`` (segment ``i`` is cells ``bounds[i] .. bounds[i+1]-1``) and a boolean
    matrix ``[nsets, nsegments]``: which set covers which segment."""
    ends = np.sort(np.concatenate([lo for lo, _ in sets] + [hi + 1 for _, hi in sets]))
    bounds = ends[np.append(True, ends[1:] != ends[:-1])] if ends.size else _EMPTY
    nseg = max(bounds.size - 1, 0)
    member = np.zeros((len(sets), nseg), dtype=bool)
    if nseg:
        seg = bounds[:-1]
        for row, (lo, hi) in enumerate(sets):
            if lo.size:
                index = np.searchsorted(lo, seg, side="right") - 1
                member[row] = (index >= 0) & (hi[np.maximum(index, 0)] >= seg)
    return bounds, member


def _runs(bounds: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Components of the union of the segments selected by ``mask`` (segments tile the line,
    so consecutive selected segments form one component)."""
    if not mask.any():
        return _EMPTY, _EMPTY
    edges = np.flatnonzero(np.diff(mask.view(np.int8), prepend=0, append=0))
    first, after = edges[0::2], edges[1::2]
    return bounds[first], bounds[after] - 1


def _count_runs(mask: np.ndarray) -> int:
    if mask.size == 0:
        return 0
    return int(np.count_nonzero(mask[1:] & ~mask[:-1]) + bool(mask[0]))


_RESET, _SET, _PASS = 0, 1, 2


def greedy_match(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """SongExplorer's greedy one-to-one matching of the components of ``a`` against those of ``b``.

    For each component of ``a`` in order, the first not-yet-matched component of ``b`` that
    overlaps it is matched (and so removed). Both are sets as made by :func:`_cells`.

    Returns, for each component of ``a``, the index of its match in ``b`` or -1.

    Vectorised: the components of ``b`` that overlap ``a[i]`` are a contiguous range
    ``first[i]..last[i]``, ranges of successive ``a`` share at most their end, and ``a[i]`` loses
    ``first[i]`` exactly when the previous ``a`` with a non-empty range took it; that happens
    when the two ranges are linked (``last[p] == first[i]``) and either ``p``'s range is a single
    component, or it has two and ``p`` itself lost its first: a forward-filled state.
    """
    a_lo, a_hi = a
    b_lo, b_hi = b
    match = np.full(a_lo.size, -1, dtype=np.int64)
    if a_lo.size == 0 or b_lo.size == 0:
        return match
    first = np.searchsorted(b_hi, a_lo, side="left")
    last = np.searchsorted(b_lo, a_hi, side="right") - 1
    some = np.flatnonzero(first <= last)
    if some.size == 0:
        return match
    f, l = first[some], last[some]
    linked = l[:-1] == f[1:]
    if not linked.any():
        match[some] = f
        return match
    width = l - f
    state = np.full(some.size, _RESET, dtype=np.int8)
    state[1:] = np.where(linked & (width[:-1] == 0), _SET,
                         np.where(linked & (width[:-1] == 1), _PASS, _RESET))
    source = np.maximum.accumulate(np.where(state != _PASS, np.arange(some.size), 0))
    bumped = state[source] == _SET
    match[some] = np.where(~bumped, f, np.where(f + 1 <= l, f + 1, -1))
    return match


def _overlaps_any(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """For each component of ``a``: does any component of ``b`` overlap it?"""
    if a[0].size == 0 or b[0].size == 0:
        return np.zeros(a[0].size, dtype=bool)
    return np.searchsorted(b[1], a[0], side="left") <= np.searchsorted(b[0], a[1], side="right") - 1


def _take(cells: tuple[np.ndarray, np.ndarray], which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return cells[0][which], cells[1][which]


class _Matches:
    """Greedy matches between the sets of one comparison, each pair computed once."""

    def __init__(self, sets: Sequence[tuple[np.ndarray, np.ndarray]]):
        self.sets = sets
        self._done: dict[tuple[int, int], np.ndarray] = {}

    def __call__(self, i: int, j: int) -> np.ndarray:
        if (i, j) not in self._done:
            self._done[(i, j)] = greedy_match(self.sets[i], self.sets[j])
        return self._done[(i, j)]


def _only_events(matches: _Matches, k: int) -> np.ndarray:
    """Boolean per component of set ``k``: matched nothing in any other set (greedy, per set)."""
    alone = np.ones(matches.sets[k][0].size, dtype=bool)
    for j in range(len(matches.sets)):
        if j != k:
            alone &= matches(k, j) < 0
    return alone


def _not_events(sets: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Components of ``sets[k1]`` that count as "not k" (three sets or more), ``k1`` the first
    index other than ``k``. Returns the chosen components as a set."""
    k1 = 0 if k != 0 else 1
    rest = [j for j in range(len(sets)) if j not in (k, k1)]
    # k's events are never removed (only matched events of the rest are), so "overlaps nothing
    # of k" is fixed; an event lacking any overlap in one of the rest can never qualify either.
    candidate = ~_overlaps_any(sets[k1], sets[k])
    for j in rest:
        candidate &= _overlaps_any(sets[k1], sets[j])
    chosen = np.flatnonzero(candidate)
    # An event qualifies only if it finds an unmatched event in *every* remaining set, and only
    # then are those removed. With one remaining set that is plain greedy matching; with more, drop
    # the first event that fails in some set (it truly fails: everything before it succeeded) and
    # redo, until none fails.
    while chosen.size:
        events = _take(sets[k1], chosen)
        fails = np.zeros(chosen.size, dtype=bool)
        for j in rest:
            fails |= greedy_match(events, sets[j]) < 0
        if not fails.any():
            break
        if len(rest) == 1:
            chosen = chosen[~fails]
            break
        chosen = np.delete(chosen, int(np.argmax(fails)))
    return _take(sets[k1], chosen)
