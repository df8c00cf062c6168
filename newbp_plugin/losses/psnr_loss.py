"""PSNR loss of NAFNet, registered in BasicSR's LOSS_REGISTRY."""
import math

import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from newbp_plugin.registration import register

_REDUCTIONS = ('none', 'mean', 'sum')
# ITU-R BT.601 luma of RGB in [0, 1], scaled to [16, 235] then back to [0, 1] (as NAFNet and BasicSR do)
_Y_WEIGHTS = (65.481, 128.553, 24.966)


@register(LOSS_REGISTRY)
class PSNRLoss(nn.Module):
    """Negative PSNR: ``loss_weight * 10 * log10(MSE + eps)`` per image, reduced over the batch.

    The value is *minus* the PSNR in dB of images in [0, 1] (lower is better: -35
    means 35 dB), as in NAFNet. ``eps = 1e-8`` caps a perfect prediction at -80
    instead of -inf/NaN.

    Args:
        loss_weight (float): weight of the loss. Default: 1.0.
        reduction (str): 'mean' | 'sum' over the batch, or 'none' for (B,). Default: 'mean'.
        toY (bool): compare the BT.601 luma (Y of YCbCr) of RGB inputs. Default: False.
        eps (float): added to the MSE before the log. Default: 1e-8.
    """

    def __init__(self, loss_weight=1.0, reduction='mean', toY=False, eps=1e-8):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f'PSNRLoss: unsupported reduction {reduction!r}; choose from {", ".join(_REDUCTIONS)}')
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.toY = toY
        self.eps = eps
        self.register_buffer('y_weights', torch.tensor(_Y_WEIGHTS).reshape(1, 3, 1, 1), persistent=False)

    def _luma(self, img):
        return ((img * self.y_weights).sum(dim=1, keepdim=True) + 16.) / 255.

    def forward(self, pred, target, **kwargs):
        """pred, target: (B, C, H, W) in [0, 1]; returns a scalar (or (B,) with reduction 'none')."""
        if self.toY:
            if pred.size(1) != 3:
                raise ValueError(f'PSNRLoss(toY=True) needs RGB (B, 3, H, W) input, got {tuple(pred.shape)}')
            pred, target = self._luma(pred), self._luma(target)
        mse = (pred - target).pow(2).flatten(1).mean(dim=1)
        loss = (10 / math.log(10)) * torch.log(mse + self.eps)
        if self.reduction == 'mean':
            loss = loss.mean()
        elif self.reduction == 'sum':
            loss = loss.sum()
        return self.loss_weight * loss
