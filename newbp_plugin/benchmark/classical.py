"""Classical non-blind deconvolution with the oracle kernel K and noise level (pure torch, no BasicSR).

The baselines a learned model must beat on ``X = K * Y + N``:

- :func:`wiener`: Wiener deconvolution in the Fourier domain,
- :func:`richardson_lucy`: Richardson–Lucy, the multiplicative EM iteration of the Poisson model,
- :func:`converse`: Converse2D (:func:`newbp_plugin.ops.converse2d`) used as a solver,
- :func:`demosaic_wiener` (packed raw): OpenCV demosaicing, then :func:`wiener` in RGB with the
  RGB-equivalent kernel of the mosaic crosstalk, mosaicked back (the "demosaic first" pipeline).
  On packed raw the three above work on the four phase planes with the packed (4, 4) kernel.

Conventions shared by the three:

- ``x`` is (B, C, H, W) and ``kernel`` follows the plugin's one convention
  (:mod:`newbp_plugin.sensor.layout`): (kh, kw), (C, kh, kw), (1|B, C, kh, kw), or channel-mixing
  (1|B, C, C, kh, kw) (Wiener and Richardson–Lucy; Converse2D is depthwise).
- ``linear_light``: ``x`` is sRGB-encoded and K acted on linear light (CrosstalkDataset's default):
  x is decoded, deconvolved and encoded back. ``noise_var`` is then in linear-light units.
- Boundaries. The FFT solves are circular. ``boundary='circular'`` takes the image as periodic
  (exact for a circularly blurred image); ``'reflect'`` (default) first continues the image by
  ``pad`` reflected pixels on each side, so that its periodic extension has no jump at the borders
  (the jump is what rings), solves on the padded grid and crops back. The sensor blurred the scene's
  real surroundings, which the reflection approximates: a few border pixels keep a small error.
  Richardson–Lucy uses the same padded, periodic grid, so that its adjoint is exact there; its
  stopping rule measures the residual on the image only (the padding's wrap-around seam is no data).
- Outputs are not clipped (the metrics clip when they quantise to 8 bits).
"""
import torch
import torch.nn.functional as F

from newbp_plugin.kernels.bayer import packed_to_phase_kernels, rgb_equivalent_kernel
from newbp_plugin.ops import converse2d, crosstalk, psf2otf
from newbp_plugin.ops.data_step import LAPLACIAN  # Wiener's prior: L * Y is white
from newbp_plugin.ops.regularised_solve import regularised_solve
from newbp_plugin.sensor import is_channel_mixing
from newbp_plugin.sensor.mosaic import demosaic, mosaic, pack, phase_channels, unpack
from newbp_plugin.sensor.optics import SensorOptics

BOUNDARIES = ('reflect', 'circular')
PAD_PER_KERNEL_SIDE = 4  # default reflect padding [px] = this x the kernel's larger side


def prior_power(observed, noise_var, psf):
    """Power of ``F * Y`` (F a filter, Y the clean image), estimated from ``observed = K * Y + N``.

    ``Var[F * observed] - σ²‖F‖²`` (the share of white noise through F), at least σ². The blur K in
    ``observed`` lowers the estimate a little, so the priors built on it err on the strong side.

    Args:
        observed (Tensor): (B, C, H, W), periodic (filtered circularly).
        noise_var (float | Tensor): σ², a number or broadcastable to (B, C, 1, 1).
        psf (Tensor): (kh, kw), (C, kh, kw) or (B, C, kh, kw) filter F.

    Returns:
        Tensor: (B, C, 1, 1).
    """
    noise_var = torch.as_tensor(noise_var, dtype=observed.dtype, device=observed.device)
    filtered = crosstalk(observed, psf, padding_mode='circular')
    noise_share = noise_var * psf.square().sum((-2, -1)).reshape(psf.shape[:-2] + (1, 1))
    return torch.maximum(filtered.var(dim=(-2, -1), keepdim=True) - noise_share, noise_var)


