"""scikit-image's grey closing and opening of a 1-D boolean mask (default ``mode="reflect"``,
flat footprint), as SongExplorer's detector used them, and the runs of a mask."""

from __future__ import annotations

import numpy as np
from scipy import ndimage



def _footprints(length: int) -> tuple[np.ndarray, np.ndarray]:
    # scikit-image pads an even footprint with a zero at its start to make it odd, and mirrors it
    # for one of the two passes; scipy's grey_dilation mirrors once more internally.
    footprint = np.ones(length, dtype=bool)
    if length % 2 == 0:
        footprint = np.concatenate(([False], footprint))
    return footprint, footprint[::-1]


def _closing_by_footprint(mask: np.ndarray, length: int) -> np.ndarray:
    _, mirrored = _footprints(length)
    dilated = ndimage.grey_dilation(mask, footprint=mirrored, mode="reflect")
    return ndimage.grey_erosion(dilated, footprint=mirrored, mode="reflect")


def _opening_by_footprint(mask: np.ndarray, length: int) -> np.ndarray:
    padded, _ = _footprints(length)
    eroded = ndimage.grey_erosion(mask, footprint=padded, mode="reflect")
    return ndimage.grey_dilation(eroded, footprint=padded, mode="reflect")


def skimage_closing(mask: np.ndarray, length: int) -> np.ndarray:
    """``skimage.morphology.closing(mask, np.ones(length))`` for a 1-D boolean mask.

    False gaps shorter than ``length`` between True runs are filled; at the ends of the array the
    border is reflected (scikit-image's default), so a run ending within about ``length/2``
    samples of an end is extended to it (for length 16: gaps of <= 8 at the start, <= 7 at the end).
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.size == 0 or length <= 1:
        return mask.copy()
    if mask.size <= 2 * length:
        return _closing_by_footprint(mask, length)
    # Same windows as the footprints above, with scipy's O(n) running max/min; identical results
    # once the array is longer than the footprint (the reflected border then fits in the array).
    shift = -1 if length % 2 == 0 else 0
    dilated = ndimage.maximum_filter1d(mask, length, origin=shift, mode="reflect")
    return ndimage.minimum_filter1d(dilated, length, origin=0, mode="reflect")


def skimage_opening(mask: np.ndarray, length: int) -> np.ndarray:
    """``skimage.morphology.opening(mask, np.ones(length))`` for a 1-D boolean mask: True runs
    shorter than ``length`` are removed (border reflected, as :func:`skimage_closing`)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.size == 0 or length <= 1:
        return mask.copy()
    if mask.size <= 2 * length:
        return _opening_by_footprint(mask, length)
    shift = -1 if length % 2 == 0 else 0
    eroded = ndimage.minimum_filter1d(mask, length, origin=shift, mode="reflect")
    return ndimage.maximum_filter1d(eroded, length, origin=0, mode="reflect")


def mask_runs(mask: np.ndarray) -> np.ndarray:
    """Maximal True runs of a 1-D mask as an ``(n, 2)`` int64 array of ``[first, last + 1)``
    (exclusive stop, as scikit-image's ``regionprops`` bounding boxes)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    edges = np.flatnonzero(np.diff(mask.view(np.int8), prepend=0, append=0))
    return edges.reshape(-1, 2).astype(np.int64)


def closed_runs(mask: np.ndarray, length: int) -> np.ndarray:
    """``mask_runs(skimage_closing(mask, length))`` computed on the runs (no second mask).

    Gaps shorter than ``length`` between runs are merged; with scikit-image's reflected border a
    first run starting at most ``length // 2`` tics after tic 0 is extended to it, and a last run
    ending at most ``(length - 1) // 2`` tics before the end is extended to the end.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.size <= 2 * length or length <= 1:
        return mask_runs(skimage_closing(mask, length))
    runs = mask_runs(mask)
    if runs.size == 0:
        return runs
    keep_gap = runs[1:, 0] - runs[:-1, 1] >= length
    starts = runs[np.r_[True, keep_gap], 0]
    stops = runs[np.r_[keep_gap, True], 1]
    if starts[0] <= length // 2:
        starts[0] = 0
    if mask.size - stops[-1] <= (length - 1) // 2:
        stops[-1] = mask.size
    return np.column_stack((starts, stops))
