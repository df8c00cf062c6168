"""Optical kernels: diffraction (Airy) and defocus (disk)."""
import numpy as np
from scipy.special import j1

from .grid import kernel_size, number, positive_int, sample_pixels
from .registry import KERNEL_REGISTRY

AIRY_FIRST_ZERO = 1.2196698912665045  # first zero of 2 J1(x) / x, in units of wavelength * f-number


@KERNEL_REGISTRY.register()
def airy(wavelength=550.0, f_number=2.8, pixel_pitch=1.4, size=None, supersample=7):
    """Diffraction of a perfect lens with a circular aperture (Airy pattern), integrated over each pixel.

    Args:
        wavelength (float): wavelength of the light [nm]. Default: 550 (green).
        f_number (float): lens f-number N, focal length / aperture diameter. Default: 2.8.
        pixel_pitch (float): sensor pixel pitch [um]. Default: 1.4.
        size (int | None): odd side [px]. Default: covers 3 times the first dark ring, whose
            radius is 1.22 * wavelength * f_number / pixel_pitch [px].
        supersample (int): Gauss-Legendre nodes per pixel side for the pixel-area integration. Default: 7.
    """
    wavelength_px = number('wavelength', wavelength) * 1e-3 / number('pixel_pitch', pixel_pitch)
    spot = wavelength_px * number('f_number', f_number)  # wavelength * N [px]

    def intensity(y, x):
        arg = np.pi * np.hypot(y, x) / spot
        safe = np.where(arg > 0, arg, 1.0)
        return np.where(arg > 0, (2 * j1(safe) / safe)**2, 1.0)

    return sample_pixels(intensity, kernel_size(size, 3 * AIRY_FIRST_ZERO * spot),
                         positive_int('supersample', supersample))


@KERNEL_REGISTRY.register()
def disk(radius=2.0, size=None, supersample=15):
    """Defocus: a uniform disk, each pixel weighted by the fraction of its area inside (anti-aliased).

    Args:
        radius (float): radius of the circle of confusion [px]. Default: 2.
        size (int | None): odd side [px]. Default: the smallest that holds the disk.
        supersample (int): sub-samples per pixel side for the area fractions; odd keeps a sample on
            the centre, so a disk smaller than a sub-sample still gives the centre pixel. Default: 15.
    """
    radius = number('radius', radius)
    return sample_pixels(lambda y, x: (np.hypot(y, x) <= radius).astype(np.float64),
                         kernel_size(size, radius - 0.5), positive_int('supersample', supersample), 'midpoint')
