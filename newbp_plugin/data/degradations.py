"""Synthesis of sensor degradations ``X = K * Y + N`` (numpy and torch, no BasicSR).

Order of operations in :func:`degrade`, for a clean image Y with values in [0, 1]:

1. ``linear_light``: decode Y from sRGB to linear light (IEC 61966-2-1), ``y = srgb_to_linear(Y)``
   (8- and 16-bit code values by table look-up); otherwise ``y = Y`` (a linear source, or work in
   the encoded domain).
2. Blur with the sensor kernel, ``b = K * y`` (:func:`blur`): the convolution of
   :func:`newbp_plugin.ops.crosstalk`, the operator of the NewBP head, so the data and the head
   mean the same K (a true convolution, PSF centred at ``(kh // 2, kw // 2)``); the image is
   continued by reflection outside the pixels given.
3. Noise, in the units of ``b`` (linear signal in [0, 1] when ``linear_light``), parameters drawn
   once per image: ``gaussian``: ``x = b + N(0, sigma_c^2)``; ``poisson_gaussian``:
   ``x = gain_c * Poisson(max(b, 0) / gain_c) + N(0, read_sigma_c^2)``, so that
   ``Var[x] = gain_c * b + read_sigma_c^2`` (``gain``: signal per photo-electron, 1 / full well).
   Pixels expecting fewer than ``POISSON_EXACT_BELOW`` electrons draw exactly from Poisson
   (:func:`newbp_plugin.data.poisson.poisson_small`); brighter ones draw the normal law of the
   same mean and variance (skewness below 0.18, far under one quantisation step after scaling by
   the gain), so that shot and read noise there are a single normal draw of variance
   ``gain_c * b + read_sigma_c^2``: one draw per pixel instead of two (benchmarks/data.py).
4. ``clip``: clip x to [0, 1] (the sensor's range).
5. ``linear_light``: encode back, ``X = linear_to_srgb(x)``.
6. ``quantize``: round X to 8 or 16 bits, ``round(X * (2^q - 1)) / (2^q - 1)``, as a file stores it
   (8 bits after ``linear_light``: steps 5 and 6 in one table look-up, the same codes).

Noise spec (YAML), validated by :class:`NoiseModel`; errors name the key::

    noise: {type: gaussian, sigma: 0.01}                  # fixed sigma, all channels
    noise: {type: gaussian, sigma: [0.005, 0.02]}         # [low, high]: one uniform draw per image
    noise: {type: gaussian, sigma: [0.01, [0.01, 0.03], 0.02]}   # per channel (R, G, B): number or range
    noise: {type: poisson_gaussian, gain: [0.002, 0.01], read_sigma: 0.002, clip: true, quantize: 8}
    noise: {type: none, quantize: 16}                     # no noise, only clipping / quantisation
    # common keys: clip (bool, default true), quantize (8 | 16 | null, default null; needs clip)

Every draw comes from the numpy Generator passed in (normal draws from a torch generator it
seeds): the same generator state gives the same image.
"""
import numbers

import cv2
import numpy as np
import torch

from newbp_plugin.data.poisson import TABLE_MEANS, poisson_small
from newbp_plugin.ops import crosstalk
from newbp_plugin.ops.color import CODE_DTYPES, linear_to_srgb, linear_to_srgb_8bit, srgb_to_linear

# type -> {parameter: (smallest valid value, whether that bound is excluded, default; None: required)}
NOISE_PARAMETERS = {
    'none': {},
    'gaussian': {'sigma': (0.0, False, None)},
    'poisson_gaussian': {'gain': (0.0, True, None), 'read_sigma': (0.0, False, 0.0)},
}
NOISE_COMMON_KEYS = {'type': None, 'clip': True, 'quantize': None}
QUANTIZE_BITS = (8, 16)
POISSON_EXACT_BELOW = TABLE_MEANS  # expected electrons under which shot noise is drawn exactly from Poisson
# Widest per-channel kernel blurred by OpenCV's filter2D; it turns to a DFT above 11x11, slower than ops.crosstalk's.
FILTER2D_MAX_KERNEL_SIZE = 11
# Kernels equal to the outer product of a column and a row up to this fraction of their largest
# entry, in every entry, are blurred as two 1-D passes (float32 kernels of separable PSFs: ~1e-7).
SEPARABLE_TOLERANCE = 1e-6


