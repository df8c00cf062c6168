"""``basicsr restore``: bit depth and format kept, architecture lookup, a corrupt file, tiling, S."""
import math
import os
import os.path as osp
import re

import cv2
import skimage.data
import numpy as np
import pytest
import torch
import yaml
from basicsr.archs import build_network

from newbp_plugin.inference.restore import restore
from newbp_plugin.pictures import s_to_image
from tests.conftest import run_basicsr

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
ZOO_WEIGHTS = osp.join(ROOT, 'tests', 'fixtures', 'nafnet', 'tiny_width8.pth')
ZOO_ARCH = {'type': 'NAFNet', 'width': 8, 'enc_blk_nums': [1, 1], 'middle_blk_num': 1, 'dec_blk_nums': [1, 1]}
INLINE_ARCH = yaml.safe_dump(ZOO_ARCH, default_flow_style=True).strip()
NEWBP_ARCH = {'type': 'NewBPNAFNet', 'width': 8, 'enc_blk_nums': [1], 'dec_blk_nums': [1],
              'kernel': {'type': 'crosstalk'}}


@pytest.fixture(scope='module')
def mild_weights(tmp_path_factory):
    """The zoo fixture with its residual scaled down (Ŷ = X + R / 100): photo-like outputs (~26 dB on the photo)."""
    params = torch.load(ZOO_WEIGHTS, weights_only=True)['params']
    params = {k: v * 0.01 if k.startswith('ending.') else v for k, v in params.items()}
    path = tmp_path_factory.mktemp('weights') / 'mild.pth'
    torch.save({'params': params}, path)
    return str(path)


def photo(size=256):
    """A photograph (scikit-image's chelsea, CC0: the sample validation image), BGR uint8, centre crop."""
    img = np.ascontiguousarray(skimage.data.chelsea()[..., ::-1])
    top, left = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
    img = img[top:top + size, left:left + size]
    return img


@pytest.mark.parametrize('name, convert', [
    ('rgb8.png', lambda img: img),
    ('rgb16.png', lambda img: img.astype(np.uint16) * 257 + 100),
    ('grey16.tif', lambda img: cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257),
    ('rgba8.png', lambda img: np.concatenate([img, np.full(img.shape[:2] + (1, ), 77, np.uint8)], axis=2)),
    ('rgb8.jpg', lambda img: img),
])
def test_bit_depth_format_and_channels_are_kept(tmp_path, name, convert):
    source = tmp_path / name
    img = convert(photo(24))
    cv2.imwrite(str(source), img)
    destination = tmp_path / 'out' / name
    failures, total = restore(str(source), str(destination), ZOO_WEIGHTS, arch=INLINE_ARCH, device='cpu')
    assert failures == [] and total == 1
    out = cv2.imread(str(destination), cv2.IMREAD_UNCHANGED)
    stored = cv2.imread(str(source), cv2.IMREAD_UNCHANGED)
    assert out.dtype == stored.dtype and out.shape == stored.shape
    assert not np.array_equal(out, stored)
    if out.dtype == np.uint16:
        assert (out % 257 != 0).any()  # 16-bit values, not 8-bit ones scaled up
    if name.startswith('rgba'):
        assert (out[..., 3] == 77).all()


def test_folder_with_a_corrupt_file_restores_the_others_and_exits_1(tmp_path):
    folder = tmp_path / 'in'
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f'good{i}.png'), photo(16 + 8 * i))
    (folder / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n not really a png')
    (folder / 'notes.txt').write_text('not an image, not listed')
    result = run_basicsr(['restore', '-i', 'in', '-o', 'out', '--weights', ZOO_WEIGHTS, '--arch', INLINE_ARCH,
                          '--device', 'cpu'], cwd=tmp_path)
    assert result.returncode == 1
    assert sorted(os.listdir(tmp_path / 'out')) == ['good0.png', 'good1.png']
    errors = [line for line in result.stderr.splitlines() if 'failed' in line]
    assert errors == [f'basicsr restore: failed: {osp.join("in", "broken.png")}: cannot read it as an image '
                      '(corrupt, or not a PNG, TIFF or JPEG)']
    assert 'restored 2 of 3 images into out' in result.stdout


def psnr(a, b):
    return 10 * math.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64))**2))


