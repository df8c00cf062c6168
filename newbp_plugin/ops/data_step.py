"""The closed-form data step of deep unfolding (USRNet, DPIR, Converse-USRNet) with the known kernel."""
import torch
import torch.nn.functional as F

from .converse import converse2d
from .newbp import PADDING_MODES, TORCH_PAD_MODES, check_kernel_layout
from .otf import psf2otf
from .regularised_solve import regularised_solve


REGULARISERS = ('identity', 'laplacian')
LAPLACIAN = ((0., -1., 0.), (-1., 4., -1.), (0., -1., 0.))  # the 5-point Laplacian, a smooth image's whitener


def data_step(x, kernel, alpha, x0=None, padding=None, padding_mode='reflect', regulariser='identity'):
    """``z* = argmin_z ||x - K z||² + α ||R (z - x0)||²``, per sample, in closed form at every frequency.

    R is the identity (USRNet's and DPIR's data step) or the Laplacian L; with L and ``x0 = 0`` it is
    Wiener deconvolution with the smooth-image prior of ``benchmark.classical.wiener`` (β = α).
    Solved in the residual form ``z = x0 + (KᵀK + α RᵀR)⁻¹ Kᵀ (x - K x0)``, which never divides by α
    with the OTF in float64: depthwise kernels with R = I through :func:`newbp_plugin.ops.converse2d`
    (a division per frequency), the others by :func:`regularised_solve` (a C×C solve per frequency
    for channel-mixing kernels). L hardly penalises the mean (|Λ(0)|² is floored at the dtype's
    epsilon): the mean of x is inverted through K's sum. The
    FFT treats the grid as periodic: x and x0 are first extended by ``padding`` pixels on each side
    (``padding_mode``), so that the wrap-around seam lies outside the image, and the result is cropped.

    Args:
        x (Tensor): (B, C, H, W) observation, float.
        kernel (Tensor): the PSF in any layout of :mod:`newbp_plugin.sensor.layout`: (kh, kw),
            (C, kh, kw), (1|B, C, kh, kw), channel-mixing (1|B, C, C, kh, kw); per-sample kernels of
            different sizes come zero-padded to one size.
        alpha (float | Tensor): α > 0, a number or broadcastable to (B, C, 1, 1) (per sample, per channel).
        x0 (Tensor | None): (B, C, H, W) the estimate z is pulled towards; default: x.
        padding (int | None): pixels added on each side; None: the kernel's larger side. 0 with
            ``padding_mode='circular'`` is the exact periodic problem.
        padding_mode (str): one of 'zeros', 'reflect', 'replicate', 'circular'. Default: 'reflect'.
        regulariser (str): R, 'identity' or 'laplacian'. Default: 'identity'.

    Returns:
        Tensor: (B, C, H, W) z*, in the dtype of x (float16/bfloat16 computed in float32).
    """
    out_dtype = x.dtype if torch.is_tensor(x) else None
    if regulariser not in REGULARISERS:
        raise ValueError(f"data_step: regulariser must be one of {', '.join(REGULARISERS)}, got {regulariser!r}")
    x, kernel, alpha, x0, padding = _checked(x, kernel, alpha, x0, padding, padding_mode)
    height, width = x.shape[-2:]
    if padding:
        pad = (padding, ) * 4
        x, x0 = (F.pad(image, pad, mode=TORCH_PAD_MODES[padding_mode]) for image in (x, x0))
    if kernel.dim() < 5 and regulariser == 'identity':  # the reverse convolution itself, at scale 1
        z = converse2d(x, kernel, alpha, x0=x0)
    else:  # (K x0)_c = Σ_c' K[c, c'] * x0_c' (channel-mixing) or K_c * x0_c, then the solve per frequency
        shape = x.shape[-2:]
        complex_dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
        otf = psf2otf(kernel.to(torch.float64), shape).to(complex_dtype)
        x0_hat = torch.fft.rfft2(x0)
        blurred_x0_hat = (otf * x0_hat.unsqueeze(-4)).sum(-3) if kernel.dim() == 5 else otf * x0_hat
        weight = alpha
        if regulariser == 'laplacian':  # |Λ|², floored at the dtype's epsilon: a kernel of sum 0 keeps x0's mean
            laplacian = psf2otf(x.new_tensor(LAPLACIAN, dtype=torch.float64), shape).abs().square().to(x.dtype)
            weight = alpha * laplacian.clamp(min=torch.finfo(x.dtype).eps)
        correction, _ = regularised_solve(otf, torch.fft.rfft2(x) - blurred_x0_hat, weight)
        z = x0 + torch.fft.irfft2(correction, s=shape)
    return z[..., padding:padding + height, padding:padding + width].to(out_dtype)


def _checked(x, kernel, alpha, x0, padding, padding_mode):
    """The arguments of :func:`data_step`, checked, in the compute dtype, ``padding`` resolved."""
    if not torch.is_tensor(x) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f'data_step: x must be a (B, C, H, W) float tensor, got {getattr(x, "shape", type(x))}')
    if padding_mode not in PADDING_MODES:
        raise ValueError(f'data_step: padding_mode {padding_mode!r} is not one of {PADDING_MODES}')
    check_kernel_layout(kernel, x.shape, 'data_step')
    alpha = torch.as_tensor(alpha, device=x.device, dtype=None if torch.is_tensor(alpha) else torch.float64)
    if not bool((alpha > 0).all()):
        raise ValueError(f'data_step: alpha must be > 0, got a minimum of {alpha.min().item()!r}')
    if x0 is not None and tuple(x0.shape) != tuple(x.shape):
        raise ValueError(f'data_step: x0 {tuple(x0.shape)} must have the shape of x {tuple(x.shape)}')
    padding = max(kernel.shape[-2:]) if padding is None else padding
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f'data_step: padding must be an integer >= 0, got {padding!r}')
    if padding_mode == 'reflect':
        padding = min(padding, x.shape[-2] - 1, x.shape[-1] - 1)  # F.pad's reflection needs padding < size
    dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    x = x.to(dtype)
    x0 = x if x0 is None else x0.to(dtype)
    alpha = alpha.to(dtype)
    alpha = alpha.reshape((1, ) * (4 - alpha.dim()) + tuple(alpha.shape)) if alpha.dim() < 4 else alpha
    return x, kernel.to(device=x.device, dtype=dtype), alpha, x0, padding
