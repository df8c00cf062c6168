"""Pictures and summaries of kernels, for ``basicsr kernels list|show``."""
import inspect
import os

import cv2
import numpy as np

from newbp_plugin.pictures import (BACKGROUND, LABEL_HEIGHT, TEXT_COLOUR, VIRIDIS, colour_bar, colourise, enlarge,
                                  label, put_text, side_by_side, stacked, text_width, titled)
from .bayer import phase_names
from .build import RANDOM_TYPE
from .measured import recorded_pattern
from .registry import KERNEL_REGISTRY

TILE_TARGET = 240  # default tile side [screen px]
PLOT_HEIGHT = 96  # height of the profile plot under each tile [screen px]
ROW_COLOUR, COLUMN_COLOUR = (0, 165, 255), (255, 255, 0)  # BGR: orange centre row, cyan centre column
AXIS_COLOUR = (160, 160, 160)
PHASE_POSITIONS = ('TL', 'TR', 'BL', 'BR')  # the 2x2 CFA cell in raster order: top-left, top-right, ...


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


def channel_names(count, pattern=None):
    """Names of ``count`` channels: R, G, B for three (the networks' order); for four, the phases of packed raw,
    named by the CFA ``pattern`` (GRBG: Gr, R, B, Gb) or, without one, by their place in the 2x2 cell
    (``PHASE_POSITIONS``); else c0, c1, ...
    """
    if count == 3:
        return ['R', 'G', 'B']
    if count == 4:
        return list(PHASE_POSITIONS if pattern is None else phase_names(pattern))
    return [f'c{index}' for index in range(count)]


def kernel_pattern(spec):
    """The CFA pattern of a kernel spec: its ``pattern`` option, the pattern its kernel file records (a path, or
    ``type: file``), or the default of its type's (e.g. ``bayer_crosstalk``: RGGB); None when the spec is no mapping
    or its type has no pattern option."""
    spec = {'type': 'file', 'path': os.fspath(spec)} if isinstance(spec, (str, os.PathLike)) else spec
    if not isinstance(spec, dict) or spec.get('type') not in KERNEL_REGISTRY:
        return None
    default = inspect.signature(KERNEL_REGISTRY.get(spec['type'])).parameters.get('pattern')
    pattern = spec.get('pattern', None if default is None else default.default)
    if pattern is None and spec['type'] == 'file' and isinstance(spec.get('path'), (str, os.PathLike)):
        pattern = recorded_pattern(spec['path'])
    return pattern if isinstance(pattern, str) else None