def test_tiled_output_within_0_1_db_of_untiled(tmp_path, mild_weights):
    clean = photo()
    degraded = cv2.GaussianBlur(clean, (5, 5), 1.0)
    cv2.imwrite(str(tmp_path / 'photo.png'), degraded)
    outputs = {}
    for tile in (None, 96):
        destination = tmp_path / f'{tile}.png'
        failures, _ = restore(str(tmp_path / 'photo.png'), str(destination), mild_weights, arch=INLINE_ARCH,
                              tile=tile, tile_overlap=32, device='cpu')
        assert failures == []
        outputs[tile] = cv2.imread(str(destination))
    assert not np.array_equal(outputs[None], outputs[96])  # tiles did change the global statistics
    assert abs(psnr(outputs[96], clean) - psnr(outputs[None], clean)) < 0.1


def test_architecture_from_the_training_yaml_beside_the_weights(tmp_path):
    models = tmp_path / 'experiments' / 'run' / 'models'
    models.mkdir(parents=True)
    weights = models / 'net_g_latest.pth'
    weights.write_bytes(open(ZOO_WEIGHTS, 'rb').read())
    cv2.imwrite(str(tmp_path / 'a.png'), photo(16))
    with pytest.raises(ValueError, match='cannot tell the architecture of .*no training YAML beside it'):
        restore(str(tmp_path / 'a.png'), str(tmp_path / 'b.png'), str(weights))
    (tmp_path / 'experiments' / 'run' / 'train_run.yml').write_text(yaml.safe_dump({'network_g': ZOO_ARCH}))
    assert restore(str(tmp_path / 'a.png'), str(tmp_path / 'b.png'), str(weights), device='cpu')[0] == []
    assert osp.isfile(tmp_path / 'b.png')


@pytest.mark.parametrize('output, kind', [('direct', 'image'), ('residual', 'residual')])
def test_newbp_network_saves_s_and_takes_a_kernel(tmp_path, output, kind):
    arch_options = dict(NEWBP_ARCH, output=output, skip='none')
    weights = tmp_path / 'newbp.pth'
    torch.save({'params': build_network(arch_options).state_dict()}, weights)
    arch = tmp_path / 'train.yml'
    arch.write_text(yaml.safe_dump({'name': 'x', 'network_g': arch_options}))
    cv2.imwrite(str(tmp_path / 'a.png'), photo(16))
    failures, _ = restore(str(tmp_path / 'a.png'), str(tmp_path / 'out' / 'a.png'), str(weights), arch=str(arch),
                          kernel='{type: crosstalk, left: 0.05}', save_s=True, device='cpu')
    assert failures == []
    s = np.load(tmp_path / 'out' / 'a_S.npy')
    assert s.shape == (3, 16, 16)
    # drawn as its kind: an image and what lies outside [0, 1], or a signed residual
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / 'out' / 'a_S.png')), s_to_image(torch.from_numpy(s), kind))


@pytest.mark.parametrize('kwargs, message', [
    ({'save_s': True}, '--save-s: NAFNet has no S'),
    ({'kernel': 'crosstalk'}, '--kernel: NAFNet takes no kernel'),
    ({'noise': 'estimate'}, '--noise: NAFNet takes no noise level'),
    ({'arch': '{width: 8}'}, 'network options are a mapping with a type'),
    ({'arch': '{type: NAFNet, width: 16}'}, 'do not match NAFNet.*shape mismatch'),
    ({'weights': 'missing.pth'}, 'weights not found: missing.pth'),
])
def test_bad_arguments_fail_before_any_file(tmp_path, kwargs, message):
    cv2.imwrite(str(tmp_path / 'a.png'), photo(16))
    arguments = dict(arch=INLINE_ARCH, device='cpu', weights=ZOO_WEIGHTS)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        restore(str(tmp_path / 'a.png'), str(tmp_path / 'b.png'), **arguments)
    assert not osp.exists(tmp_path / 'b.png')


