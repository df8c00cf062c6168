"""The sensor kernel K fitted from image pairs: a clean reference and a capture of the same scene (no BasicSR).

Model, per output channel c, in the light K acts on (linear light for sRGB-encoded files)::

    captured_c = a_c · (K * shift(reference))_c + b_c + noise

with K per channel (C, k, k) or channel-mixing (C, C, k, k) (``y_c = Σ_c' K[c, c'] * s_c'``, the
layouts of :mod:`newbp_plugin.sensor.layout`), a_c the exposure (gain) and b_c the black level
(offset), shared by every pair.

1. Registration (``register``): the displacement of each capture from its reference is the peak of
   their phase correlation (``cv2.phaseCorrelate`` on the mean of the channels, Hanning window;
   integer peak plus its sub-pixel centroid). The reference is moved by it, a Fourier shift on the
   reference continued by reflection (so that its periodic extension has no jump at the border).
   A shift and a kernel's own off-centre leak (left ≠ right) are the same thing to the data: the
   registration takes the capture's whole displacement, so an asymmetric K comes out re-centred by
   the part of its asymmetry that phase correlation sees; fit pixel-aligned pairs with
   ``register=False`` to keep it.
2. Least squares in the spatial domain: for output channel c the unknowns are the unnormalised
   kernel ``w = a_c · K[c]`` (k·k values, or C·k·k for a mixing kernel) and b_c; each interior
   pixel is one equation (a border of ``k // 2 + ceil(|shift|) + 1`` pixels is left out, where the
   kernel would read beyond the reference; so is every pixel whose k×k window holds a clipped
   capture value, 0 or 1: there clipping cut the noise to one side, which would bias the fit). The normal equations of all pairs are summed, b_c is
   eliminated (centred columns), and ``w >= 0`` is imposed exactly by the Lawson–Hanson active-set
   method (:func:`nonnegative_least_squares`). Then ``a_c = Σ w``, ``K[c] = w / a_c`` (sum 1) and
   ``b_c = mean(captured_c - K-part)``.

The residual is measured with the plugin's one forward operator (:class:`SensorOptics`).

Raw (:func:`fit_raw_kernel`): on a Bayer sensor the crosstalk happens on the mosaic. Reference and
capture are mosaics (a reference may be an RGB image, mosaicked on the CFA pattern), both packed into
their 4 phase planes (:func:`newbp_plugin.sensor.mosaic.pack`), and the same least squares fits the
packed channel-mixing kernel (4, 4, k, k) in the file's (linear) values, each output phase summing to 1.
Registration moves the reference by whole packed pixels only (2x2 CFA cells): a shift by part of a
cell would move colours onto other phases. :func:`read_raw` reads its files: a DNG normalised by its own
black and white levels (and its CFA pattern), other mosaics by levels given, ``(code - black) / (white - black)``,
so that 0 and 1 are no light and saturation, which the fit leaves out as clipped.

Files (``basicsr calibrate``): :func:`calibrate_files` reads the pairs, fits (raw with a CFA pattern or DNG
files, :func:`raw_source`) and writes the kernel file.
"""
import json
import math
import os
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from newbp_plugin.kernels import render_kernel_png
from newbp_plugin.kernels.measured import save_kernel
from newbp_plugin.kernels.preview import channel_names, format_kernel
from newbp_plugin.sensor.clipping import unclipped_windows
from newbp_plugin.sensor.dng import DNG_SUFFIX, read_dng
from newbp_plugin.sensor.layout import physical_kernel
from newbp_plugin.sensor.mosaic import mosaic, pack
from newbp_plugin.sensor.optics import SensorOptics
from newbp_plugin.sensor.unprocess import from_raw_codes

REGISTRATION_PAD = 16  # reflected pixels around the reference before its Fourier shift
REGISTRATION_BAND = 0.25  # frequencies [cycles/px] whose phase gives the sub-pixel shift
REGISTRATION_TAPER = 0.125  # share of each side of the sub-pixel registration's window that tapers to 0
REGISTRATION_ITERATIONS = 4  # sub-pixel refinements
MIN_EQUATIONS_PER_UNKNOWN = 10  # unclipped pixels needed per unknown of the least squares
NEIGHBOURS = {'left': (0, -1), 'right': (0, 1), 'up': (-1, 0), 'down': (1, 0)}  # (dy, dx) from the centre


