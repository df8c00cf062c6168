"""Converse2D module, ConverseBlock(AlphaVariant) and KernelConverse (archs/converse_arch.py)."""
import math

import numpy as np
import pytest
import torch
from scipy.signal import convolve2d
from torch.nn import functional as F

from newbp_plugin.archs.converse_arch import (Converse2D, ConverseBlock, ConverseBlockAlphaVariant, KernelConverse,
                                              convolution_power, regularisation_weight)
from newbp_plugin.kernels import build_kernel
from newbp_plugin.ops import crosstalk
from newbp_plugin.ops.converse import converse2d_printed

# asymmetric 5x5 CMOS crosstalk: a wrong flip or centre shows
ASYMMETRIC = {'type': 'crosstalk', 'left': 0.12, 'right': 0.03, 'up': 0.08, 'down': 0.01, 'diagonal': 0.01,
              'second_ring': 0.004, 'size': 5}


def perturbed(module, seed=0, std=0.2):
    """``module`` with every parameter shifted by noise: no branch left at zero (alphas start at 0)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(std * torch.randn_like(p))
    return module


def smooth_image(batch, channels, height, width, dtype=torch.float64):
    """Periodic, band-limited test image in [0.1, 0.9]: a few low-frequency sinusoids per channel."""
    rows = torch.arange(height, dtype=dtype)[:, None] / height
    cols = torch.arange(width, dtype=dtype)[None, :] / width
    images = []
    for index in range(batch * channels):
        phase = 0.7 * index
        images.append(0.5 + 0.2 * torch.sin(2 * math.pi * (2 * rows + cols) + phase) +
                      0.15 * torch.cos(2 * math.pi * (5 * cols - 4 * rows) - phase))
    return torch.stack(images).reshape(batch, channels, height, width)


def psnr(a, b):
    return 10 * torch.log10(1 / (a - b).square().mean()).item()


def without_gradient(module):
    return [name for name, p in module.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]


# ------------------------------------------------------------------------------ Converse2D


@pytest.mark.parametrize('scale', [1, 2, 3])
@pytest.mark.parametrize('padding, padding_mode', [(0, 'circular'), (2, 'circular'), (2, 'replicate'),
                                                   (3, 'reflect'), (1, 'zeros')])
def test_converse2d_equals_seed_formula_float64(scale, padding, padding_mode):
    """pad -> printed closed form (λ = sigmoid(bias - 9) + eps, X0 = nearest upsampling) -> crop."""
    module = Converse2D(4, 4, 3, scale=scale, padding=padding, padding_mode=padding_mode).double()
    with torch.no_grad():
        module.bias.normal_(0, 3)
    x = torch.rand(2, 4, 7, 6, dtype=torch.float64)

    torch_mode = 'constant' if padding_mode == 'zeros' else padding_mode
    padded = F.pad(x, [padding] * 4, mode=torch_mode) if padding else x
    lam = torch.sigmoid(module.bias - 9.0) + 1e-5
    x0 = F.interpolate(padded, scale_factor=scale, mode='nearest')
    full = converse2d_printed(padded, module.weight, lam, scale, x0=x0)
    border = padding * scale
    expected = full[..., border:full.shape[-2] - border, border:full.shape[-1] - border]

    out = module(x)
    assert out.shape == (2, 4, 7 * scale, 6 * scale)
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)


def test_converse2d_parameters_are_the_seeds():
    """Names and shapes of ConverseNet's Converse2D (its checkpoints load); softmax-initialised kernels."""
    module = Converse2D(5, 5, 3)
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == {'weight': (1, 5, 3, 3),
                                                                          'bias': (1, 5, 1, 1)}
    assert (module.weight > 0).all()
    torch.testing.assert_close(module.weight.sum((-2, -1)), torch.ones(1, 5))
    assert (module.bias == 0).all()
    torch.testing.assert_close(regularisation_weight(module.bias, module.eps),
                               torch.full((1, 5, 1, 1), 1 / (1 + math.exp(9)) + 1e-5))
    module.load_state_dict({'weight': torch.rand(1, 5, 3, 3), 'bias': torch.rand(1, 5, 1, 1)}, strict=True)


