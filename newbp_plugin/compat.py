"""Make BasicSR 1.4.2 (the latest on PyPI) work on today's torch / torchvision.

Each fix checks whether the installed BasicSR needs it and does nothing
otherwise; :func:`apply` is idempotent and returns the names of the fixes it
installed. It must run before the first ``import basicsr`` (the package
``__init__`` calls it first).

Fixes:

* ``functional_tensor``: torchvision >= 0.17 removed
  ``torchvision.transforms.functional_tensor``, which BasicSR 1.4.2 imports at
  package import time. An alias module pointing to
  ``torchvision.transforms.functional`` is installed when it is missing.
* ``resume_state_device``: ``basicsr.train.load_resume_state`` maps the state
  onto ``torch.cuda.current_device()`` and crashes without CUDA. It is replaced
  by :func:`load_resume_state`, which maps onto the model's device.
* ``resume_state_weights_only``: torch >= 2.6 loads with ``weights_only=True``;
  BasicSR's scheduler states hold ``collections.Counter`` (milestones), which
  that loader refuses. Counter is added to torch's safe globals.
* ``dist_without_cuda``: ``--launcher pytorch`` calls ``torch.cuda.set_device``
  and NCCL; without CUDA (or NCCL) the process group now starts with gloo.
* ``ddp_without_cuda``: ``BaseModel.model_to_device`` wraps DDP with
  ``device_ids=[torch.cuda.current_device()]``; on the CPU DDP is built
  without device ids.
"""
import collections
import importlib
import importlib.util
import inspect
import logging
import os
import os.path as osp
import sys
import types

import torch

_APPLIED = []


def _fix_functional_tensor():
    """Alias ``torchvision.transforms.functional_tensor`` if torchvision lacks it."""
    if 'torchvision.transforms.functional_tensor' in sys.modules:
        return False
    if importlib.util.find_spec('torchvision.transforms.functional_tensor') is not None:
        return False
    functional = importlib.import_module('torchvision.transforms.functional')
    alias = types.ModuleType('torchvision.transforms.functional_tensor')
    alias.__doc__ = 'Alias of torchvision.transforms.functional installed by newbp_plugin.compat.'
    alias.rgb_to_grayscale = functional.rgb_to_grayscale
    sys.modules[alias.__name__] = alias
    return True


def _fix_resume_state_weights_only():
    """Allow ``collections.Counter`` (BasicSR scheduler milestones) in weights-only loading."""
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    get_safe_globals = getattr(torch.serialization, 'get_safe_globals', None)
    if add_safe_globals is None:  # torch < 2.4: torch.load is not weights-only by default
        return False
    if get_safe_globals is not None and collections.Counter in get_safe_globals():
        return False
    add_safe_globals([collections.Counter])
    return True


def latest_training_state(opt):
    """Path of the newest ``<iter>.state`` of the experiment, or None.

    Args:
        opt (dict): parsed BasicSR options (``opt['path']['training_states']``).
    """
    state_dir = opt['path'].get('training_states')
    if not state_dir or not osp.isdir(state_dir):
        return None
    iters = []
    for name in os.listdir(state_dir):
        stem, ext = osp.splitext(name)
        if ext == '.state' and stem.isdigit():
            iters.append(int(stem))
    return osp.join(state_dir, f'{max(iters)}.state') if iters else None


def resume_device(opt):
    """Device that BasicSR's model will live on for these options."""
    if opt.get('num_gpu', 0) != 0 and torch.cuda.is_available():
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def load_resume_state(opt):
    """Load the training state to resume from, onto the model's device.

    Same contract as BasicSR's ``basicsr.train.load_resume_state``: with
    ``opt['auto_resume']`` the newest state of the experiment is used (and
    ``opt['path']['resume_state']`` set), else ``opt['path']['resume_state']``.
    The state is loaded with ``weights_only=True``.

    Returns:
        dict | None: the state, or None when there is nothing to resume.
    """
    from basicsr.utils import check_resume

    if opt['auto_resume']:
        path = latest_training_state(opt)
        if path is not None:
            opt['path']['resume_state'] = path
    else:
        path = opt['path'].get('resume_state')
    if path is None:
        return None
    state = torch.load(path, map_location=resume_device(opt), weights_only=True)
    check_resume(opt, state['iter'])
    return state


def _fix_resume_state_device():
    """Replace ``basicsr.train.load_resume_state`` when it assumes CUDA."""
    train = importlib.import_module('basicsr.train')
    current = train.load_resume_state
    if current is load_resume_state or 'torch.cuda.current_device()' not in inspect.getsource(current):
        return False
    train.load_resume_state = load_resume_state
    return True


def _init_dist_without_cuda(original):
    """Wrap BasicSR's ``init_dist``: gloo when CUDA or NCCL is unavailable."""

    def init_dist(launcher, backend='nccl', **kwargs):
        if launcher == 'pytorch' and not (torch.cuda.is_available() and torch.distributed.is_nccl_available()):
            import torch.multiprocessing as mp
            if mp.get_start_method(allow_none=True) is None:
                mp.set_start_method('spawn')
            logging.getLogger('basicsr').info('newbp_plugin: no CUDA/NCCL, distributed backend gloo on the CPU')
            torch.distributed.init_process_group(backend='gloo', **kwargs)
            return
        original(launcher, backend, **kwargs)

    init_dist.__wrapped__ = original
    return init_dist


def _fix_dist_without_cuda():
    """Replace the ``init_dist`` that ``parse_options`` calls when it assumes CUDA."""
    options = importlib.import_module('basicsr.utils.options')
    dist_util = importlib.import_module('basicsr.utils.dist_util')
    current = options.init_dist
    if hasattr(current, '__wrapped__') or 'torch.cuda.set_device' not in inspect.getsource(
            dist_util._init_dist_pytorch):
        return False
    options.init_dist = _init_dist_without_cuda(current)
    return True


def _model_to_device_without_cuda(original):
    """Wrap ``BaseModel.model_to_device``: DDP without device ids on the CPU."""

    def model_to_device(self, net):
        if self.opt['dist'] and self.device.type == 'cpu':
            from torch.nn.parallel import DistributedDataParallel
            return DistributedDataParallel(
                net.to(self.device), find_unused_parameters=self.opt.get('find_unused_parameters', False))
        return original(self, net)

    model_to_device.__wrapped__ = original
    return model_to_device


def _fix_ddp_without_cuda():
    """Replace ``BaseModel.model_to_device`` when it assumes CUDA for DDP."""
    base_model = importlib.import_module('basicsr.models.base_model')
    current = base_model.BaseModel.model_to_device
    if hasattr(current, '__wrapped__') or 'torch.cuda.current_device()' not in inspect.getsource(current):
        return False
    base_model.BaseModel.model_to_device = _model_to_device_without_cuda(current)
    return True


_FIXES = (
    ('functional_tensor', _fix_functional_tensor),
    ('resume_state_weights_only', _fix_resume_state_weights_only),
    ('resume_state_device', _fix_resume_state_device),
    ('dist_without_cuda', _fix_dist_without_cuda),
    ('ddp_without_cuda', _fix_ddp_without_cuda),
)


def apply():
    """Install every fix the environment needs; return the names installed so far.

    Safe to call repeatedly: a fix already in place reports nothing new.
    """
    for name, fix in _FIXES:
        if fix():
            _APPLIED.append(name)
            logging.getLogger('basicsr').debug('newbp_plugin.compat applied %s', name)
    return list(_APPLIED)
