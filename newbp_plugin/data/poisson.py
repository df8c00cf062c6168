"""Exact Poisson draws for small means, vectorised (numpy only).

``numpy.random.Generator.poisson`` costs 50-90 ns a draw on a 2-core x86 machine, which made
shot noise the dearest step of on-the-fly synthesis. :func:`poisson_small` draws the same law
with a few array passes and table look-ups (about 25 ns a draw, benchmarks/data.py) by
splitting the mean ``lam = g + d``, ``g`` the largest multiple of ``1 / STEPS`` not above it
(``0 <= d < 1 / STEPS``), and adding two independent draws, which is again exactly Poisson(lam):

- Poisson(g) by inversion of its CDF (float64, tabulated once for each ``g < TABLE_MEANS``):
  the count of a uniform ``u`` is the number of CDF values at or below it. ``[0, 1)`` is cut
  into ``CELLS`` equal cells; a cell holds the count at its left edge and the first CDF value
  inside it, if any, so that the count is ``base + (u >= inner)``: one look-up. The few cells
  that hold two CDF values or more (the far tail, where probabilities are below ``1 / CELLS``)
  then step on through the CDF.
- Poisson(d) as the number of arrivals of a unit-rate Poisson process in ``[0, d]`` (sums of
  standard exponentials): 0 for about 9 draws in 10, rarely more than 1.
"""
import functools

import numpy as np

TABLE_MEANS = 30  # means tabulated: 0, 1 / STEPS, ..., below TABLE_MEANS
STEPS = 4  # tabulated means per unit (a power of two: lam * STEPS is exact)
CELLS = 256  # cells of [0, 1) per tabulated mean (a power of two: u * CELLS is exact)
NO_INNER = 2.0  # inner CDF value of a cell holding none: never reached by u < 1


@functools.lru_cache(maxsize=None)
def _tables():
    """(cdf, starts, base, inner, many): the CDFs of the tabulated Poisson laws end to end and where
    each row starts in ``cdf``; per row and cell (flat, ``row * CELLS + cell``) the count at the
    cell's left edge, the first CDF value inside the cell (``NO_INNER``: none) and whether it
    holds more than one."""
    rows, starts, bases, inners, manys, offset = [], [], [], [], [], 0
    edges = np.arange(CELLS + 1) / CELLS
    for index in range(TABLE_MEANS * STEPS):
        mean = index / STEPS
        pmf = np.exp(-mean)
        cdf = [pmf]
        while cdf[-1] < 1.0 and pmf > 0:
            pmf *= mean / len(cdf)
            cdf.append(cdf[-1] + pmf)
        row = np.array(cdf)
        row[-1] = 1.0  # the tail beyond float64's resolution: u < 1 always stops here
        rows.append(row)
        starts.append([offset])
        offset += len(row)
        base = np.searchsorted(row, edges[:-1], side='right')  # count at each cell's left edge
        inside = np.searchsorted(row, edges[1:], side='left') - base  # CDF values inside each cell
        bases.append(base)
        inners.append(np.where(inside == 0, NO_INNER, row[base]))
        manys.append(inside > 1)
    return tuple(np.concatenate(parts) for parts in (rows, starts, bases, inners, manys))


def poisson_small(lam, rng):
    """Exact Poisson draws, one per element of ``lam``.

    Args:
        lam (np.ndarray): means, any shape, each in ``[0, TABLE_MEANS)``.
        rng (np.random.Generator): source of every draw.

    Returns:
        np.ndarray: int64 counts, the shape of ``lam``.

    Raises:
        ValueError: a mean is negative, not finite, or not below ``TABLE_MEANS``.
    """
    lam = np.asarray(lam)
    if lam.size and not (lam.min() >= 0 and lam.max() < TABLE_MEANS):
        raise ValueError(f'poisson_small: means must lie in [0, {TABLE_MEANS}), got [{lam.min()}, {lam.max()}]')
    cdf, starts, base, inner, many = _tables()
    flat = lam.ravel().astype(np.float64)
    whole = (flat * STEPS).astype(np.intp)
    uniform = rng.random(flat.size)
    cell = whole * CELLS + (uniform * CELLS).astype(np.intp)
    counts = base[cell]
    counts += uniform >= inner[cell]
    # Cells with several CDF values: on to the first k with CDF(k) > u.
    steps = np.flatnonzero(many[cell])
    position = starts[whole[steps]] + counts[steps]
    while steps.size:
        beyond = cdf[position] <= uniform[steps]
        counts[steps[beyond]] += 1
        steps, position = steps[beyond], position[beyond] + 1
    # The rest of the mean: unit-rate arrivals in [0, d].
    fraction = flat - whole / STEPS
    arrival = rng.standard_exponential(flat.size)
    active = np.flatnonzero(arrival <= fraction)
    arrival = arrival[active]
    while active.size:
        counts[active] += 1
        arrival += rng.standard_exponential(active.size)
        keep = arrival <= fraction[active]
        active, arrival = active[keep], arrival[keep]
    return counts.reshape(lam.shape)
