"""Exact Poisson draws for small means, vectorised (numpy only).

``numpy.random.Generator.poisson`` costs 50-90 ns a draw on a 2-core x86 machine, which made
shot noise the dearest step of on-the-fly synthesis. :func:`poisson_small` draws the same law
with a few array passes and table look-ups (half numpy's time a draw, benchmarks/RESULTS.md) by
splitting the mean ``lam = g + d``, ``g`` the largest multiple of ``1 / STEPS`` not above it
(``0 <= d < 1 / STEPS``), and adding two independent draws, which is again exactly Poisson(lam):

- Poisson(g) by inversion of its CDF (float64, tabulated once for each ``g < TABLE_MEANS``):
  the count of a uniform ``u`` is the number of CDF values at or below it. ``[0, 1)`` is cut
  into ``CELLS`` equal cells; a cell holds the count at its left edge and the first CDF value
  inside it, if any, so that the count is ``base + (u >= inner)``: one look-up. The few cells
  that hold two CDF values or more (the far tail, where probabilities are below ``1 / CELLS``)
  are resolved by a binary search of the CDF.
- Poisson(d) by inversion of its CDF in float32 (the precision the means arrive in): 0 for
  about 9 draws in 10, rarely more than 1.

Means are drawn ``CHUNK`` at a time, so that temporaries stay in the cache.
"""
import functools

import numpy as np

TABLE_MEANS = 30  # means tabulated: 0, 1 / STEPS, ..., below TABLE_MEANS
STEPS = 4  # tabulated means per unit (a power of two: lam * STEPS is exact)
CELLS = 256  # cells of [0, 1) per tabulated mean (a power of two: u * CELLS is exact)
NO_INNER = 2.0  # inner CDF value of a cell holding none: never reached by u < 1
CHUNK = 16384  # means drawn together: their temporaries stay in the cache and off fresh pages


@functools.lru_cache(maxsize=None)
def _tables():
    """(cdf_rows, starts, base, inner, many) of the tabulated Poisson laws.

    ``cdf_rows``: their CDFs end to end, each plus its row number (so the whole is increasing);
    ``starts``: where each row starts. Per row and cell (flat index ``row * CELLS + cell``):
    ``base`` the count at the cell's left edge, ``inner`` the first CDF value inside the cell
    (``NO_INNER``: none), ``many`` whether the cell holds more than one.
    """
    rows, starts, bases, inners, manys, offset = [], [], [], [], [], 0
    edges = np.arange(CELLS + 1) / CELLS
    for index in range(TABLE_MEANS * STEPS):
        mean = index / STEPS
        pmf = np.exp(-mean)
        cdf = [pmf]
        while cdf[-1] < 1.0:
            pmf *= mean / len(cdf)
            if cdf[-1] + pmf == cdf[-1]:
                break  # the CDF stops growing in float64
            cdf.append(cdf[-1] + pmf)
        row = np.array(cdf)
        row[-1] = 1.0  # the tail beyond float64's resolution: u < 1 always stops here
        rows.append(row + index)
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
    flat = lam.ravel()
    counts = np.empty(flat.size, np.int64)
    for begin in range(0, flat.size, CHUNK):
        counts[begin:begin + CHUNK] = _draw(flat[begin:begin + CHUNK].astype(np.float64), rng)
    return counts.reshape(lam.shape)


def _draw(flat, rng):
    """:func:`poisson_small` of a 1-D float64 chunk ``flat``."""
    cdf_rows, starts, base, inner, many = _tables()
    row = (flat * STEPS).astype(np.intp)
    uniform = rng.random(flat.size)
    cell = row * CELLS + (uniform * CELLS).astype(np.intp)
    counts = base[cell]
    counts += uniform >= inner[cell]
    # Cells holding several CDF values (the far tail): a binary search of the row's CDF.
    tail = np.flatnonzero(many[cell])
    if tail.size:
        tail_rows = row[tail]
        counts[tail] = np.searchsorted(cdf_rows, tail_rows + uniform[tail], side='right') - starts[tail_rows]
    # The rest of the mean, d < 1 / STEPS: inversion of Poisson(d), in float32 (the precision of the means).
    rest = (flat - row / STEPS).astype(np.float32)
    probability = np.exp(-rest)  # P(0)
    uniform = rng.random(flat.size, np.float32)
    active = np.flatnonzero(uniform >= probability)
    uniform, rest, probability = uniform[active], rest[active], probability[active]
    cumulative, count = probability, 0
    while active.size:
        count += 1
        counts[active] += 1
        probability = probability * rest / count
        previous, cumulative = cumulative, cumulative + probability
        # On while u lies above the CDF and the CDF still grows in float32: where it stops, the
        # tail left is below a float32 uniform's resolution and ends here, as the tables end at 1.
        keep = (uniform >= cumulative) & (cumulative > previous)
        active, uniform, rest, probability, cumulative = (
            values[keep] for values in (active, uniform, rest, probability, cumulative))
    return counts