class NoiseSpecError(ValueError):
    """An invalid noise spec; the message names the key."""


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class _Parameter:
    """A noise parameter: per-channel ``low`` and ``high`` (equal when fixed), one draw shared or per channel."""

    def __init__(self, low, high, shared):
        self.low, self.high, self.shared = np.asarray(low, np.float64), np.asarray(high, np.float64), shared

    def draw(self, rng, channels):
        """(channels,) float64 values, uniform in [low, high]."""
        fraction = rng.random(1 if self.shared else channels)
        return self.low + fraction * (self.high - self.low)


def _parse_parameter(value, key, channels, minimum, exclusive):
    """A :class:`_Parameter` from a number, a [low, high] range, or a list with one of those per channel."""
    where = f'noise.{key}'

    def check_bounds(low, high, place):
        for number in (low, high):
            if not np.isfinite(number) or number < minimum or (exclusive and number == minimum):
                raise NoiseSpecError(f"{place} must be {'>' if exclusive else '>='} {minimum:g}, got {number!r}")
        if low > high:
            raise NoiseSpecError(f'{place}: a range is [low, high] with low <= high, got [{low!r}, {high!r}]')

    def is_range(item):
        return isinstance(item, (list, tuple)) and len(item) == 2 and all(_is_number(v) for v in item)

    if _is_number(value):
        check_bounds(value, value, where)
        return _Parameter([value] * channels, [value] * channels, shared=True)
    if is_range(value):
        check_bounds(value[0], value[1], where)
        return _Parameter([value[0]] * channels, [value[1]] * channels, shared=True)
    if isinstance(value, (list, tuple)) and len(value) == channels:
        lows, highs = [], []
        for index, item in enumerate(value):
            if _is_number(item):
                item = (item, item)
            elif not is_range(item):
                raise NoiseSpecError(f'{where}[{index}] must be a number or a [low, high] range, got {item!r}')
            check_bounds(item[0], item[1], f'{where}[{index}]')
            lows.append(item[0])
            highs.append(item[1])
        return _Parameter(lows, highs, shared=False)
    raise NoiseSpecError(f'{where} must be a number, a [low, high] range, or a list of {channels} (one per '
                         f'channel) numbers or ranges; got {value!r}')


