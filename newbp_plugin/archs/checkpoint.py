"""Load network weights from the checkpoint files users actually have.

BasicSR saves ``{'params': state_dict}`` (and ``params_ema`` with EMA), other trainers
``{'state_dict': ...}`` or a bare state_dict, and DDP-wrapped networks prefix every key
with ``module.``. :func:`load_checkpoint` accepts all of them and, on a mismatch, says what
likely went wrong (a NewBPNAFNet checkpoint given to NAFNet or the reverse, another width,
other blocks) and names the first few missing, unexpected and mis-shaped keys. :func:`save_checkpoint_atomic` writes a
checkpoint so that a crash never leaves a truncated file under the final name.
"""
import logging
import os
import tempfile
from collections.abc import Mapping
from typing import List, NamedTuple, Optional

import torch

logger = logging.getLogger('basicsr')

WRAPPER_KEYS = ('params', 'params_ema', 'state_dict')
DDP_PREFIX = 'module.'
LISTED = 3  # keys of each group named in a mismatch message; the rest are counted
# (whose keys carry the prefix, prefix) -> what the prefix suggests, after the diagnosis
PREFIX_HINTS = {('checkpoint', 'body.'): ' (a NewBPNAFNet checkpoint?)',
                ('network', 'body.'): ' (a NAFNet checkpoint? NewBPNAFNet takes one as network_g.pretrain_body)'}


class CheckpointMismatchError(RuntimeError):
    """The checkpoint's keys or shapes do not match the network's (the message says how)."""


class LoadedCheckpoint(NamedTuple):
    """What :func:`load_checkpoint` loaded.

    Attributes:
        param_key (str | None): the wrapper key the weights were read from; None for a bare
            state_dict.
        missing_keys (list[str]): keys of the network absent from the checkpoint (left as they were).
        unexpected_keys (list[str]): keys of the checkpoint the network does not have (ignored).
        mismatched_shapes (list[str]): ``'key: checkpoint (shape) vs network (shape)'``, not loaded.
    """
    param_key: Optional[str]
    missing_keys: List[str]
    unexpected_keys: List[str]
    mismatched_shapes: List[str]


