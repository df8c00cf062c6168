"""Point-spread function (PSF) to optical transfer function (OTF) conversion."""
import torch


def psf2otf(psf, shape, onesided=True):
    """Fourier transform of a centred PSF embedded in a periodic grid of ``shape``.

    The PSF centre ``(kh // 2, kw // 2)`` is moved to pixel ``(0, 0)`` so that
    multiplying by the OTF is a circular *convolution* with the PSF (no shift).

    Args:
        psf (Tensor): (..., kh, kw) kernel, kh <= H and kw <= W.
        shape (tuple[int, int]): (H, W) of the periodic grid.
        onesided (bool): return ``rfft2`` (..., H, W // 2 + 1) when True,
            the full ``fft2`` (..., H, W) otherwise.

    Returns:
        Tensor: complex OTF.
    """
    kh, kw = psf.shape[-2:]
    height, width = shape
    if kh > height or kw > width:
        raise ValueError(f'psf2otf: kernel {kh}x{kw} is larger than the grid {height}x{width}')
    otf = psf.new_zeros(psf.shape[:-2] + (height, width))
    otf[..., :kh, :kw] = psf
    otf = torch.roll(otf, shifts=(-(kh // 2), -(kw // 2)), dims=(-2, -1))
    return torch.fft.rfft2(otf) if onesided else torch.fft.fft2(otf)
