"""kernels.bayer.rgb_equivalent_kernel against the mosaic model itself: crosstalk on the mosaic, then OpenCV."""
import numpy as np
import pytest
import torch

from newbp_plugin.kernels.bayer import CFA_PATTERNS, bayer_crosstalk, packed_to_phase_kernels, rgb_equivalent_kernel
from newbp_plugin.ops import crosstalk
from newbp_plugin.sensor.mosaic import PHASE_OFFSETS, demosaic, mosaic, mosaic_crosstalk, phase_channels

SIZE = 24


def ramp_image():
    """(1, 3, SIZE, SIZE) RGB, each colour linear in the position (its own slopes), inside (0, 1)."""
    y, x = torch.meshgrid(torch.arange(SIZE, dtype=torch.float64), torch.arange(SIZE, dtype=torch.float64),
                          indexing='ij')
    planes = [0.30 + 0.011 * y - 0.004 * x, 0.45 - 0.006 * y + 0.009 * x, 0.25 + 0.003 * y + 0.012 * x]
    return torch.stack(planes)[None]


@pytest.mark.parametrize('pattern', sorted(CFA_PATTERNS))
def test_mosaic_crosstalk_then_demosaic_is_the_rgb_kernel_on_a_linear_image(pattern):
    """Bilinear demosaicing is exact on images linear in the position: red and blue, and green at the red and
    blue sites (the mean of two Gr and two Gb neighbours), are the RGB kernel applied to the RGB image. Random,
    asymmetric phase kernels: each (output, input) colour pair's sum and first moments are tested."""
    rng = np.random.default_rng(7)
    phase_kernels = torch.from_numpy(rng.uniform(0, 1, (4, 3, 3)) * np.array([1, 0.3, 0.6, 0.2])[:, None, None])
    phase_kernels /= phase_kernels.sum((-2, -1), keepdim=True)
    rgb = ramp_image()
    observed = demosaic(mosaic_crosstalk(mosaic(rgb, pattern), phase_kernels), pattern)
    expected = crosstalk(rgb, rgb_equivalent_kernel(phase_kernels, pattern)[None])
    inside = (..., slice(2, -2), slice(2, -2))  # away from the borders (zero padding, OpenCV's border)
    channels = phase_channels(pattern)
    green_interpolated = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    for phase, (row, column) in enumerate(PHASE_OFFSETS):
        green_interpolated[row::2, column::2] = channels[phase] != 1
    for colour in (0, 2):
        torch.testing.assert_close(observed[0, colour][inside], expected[0, colour][inside], atol=1e-4, rtol=0)
    green = green_interpolated[inside]
    torch.testing.assert_close(observed[0, 1][inside][green], expected[0, 1][inside][green], atol=1e-4, rtol=0)


def test_rgb_kernel_of_bayer_crosstalk_keeps_each_colour_and_types():
    packed = bayer_crosstalk(r={'left': 0.05}, gr_gb_imbalance=0.2)
    phase_kernels = packed_to_phase_kernels(packed, size=3)
    rgb = rgb_equivalent_kernel(phase_kernels, 'RGGB')
    assert rgb.shape == (3, 3, 3, 3) and isinstance(rgb, np.ndarray)
    np.testing.assert_allclose(rgb.sum((1, 2, 3)), 1, atol=1e-12)
    # red's own colour only at even offsets (its red neighbours are 2 px away; none in a 3x3 kernel but itself)
    assert rgb[0, 0, 1, 1] == phase_kernels[0, 1, 1] and rgb[0, 0].sum() == phase_kernels[0, 1, 1]
    # red receives from its left neighbour (green), entry at (0, +1)
    assert rgb[0, 1, 1, 2] == pytest.approx(0.05)
    # green: the mean of Gr and Gb
    np.testing.assert_allclose(rgb[1, 1, 1, 1], (phase_kernels[1, 1, 1] + phase_kernels[2, 1, 1]) / 2)
    as_tensor = rgb_equivalent_kernel(torch.from_numpy(phase_kernels).float(), 'RGGB')
    assert as_tensor.dtype == torch.float32
    np.testing.assert_allclose(as_tensor.numpy(), rgb, atol=1e-7)
    with pytest.raises(ValueError, match=r'\(4, k, k\)'):
        rgb_equivalent_kernel(phase_kernels[:3], 'RGGB')
