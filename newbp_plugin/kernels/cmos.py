"""CMOS inter-pixel crosstalk: optical and electrical leakage into neighbouring pixels."""
import numpy as np

from .grid import number
from .registry import KERNEL_REGISTRY


@KERNEL_REGISTRY.register()
def crosstalk(left=0.02, right=0.02, up=0.02, down=0.02, diagonal=0.005, second_ring=0.0, size=3):
    """CMOS crosstalk: each pixel leaks fractions of its signal into its neighbours and keeps the rest.

    Args:
        left (float): fraction of a pixel's signal that lands in its left neighbour (as displayed). Default: 0.02.
        right (float): fraction into the right neighbour. Default: 0.02.
        up (float): fraction into the neighbour above. Default: 0.02.
        down (float): fraction into the neighbour below. Default: 0.02.
        diagonal (float): fraction into each of the 4 diagonal neighbours. Default: 0.005.
        second_ring (float): fraction into each of the 16 pixels two steps away (size 5 only). Default: 0.
        size (int): 3 or 5 [px]. Default: 3.

    The centre keeps 1 - (left + right + up + down + 4 * diagonal + 16 * second_ring).
    """
    fractions = {name: number(name, value, strict=False) for name, value in (
        ('left', left), ('right', right), ('up', up), ('down', down), ('diagonal', diagonal),
        ('second_ring', second_ring))}
    if size not in (3, 5):
        raise ValueError(f'size must be 3 or 5, got {size!r}')
    if size == 3 and fractions['second_ring'] > 0:
        raise ValueError('second_ring needs size: 5')
    leakage = sum(fractions.values()) + 3 * fractions['diagonal'] + 15 * fractions['second_ring']
    if leakage >= 1:
        raise ValueError(f'the total leakage {leakage:g} must be < 1 (the centre keeps 1 - total)')
    kernel = np.full((size, size), fractions['second_ring'])
    c = size // 2
    kernel[c - 1:c + 2, c - 1:c + 2] = fractions['diagonal']
    kernel[c, c - 1], kernel[c, c + 1] = fractions['left'], fractions['right']
    kernel[c - 1, c], kernel[c + 1, c] = fractions['up'], fractions['down']
    kernel[c, c] = 1 - leakage
    return kernel
