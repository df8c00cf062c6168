"""Sensor noise: the spec of a YAML ``noise:`` block, its per-sample draws, and the noise itself (torch).

Every noise type is one Poisson–Gaussian law in the units of the blurred signal b (linear light
in [0, 1] when the sensor works in linear light; packed raw: normalised, 0 at the black level and
1 at the white level), with per-channel parameters drawn once per image::

    x = gain_c · Poisson(max(b, 0) / gain_c) + N(0, read_sigma_c²)      (gain_c = 0: x = b + N(0, read_sigma_c²))

so that ``Var[x] = gain_c · b + read_sigma_c²`` (``gain``: signal per photo-electron, 1 / full well;
shot noise is exact below ``POISSON_EXACT_BELOW`` expected electrons, its normal law above: :func:`add_noise`).
``gaussian`` is the law with gain 0 and read_sigma = sigma; ``none`` draws nothing. Then x is
clipped to [0, 1] (``clip``) and, after encoding, rounded to ``quantize`` bits.

Spec (YAML), validated by :class:`NoiseModel`; errors name the key::

    noise: {type: gaussian, sigma: 0.01}                           # fixed sigma, all channels
    noise: {type: gaussian, sigma: {uniform: [0.005, 0.02]}}       # one draw per image, shared by the channels
    noise: {type: gaussian, sigma: [0.01, {uniform: [0.01, 0.03]}, 0.02]}   # per channel (R, G, B)
    noise: {type: poisson_gaussian, gain: {choice: [0.002, 0.01]}, read_sigma: 0.002, clip: true, quantize: 8}
    noise: {type: none, quantize: 16}                              # no noise, only clipping / quantisation
    # common keys: clip (bool, default true), quantize (8 | 16 | null, default null; needs clip)

Random values follow the one grammar of kernel specs (:mod:`newbp_plugin.ranges`:
``{uniform|randint|choice: ...}``); the former ``[low, high]`` range fails with the new form.
"""
import numbers

import numpy as np
import torch

from newbp_plugin.ranges import draw_value, extremes, is_random_value

# type -> {parameter: (smallest valid value, whether that bound is excluded, default; None: required)}
NOISE_PARAMETERS = {
    'none': {},
    'gaussian': {'sigma': (0.0, False, None)},
    'poisson_gaussian': {'gain': (0.0, True, None), 'read_sigma': (0.0, False, 0.0)},
}
NOISE_COMMON_KEYS = {'type': None, 'clip': True, 'quantize': None}
QUANTIZE_BITS = (8, 16)
POISSON_EXACT_BELOW = 30  # expected photo-electrons under which shot noise is drawn exactly from Poisson


class NoiseSpecError(ValueError):
    """An invalid noise spec; the message names the key."""


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class _Parameter:
    """A noise parameter: per channel a fixed number or a random value, one draw shared or one per channel."""

    def __init__(self, values, shared, where):
        self.values, self.shared, self.where = values, shared, where

    def draw(self, rng, channels):
        """(channels,) float64 values."""
        if self.shared:
            return np.full(channels, draw_value(self.values[0], rng, self.where, NoiseSpecError), np.float64)
        return np.array([draw_value(value, rng, self.where, NoiseSpecError) for value in self.values], np.float64)


def _parse_parameter(value, key, channels, minimum, exclusive):
    """A :class:`_Parameter` from a number or random value (shared by the channels), or a list with one per channel."""
    where = f'noise.{key}'

    def checked(item, place):
        if not (_is_number(item) or is_random_value(item)):
            raise NoiseSpecError(f'{place} must be a number or a random value such as {{uniform: [0.001, 0.01]}}, '
                                 f'got {item!r}')
        for number in extremes(item, place, NoiseSpecError):
            if not _is_number(number) or not np.isfinite(number) or number < minimum or (exclusive
                                                                                         and number == minimum):
                raise NoiseSpecError(f"{place} must be {'>' if exclusive else '>='} {minimum:g}, got {number!r}")
        return item

    def old_range(item):
        return isinstance(item, (list, tuple)) and len(item) == 2 and all(_is_number(v) for v in item)

    if isinstance(value, (list, tuple)) and len(value) == channels and not (channels == 2 and old_range(value)):
        for index, item in enumerate(value):
            if old_range(item):
                raise NoiseSpecError(f'{where}[{index}]: a range is written {{uniform: {list(item)}}} (the grammar '
                                     'of kernel specs)')
        return _Parameter([checked(item, f'{where}[{index}]') for index, item in enumerate(value)], False, where)
    if old_range(value):
        raise NoiseSpecError(f'{where}: a range is written {{uniform: {list(value)}}} (the grammar of kernel specs); '
                             f'a list gives one value per channel ({channels})')
    if isinstance(value, (list, tuple)):
        raise NoiseSpecError(f'{where} must be a number, a random value such as {{uniform: [0.001, 0.01]}}, or a '
                             f'list of {channels} (one per channel); got {value!r}')
    return _Parameter([checked(value, where)], True, where)


