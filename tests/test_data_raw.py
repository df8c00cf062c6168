"""CrosstalkDataset ``domain: raw`` (issue 15): packed clean raw targets, raw degradation, options, training."""
import re

import cv2
import numpy as np
import pytest
import torch
from scipy.signal import convolve2d
from torch.utils.data import default_collate

from newbp_plugin.data.crosstalk_dataset import CrosstalkDataset, degrade_batch
from newbp_plugin.data.lmdb_tools import make_lmdb
from newbp_plugin.kernels import build_kernel
from newbp_plugin.kernels.bayer import CFA_PATTERNS, packed_to_phase_kernels
from newbp_plugin.sensor.degradation import degrade, noise_variance
from newbp_plugin.sensor.mosaic import unpack
from newbp_plugin.sensor.unprocess import Cameras
from tests.conftest import run_basicsr
from tests.test_recipes import ROOT, SAMPLE, load

ASYMMETRIC_PSF = {'type': 'crosstalk', 'left': 0.12, 'right': 0.0, 'up': 0.06, 'down': 0.0, 'diagonal': 0.01}
BLACK, WHITE, BITS = 256, 4095, 12  # the defaults of raw_bits 12
PHASE_OFFSETS = ((0, 0), (0, 1), (1, 0), (1, 1))  # (row, column) of the phases in the 2x2 cell, raster order


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """{name: stored BGR pixels} of an LMDB: smooth colour, odd-sized, pure red, flat grey."""
    folder = tmp_path_factory.mktemp('raw_images')
    rng = np.random.default_rng(0)
    coarse = rng.uniform(0, 255, size=(12, 16, 3)).astype(np.float32)
    red = np.zeros((40, 40, 3), np.uint8)
    red[..., 2] = 255  # BGR
    stored = {
        'smooth': np.clip(cv2.resize(coarse, (64, 48), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8),
        'odd': rng.integers(0, 256, size=(21, 27, 3), dtype=np.uint8),
        'red': red,
        'grey': np.full((128, 128, 3), 100, np.uint8),
    }
    for name, img in stored.items():
        cv2.imwrite(str(folder / f'{name}.png'), img)
    path = str(tmp_path_factory.mktemp('raw_lmdb') / 'gt.lmdb')
    make_lmdb(str(folder), path, progress=False)
    return path, stored


@pytest.fixture
def make(images):
    def make(**options):
        opt = {'name': 'raw', 'type': 'CrosstalkDataset', 'dataroot_gt': images[0], 'phase': 'val', 'domain': 'raw',
               'kernel': {'type': 'bayer_crosstalk'}}
        opt.update(options)
        return CrosstalkDataset(opt)

    return make


def item_of(dataset, key):
    return dataset[dataset.paths.index(key)]


def camera_of(item):
    return Cameras.from_draws(default_collate([item])['sensor'])


def srgb_to_linear(srgb):
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055)**2.4)


def packed_reference(rgb8, camera, pattern):
    """Clean packed raw of an (H, W, 3) RGB uint8 image, in float64 numpy: inverse sRGB, CCM, WB, mosaic."""
    linear = srgb_to_linear(rgb8.astype(np.float64) / 255)
    camera_rgb = np.einsum('ij,hwj->ihw', camera.rgb_to_camera[0], linear)
    camera_rgb /= np.array([camera.red_gain[0], 1, camera.blue_gain[0]])[:, None, None]
    camera_rgb = np.clip(camera_rgb, 0, 1)
    return np.stack([camera_rgb['RGB'.index(name[0]), row::2, column::2]
                     for name, (row, column) in zip(CFA_PATTERNS[pattern], PHASE_OFFSETS)])


# ------------------------------------------------------------------------------------------ the clean target