@dataclass
class Calibration:
    """A fitted sensor kernel and what came with it.

    Attributes:
        kernel (np.ndarray): float32 (C, k, k), or (C, C, k, k) channel-mixing; each output channel sums to 1.
        gain (np.ndarray): (C,) a_c, exposure of the capture relative to the reference.
        offset (np.ndarray): (C,) b_c, black level of the capture, in the working light.
        shifts (list[tuple[float, float]]): (dy, dx) [px] of each capture's content from its reference.
        residual_rms (np.ndarray): (C,) RMS of ``captured - (a · K * reference + b)`` over the interiors,
            in the working light.
        linear_light (bool): the fit was made in linear light.
        pattern (str | None): the CFA pattern of a packed-raw fit (:func:`fit_raw_kernel`), which names its
            channels (the phases); shifts are then in packed pixels (2x2 cells).
    """
    kernel: np.ndarray
    gain: np.ndarray
    offset: np.ndarray
    shifts: list
    residual_rms: np.ndarray
    linear_light: bool
    pattern: str = None

    @property
    def residual_db(self):
        """(C,) the residual RMS as ``-20 log10(rms)`` [dB] (full scale 1)."""
        return -20 * np.log10(np.maximum(self.residual_rms, 1e-12))


def read_image(path):
    """An image file as (C, H, W) float64, RGB order: 8- or 16-bit integers scaled to [0, 1], float pixels
    (a TIFF, or a ``.npy`` of (H, W) or (H, W, 3) RGB) as stored; grey, or a raw mosaic, is C = 1; alpha dropped.

    Raises:
        ValueError: the file is missing, undecodable or of another pixel type; the message names it.
    """
    image = _load(path)
    if image.dtype in (np.uint8, np.uint16):
        image = image.astype(np.float64) / np.iinfo(image.dtype).max
    elif image.dtype in (np.float32, np.float64):
        image = image.astype(np.float64)
    else:
        raise ValueError(f'{path}: {image.dtype} pixels; expected 8- or 16-bit integers or floats')
    if image.ndim == 2:
        return image[None]
    return np.ascontiguousarray(image[..., :3][..., ::-1].transpose(2, 0, 1))


def _load(path):
    """The pixels of an image file as stored, as OpenCV holds them (BGR); see :func:`read_image`."""
    if not os.path.isfile(path):
        raise ValueError(f'{path}: no such file')
    if str(path).lower().endswith('.npy'):
        image = np.load(path)
        if image.ndim not in (2, 3):
            raise ValueError(f'{path}: an array of shape {image.shape}; expected (H, W) or (H, W, 3)')
        image = image[..., ::-1] if image.ndim == 3 else image  # as OpenCV holds images: BGR
    else:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f'{path}: cannot read it as an image (PNG, TIFF, JPEG, .npy)')
    return image


def read_raw(path, black_level=None, white_level=None):
    """A raw file of :func:`fit_raw_kernel` as ``((C, H, W) float64, CFA pattern or None)``.

    A DNG (:func:`newbp_plugin.sensor.dng.read_dng`) is its mosaic normalised by its own levels,
    ``(code - black) / (white - black)``, and its CFA pattern. Another file with ``black_level`` and ``white_level``
    given: its integer codes (a single-channel 8- or 16-bit PNG, TIFF or ``.npy``) normalised by them; without
    levels: :func:`read_image` (integers scaled to [0, 1], floats as stored), pattern None.

    Raises:
        ValueError: the file does not fit the levels (floats, codes above the white level, levels beyond its
            integers), or a DNG records other levels than the ones given; the message names the file.
    """
    if str(path).lower().endswith(DNG_SUFFIX):
        mosaic = read_dng(path)
        for option, given, recorded in (('--black-level', black_level, mosaic.black_level),
                                        ('--white-level', white_level, mosaic.white_level)):
            if given is not None and given != recorded:
                raise ValueError(f'{path}: {option} {given}, but the DNG records {recorded}; a DNG brings its own '
                                 'levels')
        return from_raw_codes(mosaic.codes[None].astype(np.float64), mosaic.black_level, mosaic.white_level), \
            mosaic.cfa
    if black_level is None and white_level is None:
        return read_image(path), None
    codes = _load(path)
    if codes.dtype not in (np.uint8, np.uint16) or codes.ndim != 2:
        raise ValueError(f'{path}: {codes.dtype} pixels of shape {codes.shape}; --black-level and --white-level '
                         'normalise the integer codes of a single-channel mosaic (8 or 16 bits)')
    if white_level > np.iinfo(codes.dtype).max:
        raise ValueError(f'{path}: --white-level {white_level} above its {codes.dtype} codes '
                         f'(at most {np.iinfo(codes.dtype).max})')
    if codes.max() > white_level:
        raise ValueError(f'{path}: codes up to {codes.max()}, above --white-level {white_level}')
    return from_raw_codes(codes[None].astype(np.float64), black_level, white_level), None


