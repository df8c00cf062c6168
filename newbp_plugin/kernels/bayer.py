"""Crosstalk between the photodiodes of a Bayer mosaic: CFA patterns, the two views of a mosaic kernel, and
the ``bayer_crosstalk`` kernel type (numpy/torch, no BasicSR).

A raw image's *phases* are the four positions of the 2x2 CFA cell in raster order (top-left,
top-right, bottom-left, bottom-right); ``CFA_PATTERNS`` names the colour of each phase (Gr: the
green on a red row, Gb: the green on a blue row); :func:`newbp_plugin.sensor.mosaic.pack` makes
them the four channels of a half-resolution image, in that order.

Crosstalk on the mosaic has two equivalent views:

- **phase kernels** (4, k, k), k odd, on the full-resolution mosaic: a pixel of phase p receives
  ``out[y, x] = sum_(dy, dx) phase_kernels[p, k//2 + dy, k//2 + dx] * raw[y - dy, x - dx]``, the
  light that travelled by (dy, dx) (x right, y down) from its neighbour. This is the plugin's
  true-convolution convention: four equal phase kernels K are ``ops.crosstalk(raw, K)``.
- **packed kernel** (4, 4, k2, k2): a channel-mixing kernel on the packed planes,
  ``pack(out)_p = sum_q packed[p, q] * pack(raw)_q`` (true convolution, ``ops.crosstalk``).

:func:`phase_kernels_to_packed` and :func:`packed_to_phase_kernels` convert exactly between them;
:func:`newbp_plugin.sensor.mosaic.mosaic_crosstalk` applies them to a mosaic.
"""
import inspect
import os

import numpy as np
import torch

from .grid import number
from .registry import KERNEL_REGISTRY

# pattern -> the colour of each phase, in the raster order of the 2x2 cell
CFA_PATTERNS = {
    'RGGB': ('R', 'Gr', 'Gb', 'B'),
    'BGGR': ('B', 'Gb', 'Gr', 'R'),
    'GRBG': ('Gr', 'R', 'B', 'Gb'),
    'GBRG': ('Gb', 'B', 'R', 'Gr'),
}


def phase_names(pattern):
    """The colour names of the four phases of ``pattern`` (e.g. 'RGGB' -> ('R', 'Gr', 'Gb', 'B'))."""
    if pattern not in CFA_PATTERNS:
        raise ValueError(f"pattern must be one of {', '.join(CFA_PATTERNS)}, got {pattern!r}")
    return CFA_PATTERNS[pattern]


def _packed_radius(radius):
    """Radius of the packed kernel that holds every phase kernel of radius ``radius`` [px]."""
    return (radius + 1) // 2


def _index_map(radius, packed_radius):
    """Where each phase-kernel entry lives in the packed kernel.

    A pixel of phase p = (a, b) at packed (i, j) receives from full-resolution offset (dy, dx) the
    pixel at (2i + a - dy, 2j + b - dx): phase q = ((a - dy) % 2, (b - dx) % 2) at packed offset
    (ey, ex) = ((dy - a + q_row) / 2, (dx - b + q_column) / 2). Entries outside the packed kernel
    are left out.

    Returns:
        tuple: (phase index arrays (p, y, x), packed index arrays (p, q, y, x)), numpy int64.
    """
    phase, dy, dx = np.meshgrid(np.arange(4), np.arange(-radius, radius + 1), np.arange(-radius, radius + 1),
                                indexing='ij')
    a, b = phase // 2, phase % 2
    q_row, q_column = (a - dy) % 2, (b - dx) % 2
    ey, ex = (dy - a + q_row) // 2, (dx - b + q_column) // 2
    fits = (np.abs(ey) <= packed_radius) & (np.abs(ex) <= packed_radius)
    phase_index = (phase[fits], (dy + radius)[fits], (dx + radius)[fits])
    packed_index = (phase[fits], (2 * q_row + q_column)[fits], (ey + packed_radius)[fits],
                    (ex + packed_radius)[fits])
    return phase_index, packed_index


def _zeros_like(kernel, shape):
    if torch.is_tensor(kernel):
        return kernel.new_zeros(shape)
    return np.zeros(shape, dtype=kernel.dtype)


