"""Exact small-mean Poisson draws: the law against scipy's pmf, shapes, determinism, errors."""
import signal

import numpy as np
import pytest
from scipy import stats

from newbp_plugin.data.poisson import CHUNK, STEPS, TABLE_MEANS, poisson_small

DRAWS = 200_000


@pytest.mark.parametrize('mean', [0.0, 0.05, 0.3, 0.999, 1.0, 2.5, 7.7, 15.2, 29.9])
def test_draws_follow_the_poisson_law(mean):
    counts = poisson_small(np.full(DRAWS, mean, np.float32), np.random.default_rng(1))
    exact = float(np.float32(mean))
    support = np.arange(counts.max() + 2)
    observed = np.bincount(counts, minlength=support.size)
    expected = stats.poisson.pmf(support, exact) * DRAWS
    cells = expected > 5  # Pearson's chi-square over the cells expecting 5 draws or more
    if cells.sum() < 2:  # mean 0 (and 0.05): a single populated cell
        assert observed[0] == DRAWS if exact == 0 else abs(observed[1] - expected[1]) < 5 * np.sqrt(expected[1])
        return
    chi2 = ((observed[cells] - expected[cells])**2 / expected[cells]).sum()
    assert stats.chi2.sf(chi2, cells.sum() - 1) > 1e-3, f'chi2 {chi2:.1f} over {cells.sum()} cells'
    assert counts.mean() == pytest.approx(exact, abs=4 * np.sqrt(max(exact, 1e-3) / DRAWS))


def _inversion_uniforms(rng, size):
    """The uniforms poisson_small inverts: per CHUNK of means, float64 ones, then float32 ones
    for the rest of the mean (skipped here)."""
    parts = []
    for begin in range(0, size, CHUNK):
        n = min(CHUNK, size - begin)
        parts.append(rng.random(n))
        rng.random(n, np.float32)
    return np.concatenate(parts)


def test_tabulated_means_invert_the_cdf_of_their_uniform_draw():
    # On the grid of tabulated means nothing is added to the inversion: each count is the number
    # of CDF values (scipy's) at or below the draw's uniform, far tail included.
    means = np.repeat(np.arange(TABLE_MEANS * STEPS) / STEPS, 2000)
    counts = poisson_small(means, np.random.default_rng(3))
    uniform = _inversion_uniforms(np.random.default_rng(3), means.size)
    support = np.arange(200)
    for mean in np.unique(means):
        group = means == mean
        expected = np.searchsorted(stats.poisson.cdf(support, mean), uniform[group], side='right')
        np.testing.assert_array_equal(counts[group], expected, err_msg=f'mean {mean}')


class LargestUniforms:
    """A generator stand-in whose every uniform is the largest below 1 of its dtype: the draws
    at the very end of each CDF, where float sums stop short of 1."""

    def random(self, size, dtype=np.float64):
        return np.full(size, np.nextafter(dtype(1), dtype(0)), dtype)


def _first_count_with_tail_below(means, tail):
    """Per mean, the smallest k with P(X > k) < tail: what inverting a uniform of 1 - tail gives."""
    support = np.arange(200)[:, None]
    return np.argmax(stats.poisson.sf(support, means) < tail, axis=0)


def test_uniforms_next_to_1_end_in_the_far_tail_and_never_loop():
    def too_slow(signum, frame):
        raise TimeoutError('poisson_small did not return: an inversion loop never ends')

    grid = np.arange(TABLE_MEANS * STEPS) / STEPS  # the tables alone (float64 uniform: 1 - 2^-53)
    rests = np.arange(1, 16) / (16 * STEPS)  # the float32 inversion alone (uniform: 1 - 2^-24)
    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(20)
    try:
        on_grid, rest = (poisson_small(means, LargestUniforms()) for means in (grid, rests))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    # The exact inversion's count, give or take the rounding the float CDF sums gather (~1e-15 in
    # float64, ~1e-7 in float32): up to two counts, at these uniforms only. Not some count the
    # loops reached by running on, nor the end of a table row.
    expected = _first_count_with_tail_below(grid, 2.0**-53)
    assert (np.abs(on_grid - expected) <= 2).all(), (on_grid, expected)
    expected = _first_count_with_tail_below(rests, 2.0**-24)
    assert (np.abs(rest - expected) <= 2).all(), (rest, expected)


def test_mixed_means_keep_their_shape_and_each_mean_its_law():
    rng = np.random.default_rng(2)
    means = np.array([0.4, 3.0, 12.5, 29.5])[rng.integers(0, 4, (3, 200, 200))]
    counts = poisson_small(means, rng)
    assert counts.shape == means.shape and counts.dtype == np.int64
    for mean in (0.4, 3.0, 12.5, 29.5):
        group = counts[means == mean]
        assert group.mean() == pytest.approx(mean, abs=4 * np.sqrt(mean / group.size))
        assert group.var() == pytest.approx(mean, rel=0.05)


def test_same_generator_state_gives_the_same_draws():
    means = np.linspace(0, TABLE_MEANS - 1e-3, 5000)
    first = poisson_small(means, np.random.default_rng(7))
    np.testing.assert_array_equal(first, poisson_small(means, np.random.default_rng(7)))
    assert not np.array_equal(first, poisson_small(means, np.random.default_rng(8)))
    assert poisson_small(np.zeros((0, 4)), np.random.default_rng(0)).shape == (0, 4)


@pytest.mark.parametrize('bad', [-0.1, float(TABLE_MEANS), np.nan])
def test_means_outside_the_table_are_refused(bad):
    with pytest.raises(ValueError, match=rf'means must lie in \[0, {TABLE_MEANS}\)'):
        poisson_small(np.array([1.0, bad]), np.random.default_rng(0))
