"""CrosstalkDataset: items, kernel convention, random streams, LMDB round trip, errors, BasicSR integration."""
import logging
import os

import cv2
import lmdb
import numpy as np
import pytest
import torch
from basicsr.data import build_dataloader, build_dataset
from basicsr.utils import bgr2ycbcr
from scipy.signal import convolve2d
from torch.utils.data import DataLoader, default_collate

from newbp_plugin.data.crosstalk_dataset import CrosstalkDataset, degrade_batch
from newbp_plugin.ops.color import linear_to_srgb, srgb_to_linear
from newbp_plugin.data.lmdb_tools import make_lmdb
from newbp_plugin.ops import crosstalk

ASYMMETRIC_SPEC = {'type': 'crosstalk', 'left': 0.12, 'right': 0.0, 'up': 0.06, 'down': 0.0, 'diagonal': 0.0}
NOISE = {'type': 'poisson_gaussian', 'gain': {'uniform': [0.002, 0.01]}, 'read_sigma': 0.003, 'quantize': 8}


def smooth(rng, height, width, channels, maximum):
    coarse = rng.uniform(0, maximum, size=(height // 4, width // 4, channels)).astype(np.float32)
    img = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).reshape(height, width, channels)
    return np.clip(img, 0, maximum).astype(np.uint16 if maximum > 255 else np.uint8)


@pytest.fixture(scope='module')
def sources(tmp_path_factory):
    """{name: stored pixels} of a folder of PNGs: 8- and 16-bit colour, grey, one smaller than gt_size."""
    folder = tmp_path_factory.mktemp('images')
    rng = np.random.default_rng(0)
    images = {
        'rgb8': smooth(rng, 48, 64, 3, 255),
        'gray8': smooth(rng, 48, 64, 1, 255)[..., 0],
        'rgb16': smooth(rng, 48, 64, 3, 65535),
        'small': smooth(rng, 20, 24, 3, 255),
    }
    for name, img in images.items():
        cv2.imwrite(str(folder / f'{name}.png'), img)
    return folder, images


@pytest.fixture(scope='module')
def lmdb_path(sources, tmp_path_factory):
    path = str(tmp_path_factory.mktemp('lmdb') / 'gt.lmdb')
    make_lmdb(str(sources[0]), path, progress=False)
    return path


@pytest.fixture
def make(lmdb_path):
    def make(**options):
        opt = {'name': 'test', 'type': 'CrosstalkDataset', 'dataroot_gt': lmdb_path, 'io_backend': {'type': 'lmdb'},
               'phase': 'val', 'kernel': ASYMMETRIC_SPEC, 'linear_light': False}
        opt.update(options)
        return CrosstalkDataset(opt)

    return make


def index_of(dataset, key):
    return dataset.paths.index(key)


def lq_of(item):
    """X of one item, degraded as NewBPModel degrades a batch."""
    return degrade_batch(default_collate([item]))[0]


def reference_blur(gt, kernel):
    """K * gt by scipy's true convolution, reflect-padded (independent of ops.crosstalk)."""
    pad = kernel.shape[-1] // 2
    planes = [np.pad(plane, pad, mode='reflect') for plane in gt.astype(np.float64)]
    return np.stack([convolve2d(plane, k, mode='valid') for plane, k in zip(planes, kernel)])


# ---------------------------------------------------------------- items and the kernel convention


def test_item_keys_types_and_ranges(make):
    dataset = make(phase='train', gt_size=32, noise=NOISE, linear_light=True)
    item = dataset[index_of(dataset, 'rgb8')]
    assert set(item) == {'gt', 'scene', 'kernel', 'sensor', 'lq_path', 'gt_path'}
    assert set(item['sensor']) == {'gain', 'read_sigma', 'clip', 'quantize', 'seed', 'linear_light'}
    assert item['scene'].shape == (3, 34, 34)  # the kernel's context ring around gt
    torch.testing.assert_close(item['scene'][:, 1:-1, 1:-1], item['gt'], rtol=0, atol=0)
    for image in (lq_of(item), item['gt']):
        assert image.dtype == torch.float32 and image.shape == (3, 32, 32)
        assert 0 <= image.min() and image.max() <= 1
    assert item['gt_path'] == item['lq_path'] == 'rgb8'
    assert item['kernel'].dtype == torch.float32 and item['kernel'].shape == (3, 3, 3)
    np.testing.assert_allclose(item['kernel'].sum(dim=(1, 2)), 1, atol=1e-6)


def test_full_image_lq_is_the_head_operator_applied_to_gt(make):
    """Noiseless lq = K * gt: scipy reference, and ops.crosstalk with the returned kernel (the head)."""
    dataset = make()
    item = dataset[index_of(dataset, 'rgb8')]
    gt, kernel = item['gt'].numpy(), item['kernel'].numpy()
    assert kernel[0, 1, 0] == pytest.approx(0.12) and kernel[0, 0, 1] == pytest.approx(0.06)  # left, up
    np.testing.assert_allclose(lq_of(item).numpy(), reference_blur(gt, kernel), atol=2e-6)
    head = crosstalk(item['gt'][None], item['kernel'][None], padding_mode='reflect')[0]
    np.testing.assert_allclose(lq_of(item), head, atol=2e-6)


def test_training_crops_keep_the_kernel_orientation_under_flips(make):
    """Flips and rotations happen before K: in every sample, lq = K * gt away from the crop border."""
    dataset = make(phase='train', gt_size=24)
    for seed in range(8):
        torch.manual_seed(seed)
        item = dataset[index_of(dataset, 'rgb8')]
        gt, kernel, lq = item['gt'].numpy(), item['kernel'].numpy(), lq_of(item).numpy()
        np.testing.assert_allclose(lq[:, 1:-1, 1:-1], reference_blur(gt, kernel)[:, 1:-1, 1:-1], atol=2e-6)


def test_linear_light_lq(make):
    item = make(linear_light=True)[0]
    gt, kernel = item['gt'].numpy(), item['kernel'].numpy()
    expected = linear_to_srgb(reference_blur(srgb_to_linear(gt.astype(np.float64)), kernel))
    np.testing.assert_allclose(lq_of(item).numpy(), expected, atol=1e-5)


def test_random_kernels_are_padded_to_the_largest_size_and_collate(make):
    spec = [{'type': 'gaussian', 'sigma': {'uniform': [0.3, 1.4]}}, {'type': 'disk', 'radius': 2.2}]
    dataset = make(phase='train', gt_size=16, kernel=spec)
    assert dataset.kernel_size == 11  # gaussian sigma 1.4: 2 * ceil(3 * 1.4) + 1
    batch = next(iter(DataLoader(dataset, batch_size=4, shuffle=True)))
    assert batch['kernel'].shape == (4, 3, 11, 11)
    kernels = set()
    for seed in range(12):
        torch.manual_seed(seed)
        kernel = dataset[0]['kernel']
        kernels.add(tuple(kernel.flatten().tolist()))
        np.testing.assert_allclose(kernel.sum(dim=(1, 2)), 1, atol=1e-5)
    assert len(kernels) > 2
    assert make(kernel=spec, kernel_size=15)[0]['kernel'].shape == (3, 15, 15)


def test_cross_channel_specs_return_channel_mixing_kernels(make):
    mix = {'type': 'cross_channel', 'mix': [[0.8, 0.2, 0], [0.1, 0.8, 0.1], [0, 0.2, 0.8]]}
    item = make(kernel=[mix, {'type': 'gaussian', 'sigma': 0.8}], phase='train', gt_size=16)[0]
    assert item['kernel'].shape == (3, 3, 7, 7)  # gaussian sigma 0.8: 2 * ceil(2.4) + 1
    gt, lq, kernel = item['gt'], lq_of(item), item['kernel']
    head = crosstalk(gt[None], kernel[None])[0]
    torch.testing.assert_close(lq[:, 3:-3, 3:-3], head[:, 3:-3, 3:-3], atol=2e-6, rtol=0)


@pytest.mark.parametrize('color', ['y', 'gray'])
def test_single_channel_colors(make, sources, color):
    dataset = make(color=color, kernel={'type': 'gaussian', 'sigma': 0.01, 'size': 1})
    item = dataset[index_of(dataset, 'rgb8')]
    assert item['gt'].shape == (1, 48, 64) and item['kernel'].shape == (1, 1, 1)
    bgr = sources[1]['rgb8'].astype(np.float32) / 255
    expected = bgr2ycbcr(bgr, y_only=True) if color == 'y' else cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    np.testing.assert_allclose(item['gt'][0].numpy(), expected, atol=1e-6)


# ---------------------------------------------------------------- LMDB round trip: stored pixels come back


@pytest.mark.parametrize('backend', ['lmdb', 'disk'])
def test_gt_pixels_equal_the_source(make, sources, backend):
    folder, images = sources
    root = {'lmdb': {}, 'disk': {'dataroot_gt': str(folder), 'io_backend': {'type': 'disk'}}}[backend]
    dataset = make(**root)
    for name, levels in (('rgb8', 255), ('rgb16', 65535), ('gray8', 255)):
        item = next(dataset[i] for i, path in enumerate(dataset.paths) if os.path.basename(path).startswith(name))
        stored = images[name]
        expected = np.repeat(stored[None], 3, axis=0) if stored.ndim == 2 else stored[..., ::-1].transpose(2, 0, 1)
        gt = item['gt'].numpy().astype(np.float64) * levels
        np.testing.assert_array_equal(np.round(gt), expected)
        assert np.abs(gt - expected).max() < 0.01


def test_sixteen_bit_precision_is_kept(make):
    dataset = make()
    gt = dataset[index_of(dataset, 'rgb16')]['gt']
    assert len(torch.unique(gt)) > 1000  # more levels than 8 bits could hold


def test_small_images_are_reflect_padded_with_one_warning(make, sources):
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger('basicsr')
    logger.addHandler(handler)
    try:
        dataset = make(phase='train', gt_size=32)
        for _ in range(3):
            item = dataset[index_of(dataset, 'small')]
    finally:
        logger.removeHandler(handler)
    assert item['gt'].shape == (3, 32, 32)
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and 'small is 20x24, smaller than 32x32: reflect-padded' in warnings[0]
    val_item = make(val_crop_size=32)[index_of(dataset, 'small')]
    stored = sources[1]['small'][..., ::-1].transpose(2, 0, 1)
    padded = np.pad(stored, ((0, 0), (0, 12), (0, 8)), mode='reflect')
    np.testing.assert_array_equal(np.round(val_item['gt'].numpy() * 255), padded)


def test_val_centre_crop(make, sources):
    dataset = make(val_crop_size=16)
    item = dataset[index_of(dataset, 'rgb8')]
    expected = sources[1]['rgb8'][16:32, 24:40, ::-1].transpose(2, 0, 1)
    np.testing.assert_array_equal(np.round(item['gt'].numpy() * 255), expected)


# ---------------------------------------------------------------- random streams


def train_options(lmdb_path, **options):
    opt = {'name': 'train', 'type': 'CrosstalkDataset', 'dataroot_gt': lmdb_path, 'phase': 'train', 'gt_size': 16,
           'kernel': [{'type': 'gaussian', 'sigma': {'uniform': [0.5, 1.5]}}, ASYMMETRIC_SPEC], 'noise': NOISE,
           'batch_size_per_gpu': 1, 'num_worker_per_gpu': 2, 'scale': 1}
    opt.update(options)
    return opt


def batches(loader):
    return [torch.cat([degrade_batch(batch).flatten(), batch['gt'].flatten(), batch['kernel'].flatten()])
            for batch in loader]


def test_same_torch_seed_same_training_sample(make):
    dataset = make(phase='train', gt_size=16, noise=NOISE)
    samples = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        samples.append(dataset[0])
    for key in ('scene', 'gt', 'kernel'):
        torch.testing.assert_close(samples[0][key], samples[1][key], rtol=0, atol=0)
    torch.testing.assert_close(lq_of(samples[0]), lq_of(samples[1]), rtol=0, atol=0)
    assert not torch.equal(lq_of(samples[0]), lq_of(samples[2]))


def test_two_workers_draw_different_samples_of_the_same_index(lmdb_path):
    dataset = build_dataset(train_options(lmdb_path))
    torch.manual_seed(0)
    first, second = batches(DataLoader(dataset, batch_size=1, sampler=[0, 0], num_workers=2))
    assert not torch.equal(first, second)


@pytest.mark.parametrize('workers', [0, 2])
def test_epochs_differ_through_basicsr_dataloader(lmdb_path, workers):
    """BasicSR's worker_init_fn reseeds numpy and random identically at every epoch; samples must still change."""
    opt = train_options(lmdb_path, num_worker_per_gpu=workers)
    dataset = build_dataset(opt)
    torch.manual_seed(0)
    loader = build_dataloader(dataset, opt, num_gpu=1, dist=False, sampler=[0, 1, 2, 3], seed=0)
    epoch1, epoch2 = batches(loader), batches(loader)
    assert len(epoch1) == 4 and all(not torch.equal(a, b) for a, b in zip(epoch1, epoch2))


def test_validation_is_identical_across_epochs_and_runs(lmdb_path):
    opt = {'name': 'val', 'type': 'CrosstalkDataset', 'dataroot_gt': lmdb_path, 'phase': 'val', 'noise': NOISE,
           'kernel': [{'type': 'gaussian', 'sigma': {'uniform': [0.5, 1.5]}}, ASYMMETRIC_SPEC]}
    torch.manual_seed(0)
    loader = build_dataloader(build_dataset(opt), opt)
    first, second = batches(loader), batches(loader)
    torch.manual_seed(1)
    other_run = batches(build_dataloader(build_dataset(opt), opt))
    for a, b, c in zip(first, second, other_run):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(a, c, rtol=0, atol=0)
    assert not torch.equal(first[0], batches(build_dataloader(build_dataset(dict(opt, val_seed=1)), opt))[0])


# ---------------------------------------------------------------- BasicSR integration


def test_build_dataset_and_dataloader_after_import(lmdb_path):
    from basicsr.utils.registry import DATASET_REGISTRY
    assert DATASET_REGISTRY.get('CrosstalkDataset') is CrosstalkDataset
    opt = train_options(lmdb_path, batch_size_per_gpu=2, num_worker_per_gpu=0, dataset_enlarge_ratio=1,
                        prefetch_mode=None, use_hflip=True, use_rot=True, meta_info_file=None)
    loader = build_dataloader(build_dataset(opt), opt, num_gpu=1, dist=False, sampler=None, seed=0)
    batch = next(iter(loader))
    assert degrade_batch(batch).shape == batch['gt'].shape == (2, 3, 16, 16)
    assert batch['kernel'].shape == (2, 3, 11, 11) and len(batch['gt_path']) == 2


def test_sample_set_loads():
    root = os.path.join(os.path.dirname(__file__), '..', 'datasets', 'sample')
    train = CrosstalkDataset({'dataroot_gt': os.path.join(root, 'train.lmdb'), 'phase': 'train', 'gt_size': 128})
    val = CrosstalkDataset({'dataroot_gt': os.path.join(root, 'val.lmdb'), 'phase': 'val'})
    assert len(train) >= 30 and len(val) == 2
    assert train[0]['gt'].shape == (3, 128, 128) and val[0]['gt'].shape == (3, 256, 256)


def test_one_lmdb_under_two_spellings_in_one_process():
    """py-lmdb refuses a second open of one environment: datasets share it whatever the path's spelling."""
    sample = os.path.join(os.path.dirname(__file__), '..', 'datasets', 'sample', 'val.lmdb')
    spellings = [sample, os.path.realpath(sample), os.path.realpath(sample) + os.sep]
    datasets = [CrosstalkDataset({'dataroot_gt': path, 'phase': 'val'}) for path in spellings]
    first = datasets[0][1]['gt']
    for dataset in datasets[1:]:
        assert torch.equal(dataset[1]['gt'], first)


# ---------------------------------------------------------------- errors name what is wrong


def write_lmdb(path, entries):
    env = lmdb.open(path, map_size=1 << 24)
    with env.begin(write=True) as txn:
        for key, value in entries.items():
            txn.put(key.encode('ascii'), value)
    env.close()
    with open(os.path.join(path, 'meta_info.txt'), 'w') as f:
        f.writelines(f'{key}.png (8,8,3) 1\n' for key in entries)


def test_missing_lmdb_key_names_key_and_path(make, lmdb_path, tmp_path):
    meta = tmp_path / 'meta.txt'
    meta.write_text('rgb8.png (48,64,3) 1\nnot_there.png (48,64,3) 1\n')
    dataset = make(meta_info_file=str(meta))
    with pytest.raises(ValueError, match=f"key 'not_there' is not in the LMDB {lmdb_path}"):
        dataset[1]


def test_undecodable_image_names_key_and_path(tmp_path):
    path = str(tmp_path / 'bad.lmdb')
    write_lmdb(path, {'broken': b'not a png'})
    dataset = CrosstalkDataset({'dataroot_gt': path, 'phase': 'val'})
    with pytest.raises(ValueError, match=f"cannot decode image 'broken' in the LMDB {path}"):
        dataset[0]


@pytest.mark.parametrize('options, message', [
    ({'gt_sise': 32}, "unknown option 'gt_sise' (did you mean 'gt_size'?)"),
    ({'dataroot_lq': 'x'}, 'option dataroot_lq: this dataset synthesises lq from dataroot_gt'),
    ({'phase': 'train'}, 'option gt_size must be a positive integer (required for training), got None'),
    ({'color': 'bgr'}, "option color must be one of rgb, y, gray, got 'bgr'"),
    ({'use_rot': 'yes'}, "option use_rot must be true or false, got 'yes'"),
    ({'kernel_size': 8}, 'option kernel_size must be null or an odd integer <= 127, got 8'),
    ({'kernel_size': 3, 'kernel': {'type': 'gaussian', 'sigma': 2}}, 'option kernel: kernel_size 3 is smaller than'),
    ({'scale': 4}, 'scale must be 1 (crosstalk keeps the image size), got 4'),
    ({'noise': {'type': 'gaussian', 'sigma': [0.1, 0.2, 0.3, 0.4]}}, 'option noise: noise.sigma must be'),
    ({'noise': {'type': 'gaussian', 'sigma': [0.1, 0.2, 0.3]}, 'color': 'gray'}, 'a list of 1 (one per channel)'),
    ({'kernel': {'type': 'gausian'}}, "option kernel: kernel {type: gausian}: unknown type 'gausian'"),
    ({'kernel': {'type': 'per_channel', 'kernels': [{'type': 'gaussian'}] * 2}},
     'option kernel: a kernel of shape (2, 7, 7) does not fit 3-channel images (color: rgb)'),
    ({'kernel': {'type': 'per_channel', 'kernels': [{'type': 'gaussian'}] * 3}, 'color': 'y'},
     'option kernel: a kernel of shape (3, 7, 7) does not fit 1-channel images (color: y)'),
    ({'io_backend': {'type': 'memcached'}}, "io_backend.type must be lmdb or disk, got 'memcached'"),
    ({'dataroot_gt': '/nowhere.lmdb'}, 'LMDB not found: /nowhere.lmdb'),
    ({'dataroot_gt': '/nowhere', 'io_backend': {'type': 'disk'}}, 'image folder not found: /nowhere'),
    ({'meta_info_file': '/nowhere.txt'}, 'meta-info file not found: /nowhere.txt'),
    ({'phase': 'training'}, "phase must be train, val or test, got 'training'"),
])
def test_bad_options_fail_fast_naming_the_option(make, options, message):
    with pytest.raises(ValueError) as error:
        make(**options)
    assert message in str(error.value)
    assert str(error.value).startswith('CrosstalkDataset: ')


def test_missing_dataroot_is_named():
    with pytest.raises(ValueError, match='option dataroot_gt is required'):
        CrosstalkDataset({'phase': 'val'})


@pytest.mark.slow
def test_basicsr_train_pipeline_on_the_sample_set(tmp_path):
    """``basicsr train`` (NewBPModel, any network) with CrosstalkDataset on datasets/sample: a worker, validation."""
    import yaml

    from tests.conftest import run_basicsr
    sample = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', 'datasets', 'sample'))
    degradation = {'type': 'CrosstalkDataset', 'kernel': [ASYMMETRIC_SPEC, {'type': 'gaussian', 'sigma': 1.0}],
                   'noise': NOISE}
    opt = {
        'name': 'data_smoke', 'model_type': 'NewBPModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {
            'train': dict(degradation, name='sample', dataroot_gt=f'{sample}/train.lmdb', io_backend={'type': 'lmdb'},
                          gt_size=48, use_hflip=True, use_rot=True, num_worker_per_gpu=1, batch_size_per_gpu=2,
                          dataset_enlarge_ratio=1),
            'val': dict(degradation, name='sample_val', dataroot_gt=f'{sample}/val.lmdb', val_crop_size=64),
        },
        'network_g': {'type': 'SRVGGNetCompact', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_conv': 2,
                      'upscale': 1, 'act_type': 'prelu'},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'scheduler': {'type': 'MultiStepLR', 'milestones': [100],
                                                                         'gamma': 0.5},
                  'total_iter': 2, 'warmup_iter': -1, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
        'val': {'val_freq': 2, 'save_img': True,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False},
    }
    (tmp_path / 'data.yml').write_text(yaml.safe_dump(opt))
    result = run_basicsr(['train', '-opt', 'data.yml'], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = ''.join(p.read_text() for p in (tmp_path / 'experiments' / 'data_smoke').glob('train_*.log'))
    assert 'Dataset [CrosstalkDataset] - sample is built.' in log and '# psnr:' in log
    assert (tmp_path / 'experiments' / 'data_smoke' / 'visualization' / 'chelsea' / 'chelsea_2.png').is_file()


def test_the_colour_test_split_overlaps_no_training_or_validation_region():
    import importlib.util
    root = os.path.join(os.path.dirname(__file__), '..', 'datasets', 'sample')
    spec = importlib.util.spec_from_file_location('build_sample', os.path.join(root, 'build.py'))
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)

    def rectangle(filename, region):
        if region is None or region == 'centre':  # whole image, or its centre crop: the image's size decides
            height, width = cv2.imread(os.path.join(build.SKIMAGE_DATA, filename), cv2.IMREAD_UNCHANGED).shape[:2]
            if region is None:
                return 0, 0, height, width
            return (height - build.VAL_SIZE) // 2, (width - build.VAL_SIZE) // 2, build.VAL_SIZE, build.VAL_SIZE
        return region

    seen = [(filename, rectangle(filename, region)) for split in ('train', 'val')
            for _, filename, region in build.SOURCES[split]]
    for name, filename, region in build.SOURCES['test_color']:
        top, left, height, width = region
        for other_file, (o_top, o_left, o_height, o_width) in seen:
            overlap = (filename == other_file and top < o_top + o_height and o_top < top + height
                       and left < o_left + o_width and o_left < left + width)
            assert not overlap, f'{name} overlaps a training or validation region of {filename}'
    dataset = CrosstalkDataset({'dataroot_gt': os.path.join(root, 'test_color.lmdb'), 'phase': 'test'})
    assert len(dataset) == 12
    for index in range(len(dataset)):
        gt = dataset[index]['gt']
        assert gt.shape == (3, 256, 256) and (gt[0] - gt[1]).abs().mean() > 0.01  # colour, not grey