def _require_kept(kernel, kept_index, owner, size):
    """Raise unless every entry of ``kernel`` outside ``kept_index`` is zero (``size`` holds the kernel)."""
    left_out = np.ones(tuple(kernel.shape), dtype=bool)
    left_out[kept_index] = False
    if (kernel[torch.from_numpy(left_out) if torch.is_tensor(kernel) else left_out] != 0).any():
        raise ValueError(f'{owner}: size {size} is too small to hold every non-zero entry of the kernel')


def phase_kernels_to_packed(phase_kernels, size=None):
    """Phase kernels (4, k, k) on the mosaic -> the equivalent packed channel-mixing kernel (4, 4, s, s).

    ``pack(mosaic_crosstalk(raw, phase_kernels)) == ops.crosstalk(pack(raw), packed[None])`` exactly.

    Args:
        phase_kernels (Tensor | ndarray): (4, k, k), k odd; see the module docstring.
        size (int | None): odd side s of the packed kernel. Default: the smallest that holds any
            (4, k, k) kernel, ``2 * ((k // 2 + 1) // 2) + 1`` (3 for k = 3 or 5). A smaller size
            is accepted when the entries it leaves out are zero.

    Returns:
        Tensor | ndarray: (4, 4, s, s), same type, dtype and device; row p = output phase.
    """
    if phase_kernels.ndim != 3 or phase_kernels.shape[0] != 4 or phase_kernels.shape[1] != phase_kernels.shape[2] \
            or phase_kernels.shape[1] % 2 == 0:
        raise ValueError(f'phase_kernels_to_packed: expected (4, k, k) with k odd, got {tuple(phase_kernels.shape)}')
    radius = phase_kernels.shape[-1] // 2
    packed_radius = _packed_radius(radius) if size is None else _odd_radius(size, 'phase_kernels_to_packed')
    phase_index, packed_index = _index_map(radius, packed_radius)
    packed = _zeros_like(phase_kernels, (4, 4, 2 * packed_radius + 1, 2 * packed_radius + 1))
    packed[packed_index] = phase_kernels[phase_index]
    _require_kept(phase_kernels, phase_index, 'phase_kernels_to_packed', size)
    return packed


def packed_to_phase_kernels(packed, size=None):
    """Packed channel-mixing kernel (4, 4, s, s) -> the phase kernels (4, k, k) on the mosaic; see
    :func:`phase_kernels_to_packed`, of which it is the inverse.

    Args:
        packed (Tensor | ndarray): (4, 4, s, s), s odd; row p = output phase.
        size (int | None): odd side k of the phase kernels. Default: ``2 * s + 1``, which holds
            any packed kernel. A smaller size is accepted when the entries it leaves out are zero
            (a (4, 4, 3, 3) kernel made from 3x3 phase kernels goes back with size=3).

    Returns:
        Tensor | ndarray: (4, k, k), same type, dtype and device.
    """
    if packed.ndim != 4 or tuple(packed.shape[:2]) != (4, 4) or packed.shape[2] != packed.shape[3] \
            or packed.shape[-1] % 2 == 0:
        raise ValueError(f'packed_to_phase_kernels: expected (4, 4, s, s) with s odd, got {tuple(packed.shape)}')
    packed_radius = packed.shape[-1] // 2
    radius = 2 * packed_radius + 1 if size is None else _odd_radius(size, 'packed_to_phase_kernels')
    phase_index, packed_index = _index_map(radius, packed_radius)
    phase_kernels = _zeros_like(packed, (4, 2 * radius + 1, 2 * radius + 1))
    phase_kernels[phase_index] = packed[packed_index]
    _require_kept(packed, packed_index, 'packed_to_phase_kernels', size)
    return phase_kernels


def _odd_radius(size, owner):
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1 or size % 2 == 0:
        raise ValueError(f'{owner}: size must be a positive odd integer, got {size!r}')
    return int(size) // 2


