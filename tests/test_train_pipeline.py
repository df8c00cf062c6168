"""CPU end-to-end runs of BasicSR's train pipeline through ``basicsr train``."""
import re

import pytest
import yaml

from tests.conftest import run_basicsr


def smoke_options(gt, lq, total_iter):
    """A tiny SRModel run on paired folders: BasicSR's SRVGGNetCompact, upscale 1, CPU."""
    paired = {'type': 'PairedImageDataset', 'dataroot_gt': str(gt), 'dataroot_lq': str(lq),
              'io_backend': {'type': 'disk'}}
    return {
        'name': 'smoke', 'model_type': 'SRModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {
            'train': dict(paired, name='tiny', gt_size=16, use_hflip=True, use_rot=True, num_worker_per_gpu=0,
                          batch_size_per_gpu=2, dataset_enlarge_ratio=1),
            'val': dict(paired, name='tiny_val'),
        },
        'network_g': {'type': 'SRVGGNetCompact', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_conv': 2,
                      'upscale': 1, 'act_type': 'prelu'},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'scheduler': {'type': 'MultiStepLR', 'milestones': [100],
                                                                         'gamma': 0.5},
                  'total_iter': total_iter, 'warmup_iter': -1,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}},
        'val': {'val_freq': 2, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False},
    }


def read_logs(exp_dir):
    return ''.join(p.read_text() for p in sorted(exp_dir.glob('train_smoke_*.log')))


