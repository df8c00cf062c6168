"""The check of a run's options before BasicSR acts, and the one-line text of user errors."""
import logging
import pathlib
import random
import re
import shutil
import sys

import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import DataLoader, Dataset

from newbp_plugin.archs.checkpoint import CheckpointMismatchError, load_checkpoint
from newbp_plugin.preflight import OptionError, check_run_options, error_message

SAMPLE_VAL = pathlib.Path(__file__).resolve().parents[1] / 'datasets' / 'sample' / 'val.lmdb'


def run_options(tmp_path, monkeypatch, is_train=True, **changes):
    """A tiny NewBPModel run on the sample LMDB, parsed by BasicSR's own parse_options."""
    from basicsr.utils.options import parse_options
    data = {'type': 'CrosstalkDataset', 'dataroot_gt': str(SAMPLE_VAL), 'kernel': {'type': 'gaussian'}}
    opt = {
        'name': 'preflight', 'model_type': 'NewBPModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'train': dict(data, name='train', gt_size=32, batch_size_per_gpu=1, num_worker_per_gpu=0),
                     'val': dict(data, name='val')},
        'network_g': {'type': 'NAFNet', 'width': 8, 'middle_blk_num': 1, 'enc_blk_nums': [1], 'dec_blk_nums': [1]},
        'path': {'pretrain_network_g': None},
        'train': {'optim_g': {'type': 'AdamW', 'lr': 1e-3}, 'scheduler': {'type': 'MultiStepLR', 'milestones': [10]},
                  'total_iter': 10, 'pixel_opt': {'type': 'L1Loss'}},
        'val': {'val_freq': 5, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 5},
    }
    for key, value in changes.items():
        opt[key] = value
    path = tmp_path / 'run.yml'
    path.write_text(yaml.safe_dump(opt))
    monkeypatch.setattr(sys, 'argv', ['basicsr train', '-opt', str(path)])
    monkeypatch.chdir(tmp_path)
    return parse_options(str(tmp_path), is_train=is_train)[0], str(path)


def test_check_leaves_random_states_logger_and_folders_as_they_were(tmp_path, monkeypatch):
    from basicsr.utils import logger as basicsr_logger
    opt, path = run_options(tmp_path, monkeypatch)
    monkeypatch.delitem(basicsr_logger.initialized_logger, 'basicsr', raising=False)
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    handlers = list(logging.getLogger('basicsr').handlers)
    files = sorted(tmp_path.rglob('*'))
    check_run_options(opt, path)
    assert torch.equal(torch.get_rng_state(), states[0])  # building the network draws its initial weights
    assert np.array_equal(np.random.get_state()[1], states[1]) and random.getstate() == states[2]
    assert 'basicsr' not in basicsr_logger.initialized_logger  # BasicSR still sets up its log file
    assert logging.getLogger('basicsr').handlers == handlers and not logging.getLogger('basicsr').disabled
    assert sorted(tmp_path.rglob('*')) == files


@pytest.mark.parametrize('changes, message', [
    ({'network_g': {'type': 'NAFNett', 'width': 8}},
     "run.yml: network_g: unknown arch type 'NAFNett' (did you mean 'NAFNet'?); known: "),
    ({'network_g': {'type': 'SRVGGNetCompact', 'num_fea': 8}},
     "run.yml: network_g: SRVGGNetCompact: unknown option 'num_fea' (did you mean 'num_feat'?)"),
    ({'model_type': 'NewBPModle'}, "run.yml: model_type: unknown model type 'NewBPModle' (did you mean 'NewBPModel'?)"),
    ({'val': {'metrics': {'psnr': {'type': 'calculate_psnrr'}}}},
     "run.yml: val:metrics:psnr: unknown metric type 'calculate_psnrr' (did you mean 'calculate_psnr'?)"),
    ({'network_g': {'type': 'NAFNet', 'width': 8, 'enc_blk_nums': [1], 'dec_blk_nums': [1, 1]}},
     'run.yml: network_g: NAFNet: enc_blk_nums [1] and dec_blk_nums [1, 1]'),
    ({'path': {'pretrain_network_g': 'missing.pth'}}, 'run.yml: path:pretrain_network_g: weights not found: missing.pth'),
    ({'path': {'pretrain_network_g': 'experiments/elsewhere/models/net_g_latest.pth'}},
     'run.yml: path:pretrain_network_g: weights not found: experiments/elsewhere/models/net_g_latest.pth; the '
     "training run named 'elsewhere' makes them (basicsr train)"),
])
def test_option_errors_name_the_file_and_the_key(tmp_path, monkeypatch, changes, message):
    opt, path = run_options(tmp_path, monkeypatch, **changes)
    with pytest.raises(OptionError) as error:
        check_run_options(opt, path)
    assert str(error.value).replace(path, 'run.yml').startswith(message)


