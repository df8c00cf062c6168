"""NewBP crosstalk operator: the physical kernel K applied as a true convolution (seed 000).

``crosstalk(s, K)`` computes ``K * s`` (same-size output) and back-propagates with
the Jacobian transpose written out: a transposed convolution with K.
"""
import torch
import torch.nn.functional as F

from .fft_conv import FFTConvolution

PADDING_MODES = ('zeros', 'reflect', 'replicate', 'circular')
METHODS = ('auto', 'direct', 'fft')
# method='auto' takes the FFT path when kh * kw >= FFT_MIN_KERNEL_SIZE ** 2. Measured with
# `OMP_WAIT_POLICY=PASSIVE python benchmarks/ops.py` (forward + backward, B=4, 256x256,
# 2 CPU threads; benchmarks/results/ops.json): FFT speed-up at 9x9 0.92x (C=3) and 0.90x
# (C=32); at 11x11 1.82x and 0.89x (1.02x in an earlier run); above 13x13 > 1 for both.
FFT_MIN_KERNEL_SIZE = 11

_F_PAD_MODES = {'zeros': 'constant', 'reflect': 'reflect', 'replicate': 'replicate', 'circular': 'circular'}


class DirectConvolution(torch.autograd.Function):
    """'Valid' grouped true convolution; backward is the explicit Jacobian transpose.

    Forward: ``F.conv2d`` with the flipped PSF (PyTorch correlates). Backward:
    ``grad_padded = conv_transpose2d(grad_out, flipped K)`` (seed 000: ``Jᵀ g``) and
    ``grad_weight`` = correlation of the padded input with ``grad_out``.

    Args (forward):
        padded (Tensor): (N, G·ci, H + kh - 1, W + kw - 1) padded input.
        weight (Tensor): (G·co, ci, kh, kw) PSFs, odd sizes, not flipped.
        groups (int): G.

    Returns:
        Tensor: (N, G·co, H, W).
    """

    @staticmethod
    def forward(ctx, padded, weight, groups):
        ctx.groups = groups
        ctx.save_for_backward(padded if ctx.needs_input_grad[1] else None, weight)
        return F.conv2d(padded, weight.flip((-2, -1)), groups=groups)

    @staticmethod
    def backward(ctx, grad_out):
        padded, weight = ctx.saved_tensors
        flipped = weight.flip((-2, -1))
        grad_padded = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_padded = F.conv_transpose2d(grad_out, flipped, groups=ctx.groups)
        if ctx.needs_input_grad[1]:
            grad_flipped = torch.nn.grad.conv2d_weight(padded, weight.shape, grad_out, groups=ctx.groups)
            grad_weight = grad_flipped.flip((-2, -1))
        return grad_padded, grad_weight, None


def crosstalk(x, kernel, padding_mode='zeros', cross_channel=False, method='auto'):
    """Apply the crosstalk kernel K to x as a true convolution: ``y = K * x``.

    K is a point-spread function centred at ``(kh // 2, kw // 2)``: a unit impulse
    in x becomes K in y. The output has the size of x; outside x the image is
    continued by ``padding_mode``. Float16/bfloat16 inputs are computed in float32.

    Args:
        x (Tensor): (B, C, H, W) image, float.
        kernel (Tensor | ndarray): odd-sized PSF, one of (kh, kw) shared by all
            channels, (C, kh, kw) per channel, (B, C, kh, kw) per sample, or with
            ``cross_channel=True`` (C, C, kh, kw): ``y_c = Σ_c' K[c, c'] * x_c'``.
            Moved to the device and dtype of x; gradients flow to it.
        padding_mode (str): one of 'zeros', 'reflect', 'replicate', 'circular'.
        cross_channel (bool): whether kernel is the full channel-mixing (C, C, kh, kw) one.
        method (str): 'direct' (spatial convolution), 'fft' (real FFTs) or 'auto'
            (FFT when kh * kw >= FFT_MIN_KERNEL_SIZE ** 2).

    Returns:
        Tensor: (B, C, H, W) in the dtype of x.
    """
    if padding_mode not in PADDING_MODES:
        raise ValueError(f'crosstalk: padding_mode {padding_mode!r} is not one of {PADDING_MODES}')
    if method not in METHODS:
        raise ValueError(f'crosstalk: method {method!r} is not one of {METHODS}')
    if not torch.is_tensor(x) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f'crosstalk: x must be a (B, C, H, W) float tensor, got {_describe(x)}')
    compute_dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    kernel = torch.as_tensor(kernel).to(device=x.device, dtype=compute_dtype)
    _check_kernel(kernel, x.shape, cross_channel)

    batch, channels, height, width = x.shape
    kh, kw = kernel.shape[-2:]
    padded = F.pad(x.to(compute_dtype), (kw // 2, kw // 2, kh // 2, kh // 2), mode=_F_PAD_MODES[padding_mode])
    # Every kernel layout as one grouped convolution (depthwise is the fastest direct layout).
    if kernel.dim() == 2:
        weight, groups = kernel.expand(channels, 1, kh, kw), channels
    elif kernel.dim() == 3:
        weight, groups = kernel.unsqueeze(1), channels
    elif cross_channel:
        weight, groups = kernel, 1
    else:
        padded = padded.reshape(1, batch * channels, *padded.shape[-2:])
        weight, groups = kernel.reshape(batch * channels, 1, kh, kw), batch * channels

    use_fft = method == 'fft' or (method == 'auto' and kh * kw >= FFT_MIN_KERNEL_SIZE**2)
    convolution = FFTConvolution if use_fft else DirectConvolution
    out = convolution.apply(padded, weight, groups)
    return out.reshape(batch, channels, height, width).to(x.dtype)


def _describe(value):
    """Shape and dtype of a tensor, or the type of anything else, for error messages."""
    if torch.is_tensor(value):
        return f'shape {tuple(value.shape)} {value.dtype}'
    return type(value).__name__


def _check_kernel(kernel, x_shape, cross_channel):
    """Raise ValueError unless kernel has a layout accepted by :func:`crosstalk` for x_shape."""
    batch, channels = x_shape[:2]
    kernel_shape = tuple(kernel.shape)
    if cross_channel:
        expected = f'({channels}, {channels}, kh, kw) with cross_channel=True'
        valid = kernel.dim() == 4 and kernel_shape[:2] == (channels, channels)
    else:
        expected = f'(kh, kw), ({channels}, kh, kw) or ({batch}, {channels}, kh, kw)'
        valid = kernel.dim() == 2 or kernel_shape[:-2] in ((channels, ), (batch, channels))
    if not valid:
        raise ValueError(f'crosstalk: kernel shape {kernel_shape} does not fit x shape {tuple(x_shape)}; '
                         f'expected {expected}')
    kh, kw = kernel_shape[-2:]
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f'crosstalk: kernel size {kh}x{kw} must be odd in both dimensions (centre at '
                         f'(kh // 2, kw // 2)); got kernel shape {kernel_shape}')
