"""NAFNet and its test-time local-statistics variant NAFNetLocal.

Simple Baselines for Image Restoration (Chen, Chu, Zhang, Sun, ECCV 2022), and
Revisiting Global Statistics Aggregation for Improving Image Restoration (TLC: Chu, Chen,
Chen, Lu, ECCV 2022), written for this plugin. Constructor arguments, module names, hence
state_dict keys and shapes, and the numerics are those of megvii-research/NAFNet
(``basicsr/models/archs/NAFNet_arch.py``), so its model-zoo files (``{'params': state_dict}``)
load with ``strict=True`` and give the same outputs (tests/test_nafnet_arch.py checks both
against fixtures made with the upstream code).
"""
import math

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F

from newbp_plugin.archs.layer_norm import LayerNorm2d
from newbp_plugin.registration import register


class SimpleGate(nn.Module):
    """Split the channels in two halves and multiply them: the nonlinearity of NAFNet.

    Shape:
        input (N, 2C, H, W) -> output (N, C, H, W).
    """

    def forward(self, x):
        first, second = x.chunk(2, dim=1)
        return first * second


class LocalAvgPool2d(nn.Module):
    """Mean over a local window, output of the input's size: TLC's stand-in for a global pool.

    A network trained on crops averages its channel-attention statistics over a crop; on a
    full-resolution image a global mean averages over a much larger area than in training.
    TLC replaces the global mean by the mean over a ``kernel_size`` window around each pixel
    (means of the windows that fit inside the input, replicated towards the borders where
    the window would stick out), and keeps the global mean where the window covers the input.

    Args:
        kernel_size (tuple[int, int]): window (kh, kw).
        fast_imp (bool): approximate the window mean on a grid subsampled by the largest
            factor r in 5, 4, 3, 2, 1 that divides the size and is at most ``max_subsample``
            (nearest upsampling back). Faster, not equal to the exact mean. Default: False.
        max_subsample (tuple[int, int]): largest subsampling factors of ``fast_imp``.

    Shape:
        input (N, C, H, W) -> output (N, C, H, W), or (N, C, 1, 1) when the window covers the
        input. Integral images are summed in at least float32; the output has the input dtype.
    """

    subsample_factors = (5, 4, 3, 2, 1)

    def __init__(self, kernel_size, fast_imp=False, max_subsample=(5, 5)):
        super().__init__()
        self.kernel_size = tuple(kernel_size)
        self.fast_imp = fast_imp
        self.max_subsample = tuple(max_subsample)

    def extra_repr(self):
        return f'kernel_size={self.kernel_size}, fast_imp={self.fast_imp}, max_subsample={self.max_subsample}'

    def forward(self, x):
        height, width = x.shape[-2:]
        kernel_h, kernel_w = self.kernel_size
        if kernel_h >= height and kernel_w >= width:
            return F.adaptive_avg_pool2d(x, 1)
        xc = x.to(torch.promote_types(x.dtype, torch.float32))
        if self.fast_imp:
            out = self._subsampled_window_mean(xc)
        else:
            out = self._window_mean(xc)
        pad_h, pad_w = height - out.shape[-2], width - out.shape[-1]
        out = F.pad(out, (pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2), mode='replicate')
        return out.to(x.dtype)

    def _window_mean(self, x):
        """Exact means over every window inside the input (integral image): (H - kh + 1, W - kw + 1)."""
        kh, kw = min(x.shape[-2], self.kernel_size[0]), min(x.shape[-1], self.kernel_size[1])
        integral = F.pad(x.cumsum(dim=-1).cumsum(dim=-2), (1, 0, 1, 0))
        window_sum = (integral[..., kh:, kw:] + integral[..., :-kh, :-kw] - integral[..., :-kh, kw:] -
                      integral[..., kh:, :-kw])
        return window_sum / (kh * kw)

    def _subsampled_window_mean(self, x):
        """Window means on the subsampled grid, upsampled back by nearest: (r1 (H/r1 - k1), r2 (W/r2 - k2))."""
        r1, r2 = (min(next(r for r in self.subsample_factors if size % r == 0), limit)
                  for size, limit in zip(x.shape[-2:], self.max_subsample))
        integral = x[..., ::r1, ::r2].cumsum(dim=-1).cumsum(dim=-2)
        k1 = min(integral.shape[-2] - 1, self.kernel_size[0] // r1)
        k2 = min(integral.shape[-1] - 1, self.kernel_size[1] // r2)
        window_sum = (integral[..., :-k1, :-k2] - integral[..., :-k1, k2:] - integral[..., k1:, :-k2] +
                      integral[..., k1:, k2:])
        return F.interpolate(window_sum / (k1 * k2), scale_factor=(r1, r2), mode='nearest')


class NAFBlock(nn.Module):
    """Nonlinear-activation-free block: two residual branches with learned scales.

    ``y = x + beta * conv3(SCA(SimpleGate(dwconv3x3(conv1(LN(x))))))`` (spatial mixing), then
    ``out = y + gamma * conv5(SimpleGate(conv4(LN(y))))`` (channel feed-forward), where
    SCA(f) = f * conv1x1(mean_hw(f)) is the simplified channel attention. ``beta`` and
    ``gamma`` start at zero: a new block is the identity.

    Args:
        channels (int): input and output channels C.
        dw_expand (int): expansion of the spatial branch (its depthwise conv has
            ``dw_expand * C`` channels). Default: 2.
        ffn_expand (int): expansion of the feed-forward branch. Default: 2.

    Shape:
        input (N, C, H, W) -> output (N, C, H, W).
    """

    def __init__(self, channels, dw_expand=2, ffn_expand=2):
        super().__init__()
        # Modules are registered in the order of upstream NAFNet, so that state_dict keys
        # come in the same order (own parameters beta, gamma first, then the submodules).
        dw_channels = channels * dw_expand
        ffn_channels = channels * ffn_expand
        # spatial branch: conv1 -> depthwise conv2 -> gate -> channel attention -> conv3
        self.conv1 = nn.Conv2d(channels, dw_channels, kernel_size=1)
        self.conv2 = nn.Conv2d(dw_channels, dw_channels, kernel_size=3, padding=1, groups=dw_channels)
        self.conv3 = nn.Conv2d(dw_channels // 2, channels, kernel_size=1)
        # Simplified channel attention. Index 0 is the pooling (NAFNetLocal swaps it for a
        # LocalAvgPool2d); the conv is index 1, hence the checkpoint keys 'sca.1.weight/bias'.
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw_channels // 2, dw_channels // 2, kernel_size=1))
        self.gate = SimpleGate()
        # feed-forward branch: conv4 -> gate -> conv5
        self.conv4 = nn.Conv2d(channels, ffn_channels, kernel_size=1)
        self.conv5 = nn.Conv2d(ffn_channels // 2, channels, kernel_size=1)

        self.norm1 = LayerNorm2d(channels)
        self.norm2 = LayerNorm2d(channels)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x):
        branch = self.gate(self.conv2(self.conv1(self.norm1(x))))
        branch = self.conv3(branch * self.sca(branch))
        x = x + branch * self.beta

        branch = self.conv5(self.gate(self.conv4(self.norm2(x))))
        return x + branch * self.gamma


@register(ARCH_REGISTRY)
class NAFNet(nn.Module):
    """NAFNet: a U-Net of NAFBlocks with a global residual, ``out = x + net(x)``.

    intro conv3x3 (img_channel -> width); per level an encoder stage of NAFBlocks and a 2x2
    stride-2 conv (channels x2); middle NAFBlocks; per level a conv1x1 + PixelShuffle(2)
    (channels /2), the encoder features of that level added, a decoder stage; ending conv3x3
    (width -> img_channel). Inputs of any size are zero-padded at the bottom and right to a
    multiple of 2**len(enc_blk_nums) and the output is cropped back.

    Zoo configurations: GoPro (deblurring) width 32, enc [1, 1, 1, 28], middle 1,
    dec [1, 1, 1, 1]; SIDD (denoising) width 64, enc [2, 2, 4, 8], middle 12, dec [2, 2, 2, 2].

    Args:
        img_channel (int): channels of the input and output images. Default: 3.
        width (int): channels of the first level (doubled at every downsampling). Default: 16.
        middle_blk_num (int): NAFBlocks at the lowest resolution. Default: 1.
        enc_blk_nums (sequence[int]): NAFBlocks of each encoder level. Default: () (no level).
        dec_blk_nums (sequence[int]): NAFBlocks of each decoder level, the lowest first; as
            many levels as ``enc_blk_nums``. Default: ().

    Shape:
        input (N, img_channel, H, W) -> output (N, img_channel, H, W).
    """

    def __init__(self, img_channel=3, width=16, middle_blk_num=1, enc_blk_nums=(), dec_blk_nums=()):
        super().__init__()
        if len(enc_blk_nums) != len(dec_blk_nums):
            raise ValueError(f'NAFNet: enc_blk_nums {list(enc_blk_nums)} and dec_blk_nums {list(dec_blk_nums)} '
                             'must have one entry per level, as many for the encoder as for the decoder.')
        # registered in the order of upstream NAFNet, so that state_dict keys come in the same order
        self.intro = nn.Conv2d(img_channel, width, kernel_size=3, padding=1)
        self.ending = nn.Conv2d(width, img_channel, kernel_size=3, padding=1)
        self.encoders = nn.ModuleList()
        self.decoders = nn.ModuleList()
        self.middle_blks = nn.Sequential()
        self.ups = nn.ModuleList()
        self.downs = nn.ModuleList()

        channels = width
        for num_blocks in enc_blk_nums:
            self.encoders.append(nn.Sequential(*[NAFBlock(channels) for _ in range(num_blocks)]))
            self.downs.append(nn.Conv2d(channels, 2 * channels, kernel_size=2, stride=2))
            channels *= 2

        self.middle_blks.extend(NAFBlock(channels) for _ in range(middle_blk_num))

        for num_blocks in dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(channels, 2 * channels, kernel_size=1, bias=False),
                                          nn.PixelShuffle(2)))
            channels //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(channels) for _ in range(num_blocks)]))

        self.size_multiple = 2**len(self.encoders)

    def forward(self, x):
        return x + self.residual(x)

    def residual(self, x, after_middle=None, before_ending=None, after_intro=None):
        """R, the output before the global skip (``forward(x) = x + R``): the U-Net walk, written once.

        Args:
            x (Tensor): (N, img_channel, H, W).
            after_middle (nn.Module | None): applied to the features after the middle blocks
                (lowest resolution); an insertion point for subclasses and wrappers.
            before_ending (nn.Module | None): applied to the full-resolution features before the
                ending conv.
            after_intro (callable | None): applied to the features of the intro conv (N, width,
                H', W'), H' and W' padded to ``size_multiple``; e.g. to add a conditioning map.

        Returns:
            Tensor: (N, img_channel, H, W).
        """
        height, width = x.shape[-2:]
        features = self.intro(self.pad_to_size_multiple(x))
        if after_intro is not None:
            features = after_intro(features)

        encoder_features = []
        for encoder, down in zip(self.encoders, self.downs):
            features = encoder(features)
            encoder_features.append(features)
            features = down(features)

        features = self.middle_blks(features)
        if after_middle is not None:
            features = after_middle(features)

        for decoder, up, skip in zip(self.decoders, self.ups, reversed(encoder_features)):
            features = decoder(up(features) + skip)

        if before_ending is not None:
            features = before_ending(features)
        return self.ending(features)[..., :height, :width]

    def pad_to_size_multiple(self, x):
        """Zero-pad (N, C, H, W) at the bottom and right to multiples of ``self.size_multiple``."""
        pad_h = -x.shape[-2] % self.size_multiple
        pad_w = -x.shape[-1] % self.size_multiple
        return F.pad(x, (0, pad_w, 0, pad_h))

    def blocks_with_level(self):
        """Yield ``(level, block)`` for every NAFBlock; level = downsamplings before it (0 = full size)."""
        num_levels = len(self.encoders)
        for level, encoder in enumerate(self.encoders):
            for block in encoder:
                yield level, block
        for block in self.middle_blks:
            yield num_levels, block
        for index, decoder in enumerate(self.decoders):
            for block in decoder:
                yield num_levels - 1 - index, block


@register(ARCH_REGISTRY)
class NAFNetLocal(NAFNet):
    """NAFNet with test-time local statistics (TLC) for inference on images larger than the crops.

    Same weights (state_dict keys) as NAFNet. The global mean of every block's channel
    attention is replaced by a :class:`LocalAvgPool2d` whose window is 1.5x the size the
    block's feature map had at ``train_size``. On inputs no larger than 1.5x ``train_size``
    (after padding) the window covers the map and the network equals NAFNet.

    Args:
        img_channel, width, middle_blk_num, enc_blk_nums, dec_blk_nums: as :class:`NAFNet`.
        train_size (sequence[int]): (N, C, H, W) of the training crops; only H and W are
            used. Default: (1, 3, 256, 256).
        fast_imp (bool): the faster, approximate window mean (see :class:`LocalAvgPool2d`).
            Default: False.

    Shape:
        input (N, img_channel, H, W) -> output (N, img_channel, H, W).
    """

    def __init__(self, img_channel=3, width=16, middle_blk_num=1, enc_blk_nums=(), dec_blk_nums=(),
                 train_size=(1, 3, 256, 256), fast_imp=False):
        super().__init__(img_channel, width, middle_blk_num, enc_blk_nums, dec_blk_nums)
        train_h, train_w = train_size[-2:]
        base_h, base_w = int(train_h * 1.5), int(train_w * 1.5)
        # sizes of the feature maps of level 0 at train_size (the input is padded first)
        padded_h = math.ceil(train_h / self.size_multiple) * self.size_multiple
        padded_w = math.ceil(train_w / self.size_multiple) * self.size_multiple
        largest_subsample = LocalAvgPool2d.subsample_factors[0]
        for level, block in self.blocks_with_level():
            feature_h, feature_w = padded_h >> level, padded_w >> level
            block.sca[0] = LocalAvgPool2d(
                kernel_size=(feature_h * base_h // train_h, feature_w * base_w // train_w),
                fast_imp=fast_imp,
                max_subsample=(max(1, largest_subsample * feature_h // train_h),
                               max(1, largest_subsample * feature_w // train_w)))
