"""Reducing series for display: the min/max envelope keeps every slice's extremes, the CDF is
exact at every rank it keeps; short input is left whole."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from llem_report import cdf_points, envelope


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=5_000),
    buckets=st.integers(min_value=1, max_value=400),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_the_envelope_keeps_the_extremes_of_every_slice(
    count: int, buckets: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0.0, 100.0, count))
    y = rng.normal(200.0, 50.0, count)
    kept = envelope(x, y, buckets)
    if count <= 2 * buckets:
        assert kept.tolist() == list(range(count))
        return
    assert kept.tolist() == sorted(set(kept.tolist()))
    assert len(kept) <= 2 * buckets + 2
    assert (kept[0], kept[-1]) == (0, count - 1)
    slices = np.minimum(((x - x[0]) / (x[-1] - x[0]) * buckets).astype(int), buckets - 1)
    for piece in np.unique(slices):
        mine = np.flatnonzero(slices == piece)
        kept_here = np.intersect1d(kept, mine)
        assert y[kept_here].min() == y[mine].min()
        assert y[kept_here].max() == y[mine].max()


def test_the_envelope_drops_missing_values_and_keeps_a_lone_spike() -> None:
    x = np.arange(10_000, dtype=float)
    y = np.full(10_000, 100.0)
    y[::7] = np.nan
    y[4_321] = 700.0
    kept = envelope(x, y, 50)
    assert not np.isnan(y[kept]).any()
    assert 4_321 in kept.tolist()
    assert envelope(x, np.full(10_000, np.nan), 50).tolist() == [0, 9_999]


def test_the_cdf_is_exact_at_every_rank_it_keeps() -> None:
    values = np.random.default_rng(1).exponential(30.0, 10_000)
    x, fraction = cdf_points(values, max_points=500)
    ordered = np.sort(values)
    assert (x[0], fraction[0]) == (ordered[0], 0.0)
    assert (x[-1], fraction[-1]) == (ordered[-1], 1.0)
    assert len(x) == 501
    ranks = np.rint(fraction[1:] * len(values)).astype(int) - 1
    assert x[1:].tolist() == ordered[ranks].tolist()


def test_a_short_cdf_keeps_every_value_and_nan_is_no_value() -> None:
    x, fraction = cdf_points(np.array([3.0, np.nan, 1.0, 2.0]))
    assert x.tolist() == [1.0, 1.0, 2.0, 3.0]
    assert fraction.tolist() == [0.0, 1 / 3, 2 / 3, 1.0]
    empty_x, empty_fraction = cdf_points(np.array([np.nan]))
    assert (len(empty_x), len(empty_fraction)) == (0, 0)