def test_single_file_output_keeps_the_format(tmp_path):
    cv2.imwrite(str(tmp_path / 'a.png'), photo(16))
    with pytest.raises(ValueError, match='keeps the format of the input'):
        restore(str(tmp_path / 'a.png'), str(tmp_path / 'b.jpg'), ZOO_WEIGHTS, arch=INLINE_ARCH)


KERNEL_AWARE_ARCH = {'type': 'KernelAwareNAFNet', 'width': 8, 'enc_blk_nums': [1], 'dec_blk_nums': [1]}
BLUR = '{type: gaussian, sigma: 1.0}'


@pytest.fixture(scope='module')
def kernel_aware_weights(tmp_path_factory):
    """A KernelAwareNAFNet with random weights, its noise map live (non-zero embedding), and its training YAML."""
    torch.manual_seed(0)
    net = build_network(dict(KERNEL_AWARE_ARCH))
    torch.nn.init.normal_(net.noise_embeddings[0].weight, std=5.0)
    folder = tmp_path_factory.mktemp('kernel_aware')
    torch.save({'params': net.state_dict()}, folder / 'net.pth')
    (folder / 'train.yml').write_text(yaml.safe_dump({'name': 'x', 'network_g': KERNEL_AWARE_ARCH}))
    return folder


def restored_with(folder, tmp_path, noise):
    cv2.imwrite(str(tmp_path / 'a.png'), photo(32))
    out = tmp_path / f'out_{abs(hash(noise))}.png'
    failures, _ = restore(str(tmp_path / 'a.png'), str(out), str(folder / 'net.pth'), arch=str(folder / 'train.yml'),
                          kernel=BLUR, noise=noise, device='cpu')
    assert failures == []
    return cv2.imread(str(out))


def expected_output(folder, noise):
    """The network called directly on the photo, with K and the noise parameters given: BGR uint8."""
    from newbp_plugin.kernels import build_kernel
    net = build_network(dict(KERNEL_AWARE_ARCH))
    net.load_state_dict(torch.load(folder / 'net.pth', weights_only=True)['params'])
    x = torch.from_numpy(np.ascontiguousarray(photo(32)[..., ::-1].transpose(2, 0, 1))).float().div(255)[None]
    kernel = torch.from_numpy(build_kernel({'type': 'gaussian', 'sigma': 1.0}))[None, None].expand(1, 3, -1, -1)
    with torch.no_grad():
        y = net.eval()(x, kernel=kernel, noise=noise(x) if callable(noise) else noise)
    return np.round(y[0].clamp(0, 1).numpy().transpose(1, 2, 0)[..., ::-1] * 255).astype(np.uint8)


@pytest.mark.parametrize('noise, parameters', [
    ('{type: poisson_gaussian, gain: 0.004, read_sigma: 0.002}',
     {'gain': torch.full((1, 3), 0.004), 'read_sigma': torch.full((1, 3), 0.002)}),
    ('{type: gaussian, sigma: [0.01, 0.02, 0.03]}',
     {'gain': torch.zeros(1, 3), 'read_sigma': torch.tensor([[0.01, 0.02, 0.03]])}),
    (None, 'estimate'),  # the default: each image's level estimated from it
])
def test_kernel_aware_network_is_given_the_noise_level(tmp_path, kernel_aware_weights, noise, parameters):
    from newbp_plugin.sensor.noise_estimate import estimate_noise
    expected = expected_output(kernel_aware_weights, estimate_noise if parameters == 'estimate' else parameters)
    out = restored_with(kernel_aware_weights, tmp_path, noise)
    assert np.abs(out.astype(int) - expected).max() <= 1
    other = restored_with(kernel_aware_weights, tmp_path, '{type: gaussian, sigma: 0.2}')
    assert np.abs(other.astype(int) - expected).max() > 10  # the level matters