def test_converse2d_arguments_are_checked():
    with pytest.raises(ValueError, match='depthwise'):
        Converse2D(4, 8, 3)
    with pytest.raises(ValueError, match=r"padding_mode 'mirror' is not one of \('zeros', 'reflect'"):
        Converse2D(4, 4, 3, padding_mode='mirror')
    with pytest.raises(ValueError, match="padding_mode 'constant' is F.pad's name; the plugin's border vocabulary "
                       "calls it 'zeros'"):
        Converse2D(4, 4, 3, padding_mode='constant')


def test_converse2d_gradients_reach_weight_and_lambda():
    module = Converse2D(3, 3, 3)
    module(torch.rand(2, 3, 9, 11)).square().mean().backward()
    assert without_gradient(module) == []


# --------------------------------------------------------------------------- ConverseBlock


@pytest.mark.parametrize('block_class', [ConverseBlock, ConverseBlockAlphaVariant])
@pytest.mark.parametrize('in_channels, out_channels, scale', [(4, 4, 1), (4, 6, 1), (6, 4, 1), (4, 4, 2), (3, 5, 2)])
def test_block_shapes_and_gradients(block_class, in_channels, out_channels, scale):
    block = perturbed(block_class(in_channels, out_channels, scale=scale))
    x = torch.rand(2, in_channels, 9, 7)
    out = block(x)
    assert out.shape == (2, out_channels, 9 * scale, 7 * scale)
    out.square().mean().backward()
    assert without_gradient(block) == []


def test_block_norms_are_sized_by_their_inputs():
    """The seed sized the second LayerNorm by in_channels; it normalises the out_channels features."""
    block = ConverseBlock(4, 6)
    assert block.conv1[0].weight.shape == (4, )
    assert block.conv2[0].weight.shape == (6, )
    assert isinstance(block.shortcut[0], torch.nn.Conv2d) and block.shortcut[0].weight.shape == (6, 4, 1, 1)


def test_block_with_equal_channels_has_the_seeds_keys():
    """in == out, scale 1: identity shortcut, no extra keys (seed checkpoints load)."""
    seed_keys = ['conv1.0.weight', 'conv1.0.bias', 'conv1.1.weight', 'conv1.1.bias', 'conv1.3.weight', 'conv1.3.bias',
                 'conv1.5.weight', 'conv1.5.bias', 'conv2.0.weight', 'conv2.0.bias', 'conv2.1.weight', 'conv2.1.bias',
                 'conv2.3.weight', 'conv2.3.bias']
    assert list(ConverseBlock(4, 4).state_dict()) == seed_keys
    assert sorted(ConverseBlockAlphaVariant(4, 4).state_dict()) == sorted(seed_keys + ['alpha1', 'alpha2'])


def test_block_equals_its_definition():
    """x = shortcut(x) + conv1(x); x = x + conv2(x), recomputed from the submodules."""
    block = perturbed(ConverseBlock(4, 6, scale=2)).double()
    x = torch.rand(2, 4, 5, 6, dtype=torch.float64)
    first = F.interpolate(block.shortcut[0](x), scale_factor=2, mode='nearest') + block.conv1(x)
    torch.testing.assert_close(block(x), first + block.conv2(first))


def test_alpha_variant_starts_as_its_shortcut():
    x = torch.rand(2, 4, 8, 8)
    assert torch.equal(ConverseBlockAlphaVariant(4, 4)(x), x)
    block = ConverseBlockAlphaVariant(4, 6)
    torch.testing.assert_close(block(x), block.shortcut(x))


# -------------------------------------------------------------------------- KernelConverse


def test_convolution_power_equals_full_convolution():
    kernel = torch.as_tensor(build_kernel(ASYMMETRIC), dtype=torch.float64)
    expected = convolve2d(convolve2d(kernel.numpy(), kernel.numpy()), kernel.numpy())
    np.testing.assert_allclose(convolution_power(kernel, 3).numpy(), expected, atol=1e-15)
    per_sample = torch.stack([kernel, kernel.T]).reshape(2, 1, 5, 5).expand(2, 3, 5, 5)
    squared = convolution_power(per_sample, 2)
    assert squared.shape == (2, 3, 9, 9)
    np.testing.assert_allclose(squared[1, 2].numpy(), convolve2d(kernel.T.numpy(), kernel.T.numpy()), atol=1e-15)