def kernel_planes(kernel, pattern=None):
    """The 2-D planes of a kernel as a grid: rows of ``(title, (kh, kw) plane)``.

    (kh, kw): one plane; (C, kh, kw): one row of C channels; (C, C, kh, kw): a C x C grid,
    row = output channel, column = input channel. Channels are named by :func:`channel_names`.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim == 2:
        return [[('kernel', kernel)]]
    names = channel_names(kernel.shape[0], pattern)
    if kernel.ndim == 3:
        return [[(name, plane) for name, plane in zip(names, kernel)]]
    return [[(f'out {out} <- in {source}', plane) for source, plane in zip(names, row)]
            for out, row in zip(names, kernel)]


def format_kernel(kernel, decimals=4, pattern=None):
    """The kernel's values as text tables, one per plane, rounded, with each plane's sum.

    Columns are x offsets from the centre (right +), rows y offsets (down +). A channel-mixing
    kernel also gets each output channel's sum over its inputs (1 after normalisation). ``pattern``:
    the CFA pattern that names the phases of a packed-raw kernel (:func:`channel_names`).
    """
    lines = []
    width = decimals + 4
    for row in kernel_planes(kernel, pattern):
        for title, plane in row:
            kh, kw = plane.shape
            lines.append(f'{title}: sum {plane.sum():.{decimals}f}')
            lines.append(' ' * 4 + ''.join(f'{dx:+{width}d}' if dx else f'{0:{width}d}'
                                           for dx in range(-(kw // 2), kw // 2 + 1)))
            for dy, values in zip(range(-(kh // 2), kh // 2 + 1), plane):
                lines.append((f'{dy:+4d}' if dy else f'{0:4d}') + ''.join(f'{v:{width}.{decimals}f}' for v in values))
        if len(row) > 1 and row[0][0].startswith('out '):
            lines.append(f'{row[0][0].split(" <- ")[0]}: sum over inputs '
                         f'{sum(plane.sum() for _, plane in row):.{decimals}f}')
    return '\n'.join(lines)


def _offset_ticks(count, scale):
    """[(index, text)] of the pixel offsets to write along an axis of ``count`` pixels, as many as fit."""
    half = count // 2
    step = 1
    while step * scale < text_width(f'-{half}') + 4:
        step += 1
    return [(half + dx, f'{dx:+d}' if dx else '0') for dx in range(-half, half + 1) if dx % step == 0]


def _tile(title, plane, lo, hi, scale):
    """One plane: its title; the colour-mapped plane with its values (when they fit) and pixel offsets
    (y left, x below); its centre-row and centre-column profiles on the [lo, hi] axis."""
    kh, kw = plane.shape
    image = enlarge(colourise(plane, lo, hi), scale)
    decimals = 3 if scale >= text_width('0.000') + 4 else 2
    if scale >= text_width(f'{0:.{decimals}f}') + 4:
        for (row, column), value in np.ndenumerate(plane):
            text = f'{value:.{decimals}f}'
            light_cell = (value - lo) / (hi - lo) > 0.6  # viridis is light (yellow, green) at the top
            put_text(image, text, column * scale + (scale - text_width(text)) // 2, row * scale + scale // 2 + 4,
                     (0, 0, 0) if light_cell else (255, 255, 255))
    axis_width = max(text_width(text) for text in (f'{lo:.3g}', f'{hi:.3g}', f'-{kh // 2}')) + 6
    left = np.full((kh * scale, axis_width, 3), BACKGROUND, np.uint8)
    for row, text in _offset_ticks(kh, scale):
        put_text(left, text, axis_width - text_width(text) - 4, row * scale + scale // 2 + 4, AXIS_COLOUR)
    below = np.full((LABEL_HEIGHT, kw * scale, 3), BACKGROUND, np.uint8)
    for column, text in _offset_ticks(kw, scale):
        put_text(below, text, column * scale + (scale - text_width(text)) // 2, LABEL_HEIGHT - 3, AXIS_COLOUR)
    plot = _plot([(plane[kh // 2], ROW_COLOUR), (plane[:, kw // 2], COLUMN_COLOUR)], lo, hi, kw * scale)
    plot_axis = np.full((PLOT_HEIGHT, axis_width, 3), BACKGROUND, np.uint8)
    put_text(plot_axis, f'{hi:.3g}', 2, 9, AXIS_COLOUR)
    put_text(plot_axis, f'{lo:.3g}', 2, PLOT_HEIGHT - 2, AXIS_COLOUR)
    corner = np.full((LABEL_HEIGHT, axis_width, 3), BACKGROUND, np.uint8)
    body = np.concatenate([np.concatenate([left, image], axis=1), np.concatenate([corner, below], axis=1),
                           np.concatenate([plot_axis, plot], axis=1)])
    return titled(body, f'{title}: sum {plane.sum():.4g}')


def render_kernel(kernel, scale=None, pattern=None):
    """BGR uint8 picture of a kernel, values shown: a grid of planes, each with its title and sum,
    its values written in the cells (when they fit), pixel offsets (x right, y down), and its
    centre-row (orange) and centre-column (cyan) profiles; one colour bar for all.

    Planes (:func:`kernel_planes`) share one colour scale (viridis, [min(0, kernel.min()),
    kernel.max()]), laid out side by side for (C, kh, kw), as a C x C grid (row = output
    channel) for (C, C, kh, kw).

    Args:
        kernel (np.ndarray): (kh, kw), (C, kh, kw) or (C, C, kh, kw).
        scale (int | None): screen px per kernel px (nearest). Default: TILE_TARGET // max(kh, kw), >= 1.
        pattern (str | None): CFA pattern naming the phases of a packed-raw kernel (:func:`channel_names`).

    Returns:
        np.ndarray: (H, W, 3): two legend lines, then the grid, the colour bar on its right.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    kh, kw = kernel.shape[-2:]
    scale = scale or max(1, TILE_TARGET // max(kh, kw))
    lo, hi = min(0.0, kernel.min()), kernel.max()
    hi = hi if hi > lo else lo + 1.0
    grid = stacked([side_by_side([_tile(title, plane, lo, hi, scale) for title, plane in row], gap=8)
                    for row in kernel_planes(kernel, pattern)], gap=8)
    bar = colour_bar(kh * scale, lo, hi, VIRIDIS)
    bar = np.pad(bar, ((LABEL_HEIGHT, 0), (0, 0), (0, 0)), constant_values=BACKGROUND)  # level with the first plane
    picture = side_by_side([grid, bar], gap=8)
    profiles = [('profiles:', TEXT_COLOUR), ('centre row', ROW_COLOUR), ('centre column', COLUMN_COLOUR)]
    width = max(picture.shape[1], sum(text_width(text) + 8 for text, _ in profiles))
    legend = np.full((LABEL_HEIGHT, width, 3), BACKGROUND, np.uint8)
    left = 2
    for text, colour in profiles:
        put_text(legend, text, left, LABEL_HEIGHT - 4, colour)
        left += text_width(text) + 8
    legend = np.concatenate([label(width, f'{kh}x{kw} px; offsets: x right, y down'), legend])
    return np.pad(stacked([legend, picture]), ((4, 4), (4, 4), (0, 0)), constant_values=BACKGROUND)


def render_kernel_png(kernel, path, scale=None, pattern=None):
    """Write :func:`render_kernel`'s picture to ``path`` (PNG); return the picture."""
    image = render_kernel(kernel, scale, pattern)
    if not cv2.imwrite(str(path), image):
        raise OSError(f'could not write the kernel picture to {path}')
    return image
