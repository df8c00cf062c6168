"""The colour-filter mosaic (Bayer CFA) of raw images: mosaicking, packing, crosstalk on the mosaic (torch, no BasicSR).

A raw image is (B, 1, H, W), H and W even; :func:`pack` makes its four phases (the positions of
the 2x2 CFA cell in raster order, named by ``CFA_PATTERNS``) the channels of a (B, 4, H/2, W/2)
image. The phase kernels of :func:`mosaic_crosstalk` and their packed channel-mixing equivalent
are defined, and converted, in :mod:`newbp_plugin.kernels.bayer`.
"""
import cv2
import numpy as np
import torch
import torch.nn.functional as F

from newbp_plugin.kernels.bayer import CFA_PATTERNS, packed_to_phase_kernels, phase_kernels_to_packed, phase_names
from newbp_plugin.ops import crosstalk

__all__ = ['CFA_PATTERNS', 'PHASE_OFFSETS', 'phase_names', 'phase_channels', 'pack', 'unpack', 'mosaic', 'demosaic',
           'phase_kernels_to_packed', 'packed_to_phase_kernels', 'mosaic_crosstalk']
PHASE_OFFSETS = ((0, 0), (0, 1), (1, 0), (1, 1))  # (row, column) of each phase in the 2x2 cell
# OpenCV names a Bayer pattern by the second row's second and third pixels, not by the top-left cell
OPENCV_BAYER_TO_RGB = {'RGGB': cv2.COLOR_BayerBG2RGB, 'BGGR': cv2.COLOR_BayerRG2RGB,
                       'GRBG': cv2.COLOR_BayerGB2RGB, 'GBRG': cv2.COLOR_BayerGR2RGB}
DEMOSAIC_BITS = 16  # OpenCV demosaics integers: raw in [0, 1] is quantised to this many bits


def phase_channels(pattern):
    """The RGB channel index (0 R, 1 G, 2 B) of each phase of ``pattern``: 'RGGB' -> (0, 1, 1, 2)."""
    return tuple('RGB'.index(name[0]) for name in phase_names(pattern))


def _check_mosaic_shape(x, channels, owner):
    if not torch.is_tensor(x) or x.dim() != 4 or x.shape[1] != channels:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f'{owner}: expected a (B, {channels}, H, W) tensor, got {shape}')
    if x.shape[-2] % 2 or x.shape[-1] % 2:
        raise ValueError(f'{owner}: H and W must be even (whole 2x2 CFA cells), got {tuple(x.shape[-2:])}')


def pack(raw):
    """(B, 1, H, W) mosaic -> (B, 4, H/2, W/2) phase planes (pixel unshuffle by 2); inverse of :func:`unpack`."""
    _check_mosaic_shape(raw, 1, 'pack')
    return F.pixel_unshuffle(raw, 2)


def unpack(packed):
    """(B, 4, h, w) phase planes -> (B, 1, 2h, 2w) mosaic (pixel shuffle by 2); inverse of :func:`pack`."""
    if not torch.is_tensor(packed) or packed.dim() != 4 or packed.shape[1] != 4:
        shape = tuple(packed.shape) if torch.is_tensor(packed) else type(packed).__name__
        raise ValueError(f'unpack: expected a (B, 4, h, w) tensor, got {shape}')
    return F.pixel_shuffle(packed, 2)


def mosaic(rgb, pattern):
    """(B, 3, H, W) RGB -> (B, 1, H, W) raw: each pixel keeps the colour of its CFA filter.

    Args:
        rgb (Tensor): (B, 3, H, W), H and W even, any units.
        pattern (str): one of ``CFA_PATTERNS``.
    """
    _check_mosaic_shape(rgb, 3, 'mosaic')
    planes = [rgb[:, channel, row::2, column::2]
              for channel, (row, column) in zip(phase_channels(pattern), PHASE_OFFSETS)]
    return unpack(torch.stack(planes, dim=1))


def demosaic(raw, pattern):
    """(B, 1, H, W) raw in [0, 1] -> (B, 3, H, W) RGB by OpenCV's bilinear demosaicing, at 16 bits.

    Values outside [0, 1] are clipped; the result has raw's dtype and device (computed on the CPU, no gradient).

    Args:
        raw (Tensor): (B, 1, H, W) mosaic, H and W even.
        pattern (str): one of ``CFA_PATTERNS``.
    """
    _check_mosaic_shape(raw, 1, 'demosaic')
    phase_names(pattern)  # a clear error for an unknown pattern
    code = OPENCV_BAYER_TO_RGB[pattern]
    peak = 2**DEMOSAIC_BITS - 1
    codes = np.round(raw.detach().clamp(0, 1).cpu().double().numpy()[:, 0] * peak).astype(np.uint16)
    rgb = np.stack([cv2.cvtColor(plane, code) for plane in codes]).transpose(0, 3, 1, 2) / peak
    return torch.from_numpy(rgb).to(device=raw.device, dtype=raw.dtype)


def mosaic_crosstalk(raw, phase_kernels, padding_mode='zeros'):
    """Crosstalk on the mosaic, the reference forward model: each pixel receives light by its phase's kernel.

    Computed as ``unpack(ops.crosstalk(pack(raw), packed))``; ``padding_mode`` continues the
    packed planes (so 'reflect' reflects whole CFA cells, keeping colours in place).

    Args:
        raw (Tensor): (B, 1, H, W) mosaic, H and W even, linear light.
        phase_kernels (Tensor | ndarray): (4, k, k), k odd; see :mod:`newbp_plugin.kernels.bayer`.
        padding_mode (str): as :func:`newbp_plugin.ops.crosstalk`. Default: 'zeros'.

    Returns:
        Tensor: (B, 1, H, W).
    """
    packed = phase_kernels_to_packed(torch.as_tensor(phase_kernels, device=raw.device))
    return unpack(crosstalk(pack(raw), packed.unsqueeze(0), padding_mode=padding_mode))