@pytest.mark.parametrize('power', [1, 2])
def test_kernel_converse_with_tiny_lambda_inverts_crosstalk(power):
    """Circular crosstalk of a smooth image, applied ``power`` times, undone to > 40 dB."""
    kernel = torch.as_tensor(build_kernel(ASYMMETRIC), dtype=torch.float64)
    clean = smooth_image(2, 3, 32, 28)
    degraded = clean
    for _ in range(power):
        degraded = crosstalk(degraded, kernel, padding_mode='circular')
    inverse = KernelConverse(3, kernel=kernel, kernel_power=power, padding=0, padding_mode='circular',
                             init_lambda=1e-7, eps=1e-9).double()
    assert psnr(degraded, clean) < 35
    assert psnr(inverse(degraded), clean) > 40


def test_kernel_converse_per_sample_kernels():
    """Two samples, two kernels: each is inverted with its own (the other kernel does worse)."""
    kernels = torch.stack([torch.as_tensor(build_kernel(ASYMMETRIC), dtype=torch.float64),
                           torch.as_tensor(build_kernel({'type': 'gaussian', 'sigma': 0.6}), dtype=torch.float64)])
    kernels = kernels[:, None].expand(2, 3, 5, 5)
    clean = smooth_image(2, 3, 24, 24)
    degraded = crosstalk(clean, kernels, padding_mode='circular')
    inverse = KernelConverse(3, padding=0, padding_mode='circular', init_lambda=1e-7, eps=1e-9).double()
    out = inverse(degraded, kernel=kernels)
    for index in range(2):
        alone = inverse(degraded[index:index + 1], kernel=kernels[index])
        torch.testing.assert_close(out[index:index + 1], alone)
        assert psnr(out[index], clean[index]) > 40
    assert psnr(inverse(degraded, kernel=kernels.flip(0))[0], clean[0]) < 40


def test_kernel_converse_lambda_and_gradients():
    kernel = torch.as_tensor(build_kernel(ASYMMETRIC)).requires_grad_()
    inverse = KernelConverse(3, init_lambda=0.01)
    torch.testing.assert_close(regularisation_weight(inverse.bias, inverse.eps), torch.full((1, 3, 1, 1), 0.01))
    assert [name for name, _ in inverse.named_parameters()] == ['bias']
    out = inverse(torch.rand(2, 3, 13, 10), kernel=kernel)
    assert out.shape == (2, 3, 13, 10)
    out.square().mean().backward()
    assert without_gradient(inverse) == [] and kernel.grad.abs().sum() > 0


def test_kernel_converse_fixed_kernel_is_a_buffer():
    inverse = KernelConverse(3, kernel=ASYMMETRIC)
    assert 'kernel' in inverse.state_dict() and 'kernel' not in dict(inverse.named_parameters())
    assert inverse(torch.rand(1, 3, 9, 9)).shape == (1, 3, 9, 9)


@pytest.mark.parametrize('kwargs, call_kernel, match', [
    ({}, None, 'no kernel'),
    (dict(kernel={'type': 'cross_channel', 'mix': [[0.9, 0.1, 0], [0.1, 0.8, 0.1], [0, 0.1, 0.9]]}), None,
     'mixes channels'),
    (dict(kernel={'type': 'crosstalk', 'left': {'uniform': [0, 0.05]}}), None, 'random'),
    (dict(kernel=torch.ones(4, 3, 3)), None, 'does not fit'),
    (dict(kernel=torch.ones(4, 4)), None, 'odd'),
    (dict(init_lambda=2.0), None, 'init_lambda'),
    (dict(kernel_power=0), None, 'kernel_power'),
    (dict(padding_mode='constant'), None, "calls it 'zeros'"),
    ({}, torch.ones(1, 3, 3, 3, 3) / 27, 'mixes channels'),
])
def test_kernel_converse_bad_arguments(kwargs, call_kernel, match):
    with pytest.raises(ValueError, match=match):
        KernelConverse(3, **kwargs)(torch.rand(1, 3, 8, 8), kernel=call_kernel)
