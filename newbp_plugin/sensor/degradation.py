"""The whole forward model on a batch: ``X = q(srgb(clip(K * linear(Y) + N)))``, and its noise level.

Raw draws (packed raw of ``CrosstalkDataset`` with ``domain: raw``) give ``X = codes(K * Y + N)``
read back: linear already, normalised so that 0 is the black level and 1 the white level.
"""
import torch

from newbp_plugin.ops.color import srgb_to_linear
from newbp_plugin.sensor.noise import add_noise, noise_variance_map, quantize
from newbp_plugin.sensor.optics import SensorOptics
from newbp_plugin.sensor.unprocess import from_raw_codes, to_raw_codes

RAW_LEVEL_KEYS = ('black_level', 'white_level', 'raw_bits')  # the draws of raw images (codes of the raw file)


def batch_optics(draws):
    """The :class:`SensorOptics` of a batch's ``sensor`` draws (one ``linear_light`` for the batch)."""
    linear_light = draws['linear_light']
    if bool(linear_light.any()) != bool(linear_light.all()):
        raise ValueError('a batch mixes linear_light true and false; degrade each dataset on its own')
    return SensorOptics(bool(linear_light.all()))


def batch_raw_levels(draws):
    """``(black_level, white_level, raw_bits)`` of a batch's raw draws (one for the batch); None for RGB draws."""
    if RAW_LEVEL_KEYS[0] not in draws:
        return None
    if bool(draws['linear_light'].any()):
        raise ValueError('raw draws are linear light already: their linear_light must be false')
    levels = []
    for key in RAW_LEVEL_KEYS:
        values = torch.as_tensor(draws[key]).flatten()
        if bool((values != values[0]).any()):
            raise ValueError(f'a batch mixes {key} values; degrade each dataset on its own')
        levels.append(int(values[0]))
    return tuple(levels)


def degrade(scene, kernel, draws, context):
    """The degraded images X of clean scenes, in the order of operations of the sensor.

    1. decode Y from sRGB to linear light (``linear_light``; else Y as it is);
    2. ``b = K * y`` (the optics of the NewBP head), then the ``context`` ring of each scene,
       which the kernel read, is left out (beyond the scene, the optics' border: reflection);
    3. ``x = b + N``, the Poisson–Gaussian noise of each sample (:func:`~newbp_plugin.sensor.noise.add_noise`);
    4. clip x to [0, 1] (``clip``);
    5. encode back to sRGB (``linear_light``);
    6. round to ``quantize`` bits.

    Raw draws (``black_level``, ``white_level``, ``raw_bits``; linear_light false) replace 4-6 by the
    raw file's codes read back (:func:`~newbp_plugin.sensor.unprocess.to_raw_codes`): x clipped at
    the white level and at code 0 (read noise below black survives), rounded to whole codes.

    Args:
        scene (Tensor): (B, C, H + 2r, W + 2r) clean images in [0, 1] (sRGB-encoded when
            ``linear_light``; raw: (B, 4, ...) packed, normalised), with ``r = context`` pixels of
            their surroundings on each side.
        kernel (Tensor): the batch's kernels, any layout of :mod:`newbp_plugin.sensor.layout`
            (exact up to the border when at most 2r + 1 wide).
        draws (dict): the batch's ``sensor`` draws: ``gain``, ``read_sigma`` (B, C); ``clip``,
            ``quantize``, ``seed``, ``linear_light`` (B,) (:meth:`NoiseModel.draw`, CrosstalkDataset);
            raw: also ``black_level``, ``white_level``, ``raw_bits`` (B,).
        context (int): r.

    Returns:
        Tensor: (B, C, H, W) X, in the dtype and on the device of ``scene``.
    """
    optics, raw_levels = batch_optics(draws), batch_raw_levels(draws)
    height, width = scene.shape[-2] - 2 * context, scene.shape[-1] - 2 * context
    blurred = optics.blur(optics.to_linear(scene), kernel)[..., context:context + height, context:context + width]
    noisy = add_noise(blurred, draws['gain'], draws['read_sigma'], draws['seed'])
    if raw_levels is not None:
        black_level, white_level, bits = raw_levels
        return from_raw_codes(to_raw_codes(noisy, black_level, white_level, bits), black_level, white_level)
    noisy = torch.where(draws['clip'].to(scene.device)[:, None, None, None], noisy.clamp(0, 1), noisy)
    return quantize(optics.to_encoded(noisy), draws['quantize'].to(scene.device))


def noise_variance(draws, degraded):
    """The oracle noise level: the variance of N in each channel, in the light N was added in.

    ``gain · mean(b) + read_sigma²`` with this sample's drawn parameters, b the blurred signal
    taken as the decoded degraded image (its noise has mean zero); plus the quantisation's
    ``step² / 12`` (step ``1 / (2^q - 1)`` in the encoded domain; in linear light times the mean
    squared slope of the sRGB decoding at the image's values; raw: one code, ``1 / (white - black)``).
    Clipping is ignored. At least the squared float epsilon, so that every regularisation weight
    derived from it is positive.

    Args:
        draws (dict): the batch's ``sensor`` draws (see :func:`degrade`).
        degraded (Tensor): (B, C, H, W) X.

    Returns:
        Tensor: (B, C, 1, 1) σ² per channel.
    """
    optics, raw_levels = batch_optics(draws), batch_raw_levels(draws)
    variance = noise_variance_map(optics.to_linear(degraded), draws['gain'], draws['read_sigma']).mean(
        (-2, -1), keepdim=True)
    if raw_levels is None:
        bits = draws['quantize'].to(degraded.device)
        step = torch.where(bits > 0, 1 / (2**bits.to(degraded) - 1), torch.zeros_like(bits, dtype=degraded.dtype))
    else:
        black_level, white_level, _ = raw_levels
        step = degraded.new_full(degraded.shape[:1], 1 / (white_level - black_level))
    step = step[:, None, None, None]
    slope = ((srgb_to_linear(degraded + step / 2) - srgb_to_linear(degraded - step / 2)) /
             step.clamp(min=torch.finfo(degraded.dtype).tiny) if optics.linear_light else torch.ones_like(degraded))
    variance = variance + step.square() / 12 * slope.square().mean((-2, -1), keepdim=True)
    return variance.clamp(min=torch.finfo(degraded.dtype).eps**2)
