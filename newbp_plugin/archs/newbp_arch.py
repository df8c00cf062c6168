"""NewBPNAFNet: a NAFNet body, optional Converse blocks, and the NewBP crosstalk head (seed 000).

The sensor degrades the clean image Y into ``X = K * Y + N``. The body predicts a
pre-compensated map S and the head applies the *physical* kernel: ``Ŷ = K * S``, compared
with Y by the loss. The head's backward is the explicit Jacobian transpose of
:func:`newbp_plugin.ops.crosstalk`, which equals autograd: NewBP is an architectural prior.
Where the global skip goes therefore matters; see :class:`NewBPNAFNet` for the variants.
"""
import inspect
import logging

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from newbp_plugin.archs.checkpoint import load_checkpoint
from newbp_plugin.archs.converse_arch import ConverseBlock, ConverseBlockAlphaVariant, KernelConverse
from newbp_plugin.archs.nafnet_arch import NAFNet
from newbp_plugin.ops.newbp import PADDING_MODES
from newbp_plugin.sensor import is_channel_mixing, physical_kernel, select_kernel
from newbp_plugin.sensor.optics import SensorOptics
from newbp_plugin.options import check_options
from newbp_plugin.registration import register

logger = logging.getLogger('basicsr')

HEADS = ('newbp', 'none')
SKIPS = ('input', 'none', 'converse')
OUTPUTS = ('direct', 'residual')
CONVERSE_BLOCKS = {'plain': ConverseBlock, 'alpha': ConverseBlockAlphaVariant}


class NewBPHead(nn.Module):
    """The NewBP head: ``Ŷ = K * S`` with the physical kernel K (``ops.crosstalk``, explicit Jᵀ backward).

    Args:
        channels (int): C, the image channels. Default: 3.
        kernel (dict | str | Tensor | ndarray | None): a fixed kernel spec
            (``{type: crosstalk, ...}``, see :func:`newbp_plugin.kernels.build_kernel`) or PSF,
            stored as ``kernel`` (a buffer: in the state_dict, not a parameter); None: the
            kernel is given per call. Default: None.
        learnable_kernel (bool): make ``kernel`` a parameter, initialised from the spec and
            unconstrained; it is then used even when a kernel is given per call. Default: False.
        optics (SensorOptics | None): how K meets the border (its ``padding_mode``); the head
            applies K to S as it is (S is already in the light K acts on). Default: the sensor's
            defaults (reflect, as CrosstalkDataset degrades).

    Shape:
        forward(s, kernel=None): s (B, C, H, W); kernel per call in any layout of
        :mod:`newbp_plugin.sensor.layout`, used instead of a fixed buffer -> (B, C, H, W).
    """

    def __init__(self, channels=3, kernel=None, learnable_kernel=False, optics=None):
        super().__init__()
        kernel = physical_kernel(kernel, channels, 'NewBPHead')
        if learnable_kernel and kernel is None:
            raise ValueError('NewBPHead: learnable_kernel needs a kernel (spec or PSF) to start from')
        self.learnable_kernel = learnable_kernel
        self.optics = SensorOptics() if optics is None else optics
        if learnable_kernel:
            self.kernel = nn.Parameter(kernel)
        else:
            self.register_buffer('kernel', kernel)

    def extra_repr(self):
        return f'learnable_kernel={self.learnable_kernel}, optics={self.optics}'

    def forward(self, s, kernel=None):
        kernel = select_kernel(kernel, self.kernel, 'NewBPHead', own_wins=self.learnable_kernel)
        return self.optics.blur(s, kernel)


