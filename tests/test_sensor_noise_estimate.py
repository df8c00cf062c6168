"""estimate_noise: the Poisson–Gaussian parameters of an image, from the image alone."""
import math

import pytest
import torch

from newbp_plugin.ops.color import linear_to_srgb
from newbp_plugin.sensor.noise_estimate import estimate_noise

GAIN = torch.tensor([[0.002, 0.0005, 0.004], [0.0, 0.001, 0.008]])  # (B, C), per sample and channel
READ = torch.tensor([[0.003, 0.001, 0.002], [0.01, 0.004, 0.0005]])


def smooth_scene(batch=2, channels=3, size=192):
    """(B, C, H, W) linear light from 0.03 to 0.95: a ramp with a slow wave, no texture at 3x3."""
    rows, cols = torch.meshgrid(torch.linspace(0, 1, size, dtype=torch.float64),
                                torch.linspace(0, 1, size, dtype=torch.float64), indexing='ij')
    plane = 0.03 + 0.8 * cols + 0.12 * torch.sin(2 * math.pi * rows) ** 2
    return plane.expand(batch, channels, size, size).clone()


def noisy(scene, gain, read, seed=0):
    """scene + N(0, gain·b + read²), drawn here independently of the plugin's add_noise."""
    generator = torch.Generator().manual_seed(seed)
    variance = gain[..., None, None].double() * scene + read[..., None, None].double() ** 2
    return scene + variance.sqrt() * torch.randn(scene.shape, generator=generator, dtype=scene.dtype)


def test_recovers_gain_and_read_per_sample_and_channel():
    scene = smooth_scene()
    estimate = estimate_noise(noisy(scene, GAIN, READ).float(), linear_light=False)
    assert estimate['gain'].shape == estimate['read_sigma'].shape == (2, 3)
    mean_sigma = (GAIN * 0.49 + READ**2).sqrt()  # the scene's mean signal is about 0.49
    estimated_sigma = (estimate['gain'] * 0.49 + estimate['read_sigma']**2).sqrt()
    assert torch.allclose(estimated_sigma, mean_sigma, rtol=0.05)
    strong = GAIN * 0.49 > READ**2  # where shot noise dominates, its gain is what is measured
    assert torch.allclose(estimate['gain'][strong], GAIN[strong], rtol=0.15)


def test_linear_light_noise_seen_through_srgb_encoding():
    scene = smooth_scene(batch=1)
    gain, read = GAIN[:1], READ[:1]
    encoded = linear_to_srgb(noisy(scene, gain, read, seed=1).clamp(0, 1))
    estimate = estimate_noise(encoded.float(), linear_light=True)
    estimated_sigma = (estimate['gain'] * 0.49 + estimate['read_sigma']**2).sqrt()
    assert torch.allclose(estimated_sigma, (gain * 0.49 + read**2).sqrt(), rtol=0.06)


def test_noiseless_smooth_image_has_almost_no_noise():
    estimate = estimate_noise(smooth_scene().float(), linear_light=False)
    assert (estimate['gain'] * 0.49 + estimate['read_sigma']**2).sqrt().max() < 2e-4  # float32 rounding


def test_clipped_pixels_do_not_narrow_the_estimate():
    """Half the image is black: its noise, clipped at 0, would halve the read noise found there."""
    scene = smooth_scene(batch=1, channels=1)
    scene[..., :, :96] = 0
    read = torch.tensor([[0.01]])
    x = noisy(scene, torch.zeros(1, 1), read, seed=2).clamp(0, 1).float()
    estimate = estimate_noise(x, linear_light=False)
    assert float(estimate['read_sigma']) == pytest.approx(0.01, rel=0.08)


def test_too_small_or_wrong_shape_is_an_error():
    with pytest.raises(ValueError, match=r'at least 8x8, got \(1, 3, 4, 4\)'):
        estimate_noise(torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r'\(B, C, H, W\)'):
        estimate_noise(torch.rand(3, 16, 16))
