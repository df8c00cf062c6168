"""``basicsr calibrate``: the kernel K, gain and offset fitted from reference/capture pairs (synthetic, known K)."""
import json

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from newbp_plugin.kernels import build_kernel
from newbp_plugin.kernels.measured import recorded_pattern
from newbp_plugin.sensor.calibration import fit_kernel, nonnegative_least_squares
from newbp_plugin.sensor.layout import physical_kernel
from newbp_plugin.sensor.noise import add_noise
from newbp_plugin.sensor.optics import SensorOptics
from tests.conftest import run_basicsr

FRONT_DOOR = {'type': 'crosstalk', 'size': 5, 'left': 0.06, 'right': 0.06, 'up': 0.05, 'down': 0.05,
              'diagonal': 0.02, 'second_ring': 0.01}
ASYMMETRIC = {'type': 'crosstalk', 'size': 3, 'left': 0.08, 'right': 0.02, 'up': 0.05, 'down': 0.03}
MIXING = {'type': 'cross_channel', 'mix': [[0.9, 0.07, 0.03], [0.05, 0.9, 0.05], [0.03, 0.07, 0.9]],
          'kernel': {'type': 'gaussian', 'sigma': 0.8, 'size': 5}}
OPTICS = SensorOptics(linear_light=True)


def photo(name, top, left, size=128):
    """(3, size, size) float64 crop of a scikit-image photo, sRGB-encoded in [0, 1]."""
    return getattr(skimage.data, name)()[top:top + size, left:left + size].transpose(2, 0, 1) / 255.0


def per_channel(spec):
    """The (3, k, k) kernel of a spec, the same plane in every channel unless it is per channel."""
    kernel = build_kernel(spec)
    return np.stack([kernel] * 3) if kernel.ndim == 2 else kernel


def capture(reference, kernel, gain=(1, 1, 1), offset=(0, 0, 0), noise_seed=None):
    """The sensor's view of an sRGB ``reference``: ``srgb(a · K * linear(reference) + b [+ N, clip, 8 bits])``."""
    light = OPTICS.blur(OPTICS.to_linear(torch.as_tensor(reference)[None]), physical_kernel(kernel, 3, 'test').double())
    light = light * torch.tensor(gain)[:, None, None] + torch.tensor(offset)[:, None, None]
    if noise_seed is not None:  # the front door's noise: Poisson-Gaussian in linear light, clipped, 8 bits
        light = add_noise(light, torch.full((1, 3), 0.002), torch.full((1, 3), 0.003), torch.tensor([noise_seed]))
        return (torch.round(OPTICS.to_encoded(light.clamp(0, 1)) * 255) / 255)[0].numpy()
    return OPTICS.to_encoded(light)[0].numpy()


@pytest.mark.parametrize('spec, mixing', [(FRONT_DOOR, False), ({'type': 'gaussian', 'sigma': 1.0, 'size': 5}, False),
                                          (ASYMMETRIC, False), (MIXING, True)])
def test_recovers_the_kernel_without_noise(spec, mixing):
    kernel = build_kernel(spec) if mixing else per_channel(spec)
    reference = photo('astronaut', 100, 180)
    fit = fit_kernel([reference], [capture(reference, kernel)], size=kernel.shape[-1], mixing=mixing, register=False)
    assert fit.kernel.shape == kernel.shape
    assert np.abs(fit.kernel - kernel).max() < 1e-3
    assert np.allclose(fit.gain, 1, atol=1e-4) and np.allclose(fit.offset, 0, atol=1e-4)
    assert (fit.residual_rms < 1e-4).all()


def test_a_larger_support_than_the_kernel_is_filled_with_zeros():
    kernel = per_channel({'type': 'crosstalk', 'size': 3})
    reference = photo('chelsea', 100, 150)
    fit = fit_kernel([reference], [capture(reference, kernel)], size=7, register=False)
    assert np.abs(fit.kernel[:, 2:5, 2:5] - kernel).max() < 1e-3
    assert np.abs(fit.kernel).sum() - np.abs(fit.kernel[:, 2:5, 2:5]).sum() < 1e-3