class NoiseModel:
    """Sensor noise, clipping and quantisation from a YAML spec (see the module docstring).

    Args:
        spec (dict | None): the spec; None is ``{type: none}`` (no noise, clip, no quantisation).
        channels (int): channels of the images the noise is added to (1 or 3).

    Attributes:
        type (str), clip (bool), quantize (int | None), parameters (dict[str, _Parameter]).
    """

    def __init__(self, spec=None, channels=3):
        spec = {'type': 'none'} if spec is None else spec
        if not isinstance(spec, dict):
            raise NoiseSpecError(f'noise must be a mapping such as {{type: gaussian, sigma: 0.01}}, got {spec!r}')
        self.type = spec.get('type')
        if self.type not in NOISE_PARAMETERS:
            raise NoiseSpecError(f"noise.type must be one of {', '.join(NOISE_PARAMETERS)}, got {self.type!r}")
        allowed = NOISE_PARAMETERS[self.type]
        unknown = sorted(set(spec) - set(allowed) - set(NOISE_COMMON_KEYS))
        if unknown:
            raise NoiseSpecError(f"noise.{unknown[0]} is not an option of type {self.type}; valid options: "
                                 f"{', '.join(list(NOISE_COMMON_KEYS) + list(allowed))}")
        self.parameters = {}
        for key, (minimum, exclusive, default) in allowed.items():
            if key not in spec and default is None:
                raise NoiseSpecError(f'noise.{key} is required for type {self.type}')
            self.parameters[key] = _parse_parameter(spec.get(key, default), key, channels, minimum, exclusive)
        self.channels = channels
        self.clip = spec.get('clip', NOISE_COMMON_KEYS['clip'])
        if not isinstance(self.clip, bool):
            raise NoiseSpecError(f'noise.clip must be true or false, got {self.clip!r}')
        self.quantize = spec.get('quantize', NOISE_COMMON_KEYS['quantize'])
        if self.quantize is not None and (self.quantize not in QUANTIZE_BITS or isinstance(self.quantize, bool)):
            raise NoiseSpecError(f'noise.quantize must be 8, 16 or null, got {self.quantize!r}')
        if self.quantize is not None and not self.clip:
            raise NoiseSpecError('noise.quantize needs clip: true (an integer image holds only [0, 1])')

    def add(self, signal, rng):
        """Noisy copy of ``signal`` (steps 3 and 4 of the module docstring).

        Args:
            signal (np.ndarray): (C, H, W) float32, the blurred image b.
            rng (np.random.Generator): source of the parameter and noise draws.

        Returns:
            np.ndarray: (C, H, W) float32.
        """
        values = {key: parameter.draw(rng, self.channels)[:, None, None] for key, parameter in self.parameters.items()}
        if self.type == 'gaussian':
            noisy = signal + values['sigma'].astype(np.float32) * standard_normal(signal.shape, rng)
        elif self.type == 'poisson_gaussian':
            gain, read = values['gain'].astype(np.float32), values['read_sigma'].astype(np.float32)  # (C, 1, 1)
            mean = np.maximum(signal, 0)
            normal = standard_normal(signal.shape, rng)
            # Bright pixels: shot noise (its normal law) and read noise are one normal draw of the summed variance.
            noisy = np.multiply(gain, mean, out=np.empty(signal.shape, np.float32))  # contiguous: ravel() is a view
            noisy += read * read
            np.sqrt(noisy, out=noisy)
            noisy *= normal
            noisy += mean
            # Dark pixels: exact Poisson shot noise plus read noise, one channel (one gain) at a time.
            for plane, plane_mean, plane_normal, plane_gain, plane_read in zip(noisy, mean, normal, gain.ravel(),
                                                                               read.ravel()):
                electrons = plane_mean.ravel() / plane_gain
                exact = np.flatnonzero(electrons < POISSON_EXACT_BELOW)
                shot = poisson_small(electrons[exact], rng).astype(np.float32)
                shot *= plane_gain
                shot += plane_read * plane_normal.ravel()[exact]
                plane.ravel()[exact] = shot
        else:
            noisy = signal
        return np.clip(noisy, 0, 1) if self.clip else noisy

    def quantize_image(self, image):
        """``image`` rounded to ``quantize`` bits (step 6), or unchanged when ``quantize`` is null."""
        if self.quantize is None:
            return image
        levels = 2**self.quantize - 1
        return np.round(image * levels) / np.float32(levels)

    def __repr__(self):
        return f'NoiseModel(type={self.type!r}, clip={self.clip}, quantize={self.quantize})'


def standard_normal(shape, rng):
    """float32 standard normal draws of ``shape``, from a torch generator seeded by ``rng``
    (torch's sampler is twice as fast as numpy's on a CPU; benchmarks/data.py)."""
    generator = torch.Generator().manual_seed(int(rng.integers(2**63)))
    return torch.randn(shape, generator=generator).numpy()


def degrade(clean, kernel, noise, rng, linear_light=True, context=0):
    """``X = K * Y + N`` for one image, in the order of the module docstring.

    Args:
        clean (np.ndarray): (C, H + 2 context, W + 2 context) the clean image Y (sRGB-encoded
            when ``linear_light``): float32 in [0, 1], or uint8 / uint16 code values; with
            ``context`` pixels of its surroundings on each side, which the kernel reads and the
            output leaves out.
        kernel (np.ndarray | Tensor): PSF from :mod:`newbp_plugin.kernels`: (kh, kw),
            (C, kh, kw) per channel, or (C, C, kh, kw) channel-mixing.
        noise (NoiseModel): noise, clipping and quantisation.
        rng (np.random.Generator): source of every draw.
        linear_light (bool): apply K and N to linear light. Default: True.
        context (int): pixels left out on each side after the blur. Default: 0.

    Returns:
        np.ndarray: (C, H, W) float32 in [0, 1] (unclipped without ``noise.clip``), the degraded
        image X, encoded as ``clean``.
    """
    if linear_light:
        signal = srgb_to_linear(clean)
    elif clean.dtype in CODE_DTYPES:
        signal = clean.astype(np.float32) / np.float32(np.iinfo(clean.dtype).max)
    else:
        signal = clean
    noisy = noise.add(blur(signal, kernel, context), rng)
    if linear_light and noise.quantize == 8:
        return linear_to_srgb_8bit(noisy).astype(np.float32) / np.float32(255)
    return noise.quantize_image(linear_to_srgb(noisy) if linear_light else noisy)