def test_missing_weights_of_a_run_name_the_recipe_that_makes_them(tmp_path, monkeypatch):
    (tmp_path / 'recipe.yml').write_text('name: my_run\ntrain: {total_iter: 10}\n')
    opt, path = run_options(tmp_path, monkeypatch, is_train=False,
                            path={'pretrain_network_g': 'experiments/my_run/models/net_g_latest.pth'})
    with pytest.raises(OptionError) as error:
        check_run_options(opt, path)
    assert str(error.value) == (f'{path}: path:pretrain_network_g: weights not found: experiments/my_run/models/'
                                f"net_g_latest.pth; `basicsr train -opt {tmp_path / 'recipe.yml'}` makes them")


def corrupt_copy(lmdb_folder, tmp_path, image):
    """A copy of an LMDB of PNGs whose ``image``-th PNG (in storage order) has lost its signature."""
    copy = tmp_path / lmdb_folder.name
    shutil.copytree(lmdb_folder, copy)
    data = bytearray((copy / 'data.mdb').read_bytes())
    data[[m.start() for m in re.finditer(b'\x89PNG', data)][image]] = 0
    (copy / 'data.mdb').write_bytes(bytes(data))
    return copy


def test_every_validation_image_is_decoded_before_the_run(tmp_path, monkeypatch):
    """A validation set corrupt in its last image fails at start, naming it, not at the first validation."""
    opt, path = run_options(tmp_path, monkeypatch)
    corrupt = str(corrupt_copy(SAMPLE_VAL, tmp_path, -1))
    opt['datasets']['val']['dataroot_gt'] = corrupt
    with pytest.raises(OptionError) as error:
        check_run_options(opt, path)
    assert str(error.value) == (f"{path}: datasets:val: CrosstalkDataset: cannot decode image 'hubble' in the LMDB "
                                f'{corrupt} (not an image file?)')


class FailingDataset(Dataset):

    def __len__(self):
        return 2

    def __getitem__(self, index):
        raise ValueError('CrosstalkDataset: cannot decode image x.png (not an image file?)')


def test_error_message_is_one_line():
    with pytest.raises(ValueError) as error:
        next(iter(DataLoader(FailingDataset(), num_workers=1)))
    assert 'Original Traceback' in str(error.value)
    assert error_message(error.value) == 'CrosstalkDataset: cannot decode image x.png (not an image file?)'

    net = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(3)])
    with pytest.raises(CheckpointMismatchError) as error:
        load_checkpoint(net, {'params': {f'other.{i}': torch.zeros(1) for i in range(5)}})
    assert error_message(error.value) == (
        "The weights in 'params' of <in-memory checkpoint> do not match Sequential: blocks only in the network: 0, "
        '1, 2; blocks only in the checkpoint: other.0, other.1, other.2 (and 2 more). missing in the checkpoint (6): '
        '0.weight 0.bias 1.weight ... (3 more) unexpected in the checkpoint (5): other.0 other.1 other.2 ... (2 more)')


NAFNET = {'type': 'NAFNet', 'width': 8, 'middle_blk_num': 1, 'enc_blk_nums': [1, 1], 'dec_blk_nums': [1, 1]}


@pytest.mark.parametrize('saved, loaded, diagnosis', [
    (dict(NAFNET, type='NewBPNAFNet', head='none', skip='input'), NAFNET,
     "the checkpoint's keys live under 'body.', the network's at the top level (a NewBPNAFNet checkpoint?)."),
    (NAFNET, dict(NAFNET, type='NewBPNAFNet', kernel={'type': 'gaussian'}),
     "the network's keys live under 'body.', the checkpoint's at the top level (a NAFNet checkpoint? NewBPNAFNet "
     'takes one as network_g.pretrain_body).'),
    (dict(NAFNET, width=16), NAFNET, 'width 16 in the checkpoint, 8 in the network.'),
    (NAFNET, dict(NAFNET, enc_blk_nums=[1, 2]), 'blocks only in the network: encoders.1.1.'),
])
def test_wrong_architecture_is_diagnosed_first_and_lists_few_keys(saved, loaded, diagnosis):
    """A checkpoint of another architecture: the likely cause leads, then at most LISTED keys of each group."""
    from basicsr.archs import build_network
    with pytest.raises(CheckpointMismatchError) as error:
        load_checkpoint(build_network(loaded), {'params': build_network(saved).state_dict()})
    first, *rest = str(error.value).splitlines()
    assert first == f"The weights in 'params' of <in-memory checkpoint> do not match {loaded['type']}: {diagnosis}"
    listed = [line for line in rest if line.startswith('    ') and not line.strip().startswith('...')]
    assert 0 < len(listed) <= 3 * len(GROUPS) and len(error_message(error.value)) < 600


GROUPS = ('missing in the checkpoint', 'unexpected in the checkpoint', 'shape mismatch')
