"""Converse2D (reverse convolution, seed 004): closed-form inverse of circular conv + decimation.

Solves, per sample and channel (depthwise), with circular boundary::

    X* = argmin_X ||Y - (X ⊗ K)↓s||² + λ ||X - X0||²

where ⊗ is the convolution with the centred PSF K (centre ``(kh // 2, kw // 2)``,
see :func:`psf2otf`) and ↓s keeps the pixels ``[::s, ::s]``. With ``A = ↓s ∘ (⊗K)``
the minimiser is ``X0 + Aᵀ(AAᵀ + λI)⁻¹(Y - A·X0)``; ``AAᵀ`` is diagonal in the
Fourier domain of the low-resolution grid (the mean of |FK|² over the s×s aliases
of each frequency), so one division on the low-resolution spectrum solves it.
"""
import torch
import torch.nn.functional as F

from .otf import psf2otf

_SCALES = (1, 2, 3, 4)


def converse2d(y, kernel, lam, scale=1, x0=None):
    """Reverse convolution, evaluated in the residual form that never divides by λ.

    Real FFTs at scale 1. At scale > 1 the low-resolution spectra are full (the s×s
    aliases of a half spectrum are not a half spectrum) and, with the default x0, the
    only high-resolution transform of the data is one ``irfft2``. Float16/bfloat16
    inputs are computed in float32.

    Args:
        y (Tensor): (B, C, h, w) observed (low-resolution) image.
        kernel (Tensor): PSF K, (kh, kw), (C, kh, kw), (1, C, kh, kw) or (B, C, kh, kw);
            channel c of ``y`` uses kernel c. kh <= h·s, kw <= w·s.
        lam (float | Tensor): λ > 0, a number or a tensor broadcastable to (B, C, 1, 1).
        scale (int): s in {1, 2, 3, 4}.
        x0 (Tensor | None): (B, C, h·s, w·s) prior estimate; default: nearest-neighbour
            upsampling of ``y`` (``F.interpolate(y, scale_factor=s, mode='nearest')``).

    Returns:
        Tensor: (B, C, h·s, w·s) X*, in the dtype of ``y``.
    """
    y, kernel, lam, x0, out_dtype = _prepare(y, kernel, lam, scale, x0)
    shape = (y.shape[-2] * scale, y.shape[-1] * scale)
    complex_dtype = torch.complex128 if y.dtype == torch.float64 else torch.complex64
    # Without aliasing (s = 1) the half spectrum of a real signal says everything.
    onesided = scale == 1
    spectrum = torch.fft.rfft2 if onesided else torch.fft.fft2
    # The OTF in float64, then rounded: near the kernel's zeros FK is a sum cancelling to ~1e-4,
    # whose float32 rounding error the division by |FK|² + λ would amplify. For the same reason
    # |FK|² comes straight from the OTF, not from an FFT round trip through K's autocorrelation.
    otf = psf2otf(kernel.to(torch.float64), shape, onesided=onesided).to(complex_dtype)
    inverse = 1 / (_alias_mean(otf.real.square() + otf.imag.square(), scale) + lam)  # (AAᵀ + λ)⁻¹
    y_hat = spectrum(y)
    if x0 is None:
        # A·upsample_nearest is a low-resolution filter: Y - A·X0 is Y times (1 - gain).
        gain = _alias_mean(otf * _nearest_response(scale, shape, otf.shape[-1], otf), scale)
        x = _adjoint(y_hat * ((1 - gain) * inverse), otf, scale, shape)
        # + X0 in place: x[i, j] += y[i // s, j // s], columns upsampled, rows broadcast (fastest)
        columns = y if scale == 1 else F.interpolate(y, scale_factor=(1, scale), mode='nearest')
        x.unflatten(-2, (-1, scale)).add_(columns[..., None, :])
    else:
        x = x0 + _adjoint((y_hat - _alias_mean(otf * spectrum(x0), scale)) * inverse, otf, scale, shape)
    return x.to(out_dtype)


def converse2d_printed(y, kernel, lam, scale=1, x0=None):
    """Reference: the closed form as printed in seed 004, evaluated with full complex FFTs.

    ``X* = F⁻¹( (L - conj(FK) ⊙s ((FK·L)⇓s / (|FK|²⇓s + λ))) / λ )`` with
    ``L = conj(FK)·F(Y↑s) + λ·F(X0)``, ↑s zero insertion at ``[::s, ::s]``, ⇓s the mean
    over the s×s aliases, ⊙s the s×s periodic repetition. Mathematically equal to
    :func:`converse2d`, but it divides by λ after a subtraction and loses digits as λ
    shrinks (float32, λ = 1e-5: relative error 5e-5 to 2e-3, against 2e-7 for
    :func:`converse2d`). Same arguments; no padding (the module wrapper pads, as the seed).
    """
    y, kernel, lam, x0, out_dtype = _prepare(y, kernel, lam, scale, x0)
    batch, channels, height, width = *y.shape[:2], y.shape[-2] * scale, y.shape[-1] * scale
    if x0 is None:
        x0 = F.interpolate(y, scale_factor=scale, mode='nearest')
    otf = psf2otf(kernel, (height, width), onesided=False)
    y_up = y.new_zeros(batch, channels, height, width)
    y_up[..., ::scale, ::scale] = y
    lhs = otf.conj() * torch.fft.fft2(y_up) + lam * torch.fft.fft2(x0)
    inner = _alias_mean(otf * lhs, scale) / (_alias_mean(otf.abs().square(), scale) + lam)
    x_hat = (lhs - otf.conj() * inner.repeat(1, 1, scale, scale)) / lam
    return torch.fft.ifft2(x_hat).real.to(out_dtype)