@pytest.mark.parametrize('noise, message', [
    ('{type: gaussian, sigma: {uniform: [0.01, 0.02]}}', 'a range; restoring needs the one level'),
    ('{type: none}', 'is no noise: KernelAwareNAFNet weighs its data step'),
    ('{type: poisson, gain: 0.01}', "noise.type must be one of .*give 'estimate' or a spec"),
    ('{type: gaussian, sigma: 0.01, gian: 2}', 'noise.gian is not an option of type gaussian'),
    ('estimat', 'noise must be a mapping'),
])
def test_kernel_aware_bad_noise_fails_before_any_file(tmp_path, kernel_aware_weights, noise, message):
    cv2.imwrite(str(tmp_path / 'a.png'), photo(16))
    with pytest.raises(ValueError, match=message):
        restore(str(tmp_path / 'a.png'), str(tmp_path / 'b.png'), str(kernel_aware_weights / 'net.pth'),
                arch=str(kernel_aware_weights / 'train.yml'), kernel=BLUR, noise=noise, device='cpu')
    assert not osp.exists(tmp_path / 'b.png')


RAW_ARCH = {'type': 'NAFNet', 'img_channel': 4, 'width': 8, 'enc_blk_nums': [1], 'middle_blk_num': 1,
            'dec_blk_nums': [1]}
RAW_LEVELS = {'cfa': 'GRBG', 'raw_bits': 12, 'black_level': 256}  # white_level: the dataset's default, 4095


def raw_training_yaml(folder, dataset):
    """A training YAML of ``RAW_ARCH`` with one dataset, ``{'domain': 'raw', **dataset}``."""
    path = folder / 'train.yml'
    path.write_text(yaml.safe_dump({'name': 'raw', 'datasets': {'train': dict(domain='raw', **dataset)},
                                    'network_g': RAW_ARCH}))
    return str(path)


@pytest.fixture(scope='module')
def raw_weights(tmp_path_factory):
    """Tiny random NAFNets of 4 channels: 'mild' (ending weights / 100: Ŷ = X + R / 100) and 'identity' (ending 0:
    Ŷ = X); and the training YAML, on GRBG 12-bit mosaics with black level 256."""
    torch.manual_seed(0)
    params = build_network(dict(RAW_ARCH)).state_dict()
    folder = tmp_path_factory.mktemp('raw')
    for name, scale in (('mild', 0.01), ('identity', 0.0)):
        torch.save({'params': {k: v * scale if k.startswith('ending.') else v for k, v in params.items()}},
                   folder / f'{name}.pth')
    raw_training_yaml(folder, RAW_LEVELS)
    return folder


def raw_mosaic(black=256, white=4095, bits=12):
    """(32, 48) uint16 codes of a GRBG mosaic: the photo unprocessed, its top 8 rows no light (the black level)."""
    from newbp_plugin.sensor.mosaic import mosaic
    from newbp_plugin.sensor.unprocess import draw_cameras, to_raw_codes, unprocess
    rgb = torch.from_numpy(np.ascontiguousarray(photo(48)[:32, :, ::-1].transpose(2, 0, 1))).double().div(255)
    raw = unprocess(rgb[None], draw_cameras(np.random.default_rng(0), 1), 'GRBG')
    raw[..., :8, :] = 0
    return to_raw_codes(raw, black, white, bits)[0, 0].numpy().astype(np.uint16)


def write_mosaic(path, codes):
    if str(path).endswith('.npy'):
        np.save(path, codes)
    else:
        cv2.imwrite(str(path), codes)


def read_mosaic(path):
    return np.load(path) if str(path).endswith('.npy') else cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize('name', ['mosaic.png', 'mosaic.tif', 'mosaic.npy'])