def test_recovers_gain_and_offset():
    kernel, gain, offset = per_channel(FRONT_DOOR), (0.8, 0.9, 1.1), (0.01, 0.02, 0.0)
    reference = photo('astronaut', 100, 180)
    fit = fit_kernel([reference], [capture(reference, kernel, gain, offset)], size=5, register=False)
    assert np.abs(fit.kernel - kernel).max() < 1e-3
    assert np.allclose(fit.gain, gain, atol=1e-4) and np.allclose(fit.offset, offset, atol=1e-4)


def test_clipped_highlights_are_left_out_of_the_fit():
    """An over-exposed capture (gain 1.8: the bright half clips at 1) still gives K: the clipped pixels and their
    neighbours, which do not follow the linear model, are not equations; all-clipped captures are an error."""
    kernel = per_channel(FRONT_DOOR)
    reference = photo('astronaut', 100, 180)
    overexposed = np.minimum(capture(reference, kernel, (1.8, ) * 3), 1.0)  # 1 in the file: clipped
    assert (overexposed >= 1).mean() > 0.1
    fit = fit_kernel([reference], [overexposed], size=5, register=False)
    assert np.abs(fit.kernel - kernel).max() < 1e-3 and np.allclose(fit.gain, 1.8, atol=1e-3)
    with pytest.raises(ValueError, match=r'captured\[0\]: .* pixels lie next to clipped values'):
        fit_kernel([reference], [np.ones_like(reference)], size=5, register=False)


def test_pixel_shift_is_registered():
    """Measured: shift within 0.003 px, K within 1.2e-3 (the registration's own bias, ~0.003 px); 0.51 unregistered."""
    kernel = per_channel(FRONT_DOOR)
    reference, moved = photo('astronaut', 100, 180), photo('astronaut', 101, 179)  # content moved by (-1, +1)
    fit = fit_kernel([reference], [capture(moved, kernel)], size=5)
    assert np.allclose(fit.shifts[0], (-1, 1), atol=0.01)
    assert np.abs(fit.kernel - kernel).max() < 2e-3
    unregistered = fit_kernel([reference], [capture(moved, kernel)], size=5, register=False)
    assert np.abs(unregistered.kernel - kernel).max() > 0.1


def test_half_pixel_shift_is_registered():
    """A half-pixel shift of a band-limited scene (blurred, 2x box-downsampled at offsets 0 and 1).

    Measured: shift within 0.005 px; K within 0.023 (the reference's aliasing limits a sub-pixel shift of it),
    against 0.29 unregistered.
    """
    scene = cv2.GaussianBlur(skimage.data.astronaut() / 255.0, (0, 0), 1.5).transpose(2, 0, 1)

    def downsampled(top, left, size=128):
        return scene[:, top:top + 2 * size, left:left + 2 * size].reshape(3, size, 2, size, 2).mean((2, 4))

    kernel = per_channel(FRONT_DOOR)
    reference, moved = downsampled(150, 200), downsampled(150, 199)  # content moved by +0.5 px in x
    fit = fit_kernel([reference], [capture(moved, kernel)], size=5)
    assert np.allclose(fit.shifts[0], (0, 0.5), atol=0.01)
    assert np.abs(fit.kernel - kernel).max() < 0.03
    unregistered = fit_kernel([reference], [capture(moved, kernel)], size=5, register=False)
    assert np.abs(unregistered.kernel - kernel).max() > 0.1


