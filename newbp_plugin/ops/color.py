"""sRGB transfer curve (IEC 61966-2-1) for numpy arrays and torch tensors."""
import numpy as np
import torch

SRGB_KNEE = 0.04045  # encoded value where the sRGB curve turns from linear to power
LINEAR_KNEE = 0.0031308  # the same point in linear light (SRGB_KNEE / 12.92)


def _array_module(x):
    """(torch, x) for a tensor, else (numpy, x as an array)."""
    return (torch, x) if torch.is_tensor(x) else (np, np.asarray(x))


def _power(lib, base, exponent):
    """``base ** exponent`` for positive ``base``, as exp(exponent * log(base)): numpy's float32
    power is not vectorised and costs twice its exp and log."""
    return lib.exp(lib.log(base) * exponent)


def srgb_to_linear(x):
    """sRGB decoding (IEC 61966-2-1): encoded values -> linear light.

    Args:
        x (np.ndarray | Tensor | float): encoded values, [0, 1] in range (the linear
            segment continues below 0, the power segment above 1).

    Returns:
        np.ndarray | Tensor: same shape and float dtype.
    """
    lib, x = _array_module(x)
    return lib.where(x <= SRGB_KNEE, x / 12.92, _power(lib, (x.clip(min=SRGB_KNEE) + 0.055) / 1.055, 2.4))


def linear_to_srgb(x):
    """sRGB encoding (IEC 61966-2-1): linear light -> encoded values; the inverse of :func:`srgb_to_linear`."""
    lib, x = _array_module(x)
    return lib.where(x <= LINEAR_KNEE, x * 12.92, 1.055 * _power(lib, x.clip(min=LINEAR_KNEE), 1 / 2.4) - 0.055)
