"""The one kernel convention of the plugin: every layout of the sensor kernel K as a tensor.

The number of dimensions tells the layouts apart (:func:`newbp_plugin.ops.crosstalk` applies
them all)::

    (kh, kw)                 one PSF for every channel and sample
    (C, kh, kw)              one PSF per channel
    (1|B, C, kh, kw)         per sample (depthwise)
    (1|B, C, C, kh, kw)      channel-mixing, one for all or per sample: y_c = Σ_c' K[c, c'] * x_c'

PSFs are odd-sized and centred at ``(kh // 2, kw // 2)``. Kernel specs built by
:func:`newbp_plugin.kernels.build_kernel` give numpy arrays whose channel-mixing layout is
(C, C, kh, kw); :func:`physical_kernel` turns them into this convention.
"""
import os

import torch

from newbp_plugin.kernels import build_kernel, is_random_spec
from newbp_plugin.kernels.build import as_spec


def physical_kernel(kernel, channels, owner):
    """The sensor kernel of a kernel option, as a float32 tensor in the layouts of this module.

    Args:
        kernel (dict | str | list | Tensor | ndarray | None): a fixed kernel spec of
            :func:`newbp_plugin.kernels.build_kernel` (``{type: crosstalk, ...}``, a PSF file),
            or the PSF itself: (kh, kw), (C, kh, kw), or channel-mixing (C, C, kh, kw).
        channels (int): C, the image channels.
        owner (str): the module's name, for error messages.

    Returns:
        Tensor | None: (kh, kw), (C, kh, kw) or (1, C, C, kh, kw) (channel-mixing); None for None.
    """
    if kernel is None:
        return None
    if isinstance(kernel, (dict, str, list, os.PathLike)):
        if is_random_spec(as_spec(kernel)):
            raise ValueError(f'{owner}: the kernel spec {kernel!r} is random; a fixed kernel is built once. Leave '
                             'kernel unset and pass the batch kernels to forward(kernel=...) (NewBPModel does, '
                             'from the dataset), or give a fixed spec.')
        kernel = build_kernel(kernel)
    kernel = torch.as_tensor(kernel, dtype=torch.float32).clone()
    layouts = {2: (), 3: (channels, ), 4: (channels, channels)}
    if kernel.dim() not in layouts or tuple(kernel.shape[:-2]) != layouts[kernel.dim()]:
        raise ValueError(f'{owner}: kernel of shape {tuple(kernel.shape)} does not fit {channels}-channel images; '
                         f'expected (kh, kw), ({channels}, kh, kw) or ({channels}, {channels}, kh, kw)')
    if kernel.shape[-2] % 2 == 0 or kernel.shape[-1] % 2 == 0:
        raise ValueError(f'{owner}: kernel size {tuple(kernel.shape[-2:])} must be odd (centred PSF)')
    return kernel.unsqueeze(0) if kernel.dim() == 4 else kernel


def select_kernel(given, own, owner, own_wins=False):
    """The kernel a forward pass uses: the per-call ``given`` one, else the module's own.

    Args:
        given (Tensor | None): the kernel passed to ``forward``.
        own (Tensor | None): the module's buffer or parameter.
        owner (str): the module's name, for the error message.
        own_wins (bool): use ``own`` even when a kernel is given (a learned kernel). Default: False.
    """
    if own is not None and (given is None or own_wins):
        return own
    if given is None:
        raise ValueError(f'{owner}: no kernel. Build it with a fixed kernel spec (option kernel), or pass '
                         'forward(..., kernel=...) (NewBPModel passes the batch kernels of CrosstalkDataset).')
    return given


def is_channel_mixing(kernel):
    """Whether a kernel in the layouts of this module is channel-mixing, (1|B, C, C, kh, kw)."""
    return kernel.dim() == 5
