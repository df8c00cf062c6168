"""Physics losses: re-degradation consistency and a regulariser of the pre-compensated map S."""
import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from newbp_plugin.registration import register
from newbp_plugin.sensor.optics import SensorOptics

NOISE_SIGMA = 'noise'  # RedegradationLoss's sigma: the batch's own noise level


@register(LOSS_REGISTRY)
class RedegradationLoss(nn.Module):
    """Consistency of the restored image with the measurement, through the sensor kernel.

    ``L = loss_weight * mean( max(|B(Ŷ) - X| - margin * σ, 0) / σ )``

    with ``B(Ŷ) = srgb(K * linear(Ŷ))`` the restored image degraded again as the
    data was (:class:`~newbp_plugin.sensor.optics.SensorOptics`, the optics of CrosstalkDataset
    and the NewBP head; ``K * Ŷ`` without linear light), ``X`` the degraded input and
    ``σ`` the noise standard deviation (per sample, per pixel, or a constant).
    Residuals within ``margin`` noise deviations cost nothing: the restored
    image must explain the measurement up to its noise, not reproduce the noise.
    With ``margin = 0`` and ``σ = 1`` it is the L1 distance of ``K * Ŷ`` to ``X``.

    With ``sigma: noise`` the residual is taken where the noise was added, in linear light,
    ``|K * linear(Ŷ) - linear(X)|``, and σ is the oracle noise level of each sample and channel
    (:func:`newbp_plugin.sensor.degradation.noise_variance` of the batch's draws, which
    NewBPModel passes): a residual of ``margin`` noise deviations is free whatever the noise.

    Args:
        loss_weight (float): weight of the loss. Default: 1.0.
        margin (float): free band in units of σ. Default: 0.
        sigma (float | str): σ used when the batch gives none (same units as the images), or
            ``noise``: the batch's noise level, in linear light. Default: 1.0.
        padding_mode (str): boundary of the re-blur (see ``ops.crosstalk``). Default: 'reflect'.
        linear_light (bool): blur in linear light, as CrosstalkDataset's ``linear_light``. Default: True.
    """

    def __init__(self, loss_weight=1.0, margin=0.0, sigma=1.0, padding_mode='reflect', linear_light=True):
        super().__init__()
        if margin < 0 or not (sigma == NOISE_SIGMA or isinstance(sigma, (int, float)) and sigma > 0):
            raise ValueError(f'RedegradationLoss: need margin >= 0 and sigma > 0 or {NOISE_SIGMA!r}, '
                             f'got margin={margin}, sigma={sigma!r}')
        self.loss_weight = loss_weight
        self.margin = margin
        self.sigma = sigma
        self.optics = SensorOptics(linear_light, padding_mode)

    def forward(self, pred, lq, kernel, sigma=None):
        """pred, lq: (B, C, H, W); kernel: any layout of :mod:`newbp_plugin.sensor.layout`; sigma:
        broadcastable or None (required with ``sigma: noise``: then in linear light)."""
        if self.sigma == NOISE_SIGMA:
            if sigma is None:
                raise ValueError("RedegradationLoss with sigma: noise needs the batch's noise level (the draws of "
                                 'a CrosstalkDataset batch)')
            residual = (self.optics.blur(self.optics.to_linear(pred), kernel) - self.optics.to_linear(lq)).abs()
        else:
            sigma = self.sigma if sigma is None else sigma
            residual = (self.optics.apply(pred, kernel) - lq).abs()
        return self.loss_weight * (torch.clamp(residual - self.margin * sigma, min=0) / sigma).mean()


@register(LOSS_REGISTRY)
class PrecompensationRegularizer(nn.Module):
    """Keeps the pre-compensated map S of the NewBP head physical and smooth.

    ``L = range_weight * mean(relu(S - high) + relu(low - S)) + tv_weight * (mean|∂x S| + mean|∂y S|)``

    A pre-compensation outside the range a sensor or display can produce
    ([0, 1] by default) is useless downstream; the total variation term damps
    the ringing halos that an unconstrained inverse filter creates.

    Args:
        range_weight (float): weight of the out-of-range penalty. Default: 1.0.
        tv_weight (float): weight of the anisotropic total variation. Default: 0.
        low (float): lowest valid value of S. Default: 0.
        high (float): highest valid value of S. Default: 1.
    """

    def __init__(self, range_weight=1.0, tv_weight=0.0, low=0.0, high=1.0):
        super().__init__()
        if low >= high:
            raise ValueError(f'PrecompensationRegularizer: need low < high, got low={low}, high={high}')
        self.range_weight = range_weight
        self.tv_weight = tv_weight
        self.low = low
        self.high = high

    def forward(self, s):
        """s: (B, C, H, W) pre-compensated map; returns a scalar."""
        out_of_range = torch.relu(s - self.high) + torch.relu(self.low - s)
        tv = (s[..., :, 1:] - s[..., :, :-1]).abs().mean() + (s[..., 1:, :] - s[..., :-1, :]).abs().mean()
        return self.range_weight * out_of_range.mean() + self.tv_weight * tv