def nonnegative_least_squares(gram, rhs, max_iterations=None):
    """``argmin_{w >= 0} ½ wᵀ G w - rhsᵀ w`` (least squares from its normal equations), Lawson–Hanson active set.

    Args:
        gram (np.ndarray): (n, n) symmetric positive semi-definite G = AᵀA.
        rhs (np.ndarray): (n,) Aᵀy.
        max_iterations (int | None): variables freed at most. Default: 3n.

    Returns:
        np.ndarray: (n,) w, exactly 0 where the constraint holds.
    """
    size = len(rhs)
    tolerance = 1e-12 * max(np.abs(rhs).max(), np.abs(gram).max(), 1e-300)
    free = np.zeros(size, bool)
    solution = np.zeros(size)
    for _ in range(max_iterations or 3 * size):
        gradient = rhs - gram @ solution
        gradient[free] = -np.inf
        if gradient.max() <= tolerance:
            break
        free[gradient.argmax()] = True
        while True:
            trial = np.zeros(size)
            trial[free] = np.linalg.lstsq(gram[np.ix_(free, free)], rhs[free], rcond=None)[0]
            if (trial[free] > 0).all():
                solution = trial
                break
            blocking = free & (trial <= 0)
            step = np.min(solution[blocking] / (solution[blocking] - trial[blocking]))
            solution = solution + step * (trial - solution)
            free &= solution > tolerance
            solution[~free] = 0
    return solution


def _phase_slope(reference, captured, window):
    """The sub-pixel displacement (dy, dx) of ``captured`` from ``reference`` (2-D planes): the weighted
    least-squares slope of the phase of their cross-power spectrum up to ``REGISTRATION_BAND``."""
    reference_spectrum, captured_spectrum = (np.fft.rfft2((plane - plane.mean()) * window)
                                             for plane in (reference, captured))
    frequency_y = np.fft.fftfreq(reference.shape[0])[:, None]
    frequency_x = np.fft.rfftfreq(reference.shape[1])[None]
    cross = captured_spectrum * reference_spectrum.conj()
    band = np.hypot(frequency_y, frequency_x) <= REGISTRATION_BAND
    band[0, 0] = False
    frequencies = np.stack(np.broadcast_arrays(frequency_y, frequency_x), -1)[band]  # (n, 2)
    weights = np.abs(cross[band])
    phase = np.angle(cross[band])
    return np.linalg.lstsq(frequencies * weights[:, None], -phase * weights / (2 * np.pi), rcond=None)[0]


def _tukey_window(shape, taper=REGISTRATION_TAPER):
    """(H, W) window, 1 inside and a raised cosine over ``taper`` of each side."""
    def profile(length):
        ramp = max(int(taper * length), 1)
        edge = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
        return np.concatenate([edge, np.ones(length - 2 * ramp), edge[::-1]])
    return np.outer(profile(shape[0]), profile(shape[1]))