@pytest.mark.parametrize('key', ['smooth', 'odd'])
def test_gt_is_the_packed_unprocessed_clean_image(make, images, key):
    """gt = the stored image unprocessed with the item's camera, mosaicked and packed (odd sides cropped to even)."""
    item = item_of(make(cfa='GRBG'), key)
    rgb = images[1][key][..., ::-1]
    height, width = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    expected = packed_reference(rgb[:height, :width], camera_of(item), 'GRBG')
    assert item['gt'].shape == (4, height // 2, width // 2) and item['gt'].dtype == torch.float32
    np.testing.assert_allclose(item['gt'].numpy(), expected, atol=2e-6)
    sensor = item['sensor']
    assert sensor['cfa'] == 'GRBG' and not sensor['linear_light']
    assert (int(sensor['black_level']), int(sensor['white_level']), int(sensor['raw_bits'])) == (BLACK, WHITE, BITS)


@pytest.mark.parametrize('pattern', list(CFA_PATTERNS))
def test_cfa_phase_survives_flips_and_rotations(make, pattern):
    """A red scene: every training crop (random flips, transposes) has each plane at its phase's colour."""
    dataset = make(phase='train', gt_size=16, cfa=pattern)
    names = CFA_PATTERNS[pattern]
    torch.manual_seed(0)
    for _ in range(12):
        item = item_of(dataset, 'red')
        camera = camera_of(item)
        gains = np.array([camera.red_gain[0], 1, camera.blue_gain[0]])
        colours = np.clip(camera.rgb_to_camera[0][:, 0] / gains, 0, 1)  # camera R, G, B of pure red
        expected = np.array([colours['RGB'.index(name[0])] for name in names])
        assert colours[0] > 2 * max(colours[1], colours[2])  # red's plane stands out: a phase shift would show
        np.testing.assert_allclose(item['gt'].numpy(), np.broadcast_to(expected[:, None, None], (4, 8, 8)),
                                   atol=1e-6)
        assert names[int(item['gt'].mean((1, 2)).argmax())] == 'R'


# ----------------------------------------------------------------------------------------- the degradation


def reference_x(item, psf, sigma, seed):
    """X in float64 numpy: the PSF applied to every pixel of the mosaic (scipy, independent of packing), the
    Gaussian field of add_noise's seed, 12-bit codes with black level, read back."""
    mosaic = unpack(item['scene'][None].double())[0, 0].numpy()
    ring = (mosaic.shape[0] - 2 * item['gt'].shape[1]) // 2  # mosaic pixels of context
    blurred = convolve2d(mosaic, psf, mode='same')[ring:-ring, ring:-ring]
    packed = blurred.reshape(blurred.shape[0] // 2, 2, blurred.shape[1] // 2, 2).transpose(1, 3, 0, 2)
    packed = packed.reshape(4, *packed.shape[2:])
    noise = torch.randn(packed.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).numpy()
    codes = np.clip(np.round(BLACK + (packed + sigma * noise) * (WHITE - BLACK)), 0, WHITE)
    return (codes - BLACK) / (WHITE - BLACK)


def test_degraded_x_is_the_raw_codes_of_the_mosaic_blurred_plus_noise(make):
    """A (k, k) PSF in raw acts on every pixel of the mosaic; Gaussian noise; 12-bit codes with the black level."""
    sigma = 0.02
    item = item_of(make(cfa='BGGR', kernel=ASYMMETRIC_PSF, noise={'type': 'gaussian', 'sigma': sigma}), 'smooth')
    assert item['kernel'].shape == (4, 4, 3, 3)  # the 3x3 PSF on the mosaic, packed
    batch = default_collate([item])
    context = (item['scene'].shape[-1] - item['gt'].shape[-1]) // 2
    x = degrade(batch['scene'].double(), batch['kernel'].double(), batch['sensor'], context)[0].numpy()
    expected = reference_x(item, build_kernel(ASYMMETRIC_PSF), sigma, int(item['sensor']['seed']))
    assert np.abs(x - expected).max() <= 1 / (WHITE - BLACK) + 1e-12  # a rounding tie at most one code apart
    assert np.mean(x == expected) > 0.999
    assert (x < 0).any()  # read noise below the black level is kept (codes down to 0)


def test_phase_kernels_and_bayer_crosstalk_give_the_same_packed_kernel(make, tmp_path):
    """A (4, k, k) kernel in raw is the phase kernels on the mosaic; bayer_crosstalk takes the dataset's cfa."""
    bayer = item_of(make(cfa='GBRG'), 'smooth')['kernel']
    np.testing.assert_allclose(bayer.numpy(), build_kernel({'type': 'bayer_crosstalk', 'pattern': 'GBRG'}), atol=1e-7)
    assert not np.allclose(bayer.numpy(), build_kernel({'type': 'bayer_crosstalk'}))  # RGGB's differs
    np.save(tmp_path / 'phases.npy', packed_to_phase_kernels(bayer.double().numpy(), size=3))
    from_phases = item_of(make(cfa='GBRG', kernel={'type': 'file', 'path': str(tmp_path / 'phases.npy')}), 'smooth')
    np.testing.assert_allclose(from_phases['kernel'].numpy(), bayer.numpy(), atol=1e-7)


def test_codes_are_whole_numbers_and_clip_at_the_white_level(make):
    """X * (white - black) + black are integer codes in [0, white]; a saturating gain clips at white exactly."""
    dataset = make(noise={'type': 'poisson_gaussian', 'gain': 0.01, 'read_sigma': 0.01}, raw_bits=12)
    x = degrade_batch(default_collate([item_of(dataset, 'smooth')]))
    codes = x.double() * (WHITE - BLACK) + BLACK
    assert (codes - codes.round()).abs().max() < 1e-3 and codes.min() >= 0 and codes.max() <= WHITE
    assert len(codes.round().unique()) > 100
    bright = make(kernel={'type': 'gaussian', 'sigma': 0.5}, noise={'type': 'gaussian', 'sigma': 0.5})
    x = degrade_batch(default_collate([item_of(bright, 'smooth')]))
    assert x.max() == 1 and x.min() == -BLACK / (WHITE - BLACK)  # white level and code 0


def test_noise_variance_is_the_oracle_sigma2_in_raw(make):
    """Flat grey scene: the empirical variance of X per phase is noise_variance's, gain·b + read² + step²/12."""
    gain, read = 0.001, 0.004
    dataset = make(noise={'type': 'poisson_gaussian', 'gain': gain, 'read_sigma': read}, raw_bits=10)
    item = item_of(dataset, 'grey')
    batch = default_collate([item])
    x = degrade_batch(batch).double()
    predicted = noise_variance(batch['sensor'], x)[0, :, 0, 0]
    black, white = 64, 1023
    blurred = item['kernel'].double().sum((-2, -1)) @ item['gt'].double().mean((1, 2))  # flat planes: K's weights
    formula = gain * blurred + read**2 + (1 / (white - black))**2 / 12
    np.testing.assert_allclose(predicted, formula, rtol=0.02)
    step = 1 / (white - black)  # one code, in the units of the normalised raw (a 10-bit file's: 1 / 1023)
    np.testing.assert_allclose(predicted, gain * x[0].mean((1, 2)) + read**2 + step**2 / 12, rtol=1e-6)  # float32 gain
    np.testing.assert_allclose(x[0].var((1, 2)), formula, rtol=0.1)  # 4096 samples a plane


# --------------------------------------------------------------------------------------------------- options


@pytest.mark.parametrize('options, option', [
    ({'phase': 'train', 'gt_size': 33}, 'gt_size'),
    ({'val_crop_size': 15}, 'val_crop_size'),
    ({'raw_bits': 9}, 'raw_bits'),
    ({'raw_bits': 15}, 'raw_bits'),
    ({'cfa': 'RGBG'}, 'cfa'),
    ({'kernel': {'type': 'per_channel', 'kernels': [{'type': 'gaussian', 'sigma': 0.8}] * 3}}, 'kernel'),
    ({'kernel': {'type': 'cross_channel', 'mix': np.eye(3).tolist()}}, 'kernel'),
    ({'kernel': {'type': 'bayer_crosstalk', 'pattern': 'BGGR'}}, 'kernel'),
    ({'white_level': 4096}, 'white_level'),
    ({'black_level': 4095}, 'black_level'),
    ({'color': 'y'}, 'color'),
    ({'linear_light': True}, 'linear_light'),
    ({'noise': {'type': 'gaussian', 'sigma': 0.01, 'quantize': 8}}, 'noise'),
    ({'domain': 'rgb', 'cfa': 'RGGB'}, 'cfa'),
    ({'domain': 'bayer'}, 'domain'),
])
def test_bad_raw_options_are_one_line_errors_naming_the_option(make, options, option):
    with pytest.raises(ValueError) as error:
        make(**options)
    message = str(error.value)
    assert re.search(rf'option {option}\b', message) and '\n' not in message, message


# ------------------------------------------------------------------------------------------------- training


def test_basicsr_trains_the_raw_recipe_and_validates_on_packed_raw(tmp_path):
    """3 iterations of options/train/NAFNet-raw-sample.yml: the input's PSNR is that of all four planes, and the
    saved pictures are 3-channel sRGB."""
    recipe = ROOT / 'options' / 'train' / 'NAFNet-raw-sample.yml'
    run = run_basicsr([
        'train', '-opt', str(recipe), '--force_yml', 'train:total_iter=3', 'val:val_freq=3', 'logger:print_freq=1',
        'logger:save_checkpoint_freq=3', 'datasets:train:gt_size=32', 'datasets:train:batch_size_per_gpu=2',
        'datasets:train:num_worker_per_gpu=0', f'datasets:train:dataroot_gt={SAMPLE["train"]}',
        f'datasets:val:dataroot_gt={SAMPLE["val"]}'
    ], cwd=tmp_path, env={'OMP_NUM_THREADS': '1'})
    assert run.returncode == 0, run.stderr[-3000:]
    exp = tmp_path / 'experiments' / 'NAFNet-raw-sample'
    log = ''.join(p.read_text() for p in exp.glob('train_*.log'))
    assert re.search(r'iter:\s+3, lr:.*l_pix: ', log) and re.search(r'Validation sample_val_raw\s+# psnr: \d', log)
    logged = float(re.search(r'Degraded input sample_val_raw \(no restoration\)\s+# psnr: (\d+\.\d+)', log)[1])

    val = dict(load(recipe)['datasets']['val'], phase='val', dataroot_gt=str(SAMPLE['val']))
    psnrs = []
    for item in CrosstalkDataset(val):  # every plane, 8-bit as BasicSR's tensor2img rounds
        lq, gt = (torch.round(image.clamp(0, 1).double() * 255) for image in (lq_of(item), item['gt']))
        psnrs.append(10 * np.log10(255**2 / (lq - gt).square().mean().item()))
    assert logged == pytest.approx(np.mean(psnrs), abs=2e-4)

    pictures = sorted((exp / 'visualization').rglob('*.png'))
    assert {p.name for p in pictures} >= {'chelsea_3.png', 'chelsea_lq.png', 'chelsea_gt.png'}
    for path in pictures:
        picture = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert picture.shape == (256, 256, 3), path  # sRGB at the mosaic's size, not 4 packed planes


def lq_of(item):
    return degrade_batch(default_collate([item]))[0]
