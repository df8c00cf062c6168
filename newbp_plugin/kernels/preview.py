"""Pictures and summaries of kernels, for ``basicsr kernels list|show``."""
import inspect

import cv2
import numpy as np

from .build import RANDOM_TYPE
from .registry import KERNEL_REGISTRY

TILE_TARGET = 192  # default tile side [screen px]
PLOT_HEIGHT = 96  # height of the profile plot under each tile [screen px]
MARGIN = 8  # gap around tiles and plots [screen px]
ROW_COLOUR, COLUMN_COLOUR = (0, 165, 255), (255, 255, 0)  # BGR: orange centre row, cyan centre column


def describe_kernels():
    """[(type name, one-line summary)] of every registered kernel type, plus ``random``."""
    rows = [(name, (inspect.getdoc(func) or '').split('\n')[0]) for name, func in sorted(KERNEL_REGISTRY)]
    rows.append((RANDOM_TYPE, 'one of `choices` (optional `weights`) drawn per sample; any option value may '
                 'also be {uniform: [low, high]}, {randint: [low, high]} or {choice: [...]}'))
    return rows


def _plot(profiles, lo, hi, width):
    """(PLOT_HEIGHT, width, 3) plot of 1-D profiles [(values, BGR colour)] on a common [lo, hi] axis."""
    plot = np.zeros((PLOT_HEIGHT, width, 3), np.uint8)

    def to_y(values):
        return np.round((PLOT_HEIGHT - 1) * (hi - values) / (hi - lo)).astype(np.int32)

    cv2.line(plot, (0, int(to_y(0.0))), (width - 1, int(to_y(0.0))), (96, 96, 96), 1)
    for values, colour in profiles:
        xs = np.round((np.arange(len(values)) + 0.5) * width / len(values) - 0.5).astype(np.int32)
        cv2.polylines(plot, [np.stack([xs, to_y(values)], axis=1)], False, colour, 1, cv2.LINE_AA)
    return plot


def render_kernel(kernel, scale=None):
    """BGR uint8 picture of a kernel: colour-mapped tiles, each above its centre-row (orange) and
    centre-column (cyan) profiles.

    Tiles share one colour scale (viridis, [min(0, kernel.min()), kernel.max()]) and are laid out
    side by side for (C, kh, kw), as a C x C grid (row = output channel) for (C, C, kh, kw).

    Args:
        kernel (np.ndarray): (kh, kw), (C, kh, kw) or (C, C, kh, kw).
        scale (int | None): screen px per kernel px (nearest). Default: TILE_TARGET // max(kh, kw), >= 1.

    Returns:
        np.ndarray: (R * (kh * scale + PLOT_HEIGHT + 2 * MARGIN) + MARGIN,
        Q * (kw * scale + MARGIN) + MARGIN, 3) for R x Q tiles.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    grid = kernel.reshape((-1,) + kernel.shape[-2:])[None] if kernel.ndim < 4 else kernel
    kh, kw = kernel.shape[-2:]
    scale = scale or max(1, TILE_TARGET // max(kh, kw))
    lo, hi = min(0.0, kernel.min()), kernel.max()
    hi = hi if hi > lo else lo + 1.0
    cell_h, cell_w = kh * scale + PLOT_HEIGHT + 2 * MARGIN, kw * scale + MARGIN
    canvas = np.full((grid.shape[0] * cell_h + MARGIN, grid.shape[1] * cell_w + MARGIN, 3), 32, np.uint8)
    for r, row in enumerate(grid):
        for q, tile in enumerate(row):
            top, left = r * cell_h + MARGIN, q * cell_w + MARGIN
            levels = np.round(255 * (tile - lo) / (hi - lo)).astype(np.uint8)
            image = cv2.applyColorMap(np.kron(levels, np.ones((scale, scale), np.uint8)), cv2.COLORMAP_VIRIDIS)
            canvas[top:top + kh * scale, left:left + kw * scale] = image
            profiles = [(tile[kh // 2], ROW_COLOUR), (tile[:, kw // 2], COLUMN_COLOUR)]
            plot_top = top + kh * scale + MARGIN
            canvas[plot_top:plot_top + PLOT_HEIGHT, left:left + kw * scale] = _plot(profiles, lo, hi, kw * scale)
    return canvas


def render_kernel_png(kernel, path, scale=None):
    """Write :func:`render_kernel`'s picture to ``path`` (PNG); return the picture."""
    image = render_kernel(kernel, scale)
    if not cv2.imwrite(str(path), image):
        raise OSError(f'could not write the kernel picture to {path}')
    return image
