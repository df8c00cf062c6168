"""Measured point-spread functions read from files."""
from pathlib import Path

import cv2
import numpy as np

from .registry import KERNEL_REGISTRY

IMAGE_SUFFIXES = ('.png', '.tif', '.tiff')


def load_psf(path):
    """Raw PSF array of a file: .npy as stored, or an image read unchanged (8/16-bit, grey or colour).

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
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"PSF file {path}: unsupported suffix '{suffix}'; use .npy or {', '.join(IMAGE_SUFFIXES)}")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f'PSF file {path} could not be decoded')
    if image.ndim == 3:
        if image.shape[2] != 3:
            raise ValueError(f'PSF file {path} has {image.shape[2]} channels; expected grey or colour (3)')
        image = image[..., ::-1].transpose(2, 0, 1)  # BGR (kh, kw, 3) -> RGB (3, kh, kw)
    return image


@KERNEL_REGISTRY.register()
def file(path, pixel_pitch=None):
    """Measured PSF from a file (.npy, or an 8/16-bit .png/.tif, grey or colour), used as sampled.

    Args:
        path (str): the file; its pixels must be the sensor's pixels (no resampling is done).
        pixel_pitch (float | None): pitch [um] at which it was measured, kept as a record. Default: None.
    """
    return load_psf(path)
