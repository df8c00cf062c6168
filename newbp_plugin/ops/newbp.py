"""NewBP crosstalk operator: the physical kernel K applied as a true convolution (seed 000).

``crosstalk(s, K)`` computes ``K * s`` (same-size output) and back-propagates with
the Jacobian transpose written out: a transposed convolution with K.
"""
import torch
import torch.nn.functional as F

from .fft_conv import FFTConvolution

PADDING_MODES = ('zeros', 'reflect', 'replicate', 'circular')  # the plugin's one border vocabulary
METHODS = ('auto', 'direct', 'fft')
# method='auto' takes the FFT path when kh * kw >= FFT_MIN_KERNEL_SIZE ** 2. Measured with
# `OMP_WAIT_POLICY=PASSIVE python benchmarks/ops.py` (forward + backward, B=4, 256x256; benchmarks/RESULTS.md)
# against the batch-folded direct path: FFT speed-up at 13x13 0.81x (C=3) and 1.08x (C=32), at 15x15 1.03x
# and 1.20x on 1 thread; on 2 threads 15x15 costs at most 1.09x.
FFT_MIN_KERNEL_SIZE = 15
# A channel-mixing kernel shared by the batch folds the batch into groups up to this many channels
# (benchmarks/ops.py, forward + backward: 1.3x faster than batched at C=3; 0.84x at C=32).
FOLD_MIXING_MAX_CHANNELS = 4

TORCH_PAD_MODES = {'zeros': 'constant', 'reflect': 'reflect', 'replicate': 'replicate', 'circular': 'circular'}


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
        flipped = weight.flip((-2, -1))
        ctx.save_for_backward(padded if ctx.needs_input_grad[1] else None, flipped)
        return F.conv2d(padded, flipped, groups=groups)

    @staticmethod
    def backward(ctx, grad_out):
        padded, flipped = ctx.saved_tensors
        grad_padded = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_padded = F.conv_transpose2d(grad_out, flipped, groups=ctx.groups)
        if ctx.needs_input_grad[1]:
            grad_flipped = torch.nn.grad.conv2d_weight(padded, flipped.shape, grad_out, groups=ctx.groups)
            grad_weight = grad_flipped.flip((-2, -1))
        return grad_padded, grad_weight, None


def crosstalk(x, kernel, padding_mode='zeros', method='auto'):
    """Apply the crosstalk kernel K to x as a true convolution: ``y = K * x``.

    K is a point-spread function centred at ``(kh // 2, kw // 2)``: a unit impulse
    in x becomes K in y. The output has the size of x; outside x the image is
    continued by ``padding_mode``. Float16/bfloat16 inputs are computed in float32.

    Kernel layouts (the number of dimensions tells them apart; :mod:`newbp_plugin.sensor`
    uses the same convention everywhere)::

        (kh, kw)                 one PSF for every channel and sample
        (C, kh, kw)              one PSF per channel
        (1|B, C, kh, kw)         per sample (depthwise)
        (1|B, C, C, kh, kw)      channel-mixing, one for all or per sample: y_c = Σ_c' K[c, c'] * x_c'

    Args:
        x (Tensor): (B, C, H, W) image, float.
        kernel (Tensor | ndarray): odd-sized PSF in one of the layouts above. Moved to the
            device and dtype of x; gradients flow to it.
        padding_mode (str): one of 'zeros', 'reflect', 'replicate', 'circular'.
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
    check_kernel_layout(kernel, x.shape)

    batch, channels, height, width = x.shape
    kh, kw = kernel.shape[-2:]
    padded = F.pad(x.to(compute_dtype), (kw // 2, kw // 2, kh // 2, kh // 2), mode=TORCH_PAD_MODES[padding_mode])
    use_fft = method == 'fft' or (method == 'auto' and kh * kw >= FFT_MIN_KERNEL_SIZE**2)
    padded, weight, groups = _grouped_layout(padded, kernel, fold_batch=not use_fft)
    convolution = FFTConvolution if use_fft else DirectConvolution
    out = convolution.apply(padded, weight, groups)
    return out.reshape(batch, channels, height, width).to(x.dtype)


def _grouped_layout(padded, kernel, fold_batch):
    """Every kernel layout as one grouped convolution ``(input, weight, groups)``.

    Folding the batch into the groups (one image of B·C planes, as deepinv does) is the fastest
    direct layout: forward + backward at (8, 3, 256², 5×5), one thread, 8 ms against 88 ms for
    ``groups=C`` over the batch (benchmarks/ops.py). The FFT path keeps a kernel shared by the
    batch unfolded (one OTF per channel, not per plane). A channel-mixing kernel shared by the
    batch folds only for few channels: dense C×C groups of 32 channels run faster batched.

    Args:
        padded (Tensor): (B, C, Hp, Wp).
        kernel (Tensor): a layout of :func:`crosstalk`.
        fold_batch (bool): fold the batch wherever the kernel allows it.

    Returns:
        tuple: input (N, G·ci, Hp, Wp), weight (G·co, ci, kh, kw), groups G.
    """
    batch, channels = padded.shape[:2]
    kh, kw = kernel.shape[-2:]
    mixing = kernel.dim() == 5
    per_sample = kernel.dim() >= 4 and kernel.shape[0] == batch and batch > 1
    fold = per_sample or (fold_batch and (not mixing or channels <= FOLD_MIXING_MAX_CHANNELS))
    if not fold:
        if mixing:
            return padded, kernel.reshape(channels, channels, kh, kw), 1
        return padded, kernel.reshape(-1, kh, kw).expand(channels, kh, kw).unsqueeze(1), channels
    folded = padded.reshape(1, batch * channels, *padded.shape[-2:])
    if mixing:
        weight = kernel.expand(batch, channels, channels, kh, kw).reshape(batch * channels, channels, kh, kw)
        return folded, weight, batch
    weight = kernel.expand(batch, channels, kh, kw).reshape(batch * channels, 1, kh, kw)
    return folded, weight, batch * channels


def _describe(value):
    """Shape and dtype of a tensor, or the type of anything else, for error messages."""
    if torch.is_tensor(value):
        return f'shape {tuple(value.shape)} {value.dtype}'
    return type(value).__name__


def check_kernel_layout(kernel, x_shape, owner='crosstalk'):
    """Raise ValueError unless ``kernel`` has a layout of :func:`crosstalk` for images of ``x_shape``, odd-sized.

    Args:
        kernel (Tensor): the PSF, any layout of :func:`crosstalk`.
        x_shape (tuple): (B, C, H, W) of the images.
        owner (str): the function checking, first word of the message.
    """
    batch, channels = x_shape[:2]
    kernel_shape = tuple(kernel.shape)
    leading = kernel_shape[:-2]
    valid = (kernel.dim() == 2 or leading == (channels, ) or (kernel.dim() in (4, 5) and leading[0] in (1, batch)
                                                               and leading[1:] == (channels, ) * (kernel.dim() - 3)))
    if not valid:
        raise ValueError(f'{owner}: kernel shape {kernel_shape} does not fit x shape {tuple(x_shape)}; expected '
                         f'(kh, kw), ({channels}, kh, kw), (1|{batch}, {channels}, kh, kw) or channel-mixing '
                         f'(1|{batch}, {channels}, {channels}, kh, kw)')
    kh, kw = kernel_shape[-2:]
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f'{owner}: kernel size {kh}x{kw} must be odd in both dimensions (centre at '
                         f'(kh // 2, kw // 2)); got kernel shape {kernel_shape}')