def test_front_door_noise_error_is_small_and_shrinks_with_pairs():
    """Measured (front-door noise, 8 bits): K error 0.018 from one 128x128 pair, 0.005 from 512x512."""
    kernel = per_channel(FRONT_DOOR)
    small = photo('astronaut', 100, 180)
    one = fit_kernel([small], [capture(small, kernel, noise_seed=0)], size=5, register=False)
    assert np.abs(one.kernel - kernel).max() < 0.03
    assert ((one.residual_rms > 0.01) & (one.residual_rms < 0.05)).all()  # the noise's σ in linear light
    large = photo('astronaut', 0, 0, 512)
    many = fit_kernel([large], [capture(large, kernel, noise_seed=1)], size=5, register=False)
    assert np.abs(many.kernel - kernel).max() < 0.01


def test_several_pairs_share_the_fit():
    kernel = per_channel(FRONT_DOOR)
    references = [photo('astronaut', 100, 180), photo('chelsea', 100, 150)]
    fit = fit_kernel(references, [capture(reference, kernel) for reference in references], size=5, register=False)
    assert np.abs(fit.kernel - kernel).max() < 1e-3 and len(fit.shifts) == 2


def test_nonnegative_least_squares_matches_the_constrained_optimum():
    rng = np.random.default_rng(0)
    design = rng.normal(size=(40, 6))
    truth = np.array([0.5, 0, 0.3, 0, 0.2, 0.1])
    target = design @ truth - 0.4 * design[:, 1]  # the unconstrained optimum has a negative second weight
    weights = nonnegative_least_squares(design.T @ design, design.T @ target)
    assert (weights >= 0).all() and weights[1] == 0
    gradient = design.T @ (target - design @ weights)  # KKT: 0 where free, <= 0 where held at 0
    assert np.abs(gradient[weights > 0]).max() < 1e-8 and (gradient[weights == 0] <= 1e-8).all()


@pytest.mark.parametrize('kwargs, message', [
    ({'size': 4}, 'size must be an odd integer >= 1'),
    ({'captures': []}, 'give as many captures as references'),
])
def test_bad_arguments_name_the_problem(kwargs, message):
    reference = photo('astronaut', 100, 180)
    arguments = {'references': [reference], 'captures': [reference], **kwargs}
    with pytest.raises(ValueError, match=message):
        fit_kernel(**arguments)


def write_png(path, image):
    """Write a (C, H, W) float image in [0, 1] as a 16-bit PNG."""
    cv2.imwrite(str(path), np.round(image.transpose(1, 2, 0)[..., ::-1] * 65535).astype(np.uint16))


def test_cli_writes_a_kernel_every_kernel_option_loads_and_a_report(tmp_path):
    kernel = build_kernel(MIXING)
    reference = photo('astronaut', 100, 180)
    write_png(tmp_path / 'ref.png', reference)
    write_png(tmp_path / 'cap.png', capture(reference, kernel))
    result = run_basicsr(['calibrate', '--reference', 'ref.png', '--captured', 'cap.png', '--size', '5', '--mixing',
                          '--no-register', '-o', 'out/kernel.npy', '--report', 'report'], cwd=tmp_path,
                         env={'OMP_NUM_THREADS': '1'})
    assert result.returncode == 0, result.stderr
    loaded = build_kernel(str(tmp_path / 'out/kernel.npy'))
    assert loaded.shape == (3, 3, 5, 5) and np.abs(loaded - kernel).max() < 1e-3
    assert np.array_equal(build_kernel({'type': 'file', 'path': str(tmp_path / 'out/kernel.npy')}), loaded)
    record = json.loads((tmp_path / 'report/calibration.json').read_text())
    assert np.allclose(record['gain'], 1, atol=1e-3) and record['pairs'][0]['shift'] == [0.0, 0.0]
    assert cv2.imread(str(tmp_path / 'report/kernel.png')) is not None
    assert '| R |' in (tmp_path / 'report/calibration.md').read_text() and '| R |' in result.stdout
    shown = run_basicsr(['kernels', 'show', 'out/kernel.npy'], cwd=tmp_path)
    assert shown.returncode == 0 and 'shape (3, 3, 5, 5)' in shown.stdout


