"""Independent reference computations for the tests: the sensor kernel applied with scipy."""
import numpy as np
from scipy.ndimage import convolve

SCIPY_MODES = {'zeros': 'constant', 'reflect': 'mirror', 'replicate': 'nearest', 'circular': 'wrap'}


def scipy_crosstalk(images, kernel, padding_mode='reflect'):
    """``K * images`` by scipy.ndimage, plane by plane, for every layout of ``newbp_plugin.sensor.layout``.

    Args:
        images (ndarray): (B, C, H, W).
        kernel (ndarray): (kh, kw), (C, kh, kw), (1|B, C, kh, kw) or channel-mixing (1|B, C, C, kh, kw).
        padding_mode (str): the plugin's name of the border.

    Returns:
        ndarray: (B, C, H, W) float64.
    """
    images, kernel = np.asarray(images, np.float64), np.asarray(kernel, np.float64)
    batch, channels = images.shape[:2]
    if kernel.ndim < 5:  # depthwise: spell out a diagonal mixing kernel
        depthwise = np.broadcast_to(kernel, (batch, channels) + kernel.shape[-2:])
        kernel = np.zeros((batch, channels, channels) + kernel.shape[-2:])
        kernel[:, np.arange(channels), np.arange(channels)] = depthwise
    kernel = np.broadcast_to(kernel, (batch, ) + kernel.shape[1:])
    mode = SCIPY_MODES[padding_mode]
    return np.stack([[
        sum(convolve(image[j], kernel[b, i, j], mode=mode) for j in range(channels)) for i in range(channels)
    ] for b, image in enumerate(images)])
