"""Measured point-spread functions read from files.

A kernel fitted on a Bayer mosaic (``basicsr calibrate --cfa``) is a ``.npz`` that records its CFA pattern beside
the packed (4, 4, k, k) kernel: arrays ``kernel`` and ``cfa`` (:func:`save_kernel`). Used on a mosaic of another
pattern (``file``'s ``pattern``, which a ``domain: raw`` dataset and ``basicsr restore`` fill in), it is an error:
its phases would be swapped. Files without a recorded pattern (``.npy``, images) are used on any.
"""
from pathlib import Path

import cv2
import numpy as np

from .bayer import phase_names
from .registry import KERNEL_REGISTRY

IMAGE_SUFFIXES = ('.png', '.tif', '.tiff')
KERNEL_KEY, CFA_KEY = 'kernel', 'cfa'  # the arrays of a .npz kernel file


def save_kernel(path, kernel, cfa=None):
    """Write a kernel file: ``.npy`` (the array), or ``.npz`` with ``kernel`` and, given, its CFA pattern ``cfa``.

    Raises:
        ValueError: another suffix, a ``cfa`` in a ``.npy`` (it has no place for it), or an unknown pattern.
    """
    suffix = Path(path).suffix.lower()
    if suffix == '.npz':
        arrays = {KERNEL_KEY: np.asarray(kernel)}
        if cfa is not None:
            phase_names(cfa)
            arrays[CFA_KEY] = np.array(cfa)
        np.savez(path, **arrays)
    elif suffix == '.npy' and cfa is None:
        np.save(path, np.asarray(kernel))
    else:
        raise ValueError(f'kernel file {path}: ' + ('a .npy holds no CFA pattern; write a .npz' if suffix == '.npy'
                                                     else f"unsupported suffix '{suffix}'; use .npy or .npz"))


def recorded_pattern(path):
    """The CFA pattern a kernel file records (a ``.npz``'s ``cfa``), or None."""
    if Path(path).suffix.lower() != '.npz' or not Path(path).is_file():
        return None
    return _read_npz(path)[1]


def _read_npz(path):
    """``(kernel, cfa or None)`` of a ``.npz`` kernel file."""
    with np.load(path, allow_pickle=False) as arrays:
        if KERNEL_KEY not in arrays:
            raise ValueError(f"kernel file {path} holds no array '{KERNEL_KEY}' (it has {', '.join(arrays.files)})")
        cfa = str(arrays[CFA_KEY]) if CFA_KEY in arrays else None
        if cfa is not None:
            phase_names(cfa)
        return arrays[KERNEL_KEY], cfa


def load_psf(path):
    """Raw PSF array of a file: .npy as stored, a .npz's ``kernel``, or an image read unchanged (8/16-bit, grey or
    colour).

    Returns:
        np.ndarray: (kh, kw) for .npy 2-D and grey images, (3, kh, kw) in RGB order for colour
        images, or a .npy's (C, kh, kw) / (C, C, kh, kw).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f'PSF file {path} does not exist')
    suffix = path.suffix.lower()
    if suffix == '.npy':
        return np.load(path, allow_pickle=False)
    if suffix == '.npz':
        return _read_npz(path)[0]
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"PSF file {path}: unsupported suffix '{suffix}'; use .npy, .npz or "
                         f"{', '.join(IMAGE_SUFFIXES)}")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f'PSF file {path} could not be decoded')
    if image.ndim == 3:
        if image.shape[2] != 3:
            raise ValueError(f'PSF file {path} has {image.shape[2]} channels; expected grey or colour (3)')
        image = image[..., ::-1].transpose(2, 0, 1)  # BGR (kh, kw, 3) -> RGB (3, kh, kw)
    return image


@KERNEL_REGISTRY.register()
def file(path, pixel_pitch=None, pattern=None):
    """Measured PSF from a file (.npy, .npz, or an 8/16-bit .png/.tif, grey or colour), used as sampled.

    Args:
        path (str): the file; its pixels must be the sensor's pixels (no resampling is done).
        pixel_pitch (float | None): pitch [um] at which it was measured, kept as a record. Default: None.
        pattern (str | None): the CFA pattern of the mosaics it is used on (a ``domain: raw`` dataset fills in its
            ``cfa``); a file that records another pattern is an error. Default: None, any.
    """
    kernel = load_psf(path)
    recorded = recorded_pattern(path)
    if pattern is not None:
        phase_names(pattern)
        if recorded is not None and recorded != pattern:
            raise ValueError(f'kernel file {path} was fitted on {recorded} mosaics and is used on {pattern} ones: '
                             f'its phases would be swapped; use it with cfa {recorded}, or fit one on {pattern}')
    return kernel