def test_cli_bad_inputs_are_one_line_errors(tmp_path):
    reference = photo('astronaut', 100, 180)
    write_png(tmp_path / 'ref.png', reference)
    write_png(tmp_path / 'small.png', reference[:, :100])
    cv2.imwrite(str(tmp_path / 'grey.png'), np.zeros((128, 128), np.uint8))
    pair = ['--reference', 'ref.png', '--captured']
    cases = [
        (pair + ['missing.png', '-o', 'k.npy'], 'missing.png: no such file'),
        (pair + ['small.png', '-o', 'k.npy'], 'small.png is 128x100 px, its reference ref.png 128x128'),
        (pair + ['grey.png', '-o', 'k.npy'], 'grey.png has 1 channel(s), ref.png has 3'),
        (pair + ['ref.png', '--size', '4', '-o', 'k.npy'], '--size 4: the kernel side must be odd'),
        (pair + ['ref.png', '--reference', 'ref.png', '-o', 'k.npy'], 'give one --captured per --reference'),
    ]
    for args, message in cases:
        result = run_basicsr(['calibrate'] + args, cwd=tmp_path, env={'OMP_NUM_THREADS': '1'})
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
        assert result.stderr.startswith('basicsr calibrate: error: ') and message in result.stderr, result.stderr
    assert not (tmp_path / 'k.npy').exists()


def raw_pair(pattern, shift_cells=(0, 0)):
    """A photo unprocessed to a linear (1, 128, 128) mosaic, and its capture through ``bayer_crosstalk`` on the
    packed planes (``ops.crosstalk``), its content moved by ``shift_cells`` whole 2x2 cells; and the kernel."""
    from newbp_plugin.ops import crosstalk
    from newbp_plugin.sensor.mosaic import pack, unpack
    from newbp_plugin.sensor.unprocess import draw_cameras, unprocess
    rgb = torch.as_tensor(photo('astronaut', 100, 180))[None]
    raw = unprocess(rgb, draw_cameras(np.random.default_rng(0), 1), pattern)
    kernel = build_kernel({'type': 'bayer_crosstalk', 'pattern': pattern})
    captured = unpack(crosstalk(pack(raw), torch.as_tensor(kernel, dtype=raw.dtype)[None]))
    captured = torch.roll(captured, (2 * shift_cells[0], 2 * shift_cells[1]), dims=(-2, -1))
    return raw[0].numpy(), captured[0].numpy(), kernel


@pytest.mark.parametrize('pattern, shift_cells, register', [('RGGB', (0, 0), False), ('GRBG', (0, 0), True),
                                                            ('GBRG', (1, -2), True)])
def test_raw_kernel_is_recovered_on_the_packed_planes(pattern, shift_cells, register):
    from newbp_plugin.sensor.calibration import fit_raw_kernel
    reference, captured, kernel = raw_pair(pattern, shift_cells)
    fit = fit_raw_kernel([reference], [captured], pattern, size=3, register=register)
    assert fit.kernel.shape == (4, 4, 3, 3) and np.abs(fit.kernel - kernel).max() < 1e-3
    assert np.allclose(fit.kernel.sum((1, 2, 3)), 1, atol=1e-6)
    assert fit.shifts == [tuple(map(float, shift_cells))]  # whole packed pixels
    assert fit.pattern == pattern and (fit.residual_rms < 1e-6).all()


def test_raw_reference_may_be_rgb_mosaicked_on_the_pattern():
    from newbp_plugin.sensor.calibration import fit_raw_kernel
    from newbp_plugin.sensor.mosaic import PHASE_OFFSETS, phase_channels
    reference, captured, kernel = raw_pair('BGGR')
    rgb = np.full((3, ) + reference.shape[1:], 0.5)  # the colours each pixel's filter drops: must not be fitted
    for channel, (row, column) in zip(phase_channels('BGGR'), PHASE_OFFSETS):
        rgb[channel, row::2, column::2] = reference[0, row::2, column::2]
    fit = fit_raw_kernel([rgb], [captured], 'BGGR', size=3, register=False)
    assert np.abs(fit.kernel - kernel).max() < 1e-3


