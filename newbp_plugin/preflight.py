"""Option errors of a BasicSR run, found before BasicSR acts on the run.

BasicSR's train and test pipelines parse the options, create the run's folders (an existing
``experiments/<name>`` or ``results/<name>`` is renamed ``*_archived_<time>``), and only then
build the datasets and the model. :func:`check_run_options` builds them first, on a copy of the
options, so that a typo fails while the folders are as they were.

User errors are :data:`USER_ERRORS`: a ValueError (the plugin's convention for a bad option
or input: KernelSpecError, NoiseSpecError, every option check, an undecodable image), an OSError
(a missing or unreadable file), an ``lmdb.Error`` (a corrupt LMDB) and a CheckpointMismatchError
(weights that do not fit). ``basicsr`` prints them as one line; any other exception is a bug
and keeps its traceback.
"""
import contextlib
import copy
import difflib
import gc
import glob
import inspect
import logging
import os
import random
import re

import lmdb
import numpy as np
import torch
import yaml

from newbp_plugin.archs.checkpoint import CheckpointMismatchError
from newbp_plugin.options import check_options

USER_ERRORS = (ValueError, OSError, lmdb.Error, CheckpointMismatchError)
SUFFIX = '_basicsr'  # BasicSR's registries find 'X' also under 'X_basicsr'
RUN_WEIGHTS = re.compile(r'(?:^|[/\\])experiments[/\\]([^/\\]+)[/\\]models[/\\][^/\\]+$')  # a training run's


class OptionError(ValueError):
    """A bad option or input of a run; the message names the options file and the key."""


def error_message(error):
    """A user error as one line: its lines joined, a DataLoader worker's wrapper reduced to the original message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith('Caught ') and lines[1].startswith('Original Traceback'):
        lines = [lines[-1].split(': ', 1)[-1]]  # 'ValueError: CrosstalkDataset: cannot decode ...'
    return ' '.join(lines)


@contextlib.contextmanager
def _located(path, where=None):
    """Re-raise a user error as an OptionError that names ``path`` and ``where`` (a key, if the message lacks it)."""
    try:
        yield
    except USER_ERRORS as error:
        raise OptionError(f"{path}: {f'{where}: ' if where else ''}{error_message(error)}") from error


@contextlib.contextmanager
def _without_side_effects():
    """BasicSR's root logger left silent and uninitialised (its log file comes later); random states restored."""
    from basicsr.utils import logger as basicsr_logger
    logger = logging.getLogger('basicsr')
    initialised, disabled = 'basicsr' in basicsr_logger.initialized_logger, logger.disabled
    basicsr_logger.initialized_logger['basicsr'] = True  # get_root_logger returns the logger as it is
    logger.disabled = True
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        logger.disabled = disabled
        if not initialised:
            del basicsr_logger.initialized_logger['basicsr']


def _registered(registry, options, where):
    """The class of ``options['type']`` in a BasicSR registry; OptionError naming the closest name if absent."""
    name = options.get('type')
    known = sorted(key[:-len(SUFFIX)] if key.endswith(SUFFIX) else key for key in registry.keys())
    found = registry._obj_map.get(name) or registry._obj_map.get(f'{name}{SUFFIX}')
    if found is None:
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ''
        what = f"unknown {registry._name} type '{name}'{hint}" if name is not None else 'no type'
        raise OptionError(f"{where}: {what}; known: {', '.join(known)}")
    return found


def _check_keywords(cls, options, where, path):
    """The options of a class built as ``cls(**options)`` (BasicSR's networks and losses) against its signature."""
    params = inspect.signature(cls).parameters
    if any(param.kind is param.VAR_KEYWORD for param in params.values()):
        return  # it checks its own options
    with _located(path, where):
        check_options([key for key in options if key != 'type'], list(params), cls.__name__)
    missing = [key for key, param in params.items() if param.default is param.empty and key not in options]
    if missing:
        raise OptionError(f'{path}: {where}: {cls.__name__} needs option {missing[0]}')


def _networks(opt):
    """``[(key, options)]`` of the networks a model builds: ``network_g``, ``network_d``, ..."""
    return [(key, value) for key, value in opt.items() if key.startswith('network_') and isinstance(value, dict)]


