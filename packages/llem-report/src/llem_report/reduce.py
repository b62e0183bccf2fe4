"""Reducing long series for display, so a figure of a million samples draws in a blink and
a report stays small, without hiding what the data shows.

- :func:`envelope` keeps, in each of ``buckets`` equal slices of the x range, the samples
  with the smallest and the largest y: every peak and every dip survives at the resolution
  a figure can show (a min/max envelope per pixel column).
- :func:`cdf_points` evaluates an empirical distribution at evenly spaced ranks: exact at
  every point it keeps, at the resolution a figure can show.

Both return their input unchanged where it is already short enough, and say by their result's
length whether they reduced anything.
"""

from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["DEFAULT_BUCKETS", "cdf_points", "envelope"]

FloatArray = npt.NDArray[np.float64]

DEFAULT_BUCKETS: Final = 1_000
"""Slices of a figure's x range: about one per pixel column of a figure in a report."""


def envelope(x: FloatArray, y: FloatArray, buckets: int = DEFAULT_BUCKETS) -> npt.NDArray[np.intp]:
    """The indices of the samples to draw of ``(x, y)``, ``x`` ascending: per slice of the x
    range the smallest and the largest finite ``y``, in x order, with the first and last
    sample. All indices where there are at most ``2 * buckets`` samples. Samples whose ``y``
    is NaN are never kept once reducing."""
    count = len(x)
    if count <= 2 * buckets:
        return np.arange(count)
    finite = np.flatnonzero(np.isfinite(y))
    if len(finite) == 0:
        return np.array([0, count - 1])
    xs, ys = x[finite], y[finite]
    span = xs[-1] - xs[0]
    if span <= 0:
        slices = np.zeros(len(xs), dtype=np.intp)
    else:
        slices = np.minimum(((xs - xs[0]) / span * buckets).astype(np.intp), buckets - 1)
    starts = np.flatnonzero(np.diff(slices, prepend=-1))
    lengths = np.diff(starts, append=len(xs))
    low = np.repeat(np.minimum.reduceat(ys, starts), lengths)
    high = np.repeat(np.maximum.reduceat(ys, starts), lengths)
    keep = _first_per_slice(slices, ys == low) | _first_per_slice(slices, ys == high)
    keep[0] = keep[-1] = True
    return finite[keep]


def _first_per_slice(
    slices: npt.NDArray[np.intp], hits: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """A mask of the first hit in each slice (``slices`` ascending)."""
    positions = np.flatnonzero(hits)
    _, first = np.unique(slices[positions], return_index=True)
    mask = np.zeros(len(hits), dtype=bool)
    mask[positions[first]] = True
    return mask


def cdf_points(
    values: FloatArray, max_points: int = 2 * DEFAULT_BUCKETS
) -> tuple[FloatArray, FloatArray]:
    """The empirical CDF of the finite ``values``: ``(sorted values, fraction at or below)``,
    at every value where there are at most ``max_points``, else at ``max_points`` evenly
    spaced ranks (the smallest and the largest among them). Starts at the smallest value with
    fraction 0, so a step drawn through the points rises at each value."""
    data = np.sort(values[np.isfinite(values)])
    count = len(data)
    if count == 0:
        return data, data.copy()
    ranks = (
        np.arange(count)
        if count <= max_points
        else np.unique(np.linspace(0, count - 1, max_points).round().astype(np.intp))
    )
    return np.concatenate((data[:1], data[ranks])), np.concatenate(([0.0], (ranks + 1) / count))
