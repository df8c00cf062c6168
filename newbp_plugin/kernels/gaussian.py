"""Gaussian blur kernels (lens softness, optical low-pass filter)."""
import numpy as np

from .grid import kernel_size, number, sample_pixels
from .registry import KERNEL_REGISTRY


@KERNEL_REGISTRY.register()
def gaussian(sigma=1.0, sigma_x=None, sigma_y=None, angle=0.0, size=None):
    """Gaussian blur, isotropic or anisotropic and rotated (sampled at pixel centres).

    Args:
        sigma (float): standard deviation [px] of both axes. Default: 1.0.
        sigma_x (float | None): standard deviation [px] along the kernel's own x axis. Default: sigma.
        sigma_y (float | None): standard deviation [px] along the kernel's own y axis. Default: sigma.
        angle (float): angle [deg] of the kernel's x axis, counter-clockwise from the image's x axis
            as displayed (see grid.py). Default: 0.
        size (int | None): odd side [px]. Default: 2 * ceil(3 * the larger sigma) + 1.
    """
    sigma_x = number('sigma_x', sigma if sigma_x is None else sigma_x)
    sigma_y = number('sigma_y', sigma if sigma_y is None else sigma_y)
    theta = np.deg2rad(float(angle))

    def profile(y, x):
        along = x * np.cos(theta) - y * np.sin(theta)  # y grows downwards: up is -y
        across = x * np.sin(theta) + y * np.cos(theta)
        return np.exp(-0.5 * ((along / sigma_x)**2 + (across / sigma_y)**2))

    return sample_pixels(profile, kernel_size(size, 3 * max(sigma_x, sigma_y)))