def register_shift(reference, captured, iterations=REGISTRATION_ITERATIONS):
    """The displacement (dy, dx) [px] of the content of ``captured`` from ``reference`` (phase correlation).

    The integer part is the peak of ``cv2.phaseCorrelate`` (mean of the channels, Hanning window). The
    sub-pixel part is refined ``iterations`` times: the reference moved by the shift so far
    (:func:`shift_image`), the weighted slope of the phase of the cross-power spectrum that remains
    (frequencies up to ``REGISTRATION_BAND``, a window flat but for its edges) is added to it. A pure
    translation has a linear phase; a symmetric kernel a real spectrum, so it does not move the estimate.

    Args:
        reference, captured (Tensor): (C, H, W) float64, in the same light.

    Returns:
        tuple[float, float]: ``captured(p) ≈ (K * reference)(p - shift)``.
    """
    reference_plane, captured_plane = reference.mean(0), captured.mean(0).numpy()
    hanning = cv2.createHanningWindow(captured_plane.shape[::-1], cv2.CV_64F)
    # copies: cv2.phaseCorrelate (4.x, 5.0) multiplies its inputs by the window in place
    (dx, dy), _ = cv2.phaseCorrelate(reference_plane.numpy().copy(), captured_plane.copy(), hanning)
    shift = np.round([dy, dx])
    window = _tukey_window(captured_plane.shape)
    for _ in range(iterations):
        moved = shift_image(reference_plane[None], tuple(shift))[0].numpy()
        shift = shift + _phase_slope(moved, captured_plane, window)
    return float(shift[0]), float(shift[1])


def shift_image(image, shift):
    """``image`` moved by ``shift = (dy, dx)`` [px], a Fourier shift of the image continued by reflection.

    Args:
        image (Tensor): (C, H, W) float64.
        shift (tuple[float, float]): (dy, dx); the content at p moves to p + shift.

    Returns:
        Tensor: (C, H, W).
    """
    pad = REGISTRATION_PAD + math.ceil(max(abs(shift[0]), abs(shift[1])))
    padded = F.pad(image[None], (pad, pad, pad, pad), mode='reflect')[0]
    height, width = padded.shape[-2:]
    frequency_y = torch.fft.fftfreq(height, dtype=image.dtype)[:, None]
    frequency_x = torch.fft.rfftfreq(width, dtype=image.dtype)[None]
    phase = torch.exp(-2j * math.pi * (frequency_y * shift[0] + frequency_x * shift[1]))
    moved = torch.fft.irfft2(torch.fft.rfft2(padded) * phase, s=(height, width))
    return moved[:, pad:height - pad, pad:width - pad]


