"""'Valid' grouped true convolution through real FFTs, for large kernels.

The input is already padded by ``kh // 2`` / ``kw // 2`` on each side, so a
circular convolution on any grid at least as large as the padded input never
wraps for the pixels kept: it equals the linear convolution there.
"""
import torch
import torch.nn.functional as F

from .otf import psf2otf

_FAST_FFT_FACTORS = (2, 3, 5)
# On CPU the FFT path runs block by block, each block's transforms, product and crop
# staying in cache: forward + backward at (4, 32, 256, 256), 31x31, 1 thread, went from
# about 740 ms (whole batch) to 330 ms with blocks of about this many grid elements.
_CPU_BLOCK_ELEMENTS = 1 << 20


def fast_fft_size(n):
    """Smallest integer >= n whose prime factors are all 2, 3 or 5 (fast FFT lengths)."""
    size = n
    while True:
        rest = size
        for factor in _FAST_FFT_FACTORS:
            while rest % factor == 0:
                rest //= factor
        if rest == 1:
            return size
        size += 1


def _blocks(batch, groups, planes_per_group, grid, device):
    """(sample slice, group slice) pairs covering batch x groups: cache-sized on CPU, one on GPU."""
    if device.type != 'cpu':
        return [(slice(None), slice(None))]
    group_elements = planes_per_group * grid[0] * grid[1]
    groups_per_block = max(1, min(groups, _CPU_BLOCK_ELEMENTS // group_elements))
    samples_per_block = 1
    if groups_per_block == groups:
        samples_per_block = max(1, _CPU_BLOCK_ELEMENTS // (groups * group_elements))
    return [(slice(n, n + samples_per_block), slice(g, g + groups_per_block))
            for n in range(0, batch, samples_per_block) for g in range(0, groups, groups_per_block)]


class FFTConvolution(torch.autograd.Function):
    """Same contract as ``DirectConvolution`` in ``newbp.py``, computed in the Fourier domain.

    Forward: ``out = crop(irfft2(OTF · rfft2(padded)))``, summed over the input
    channels of each group. Backward, the explicit adjoints: ``grad_padded`` is the
    correlation with K (multiplication by ``conj(OTF)``), ``grad_weight`` the
    correlation of the padded input with ``grad_out``.

    Args (forward):
        padded (Tensor): (N, G·ci, H + kh - 1, W + kw - 1) padded input.
        weight (Tensor): (G·co, ci, kh, kw) PSFs, odd sizes, not flipped.
        groups (int): G.

    Returns:
        Tensor: (N, G·co, H, W).
    """

    @staticmethod
    def forward(ctx, padded, weight, groups):
        batch, _, padded_h, padded_w = padded.shape
        out_channels, group_in, kh, kw = weight.shape
        group_out = out_channels // groups
        height, width = padded_h - kh + 1, padded_w - kw + 1
        grid = (fast_fft_size(padded_h), fast_fft_size(padded_w))
        otf = psf2otf(weight.reshape(groups, group_out, group_in, kh, kw), grid)
        padded_groups = padded.reshape(batch, groups, group_in, padded_h, padded_w)
        out = padded.new_empty(batch, groups, group_out, height, width)
        for samples, group in _blocks(batch, groups, max(group_in, group_out), grid, padded.device):
            spectrum = torch.fft.rfft2(padded_groups[samples, group], s=grid)
            product = torch.einsum('gocyx,ngcyx->ngoyx', otf[group], spectrum)
            out[samples, group] = torch.fft.irfft2(
                product, s=grid)[..., kh // 2:kh // 2 + height, kw // 2:kw // 2 + width]
        ctx.groups, ctx.grid, ctx.weight_shape = groups, grid, weight.shape
        ctx.save_for_backward(padded if ctx.needs_input_grad[1] else None, otf)
        return out.reshape(batch, out_channels, height, width)

    @staticmethod
    def backward(ctx, grad_out):
        padded, otf = ctx.saved_tensors
        groups, grid = ctx.groups, ctx.grid
        out_channels, group_in, kh, kw = ctx.weight_shape
        group_out = out_channels // groups
        batch, _, height, width = grad_out.shape
        padded_h, padded_w = height + kh - 1, width + kw - 1
        grad_groups = grad_out.reshape(batch, groups, group_out, height, width)
        # grad_out goes back where the forward cropped it, on the same periodic grid.
        placement = (kw // 2, grid[1] - width - kw // 2, kh // 2, grid[0] - height - kh // 2)
        grad_padded = grad_otf = None
        if ctx.needs_input_grad[0]:
            grad_padded = grad_out.new_empty(batch, groups, group_in, padded_h, padded_w)
        if ctx.needs_input_grad[1]:
            padded_groups = padded.reshape(batch, groups, group_in, padded_h, padded_w)
            grad_otf = torch.zeros_like(otf)
        for samples, group in _blocks(batch, groups, max(group_in, group_out), grid, grad_out.device):
            grad_spectrum = torch.fft.rfft2(F.pad(grad_groups[samples, group], placement))
            if grad_padded is not None:
                product = torch.einsum('gocyx,ngoyx->ngcyx', otf[group].conj(), grad_spectrum)
                grad_padded[samples, group] = torch.fft.irfft2(product, s=grid)[..., :padded_h, :padded_w]
            if grad_otf is not None:
                spectrum = torch.fft.rfft2(padded_groups[samples, group], s=grid)
                grad_otf[group] += torch.einsum('ngcyx,ngoyx->gocyx', spectrum.conj(), grad_spectrum)
        grad_weight = None
        if grad_otf is not None:
            # Lag (u - kh // 2, v - kw // 2) of the correlation is the derivative w.r.t. tap (u, v).
            correlation = torch.roll(torch.fft.irfft2(grad_otf, s=grid), shifts=(kh // 2, kw // 2), dims=(-2, -1))
            grad_weight = correlation[..., :kh, :kw].reshape(ctx.weight_shape)
        if grad_padded is not None:
            grad_padded = grad_padded.reshape(batch, groups * group_in, padded_h, padded_w)
        return grad_padded, grad_weight, None