class NoiseModel:
    """Sensor noise, clipping and quantisation from a YAML spec (see the module docstring).

    Args:
        spec (dict | None): the spec; None is ``{type: none}`` (no noise, clip, no quantisation).
        channels (int): channels of the images the noise is added to (1, 3, or 4: packed raw).

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

    @property
    def is_random(self):
        """Whether a parameter is drawn per image (a random value) rather than fixed."""
        return any(is_random_value(value) for parameter in self.parameters.values() for value in parameter.values)

    def draw(self, rng):
        """This image's noise: its parameters, and the seed of its noise field.

        Args:
            rng (np.random.Generator): source of the draws.

        Returns:
            dict: ``gain`` and ``read_sigma``, (C,) float32 tensors (the Poisson–Gaussian law of the
            module docstring); ``clip`` (bool tensor), ``quantize`` (int64 tensor, 0: none) and
            ``seed`` (int64 tensor): the entries of a batch's ``sensor`` draws for :func:`add_noise`.
        """
        values = {key: parameter.draw(rng, self.channels) for key, parameter in self.parameters.items()}
        zeros = np.zeros(self.channels)
        gain = np.broadcast_to(values.get('gain', zeros), (self.channels, ))
        read_sigma = np.broadcast_to(values.get('sigma', values.get('read_sigma', zeros)), (self.channels, ))
        return {
            'gain': torch.tensor(gain, dtype=torch.float32),
            'read_sigma': torch.tensor(read_sigma, dtype=torch.float32),
            'clip': torch.tensor(self.clip),
            'quantize': torch.tensor(self.quantize or 0),
            'seed': torch.tensor(int(rng.integers(2**63))),
        }

    def __repr__(self):
        return f'NoiseModel(type={self.type!r}, clip={self.clip}, quantize={self.quantize})'


def add_noise(signal, gain, read_sigma, seeds):
    """The Poisson–Gaussian noise of the module docstring, on a batch, each sample from its own seed.

    Pixels expecting fewer than ``POISSON_EXACT_BELOW`` photo-electrons draw their shot noise
    exactly from Poisson; brighter ones draw the normal law of the same mean and variance
    (skewness below 0.18, far under one quantisation step after scaling by the gain), so that shot
    and read noise there are one normal draw of variance ``gain · b + read_sigma²``. The noise of a
    sample depends only on its signal, its parameters and its seed (not on the batch it is in),
    and is the same on every run on the same device type.

    Args:
        signal (Tensor): (B, C, H, W) blurred signal b, float.
        gain (Tensor): (B, C) signal per photo-electron; 0: no shot noise.
        read_sigma (Tensor): (B, C) standard deviation of the additive Gaussian noise.
        seeds (Tensor): (B,) int64 seeds of the noise fields.

    Returns:
        Tensor: (B, C, H, W) noisy signal, unclipped.
    """
    gain, read_sigma = gain.to(signal)[..., None, None], read_sigma.to(signal)[..., None, None]
    mean = signal.clamp(min=0)
    generators = [torch.Generator(signal.device).manual_seed(seed) for seed in seeds.tolist()]
    normal = torch.stack([torch.randn(signal.shape[1:], generator=generator, device=signal.device,
                                      dtype=signal.dtype) for generator in generators])
    # bright pixels, and Gaussian noise alone (gain 0, b as it is): one normal draw of the summed variance
    noisy = torch.addcmul(torch.where(gain > 0, mean, signal), (gain * mean + read_sigma.square()).sqrt(), normal)
    electrons = mean / gain.where(gain > 0, 1)
    dark = (gain > 0) & (electrons < POISSON_EXACT_BELOW)
    for sample, generator in enumerate(generators):
        pixels = dark[sample].flatten().nonzero().squeeze(1)
        if len(pixels):
            channels = pixels // dark[sample, 0].numel()
            shot = torch.poisson(electrons[sample].flatten()[pixels], generator=generator)
            sample_gain, sample_read = gain[sample].flatten()[channels], read_sigma[sample].flatten()[channels]
            noisy[sample].view(-1)[pixels] = shot * sample_gain + sample_read * normal[sample].flatten()[pixels]
    return noisy


def noise_variance_map(light, gain, read_sigma):
    """The variance of the noise of :func:`add_noise` at each pixel, ``gain · max(b, 0) + read_sigma²``.

    Args:
        light (Tensor): (B, C, H, W) the signal b (linear light when the sensor works in it).
        gain, read_sigma (Tensor): (B, C) the noise parameters (as drawn, or assumed).

    Returns:
        Tensor: (B, C, H, W), in the units of ``light`` squared.
    """
    return gain.to(light)[..., None, None] * light.clamp(min=0) + read_sigma.to(light)[..., None, None].square()


def quantize(image, bits):
    """``round(image · (2^q - 1)) / (2^q - 1)`` per sample, as a file stores it.

    Args:
        image (Tensor): (B, C, H, W) in [0, 1].
        bits (Tensor): (B,) int64, q in {0, 8, 16}; 0 leaves the sample as it is.

    Returns:
        Tensor: (B, C, H, W).
    """
    levels = (2**bits.to(torch.float64) - 1).to(image)[:, None, None, None]
    return torch.where(levels > 0, torch.round(image * levels) / levels.clamp(min=1), image)
