"""``basicsr benchmark`` on packed raw (issue 15): raw and sRGB metrics, the raw classical rows, the raw figure."""
import csv
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.metrics import calculate_psnr
from basicsr.utils import tensor2img
from skimage.color import deltaE_ciede2000, rgb2lab

from newbp_plugin.benchmark.runner import Benchmark
from newbp_plugin.data.crosstalk_dataset import CrosstalkDataset, degrade_batch
from newbp_plugin.pictures import LABEL_HEIGHT
from newbp_plugin.sensor.mosaic import unpack
from newbp_plugin.sensor.unprocess import Cameras, process, process_rgb
from tests.conftest import write_smooth_images
from tests.test_benchmark import non_background_runs

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
RAW = {'domain': 'raw', 'cfa': 'RGGB', 'raw_bits': 12, 'black_level': 256, 'white_level': 4095}
KERNEL = {'type': 'bayer_crosstalk', 'r': {'left': 0.06, 'right': 0.06, 'up': 0.06, 'down': 0.06}}
NOISE = {'type': 'poisson_gaussian', 'gain': 0.0005, 'read_sigma': 0.001}
CROP, ZOOM = 16, 2


def raw_options(folder, **changes):
    opt = {
        'name': 'tiny_raw',
        'device': 'cpu',
        'seed': 1,
        'dataset': dict(RAW, dataroot_gt=str(folder)),
        'kernels': {'bayer': KERNEL},
        'noises': {'low': NOISE},
        'methods': {'input': {'type': 'identity'}, 'wiener': {'type': 'wiener'},
                    'demosaic_wiener': {'type': 'demosaic_wiener'}},
        'figure': {'crop_size': CROP, 'zoom': ZOOM, 'crop': 'centre'},
    }
    opt.update(changes)
    return opt


@pytest.fixture(scope='module')
def raw_run(tmp_path_factory):
    """The tiny raw benchmark run once (default metrics): (options, clean folder, results folder)."""
    root = tmp_path_factory.mktemp('bench_raw')
    folder = write_smooth_images(root / 'clean', 2, size=32)
    opt = raw_options(folder)
    return opt, folder, Benchmark(opt).run(str(root))


def test_raw_benchmark_tables_have_raw_and_colour_columns_and_wiener_wins_at_low_noise(raw_run):
    opt, _, folder = raw_run
    table = [line for line in open(osp.join(folder, 'benchmark.md'), encoding='utf-8') if line.startswith('| ')]
    assert table[0].split('|')[4:-1] == [' psnr ', ' ssim ', ' psnr_srgb ', ' delta_e00 ', ' runtime_ms ']
    assert len(table) - 1 == 3
    header = open(osp.join(folder, 'benchmark.md'), encoding='utf-8').read()
    assert 'psnr: calculate_psnr, crop_border 0, on the raw mosaic' in header
    assert 'delta_e00: calculate_delta_e2000, crop_border 0, on sRGB' in header
    with open(osp.join(folder, 'benchmark.csv'), encoding='utf-8') as f:
        assert len(list(csv.DictReader(f))) == 3 * 3  # 2 images + the mean per method
    rows = {row['method']: row['mean'] for row in json.load(open(osp.join(folder, 'benchmark.json')))['rows']}
    for method in ('wiener', 'demosaic_wiener'):
        assert rows[method]['psnr'] > rows['input']['psnr'] + 2
        assert rows[method]['psnr_srgb'] > rows['input']['psnr_srgb'] + 2
        assert rows[method]['delta_e00'] < rows['input']['delta_e00'] - 0.5
    assert rows['wiener']['psnr'] > rows['demosaic_wiener']['psnr']  # the mosaic's own kernel beats its RGB shadow