NEIGHBOURS = ('left', 'right', 'up', 'down', 'diagonal')  # the options of each colour's leakage
# Illustrative defaults, red leaking most [fraction of the pixel's signal from each neighbour]
DEFAULT_LEAKAGE = {
    'r': {'left': 0.03, 'right': 0.03, 'up': 0.03, 'down': 0.03, 'diagonal': 0.01},
    'g': {'left': 0.02, 'right': 0.02, 'up': 0.02, 'down': 0.02, 'diagonal': 0.005},
    'b': {'left': 0.01, 'right': 0.01, 'up': 0.01, 'down': 0.01, 'diagonal': 0.0025},
}


@KERNEL_REGISTRY.register()
def bayer_crosstalk(r=None, g=None, b=None, gr_gb_imbalance=0.1, pattern='RGGB'):
    """Bayer-mosaic crosstalk, per CFA colour (red leaks most) -> packed (4, 4, 3, 3) phase-mixing kernel.

    Leak-in model: the signal of a pixel of colour X is ``S_X = C_XX I_X + sum_i C_Xi I_i`` over its
    left, right, up, down and 4 diagonal neighbours i, whatever their colour; ``C_XX = 1 - sum_i C_Xi``,
    so each output phase sums to 1. The kernel acts on packed raw (``sensor.mosaic.pack``: the 4
    phases of the 2x2 cell in raster order, named by ``pattern``), ``y_p = sum_q K[p, q] * s_q``;
    ``packed_to_phase_kernels(K, size=3)`` gives the 3x3 kernel of each phase.

    Args:
        r (dict | None): fractions of a red pixel's signal from its neighbours: ``{left, right, up,
            down, diagonal}`` (diagonal: each of the 4); keys left out keep their defaults.
            Default: 0.03 each side, 0.01 each diagonal.
        g (dict | None): the same for green pixels. Default: 0.02, 0.005.
        b (dict | None): the same for blue pixels. Default: 0.01, 0.0025.
        gr_gb_imbalance (float): Gr's fractions are g * (1 + imbalance), Gb's g * (1 - imbalance);
            in [-1, 1]. Default: 0.1.
        pattern (str): CFA pattern, one of RGGB, BGGR, GRBG, GBRG. Default: 'RGGB'.
    """
    imbalance = number('gr_gb_imbalance', gr_gb_imbalance, minimum=-1.0, strict=False)
    if imbalance > 1:
        raise ValueError(f'gr_gb_imbalance must be in [-1, 1], got {imbalance:g}')
    leakage = {colour: _colour_leakage(colour, given) for colour, given in (('r', r), ('g', g), ('b', b))}
    colour_and_scale = {'R': ('r', 1.0), 'Gr': ('g', 1 + imbalance), 'Gb': ('g', 1 - imbalance), 'B': ('b', 1.0)}
    phase_kernels = np.stack([_phase_kernel(leakage[colour_and_scale[name][0]], colour_and_scale[name][1], name)
                              for name in phase_names(pattern)])
    return phase_kernels_to_packed(phase_kernels)