def test_cli_cfa_writes_a_packed_kernel_the_raw_dataset_loads(tmp_path):
    from newbp_plugin.data.crosstalk_dataset import CrosstalkDataset
    reference, captured, kernel = raw_pair('GRBG')
    for name, image in (('ref.png', reference), ('cap.png', captured)):
        cv2.imwrite(str(tmp_path / name), np.round(image[0] * 65535).astype(np.uint16))
    np.save(tmp_path / 'cap.npy', captured[0].astype(np.float32))
    result = run_basicsr(['calibrate', '--cfa', 'GRBG', '--reference', 'ref.png', '--captured', 'cap.npy', '--size',
                          '3', '-o', 'raw_kernel.npz', '--report', 'report'], cwd=tmp_path,
                         env={'OMP_NUM_THREADS': '1'})
    assert result.returncode == 0, result.stderr
    loaded = build_kernel(str(tmp_path / 'raw_kernel.npz'))
    assert loaded.shape == (4, 4, 3, 3) and np.abs(loaded - kernel).max() < 1e-3
    for text in (result.stdout, (tmp_path / 'report/calibration.md').read_text()):
        assert [line.split('|')[1].strip() for line in text.splitlines() if line.startswith('| G')] == ['Gr', 'Gb']
        assert 'phases Gr, R, B, Gb' in text and 'out Gr <- in R' in (tmp_path / 'report/calibration.md').read_text()
    assert json.loads((tmp_path / 'report/calibration.json').read_text())['pattern'] == 'GRBG'
    cv2.imwrite(str(tmp_path / 'scene.png'), (photo('chelsea', 50, 50, 64).transpose(1, 2, 0) * 255).astype(np.uint8))
    dataset = CrosstalkDataset({'name': 'raw', 'phase': 'train', 'dataroot_gt': str(tmp_path), 'meta_info_file': None,
                                'io_backend': {'type': 'disk'}, 'domain': 'raw', 'cfa': 'GRBG', 'gt_size': 32,
                                'kernel': str(tmp_path / 'raw_kernel.npz'), 'noise': {'type': 'none'}})
    assert np.abs(dataset[0]['kernel'].numpy() - kernel).max() < 1e-3  # the packed kernel, as it is
    assert recorded_pattern(tmp_path / 'raw_kernel.npz') == 'GRBG'


@pytest.mark.parametrize('kernel', ['k.npz', {'type': 'file', 'path': 'k.npz'}, ['k.npz', {'type': 'gaussian'}]])
def test_a_raw_kernel_file_on_another_cfa_is_an_error_naming_it(tmp_path, kernel):
    from newbp_plugin.data.crosstalk_dataset import CrosstalkDataset
    from newbp_plugin.kernels.measured import save_kernel
    save_kernel(tmp_path / 'k.npz', build_kernel({'type': 'bayer_crosstalk', 'pattern': 'GRBG'}), 'GRBG')
    cv2.imwrite(str(tmp_path / 'scene.png'), (photo('chelsea', 50, 50, 64).transpose(1, 2, 0) * 255).astype(np.uint8))
    kernel = json.loads(json.dumps(kernel).replace('k.npz', str(tmp_path / 'k.npz')))
    options = {'name': 'raw', 'phase': 'train', 'dataroot_gt': str(tmp_path), 'meta_info_file': None,
               'io_backend': {'type': 'disk'}, 'domain': 'raw', 'gt_size': 32, 'kernel': kernel,
               'noise': {'type': 'none'}}
    CrosstalkDataset(dict(options, cfa='GRBG'))
    with pytest.raises(ValueError, match=f"kernel file {tmp_path / 'k.npz'} was fitted on GRBG mosaics and is used on "
                                         'RGGB ones'):
        CrosstalkDataset(dict(options, cfa='RGGB'))
    assert build_kernel(str(tmp_path / 'k.npz')).shape == (4, 4, 3, 3)  # without a pattern: as it is


