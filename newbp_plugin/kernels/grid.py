"""Helpers for writing kernel functions: checked options and pixel-grid sampling.

Geometry shared by every kernel: offsets are in pixels from the centre pixel,
``x`` to the right and ``y`` *downwards* (image rows); angles are in degrees,
counter-clockwise from the +x axis as the image is displayed (0: horizontal,
90: vertical, 45: towards the upper right).
"""
import math

import numpy as np

from .build import MAX_KERNEL_SIZE


def number(name, value, minimum=0.0, strict=True):
    """``float(value)``, checked finite and > ``minimum`` (>= when not ``strict``); errors name the option."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f'{name} must be a number, got {value!r}') from None
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum:g}, got {value:g}")
    return value


def positive_int(name, value):
    """``value`` checked to be a whole number >= 1; returned as int."""
    try:
        valid = not isinstance(value, bool) and float(value).is_integer() and float(value) >= 1
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f'{name} must be a positive integer, got {value!r}')
    return int(float(value))


def kernel_size(size, radius):
    """Odd kernel side [px]: ``size`` when given, else ``2 * ceil(radius) + 1`` (the default)."""
    if size is None:
        size = 2 * max(0, math.ceil(radius)) + 1
        if size > MAX_KERNEL_SIZE:
            raise ValueError(f'the default size {size} for these parameters is above MAX_KERNEL_SIZE = '
                             f'{MAX_KERNEL_SIZE}; give a smaller size')
        return size
    size = positive_int('size', size)
    if size % 2 == 0 or size > MAX_KERNEL_SIZE:
        raise ValueError(f'size must be odd and at most MAX_KERNEL_SIZE = {MAX_KERNEL_SIZE}, got {size}')
    return size


def sample_pixels(profile, size, supersample=1, rule='gauss'):
    """Integral of ``profile(y, x)`` over each pixel of a ``size x size`` grid centred on 0.

    Args:
        profile (callable): intensity at offsets ``y``, ``x`` [px] (arrays of
            shape (size * supersample, size * supersample)).
        size (int): odd kernel side [px].
        supersample (int): quadrature nodes per pixel side; 1 samples the pixel centres.
        rule (str): 'gauss' (Gauss-Legendre: fast convergence for smooth profiles) or
            'midpoint' (a uniform sub-grid: area fractions of shapes with sharp edges).

    Returns:
        np.ndarray: (size, size) float64, the mean of the profile over each pixel.
    """
    if rule == 'gauss':
        nodes, weights = np.polynomial.legendre.leggauss(supersample)
        nodes, weights = nodes / 2, weights / 2
    else:
        nodes, weights = (np.arange(supersample) + 0.5) / supersample - 0.5, np.full(supersample, 1 / supersample)
    axis = ((np.arange(size) - size // 2)[:, None] + nodes).ravel()
    y, x = np.meshgrid(axis, axis, indexing='ij')
    values = profile(y, x).reshape(size, supersample, size, supersample)
    return np.einsum('inju,n,u->ij', values, weights, weights)


def centre_pad(kernel, shape):
    """Zero-pad the last two axes of a centred odd kernel to the odd ``shape`` (kh, kw), keeping it centred."""
    pads = [((target - length) // 2,) * 2 for target, length in zip(shape, kernel.shape[-2:])]
    return np.pad(kernel, [(0, 0)] * (kernel.ndim - 2) + pads)