def blur(signal, kernel, context=0):
    """``K * signal`` (step 2), the image continued by reflection, ``context`` pixels left out on each side.

    The convolution of the NewBP head, :func:`newbp_plugin.ops.crosstalk`. Per-channel kernels
    go through OpenCV instead, faster on one image (tests compare the two): separable ones
    (rank 1, as Gaussian and box PSFs) as two 1-D passes of ``sepFilter2D``, others up to
    ``FILTER2D_MAX_KERNEL_SIZE`` wide through ``filter2D``.

    Args:
        signal (np.ndarray): (C, H, W) float32.
        kernel (np.ndarray | Tensor): (kh, kw), (C, kh, kw) or (C, C, kh, kw) PSF.
        context (int): pixels left out on each side.

    Returns:
        np.ndarray: (C, H - 2 context, W - 2 context) float32.
    """
    height, width = signal.shape[-2:]
    kernel = torch.as_tensor(kernel)
    blurred = _opencv_blur(signal, kernel)
    if blurred is None:
        mixing = kernel.dim() == 4  # (C, C, kh, kw) from build_kernel: one for all in the batch layout
        blurred = crosstalk(torch.from_numpy(np.ascontiguousarray(signal))[None], kernel[None] if mixing else kernel,
                            padding_mode='reflect')[0].numpy()
    return blurred[:, context:height - context, context:width - context]


def _opencv_blur(signal, kernel):
    """:func:`blur` without the crop through OpenCV, or None where ops.crosstalk is faster or
    where OpenCV would read the kernel differently (an even size, channels that do not match:
    crosstalk refuses those with its message)."""
    per_channel = kernel.dim() == 2 or (kernel.dim() == 3 and len(kernel) == len(signal))
    if not per_channel or not all(size % 2 for size in kernel.shape[-2:]):
        return None
    # OpenCV correlates: the flipped PSF convolves. Its BORDER_REFLECT_101 is torch's 'reflect'.
    flipped = kernel.flip((-2, -1)).double().numpy()
    psfs = np.broadcast_to(flipped, (len(signal), ) + flipped.shape[-2:])
    factors = [_rank_one_factors(psf) for psf in flipped.reshape((-1, ) + flipped.shape[-2:])]
    factors *= len(signal) // len(factors)  # a shared kernel: its factors for every plane
    separable = all(pair is not None for pair in factors)
    if not separable and max(kernel.shape[-2:]) > FILTER2D_MAX_KERNEL_SIZE:
        return None
    signal = np.ascontiguousarray(signal, dtype=np.float32)
    blurred = np.empty_like(signal)
    for plane, out, psf, pair in zip(signal, blurred, psfs, factors):
        if separable:
            column, row = pair
            cv2.sepFilter2D(plane, -1, row, column, dst=out, borderType=cv2.BORDER_REFLECT_101)
        else:
            cv2.filter2D(plane, -1, psf.astype(np.float32), dst=out, borderType=cv2.BORDER_REFLECT_101)
    return blurred


def _rank_one_factors(psf):
    """float32 (column, row) with ``psf == outer(column, row)`` up to ``SEPARABLE_TOLERANCE`` of its
    largest magnitude in every entry, or None: ``psf`` (kh, kw) is not separable."""
    top = np.unravel_index(np.abs(psf).argmax(), psf.shape)
    if psf[top] == 0:
        return None
    column, row = psf[:, top[1]], psf[top[0]] / psf[top]
    if np.abs(psf - np.outer(column, row)).max() > SEPARABLE_TOLERANCE * abs(psf[top]):
        return None
    return column.astype(np.float32), row.astype(np.float32)
