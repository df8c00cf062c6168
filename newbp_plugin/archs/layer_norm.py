"""Channel-wise layer normalisation of (N, C, H, W) feature maps."""
import torch
from torch import nn


class LayerNorm2d(nn.Module):
    """Layer normalisation over the channel dimension of each pixel, with a per-channel affine.

    ``y = weight * (x - mean_c(x)) / sqrt(var_c(x) + eps) + bias``, the mean and the (biased)
    variance taken over C at every (n, h, w). Parameter names (``weight``, ``bias``) and ``eps``
    are those of NAFNet's ``LayerNorm2d``, so NAFNet checkpoints load unchanged.

    Two differences from NAFNet's version, neither changing float32 results:

    - plain tensor ops, no custom ``torch.autograd.Function``: autograd derives the backward,
      and the module traces and exports (TorchScript, ONNX) like any other;
    - the statistics and the normalisation are computed in at least float32 (float16 and
      bfloat16 inputs are upcast, float64 stays float64), the result cast back to the input
      dtype. In float16 the squared deviations overflow (65504 is the
      largest finite value: activations of a few hundred suffice) and the output is lost;
      here fp16/bf16 inputs (``.half()``, autocast) give finite outputs.

    Args:
        channels (int): number of channels C.
        eps (float): added to the variance. Default: 1e-6 (NAFNet's).

    Shape:
        input (N, C, H, W) -> output (N, C, H, W), same dtype as the input.
    """

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        compute_dtype = torch.promote_types(x.dtype, torch.float32)
        xc = x.to(compute_dtype)
        mean = xc.mean(1, keepdim=True)
        var = (xc - mean).pow(2).mean(1, keepdim=True)
        y = (xc - mean) / (var + self.eps).sqrt()
        y = self.weight.to(compute_dtype).view(1, -1, 1, 1) * y + self.bias.to(compute_dtype).view(1, -1, 1, 1)
        return y.to(x.dtype)

    def extra_repr(self):
        return f'{self.weight.numel()}, eps={self.eps}'