def _alias_mean(spectrum, scale):
    """(..., s·h, s·w) full spectrum -> (..., h, w): mean over the s×s aliases of each
    low-resolution frequency, i.e. the spectrum of the signal decimated at ``[::s, ::s]``."""
    if scale == 1:
        return spectrum
    # one dimension at a time: a reduction over both alias axes at once is several times slower
    rows = spectrum.unflatten(-2, (scale, -1)).mean(-3)
    return rows.unflatten(-1, (scale, -1)).mean(-2)


def _nearest_response(scale, shape, columns, like):
    """(H, columns) frequency response, on an (H, W) grid, of nearest-neighbour upsampling
    relative to zero insertion: an s×s box on offsets 0..s-1 (``x0[i] = y[i // s]``)."""

    def box(length, count):
        angle = (-2 * torch.pi / length) * torch.outer(
            torch.arange(count, dtype=torch.float64), torch.arange(scale, dtype=torch.float64))
        return torch.polar(torch.ones_like(angle), angle).sum(-1)

    response = torch.outer(box(shape[0], shape[0]), box(shape[1], columns))
    return response.to(device=like.device, dtype=like.dtype)


def _adjoint(z_hat, otf, scale, shape):
    """Aᵀz (z zero-inserted at ``[::s, ::s]``, then correlated with K), given ẑ.

    Args:
        z_hat (Tensor): (B, C, h, w) full spectrum of z, or (B, C, h, w // 2 + 1) half
            spectrum when s = 1.
        otf (Tensor): (B|1, C, H, W) full OTF, or the half OTF when s = 1.
        shape (tuple[int, int]): (H, W) = (h·s, w·s).

    Returns:
        Tensor: (B, C, H, W) real.
    """
    if scale == 1:
        return torch.fft.irfft2(otf.conj() * z_hat, s=shape)
    # Zero insertion repeats the spectrum periodically: (k1, k2) -> (k1 mod h, k2 mod w),
    # rows by broadcasting over s blocks of h rows, columns gathered for the half spectrum.
    half = shape[-1] // 2 + 1
    columns = torch.arange(half, device=z_hat.device) % z_hat.shape[-1]
    periodic = z_hat.index_select(-1, columns).unsqueeze(-3)
    blocks = otf[..., :half].conj().unflatten(-2, (scale, -1))
    return torch.fft.irfft2((blocks * periodic).flatten(-3, -2), s=shape)


def _prepare(y, kernel, lam, scale, x0):
    """Validate the arguments of :func:`converse2d`; return them in the compute dtype.

    Returns:
        tuple: y (B, C, h, w), kernel (B|1, C|1, kh, kw), lam (float or tensor of
        <= 4 dims broadcastable to (B, C, 1, 1)), x0 (B, C, h·s, w·s) or None, and
        the dtype of the result (that of y).
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in _SCALES:
        raise ValueError(f'converse2d: scale must be one of {_SCALES}, got {scale!r}')
    if not torch.is_tensor(y) or y.dim() != 4 or not y.is_floating_point():
        raise ValueError(f'converse2d: y must be a real floating (B, C, h, w) tensor, '
                         f'got {_describe(y)}')
    batch, channels, height, width = y.shape
    high_res = (batch, channels, height * scale, width * scale)
    if not torch.is_tensor(kernel) or not kernel.is_floating_point() or not 2 <= kernel.dim() <= 4:
        raise ValueError(f'converse2d: kernel must be a real floating (kh, kw), (C, kh, kw) or '
                         f'(B|1, C, kh, kw) tensor, got {_describe(kernel)}')
    if kernel.dim() > 2 and (kernel.shape[-3] != channels or kernel.dim() == 4 and kernel.shape[0] not in (1, batch)):
        raise ValueError(f'converse2d: kernel {tuple(kernel.shape)} does not match y '
                         f'{tuple(y.shape)} (channels C={channels}, batch 1 or B={batch})')
    if kernel.shape[-2] > high_res[-2] or kernel.shape[-1] > high_res[-1]:
        raise ValueError(f'converse2d: kernel {tuple(kernel.shape[-2:])} is larger than the '
                         f'output grid {high_res[-2:]} (y {tuple(y.shape)}, scale {scale})')
    if x0 is not None and (not torch.is_tensor(x0) or tuple(x0.shape) != high_res):
        raise ValueError(f'converse2d: x0 must have shape {high_res} (y {tuple(y.shape)}, '
                         f'scale {scale}), got {_describe(x0)}')
    if torch.is_tensor(lam):
        target = (batch, channels, 1, 1)
        if lam.dim() > 4 or any(n not in (1, t) for n, t in zip(lam.shape[::-1], target[::-1])):
            raise ValueError(f'converse2d: lam {tuple(lam.shape)} does not broadcast to '
                             f'(B, C, 1, 1) = {target}')
        smallest = lam.min().item() if lam.numel() else 1.0
    else:
        smallest = lam
    if not smallest > 0:
        raise ValueError(f'converse2d: lam must be > 0, got {"a minimum of " if torch.is_tensor(lam) else ""}'
                         f'{smallest!r}')
    dtype = torch.promote_types(y.dtype, kernel.dtype)
    if dtype not in (torch.float32, torch.float64):
        dtype = torch.float32
    kernel = kernel.reshape((1, ) * (4 - kernel.dim()) + tuple(kernel.shape))
    if torch.is_tensor(lam):
        lam = lam.to(dtype)
    return y.to(dtype), kernel.to(dtype), lam, None if x0 is None else x0.to(dtype), y.dtype


def _describe(value):
    if torch.is_tensor(value):
        return f'{value.dtype} tensor of shape {tuple(value.shape)}'
    return repr(value)