def test_raw_mosaic_is_restored_in_its_codes_format_and_levels(tmp_path, raw_weights, name):
    from newbp_plugin.sensor.mosaic import pack, unpack
    codes = raw_mosaic()
    write_mosaic(tmp_path / name, codes)
    failures, _ = restore(str(tmp_path / name), str(tmp_path / 'out' / name), str(raw_weights / 'mild.pth'),
                          arch=str(raw_weights / 'train.yml'), device='cpu')  # GRBG, 12 bits, black 256 from the YAML
    assert failures == []
    out = read_mosaic(tmp_path / 'out' / name)
    assert out.dtype == np.uint16 and out.shape == codes.shape and not np.array_equal(out, codes)
    net = build_network(dict(RAW_ARCH))
    net.load_state_dict(torch.load(raw_weights / 'mild.pth', weights_only=True)['params'])
    with torch.no_grad():  # the network sees (code - black) / (white - black), packed
        y = unpack(net.eval()(pack(torch.from_numpy((codes.astype(np.float32) - 256) / 3839)[None, None])))
    expected = np.clip(np.round(256 + y[0, 0].numpy() * 3839), 0, 4095)
    assert np.abs(out - expected).max() <= 1
    assert np.abs(out[:8].astype(int) - 256).max() <= 8  # no light stays at the black level


def test_identity_network_returns_the_mosaic_exactly(tmp_path, raw_weights):
    codes = raw_mosaic(black=512, white=16000, bits=14)
    codes[10, 10], codes[11, 11] = 0, 16000  # below black, and white
    write_mosaic(tmp_path / 'a.png', codes)
    failures, _ = restore(str(tmp_path / 'a.png'), str(tmp_path / 'b.png'), str(raw_weights / 'identity.pth'),
                          arch=yaml.safe_dump(RAW_ARCH), cfa='GRBG', raw_bits=14, black_level=512, white_level=16000,
                          device='cpu')
    assert failures == []
    np.testing.assert_array_equal(read_mosaic(tmp_path / 'b.png'), codes)