def test_kernel_files_record_a_cfa_in_npz_only(tmp_path):
    from newbp_plugin.kernels.measured import save_kernel
    from newbp_plugin.kernels.preview import kernel_pattern
    kernel = build_kernel({'type': 'bayer_crosstalk', 'pattern': 'BGGR'})
    save_kernel(tmp_path / 'k.npz', kernel, 'BGGR')
    save_kernel(tmp_path / 'k.npy', kernel)
    assert recorded_pattern(tmp_path / 'k.npz') == 'BGGR' and recorded_pattern(tmp_path / 'k.npy') is None
    assert kernel_pattern(str(tmp_path / 'k.npz')) == 'BGGR'  # names the phases in basicsr kernels show
    np.testing.assert_array_equal(build_kernel({'type': 'file', 'path': str(tmp_path / 'k.npy'), 'pattern': 'RGGB'}),
                                  build_kernel(str(tmp_path / 'k.npz')))
    with pytest.raises(ValueError, match='a .npy holds no CFA pattern; write a .npz'):
        save_kernel(tmp_path / 'x.npy', kernel, 'BGGR')
    np.savez(tmp_path / 'bad.npz', weights=kernel)
    with pytest.raises(ValueError, match=r"bad.npz holds no array 'kernel' \(it has weights\)"):
        build_kernel(str(tmp_path / 'bad.npz'))


def test_cli_cfa_bad_inputs_are_one_line_errors(tmp_path):
    reference, captured, _ = raw_pair('RGGB')
    cv2.imwrite(str(tmp_path / 'ref.png'), np.round(reference[0] * 65535).astype(np.uint16))
    cv2.imwrite(str(tmp_path / 'odd.png'), np.round(reference[0, :, :127] * 65535).astype(np.uint16))
    cv2.imwrite(str(tmp_path / 'rgb.png'), np.zeros((128, 128, 3), np.uint16))
    pair = ['--cfa', 'RGGB', '--reference', 'ref.png', '--captured']
    cases = [
        (pair + ['rgb.png', '-o', 'k.npz'], 'rgb.png: a raw capture is a single-channel mosaic'),
        (['--cfa', 'RGGB', '--reference', 'odd.png', '--captured', 'odd.png', '-o', 'k.npz'],
         'odd.png is 127x128 px; a mosaic holds whole 2x2 CFA cells'),
        (pair + ['ref.png', '--mixing', '-o', 'k.npz'], '--cfa RGGB: the packed raw kernel is always channel-mixing'),
        (pair + ['ref.png', '--cfa', 'RGBG', '-o', 'k.npz'], "argument --cfa: invalid choice: 'RGBG'"),
        (pair + ['ref.png', '-o', 'k.npy'], '-o k.npy: the kernel file must end in .npz (a raw kernel: it records'),
        (pair + ['ref.png', '--black-level', '64', '-o', 'k.npz'], '--black-level: give both --black-level and'),
        (pair + ['ref.png', '--black-level', '4095', '--white-level', '4095', '-o', 'k.npz'],
         '--black-level 4095 --white-level 4095: need 0 <= black < white <= 65535'),
        (pair + ['ref.png', '--black-level', '0', '--white-level', '4095', '-o', 'k.npz'],
         'ref.png: codes up to 65535, above --white-level 4095'),
        (['--reference', 'ref.png', '--captured', 'ref.png', '--black-level', '0', '--white-level', '4095', '-o',
          'k.npy'], '--black-level: the levels of raw mosaics, with --cfa (or DNG files)'),
    ]
    for args, message in cases:
        result = run_basicsr(['calibrate'] + args, cwd=tmp_path, env={'OMP_NUM_THREADS': '1'})
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr.strip().splitlines()[-1], result.stderr
    assert not (tmp_path / 'k.npy').exists() and not (tmp_path / 'k.npz').exists()