def load_checkpoint(net, checkpoint, param_key='params', strict=True):
    """Load weights into ``net`` from a checkpoint file or an in-memory checkpoint.

    The state_dict is taken from ``checkpoint[param_key]`` when present; otherwise from the
    first of ``'params'``, ``'params_ema'``, ``'state_dict'`` present (logged); otherwise
    ``checkpoint`` itself is taken as a bare state_dict when all its values are tensors.
    A ``module.`` prefix (DDP) is removed from the keys.

    Args:
        net (nn.Module): the network to load into (a sub-network works the same).
        checkpoint (str | os.PathLike | Mapping): a file saved by ``torch.save`` (read with
            ``torch.load(map_location='cpu', weights_only=True)``) or its content.
        param_key (str | None): the preferred wrapper key. Default: ``'params'`` (BasicSR's
            ``param_key_g``).
        strict (bool): raise on any missing, unexpected or mis-shaped key. When False, load
            the keys that match, warn about the others. Default: True.

    Returns:
        LoadedCheckpoint: the wrapper key used and the keys not loaded.

    Raises:
        CheckpointMismatchError: ``strict`` and the keys or shapes differ; the message names
            the source and the likely cause, then counts the missing, unexpected and mis-shaped
            keys, naming the first LISTED of each (the report of ``strict=False`` has them all).
        ValueError: the checkpoint holds no state_dict under any known key.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        source = os.fspath(checkpoint)
        checkpoint = torch.load(source, map_location='cpu', weights_only=True)
    else:
        source = '<in-memory checkpoint>'
    used_key, state_dict = _find_state_dict(checkpoint, param_key, source)
    state_dict = {(k[len(DDP_PREFIX):] if k.startswith(DDP_PREFIX) else k): v for k, v in state_dict.items()}

    own = net.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = {k: (tuple(v.shape), tuple(own[k].shape)) for k, v in state_dict.items()
              if k in own and v.shape != own[k].shape}
    mismatched = [f'{k}: checkpoint {saved} vs network {built}' for k, (saved, built) in shapes.items()]
    report = LoadedCheckpoint(used_key, missing, unexpected, mismatched)
    if missing or unexpected or mismatched:
        message = _describe_mismatch(net, source, report, shapes)
        if strict:
            raise CheckpointMismatchError(message)
        logger.warning(message)

    loadable = {k: v for k, v in state_dict.items() if k in own and v.shape == own[k].shape}
    net.load_state_dict(loadable, strict=False)
    return report


def _find_state_dict(checkpoint, param_key, source):
    """``(key, state_dict)`` of the checkpoint; key None for a bare state_dict."""
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f'{source}: a checkpoint is a dict, got {type(checkpoint).__name__}.')
    if param_key is not None and isinstance(checkpoint.get(param_key), Mapping):
        return param_key, checkpoint[param_key]
    for key in WRAPPER_KEYS:
        if isinstance(checkpoint.get(key), Mapping):
            if param_key is not None:
                logger.info(f"{source}: no '{param_key}' in the checkpoint, loading '{key}'.")
            return key, checkpoint[key]
    if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return None, checkpoint
    raise ValueError(f"{source}: no state_dict under '{param_key}' nor any of {list(WRAPPER_KEYS)}, and not a bare "
                   f'state_dict; top-level keys: {list(checkpoint)}.')


def _describe_mismatch(net, source, report, shapes):
    """A diagnosis on the first line, then each group of keys, LISTED of them and a count of the rest."""
    where = f"'{report.param_key}' of {source}" if report.param_key else source
    diagnosis = _diagnose(report.missing_keys, report.unexpected_keys, shapes)
    lines = [f'The weights in {where} do not match {type(net).__name__}' + (f': {diagnosis}.' if diagnosis else ':')]
    for title, keys in (('missing in the checkpoint', report.missing_keys),
                        ('unexpected in the checkpoint', report.unexpected_keys),
                        ('shape mismatch', report.mismatched_shapes)):
        if keys:
            lines.append(f'  {title} ({len(keys)}):')
            lines.extend(f'    {key}' for key in keys[:LISTED])
            if len(keys) > LISTED:
                lines.append(f'    ... ({len(keys) - LISTED} more)')
    return '\n'.join(lines)


def _diagnose(missing, unexpected, shapes):
    """The likely cause of a mismatch in words, or None: a wrapper's prefix, another width, other blocks.

    ``shapes`` maps each mis-shaped key to ``(checkpoint shape, network shape)``.
    """
    for keys, others, whose, other in ((unexpected, missing, 'checkpoint', 'network'),
                                       (missing, unexpected, 'network', 'checkpoint')):
        for prefix in dict.fromkeys(key.split('.', 1)[0] + '.' for key in keys if '.' in key):
            matching = {key[len(prefix):] for key in keys if key.startswith(prefix)} & set(others)
            if matching and 2 * len(matching) >= min(len(keys), len(others)):  # the prefix explains most keys
                partly = f"; without it, {len(matching)} of the {other}'s {len(others)} keys match" if (
                    len(matching) < len(others)) else ''
                return (f"the {whose}'s keys live under '{prefix}', the {other}'s at the top level"
                        f"{PREFIX_HINTS.get((whose, prefix), '')}{partly}")
    for key, (checkpoint_shape, network_shape) in shapes.items():
        if key.split('.')[-2:] == ['intro', 'weight']:  # NAFNet's first convolution: width output channels
            return f'width {checkpoint_shape[0]} in the checkpoint, {network_shape[0]} in the network'
    only_network = _modules(missing) - _modules(unexpected)
    only_checkpoint = _modules(unexpected) - _modules(missing)
    parts = [f'blocks only in the {whose}: {_listed(names)}'
             for names, whose in ((only_network, 'network'), (only_checkpoint, 'checkpoint')) if names]
    return '; '.join(parts) or None


def _modules(keys):
    """The blocks the keys belong to: up to the first run of numbers (``encoders.2.1``), else without the name."""
    modules = set()
    for key in keys:
        parts = key.split('.')
        end = next((i for i, part in enumerate(parts) if part.isdigit()), None)
        if end is None:
            end = max(len(parts) - 1, 1)
        while end < len(parts) and parts[end].isdigit():
            end += 1
        modules.add('.'.join(parts[:end]))
    return modules


def _listed(names):
    names = sorted(names)
    return ', '.join(names[:LISTED]) + (f' (and {len(names) - LISTED} more)' if len(names) > LISTED else '')


def save_checkpoint_atomic(obj, path):
    """``torch.save(obj, path)`` through a temporary file in the same folder, then an atomic rename.

    A run killed while saving leaves the previous file (or none), never a truncated one. The file
    gets the permissions ``torch.save`` would give it (0666 less the umask; a temporary file is
    0600), so that the other users of a shared machine read it as before.

    Args:
        obj: what to save (a state_dict, ``{'params': state_dict}``, a training state).
        path (str | os.PathLike): destination; its folder must exist.
    """
    path = os.fspath(path)
    fd, tmp_path = tempfile.mkstemp(dir=os.path.dirname(path) or '.', prefix=f'.{os.path.basename(path)}.',
                                    suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        os.remove(tmp_path)
        raise


def _umask():
    """The process's umask (read by setting it, then setting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
