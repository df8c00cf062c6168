"""The networks shipped in experiments/pretrained_models/: small, strict ``weights_only`` loads into
their recipe's network_g, and better than the degraded input on the bundled test images (a broken
or stale export fails here); ``basicsr restore`` and ``basicsr test`` run them on a fresh clone."""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from basicsr.metrics import calculate_psnr
from basicsr.utils import tensor2img

from newbp_plugin.inference.network import load_network, network_options, run_network
from newbp_plugin.data.crosstalk_dataset import CrosstalkDataset
from tests.conftest import run_basicsr
from tests.test_data_dataset import lq_of

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHIPPED = ('NAFNet-sample', 'NewBPNAFNet-sample', 'NewBPNAFNet-Converse-sample', 'KernelAwareNAFNet-universal')
MAX_BYTES = 5 * 2**20
TEST_SET = osp.join(ROOT, 'datasets', 'sample', 'test.lmdb')
COLOUR_TEST_SET = osp.join(ROOT, 'datasets', 'sample', 'test_color.lmdb')
CMOS = {'type': 'crosstalk', 'size': 5, 'left': 0.06, 'right': 0.06, 'up': 0.05, 'down': 0.05, 'diagonal': 0.02,
        'second_ring': 0.01}
GAUSSIAN = {'type': 'gaussian', 'sigma': 1.2}
SENSOR_NOISE = {'type': 'poisson_gaussian', 'gain': 0.002, 'read_sigma': 0.003, 'quantize': 8}
MIN_GAIN_DB = 1.0  # each shipped network over the degraded input, mean over the test images


def weights(name):
    return osp.join(ROOT, 'experiments', 'pretrained_models', f'{name}.pth')


def recipe(name):
    return osp.join(ROOT, 'options', 'train', f'{name}.yml')


@pytest.mark.parametrize('name', SHIPPED)
def test_shipped_weights_are_small_and_load_strictly(name):
    assert osp.getsize(weights(name)) <= MAX_BYTES
    checkpoint = torch.load(weights(name), weights_only=True)
    assert set(checkpoint) == {'params'}  # BasicSR's and the NAFNet zoo's format
    net = load_network(network_options(recipe(name), weights(name)), weights(name), strict=True)
    assert all(torch.isfinite(p).all() for p in net.parameters())


@pytest.mark.parametrize('kernel', [CMOS, GAUSSIAN], ids=['cmos', 'gaussian'])
@pytest.mark.parametrize('name', SHIPPED)
def test_shipped_networks_restore_the_test_images(name, kernel):
    net = load_network(network_options(recipe(name), weights(name)), weights(name))
    dataset = CrosstalkDataset({'dataroot_gt': TEST_SET, 'phase': 'val', 'kernel': kernel, 'noise': SENSOR_NOISE})
    gains = []
    for item in dataset:
        lq = lq_of(item)
        restored, _ = run_network(net, lq[None], item['kernel'][None])
        gt = tensor2img([item['gt']])
        gains.append(calculate_psnr(tensor2img([restored]), gt, 0) - calculate_psnr(tensor2img([lq]), gt, 0))
    assert np.mean(gains) > MIN_GAIN_DB, f'{name}: {np.round(gains, 2)} dB over the input'


@pytest.mark.slow
def test_restore_and_test_commands_run_the_shipped_model(tmp_path):
    dataset = CrosstalkDataset({'dataroot_gt': TEST_SET, 'phase': 'val', 'kernel': CMOS, 'noise': SENSOR_NOISE})
    item = dataset[3]  # ihc, the colour image
    lq = lq_of(item)
    cv2.imwrite(str(tmp_path / 'ihc.png'), tensor2img([lq]))
    name = 'NewBPNAFNet-sample'
    result = run_basicsr(['restore', '-i', str(tmp_path / 'ihc.png'), '-o', str(tmp_path / 'restored.png'),
                          '--weights', weights(name), '--arch', recipe(name), '--tile', '128', '--device', 'cpu'],
                         cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    gt = tensor2img([item['gt']])
    restored = cv2.imread(str(tmp_path / 'restored.png'))
    assert calculate_psnr(restored, gt, 0) > calculate_psnr(tensor2img([lq]), gt, 0) + MIN_GAIN_DB

    paths = [f'datasets:test_{i}:dataroot_gt={TEST_SET}' for i in range(1, 5)]
    paths.append(f'path:pretrain_network_g={weights(name)}')
    result = run_basicsr(['test', '-opt', osp.join(ROOT, 'options', 'test', f'{name}.yml'), '--force_yml'] + paths,
                         cwd=tmp_path, env={'OMP_NUM_THREADS': '1'})
    assert result.returncode == 0, result.stderr[-2000:]
    log = open(next((tmp_path / 'results' / f'{name}_test').glob('test_*.log')), encoding='utf-8').read()
    for test_set in ('cmos_low', 'cmos_sensor', 'gaussian_low', 'gaussian_sensor'):
        assert f'Validation {test_set}' in log


@pytest.mark.slow
@pytest.mark.parametrize('noise', ['estimate', "{type: poisson_gaussian, gain: 0.002, read_sigma: 0.003}"])
def test_universal_model_restores_a_new_sensor_given_its_kernel(tmp_path, noise):
    """The shipped universal model, told a kernel it never saw in training (an f/8 Airy pattern, 9x9) with
    --kernel, and the noise with --noise, on a test photograph in no training or validation list."""
    airy = '{type: airy, f_number: 8, size: 9}'
    dataset = CrosstalkDataset({'dataroot_gt': COLOUR_TEST_SET, 'phase': 'test', 'kernel': {'type': 'airy',
                                'f_number': 8, 'size': 9}, 'noise': SENSOR_NOISE})
    item = dataset[6]  # ihc_tl
    lq = lq_of(item)
    cv2.imwrite(str(tmp_path / 'photo.png'), tensor2img([lq]))
    name = 'KernelAwareNAFNet-universal'
    result = run_basicsr(['restore', '-i', str(tmp_path / 'photo.png'), '-o', str(tmp_path / 'restored.png'),
                          '--weights', weights(name), '--arch', recipe(name), '--kernel', airy, '--noise', noise,
                          '--device', 'cpu'], cwd=tmp_path, env={'OMP_NUM_THREADS': '1'})
    assert result.returncode == 0, result.stderr[-2000:]
    gt = tensor2img([item['gt']])
    gain = calculate_psnr(cv2.imread(str(tmp_path / 'restored.png')), gt, 0) - calculate_psnr(
        tensor2img([lq]), gt, 0)
    assert gain > 2.0, f'{gain:.2f} dB over the input'
