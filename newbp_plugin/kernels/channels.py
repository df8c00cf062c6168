"""Kernels that differ between colour channels, or mix them."""
import numpy as np

from .build import build_kernel
from .grid import centre_pad
from .registry import KERNEL_REGISTRY


@KERNEL_REGISTRY.register()
def per_channel(kernels):
    """A different kernel per colour channel -> (C, kh, kw), zero-padded to a common odd size.

    Args:
        kernels (list): one spec (or PSF path) per channel, in the image's channel order.
    """
    if not isinstance(kernels, (list, tuple)) or not kernels:
        raise ValueError(f'kernels must be a non-empty list of specs, one per channel, got {kernels!r}')
    planes = [build_kernel(spec) for spec in kernels]
    for index, plane in enumerate(planes):
        if plane.ndim != 2:
            raise ValueError(f'kernels[{index}] has shape {plane.shape}; each channel needs a 2-D kernel')
    shape = tuple(max(plane.shape[axis] for plane in planes) for axis in (0, 1))
    return np.stack([centre_pad(plane, shape) for plane in planes])


@KERNEL_REGISTRY.register()
def cross_channel(mix, kernel=None):
    """Colour/spectral crosstalk: channel c receives mix[c][c'] of channel c' -> (C, C, kh, kw).

    ``K[c, c'] = mix[c][c'] * k_c'``: output ``y_c = sum_c' K[c, c'] * s_c'``;
    each row of ``mix`` is normalised (an output channel's total is 1).

    Args:
        mix (list[list[float]]): C x C non-negative fractions, row c = output channel c.
        kernel (dict | str | None): spatial spec shared by all channels, or a per_channel
            spec (k_c' for source channel c'). Default: None (no spatial spread).
    """
    mix = np.asarray(mix, dtype=np.float64)
    if mix.ndim != 2 or mix.shape[0] != mix.shape[1]:
        raise ValueError(f'mix must be a square C x C list of lists, got shape {mix.shape}')
    spatial = np.ones((1, 1)) if kernel is None else build_kernel(kernel)
    if spatial.ndim == 4:
        raise ValueError('kernel must be a spatial (kh, kw) or per-channel (C, kh, kw) kernel')
    if spatial.ndim == 3 and spatial.shape[0] != mix.shape[0]:
        raise ValueError(f'kernel has {spatial.shape[0]} channels but mix has {mix.shape[0]}')
    return mix[:, :, None, None] * spatial