def test_raw_metrics_of_the_input_are_the_mosaic_psnr_and_ciede2000_after_the_camera(raw_run):
    """input: PSNR of the 8-bit mosaics (NewBPModel's validation), and ΔE00 by skimage on the processed images."""
    opt, clean, folder = raw_run
    rows = json.load(open(osp.join(folder, 'benchmark.json')))['rows']
    figures = next(row for row in rows if row['method'] == 'input')['images']
    dataset = CrosstalkDataset(dict(RAW, dataroot_gt=str(clean), phase='test', kernel=KERNEL, noise=NOISE,
                                    val_seed=opt['seed']))
    for index, name in enumerate(('img0.png', 'img1.png')):
        batch = torch.utils.data.default_collate([dataset[index]])
        x, gt = degrade_batch(batch), batch['gt']
        assert figures[name]['psnr'] == pytest.approx(
            calculate_psnr(tensor2img([unpack(x)]), tensor2img([unpack(gt)]), crop_border=0), abs=1e-9)
        cameras = Cameras.from_draws(batch['sensor'])
        srgb = [tensor2img([process(unpack(image.double().clamp(0, 1)), cameras, 'RGGB')], rgb2bgr=False)
                for image in (x, gt)]
        expected = deltaE_ciede2000(rgb2lab(srgb[0] / 255), rgb2lab(srgb[1] / 255)).mean()
        assert figures[name]['delta_e00'] == pytest.approx(expected, rel=1e-9)
        assert figures[name]['psnr_srgb'] == pytest.approx(calculate_psnr(srgb[0], srgb[1], crop_border=0), abs=1e-9)