def _colour_leakage(colour, given):
    """The checked ``{left, right, up, down, diagonal}`` fractions of one colour option; errors name it."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise ValueError(f'{colour} must be a dict with keys {", ".join(NEIGHBOURS)}, got {given!r}')
    unknown = sorted(set(given) - set(NEIGHBOURS))
    if unknown:
        raise ValueError(f"{colour} has no option {', '.join(map(repr, unknown))}; valid: {', '.join(NEIGHBOURS)}")
    values = dict(DEFAULT_LEAKAGE[colour], **given)
    return {key: number(f'{colour}.{key}', values[key], strict=False) for key in NEIGHBOURS}


def _phase_kernel(fractions, scale, name):
    """3x3 leak-in kernel of one phase, in the phase-kernel convention of this module: the
    light received from the left neighbour travelled right, so it sits at offset (0, +1)."""
    leakage = scale * (sum(fractions.values()) + 3 * fractions['diagonal'])
    if leakage >= 1:
        raise ValueError(f'the {name} pixels receive {leakage:g} of their signal from neighbours; it must be < 1')
    kernel = np.full((3, 3), scale * fractions['diagonal'])
    kernel[1, 2], kernel[1, 0] = scale * fractions['left'], scale * fractions['right']
    kernel[2, 1], kernel[0, 1] = scale * fractions['up'], scale * fractions['down']
    kernel[1, 1] = 1 - leakage
    return kernel


def rgb_equivalent_kernel(phase_kernels, pattern):
    """The RGB channel-mixing kernel (3, 3, k, k) that mosaic crosstalk amounts to after demosaicing.

    For an output colour c, the mean over the phases p of colour c of what p receives: the entry
    at offset d of p's kernel is light from the neighbour at ``-d`` (the convention of this
    module), whose phase is ``q = p - d`` (mod the 2x2 cell), and it goes to input colour
    ``colour(q)``: ``rgb[c, colour(q), d] += phase_kernels[p, d] / #phases of colour c``. It is
    the kernel of the "demosaic, then deconvolve in RGB" baselines (``y_c = sum_c' rgb[c, c'] * x_c'``,
    :mod:`newbp_plugin.sensor.layout`). Exact after bilinear demosaicing of an image that is linear
    in the pixel position (red and blue everywhere; green where it is interpolated, at the red and
    blue sites; the two greens' phases differ at their own sites); each output colour keeps the sum
    of its phases' kernels (1 for ``bayer_crosstalk``).

    Args:
        phase_kernels (Tensor | ndarray): (4, k, k), k odd; see the module docstring.
        pattern (str): CFA pattern, one of ``CFA_PATTERNS``.

    Returns:
        Tensor | ndarray: (3, 3, k, k), same type, dtype and device; row c = output colour (R, G, B).
    """
    if phase_kernels.ndim != 3 or phase_kernels.shape[0] != 4 or phase_kernels.shape[1] != phase_kernels.shape[2] \
            or phase_kernels.shape[1] % 2 == 0:
        raise ValueError(f'rgb_equivalent_kernel: expected (4, k, k) with k odd, got {tuple(phase_kernels.shape)}')
    colours = ['RGB'.index(name[0]) for name in phase_names(pattern)]
    side = phase_kernels.shape[-1]
    offsets = np.arange(side) - side // 2
    rgb = _zeros_like(phase_kernels, (3, 3, side, side))
    for phase, colour in enumerate(colours):
        row, column = divmod(phase, 2)
        source = 2 * ((row - offsets[:, None]) % 2) + (column - offsets[None, :]) % 2  # (k, k): the phase q of p - d
        for source_colour in range(3):
            mask = np.isin(source, [q for q in range(4) if colours[q] == source_colour])
            if torch.is_tensor(phase_kernels):
                mask = torch.from_numpy(mask).to(phase_kernels.device)
            rgb[colour, source_colour] += phase_kernels[phase] * mask / colours.count(colour)
    return rgb


def on_cfa(spec, cfa):
    """A kernel spec used on mosaics of the CFA pattern ``cfa``: each kernel whose type takes a ``pattern`` option
    (``bayer_crosstalk``; ``file``, which checks it against the pattern a kernel file records) gets ``cfa`` where
    its pattern is unset. A path stands for ``{type: file, path: ...}`` and a list for a random choice, as in
    :func:`newbp_plugin.kernels.build_kernel`.

    Raises:
        ValueError: a kernel's ``pattern`` is set to another pattern than ``cfa``.
    """
    from .build import RANDOM_TYPE, as_spec  # build imports the kernel types, this module among them
    phase_names(cfa)

    def walk(value):
        if isinstance(value, (list, tuple)):
            return [walk(item) for item in value]
        if not isinstance(value, dict):
            return value
        value = {key: walk(item) for key, item in value.items()}
        kernel_type = value.get('type')
        if kernel_type == RANDOM_TYPE and isinstance(value.get('choices'), list):
            value['choices'] = [walk(as_spec(choice)) if isinstance(choice, (str, os.PathLike, list)) else choice
                                for choice in value['choices']]
        takes_pattern = kernel_type in KERNEL_REGISTRY and \
            'pattern' in inspect.signature(KERNEL_REGISTRY.get(kernel_type)).parameters
        if takes_pattern and value.setdefault('pattern', cfa) != cfa:
            raise ValueError(f"a {kernel_type} kernel with pattern {value['pattern']!r} on the cfa {cfa!r}; "
                             'leave its pattern unset (the dataset gives cfa) or set the same')
        return value

    return walk(as_spec(spec))
