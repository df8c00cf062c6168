"""Linear motion blur (camera shake or subject motion during the exposure)."""
import numpy as np

from .grid import kernel_size, number
from .registry import KERNEL_REGISTRY


@KERNEL_REGISTRY.register()
def motion(length=5.0, angle=0.0, size=None):
    """Linear motion: a point moving along a straight path, each pixel weighted by the path length inside it.

    Args:
        length (float): path length [px], centred on the kernel centre. Default: 5.
        angle (float): direction [deg], counter-clockwise from the image's +x axis as displayed
            (0: horizontal, 90: vertical, 45: lower left to upper right). Default: 0.
        size (int | None): odd side [px]. Default: the smallest that holds the path.
    """
    length = number('length', length)
    theta = np.deg2rad(float(angle))
    size = kernel_size(size, length / 2 - 0.5)
    centres = np.arange(size) - size // 2
    rows, cols = np.meshgrid(centres, centres, indexing='ij')
    # The path is p(t) = t * length * (dy, dx), t in [-1/2, 1/2]; clip it to each pixel square.
    low, high = np.full((size, size), -0.5), np.full((size, size), 0.5)
    with np.errstate(divide='ignore'):  # a zero step gives +-inf bounds: inside iff the centre is 0
        for centre, step in ((rows, -np.sin(theta) * length), (cols, np.cos(theta) * length)):
            enter, leave = (centre - 0.5) / step, (centre + 0.5) / step
            low = np.maximum(low, np.minimum(enter, leave))
            high = np.minimum(high, np.maximum(enter, leave))
    return np.clip(high - low, 0, None) * length