def test_raw_figure_shows_mosaic_input_methods_clean_and_the_phase_kernels(raw_run):
    _, _, folder = raw_run
    figure = cv2.imread(osp.join(folder, 'benchmark.png'))
    tile = CROP * ZOOM
    crops = non_background_runs(figure[3 * LABEL_HEIGHT + tile // 2])  # row label, title, figures; then the crops
    # mosaic, demosaiced input, wiener, demosaic_wiener (identity rows are the input), clean; then K's phases
    assert [length for _, length in crops[:5]] == [tile] * 5
    kernels = figure[:, crops[4][0] + tile:]
    assert sum(length == 3 * (tile // 3) for _, length in non_background_runs(
        kernels[3 * LABEL_HEIGHT + 2 * LABEL_HEIGHT + 4 + tile // 3 // 2])) == 4  # R, Gr, Gb, B 3x3 maps
    mosaic = figure[3 * LABEL_HEIGHT:3 * LABEL_HEIGHT + tile, crops[0][0]:crops[0][0] + tile]
    # the mosaic in its filters' colours, crop on a whole cell: top-left pixel (zoomed) red only (BGR order)
    assert (mosaic[0:ZOOM, 0:ZOOM, :2] == 0).all() and (mosaic[0:ZOOM, 0:ZOOM, 2] > 0).all()
    assert (mosaic[ZOOM:2 * ZOOM, ZOOM:2 * ZOOM, 1:] == 0).all()  # bottom-right of the cell: blue only
    assert osp.getsize(osp.join(folder, 'benchmark_psnr.png')) > 0


def test_shipped_raw_options_are_valid(tmp_path, monkeypatch):
    """options/benchmark/raw.yml builds, its networks left out (their weights are trained separately)."""
    opt = yaml.safe_load(open(osp.join(ROOT, 'options', 'benchmark', 'raw.yml'), encoding='utf-8'))
    opt['methods'] = {name: method for name, method in opt['methods'].items() if method['type'] != 'network'}
    monkeypatch.chdir(ROOT)
    benchmark = Benchmark(opt)
    assert benchmark.raw and benchmark.cfa == 'RGGB' and len(benchmark.degradations) == 4
    assert benchmark.metric_domains == {'psnr': 'raw', 'ssim': 'raw', 'psnr_srgb': 'srgb', 'delta_e00': 'srgb'}


@pytest.mark.parametrize('change, message', [
    ({'methods': {'d': {'type': 'demosaic_wiener'}}, 'dataset': {'dataroot_gt': None}},
     'methods:d: demosaic_wiener restores packed raw; set dataset:domain: raw'),
    ({'metrics': {'de': {'type': 'calculate_delta_e2000'}}}, 'metrics:de: calculate_delta_e2000 compares colours'),
    ({'metrics': {'p': {'type': 'calculate_psnr', 'domain': 'linear'}}}, 'metrics:p: domain must be one of raw, srgb'),
    ({'metrics': {'p': {'type': 'calculate_psnr', 'domain': 'srgb'}}, 'dataset': {'dataroot_gt': None}},
     'metrics:p: domain .srgb. applies to raw benchmarks only'),
    ({'linear_light': True}, 'linear_light must be false or unset with dataset:domain: raw'),
    ({'methods': {'d': {'type': 'demosaic_wiener', 'view': 'srgb'}}}, 'methods:d:view must be one of raw, rgb'),
    ({'methods': {'d': {'type': 'demosaic_wiener', 'iterations': 3}}}, "unknown option 'methods:d:iterations'; valid options: balance, boundary, pad"),
])
def test_bad_raw_options_fail_fast_naming_them(tmp_path, change, message):
    folder = write_smooth_images(tmp_path / 'clean', 1, size=16)
    opt = raw_options(folder)
    if change.get('dataset') == {'dataroot_gt': None}:  # an RGB benchmark
        change = dict(change, dataset={'dataroot_gt': str(folder)}, kernels={'g': {'type': 'gaussian', 'sigma': 1}},
                      noises={'n': {'type': 'none'}})
    opt.update(change)
    with pytest.raises(ValueError, match=message):
        Benchmark(opt)


def test_demosaic_wiener_is_seen_through_the_fixed_isp_or_from_its_own_rgb(raw_run, tmp_path):
    """view: raw (default): the fixed pipeline on its mosaicked-back raw, as every row; view: rgb: from its restored
    RGB (no second demosaicing)."""
    opt, clean, _ = raw_run
    methods = {'raw': {'type': 'demosaic_wiener'}, 'own': {'type': 'demosaic_wiener', 'view': 'rgb'}}
    folder = Benchmark(dict(opt, methods=methods, name='views')).run(str(tmp_path))
    rows = {row['method']: row['images']['img0.png'] for row in json.load(open(osp.join(folder, 'benchmark.json')))[
        'rows']}
    assert rows['raw']['psnr'] == rows['own']['psnr']
    from newbp_plugin.benchmark import classical
    from newbp_plugin.sensor.degradation import noise_variance
    dataset = CrosstalkDataset(dict(RAW, dataroot_gt=str(clean), phase='test', kernel=KERNEL, noise=NOISE,
                                    val_seed=opt['seed']))
    batch = torch.utils.data.default_collate([dataset[0]])
    x = degrade_batch(batch)
    packed, rgb = classical.demosaic_wiener(x, batch['kernel'], 'RGGB', noise_var=noise_variance(batch['sensor'], x),
                                            return_rgb=True)
    assert rgb.shape == (1, 3, 32, 32) and packed.shape == x.shape
    cameras = Cameras.from_draws(batch['sensor'])
    gt = tensor2img([process(unpack(batch['gt'].double()), cameras, 'RGGB')])
    redemosaiced = tensor2img([process(unpack(packed.double().clamp(0, 1)), cameras, 'RGGB')])
    own = tensor2img([process_rgb(rgb.double(), cameras)])
    assert rows['raw']['psnr_srgb'] == pytest.approx(calculate_psnr(redemosaiced, gt, crop_border=0), abs=1e-9)
    assert rows['own']['psnr_srgb'] == pytest.approx(calculate_psnr(own, gt, crop_border=0), abs=1e-9)
    assert rows['own']['psnr_srgb'] != pytest.approx(rows['raw']['psnr_srgb'], abs=1e-3)
    np.testing.assert_allclose(packed.numpy(), classical.demosaic_wiener(
        x, batch['kernel'], 'RGGB', noise_var=noise_variance(batch['sensor'], x)).numpy())
