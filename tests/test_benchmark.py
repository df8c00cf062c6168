"""``basicsr benchmark``: end to end on a tiny set, the shipped sample options, zoo loading, option errors."""
import copy
import csv
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.archs import build_network
from basicsr.metrics import calculate_psnr
from basicsr.utils import tensor2img

from newbp_plugin.inference.network import load_network, run_network
from newbp_plugin.benchmark.runner import Benchmark
from newbp_plugin.data.crosstalk_dataset import CrosstalkDataset, degrade_batch
from newbp_plugin.models.newbp_model import parse_model_options
from newbp_plugin.pictures import BACKGROUND, BAR_WIDTH, LABEL_HEIGHT
from newbp_plugin.sensor.noise_estimate import estimate_noise
from tests.conftest import run_basicsr, write_smooth_images
from tests.test_data_dataset import lq_of

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
FIXTURES = osp.join(ROOT, 'tests', 'fixtures', 'nafnet')
ZOO_WEIGHTS = osp.join(FIXTURES, 'tiny_width8.pth')
ZOO_ARCH = {'type': 'NAFNet', 'width': 8, 'enc_blk_nums': [1, 1], 'middle_blk_num': 1, 'dec_blk_nums': [1, 1]}
KERNELS = {'cmos': {'type': 'crosstalk', 'size': 5, 'left': 0.06, 'second_ring': 0.01},
           'gauss': {'type': 'gaussian', 'sigma': 0.8}}
NOISES = {'low': {'type': 'gaussian', 'sigma': 0.002, 'quantize': 8},
          'high': {'type': 'poisson_gaussian', 'gain': 0.002, 'read_sigma': 0.003}}


def tiny_options(folder, **changes):
    opt = {
        'name': 'tiny',
        'device': 'cpu',
        'seed': 3,
        'dataset': {'dataroot_gt': str(folder)},
        'kernels': KERNELS,
        'noises': NOISES,
        'methods': {
            'input': {'type': 'identity'},
            'wiener': {'type': 'wiener'},
            'rl': {'type': 'richardson_lucy', 'iterations': 5},
            'converse': {'type': 'converse'},
            'zoo': {'type': 'network', 'weights': ZOO_WEIGHTS, 'network_g': ZOO_ARCH, 'tile': 16, 'tile_overlap': 4},
        },
        'figure': {'crop_size': 16},
    }
    opt.update(changes)
    return opt


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    """The tiny benchmark run once: (options, results folder)."""
    root = tmp_path_factory.mktemp('bench')
    folder = write_smooth_images(root / 'clean', 2, size=24)
    opt = tiny_options(folder)
    return opt, Benchmark(copy.deepcopy(opt)).run(str(root))


def test_tiny_benchmark_writes_every_report(tiny_run):
    opt, folder = tiny_run
    for suffix in ('md', 'csv', 'json', 'png'):
        assert osp.getsize(osp.join(folder, f'benchmark.{suffix}')) > 0
    table = [line for line in open(osp.join(folder, 'benchmark.md'), encoding='utf-8') if line.startswith('| ')]
    assert len(table) - 1 == len(opt['methods']) * len(KERNELS) * len(NOISES)  # minus the header
    with open(osp.join(folder, 'benchmark.csv'), encoding='utf-8') as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == len(opt['methods']) * len(KERNELS) * len(NOISES) * 3  # 2 images + the mean
    figure = cv2.imread(osp.join(folder, 'benchmark.png'))
    assert figure.shape[0] > 4 * 16 * 2  # one row per degradation, zoomed crops


def non_background_runs(line):
    """[(start, length)] of the runs of pixels that are not the canvas colour along a (W, 3) line."""
    inside = np.concatenate([[False], (line != BACKGROUND).any(axis=1), [False]]).astype(int)
    starts, ends = np.flatnonzero(np.diff(inside) == 1), np.flatnonzero(np.diff(inside) == -1)
    return list(zip(starts, ends - starts))


