"""Synthesis of sensor degradations ``X = K * Y + N`` (numpy and torch, no BasicSR).

Order of operations in :func:`degrade`, for a clean image Y with values in [0, 1]:

1. ``linear_light``: decode Y from sRGB to linear light (IEC 61966-2-1), ``y = srgb_to_linear(Y)``;
   otherwise ``y = Y`` (a linear source, or work in the encoded domain).
2. Blur with the sensor kernel, ``b = K * y``: :func:`newbp_plugin.ops.crosstalk`, the operator of
   the NewBP head, so the data and the head mean the same K (a true convolution, PSF centred at
   ``(kh // 2, kw // 2)``); the image is continued by reflection outside the pixels given.
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
6. ``quantize``: round X to 8 or 16 bits, ``round(X * (2^q - 1)) / (2^q - 1)``, as a file stores it.

Noise spec (YAML), validated by :class:`NoiseModel`; errors name the key::

    noise: {type: gaussian, sigma: 0.01}                  # fixed sigma, all channels
    noise: {type: gaussian, sigma: [0.005, 0.02]}         # [low, high]: one uniform draw per image
    noise: {type: gaussian, sigma: [0.01, [0.01, 0.03], 0.02]}   # per channel (R, G, B): number or range
    noise: {type: poisson_gaussian, gain: [0.002, 0.01], read_sigma: 0.002, clip: true, quantize: 8}
    noise: {type: none, quantize: 16}                     # no noise, only clipping / quantisation
    # common keys: clip (bool, default true), quantize (8 | 16 | null, default null; needs clip)

Every draw comes from the numpy Generator passed in: the same generator state gives the same image.
"""
import numbers

import numpy as np
import torch

from newbp_plugin.data.poisson import TABLE_MEANS, poisson_small
from newbp_plugin.ops import crosstalk
from newbp_plugin.ops.color import linear_to_srgb, srgb_to_linear

# type -> {parameter: (smallest valid value, whether that bound is excluded, default; None: required)}
NOISE_PARAMETERS = {
    'none': {},
    'gaussian': {'sigma': (0.0, False, None)},
    'poisson_gaussian': {'gain': (0.0, True, None), 'read_sigma': (0.0, False, 0.0)},
}
NOISE_COMMON_KEYS = {'type': None, 'clip': True, 'quantize': None}
QUANTIZE_BITS = (8, 16)
POISSON_EXACT_BELOW = TABLE_MEANS  # expected electrons under which shot noise is drawn exactly from Poisson


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
            noisy = signal + values['sigma'].astype(np.float32) * rng.standard_normal(signal.shape, np.float32)
        elif self.type == 'poisson_gaussian':
            gain, read = values['gain'].astype(np.float32), values['read_sigma'].astype(np.float32)  # (C, 1, 1)
            mean = np.maximum(signal, 0)
            normal = rng.standard_normal(signal.shape, np.float32)
            # Bright pixels: shot noise (its normal law) and read noise are one normal draw of the summed variance.
            noisy = mean + np.sqrt(gain * mean + read * read) * normal
            expected = mean / gain  # photo-electrons
            exact = expected < POISSON_EXACT_BELOW
            gain, read = (np.broadcast_to(value, signal.shape)[exact] for value in (gain, read))
            noisy[exact] = gain * poisson_small(expected[exact], rng) + read * normal[exact]
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


def degrade(clean, kernel, noise, rng, linear_light=True, context=0):
    """``X = K * Y + N`` for one image, in the order of the module docstring.

    Args:
        clean (np.ndarray): (C, H + 2 context, W + 2 context) float32 in [0, 1]: the clean
            image Y (sRGB-encoded when ``linear_light``) with ``context`` pixels of its
            surroundings on each side, which the kernel reads and the output leaves out.
        kernel (np.ndarray | Tensor): PSF from :mod:`newbp_plugin.kernels`: (kh, kw),
            (C, kh, kw) per channel, or (C, C, kh, kw) channel-mixing.
        noise (NoiseModel): noise, clipping and quantisation.
        rng (np.random.Generator): source of every draw.
        linear_light (bool): apply K and N to linear light. Default: True.
        context (int): pixels left out on each side after the blur. Default: 0.

    Returns:
        np.ndarray: (C, H, W) float32, the degraded image X, encoded as ``clean``.
    """
    signal = srgb_to_linear(clean) if linear_light else clean
    kernel = torch.as_tensor(kernel)
    blurred = crosstalk(torch.from_numpy(np.ascontiguousarray(signal))[None], kernel, padding_mode='reflect',
                        cross_channel=kernel.dim() == 4)[0].numpy()
    height, width = blurred.shape[-2:]
    noisy = noise.add(blurred[:, context:height - context, context:width - context], rng)
    return noise.quantize_image(linear_to_srgb(noisy) if linear_light else noisy)
