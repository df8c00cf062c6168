"""Reverse-convolution modules (seed 004: "Reverse Convolution and Its Applications to Image
Restoration", arXiv 2508.09824, ConverseNet), computed with the stable
:func:`newbp_plugin.ops.converse2d`.

- :class:`Converse2D`: the learnable depthwise operator of ConverseNet (same constructor and
  parameter names, hence ConverseNet checkpoints load).
- :class:`ConverseBlock`, :class:`ConverseBlockAlphaVariant`: ConverseNet's blocks.
- :class:`KernelConverse`: the non-blind operator, driven by the known sensor kernel K.

Kernels follow the plugin's one convention (:mod:`newbp_plugin.sensor.layout`). These modules
are parts of networks, not networks, so none is registered in ARCH_REGISTRY.
"""
import math

import torch
from torch import nn
from torch.nn import functional as F

from newbp_plugin.archs.layer_norm import LayerNorm2d
from newbp_plugin.ops import converse2d, crosstalk
from newbp_plugin.ops.newbp import PADDING_MODES, TORCH_PAD_MODES
from newbp_plugin.sensor.layout import is_channel_mixing, physical_kernel, select_kernel

LAMBDA_OFFSET = 9.0  # λ = sigmoid(bias - LAMBDA_OFFSET) + eps (seed 004)


def regularisation_weight(bias, eps):
    """λ = sigmoid(bias - 9) + eps, the seed's parametrisation: λ ∈ (eps, 1 + eps), ≈ 1.3e-4 at bias 0."""
    return torch.sigmoid(bias - LAMBDA_OFFSET) + eps


def _check_pad(owner, padding, padding_mode):
    if padding_mode == 'constant':
        raise ValueError(f"{owner}: padding_mode 'constant' is F.pad's name; the plugin's border vocabulary "
                         f"calls it 'zeros' ({', '.join(PADDING_MODES)})")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f'{owner}: padding_mode {padding_mode!r} is not one of {PADDING_MODES}')
    if padding is not None and (isinstance(padding, bool) or not isinstance(padding, int) or padding < 0):
        raise ValueError(f'{owner}: padding must be an integer >= 0, got {padding!r}')


def _pad(x, padding, padding_mode):
    return F.pad(x, [padding] * 4, mode=TORCH_PAD_MODES[padding_mode]) if padding > 0 else x


def _crop(x, border):
    return x[..., border:x.shape[-2] - border, border:x.shape[-1] - border] if border > 0 else x