def test_benchmark_figure_labels_every_panel_with_its_method_and_psnr(tiny_run):
    opt, folder = tiny_run
    figure = cv2.imread(osp.join(folder, 'benchmark.png'))
    tile = opt['figure']['crop_size'] * 2  # zoom 2
    degradations, panels = len(KERNELS) * len(NOISES), 1 + len(opt['methods'])  # clean, then every method
    row_height = 3 * LABEL_HEIGHT + tile  # the degradation's line, the method's name and its PSNR, the crop
    assert figure.shape[0] == degradations * row_height + (degradations - 1) * (3 * LABEL_HEIGHT // 2)
    for index in range(degradations):
        top = index * (row_height + 3 * LABEL_HEIGHT // 2)
        runs = non_background_runs(figure[top + 3 * LABEL_HEIGHT + tile // 2])
        assert len(runs) == panels and all(length == tile for _, length in runs)
        assert (figure[top:top + LABEL_HEIGHT] > 150).all(axis=2).sum() > 50  # the degradation's line
        for line in (1, 2):  # the method's name, its PSNR (the clean crop: where it is), above every crop
            strip = figure[top + line * LABEL_HEIGHT:top + (line + 1) * LABEL_HEIGHT]
            assert all((strip[:, start:start + tile] > 150).all(axis=2).sum() > 5 for start, _ in runs)
    plot = cv2.imread(osp.join(folder, 'benchmark_psnr.png'))  # figure:metric defaults to the first metric
    assert plot.shape[0] == 8 + 2 * LABEL_HEIGHT + degradations * (LABEL_HEIGHT + 16 * len(opt['methods'])) + \
        (degradations + 1) * 4  # header, a titled panel per degradation, the axis


def test_a_newbp_network_shows_its_s_beside_its_result(tmp_path):
    network_g = {'type': 'NewBPNAFNet', 'width': 8, 'enc_blk_nums': [1], 'dec_blk_nums': [1], 'output': 'residual',
                 'skip': 'none', 'kernel': {'type': 'crosstalk'}}
    torch.save({'params': build_network(network_g).state_dict()}, tmp_path / 'newbp.pth')
    folder = write_smooth_images(tmp_path / 'clean', 1, size=24)
    opt = tiny_options(folder, kernels={'cmos': KERNELS['cmos']}, noises={'low': NOISES['low']},
                       methods={'input': {'type': 'identity'},
                                'newbp': {'type': 'network', 'weights': str(tmp_path / 'newbp.pth'),
                                          'network_g': network_g}},
                       figure={'crop_size': 16, 'crop': 'centre', 'zoom': 4, 'metric': 'ssim'})
    results = Benchmark(opt).run(str(tmp_path))
    figure = cv2.imread(osp.join(results, 'benchmark.png'))
    runs = non_background_runs(figure[3 * LABEL_HEIGHT + 32])
    assert [length for _, length in runs][:3] == [64, 64, 64]  # clean, input, newbp
    # then S under 5 lines (its name, and s_to_image's titles): R of output: residual, one map and its colour bar
    s_runs = non_background_runs(figure[6 * LABEL_HEIGHT + 32, runs[2][0] + 64:])
    assert s_runs[0][1] == 64 and s_runs[1][1] <= BAR_WIDTH + 3
    assert osp.isfile(osp.join(results, 'benchmark_ssim.png'))  # figure:metric
    assert not osp.isfile(osp.join(results, 'benchmark_psnr.png'))


def test_tiny_benchmark_figures_are_sane_and_identity_is_a_direct_psnr(tiny_run):
    opt, folder = tiny_run
    with open(osp.join(folder, 'benchmark.json'), encoding='utf-8') as f:
        report = json.load(f)
    rows = {(row['kernel'], row['noise'], row['method']): row for row in report['rows']}
    for row in rows.values():
        assert 0 <= row['mean']['ssim'] <= 1 and 0 <= row['mean']['ssim_y'] <= 1
        assert row['mean']['runtime_ms'] >= 0 and 3 < row['mean']['psnr'] < 80
    # degradation d = kernels outer, noises inner; image i draws from default_rng([seed + d, i])
    for index, (kernel_name, noise_name) in enumerate((k, n) for k in KERNELS for n in NOISES):
        dataset = CrosstalkDataset({'dataroot_gt': opt['dataset']['dataroot_gt'], 'phase': 'test',
                                    'kernel': KERNELS[kernel_name], 'noise': NOISES[noise_name],
                                    'val_seed': opt['seed'] + index})
        identity = rows[(kernel_name, noise_name, 'input')]
        for i in range(len(dataset)):
            item = dataset[i]
            expected = calculate_psnr(tensor2img([lq_of(item)]), tensor2img([item['gt']]), crop_border=0)
            assert identity['images'][osp.basename(item['gt_path'])]['psnr'] == pytest.approx(expected, abs=1e-9)
    # the oracle classical methods gain on the low-noise degradations
    for kernel_name in KERNELS:
        assert rows[(kernel_name, 'low', 'wiener')]['mean']['psnr'] > rows[(kernel_name, 'low', 'input')]['mean'][
            'psnr']


@pytest.mark.slow
def test_shipped_sample_options_run(tmp_path, monkeypatch):
    """The README's ablation table: options/benchmark/sample.yml with the shipped networks, from the root."""
    with open(osp.join(ROOT, 'options', 'benchmark', 'sample.yml'), encoding='utf-8') as f:
        opt = yaml.safe_load(f)
    monkeypatch.chdir(ROOT)  # the options' paths are relative to the repository root, as the README runs them
    folder = Benchmark(opt).run(str(tmp_path))
    table = [line for line in open(osp.join(folder, 'benchmark.md'), encoding='utf-8') if line.startswith('| ')]
    assert len(table) - 1 == len(opt['methods']) * len(opt['kernels']) * len(opt['noises'])
    rows = {(row['kernel'], row['noise'], row['method']): row['mean']['psnr']
            for row in json.load(open(osp.join(folder, 'benchmark.json'), encoding='utf-8'))['rows']}
    for kernel in opt['kernels']:
        for noise in opt['noises']:
            for method in ('nafnet', 'newbp_nafnet', 'newbp_nafnet_converse'):
                assert rows[(kernel, noise, method)] > rows[(kernel, noise, 'input')]


def test_zoo_checkpoint_loads_strictly_and_matches_upstream():
    io = torch.load(osp.join(FIXTURES, 'tiny_width8_io.pt'), weights_only=True)
    for arch, key in (('NAFNet', 'NAFNet'), ('NAFNetLocal', 'NAFNetLocal_fast_imp=False')):
        options = dict(ZOO_ARCH, type=arch)
        if arch == 'NAFNetLocal':
            options['train_size'] = io['train_size']
        net = load_network(options, ZOO_WEIGHTS, strict=True)
        restored, s = run_network(net, io['input'])
        assert s is None
        torch.testing.assert_close(restored, io[key], rtol=1e-4, atol=1e-5)


def test_zoo_checkpoint_into_a_wrong_architecture_names_the_keys():
    with pytest.raises(ValueError, match=r'do not match NAFNet.*missing in the checkpoint.*encoders\.2'):
        load_network(dict(ZOO_ARCH, enc_blk_nums=[1, 1, 1], dec_blk_nums=[1, 1, 1]), ZOO_WEIGHTS)


@pytest.mark.parametrize('change, message', [
    ({'kernel': {}}, "unknown option 'kernel' \\(did you mean 'kernels'\\?\\)"),
    ({'methods': {'w': {'type': 'wiener', 'nsr': 0.1}}}, "unknown option 'methods:w:nsr'"),
    ({'methods': {'w': {'type': 'wienr'}}}, 'methods:w needs a type, one of identity, network'),
    ({'methods': {'w': {'type': 'wiener', 'boundary': 'zeros'}}}, 'methods:w: boundary must be one of'),
    ({'methods': {'c': {'type': 'converse', 'lam': -1}}}, 'methods:c: converse2d: lam must be > 0'),
    ({'methods': {'n': {'type': 'network', 'network_g': ZOO_ARCH}}}, 'option methods:n:weights is required'),
    ({'seed': -1}, 'option seed must be an integer >= 0, got -1'),
    ({'figure': {'zoom': 0}}, 'option figure:zoom must be a positive integer, got 0'),
    ({'dataset': {'dataroot_gt': '.', 'crop': 8}}, "unknown option 'dataset:crop'"),
    ({'noises': {'n': {'type': 'gaussian'}}}, 'noises:n: .*noise.sigma is required'),
    ({'metrics': {'psnr': {'type': 'calculate_psnrr'}}}, 'metrics:psnr needs a type'),
    ({'figure': {'image': 5}}, 'figure:image must be an index below 2'),
    ({'figure': {'crop': 'middle'}}, r'option figure:crop must be auto, centre or \[top, left\], got'),
    ({'figure': {'metric': 'lpips'}}, r"figure:metric must be a key of metrics \(psnr, ssim, psnr_y, ssim_y\)"),
])
def test_bad_options_fail_fast_naming_them(tmp_path, change, message):
    folder = write_smooth_images(tmp_path / 'clean', 2, size=16)
    with pytest.raises(ValueError, match=message):
        Benchmark(tiny_options(folder, **change))


def test_cli_reports_a_bad_option_in_one_line(tmp_path):
    folder = write_smooth_images(tmp_path / 'clean', 1, size=16)
    opt = tiny_options(folder, methods={'w': {'type': 'wiener', 'iterations': 3}})
    (tmp_path / 'bad.yml').write_text(yaml.safe_dump(opt))
    result = run_basicsr(['benchmark', '-opt', 'bad.yml'], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "basicsr benchmark: error: benchmark options: unknown option 'methods:w:iterations'; valid options: "
        'balance, boundary, pad']
    assert not os.path.exists(tmp_path / 'results')


def test_identical_runs_give_identical_figures(tiny_run, tmp_path):
    # every method but the slowest again: the degraded images, the oracle noise levels and the restorations repeat
    opt, folder = tiny_run
    methods = {name: method for name, method in opt['methods'].items() if name != 'zoo'}
    again = Benchmark(copy.deepcopy(dict(opt, methods=methods))).run(str(tmp_path))

    def figures(results):
        with open(osp.join(results, 'benchmark.json'), encoding='utf-8') as f:
            return {(r['kernel'], r['noise'], r['method']): {n: (v['psnr'], v['ssim']) for n, v in r['images'].items()}
                    for r in json.load(f)['rows'] if r['method'] in methods}

    first, second = figures(folder), figures(again)
    assert len(first) == len(KERNELS) * len(NOISES) * len(methods) and first == second


@pytest.mark.parametrize('name', ['NAFNet-GoPro-width32', 'NAFNet-GoPro-width64', 'NAFNet-SIDD-width32',
                                  'NAFNet-SIDD-width64'])
def test_zoo_test_options_build_the_official_networks(name):
    with open(osp.join(ROOT, 'options', 'test', f'{name}.yml'), encoding='utf-8') as f:
        opt = yaml.safe_load(f)
    assert opt['model_type'] == 'NewBPModel'
    parse_model_options(opt)
    assert opt['path']['pretrain_network_g'] == f'experiments/pretrained_models/{name}.pth'
    assert all(dataset['type'] == 'PairedImageDataset' for dataset in opt['datasets'].values())
    assert opt['network_g']['type'] == ('NAFNetLocal' if 'GoPro' in name else 'NAFNet')  # TLC for GoPro
    with torch.device('meta'):  # shapes only
        net = build_network(opt['network_g'])
    with open(osp.join(FIXTURES, 'official_keys.json'), encoding='utf-8') as f:
        official = json.load(f)['configs'].get(name)
    if official is not None:
        assert {key: list(value.shape) for key, value in net.state_dict().items()} == official['shapes']


def test_a_channel_mixing_kernel_goes_through_the_benchmark(tmp_path):
    folder = write_smooth_images(tmp_path / 'clean', 1, size=32)
    mixing = {'type': 'cross_channel', 'mix': [[0.8, 0.2, 0], [0.1, 0.8, 0.1], [0, 0.2, 0.8]],
              'kernel': {'type': 'gaussian', 'sigma': 0.8}}
    opt = tiny_options(folder, kernels={'mix': mixing}, noises={'low': NOISES['low']},
                       methods={'input': {'type': 'identity'}, 'wiener': {'type': 'wiener'},
                                'rl': {'type': 'richardson_lucy', 'iterations': 20}})
    with open(osp.join(Benchmark(opt).run(str(tmp_path)), 'benchmark.json'), encoding='utf-8') as f:
        psnr = {row['method']: row['mean']['psnr'] for row in json.load(f)['rows']}
    assert psnr['wiener'] > psnr['input'] + 3 and psnr['rl'] > psnr['input'] + 1
    with pytest.raises(ValueError, match='methods:c: Converse2D inverts depthwise kernels only; mix / low mixes'):
        Benchmark(dict(opt, methods={'c': {'type': 'converse'}}))


def test_a_kernel_aware_network_is_given_the_drawn_or_estimated_noise(tmp_path):
    """noise: oracle hands the parameters drawn for each image over; noise: estimate what X shows."""
    network_g = {'type': 'KernelAwareNAFNet', 'width': 8, 'enc_blk_nums': [1], 'dec_blk_nums': [1]}
    torch.manual_seed(0)
    net = build_network(network_g).eval()
    torch.nn.init.normal_(net.noise_embeddings[0].weight, std=5.0)  # the noise map changes the output
    torch.save({'params': net.state_dict()}, tmp_path / 'ka.pth')
    folder = write_smooth_images(tmp_path / 'clean', 2, size=24)
    noise = {'type': 'poisson_gaussian', 'gain': {'uniform': [0.001, 0.01]}, 'read_sigma': 0.01, 'quantize': 8}
    method = {'type': 'network', 'weights': str(tmp_path / 'ka.pth'), 'network_g': network_g}
    opt = tiny_options(folder, kernels={'gauss': KERNELS['gauss']}, noises={'shot': noise},
                       methods={'oracle': method, 'estimate': dict(method, noise='estimate')})
    rows = json.load(open(osp.join(Benchmark(opt).run(str(tmp_path)), 'benchmark.json'), encoding='utf-8'))['rows']
    psnr = {row['method']: [image['psnr'] for image in row['images'].values()] for row in rows}
    dataset = CrosstalkDataset({'dataroot_gt': str(folder), 'phase': 'test', 'kernel': KERNELS['gauss'],
                                'noise': noise, 'val_seed': opt['seed']})
    for index in range(2):
        batch = torch.utils.data.default_collate([dataset[index]])
        x = degrade_batch(batch)
        for name, given in (('oracle', {key: batch['sensor'][key] for key in ('gain', 'read_sigma')}),
                            ('estimate', estimate_noise(x))):
            with torch.no_grad():
                restored = net(x, kernel=batch['kernel'], noise=given)
            expected = calculate_psnr(tensor2img([restored]), tensor2img([batch['gt']]), crop_border=0)
            assert psnr[name][index] == pytest.approx(expected, abs=1e-6)
    assert psnr['oracle'] != psnr['estimate']
