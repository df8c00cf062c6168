"""Trained networks for inference: architecture options, checkpoint loading, (tiled) forward.

Shared by ``basicsr benchmark`` (network methods) and ``basicsr restore``.
"""
import copy
import glob
import os.path as osp
import pickle

import torch
import yaml
from basicsr.archs import build_network

from newbp_plugin.archs.checkpoint import CheckpointMismatchError, load_checkpoint
from newbp_plugin.archs.forward_arguments import forward_takes, sensor_arguments
from newbp_plugin.ops.tiling import tiled_forward
from newbp_plugin.sensor_block import hand_to_network


def network_options(arch, weights):
    """The ``network_g``-style options (``{type: NAFNet, width: 32, ...}``) of a checkpoint.

    Args:
        arch (dict | str | None): the options themselves (a dict, or inline YAML text such as
            ``'{type: NAFNet, width: 32}'``); or the path of a YAML file: a training or test YAML
            (its ``network_g``, with what its ``sensor:`` block hands to it) or a file holding the
            options alone; or None: the YAML
            BasicSR copied beside a training run, ``experiments/<name>/*.yml``, when ``weights``
            sit in ``experiments/<name>/models/``.
        weights (str): the checkpoint's path, for the default and for messages.

    Returns:
        dict: options with a ``type`` (a name in BasicSR's ARCH_REGISTRY).

    Raises:
        ValueError: the options cannot be found or are not a mapping with a ``type``.
    """
    if isinstance(arch, dict):
        return _checked(arch, 'the network options')
    if arch is None:
        models = osp.dirname(osp.abspath(weights))
        found = yamls_beside(weights)
        if len(found) != 1:
            where = (f'{len(found)} YAML files in {osp.dirname(models)} ({", ".join(map(osp.basename, found))})'
                     if found else 'no training YAML beside it (experiments/<name>/*.yml)')
            raise ValueError(f'cannot tell the architecture of {weights}: {where}; give it as a YAML file with '
                             "network_g, or inline, e.g. '{type: NAFNet, width: 32, enc_blk_nums: [1, 1, 1, 28], "
                             "middle_blk_num: 1, dec_blk_nums: [1, 1, 1, 1]}'")
        arch = found[0]
    if osp.isfile(arch):
        with open(arch, encoding='utf-8') as f:
            try:
                content = yaml.safe_load(f)
            except yaml.YAMLError as error:
                raise ValueError(f'{arch} is not valid YAML: {error}') from None
        if isinstance(content, dict) and 'network_g' in content:  # a run's YAML: its sensor block reaches network_g
            network = copy.deepcopy(content['network_g'])
            hand_to_network(content.get('sensor'), network, arch)
            return _checked(network, f'network_g of {arch}')
        return _checked(content, arch)
    try:
        content = yaml.safe_load(arch)
    except yaml.YAMLError as error:
        raise ValueError(f'architecture {arch!r} is neither a file nor valid YAML: {error}') from None
    return _checked(content, f'architecture {arch!r} (not a file)')


def yamls_beside(weights):
    """The YAML files BasicSR copied beside a training run, ``experiments/<name>/*.yml``, when ``weights`` sit
    in ``experiments/<name>/models/``; [] otherwise."""
    models = osp.dirname(osp.abspath(weights))
    return sorted(glob.glob(osp.join(osp.dirname(models), '*.yml'))) if osp.basename(models) == 'models' else []


def _checked(options, where):
    if not isinstance(options, dict) or 'type' not in options:
        raise ValueError(f'{where}: network options are a mapping with a type, such as '
                         f"'{{type: NAFNet, width: 32}}'; got {options!r}")
    return dict(options)


def load_network(options, weights, param_key='params', strict=True, device='cpu'):
    """Build a network with BasicSR's ``build_network`` and load a checkpoint into it (eval mode).

    Any NAFNet zoo checkpoint (``params``, upstream key names) loads into the plugin's NAFNet
    and NAFNetLocal; the plugin's own checkpoints into their architecture.

    Args:
        options (dict): ``network_g``-style options (see :func:`network_options`).
        weights (str): checkpoint file (``torch.save``: ``{'params': ...}``, ``params_ema``, bare).
        param_key (str): the preferred wrapper key. Default: 'params'.
        strict (bool): every key and shape must match. Default: True.
        device (str | torch.device): where the network runs.

    Returns:
        nn.Module: the network, in eval mode, on ``device``.

    Raises:
        ValueError: unknown architecture or option, a missing or unreadable file, or
            (``strict``) weights that do not fit the network (one line naming the keys).
    """
    if not osp.isfile(weights):
        raise ValueError(f'weights not found: {weights}')
    try:
        net = build_network(options)
    except KeyError as error:  # an unknown type (BasicSR's registry)
        raise ValueError(f'network options: {error.args[0]}') from None
    except TypeError as error:  # an unknown keyword of the constructor
        raise ValueError(f'network options {options}: {error}') from None
    try:
        load_checkpoint(net, weights, param_key=param_key, strict=strict)
    except CheckpointMismatchError as error:
        raise ValueError(' '.join(line.strip() for line in str(error).splitlines())) from None
    except (RuntimeError, pickle.UnpicklingError, EOFError) as error:
        raise ValueError(f'cannot read the checkpoint {weights}: {error}') from None
    return net.eval().to(device)


@torch.no_grad()
def run_network(net, x, kernel=None, noise=None, tile=None, tile_overlap=32):
    """``(Ŷ, S)`` of a restoration network on ``x``; S is None unless the network returns it.

    Args:
        net (nn.Module): from :func:`load_network`.
        x (Tensor): (B, C, H, W) degraded images in [0, 1], sRGB-encoded as the training data.
        kernel (Tensor | None): the sensor kernel (layouts of :mod:`newbp_plugin.sensor.layout`),
            passed when ``net.forward`` takes ``kernel``; None: the network's own.
        noise (dict | None): ``{'gain': (B, C), 'read_sigma': (B, C)}``, passed when ``net.forward``
            takes ``noise`` (KernelAwareNAFNet); None: the network's default.
        tile (int | None): tile side [px] for :func:`newbp_plugin.ops.tiling.tiled_forward`;
            None: the whole image at once. Every tile is given the image's kernel and noise.
        tile_overlap (int): pixels shared by neighbouring tiles. Default: 32.

    Returns:
        tuple[Tensor, Tensor | None]: Ŷ (B, C, H, W) and S (B, C, H, W) or None.
    """
    if noise is not None:
        noise = {key: value.to(x) for key, value in noise.items()}
    kwargs = sensor_arguments(net, None if kernel is None else kernel.to(x), noise)
    returns_s = forward_takes(net, 'return_s')
    if returns_s:
        kwargs['return_s'] = True

    def forward(tile_x):
        return net(tile_x, **kwargs)

    out = tiled_forward(forward, x, tile, tile_overlap) if tile else forward(x)
    return out if returns_s else (out, None)