def _check_pairs(references, captures, size, names):
    """Raise ValueError naming the input unless the pairs can be fitted with a kernel of side ``size``."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ValueError(f'size must be an odd integer >= 1 (the kernel has a centre pixel), got {size!r}')
    if not references or len(references) != len(captures):
        raise ValueError(f'give as many captures as references (one per scene), got {len(references)} reference(s) '
                         f'and {len(captures)} capture(s)')
    channels = references[0].shape[0]
    for (reference, captured), (reference_name, captured_name) in zip(zip(references, captures), names):
        for image, name in ((reference, reference_name), (captured, captured_name)):
            if image.ndim != 3:
                raise ValueError(f'{name}: expected a (C, H, W) image, got shape {tuple(image.shape)}')
            if image.shape[0] != channels:
                raise ValueError(f'{name} has {image.shape[0]} channel(s), {names[0][0]} has {channels}; every '
                                 'image must have the same channels')
        if reference.shape != captured.shape:
            raise ValueError(f'{captured_name} is {captured.shape[2]}x{captured.shape[1]} px, its reference '
                             f'{reference_name} {reference.shape[2]}x{reference.shape[1]}; a pair must have one size')
        if min(reference.shape[1:]) < 4 * size:
            raise ValueError(f'{reference_name} is {reference.shape[2]}x{reference.shape[1]} px; fitting a '
                             f'{size}x{size} kernel needs at least {4 * size} px on each side')


def _patches(reference, size, border):
    """(C·k·k, N) columns of the least squares: ``reference`` at the offsets the kernel reads, interior pixels.

    Row ``(c', i, j)`` holds the pixel ``(dy, dx) = (k // 2 - i, k // 2 - j)`` away (a true convolution:
    ``y(p) = Σ_d K[d] s(p - d)``, so that it multiplies ``K[c', i, j]``).
    """
    inner = reference[:, border - size // 2:reference.shape[1] - border + size // 2,
                      border - size // 2:reference.shape[2] - border + size // 2]
    columns = F.unfold(inner[None], size)[0]  # (C·k·k, N), row (c', i, j) reads offset (i - k//2, j - k//2)
    return columns.view(reference.shape[0], size, size, -1).flip(1, 2).reshape(-1, columns.shape[-1])


def _unclipped(captured, size, border):
    """(N,) bool, in the order of :func:`_patches`: interior pixels whose k×k window holds no clipped
    capture value (0 or 1) in any channel."""
    inner = captured[:, border - size // 2:captured.shape[1] - border + size // 2,
                     border - size // 2:captured.shape[2] - border + size // 2]
    return unclipped_windows(inner, size).all(0).flatten().numpy()


def fit_kernel(references, captures, size=5, mixing=False, linear_light=True, register=True, names=None,
               subpixel=True):
    """Fit K (and the capture's gain and offset) from pairs of images, see the module docstring.

    Args:
        references (list): clean images, (C, H, W) arrays or tensors in [0, 1] (sRGB-encoded when ``linear_light``).
        captures (list): the same scenes as the sensor saw them, one per reference, same shape.
        size (int): odd side k of the kernel [px]. Default: 5.
        mixing (bool): fit a channel-mixing (C, C, k, k) kernel rather than (C, k, k). Default: False.
        linear_light (bool): the images are sRGB-encoded and K acts on linear light. Default: True.
        register (bool): align each capture to its reference first. Default: True.
        names (list[tuple[str, str]] | None): (reference, capture) names for error messages. Default:
            ``reference[i]``, ``captured[i]``.
        subpixel (bool): register to a fraction of a pixel; False: whole pixels (the phase correlation's
            peak; the reference is moved exactly). Default: True.

    Returns:
        Calibration: the kernel, gains, offsets, shifts and residual.
    """
    names = names or [(f'reference[{i}]', f'captured[{i}]') for i in range(len(references))]
    references = [torch.as_tensor(np.asarray(image), dtype=torch.float64) for image in references]
    captures = [torch.as_tensor(np.asarray(image), dtype=torch.float64) for image in captures]
    _check_pairs(references, captures, size, names)
    optics = SensorOptics(linear_light)
    references = [optics.to_linear(image) for image in references]
    captures = [optics.to_linear(image) for image in captures]
    channels = references[0].shape[0]

    shifts, aligned, borders = [], [], []
    for reference, captured in zip(references, captures):
        shift = register_shift(reference, captured, REGISTRATION_ITERATIONS if subpixel else 0) if register \
            else (0.0, 0.0)
        shifts.append(shift)
        aligned.append(shift_image(reference, shift) if register else reference)
        borders.append(size // 2 + math.ceil(max(abs(shift[0]), abs(shift[1]))) + 1)

    unknowns = channels * size * size
    gram, column_sums = np.zeros((unknowns, unknowns)), np.zeros(unknowns)
    cross = np.zeros((channels, unknowns))
    target_sums = np.zeros(channels)
    count = 0
    for reference, captured, border, (_, name) in zip(aligned, captures, borders, names):
        kept = _unclipped(captured, size, border)
        if kept.sum() < MIN_EQUATIONS_PER_UNKNOWN * channels * size * size:
            raise ValueError(f'{name}: {kept.size - kept.sum()} of its {kept.size} pixels lie next to clipped values '
                             '(0 or 1); too few are left to fit the kernel: use a capture exposed within range')
        columns = _patches(reference, size, border).numpy()[:, kept]
        targets = captured[:, border:captured.shape[1] - border, border:captured.shape[2] - border].reshape(
            channels, -1).numpy()[:, kept]
        gram += columns @ columns.T
        column_sums += columns.sum(1)
        cross += targets @ columns.T
        target_sums += targets.sum(1)
        count += targets.shape[1]

    kernel = np.zeros((channels, channels, size, size))
    gain, offset = np.zeros(channels), np.zeros(channels)
    for channel in range(channels):
        used = np.arange(unknowns) if mixing else np.arange(channel * size * size, (channel + 1) * size * size)
        means = column_sums[used] / count
        centred_gram = gram[np.ix_(used, used)] - count * np.outer(means, means)
        centred_cross = cross[channel, used] - means * target_sums[channel]
        weights = nonnegative_least_squares(centred_gram, centred_cross)
        if weights.sum() <= 0:
            raise ValueError(f'channel {channel}: the captures do not follow their references (the best '
                             'non-negative kernel is 0); check that each pair shows the same scene')
        gain[channel] = weights.sum()
        offset[channel] = target_sums[channel] / count - means @ weights
        kernel[channel].reshape(-1)[used] = weights / gain[channel]
    if not mixing:
        kernel = kernel[np.arange(channels), np.arange(channels)]

    squared, pixels = np.zeros(channels), 0
    for reference, captured, border in zip(aligned, captures, borders):
        predicted = optics.blur(reference[None], physical_kernel(kernel, channels, 'fit_kernel').double())[0]
        predicted = predicted * torch.as_tensor(gain)[:, None, None] + torch.as_tensor(offset)[:, None, None]
        residual = (captured - predicted)[:, border:captured.shape[1] - border, border:captured.shape[2] - border]
        squared += residual.square().sum((1, 2)).numpy()
        pixels += residual[0].numel()
    return Calibration(kernel.astype(np.float32), gain, offset, shifts, np.sqrt(squared / pixels), linear_light)


def fit_raw_kernel(references, captures, pattern, size=3, register=True, names=None):
    """Fit the packed channel-mixing kernel (4, 4, k, k) of a Bayer sensor from pairs of raw mosaics.

    Both images of a pair are packed into their 4 phase planes and fitted by :func:`fit_kernel` (mixing,
    in the values as stored: raw is linear); see the module docstring.

    Args:
        references (list): clean scenes, each a (1, H, W) mosaic or a (3, H, W) RGB image (mosaicked on
            ``pattern``), linear light, H and W even.
        captures (list): the sensor's (1, H, W) mosaics, one per reference, same size.
        pattern (str): the CFA pattern, one of RGGB, BGGR, GRBG, GBRG.
        size (int): odd side k of the packed kernel [packed px = 2x2 cells]. Default: 3.
        register (bool): align each capture to its reference first, by whole packed pixels. Default: True.
        names (list[tuple[str, str]] | None): (reference, capture) names for error messages.

    Returns:
        Calibration: ``pattern`` set; shifts in packed pixels; the kernel loads as a ``kernel:`` of ``domain: raw``.
    """
    names = names or [(f'reference[{i}]', f'captured[{i}]') for i in range(len(references))]
    packed = {'references': [], 'captures': []}
    for reference, captured, (reference_name, captured_name) in zip(references, captures, names):
        reference = torch.as_tensor(np.asarray(reference), dtype=torch.float64)
        captured = torch.as_tensor(np.asarray(captured), dtype=torch.float64)
        if captured.ndim != 3 or captured.shape[0] != 1:
            raise ValueError(f'{captured_name}: a raw capture is a single-channel mosaic, got shape '
                             f'{tuple(captured.shape)}')
        if reference.ndim != 3 or reference.shape[0] not in (1, 3):
            raise ValueError(f'{reference_name}: expected a single-channel mosaic or an RGB image, got shape '
                             f'{tuple(reference.shape)}')
        if reference.shape[1:] != captured.shape[1:]:
            raise ValueError(f'{captured_name} is {captured.shape[2]}x{captured.shape[1]} px, its reference '
                             f'{reference_name} {reference.shape[2]}x{reference.shape[1]}; a pair must have one size')
        if captured.shape[1] % 2 or captured.shape[2] % 2:
            raise ValueError(f'{captured_name} is {captured.shape[2]}x{captured.shape[1]} px; a mosaic holds whole '
                             '2x2 CFA cells (even sides)')
        if reference.shape[0] == 3:
            reference = mosaic(reference[None], pattern)[0]
        packed['references'].append(pack(reference[None])[0])
        packed['captures'].append(pack(captured[None])[0])
    calibration = fit_kernel(packed['references'], packed['captures'], size, mixing=True, linear_light=False,
                             register=register, names=names, subpixel=False)
    calibration.pattern = pattern
    return calibration


def _first_dng(paths):
    """The first DNG file of ``paths``, or None."""
    return next((path for path in paths if str(path).lower().endswith(DNG_SUFFIX)), None)


def raw_source(paths, cfa=None):
    """What makes a calibration of ``paths`` raw, for messages: ``'--cfa P'``, ``'X.dng (a DNG)'`` (the first
    DNG of ``paths``), or None (an RGB fit)."""
    dng = _first_dng(paths)
    return f'--cfa {cfa}' if cfa else (f'{dng} (a DNG)' if dng else None)


def calibrate_files(references, captures, output, size=5, mixing=False, linear_light=True, register=True, cfa=None,
                    black_level=None, white_level=None):
    """Fit K from pairs of image files and write it to ``output`` (``basicsr calibrate``).

    Raw (:func:`raw_source`: ``cfa`` given or DNG files): every file read by :func:`read_raw`, the captures with
    ``black_level`` and ``white_level``, and fitted by :func:`fit_raw_kernel` on ``cfa``, else the DNGs' pattern;
    ``mixing`` and ``linear_light`` do not apply. Otherwise :func:`read_image` and :func:`fit_kernel`. The kernel is
    written by :func:`~newbp_plugin.kernels.measured.save_kernel` (a raw one with its CFA pattern, ``.npz``).

    Args:
        references, captures (list[str]): the files of the pairs, in order.
        output (str): the kernel file, ``.npy`` (``.npz`` raw); its folder is created.
        size, mixing, linear_light, register: see :func:`fit_kernel` (raw: :func:`fit_raw_kernel`).
        cfa (str | None): raw: the mosaics' CFA pattern; None: the DNGs' (an RGB fit without DNG files).
        black_level, white_level (int | None): raw: the codes of no light and saturation of the captures.

    Returns:
        tuple[Calibration, list[tuple[str, str]]]: the fit, and the (reference, capture) names of its pairs.

    Raises:
        ValueError: a file that cannot be read or fitted, or mosaics of more than one CFA pattern; the message
            names the file.
    """
    names = list(zip(references, captures))
    if raw_source(references + captures, cfa):
        read = [read_raw(path) for path in references], \
            [read_raw(path, black_level, white_level) for path in captures]
        images = tuple([image for image, _ in pairs] for pairs in read)
        patterns = {path: found for path, (_, found) in zip(references + captures, read[0] + read[1]) if found}
        pattern = cfa or next(iter(patterns.values()))
        for path, found in patterns.items():
            if found != pattern:
                where = f'--cfa {cfa}' if cfa else f'{_first_dng(references + captures)} is {pattern}'
                raise ValueError(f'{path}: a {found} mosaic (its DNG CFA pattern); {where}: every mosaic of a fit '
                                 'has one CFA pattern')
        calibration = fit_raw_kernel(*images, pattern, size, register, names)
    else:
        images = [read_image(path) for path in references], [read_image(path) for path in captures]
        calibration = fit_kernel(*images, size, mixing, linear_light, register, names)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    save_kernel(output, calibration.kernel, calibration.pattern)
    return calibration, names


def kernel_summary(kernel):
    """Per output channel: the weight it keeps and what it leaks, from a (C, k, k) or (C, C, k, k) kernel.

    Returns:
        list[dict]: per output channel ``centre`` (K at the centre, own channel), ``left``, ``right``,
        ``up``, ``down`` (K one pixel away, own channel: the share of a pixel's light that lands there),
        ``diagonal`` (mean of the 4), ``farther`` (the rest of the own channel beyond the 3×3) and, for
        a mixing kernel, ``other_channels`` (the sum of K[c, c'] over c' ≠ c).
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    half = kernel.shape[-1] // 2
    rows = []
    for channel in range(kernel.shape[0]):
        own = kernel[channel, channel] if kernel.ndim == 4 else kernel[channel]
        row = {'centre': own[half, half]}
        row.update({name: own[half + dy, half + dx] if half else 0.0 for name, (dy, dx) in NEIGHBOURS.items()})
        ring = own[max(half - 1, 0):half + 2, max(half - 1, 0):half + 2]
        row['diagonal'] = (ring[::2, ::2].sum() / 4) if half else 0.0
        row['farther'] = own.sum() - ring.sum()
        if kernel.ndim == 4:
            row['other_channels'] = kernel[channel].sum() - own.sum()
        rows.append({key: float(value) for key, value in row.items()})
    return rows


def describe_calibration(calibration, names):
    """The fit in markdown, for people: per channel its residual, gain, offset and leaks; each pair's shift.

    Args:
        calibration (Calibration): the fit.
        names (list[tuple[str, str]]): (reference, capture) of each pair.

    Returns:
        str: markdown text.
    """
    kernel = calibration.kernel
    mixing = kernel.ndim == 4
    light = 'linear light' if calibration.linear_light else 'the file values'
    pixels = 'px' if calibration.pattern is None else f'packed px (2x2 cells of the {calibration.pattern} mosaic)'
    layout = 'channel-mixing (C, C, k, k)' if mixing else 'per channel (C, k, k)'
    if calibration.pattern is not None:
        layout = f"packed raw (4, 4, k, k), phases {', '.join(channel_names(4, calibration.pattern))}"
    lines = [f"Kernel {'x'.join(map(str, kernel.shape[-2:]))} {pixels}, {layout}, fitted in {light}.", '',
             '| channel | residual RMS | residual [dB] | gain a | offset b | centre | left | right | up | down '
             f"| diagonal | farther |{' other channels |' if mixing else ''}",
             '|---' * (12 + mixing) + '|']
    for name, rms, decibels, gain, offset, summary in zip(
            channel_names(kernel.shape[0], calibration.pattern), calibration.residual_rms, calibration.residual_db,
            calibration.gain, calibration.offset, kernel_summary(kernel)):
        lines.append(f'| {name} | {rms:.3g} | {decibels:.1f} | {gain:.4f} | {offset:+.5f} | '
                     + ' | '.join(f'{value:.4f}' for value in summary.values()) + ' |')
    lines += ['', f'Shift of each capture from its reference (dy, dx) [{pixels}]:']
    lines += [f'- {captured}: ({dy:+.3f}, {dx:+.3f}) from {reference}'
              for (reference, captured), (dy, dx) in zip(names, calibration.shifts)]
    return '\n'.join(lines)


def write_report(calibration, names, folder):
    """Write ``calibration.md`` (:func:`describe_calibration` and the values), ``calibration.json`` and
    ``kernel.png`` (:func:`~newbp_plugin.kernels.render_kernel_png`) into ``folder``.

    Returns:
        list[str]: the paths written.
    """
    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, name) for name in ('calibration.md', 'calibration.json', 'kernel.png')]
    with open(paths[0], 'w', encoding='utf-8') as file:
        file.write(f"# Sensor kernel calibration\n\n{describe_calibration(calibration, names)}\n\n"
                   f"![kernel](kernel.png)\n\n```\n{format_kernel(calibration.kernel, pattern=calibration.pattern)}"
                   "\n```\n")
    record = {'kernel': calibration.kernel.tolist(), 'gain': calibration.gain.tolist(),
              'offset': calibration.offset.tolist(), 'pattern': calibration.pattern,
              'residual_rms': calibration.residual_rms.tolist(),
              'residual_db': calibration.residual_db.tolist(), 'linear_light': calibration.linear_light,
              'pairs': [{'reference': reference, 'captured': captured, 'shift': list(shift)}
                        for (reference, captured), shift in zip(names, calibration.shifts)],
              'channels': kernel_summary(calibration.kernel)}
    with open(paths[1], 'w', encoding='utf-8') as file:
        json.dump(record, file, indent=2)
    render_kernel_png(calibration.kernel, paths[2], pattern=calibration.pattern)
    return paths
