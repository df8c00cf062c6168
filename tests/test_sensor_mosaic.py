"""The raw mosaic: CFA patterns, packing, the two views of mosaic crosstalk, bayer_crosstalk, unprocessing, raw
codes."""
import numpy as np
import pytest
import torch

from newbp_plugin.kernels import KERNEL_REGISTRY, KernelSpecError, build_kernel
from newbp_plugin.ops import crosstalk
from newbp_plugin.ops.color import srgb_to_linear
from newbp_plugin.sensor.mosaic import (CFA_PATTERNS, demosaic, mosaic, mosaic_crosstalk, pack, packed_to_phase_kernels,
                                        phase_kernels_to_packed, phase_names, unpack)
from newbp_plugin.sensor.unprocess import (BLUE_GAIN_RANGE, RED_GAIN_RANGE, draw_cameras, from_raw_codes, process,
                                           to_raw_codes, unprocess)

# the 2x2 CFA cell of each pattern, written by hand: rows top to bottom
CELLS = {'RGGB': ('RG', 'GB'), 'BGGR': ('BG', 'GR'), 'GRBG': ('GR', 'BG'), 'GBRG': ('GB', 'RG')}


def test_cells_name_the_greens_by_their_row():
    assert set(CFA_PATTERNS) == set(CELLS)
    for pattern, rows in CELLS.items():
        names = phase_names(pattern)
        for index, colour in enumerate(rows[0] + rows[1]):
            row = rows[index // 2]
            expected = colour if colour != 'G' else ('Gr' if 'R' in row else 'Gb')
            assert names[index] == expected, pattern
    with pytest.raises(ValueError, match='pattern must be one of'):
        phase_names('RGBG')


def test_pack_unpack_are_inverse_and_pack_makes_phases_channels():
    raw = torch.rand(2, 1, 6, 8, dtype=torch.float64)
    packed = pack(raw)
    assert packed.shape == (2, 4, 3, 4)
    for phase, (row, column) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        assert torch.equal(packed[:, phase], raw[:, 0, row::2, column::2])
    assert torch.equal(unpack(packed), raw)
    assert torch.equal(pack(unpack(packed)), packed)
    with pytest.raises(ValueError, match='must be even'):
        pack(torch.rand(1, 1, 5, 8))
    with pytest.raises(ValueError, match=r'\(B, 4, h, w\)'):
        unpack(torch.rand(1, 3, 4, 4))


@pytest.mark.parametrize('pattern', CELLS)
def test_mosaic_puts_each_colour_at_its_phase(pattern):
    rgb = torch.rand(2, 3, 4, 6)
    raw = mosaic(rgb, pattern)
    assert raw.shape == (2, 1, 4, 6)
    for y in range(4):
        for x in range(6):
            channel = 'RGB'.index(CELLS[pattern][y % 2][x % 2])
            assert torch.equal(raw[:, 0, y, x], rgb[:, channel, y, x]), (y, x)
    with pytest.raises(ValueError, match='must be even'):
        mosaic(torch.rand(1, 3, 4, 5), pattern)


def direct_mosaic_crosstalk(raw, phase_kernels):
    """Per-pixel loop: a pixel of phase p receives K_p[r + dy, r + dx] of the pixel at (y - dy, x - dx) (zeros
    outside the image)."""
    height, width = raw.shape[-2:]
    radius = phase_kernels.shape[-1] // 2
    out = torch.zeros_like(raw)
    for y in range(height):
        for x in range(width):
            kernel = phase_kernels[2 * (y % 2) + x % 2]
            for dy in range(-radius, radius + 1):
                for dx in range(-radius, radius + 1):
                    if 0 <= y - dy < height and 0 <= x - dx < width:
                        out[:, 0, y, x] += kernel[radius + dy, radius + dx] * raw[:, 0, y - dy, x - dx]
    return out


@pytest.mark.parametrize('pattern', CELLS)
@pytest.mark.parametrize('size', [1, 3, 5, 7])
def test_packed_kernel_equals_direct_loop_on_the_mosaic(pattern, size):
    generator = torch.Generator().manual_seed(size)
    phase_kernels = torch.rand(4, size, size, generator=generator, dtype=torch.float64)
    raw = mosaic(torch.rand(2, 3, 6, 8, generator=generator, dtype=torch.float64), pattern)
    expected = direct_mosaic_crosstalk(raw, phase_kernels)
    packed = phase_kernels_to_packed(phase_kernels)
    torch.testing.assert_close(crosstalk(pack(raw), packed[None]), pack(expected), rtol=0, atol=1e-13)
    torch.testing.assert_close(mosaic_crosstalk(raw, phase_kernels), expected, rtol=0, atol=1e-13)


def test_equal_phase_kernels_are_ops_crosstalk():
    kernel = torch.rand(5, 5, dtype=torch.float64)
    raw = torch.rand(1, 1, 8, 10, dtype=torch.float64)
    torch.testing.assert_close(mosaic_crosstalk(raw, kernel.expand(4, 5, 5)), crosstalk(raw, kernel),
                               rtol=0, atol=1e-13)


@pytest.mark.parametrize('size', [1, 3, 5, 7, 9])
def test_conversions_round_trip(size):
    rng = np.random.default_rng(size)
    phase_kernels = rng.uniform(size=(4, size, size))
    packed = phase_kernels_to_packed(phase_kernels)
    assert isinstance(packed, np.ndarray) and packed.shape[-1] == 2 * ((size // 2 + 1) // 2) + 1
    np.testing.assert_array_equal(packed_to_phase_kernels(packed, size=size), phase_kernels)
    any_packed = torch.rand(4, 4, packed.shape[-1], packed.shape[-1], dtype=torch.float64)
    wide = packed_to_phase_kernels(any_packed)
    assert torch.is_tensor(wide) and wide.shape == (4, 2 * packed.shape[-1] + 1, 2 * packed.shape[-1] + 1)
    assert torch.equal(phase_kernels_to_packed(wide, size=packed.shape[-1]), any_packed)
    with pytest.raises(ValueError, match='too small'):
        packed_to_phase_kernels(any_packed, size=max(1, 2 * packed.shape[-1] - 1))


def phase_kernels_of(spec):
    return packed_to_phase_kernels(build_kernel(spec).astype(np.float64), size=3)


def test_bayer_crosstalk_rows_sum_to_one_and_red_leaks_most():
    for pattern in CELLS:
        kernel = KERNEL_REGISTRY.get('bayer_crosstalk')(pattern=pattern)  # before build_kernel normalises
        assert kernel.shape == (4, 4, 3, 3)
        np.testing.assert_allclose(kernel.sum(axis=(1, 2, 3)), 1, rtol=0, atol=1e-12)
        kept = dict(zip(phase_names(pattern), phase_kernels_of({'type': 'bayer_crosstalk', 'pattern': pattern})
                        [:, 1, 1]))
        assert kept['R'] < min(kept['Gr'], kept['Gb'], kept['B']) and kept['B'] > max(kept['Gr'], kept['Gb'])


def test_bayer_crosstalk_left_means_light_from_the_left_neighbour():
    """RGGB: a lit pixel left of a red one gives that red pixel r.left of its light, and its right neighbour r.right."""
    kernel = build_kernel({'type': 'bayer_crosstalk', 'r': {'left': 0.07, 'right': 0.01, 'up': 0.03, 'down': 0.02}})
    raw = torch.zeros(1, 1, 6, 6, dtype=torch.float64)
    raw[0, 0, 2, 1] = 1  # Gr, left of the red pixel at (2, 2)
    out = unpack(crosstalk(pack(raw), torch.from_numpy(kernel.astype(np.float64))[None]))
    assert out[0, 0, 2, 2].item() == pytest.approx(0.07, abs=1e-6)
    assert out[0, 0, 2, 0].item() == pytest.approx(0.01, abs=1e-6)  # the red pixel on its left gets r.right
    raw.zero_()
    raw[0, 0, 1, 2] = 1  # Gb, above the red pixel at (2, 2)
    out = unpack(crosstalk(pack(raw), torch.from_numpy(kernel.astype(np.float64))[None]))
    assert out[0, 0, 2, 2].item() == pytest.approx(0.03, abs=1e-6)
    assert out[0, 0, 0, 2].item() == pytest.approx(0.02, abs=1e-6)


def test_bayer_crosstalk_gr_gb_imbalance():
    balanced = dict(zip(phase_names('RGGB'), phase_kernels_of({'type': 'bayer_crosstalk', 'gr_gb_imbalance': 0})))
    np.testing.assert_array_equal(balanced['Gr'], balanced['Gb'])
    spec = {'type': 'bayer_crosstalk', 'gr_gb_imbalance': 0.2, 'g': {'left': 0.05, 'diagonal': 0}}
    phases = dict(zip(phase_names('RGGB'), phase_kernels_of(spec)))
    leak = 0.05 + 0.02 * 3  # g: left 0.05, right, up, down 0.02 (defaults), no diagonal
    assert phases['Gr'][1, 1] == pytest.approx(1 - 1.2 * leak, abs=1e-6)
    assert phases['Gb'][1, 1] == pytest.approx(1 - 0.8 * leak, abs=1e-6)
    assert phases['Gr'][1, 2] == pytest.approx(1.2 * 0.05, abs=1e-6)


@pytest.mark.parametrize('options, message', [
    ({'r': {'left': -0.1}}, 'r.left must be >= 0'),
    ({'g': {'lft': 0.1}}, "g has no option 'lft'"),
    ({'b': 0.1}, 'b must be a dict'),
    ({'pattern': 'RGBG'}, 'pattern must be one of'),
    ({'gr_gb_imbalance': 1.5}, 'gr_gb_imbalance must be in'),
    ({'r': {'left': 0.5, 'right': 0.5}}, 'the R pixels receive'),
    ({'red': {'left': 0.1}}, "has no option 'red'"),
])
def test_bayer_crosstalk_bad_options_name_the_option(options, message):
    with pytest.raises(KernelSpecError, match=message):
        build_kernel(dict({'type': 'bayer_crosstalk'}, **options))


@pytest.mark.parametrize('pattern', CELLS)
def test_opencv_demosaic_of_a_flat_colour_returns_it(pattern):
    colour = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    rgb = colour.view(1, 3, 1, 1).expand(2, 3, 8, 10)
    torch.testing.assert_close(demosaic(mosaic(rgb, pattern), pattern), rgb, rtol=0, atol=1 / 65535)


def test_draw_cameras_from_the_generator():
    cameras = draw_cameras(np.random.default_rng(3), 64)
    again = draw_cameras(np.random.default_rng(3), 64)
    np.testing.assert_array_equal(cameras.rgb_to_camera, again.rgb_to_camera)
    assert not np.allclose(cameras.rgb_to_camera[0], cameras.rgb_to_camera[1])
    np.testing.assert_allclose(cameras.rgb_to_camera.sum(axis=2), 1)
    assert RED_GAIN_RANGE[0] <= cameras.red_gain.min() and cameras.red_gain.max() <= RED_GAIN_RANGE[1]
    assert BLUE_GAIN_RANGE[0] <= cameras.blue_gain.min() and cameras.blue_gain.max() <= BLUE_GAIN_RANGE[1]
    with pytest.raises(ValueError, match='numpy Generator'):
        draw_cameras(3, 1)


@pytest.mark.parametrize('pattern', CELLS)
def test_unprocess_then_process_recovers_the_image(pattern):
    rng = np.random.default_rng(7)
    cameras = draw_cameras(rng, 3)
    patches = torch.from_numpy(rng.uniform(0.2, 0.8, size=(3, 3, 2, 2)))  # 2x2 flat patches, no clipping
    srgb = patches.repeat_interleave(16, dim=2).repeat_interleave(16, dim=3)
    raw = unprocess(srgb, cameras, pattern)

    red_phase = phase_names(pattern).index('R')
    camera_red = (cameras.rgb_to_camera[:, 0] * srgb_to_linear(patches[:, :, 0, 0].numpy())).sum(axis=1)
    row, column = divmod(red_phase, 2)
    np.testing.assert_allclose(raw[:, 0, row, column].numpy(), camera_red / cameras.red_gain, rtol=1e-12)

    back = process(raw, cameras, pattern)
    away_from_edges = torch.ones(32, dtype=torch.bool)
    away_from_edges[[0, 1, 14, 15, 16, 17, 30, 31]] = False  # bilinear demosaicing mixes across patches
    error = (back - srgb)[:, :, away_from_edges][:, :, :, away_from_edges].abs().max().item()
    assert error < 1e-3


@pytest.mark.parametrize('bits, black_level', [(10, 64), (12, 256), (14, 512)])
def test_raw_codes_round_trip_within_half_a_code(bits, black_level):
    white_level = 2**bits - 1
    linear = torch.rand(10000, dtype=torch.float64)
    codes = to_raw_codes(linear, black_level, white_level, bits)
    assert torch.equal(codes, codes.round()) and codes.min() >= black_level and codes.max() <= white_level
    step = 1 / (white_level - black_level)
    assert (from_raw_codes(codes, black_level, white_level) - linear).abs().max().item() <= step / 2 + 1e-12
    saturated = to_raw_codes(torch.tensor([1.5, -0.5]), black_level, white_level, bits)
    assert saturated.tolist() == [white_level, 0]
    with pytest.raises(ValueError, match='white_level <= 2\\*\\*bits - 1'):
        to_raw_codes(linear, black_level, 2**bits, bits)