@pytest.mark.parametrize('image, message', [
    (lambda codes: codes[:, :47], '47x32 px; a mosaic holds whole 2x2 CFA cells (even sides)'),
    (lambda codes: np.stack([codes] * 3, axis=2), '3 channels; a raw network (4 channels, packed) restores single-'),
    (lambda codes: (codes // 16).astype(np.uint8), 'uint8 pixels; a raw mosaic holds 16-bit integer codes'),
    (lambda codes: codes * 16, 'above the white level 4095: give the file'),
])
def test_raw_mosaic_that_does_not_fit_fails_with_its_reason(tmp_path, raw_weights, image, message):
    write_mosaic(tmp_path / 'a.png', image(raw_mosaic()))
    failures, total = restore(str(tmp_path / 'a.png'), str(tmp_path / 'b.png'), str(raw_weights / 'mild.pth'),
                              arch=str(raw_weights / 'train.yml'), device='cpu')
    assert total == 1 and len(failures) == 1 and message in failures[0][1], failures
    assert not osp.exists(tmp_path / 'b.png')


@pytest.mark.parametrize('dataset, kwargs, message', [
    (RAW_LEVELS, {'cfa': 'RGGB'}, '--cfa RGGB: the network was trained on GRBG mosaics (datasets.train of '),
    ({'kernel': {'type': 'bayer_crosstalk', 'pattern': 'GBRG'}}, {'cfa': 'RGGB'},
     'trained on GBRG mosaics (the kernel pattern of datasets.train'),
    ({}, {'cfa': 'GRBG'}, 'trained on RGGB mosaics'),  # the dataset's default cfa
    (RAW_LEVELS, {'black_level': 5000}, '--black-level 5000 --white-level 4095: need 0 <= black < white'),
    (RAW_LEVELS, {'raw_bits': 17}, '--raw-bits 17: an integer from 1 to 16'),
])
def test_raw_bad_options_fail_before_any_file(tmp_path, raw_weights, dataset, kwargs, message):
    write_mosaic(tmp_path / 'a.png', raw_mosaic())
    with pytest.raises(ValueError, match=re.escape(message)):
        restore(str(tmp_path / 'a.png'), str(tmp_path / 'b.png'), str(raw_weights / 'mild.pth'),
                arch=raw_training_yaml(tmp_path, dataset), device='cpu', **kwargs)
    assert not osp.exists(tmp_path / 'b.png')


def test_raw_newbp_network_has_no_s_to_save(tmp_path):
    arch_options = dict(NEWBP_ARCH, img_channel=4, kernel={'type': 'bayer_crosstalk'}, skip='none')
    weights = tmp_path / 'newbp.pth'
    torch.save({'params': build_network(arch_options).state_dict()}, weights)
    write_mosaic(tmp_path / 'a.png', raw_mosaic())
    with pytest.raises(ValueError, match='--save-s: not for raw'):
        restore(str(tmp_path / 'a.png'), str(tmp_path / 'b.png'), str(weights), arch=yaml.safe_dump(arch_options),
                save_s=True, device='cpu')


def test_raw_cli_one_line_errors(tmp_path, raw_weights):
    write_mosaic(tmp_path / 'a.npy', raw_mosaic())
    write_mosaic(tmp_path / 'odd.png', raw_mosaic()[:, :47])
    common = ['--weights', str(raw_weights / 'mild.pth'), '--device', 'cpu']
    cases = [  # (arguments, exit status, the error line)
        (['-i', 'a.npy', '-o', 'b.npy', '--cfa', 'BGGR', '--arch', str(raw_weights / 'train.yml')], 2,
         'basicsr restore: error: --cfa BGGR: the network was trained on GRBG mosaics'),
        (['-i', 'odd.png', '-o', 'b.png', '--arch', str(raw_weights / 'train.yml')], 1,
         'basicsr restore: failed: odd.png: 47x32 px; a mosaic holds whole 2x2 CFA cells (even sides)'),
        (['-i', 'a.npy', '-o', 'b.npy', '--cfa', 'GRBG', '--arch', INLINE_ARCH, '--weights', ZOO_WEIGHTS], 2,
         'basicsr restore: error: --cfa: for raw mosaics, restored by a network of 4 channels (img_channel: 4); '
         'NAFNet takes 3'),
    ]
    for args, status, line in cases:
        result = run_basicsr(['restore'] + common + args, cwd=tmp_path, env={'OMP_NUM_THREADS': '1'})
        assert result.returncode == status and result.stderr.strip().splitlines()[-1].startswith(line), result.stderr
        assert not osp.exists(tmp_path / args[args.index('-o') + 1])


def raw_dng(path, cfa='GRBG', black=512, white=16000, bits=14):
    """A DNG of ``raw_mosaic`` (14-bit codes, levels other than the training's), camera tags set; its codes."""
    from newbp_plugin.sensor.dng import write_dng
    codes = raw_mosaic(black, white, bits)
    write_dng(path, codes, cfa, black, white, as_shot_neutral=(0.5, 1, 0.8), camera='Test Cam')
    return codes


def test_dng_is_restored_into_a_dng_with_its_cfa_and_levels(tmp_path, raw_weights):
    rawpy = pytest.importorskip('rawpy')
    from newbp_plugin.sensor.dng import read_dng
    codes = raw_dng(tmp_path / 'a.dng')
    failures, _ = restore(str(tmp_path / 'a.dng'), str(tmp_path / 'out' / 'a.dng'), str(raw_weights / 'mild.pth'),
                          arch=str(raw_weights / 'train.yml'), device='cpu')  # trained on black 256, white 4095
    assert failures == []
    np.save(tmp_path / 'a.npy', codes)  # the same codes, their levels given
    failures, _ = restore(str(tmp_path / 'a.npy'), str(tmp_path / 'out' / 'a.npy'), str(raw_weights / 'mild.pth'),
                          arch=str(raw_weights / 'train.yml'), device='cpu', raw_bits=14, black_level=512,
                          white_level=16000)
    assert failures == []
    expected = np.load(tmp_path / 'out' / 'a.npy')
    assert np.abs(expected.astype(int) - codes).max() > 0  # the network did change the mosaic
    with rawpy.imread(str(tmp_path / 'out' / 'a.dng')) as raw:  # LibRaw's reading of the restored DNG
        np.testing.assert_array_equal(raw.raw_image_visible, expected)
        assert ''.join(raw.color_desc.decode()[i] for i in raw.raw_colors_visible[:2, :2].ravel()) == 'GRBG'
        assert list(raw.black_level_per_channel) == [512] * 4 and raw.white_level == 16000
    assert read_dng(tmp_path / 'out' / 'a.dng').camera_tags == read_dng(tmp_path / 'a.dng').camera_tags


@pytest.mark.parametrize('cfa, kwargs, message', [
    ('RGGB', {}, "a RGGB mosaic (its DNG CFA pattern); the network's CFA is GRBG: a mosaic of another CFA would swap"),
    ('BGGR', {'cfa': 'GRBG'}, 'a BGGR mosaic (its DNG CFA pattern); --cfa is GRBG'),
    ('GRBG', {'black_level': 256}, '--black-level 256, but the DNG records 512: a DNG brings its own levels'),
    ('GRBG', {'white_level': 4095}, '--white-level 4095, but the DNG records 16000'),
    ('GRBG', {'raw_bits': 12}, "--raw-bits 12, but the DNG's white level is 16000"),
])
def test_dng_of_another_cfa_or_levels_fails_naming_the_file(tmp_path, raw_weights, cfa, kwargs, message):
    pytest.importorskip('rawpy')
    raw_dng(tmp_path / 'a.dng', cfa)
    failures, total = restore(str(tmp_path / 'a.dng'), str(tmp_path / 'b.dng'), str(raw_weights / 'mild.pth'),
                              arch=str(raw_weights / 'train.yml'), device='cpu', **kwargs)
    assert total == 1 and failures == [(str(tmp_path / 'a.dng'), failures[0][1])] and message in failures[0][1], \
        failures
    assert not osp.exists(tmp_path / 'b.dng')


def test_a_dng_keeps_its_format(tmp_path, raw_weights):
    pytest.importorskip('rawpy')
    raw_dng(tmp_path / 'a.dng')
    with pytest.raises(ValueError, match='the output keeps the format of the input: .*a.dng is DNG, .*b.png is PNG'):
        restore(str(tmp_path / 'a.dng'), str(tmp_path / 'b.png'), str(raw_weights / 'mild.pth'),
                arch=str(raw_weights / 'train.yml'), device='cpu')


def test_a_kernel_file_fitted_on_another_cfa_is_an_error(tmp_path):
    from newbp_plugin.inference.restore import Restorer
    from newbp_plugin.kernels import build_kernel
    from newbp_plugin.kernels.measured import save_kernel
    arch_options = dict(NEWBP_ARCH, img_channel=4, kernel={'type': 'bayer_crosstalk'}, skip='none')
    weights = tmp_path / 'newbp.pth'
    torch.save({'params': build_network(arch_options).state_dict()}, weights)
    kernel = build_kernel({'type': 'bayer_crosstalk', 'pattern': 'GRBG'})
    save_kernel(tmp_path / 'k.npz', kernel, 'GRBG')
    arch = yaml.safe_dump(arch_options)
    restorer = Restorer(str(weights), arch, kernel=str(tmp_path / 'k.npz'), cfa='GRBG', device='cpu')
    np.testing.assert_array_equal(restorer.kernel[0].numpy(), kernel)
    with pytest.raises(ValueError, match=re.escape(f"kernel file {tmp_path / 'k.npz'} was fitted on GRBG mosaics "
                                                   'and is used on RGGB ones')):
        Restorer(str(weights), arch, kernel=str(tmp_path / 'k.npz'), cfa='RGGB', device='cpu')