def raw_codes(image, black, white):
    """Linear light (1, H, W) -> whole (H, W) uint16 codes between ``black`` and ``white``, clipped there."""
    from newbp_plugin.sensor.unprocess import to_raw_codes
    return to_raw_codes(torch.as_tensor(image[0]), black, white, 16).numpy().astype(np.uint16)


def test_cli_fits_a_dng_pair_with_the_cfa_and_levels_of_the_files(tmp_path):
    pytest.importorskip('rawpy')
    from newbp_plugin.sensor.dng import write_dng
    reference, captured, kernel = raw_pair('GBRG')
    write_dng(tmp_path / 'ref.dng', raw_codes(reference, 1024, 65535), 'GBRG', 1024, 65535)
    write_dng(tmp_path / 'cap.dng', raw_codes(captured, 256, 16383), 'GBRG', 256, 16383)
    result = run_basicsr(['calibrate', '--reference', 'ref.dng', '--captured', 'cap.dng', '--size', '3', '-o', 'k.npz',
                          '--no-register', '--report', 'report'], cwd=tmp_path, env={'OMP_NUM_THREADS': '1'})
    assert result.returncode == 0, result.stderr
    assert 'with domain: raw and cfa: GBRG, which it records' in result.stdout
    assert np.abs(build_kernel(str(tmp_path / 'k.npz')) - kernel).max() < 2e-3
    assert recorded_pattern(tmp_path / 'k.npz') == 'GBRG'
    report = json.loads((tmp_path / 'report/calibration.json').read_text())
    # both files normalised by their own levels: the capture has the reference's exposure and no offset
    np.testing.assert_allclose(report['gain'], 1, atol=2e-3)
    np.testing.assert_allclose(report['offset'], 0, atol=2e-4)
    for args, message in (
            (['--cfa', 'RGGB'], 'ref.dng: a GBRG mosaic (its DNG CFA pattern); --cfa RGGB: every mosaic of a fit'),
            (['--black-level', '0', '--white-level', '16383'], 'cap.dng: --black-level 0, but the DNG records 256')):
        result = run_basicsr(['calibrate', '--reference', 'ref.dng', '--captured', 'cap.dng', '--size', '3', '-o',
                              'k2.npz'] + args, cwd=tmp_path, env={'OMP_NUM_THREADS': '1'})
        assert result.returncode == 2 and message in result.stderr.strip().splitlines()[-1], result.stderr
    assert not (tmp_path / 'k2.npz').exists()


def test_cli_levels_normalise_the_captures_and_find_their_clipping(tmp_path):
    reference, captured, kernel = raw_pair('RGGB')
    cv2.imwrite(str(tmp_path / 'ref.png'), np.round(reference[0] * 65535).astype(np.uint16))
    cv2.imwrite(str(tmp_path / 'cap.png'), raw_codes(captured * 1.5, 256, 4095))  # highlights saturate at 4095
    fits = {}
    for name, levels in (('with', ['--black-level', '256', '--white-level', '4095']), ('without', [])):
        result = run_basicsr(['calibrate', '--cfa', 'RGGB', '--reference', 'ref.png', '--captured', 'cap.png',
                              '--size', '3', '--no-register', '-o', f'{name}.npz', '--report', name] + levels,
                             cwd=tmp_path, env={'OMP_NUM_THREADS': '1'})
        assert result.returncode == 0, result.stderr
        fits[name] = build_kernel(str(tmp_path / f'{name}.npz')), json.loads((tmp_path / name / 'calibration.json')
                                                                             .read_text())
    fitted, report = fits['with']
    assert np.abs(fitted - kernel).max() < 3e-3  # the saturated pixels are left out
    np.testing.assert_allclose(report['gain'], 1.5, atol=5e-3)
    np.testing.assert_allclose(report['offset'], 0, atol=1e-3)
    assert np.abs(fits['without'][0] - kernel).max() > 1e-2  # codes / 65535: saturation is not seen as clipping