@pytest.mark.slow
def test_train_then_auto_resume_to_final_iteration(tmp_path, paired_folders):
    gt, lq = paired_folders
    (tmp_path / 'smoke.yml').write_text(yaml.safe_dump(smoke_options(gt, lq, total_iter=4)))
    first = run_basicsr(['train', '-opt', 'smoke.yml'], cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    exp = tmp_path / 'experiments' / 'smoke'
    assert (exp / 'models' / 'net_g_4.pth').is_file() and (exp / 'models' / 'net_g_latest.pth').is_file()
    assert (exp / 'training_states' / '4.state').is_file()
    log = read_logs(exp)
    assert re.search(r'iter:\s+4, lr:.*l_pix: ', log)  # BasicSR's message logger, loss logged
    assert '# psnr:' in log  # BasicSR's validator ran

    second = run_basicsr(['train', '-opt', 'smoke.yml', '--auto_resume', '--force_yml', 'train:total_iter=6'],
                         cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    log = read_logs(exp)
    assert 'Resuming training from epoch' in log and 'iter: 4.' in log
    assert (exp / 'models' / 'net_g_6.pth').is_file()
    assert (exp / 'training_states' / '6.state').is_file()


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train_and_resume(tmp_path, paired_folders):
    """`torchrun -m newbp_plugin.train --launcher pytorch` on the CPU: gloo, DDP, rank-0 checkpoints, resume."""
    import subprocess
    import sys
    gt, lq = paired_folders
    opt = smoke_options(gt, lq, total_iter=4)
    opt['name'] = 'smoke'
    (tmp_path / 'smoke.yml').write_text(yaml.safe_dump(opt))
    torchrun = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', '-m',
                'newbp_plugin.train', '-opt', 'smoke.yml', '--launcher', 'pytorch']
    first = subprocess.run(torchrun, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    exp = tmp_path / 'experiments' / 'smoke'
    log = read_logs(exp)
    assert 'World size (gpu number): 2' in log
    assert re.search(r'^\s*dist: True$', log, re.M)  # BasicSR's option dump
    assert sorted(p.name for p in (exp / 'training_states').iterdir()) == ['2.state', '4.state']
    second = subprocess.run(torchrun + ['--auto_resume', '--force_yml', 'train:total_iter=6'], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert 'Resuming training from epoch' in read_logs(exp)
    assert (exp / 'models' / 'net_g_6.pth').is_file()


def newbp_options(gt, lq, total_iter):
    """The smoke run with the plugin's NewBPModel and its smallest NAFNet."""
    opt = smoke_options(gt, lq, total_iter)
    opt['model_type'] = 'NewBPModel'
    opt['network_g'] = {'type': 'NAFNet', 'img_channel': 3, 'width': 8, 'middle_blk_num': 1, 'enc_blk_nums': [1],
                        'dec_blk_nums': [1]}
    return opt


@pytest.mark.slow
def test_sigkill_mid_run_then_auto_resume_reaches_final_iteration(tmp_path, paired_folders):
    import os
    import signal
    import subprocess
    import time

    import torch

    from tests.conftest import basicsr_command
    gt, lq = paired_folders
    opt = newbp_options(gt, lq, total_iter=60)
    opt['logger']['save_checkpoint_freq'] = 1  # save every iteration, so the kill may land mid-write
    opt['val']['val_freq'] = 1000
    (tmp_path / 'run.yml').write_text(yaml.safe_dump(opt))
    states = tmp_path / 'experiments' / 'smoke' / 'training_states'
    process = subprocess.Popen([basicsr_command(), 'train', '-opt', 'run.yml'], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and len(list(states.glob('*.state'))) < 5:
            time.sleep(0.05)
        assert process.poll() is None, 'training ended before it could be killed'
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    killed_at = max(int(p.stem) for p in states.glob('*.state'))
    assert killed_at < 60

    # every checkpoint left behind loads (weights only): none is truncated
    for path in list(states.glob('*.state')) + list((states.parent / 'models').glob('*.pth')):
        torch.load(path, weights_only=True)

    resumed = run_basicsr(['train', '-opt', 'run.yml', '--auto_resume'], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = read_logs(tmp_path / 'experiments' / 'smoke')
    assert 'Resuming training from epoch' in log and f'iter: {killed_at}.' in log
    assert (states / '60.state').is_file()
    assert (states.parent / 'models' / 'net_g_latest.pth').is_file()


@pytest.mark.slow
def test_front_door_recipe_trains_then_tests(tmp_path):
    """options/newbp_nafnet.yml shrunk with --force_yml: the universal model loaded, losses, metrics, checkpoints;
    then basicsr test."""
    import pathlib
    root = pathlib.Path(__file__).resolve().parents[1]
    sample = root / 'datasets' / 'sample'
    train = run_basicsr([
        'train', '-opt', str(root / 'options' / 'newbp_nafnet.yml'), '--force_yml', 'train:total_iter=4',
        'val:val_freq=2', 'logger:print_freq=1', 'logger:save_checkpoint_freq=2', 'datasets:train:gt_size=32',
        'datasets:train:batch_size_per_gpu=2', 'datasets:train:num_worker_per_gpu=0',
        f'datasets:train:dataroot_gt={sample / "train.lmdb"}', f'datasets:val:dataroot_gt={sample / "val.lmdb"}',
        f'path:pretrain_network_g={root / "experiments" / "pretrained_models" / "KernelAwareNAFNet-universal.pth"}'
    ], cwd=tmp_path)
    assert train.returncode == 0, train.stderr[-3000:]
    exp = tmp_path / 'experiments' / 'newbp_nafnet_sample'
    log = ''.join(p.read_text() for p in exp.glob('train_*.log'))
    assert re.search(r'iter:\s+4, lr:.*l_pix: ', log)
    assert re.search(r'Validation sample_val\s+# psnr: \d+\.\d+', log)
    assert re.search(r'Degraded input sample_val \(no restoration\)\s+# psnr: \d+\.\d+', log)
    assert (exp / 'models' / 'net_g_latest.pth').is_file() and (exp / 'training_states' / '4.state').is_file()
    assert re.search(r'Loaded KernelAwareNAFNet from .*KernelAwareNAFNet-universal\.pth', log)
    shots = sorted(p.name for p in (exp / 'visualization').rglob('*.png'))
    assert any(name.endswith('_lq.png') for name in shots) and any(name.endswith('_4.png') for name in shots)

    test = run_basicsr([
        'test', '-opt', str(root / 'options' / 'test' / 'newbp_nafnet.yml'), '--force_yml',
        f'datasets:test_1:dataroot_gt={sample / "val.lmdb"}'
    ], cwd=tmp_path)
    assert test.returncode == 0, test.stderr[-3000:]
    results = tmp_path / 'results' / 'newbp_nafnet_sample_test'
    log = ''.join(p.read_text() for p in results.glob('test_*.log'))
    assert re.search(r'# psnr: \d+\.\d+', log) and re.search(r'# ssim: \d+\.\d+', log)
    images = sorted(p.name for p in (results / 'visualization' / 'sample_val').glob('*.png'))
    assert len(images) == 6 and sum(name.endswith(('_lq.png', '_gt.png')) for name in images) == 4  # Ŷ, input, GT
