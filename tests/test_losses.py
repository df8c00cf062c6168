"""Losses against hand computations."""
import math

import numpy as np
import pytest
import torch
from basicsr.losses import build_loss
from basicsr.utils.color_util import rgb2ycbcr_pt
from scipy.signal import convolve2d

from tests.reference import scipy_crosstalk


def _psnr_db(a, b, eps=1e-8):
    """PSNR in dB of images in [0, 1], per image, with the loss's epsilon on the MSE."""
    mse = ((a - b) ** 2).reshape(a.shape[0], -1).mean(axis=1)
    return -10 * np.log10(mse + eps)


def test_psnr_loss_is_minus_mean_psnr():
    rng = np.random.default_rng(0)
    target = rng.uniform(size=(3, 3, 8, 8))
    pred = target + rng.normal(scale=[[[[0.01]]], [[[0.05]]], [[[0.1]]]], size=target.shape)
    loss = build_loss({'type': 'PSNRLoss', 'loss_weight': 0.5})
    value = loss(torch.tensor(pred), torch.tensor(target)).item()
    assert value == pytest.approx(-0.5 * _psnr_db(pred, target).mean(), rel=1e-6)
    per_image = build_loss({'type': 'PSNRLoss', 'reduction': 'none'})(torch.tensor(pred), torch.tensor(target))
    np.testing.assert_allclose(per_image.numpy(), -_psnr_db(pred, target), rtol=1e-6)
    summed = build_loss({'type': 'PSNRLoss', 'reduction': 'sum'})(torch.tensor(pred), torch.tensor(target))
    assert summed.item() == pytest.approx(-_psnr_db(pred, target).sum(), rel=1e-6)


def test_psnr_loss_lower_is_better_and_perfect_batch_is_finite():
    loss = build_loss({'type': 'PSNRLoss'})
    target = torch.rand(2, 3, 8, 8)
    assert loss(target + 0.01, target) < loss(target + 0.1, target)
    perfect = loss(target.clone(), target)
    assert torch.isfinite(perfect) and perfect.item() == pytest.approx(10 * math.log10(1e-8))
    pred = target.clone().requires_grad_()
    loss(pred, target).backward()
    assert torch.isfinite(pred.grad).all()


def test_psnr_loss_toY_matches_basicsr_luma():
    rng = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 8, 8, generator=rng)
    pred = (target + 0.05 * torch.randn(2, 3, 8, 8, generator=rng)).clamp(0, 1)
    expected = _psnr_db(rgb2ycbcr_pt(pred, y_only=True).numpy(), rgb2ycbcr_pt(target, y_only=True).numpy())
    value = build_loss({'type': 'PSNRLoss', 'toY': True})(pred, target).item()
    assert value == pytest.approx(-expected.mean(), rel=1e-5)
    with pytest.raises(ValueError, match=r'needs RGB \(B, 3, H, W\) input'):
        build_loss({'type': 'PSNRLoss', 'toY': True})(pred[:, :1], target[:, :1])


def test_psnr_loss_bad_reduction_names_it():
    with pytest.raises(ValueError, match="unsupported reduction 'max'"):
        build_loss({'type': 'PSNRLoss', 'reduction': 'max'})


ASYMMETRIC = np.array([[0.0, 0.0, 0.0], [0.1, 0.6, 0.3], [0.0, 0.0, 0.0]])


def test_redegradation_loss_against_scipy_reblur():
    rng = np.random.default_rng(1)
    pred = rng.uniform(size=(1, 1, 12, 12))
    lq = rng.uniform(size=(1, 1, 12, 12))
    reblur = convolve2d(pred[0, 0], ASYMMETRIC, mode='same', boundary='fill')
    loss = build_loss({'type': 'RedegradationLoss', 'padding_mode': 'zeros', 'loss_weight': 2.0,
                       'linear_light': False})
    value = loss(torch.tensor(pred), torch.tensor(lq), torch.tensor(ASYMMETRIC)).item()
    assert value == pytest.approx(2.0 * np.abs(reblur - lq[0, 0]).mean(), rel=1e-10)


def test_redegradation_loss_ignores_residuals_within_noise_margin():
    rng = np.random.default_rng(2)
    clean = torch.tensor(rng.uniform(size=(2, 3, 16, 16)))
    kernel = torch.tensor(ASYMMETRIC)
    sigma = 0.01
    lq = (scipy_crosstalk(clean.numpy(), ASYMMETRIC) + rng.uniform(-sigma, sigma, size=clean.shape))
    lq = torch.tensor(lq)
    loss = build_loss({'type': 'RedegradationLoss', 'margin': 1.0, 'sigma': sigma, 'linear_light': False})
    assert loss(clean, lq, kernel).item() == 0.0
    assert loss(clean + 0.1, lq, kernel).item() > 0
    # per-sample sigma from the batch overrides the constant: a tight second sample costs what it exceeds
    tight = build_loss({'type': 'RedegradationLoss', 'margin': 1.0, 'sigma': sigma / 10, 'linear_light': False})
    assert tight(clean, lq, kernel).item() > 0
    assert tight(clean, lq, kernel, sigma=torch.tensor([sigma, sigma]).reshape(2, 1, 1, 1)).item() == 0.0
    per_sample = torch.tensor([sigma, sigma / 10], dtype=torch.float64).reshape(2, 1, 1, 1)
    excess = np.clip(np.abs(scipy_crosstalk(clean.numpy()[1:], ASYMMETRIC) - lq.numpy()[1:]) - sigma / 10, 0, None)
    expected = (excess / (sigma / 10)).sum() / clean.numel()
    assert tight(clean, lq, kernel, sigma=per_sample).item() == pytest.approx(expected, rel=1e-10)


