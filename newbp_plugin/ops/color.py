"""sRGB transfer curve (IEC 61966-2-1) for numpy arrays and torch tensors."""
import functools

import numpy as np
import torch

SRGB_KNEE = 0.04045  # encoded value where the sRGB curve turns from linear to power
LINEAR_KNEE = 0.0031308  # the same point in linear light (SRGB_KNEE / 12.92)
CODE_DTYPES = (np.uint8, np.uint16)  # integer images decoded by table look-up
# Cells of [0, 1] in linear light for 8-bit encoding: each holds at most one rounding threshold
# (the closest two lie (1 / 255) / 12.92 = 3.0e-4 apart, on the linear segment; a cell is 2.4e-4).
ENCODE_CELLS = 4096


def _array_module(x):
    """(torch, x) for a tensor, else (numpy, x as an array)."""
    return (torch, x) if torch.is_tensor(x) else (np, np.asarray(x))


def _power(lib, base, exponent):
    """``base ** exponent`` for positive ``base``, as exp(exponent * log(base)): numpy's float32
    power is not vectorised and costs twice its exp and log (benchmarks/data.py, per sample)."""
    return lib.exp(lib.log(base) * exponent)


def srgb_to_linear(x):
    """sRGB decoding (IEC 61966-2-1): encoded values -> linear light.

    Args:
        x (np.ndarray | Tensor | float): encoded values, [0, 1] in range (the linear
            segment continues below 0, the power segment above 1); or a uint8 / uint16
            array of code values (0 .. 2^bits - 1), decoded by table look-up.

    Returns:
        np.ndarray | Tensor: same shape and float dtype; float32 for code values.
    """
    if isinstance(x, np.ndarray) and x.dtype in CODE_DTYPES:
        return _decoding_table(x.dtype.itemsize * 8)[x]
    lib, x = _array_module(x)
    return lib.where(x <= SRGB_KNEE, x / 12.92, _power(lib, (x.clip(min=SRGB_KNEE) + 0.055) / 1.055, 2.4))


def linear_to_srgb(x):
    """sRGB encoding (IEC 61966-2-1): linear light -> encoded values; the inverse of :func:`srgb_to_linear`."""
    lib, x = _array_module(x)
    return lib.where(x <= LINEAR_KNEE, x * 12.92, 1.055 * _power(lib, x.clip(min=LINEAR_KNEE), 1 / 2.4) - 0.055)


def linear_to_srgb_8bit(x):
    """8-bit sRGB code values of linear light: ``round(255 * linear_to_srgb(x))`` on the float64
    curve, by two table look-ups per value (half the time of the curve in float32).

    Args:
        x (np.ndarray): linear light, float, any shape; clipped to [0, 1].

    Returns:
        np.ndarray: uint8 code values, the shape of ``x``.
    """
    base, inner = _encoding_tables()
    x = np.clip(x, 0, 1)
    cell = (x * ENCODE_CELLS).astype(np.intp)
    return base[cell] + (x >= inner[cell])


@functools.lru_cache(maxsize=None)
def _decoding_table(bits):
    """(2^bits,) float32 linear light of every ``bits``-bit code value (the float64 curve, rounded)."""
    return srgb_to_linear(np.arange(2**bits) / (2**bits - 1)).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _encoding_tables():
    """(base, inner) per cell ``floor(x * ENCODE_CELLS)`` of linear light (the last cell: x = 1):
    the 8-bit code at the cell's left edge, and the threshold to the next code inside the cell
    (2.0 where none: never reached)."""
    thresholds = srgb_to_linear((np.arange(255) + 0.5) / 255)  # linear light where code j turns j + 1
    left = np.arange(ENCODE_CELLS + 1) / ENCODE_CELLS
    base = np.searchsorted(thresholds, left, side='right')
    inside = np.searchsorted(thresholds, left + 1 / ENCODE_CELLS, side='left') - base
    assert inside.max() <= 1, 'ENCODE_CELLS too small: a cell holds two rounding thresholds'
    inner = np.where(inside == 1, thresholds[np.minimum(base, thresholds.size - 1)], 2.0)
    return base.astype(np.uint8), inner