@register(ARCH_REGISTRY)
class NewBPNAFNet(nn.Module):
    """NAFNet body -> optional Converse blocks -> NewBP head, with the skip variants to measure.

    Notation: X the input, K the sensor kernel, R the body's output before NAFNet's global
    skip (its ending conv, with any Converse blocks inside), X' = KernelConverse_K(X) when
    ``entrance_converse`` else X (what the body sees), C_p(X) a learned-λ reverse
    convolution of X with K ⊛ ... ⊛ K (p factors). The network returns Ŷ, and S when asked:

    ============================  ==========================  ===================================
    options                       S                           Ŷ
    ============================  ==========================  ===================================
    skip: input                   R + X' (NAFNet's skip)      K * S (X passes K twice: ~K*K*Y)
    skip: none                    R                           K * S (the body makes all of S)
    skip: converse (default)      R + C_2(X)                  K * S; K * C_2(X) ≈ K⁻¹X ≈ Y
    output: residual              R                           X + K * R
    head: none, skip: input       R + X'                      S (exactly NAFNet without converse)
    head: none, skip: converse    R + C_1(X)                  S (NAFNet with a non-blind skip)
    ============================  ==========================  ===================================

    With ``linear_light`` (the default, matching CrosstalkDataset), X in S and in the residual
    form stands for srgb_to_linear(X) and Ŷ is encoded back: Ŷ = linear_to_srgb(K * S).

    The constructor's default (head newbp, skip converse, output direct) is the design's
    hypothesis. The ablation on the front-door recipe (``benchmarks/ablation.py``, README) measured
    ``output: residual`` best among these variants, so the shipped recipes set it; plain NAFNet
    still scored higher there.
    The body's modules are kept under ``body.`` with exactly NAFNet's keys; ``pretrain_body``
    loads a NAFNet zoo checkpoint into it.

    Args:
        img_channel (int): image channels C (NAFNet). Default: 3.
        width (int): channels of the first level (NAFNet). Default: 16.
        middle_blk_num (int): NAFBlocks at the lowest resolution (NAFNet). Default: 1.
        enc_blk_nums (sequence[int]): NAFBlocks per encoder level (NAFNet). Default: ().
        dec_blk_nums (sequence[int]): NAFBlocks per decoder level (NAFNet). Default: ().
        head (str): 'newbp' (Ŷ = K * S) or 'none' (Ŷ = S). Default: 'newbp'.
        kernel (dict | str | Tensor | ndarray | None): fixed sensor kernel, spec
            (``{type: crosstalk, ...}``) or PSF, stored as the buffer ``kernel``; None: the
            kernel of each sample is given to forward (NewBPModel passes the batch's). Default: None.
        learnable_kernel (bool): ``kernel`` is a parameter (initialised from the spec) used by the
            head and the KernelConverse modules, instead of the per-sample kernel. Default: False.
        head_padding_mode (str): boundary of K * S: 'zeros', 'reflect', 'replicate' or
            'circular'. Default: 'reflect' (as CrosstalkDataset degrades).
        linear_light (bool): the kernel acts on linear light, as CrosstalkDataset's
            ``linear_light`` degrades: X is decoded from sRGB for the skip and the KernelConverse
            modules, S is linear, and Ŷ = srgb(K * S). The body still sees sRGB-encoded images
            (as zoo weights expect). No effect with head 'none'. Default: True.
        skip (str | None): global skip inside S: 'input', 'none' or 'converse' (see the table).
            Default: None, i.e. 'converse', or 'none' with ``output: residual``.
        output (str): 'direct' (Ŷ = K * S) or 'residual' (Ŷ = X + K * R; needs the head and
            skip 'none'). Default: 'direct'.
        entrance_converse (bool): a KernelConverse with K at the input (X'). Default: False.
        middle_converse_blocks (int): Converse blocks after the body's middle blocks. Default: 0.
        ending_converse_blocks (int): Converse blocks before the body's ending conv (full
            resolution, ``width`` channels). Default: 0.
        converse_block (str): 'alpha' (ConverseBlockAlphaVariant: the identity at
            initialisation, so a pretrained body keeps its function) or 'plain'
            (ConverseBlock). Default: 'alpha'.
        converse_kernel_size (int): kernel side of the blocks' Converse2D. Default: 3.
        converse_padding (int): padding of the blocks' Converse2D. Default: 2.
        converse_padding_mode (str): padding mode of the blocks' Converse2D. Default: 'replicate'.
        kernel_converse_padding (int | None): padding of the KernelConverse modules (entrance,
            skip); None: their kernel's side minus 1. Default: None.
        kernel_converse_padding_mode (str): their padding mode. Default: 'replicate'.
        kernel_converse_init_lambda (float | None): their initial λ; None: the seed's ≈ 1.33e-4.
            Default: None.
        pretrain_body (str | None): NAFNet checkpoint loaded into the body (strict). Default: None.
        pretrain_body_key (str): its wrapper key ('params', 'params_ema', ...). Default: 'params'.

    Shape:
        forward(x, kernel=None, return_s=False): x (B, C, H, W), any H and W; kernel as
        :class:`NewBPHead` -> Ŷ (B, C, H, W), or (Ŷ, S) when ``return_s``.
    """

    def __init__(self, img_channel=3, width=16, middle_blk_num=1, enc_blk_nums=(), dec_blk_nums=(), head='newbp',
                 kernel=None, learnable_kernel=False, head_padding_mode='reflect', linear_light=True, skip=None,
                 output='direct',
                 entrance_converse=False, middle_converse_blocks=0, ending_converse_blocks=0, converse_block='alpha',
                 converse_kernel_size=3, converse_padding=2, converse_padding_mode='replicate',
                 kernel_converse_padding=None, kernel_converse_padding_mode='replicate',
                 kernel_converse_init_lambda=None, pretrain_body=None, pretrain_body_key='params', **unknown_options):
        super().__init__()
        check_options(unknown_options, [name for name in inspect.signature(NewBPNAFNet.__init__).parameters
                                        if name not in ('self', 'unknown_options')], 'NewBPNAFNet')
        if skip is None:
            skip = 'none' if output == 'residual' else 'converse'
        for name, value, choices in (('head', head, HEADS), ('skip', skip, SKIPS), ('output', output, OUTPUTS),
                                     ('converse_block', converse_block, tuple(CONVERSE_BLOCKS)),
                                     ('head_padding_mode', head_padding_mode, PADDING_MODES),
                                     ('converse_padding_mode', converse_padding_mode, PADDING_MODES),
                                     ('kernel_converse_padding_mode', kernel_converse_padding_mode, PADDING_MODES)):
            if value not in choices:
                raise ValueError(f'NewBPNAFNet: option {name}={value!r} is not one of {list(choices)}')
        for name, value in (('middle_converse_blocks', middle_converse_blocks),
                            ('ending_converse_blocks', ending_converse_blocks)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f'NewBPNAFNet: option {name} must be an integer >= 0, got {value!r}')
        if output == 'residual' and (head == 'none' or skip != 'none'):
            raise ValueError(f'NewBPNAFNet: output: residual (Ŷ = X + K * R) needs head: newbp and skip: none, got '
                             f'head: {head}, skip: {skip}; without a head it is NAFNet (head: none, skip: input)')

        kernel = physical_kernel(kernel, img_channel, 'NewBPNAFNet')
        if learnable_kernel and kernel is None:
            raise ValueError('NewBPNAFNet: learnable_kernel needs a kernel (spec or PSF) to start from')
        if kernel is not None and is_channel_mixing(kernel) and (entrance_converse or skip == 'converse'):
            raise ValueError('NewBPNAFNet: the kernel mixes channels; entrance_converse and skip: converse invert '
                             'depthwise kernels only. Use skip: input or none, entrance_converse: false.')

        self.skip = skip
        self.output = output
        self.learnable_kernel = learnable_kernel
        self.body = NAFNet(img_channel, width, middle_blk_num, enc_blk_nums, dec_blk_nums)
        if pretrain_body is not None:
            report = load_checkpoint(self.body, pretrain_body, param_key=pretrain_body_key, strict=True)
            logger.info(f'NewBPNAFNet: body loaded from {pretrain_body} [{report.param_key or "bare state_dict"}].')

        block = CONVERSE_BLOCKS[converse_block]
        block_options = dict(kernel_size=converse_kernel_size, padding=converse_padding,
                             padding_mode=converse_padding_mode)
        middle_channels = width * 2**len(enc_blk_nums)
        self.middle_converse = nn.Sequential(
            *[block(middle_channels, middle_channels, **block_options) for _ in range(middle_converse_blocks)])
        self.ending_converse = nn.Sequential(*[block(width, width, **block_options)
                                               for _ in range(ending_converse_blocks)])

        kernel_converse_options = dict(padding=kernel_converse_padding, padding_mode=kernel_converse_padding_mode,
                                       init_lambda=kernel_converse_init_lambda)
        self.entrance = KernelConverse(img_channel, **kernel_converse_options) if entrance_converse else None
        # under the head the skip passes K once more: invert K ⊛ K so that K * skip ≈ K⁻¹X ≈ Y
        skip_power = 2 if head == 'newbp' else 1
        self.skip_inverse = (KernelConverse(img_channel, kernel_power=skip_power, **kernel_converse_options)
                             if skip == 'converse' else None)
        self.optics = SensorOptics(bool(linear_light) and head == 'newbp', head_padding_mode)  # as the data's
        self.head = NewBPHead(img_channel, optics=self.optics) if head == 'newbp' else None

        if learnable_kernel:
            self.kernel = nn.Parameter(kernel)
        else:
            self.register_buffer('kernel', kernel)

    def body_output(self, x):
        """R: the body's output before NAFNet's global skip, with the Converse blocks in place."""
        return self.body.residual(x, after_middle=self.middle_converse, before_ending=self.ending_converse)

    def forward(self, x, kernel=None, return_s=False):
        """Ŷ, or (Ŷ, S) when ``return_s``; ``kernel``: the per-sample kernels (see NewBPHead)."""
        if self.head is not None or self.entrance is not None or self.skip_inverse is not None:
            kernel = select_kernel(kernel, self.kernel, 'NewBPNAFNet', own_wins=self.learnable_kernel)
        x_physical = self.optics.to_linear(x)
        entrance = x_physical if self.entrance is None else self.entrance(x_physical, kernel)
        body_input = x if self.entrance is None else self.optics.to_encoded(entrance)
        s = self.body_output(body_input)
        if self.skip == 'input':
            s = s + entrance
        elif self.skip == 'converse':
            s = s + self.skip_inverse(x_physical, kernel)
        if self.head is None:
            restored = s
        else:
            restored = self.head(s, kernel)
            if self.output == 'residual':
                restored = x_physical + restored
            restored = self.optics.to_encoded(restored)
        return (restored, s) if return_s else restored