def wiener_balance(observed, kernel, noise_var, pad=0, tolerance=1e-3, max_iterations=50):
    """Wiener's β = σ² / P, P the power of ``L * Y`` on the image, inferred from ``observed = K * Y + N``.

    The model of :func:`wiener`: ``L * Y`` white of power P (L the Laplacian), N white of power σ².
    Under the current β the posterior of Y has the mean Ŷ of :func:`wiener` and, at every frequency,
    the variance ``σ² / (|H|² + β|Λ|²)`` (channel-mixing: σ² times the diagonal of the inverted
    C×C system); the update ``β ← σ² / E[|L * Y|²]``, with ``E[|L * Y|²] = mean of |L * Ŷ|² over the
    image + σ² mean_ω |Λ|² / (|H|² + β|Λ|²)``, is EM for P. β is its fixed point: with ``pad = 0`` the
    maximum-likelihood β. The mean over the image leaves the padding out: mirrored noise is not white
    (it adds up near the Nyquist frequency), and where K passes nothing the whole grid's likelihood
    would take that excess for signal. The fixed point is found by the secant method on log β
    (each EM step divided by 1 - its contraction rate, measured from the last two steps; at most 20×),
    from the β of :func:`prior_power` (the blurred observation's power: too strong), until the EM
    step changes no β by more than ``tolerance`` (relative); 4–6 steps on the benchmark's images.

    Args:
        observed (Tensor): (B, C, H, W), periodic (filtered circularly), in the working domain.
        kernel (Tensor): the PSF as :func:`wiener` takes it, a tensor on observed's device and dtype.
        noise_var (float | Tensor): σ², a number or broadcastable to (B, C, 1, 1).
        pad (int): the padding [px] on each side of the image in ``observed``. Default: 0.
        tolerance (float): relative change of β by an EM step that ends the search. Default: 1e-3.
        max_iterations (int): the most EM steps. Default: 50.

    Returns:
        Tensor: (B, C, 1, 1) β.
    """
    noise_var = torch.as_tensor(noise_var, dtype=observed.dtype, device=observed.device)
    laplacian = observed.new_tensor(LAPLACIAN)
    shape = observed.shape[-2:]
    image = (..., slice(pad, shape[-2] - pad), slice(pad, shape[-1] - pad))
    laplacian_otf = psf2otf(laplacian, shape)
    laplacian_power = laplacian_otf.abs().square()
    otf, spectrum = psf2otf(kernel, shape), torch.fft.rfft2(observed)
    # multiplicity of each rfft2 column in the full spectrum, for means over all frequencies
    multiplicity = torch.full((shape[-1] // 2 + 1, ), 2., dtype=observed.dtype, device=observed.device)
    multiplicity[0] = 1
    if shape[-1] % 2 == 0:
        multiplicity[-1] = 1  # the Nyquist column

    def em_step(log_beta):
        """log β' - log β, β' = σ² / E[|L * Y|²] under the posterior of β."""
        mean, variance = regularised_solve(otf, spectrum, log_beta.exp() * laplacian_power)
        sharpness = torch.fft.irfft2(laplacian_otf * mean, s=shape)[image]  # L * Ŷ
        uncertainty = (laplacian_power * variance * multiplicity).sum((-2, -1), keepdim=True) / shape.numel()
        power = sharpness.square().mean((-2, -1), keepdim=True) + noise_var * uncertainty
        return (noise_var / power).log() - log_beta

    log_beta = (noise_var / prior_power(observed, noise_var, laplacian)).log()
    change = step = em_step(log_beta)
    for _ in range(max_iterations - 1):
        if (change.abs() <= tolerance).all():
            break
        previous, previous_change = log_beta, change
        log_beta = log_beta + step
        change = em_step(log_beta)
        rate = ((previous_change - change) / (log_beta - previous)).nan_to_num(nan=1.).clamp(0.05, 1)  # 1 - contraction
        step = change / rate
    return log_beta.exp()


def wiener(x, kernel, noise_var=None, balance=None, linear_light=False, boundary='reflect', pad=None):
    """Wiener deconvolution: ``X̂ = (HᴴH + β|Λ|²)⁻¹ Hᴴ X̂obs`` at every frequency.

    H is the OTF of K, Λ that of the Laplacian L. The prior is Gaussian with ``L * Y`` white
    of power P (a smooth-image prior, power spectrum ∝ 1/|Λ|²; as ``skimage.restoration.wiener``),
    so the noise-to-signal ratio at a frequency is ``β|Λ|²`` with ``β = σ² / P``, P fitted to the
    observation by maximum likelihood (:func:`wiener_balance`). |Λ(0)| = 0: the mean is inverted
    exactly (H(0) is 1, or the channel-mixing matrix, for a normalised kernel). With a
    channel-mixing kernel the C×C system of each frequency is solved.

    Args:
        x (Tensor): (B, C, H, W) observation.
        kernel (Tensor | ndarray): the PSF, see the module docstring.
        noise_var (float | Tensor | None): σ² in the working domain (linear light when
            ``linear_light``), a number or broadcastable to (B, C, 1, 1); gives β (:func:`wiener_balance`).
        balance (float | Tensor | None): β itself, instead of ``noise_var``.
        linear_light (bool): decode x from sRGB first and encode the result.
        boundary (str): 'reflect' or 'circular' (module docstring).
        pad (int | None): reflect padding [px]; None: 4 x the kernel's larger side.

    Returns:
        Tensor: (B, C, H, W) X̂, encoded as x.
    """
    x, kernel, pad = _prepare(x, kernel, boundary, pad)
    if (noise_var is None) == (balance is None):
        raise ValueError('wiener: give exactly one of noise_var and balance')
    laplacian = x.new_tensor(LAPLACIAN)

    def solve(observed):
        shape = observed.shape[-2:]
        beta = wiener_balance(observed, kernel, noise_var, pad) if balance is None else torch.as_tensor(
            balance, dtype=observed.dtype, device=observed.device)
        weight = beta.expand(observed.shape[:2] + (1, 1)) * psf2otf(laplacian, shape).abs().square()
        restored, _ = regularised_solve(psf2otf(kernel, shape), torch.fft.rfft2(observed), weight)
        return torch.fft.irfft2(restored, s=shape)

    return _solve(solve, x, linear_light, pad)


def richardson_lucy(x, kernel, iterations=100, noise_var=None, linear_light=False, boundary='reflect', pad=None):
    """Richardson–Lucy: ``Xₖ₊₁ = Xₖ · Kᵀ(Xobs / K Xₖ) / Kᵀ1`` from the flat ``X₀ = mean(Xobs)``.

    The EM iteration of the Poisson likelihood of Xobs given K X: every iterate is non-negative
    and the Poisson objective ``Σ K Xₖ - Xobs·log(K Xₖ)`` never increases. Run to convergence
    it reaches the noise-amplifying maximum-likelihood solution; detail comes back over the
    iterations, coarse first, so stopping early regularises. With
    ``noise_var`` (the oracle noise level), a sample stops by the discrepancy principle: at the
    first iterate whose mean squared residual ``|K Xₖ - Xobs|²`` over the image (the padding
    left out) is at most the mean noise variance. Xobs is clipped to >= 0 first.

    Args:
        x (Tensor): (B, C, H, W) observation.
        kernel (Tensor | ndarray): the PSF, non-negative, see the module docstring.
        iterations (int): the most iterations. Default: 100.
        noise_var (float | Tensor | None): σ² for the stopping rule, a number or broadcastable to
            (B, C, 1, 1), in the working domain; None: always ``iterations``.
        linear_light (bool): decode x from sRGB first and encode the result.
        boundary (str): 'reflect' or 'circular' (module docstring).
        pad (int | None): reflect padding [px]; None: 4 x the kernel's larger side.

    Returns:
        Tensor: (B, C, H, W) X̂ >= 0 in the working domain, encoded as x.
    """
    x, kernel, pad = _prepare(x, kernel, boundary, pad)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f'richardson_lucy: iterations must be an integer >= 0, got {iterations!r}')
    if (kernel < 0).any():
        raise ValueError('richardson_lucy: the kernel has negative values; the iteration needs K >= 0')
    # Kᵀ: correlation with K, i.e. convolution with the flipped PSF (channel-mixing: transposed too)
    adjoint_kernel = kernel.flip((-2, -1))
    if is_channel_mixing(kernel):
        adjoint_kernel = adjoint_kernel.transpose(1, 2)

    blur = SensorOptics(linear_light=False, padding_mode='circular').blur  # on the periodic working grid

    def solve(observed):
        observed = observed.clamp(min=0)
        tiny = torch.finfo(observed.dtype).tiny
        normaliser = blur(torch.ones_like(observed), adjoint_kernel)
        target = None if noise_var is None else torch.as_tensor(
            noise_var, dtype=observed.dtype, device=observed.device).expand(observed.shape[:2] + (1, 1)).mean(
                (1, 2, 3), keepdim=True)
        estimate = observed.mean((-2, -1), keepdim=True).expand_as(observed)
        image = (..., slice(pad, observed.shape[-2] - pad), slice(pad, observed.shape[-1] - pad))
        for _ in range(iterations):
            blurred = blur(estimate, kernel)
            update = estimate * blur(observed / blurred.clamp(min=tiny), adjoint_kernel) / normaliser
            if target is None:
                estimate = update
            else:
                running = (blurred - observed)[image].square().mean((1, 2, 3), keepdim=True) > target
                if not running.any():
                    break
                estimate = torch.where(running, update, estimate)
        return estimate

    return _solve(solve, x, linear_light, pad)


def converse(x, kernel, noise_var=None, lam=None, linear_light=False, boundary='reflect', pad=None):
    """Converse2D as a non-blind solver: ``argmin_X |Xobs - K X|² + λ|X - Xobs|²`` (scale 1).

    :func:`newbp_plugin.ops.converse2d` with the oracle K and X0 = Xobs: the estimate is pulled
    towards the observation (Wiener's, towards smoothness). λ is the MAP weight of a white
    Gaussian prior on the deviation ``Y - Xobs = (δ - K) * Y - N``, whose power is
    ``P + σ²`` with P the power of ``(δ - K) * Y`` (:func:`prior_power`): ``λ = σ² / (P + σ²)``.
    Depthwise kernels only.

    Args:
        x (Tensor): (B, C, H, W) observation.
        kernel (Tensor | ndarray): (kh, kw), (C, kh, kw) or (B, C, kh, kw) PSF.
        noise_var (float | Tensor | None): σ² in the working domain, a number or broadcastable to
            (B, C, 1, 1); gives λ.
        lam (float | Tensor | None): λ > 0 itself, instead of ``noise_var``.
        linear_light (bool): decode x from sRGB first and encode the result.
        boundary (str): 'reflect' or 'circular' (module docstring).
        pad (int | None): reflect padding [px]; None: 4 x the kernel's larger side.

    Returns:
        Tensor: (B, C, H, W) X̂, encoded as x.
    """
    x, kernel, pad = _prepare(x, kernel, boundary, pad)
    if (noise_var is None) == (lam is None):
        raise ValueError('converse: give exactly one of noise_var and lam')
    if is_channel_mixing(kernel):
        raise ValueError('converse: Converse2D inverts depthwise kernels only; this kernel mixes channels')

    def solve(observed):
        if lam is not None:
            return converse2d(observed, kernel, lam)
        identity = torch.zeros_like(kernel)
        identity[..., kernel.shape[-2] // 2, kernel.shape[-1] // 2] = 1
        deviation_power = prior_power(observed, noise_var, identity - kernel) + noise_var
        return converse2d(observed, kernel, noise_var / deviation_power)

    return _solve(solve, x, linear_light, pad)


def demosaic_wiener(x, kernel, cfa='RGGB', noise_var=None, balance=None, linear_light=False, boundary='reflect',
                    pad=None, return_rgb=False):
    """Demosaic first, then deconvolve in RGB: the baseline of a pipeline that ignores the mosaic.

    The degraded packed raw is unpacked and demosaiced (:func:`newbp_plugin.sensor.mosaic.demosaic`,
    OpenCV bilinear, values clipped to [0, 1]); :func:`wiener` restores the RGB image with the
    RGB-equivalent kernel of each sample's mosaic crosstalk
    (:func:`newbp_plugin.kernels.bayer.rgb_equivalent_kernel` of its phase kernels) and, per
    colour, the mean σ² of that colour's phases (an upper bound: interpolation averages noise;
    Wiener's prior power is fitted to the image anyway); the result is mosaicked back on ``cfa`` and
    packed, to be compared on raw.

    Args:
        x (Tensor): (B, 4, h, w) packed raw (:func:`newbp_plugin.sensor.mosaic.pack`), linear.
        kernel (Tensor | ndarray): packed (4, 4, s, s) or (1|B, 4, 4, s, s) kernel.
        cfa (str): the CFA pattern of x. Default: 'RGGB'.
        noise_var (float | Tensor | None): σ² of the raw, a number or broadcastable to (B, 4, 1, 1).
        balance (float | Tensor | None): Wiener's β itself, instead of ``noise_var``.
        linear_light (bool): must be false (raw is linear).
        boundary (str): 'reflect' or 'circular' (module docstring).
        pad (int | None): reflect padding [px] of the full-resolution RGB; None: 4 x the kernel's side.
        return_rgb (bool): also return the restored RGB. Default: False.

    Returns:
        Tensor | tuple: (B, 4, h, w) restored packed raw; with ``return_rgb``, and the (B, 3, 2h, 2w)
        restored camera RGB (linear, not clipped).
    """
    if linear_light:
        raise ValueError('demosaic_wiener: raw is linear; linear_light must be false')
    if not torch.is_tensor(x) or x.dim() != 4 or x.shape[1] != 4 or not x.is_floating_point():
        raise ValueError(f'demosaic_wiener: x must be (B, 4, h, w) packed raw, got {getattr(x, "shape", type(x))}')
    kernel = torch.as_tensor(kernel).to(device=x.device, dtype=x.dtype)
    kernel = kernel[None] if kernel.dim() == 4 else kernel
    if kernel.dim() != 5 or tuple(kernel.shape[1:3]) != (4, 4):
        raise ValueError(f'demosaic_wiener: kernel must be packed, (4, 4, s, s) or (1|B, 4, 4, s, s), got '
                         f'{tuple(kernel.shape)}')
    rgb_kernel = torch.stack([rgb_equivalent_kernel(packed_to_phase_kernels(packed), cfa) for packed in kernel])
    channels = torch.tensor(phase_channels(cfa), device=x.device)
    rgb_noise = None
    if noise_var is not None:
        phase_var = torch.as_tensor(noise_var, dtype=x.dtype, device=x.device).expand(x.shape[:1] + (4, 1, 1))
        rgb_noise = torch.stack([phase_var[:, channels == colour].mean(1) for colour in range(3)], dim=1)
    restored = wiener(demosaic(unpack(x), cfa), rgb_kernel, noise_var=rgb_noise, balance=balance, boundary=boundary,
                      pad=pad)
    packed = pack(mosaic(restored, cfa))
    return (packed, restored) if return_rgb else packed


def _prepare(x, kernel, boundary, pad):
    """x checked, kernel as a tensor on x's device and dtype, and the padding [px] of each side (0: circular)."""
    if not torch.is_tensor(x) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f'x must be a (B, C, H, W) float tensor, got {getattr(x, "shape", type(x).__name__)}')
    if boundary not in BOUNDARIES:
        raise ValueError(f'boundary must be one of {BOUNDARIES}, got {boundary!r}')
    kernel = torch.as_tensor(kernel).to(device=x.device, dtype=x.dtype)
    if boundary == 'circular':
        return x, kernel, 0
    pad = PAD_PER_KERNEL_SIDE * max(kernel.shape[-2:]) if pad is None else pad
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ValueError(f'pad must be an integer >= 0 (pixels), got {pad!r}')
    return x, kernel, min(pad, x.shape[-2] - 1, x.shape[-1] - 1)  # F.pad's reflection needs pad < size


def _solve(solve, x, linear_light, pad):
    """``solve`` applied in the working domain, on the grid reflect-padded by ``pad`` [px] on each side."""
    optics = SensorOptics(linear_light)  # the light the sensor's K acted in
    restored = solve(F.pad(optics.to_linear(x), (pad, ) * 4, mode='reflect'))
    return optics.to_encoded(restored[..., pad:pad + x.shape[-2], pad:pad + x.shape[-1]])