def test_redegradation_loss_takes_per_sample_channel_mixing_kernels():
    # (B, C, C, k, k), as CrosstalkDataset collates cross_channel specs: the loss crashed on them.
    rng = np.random.default_rng(4)
    pred = rng.uniform(size=(2, 3, 10, 11))
    lq = rng.uniform(size=pred.shape)
    kernels = rng.uniform(size=(2, 3, 3, 3, 3)) / 27
    loss = build_loss({'type': 'RedegradationLoss', 'linear_light': False})
    reblurred = scipy_crosstalk(pred, kernels)
    value = loss(torch.tensor(pred), torch.tensor(lq), torch.tensor(kernels)).item()
    assert value == pytest.approx(np.abs(reblurred - lq).mean(), rel=1e-10)


def test_redegradation_loss_in_linear_light_matches_the_dataset():
    """The data degrade in linear light: the clean image re-degraded that way explains X exactly."""
    from tests.test_sensor import degrade_images
    clean = np.random.default_rng(3).uniform(size=(1, 3, 16, 16)).astype(np.float32)
    lq = degrade_images(clean, ASYMMETRIC, {'type': 'none', 'clip': False}, linear_light=True, context=0)
    loss = build_loss({'type': 'RedegradationLoss'})
    kernel = torch.tensor(ASYMMETRIC, dtype=torch.float32)
    assert loss(torch.tensor(clean), torch.tensor(lq), kernel).item() < 1e-6
    encoded = build_loss({'type': 'RedegradationLoss', 'linear_light': False})
    assert encoded(torch.tensor(clean), torch.tensor(lq), kernel).item() > 1e-3


def test_precompensation_regularizer_hand_values():
    s = torch.tensor([[[[-0.5, 0.5], [1.0, 2.0]]]])
    reg = build_loss({'type': 'PrecompensationRegularizer', 'range_weight': 1.0, 'tv_weight': 0.5})
    out_of_range = (0.5 + 0 + 0 + 1.0) / 4
    tv = (abs(0.5 + 0.5) + abs(2.0 - 1.0)) / 2 + (abs(1.0 + 0.5) + abs(2.0 - 0.5)) / 2
    assert reg(s).item() == pytest.approx(out_of_range + 0.5 * tv)
    assert build_loss({'type': 'PrecompensationRegularizer'})(torch.full((1, 3, 4, 4), 0.5)).item() == 0.0
    with pytest.raises(ValueError, match='need low < high'):
        build_loss({'type': 'PrecompensationRegularizer', 'low': 1, 'high': 0})


def test_redegradation_loss_with_the_batch_noise_level_works_in_linear_light():
    """sigma: noise: |K * linear(Ŷ) - linear(X)| / σ, σ the batch's level; the margin frees the noise band."""
    from newbp_plugin.ops.color import srgb_to_linear
    rng = np.random.default_rng(5)
    clean = torch.tensor(rng.uniform(0.05, 0.95, size=(2, 3, 16, 16)))
    sigma = torch.tensor([0.01, 0.002], dtype=torch.float64).reshape(2, 1, 1, 1)
    light = scipy_crosstalk(srgb_to_linear(clean).numpy(), ASYMMETRIC)
    noise = rng.uniform(-1, 1, size=clean.shape) * sigma.numpy()
    lq = torch.tensor(np.where(light + noise <= 0.0031308, 12.92 * (light + noise),
                               1.055 * np.clip(light + noise, 0.0031308, None) ** (1 / 2.4) - 0.055))
    kernel = torch.tensor(ASYMMETRIC)
    loss = build_loss({'type': 'RedegradationLoss', 'margin': 1.0, 'sigma': 'noise'})
    assert loss(clean, lq, kernel, sigma).item() < 1e-9  # the clean image explains X within the noise
    plain = build_loss({'type': 'RedegradationLoss', 'sigma': 'noise'})
    expected = (np.abs(light - srgb_to_linear(lq).numpy()) / sigma.numpy()).mean()
    assert plain(clean, lq, kernel, sigma).item() == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="sigma: noise needs the batch's noise level"):
        loss(clean, lq, kernel)
    with pytest.raises(ValueError, match="sigma > 0 or 'noise', got margin=0.0, sigma='nois'"):
        build_loss({'type': 'RedegradationLoss', 'sigma': 'nois'})