class Converse2D(nn.Module):
    """Learnable depthwise reverse convolution (seed 004), per channel c::

        out_c = crop( argmin_X ||pad(x_c) - (X ⊗ K_c)↓s||² + λ_c ||X - X0_c||² )

    with X0 the nearest-neighbour upsampling of ``pad(x_c)``, circular boundary on the padded
    grid, ``λ_c = sigmoid(bias_c - 9) + eps``. Same constructor and parameters as ConverseNet's
    ``Converse2D`` (ConverseNet checkpoints load); the closed form is evaluated by the stable
    :func:`~newbp_plugin.ops.converse2d`, which agrees with the printed formula in float64.

    Args:
        in_channels (int): C.
        out_channels (int): must equal ``in_channels`` (the operator is depthwise).
        kernel_size (int): side k of the learned kernels (softmax-initialised: positive, sum 1).
        scale (int): upsampling factor s in {1, 2, 3, 4}. Default: 1.
        padding (int): pixels added on each side before the solve, cropped (times s) after;
            the seed recommends ``kernel_size - 1``. Default: 2.
        padding_mode (str): the border, one of 'zeros', 'reflect', 'replicate', 'circular'.
            Default: 'circular'.
        eps (float): lower bound of λ. Default: 1e-5.

    Parameters:
        weight: (1, C, k, k) kernels. bias: (1, C, 1, 1), λ's pre-activation (0 at init).

    Shape:
        input (N, C, H, W) -> output (N, C, H·s, W·s).
    """

    def __init__(self, in_channels, out_channels, kernel_size, scale=1, padding=2, padding_mode='circular',
                 eps=1e-5):
        super().__init__()
        if out_channels != in_channels:
            raise ValueError(f'Converse2D is depthwise: out_channels ({out_channels}) must equal in_channels '
                             f'({in_channels})')
        _check_pad('Converse2D', padding, padding_mode)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.scale = scale
        self.padding = padding
        self.padding_mode = padding_mode
        self.eps = eps
        logits = torch.randn(1, in_channels, kernel_size * kernel_size)
        self.weight = nn.Parameter(logits.softmax(dim=-1).view(1, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(1, in_channels, 1, 1))

    def extra_repr(self):
        return (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, scale={self.scale}, '
                f'padding={self.padding}, padding_mode={self.padding_mode!r}, eps={self.eps}')

    def forward(self, x):
        padded = _pad(x, self.padding, self.padding_mode)
        out = converse2d(padded, self.weight, regularisation_weight(self.bias, self.eps), scale=self.scale)
        return _crop(out, self.padding * self.scale)


class ConverseBlock(nn.Module):
    """ConverseNet's block: two pre-normalised residual branches (seed 004)::

        x = shortcut(x) + conv1(x)    conv1: LN -> 1x1 (in -> 2 out) -> GELU -> Converse2D -> GELU -> 1x1 (-> out)
        x = x + conv2(x)              conv2: LN -> 1x1 (out -> 2 out) -> GELU -> 1x1 (-> out)

    Two latent bugs of the seed are fixed: its second LayerNorm is sized by ``in_channels``
    (it normalises the ``out_channels`` features of the first branch), and its first residual
    adds the input unchanged, which fails when ``in_channels != out_channels`` or ``scale > 1``.
    Here the second LayerNorm has ``out_channels`` and the shortcut is a 1x1 projection
    (in -> out, when they differ) followed by nearest upsampling (when scale > 1), the
    identity otherwise; with in == out and scale 1 the keys are the seed's.

    Args:
        in_channels (int): channels of the input.
        out_channels (int): channels of the output.
        kernel_size (int): kernel side of the Converse2D. Default: 3.
        scale (int): upsampling factor of the Converse2D (and of the shortcut). Default: 1.
        padding (int): padding of the Converse2D. Default: 2.
        padding_mode (str): padding mode of the Converse2D. Default: 'replicate'.
        eps (float): lower bound of the Converse2D's λ. Default: 1e-5.

    Shape:
        input (N, in_channels, H, W) -> output (N, out_channels, H·scale, W·scale).
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, scale=1, padding=2, padding_mode='replicate',
                 eps=1e-5):
        super().__init__()
        hidden = 2 * out_channels
        self.conv1 = nn.Sequential(
            LayerNorm2d(in_channels, eps=1e-5), nn.Conv2d(in_channels, hidden, 1), nn.GELU(),
            Converse2D(hidden, hidden, kernel_size, scale=scale, padding=padding, padding_mode=padding_mode, eps=eps),
            nn.GELU(), nn.Conv2d(hidden, out_channels, 1))
        self.conv2 = nn.Sequential(
            LayerNorm2d(out_channels, eps=1e-5), nn.Conv2d(out_channels, hidden, 1), nn.GELU(),
            nn.Conv2d(hidden, out_channels, 1))
        shortcut = []
        if in_channels != out_channels:
            shortcut.append(nn.Conv2d(in_channels, out_channels, 1))
        if scale != 1:
            shortcut.append(nn.Upsample(scale_factor=scale, mode='nearest'))
        self.shortcut = nn.Sequential(*shortcut) if shortcut else nn.Identity()

    def forward(self, x):
        x = self.shortcut(x) + self.conv1(x)
        return x + self.conv2(x)


class ConverseBlockAlphaVariant(ConverseBlock):
    """:class:`ConverseBlock` whose two branches are scaled by learned per-channel ``alpha1``,
    ``alpha2`` (1, out_channels, 1, 1), zero at initialisation: a new block is its shortcut
    (the identity when in == out and scale 1), so inserting it into a trained network keeps
    that network's function at the start. Same arguments and shapes as ConverseBlock.
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, scale=1, padding=2, padding_mode='replicate',
                 eps=1e-5):
        super().__init__(in_channels, out_channels, kernel_size, scale, padding, padding_mode, eps)
        self.alpha1 = nn.Parameter(torch.zeros(1, out_channels, 1, 1))
        self.alpha2 = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x):
        x = self.shortcut(x) + self.alpha1 * self.conv1(x)
        return x + self.alpha2 * self.conv2(x)


# ------------------------------------------------------------------ known sensor kernels


