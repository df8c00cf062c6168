"""The Poisson–Gaussian noise of one observed image, estimated from the image alone.

After Foi et al., "Practical Poissonian-Gaussian noise modeling and fitting for single-image
raw-data" (IEEE TIP 2008), simplified: the noise's variance at signal b is ``gain · b + read²``.

1. In linear light, Immerkær's mask (the product of two second differences, ``[1, -2, 1]`` down
   and across, over its norm 6) keeps the noise's variance at each 3×3 window (white noise,
   nearly the same over the window) and almost nothing of a blurred image, whose content is
   smooth at that scale; the window's mean is the signal. Windows holding a clipped pixel
   (0 or 1 in the file), whose noise clipping narrowed, are left out.
2. The windows are sorted by signal into ``levels`` bins of equal count; in each bin the
   variance is the squared median absolute detail over 0.6745 (robust to the edges and texture
   left in some windows).
3. ``gain`` and ``read²`` are the non-negative least-squares fit of those variances, per channel.

What the estimate is worth (its error on the 12 colour test crops) is measured in
``benchmarks/noise_estimate.py`` (``benchmarks/RESULTS.md``).
"""
import torch

from newbp_plugin.sensor.clipping import unclipped_windows
from newbp_plugin.sensor.optics import SensorOptics

MAD_TO_SIGMA = 0.6745  # median |N(0, 1)|
LAPLACIAN_DIFFERENCE = torch.tensor([[1., -2, 1], [-2, 4, -2], [1, -2, 1]])  # Immerkær's mask


def _fit_line(signal, variance):
    """Non-negative least squares of ``variance ≈ gain · signal + offset`` -> (gain, offset), 1-D inputs."""
    design = torch.stack([signal, torch.ones_like(signal)], 1)
    gain, offset = torch.linalg.lstsq(design, variance[:, None]).solution[:, 0]
    if gain >= 0 and offset >= 0:
        return gain, offset
    candidates = [(torch.zeros_like(gain), variance.mean().clamp(min=0)),  # offset alone
                  (((signal * variance).sum() / signal.square().sum()).clamp(min=0), torch.zeros_like(gain))]
    return min(candidates, key=lambda line: float((line[0] * signal + line[1] - variance).square().sum()))


@torch.no_grad()
def estimate_noise(x, linear_light=True, levels=16):
    """The noise parameters of each image of ``x``, as :class:`NoiseModel` draws them.

    Args:
        x (Tensor): (B, C, H, W) observed images in [0, 1] (sRGB-encoded when ``linear_light``),
            at least 8×8.
        linear_light (bool): the noise was added in linear light. Default: True.
        levels (int): signal bins of the fit. Default: 16.

    Returns:
        dict: ``gain`` and ``read_sigma``, (B, C) float32 tensors on the device of ``x``.
    """
    if x.ndim != 4 or min(x.shape[-2:]) < 8:
        raise ValueError(f'estimate_noise: expected (B, C, H, W) images of at least 8x8, got {tuple(x.shape)}')
    light = SensorOptics(linear_light).to_linear(x.double().clamp(0, 1))
    planes = light.flatten(0, 1)[:, None]
    detail = torch.nn.functional.conv2d(planes, LAPLACIAN_DIFFERENCE.to(planes)[None, None]).view(
        *x.shape[:2], -1) / LAPLACIAN_DIFFERENCE.square().sum().sqrt()
    signal = torch.nn.functional.avg_pool2d(planes, 3, stride=1).view(*x.shape[:2], -1)
    unclipped = unclipped_windows(x.flatten(0, 1).double(), 3).view(*x.shape[:2], -1)
    gain = torch.zeros(x.shape[:2], dtype=torch.float64, device=x.device)
    read_variance = torch.zeros_like(gain)
    for sample in range(x.shape[0]):
        for channel in range(x.shape[1]):
            means, details = signal[sample, channel], detail[sample, channel]
            kept = unclipped[sample, channel]
            if kept.sum() < levels * 8:  # a nearly black or white image: use every block
                kept = torch.ones_like(kept)
            order = means[kept].argsort()
            bins_signal, bins_variance = [], []
            for part in order.tensor_split(levels):
                if part.numel():
                    bins_signal.append(means[kept][part].mean())
                    bins_variance.append((details[kept][part].abs().median() / MAD_TO_SIGMA).square())
            gain[sample, channel], read_variance[sample, channel] = _fit_line(torch.stack(bins_signal),
                                                                              torch.stack(bins_variance))
    return {'gain': gain.float(), 'read_sigma': read_variance.sqrt().float()}
