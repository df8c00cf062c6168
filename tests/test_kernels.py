"""Sensor kernels: built-ins against independent computations, validation, sampling, README, preview."""
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from scipy import integrate, signal, special

from newbp_plugin.kernels import (KERNEL_REGISTRY, MAX_KERNEL_SIZE, KernelSampler, KernelSpecError, Registry,
                                  build_kernel, check_spec, describe_kernels, is_random_spec, parse_kernel_spec,
                                  resolve_spec)

README = Path(__file__).resolve().parents[1] / 'README.md'


@pytest.fixture
def registry_copy(monkeypatch):
    """Registrations made in a test are forgotten after it."""
    monkeypatch.setattr(KERNEL_REGISTRY, '_obj_map', dict(KERNEL_REGISTRY._obj_map))


def centred_grid(size):
    half = size // 2
    return np.mgrid[-half:half + 1, -half:half + 1]  # (y down, x right)


def convolve_delta(kernel, size=11):
    """True convolution of a centred unit impulse with ``kernel`` (scipy), same size."""
    delta = np.zeros((size, size))
    delta[size // 2, size // 2] = 1
    return signal.convolve2d(delta, kernel, mode='same')


# ---------------------------------------------------------------- registry
def test_registry_decorator_forms_duplicate_and_lookup():
    registry = Registry('thing')

    @registry.register()
    def first():
        pass

    @registry.register
    def second():
        pass

    def other_first():
        def first():
            pass
        return first

    assert 'first' in registry and registry.get('second') is second and sorted(registry.keys()) == ['first', 'second']
    with pytest.raises(KeyError, match=r"'first' is already registered \(by .*test_registry.*<locals>.first\); "
                                       r".*other_first.<locals>.first must choose another name"):
        registry.register(other_first())
    assert registry.register(first) is first  # the same definition again (a reload) is accepted
    with pytest.raises(KeyError, match="No thing named 'third'; known: first, second"):
        registry.get('third')


# ---------------------------------------------------------------- built-ins
def test_gaussian_matches_closed_form():
    y, x = centred_grid(9)
    expected = np.exp(-(x**2 + y**2) / (2 * 1.3**2))
    kernel = build_kernel({'type': 'gaussian', 'sigma': 1.3})
    assert kernel.shape == (9, 9) and kernel.dtype == np.float32  # 2 * ceil(3.9) + 1
    np.testing.assert_allclose(kernel, expected / expected.sum(), rtol=1e-5)


def test_anisotropic_gaussian_rotation():
    rotated = build_kernel({'type': 'gaussian', 'sigma_x': 2.5, 'sigma_y': 0.8, 'angle': 90, 'size': 15})
    swapped = build_kernel({'type': 'gaussian', 'sigma_x': 0.8, 'sigma_y': 2.5, 'size': 15})
    np.testing.assert_allclose(rotated, swapped, atol=1e-7)
    y, x = centred_grid(15)  # at 30 deg the long axis points to the upper right: (x, -y) . (cos, sin)
    along = x * np.cos(np.pi / 6) - y * np.sin(np.pi / 6)
    across = x * np.sin(np.pi / 6) + y * np.cos(np.pi / 6)
    expected = np.exp(-0.5 * ((along / 2.5)**2 + (across / 0.8)**2))
    tilted = build_kernel({'type': 'gaussian', 'sigma_x': 2.5, 'sigma_y': 0.8, 'angle': 30, 'size': 15})
    np.testing.assert_allclose(tilted, expected / expected.sum(), rtol=1e-5, atol=1e-9)
    assert tilted[7 - 2, 7 + 3] > 10 * tilted[7 + 2, 7 + 3]  # up-right, not down-right


def test_crosstalk_3x3_centre_and_orientation():
    kernel = build_kernel({'type': 'crosstalk', 'left': 0.05, 'right': 0.03, 'up': 0.02, 'down': 0.01,
                           'diagonal': 0.004})
    assert kernel[1, 1] == pytest.approx(1 - (0.05 + 0.03 + 0.02 + 0.01 + 4 * 0.004))
    assert kernel[1, 0] == pytest.approx(0.05) and kernel[2, 1] == pytest.approx(0.01)
    left_only = build_kernel({'type': 'crosstalk', 'left': 0.1, 'right': 0, 'up': 0, 'down': 0, 'diagonal': 0})
    blurred = convolve_delta(left_only)  # a lit pixel leaks into the pixel on its left
    assert blurred[5, 4] == pytest.approx(0.1) and blurred[5, 5] == pytest.approx(0.9)
    assert blurred.sum() == pytest.approx(1) and np.count_nonzero(blurred) == 2


def test_crosstalk_5x5_second_ring():
    kernel = build_kernel({'type': 'crosstalk', 'size': 5, 'second_ring': 0.001})
    ring = np.ones((5, 5), bool)
    ring[1:4, 1:4] = False
    np.testing.assert_allclose(kernel[ring], 0.001)
    assert kernel[2, 2] == pytest.approx(1 - 4 * 0.02 - 4 * 0.005 - 16 * 0.001)
    assert kernel.sum() == pytest.approx(1)


def test_airy_first_zero():
    kernel = build_kernel({'type': 'airy', 'wavelength': 1000, 'f_number': 8.2, 'pixel_pitch': 1.0,
                           'size': 31, 'supersample': 1})
    row = kernel[15, 15:]  # first zero at 1.22 * 1.0 um * 8.2 / 1.0 um = 10.0 px
    assert np.argmin(row[5:15]) + 5 == 10
    assert row[10] < 1e-4 * row[0] and row[6] > row[10] < row[13]  # central lobe, then the first ring


def test_airy_integrates_over_the_pixel_area():
    spot = 0.55 * 2.0 / 2.0  # wavelength * N [px] at a 2 um pitch: first zero at 0.67 px, inside a pixel
    arg = lambda y, x: max(np.pi * np.hypot(y, x) / spot, 1e-12)
    intensity = lambda y, x: (2 * special.j1(arg(y, x)) / arg(y, x))**2
    pixel = lambda cx: integrate.dblquad(intensity, cx - 0.5, cx + 0.5, -0.5, 0.5, epsabs=1e-10)[0]
    kernel = build_kernel({'type': 'airy', 'wavelength': 550, 'f_number': 2.0, 'pixel_pitch': 2.0, 'size': 7})
    assert kernel[3, 4] / kernel[3, 3] == pytest.approx(pixel(1.0) / pixel(0.0), rel=1e-3)
    point = build_kernel({'type': 'airy', 'wavelength': 550, 'f_number': 2.0, 'pixel_pitch': 2.0, 'size': 7,
                          'supersample': 1})
    assert point[3, 4] / point[3, 3] < 0.7 * pixel(1.0) / pixel(0.0)  # point sampling is wrong here


def test_disk_area_and_anti_aliasing():
    raw = KERNEL_REGISTRY.get('disk')(radius=3.3)
    assert raw.shape == (7, 7) and raw.sum() == pytest.approx(np.pi * 3.3**2, rel=0.01)
    assert ((raw > 0.05) & (raw < 0.95)).sum() >= 8  # fractional edge pixels
    assert build_kernel({'type': 'disk', 'radius': 0.01}).shape == (1, 1)


def test_motion_angle_convention():
    horizontal = build_kernel({'type': 'motion', 'length': 5})
    expected = np.zeros((5, 5))
    expected[2] = 0.2
    np.testing.assert_allclose(horizontal, expected, atol=1e-7)
    np.testing.assert_allclose(build_kernel({'type': 'motion', 'length': 5, 'angle': 90}), expected.T, atol=1e-7)
    diagonal = build_kernel({'type': 'motion', 'length': 5, 'angle': 45})
    assert diagonal[0, 4] > 0 and diagonal[4, 0] > 0 and diagonal[0, 0] == 0 and diagonal[4, 4] == 0
    raw = KERNEL_REGISTRY.get('motion')(length=6.5, angle=30)
    assert raw.sum() == pytest.approx(6.5)  # the whole path lies in the kernel
    ends = build_kernel({'type': 'motion', 'length': 4})[2]
    np.testing.assert_allclose(ends, [0.125, 0.25, 0.25, 0.25, 0.125], atol=1e-7)  # anti-aliased ends


def test_per_channel_and_cross_channel():
    kernel = build_kernel({'type': 'per_channel', 'kernels': [
        {'type': 'crosstalk'}, {'type': 'gaussian', 'sigma': 1.0}, {'type': 'disk', 'radius': 1.5}]})
    assert kernel.shape == (3, 7, 7)
    np.testing.assert_allclose(kernel.sum(axis=(1, 2)), 1, rtol=1e-6)
    np.testing.assert_allclose(kernel[0, 2:5, 2:5], build_kernel({'type': 'crosstalk'}))
    assert not kernel[0, :2].any() and not kernel[0, :, 5:].any()

    mix = [[0.8, 0.1, 0.1], [0.05, 0.9, 0.05], [0.0, 0.2, 0.6]]
    cross = build_kernel({'type': 'cross_channel', 'mix': mix, 'kernel': {'type': 'gaussian', 'sigma': 0.7}})
    spatial = build_kernel({'type': 'gaussian', 'sigma': 0.7})
    assert cross.shape == (3, 3, 7, 7)
    np.testing.assert_allclose(cross.sum(axis=(1, 2, 3)), 1, rtol=1e-6)
    np.testing.assert_allclose(cross[2, 1], 0.25 * spatial, rtol=1e-6)  # 0.2 / (0.2 + 0.6)
    with pytest.raises(KernelSpecError, match='kernel has 2 channels but mix has 3'):
        build_kernel({'type': 'cross_channel', 'mix': mix, 'kernel': {'type': 'per_channel', 'kernels': [
            {'type': 'disk'}, {'type': 'disk'}]}})


# ---------------------------------------------------------------- measured PSFs
def test_file_npy_and_png(tmp_path):
    psf = np.random.default_rng(0).uniform(0.1, 1.0, (7, 5))
    np.save(tmp_path / 'psf.npy', psf)
    np.testing.assert_allclose(build_kernel(tmp_path / 'psf.npy'), psf / psf.sum(), rtol=1e-6)

    for dtype, top in ((np.uint8, 255), (np.uint16, 65535)):
        levels = np.round(psf / psf.max() * top).astype(dtype)
        cv2.imwrite(str(tmp_path / f'psf{top}.png'), levels)
        assert cv2.imread(str(tmp_path / f'psf{top}.png'), cv2.IMREAD_UNCHANGED).dtype == dtype
        kernel = build_kernel({'type': 'file', 'path': str(tmp_path / f'psf{top}.png'), 'pixel_pitch': 1.4})
        np.testing.assert_allclose(kernel, levels / levels.sum(), rtol=1e-6)

    colour = np.zeros((3, 3, 3), np.uint16)  # BGR on disk
    colour[1, 1] = (100, 200, 300)
    colour[1, 2, 2] = 300  # the red channel leaks to the right
    cv2.imwrite(str(tmp_path / 'rgb.png'), colour)
    kernel = build_kernel(str(tmp_path / 'rgb.png'))
    assert kernel.shape == (3, 3, 3) and kernel[0, 1, 2] == pytest.approx(0.5) and kernel[2, 1, 1] == 1


def test_file_errors(tmp_path):
    with pytest.raises(KernelSpecError, match='PSF file .*missing.npy does not exist'):
        build_kernel(tmp_path / 'missing.npy')
    (tmp_path / 'psf.txt').write_text('1')
    with pytest.raises(KernelSpecError, match=r"unsupported suffix '.txt'; use .npy, .npz or .png"):
        build_kernel(tmp_path / 'psf.txt')
    (tmp_path / 'broken.png').write_bytes(b'not a png')
    with pytest.raises(KernelSpecError, match='broken.png could not be decoded'):
        build_kernel(tmp_path / 'broken.png')


# ---------------------------------------------------------------- validation
def save(tmp_path, array, name='psf.npy'):
    np.save(tmp_path / name, np.asarray(array, dtype=np.float64))
    return str(tmp_path / name)


def test_value_errors_name_the_file(tmp_path):
    with pytest.raises(KernelSpecError, match=r'nan.npy.* has 1 non-finite value'):
        build_kernel(save(tmp_path, [[0, 0, 0], [0, np.nan, 0], [0, 0, 0]], 'nan.npy'))
    negative = save(tmp_path, [[0, -0.1, 0], [0, 1, 0], [0, 0, 0]], 'negative.npy')
    with pytest.raises(KernelSpecError, match=r'negative.npy.* has negative values \(min -0.1\); set allow_neg'):
        build_kernel(negative)
    allowed = build_kernel({'type': 'file', 'path': negative, 'allow_negative': True})
    np.testing.assert_allclose(allowed[0, 1], -0.1 / 0.9, rtol=1e-6)
    with pytest.raises(KernelSpecError, match=r'zero.npy.* sums to \[0.0\] \(per channel\); each sum must be > 0'):
        build_kernel(save(tmp_path, np.zeros((3, 3)), 'zero.npy'))
    with pytest.raises(KernelSpecError, match=r'shape \(3,\); expected \(kh, kw\)'):
        build_kernel(save(tmp_path, np.ones(3), 'flat.npy'))


def test_even_size_and_explicit_centre(tmp_path):
    even = np.arange(1, 17, dtype=np.float64).reshape(4, 4)
    path = save(tmp_path, even, 'even.npy')
    with pytest.raises(KernelSpecError, match=r'even.npy.* is 4x4: an even side has no centre pixel.*centre: '):
        build_kernel(path)
    kernel = build_kernel({'type': 'file', 'path': path, 'centre': [1, 2]})
    assert kernel.shape == (5, 5)  # rows: 1 above + 2 below -> pad 1 on top; columns: 2 left + 1 right
    np.testing.assert_allclose(kernel[2, 2], even[1, 2] / even.sum(), rtol=1e-6)
    np.testing.assert_allclose(kernel[1:, :4], even / even.sum(), rtol=1e-6)
    with pytest.raises(KernelSpecError, match=r'centre must be \[row, column\] integer indices inside the 4x4'):
        build_kernel({'type': 'file', 'path': path, 'centre': [4, 0]})
    with pytest.raises(KernelSpecError, match='size must be odd and at most MAX_KERNEL_SIZE = 127, got 6'):
        build_kernel({'type': 'gaussian', 'size': 6})


def test_size_bound(tmp_path):
    with pytest.raises(KernelSpecError, match=f'got {MAX_KERNEL_SIZE + 2}'):
        build_kernel({'type': 'gaussian', 'size': MAX_KERNEL_SIZE + 2})
    with pytest.raises(KernelSpecError, match=r'default size 301 .* above MAX_KERNEL_SIZE'):
        build_kernel({'type': 'gaussian', 'sigma': 50})
    with pytest.raises(KernelSpecError, match=r'big.npy.* is 129x129, above MAX_KERNEL_SIZE = 127'):
        build_kernel(save(tmp_path, np.ones((129, 129)), 'big.npy'))


def test_spec_errors():
    with pytest.raises(KernelSpecError, match=r"unknown type 'gausian'; did you mean 'gaussian'\? Known types: "
                                              r'airy, bayer_crosstalk, cross_channel, crosstalk, disk, file, gaussian, .*random'):
        build_kernel({'type': 'gausian', 'sigma': 1})
    with pytest.raises(KernelSpecError, match=r"type 'gaussian' has no option 'sigmax' \(did you mean 'sigma_x'\?\); "
                                              r'valid options: sigma, sigma_x, sigma_y, angle, size, centre, allow'):
        build_kernel({'type': 'gaussian', 'sigmax': 1})
    with pytest.raises(KernelSpecError, match=r"kernel \{sigma: 1\} has no 'type'"):
        build_kernel({'sigma': 1})
    with pytest.raises(KernelSpecError, match=r"type 'file' needs option\(s\) path"):
        build_kernel({'type': 'file'})
    with pytest.raises(KernelSpecError, match=r'kernel \{type: gaussian, sigma: -1\}: sigma_x must be > 0, got -1'):
        build_kernel({'type': 'gaussian', 'sigma': -1})
    with pytest.raises(KernelSpecError, match="A kernel spec is a dict .*got int: 3"):
        build_kernel(3)
    with pytest.raises(KernelSpecError, match=r'the total leakage 1.06 must be < 1 \(the centre keeps 1 - total\)'):
        build_kernel({'type': 'crosstalk', 'left': 0.5, 'right': 0.5})
    with pytest.raises(KernelSpecError, match='second_ring needs size: 5'):
        build_kernel({'type': 'crosstalk', 'second_ring': 0.01})
    with pytest.raises(KernelSpecError, match='up must be >= 0, got -0.1'):
        build_kernel({'type': 'crosstalk', 'up': -0.1})
    with pytest.raises(KernelSpecError, match=r"kernels\[1\] has shape \(3, 3, 3\)"):
        build_kernel({'type': 'per_channel', 'kernels': [{'type': 'disk'}, {'type': 'per_channel', 'kernels': [
            {'type': 'disk', 'radius': 1}] * 3}]})
    assert build_kernel(yaml.safe_load('{type: gaussian, sigma: 1e-0}')).shape == (7, 7)  # YAML 1.1 reads a str


# ---------------------------------------------------------------- random sampling
RANDOM_SPEC = {'type': 'random', 'choices': [
    {'type': 'gaussian', 'sigma': {'uniform': [0.8, 1.6]}, 'angle': {'choice': [0, 45]}},
    {'type': 'motion', 'length': {'randint': [3, 9]}, 'angle': {'uniform': [0, 180]}},
], 'weights': [3, 1]}


def test_random_sampling_is_seeded_and_within_ranges():
    assert is_random_spec(RANDOM_SPEC) and not is_random_spec({'type': 'gaussian', 'sigma': 1.0})
    first = [build_kernel(RANDOM_SPEC, np.random.default_rng(seed)) for seed in range(20)]
    again = [build_kernel(RANDOM_SPEC, seed) for seed in range(20)]  # an int is a seed
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert len({kernel.tobytes() for kernel in first}) == 20
    drawn = [resolve_spec(RANDOM_SPEC, np.random.default_rng(seed)) for seed in range(200)]
    gaussians = [spec for spec in drawn if spec['type'] == 'gaussian']
    motions = [spec for spec in drawn if spec['type'] == 'motion']
    assert 120 < len(gaussians) < 180 and len(gaussians) + len(motions) == 200  # weights 3 : 1
    assert all(0.8 <= spec['sigma'] <= 1.6 and spec['angle'] in (0, 45) for spec in gaussians)
    assert {spec['length'] for spec in motions} == set(range(3, 10))
    assert all(0 <= spec['angle'] <= 180 for spec in motions)
    spec = drawn[0]
    np.testing.assert_array_equal(build_kernel(RANDOM_SPEC, 0), build_kernel(resolve_spec(RANDOM_SPEC, 0)))
    assert not is_random_spec(spec)


def test_random_needs_an_rng_and_valid_ranges():
    with pytest.raises(KernelSpecError, match=r'kernel.sigma \{uniform: \[1, 2\]\} is random: pass rng='):
        build_kernel({'type': 'gaussian', 'sigma': {'uniform': [1, 2]}})
    with pytest.raises(KernelSpecError, match=r'kernel.sigma: \{uniform: \[2, 1\]\} needs two numbers'):
        build_kernel({'type': 'gaussian', 'sigma': {'uniform': [2, 1]}}, rng=0)
    with pytest.raises(KernelSpecError, match="type 'random' has no option choice; valid options: choices"):
        build_kernel({'type': 'random', 'choice': []}, rng=0)
    with pytest.raises(KernelSpecError, match='weights must be 2 non-negative numbers'):
        build_kernel({'type': 'random', 'choices': ['a.npy', 'b.npy'], 'weights': [1]}, rng=0)


def test_kernel_sampler():
    fixed = KernelSampler({'type': 'disk', 'radius': 1.5})
    assert not fixed.is_random
    np.testing.assert_array_equal(fixed.sample(), build_kernel({'type': 'disk', 'radius': 1.5}))
    listed = KernelSampler([{'type': 'disk', 'radius': {'uniform': [1, 3]}}, {'type': 'crosstalk'}])
    assert listed.is_random
    shapes = {listed.sample(np.random.default_rng(seed)).shape for seed in range(30)}
    assert shapes == {(3, 3), (5, 5), (7, 7)}
    nested = KernelSampler({'type': 'per_channel', 'kernels': [{'type': 'gaussian', 'sigma': {'uniform': [1, 2]}}] * 3})
    kernel = nested.sample(np.random.default_rng(1))
    assert kernel.shape[0] == 3 and not np.array_equal(kernel[0], kernel[1])  # a draw per channel
    with pytest.raises(KernelSpecError, match='is random: pass rng'):
        listed.sample()
    bad_branch = {'type': 'random', 'choices': [{'type': 'disk'}, {'type': 'per_channel', 'kernels': [
        {'type': 'gaussian', 'sigma': {'uniform': [1, 2]}}, {'type': 'motion', 'lenght': 3}]}]}
    with pytest.raises(KernelSpecError, match=r"type 'motion' has no option 'lenght' \(did you mean 'length'"):
        KernelSampler(bad_branch)  # caught before any draw reaches the branch
    with pytest.raises(KernelSpecError, match=r"kernel.choices\[0\].radius: \{randint: \[3\]\} needs two"):
        check_spec({'type': 'random', 'choices': [{'type': 'disk', 'radius': {'randint': [3]}}]})


def test_parse_kernel_spec(tmp_path):
    assert parse_kernel_spec('{type: gaussian, sigma: 1.2}') == {'type': 'gaussian', 'sigma': 1.2}
    assert parse_kernel_spec('{"type": "disk", "radius": 2}') == {'type': 'disk', 'radius': 2}
    assert parse_kernel_spec('airy') == {'type': 'airy'}
    path = save(tmp_path, np.ones((3, 3)))
    assert parse_kernel_spec(path) == path
    with pytest.raises(KernelSpecError, match='neither a file nor valid YAML'):
        parse_kernel_spec('{type: [')


# ---------------------------------------------------------------- README, listing and preview
def test_readme_add_your_sensor_example(registry_copy):
    section = re.search(r'^## Add your sensor\n(.*?)(?=^## |\Z)', README.read_text(encoding='utf-8'), re.M | re.S)
    code, = [code for code in re.findall(r'```python\n(.*?)```', section.group(1), re.S)
             if code.startswith('# my_sensor.py')]  # the formula; '# my_bayer.py' has its own test
    assert len([line for line in code.strip().splitlines() if not line.startswith('#')]) <= 15
    before = set(KERNEL_REGISTRY.keys())
    exec(compile(code, str(README), 'exec'), {'__name__': 'readme_example'})
    new_type, = set(KERNEL_REGISTRY.keys()) - before
    blocks = [yaml.safe_load(block) for block in re.findall(r'```yaml\n(.*?)```', section.group(1), re.S)]
    usage, = [block['sensor']['kernel'] for block in blocks if block.get('plugins')]
    random_usage, = [block['kernel'] for block in blocks if 'kernel' in block]
    assert usage['type'] == new_type
    kernel = build_kernel(usage)
    assert kernel.shape == (3, 3) and kernel[1, 1] == pytest.approx(1 - usage['leak'])
    assert is_random_spec(random_usage) and set(random_usage) == {'type', 'choices', 'weights'}


def test_describe_kernels_lists_every_type():
    rows = dict(describe_kernels())
    assert set(rows) == set(KERNEL_REGISTRY.keys()) | {'random'}
    assert rows['gaussian'].startswith('Gaussian blur') and all(rows.values())