def _check_types(opt, path):
    """Every ``type`` is registered; networks and losses get only the keywords they take."""
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY
    _registered(MODEL_REGISTRY, {'type': opt['model_type']}, f'{path}: model_type')
    for phase, dataset_opt in opt['datasets'].items():
        _registered(DATASET_REGISTRY, dataset_opt, f'{path}: datasets:{phase}')
        if 'name' not in dataset_opt:
            raise OptionError(f'{path}: datasets:{phase}: needs a name (used in logs and folders)')
    built = [(ARCH_REGISTRY, key, value) for key, value in _networks(opt)]
    if opt['is_train']:
        built += [(LOSS_REGISTRY, f'train:{key}', value) for key, value in (opt.get('train') or {}).items()
                  if key.endswith('_opt') and value]
    for registry, where, options in built:
        _check_keywords(_registered(registry, options, f'{path}: {where}'), options, where, path)
    for name, metric_opt in ((opt.get('val') or {}).get('metrics') or {}).items():
        _registered(METRIC_REGISTRY, metric_opt, f'{path}: val:metrics:{name}')


def _training_recipe(run, path):
    """A training YAML named ``run`` beside ``path``, in its folder's parent or a sibling folder, or None."""
    parent = os.path.dirname(os.path.dirname(path))  # spelt as the user spelt path
    for candidate in sorted(glob.glob(os.path.join(parent, '*.yml')) + glob.glob(os.path.join(parent, '*', '*.yml'))):
        try:
            with open(candidate, encoding='utf-8') as f:
                recipe = yaml.safe_load(f)
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(recipe, dict) and recipe.get('name') == run and 'train' in recipe:
            return candidate
    return None


def _check_weights(opt, path):
    """Every ``path:pretrain_network_*`` is a file; a run's missing weights are named with the command that
    makes them (``experiments/<run>/models/``: the training YAML named ``run``)."""
    for key, weights in (opt.get('path') or {}).items():
        if not key.startswith('pretrain_network_') or weights is None or os.path.isfile(weights):
            continue
        message = f'{path}: path:{key}: weights not found: {weights}'
        run = RUN_WEIGHTS.search(weights)
        if run:
            recipe = _training_recipe(run.group(1), path)
            message += (f'; `basicsr train -opt {recipe}` makes them' if recipe else
                        f"; the training run named '{run.group(1)}' makes them (basicsr train)")
        raise OptionError(message)


def _samples_to_read(opt, phase, dataset):
    """Every sample of a validation or test set (small, read again at each validation), the first of a training set."""
    if not opt['is_train'] or phase.split('_')[0] == 'val':
        return range(len(dataset))
    return range(min(len(dataset), 1))


def check_run_options(opt, path):
    """Build what BasicSR's pipeline will build from ``opt``, on a copy, and throw it away.

    Checks every registered ``type``, the keywords of networks and losses and that the
    ``path:pretrain_network_*`` weights exist, then builds each dataset and reads every sample of
    a validation or test set and the first of a training set (a missing or corrupt LMDB, an
    unreadable image), each ``network_*``, and the model (its weights, losses and optimizers).
    Nothing is written, no log is started, and Python's, numpy's and torch's random states are
    left as they were.

    Args:
        opt (dict): the options as BasicSR's ``parse_options`` returns them.
        path (str): the options file, for messages.

    Raises:
        OptionError: a user error (:data:`USER_ERRORS`), with the file and the key.
    """
    from basicsr.archs import build_network
    from basicsr.data import build_dataset
    from basicsr.models import build_model
    opt = copy.deepcopy(opt)
    _check_types(opt, path)
    _check_weights(opt, path)
    with _without_side_effects():
        for phase, dataset_opt in opt['datasets'].items():
            with _located(path, f'datasets:{phase}'):
                dataset = build_dataset(dataset_opt)
                for index in _samples_to_read(opt, phase, dataset):
                    dataset[index]
            del dataset  # an LMDB may be open once per process: close it before the next dataset opens it
            gc.collect()
        for key, network_opt in _networks(opt):
            with _located(path, key):
                build_network(network_opt)
        with _located(path):  # the model's messages name their keys ('train:pixel_opt') or files
            build_model(opt)
    gc.collect()  # the copies' memory, before BasicSR builds its own
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()