def convolution_power(kernel, power):
    """K ⊛ K ⊛ ... (``power`` factors): the PSF of applying K ``power`` times, full size.

    Each factor is a true convolution (:func:`~newbp_plugin.ops.crosstalk` of the zero-padded
    PSF), so gradients reach K.

    Args:
        kernel (Tensor): (kh, kw), (C, kh, kw) or (B, C, kh, kw) depthwise PSF.
        power (int): p >= 1.

    Returns:
        Tensor: (..., p (kh - 1) + 1, p (kw - 1) + 1), the leading dims of ``kernel``.
    """
    lead, (kh, kw) = kernel.shape[:-2], kernel.shape[-2:]
    factor = kernel.reshape(-1, kh, kw)  # (N, kh, kw): one PSF per channel of a 1-sample image
    result = kernel.reshape(1, -1, kh, kw)
    for _ in range(power - 1):
        result = crosstalk(F.pad(result, (kw // 2, kw // 2, kh // 2, kh // 2)), factor)
    return result.reshape(*lead, *result.shape[-2:])


class KernelConverse(nn.Module):
    """Non-blind reverse convolution: the regularised inverse of the *known* sensor kernel.

    Per channel c, with K^p = K ⊛ ... ⊛ K (``kernel_power`` = p factors)::

        out_c = crop( argmin_X ||pad(x_c) - K^p_c ⊗ X||² + λ_c ||X - pad(x_c)||² )

    (circular boundary on the padded grid, ``λ_c = sigmoid(bias_c - 9) + eps`` learned, the
    parametrisation of :class:`Converse2D`). With p = 1 and small λ it undoes the crosstalk
    ``x = K * y``; p = 2 undoes it twice (the skip under a NewBP head, which applies K again).

    Args:
        channels (int): C, the image channels.
        kernel (dict | str | Tensor | ndarray | None): a fixed kernel (spec or PSF, see
            :func:`physical_kernel`), stored as the buffer ``kernel``; None: given per call.
            Default: None.
        kernel_power (int): p, how many times K is inverted. Default: 1.
        padding (int | None): pixels added on each side before the solve; None: the side of
            K^p minus 1 (the seed's recommendation). Default: None.
        padding_mode (str): the border, one of 'zeros', 'reflect', 'replicate', 'circular'.
            Default: 'replicate'.
        init_lambda (float | None): λ at initialisation, in (eps, 1 + eps); larger values tame
            the noise amplification at the kernel's weak frequencies (the gain is at most
            1 / (2√λ)). None: the seed's (bias 0, λ ≈ 1.33e-4). Default: None.
        eps (float): lower bound of λ. Default: 1e-5.

    Parameters:
        bias: (1, C, 1, 1), λ's pre-activation.

    Shape:
        input (N, C, H, W), kernel per call (kh, kw), (C, kh, kw) or (N, C, kh, kw) (depthwise
        only: a channel-mixing kernel needs a C×C solve per frequency, not done here)
        -> output (N, C, H, W).
    """

    def __init__(self, channels, kernel=None, kernel_power=1, padding=None, padding_mode='replicate',
                 init_lambda=None, eps=1e-5):
        super().__init__()
        _check_pad('KernelConverse', padding, padding_mode)
        if isinstance(kernel_power, bool) or not isinstance(kernel_power, int) or kernel_power < 1:
            raise ValueError(f'KernelConverse: kernel_power must be an integer >= 1, got {kernel_power!r}')
        if init_lambda is not None and not eps < init_lambda < 1 + eps:
            raise ValueError(f'KernelConverse: init_lambda must lie in (eps, 1 + eps) = ({eps}, {1 + eps}), '
                             f'got {init_lambda!r}')
        self.channels = channels
        self.kernel_power = kernel_power
        self.padding = padding
        self.padding_mode = padding_mode
        self.eps = eps
        kernel = physical_kernel(kernel, channels, 'KernelConverse')
        if kernel is not None:
            self._check_depthwise(kernel)
        self.register_buffer('kernel', kernel)
        init_bias = 0.0 if init_lambda is None else LAMBDA_OFFSET + math.log((init_lambda - eps) /
                                                                            (1 + eps - init_lambda))
        self.bias = nn.Parameter(torch.full((1, channels, 1, 1), init_bias))

    def extra_repr(self):
        return (f'{self.channels}, kernel_power={self.kernel_power}, padding={self.padding}, '
                f'padding_mode={self.padding_mode!r}, eps={self.eps}')

    @staticmethod
    def _check_depthwise(kernel):
        if is_channel_mixing(kernel):
            raise ValueError(f'KernelConverse: the kernel {tuple(kernel.shape)} mixes channels; the inverse is '
                             'depthwise only (ops.converse2d). Use a per-channel kernel, or no KernelConverse '
                             '(NewBPNAFNet: skip: input or none, entrance_converse: false).')

    def forward(self, x, kernel=None):
        kernel = select_kernel(kernel, self.kernel, 'KernelConverse')
        self._check_depthwise(kernel)
        psf = convolution_power(kernel.to(torch.promote_types(x.dtype, torch.float32)), self.kernel_power)
        padding = max(psf.shape[-2:]) - 1 if self.padding is None else self.padding
        padded = _pad(x, padding, self.padding_mode)
        out = converse2d(padded, psf, regularisation_weight(self.bias, self.eps))
        return _crop(out, padding)
