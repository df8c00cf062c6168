"""calculate_delta_e2000 (METRIC_REGISTRY) against values computed without it."""
import numpy as np
import pytest
from basicsr.metrics import calculate_metric
from skimage.color import deltaE_ciede2000, rgb2lab

import newbp_plugin  # noqa: F401  (registers the metric)
from newbp_plugin.metrics import calculate_delta_e2000


def grey_lightness(code):
    """CIE L* of an 8-bit sRGB grey, by the formulas (sRGB decoding, Y, L* = 116 f(Y) - 16)."""
    value = code / 255
    luminance = value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055)**2.4
    f = luminance**(1 / 3) if luminance > (6 / 29)**3 else luminance / (3 * (6 / 29)**2) + 4 / 29
    return 116 * f - 16


def test_greys_give_the_lightness_term_of_ciede2000():
    """Neutral colours have a* = b* = 0: ΔE00 = |ΔL*| / S_L, S_L = 1 + 0.015 (L̄ - 50)² / sqrt(20 + (L̄ - 50)²)."""
    first, second = np.full((2, 3, 3), 100, np.uint8), np.full((2, 3, 3), 100, np.uint8)
    second[0] = 130  # half the pixels lighter by 30 codes
    l1, l2 = grey_lightness(100), grey_lightness(130)
    mean = (l1 + l2) / 2
    s_l = 1 + 0.015 * (mean - 50)**2 / np.sqrt(20 + (mean - 50)**2)
    expected = abs(l2 - l1) / s_l / 2  # the mean over the pixels; the others do not differ
    assert calculate_delta_e2000(first, second) == pytest.approx(expected, rel=2e-3)
    assert calculate_delta_e2000(first, first) == 0


def test_colours_are_read_in_bgr_order_as_basicsr_metrics_and_float_scales():
    """A hand-made shift of one channel of a tiny image: the value skimage gives on the RGB view of it."""
    rng = np.random.default_rng(0)
    bgr = rng.integers(30, 220, (4, 5, 3)).astype(np.uint8)
    shifted = bgr.copy()
    shifted[..., 0] += 25  # blue, in OpenCV's order
    expected = deltaE_ciede2000(rgb2lab(bgr[..., ::-1] / 255), rgb2lab(shifted[..., ::-1] / 255)).mean()
    swapped = deltaE_ciede2000(rgb2lab(bgr / 255), rgb2lab(shifted / 255)).mean()  # red shifted instead
    assert abs(expected - swapped) > 0.5
    assert calculate_delta_e2000(bgr, shifted) == pytest.approx(expected, rel=1e-9)
    assert calculate_delta_e2000(bgr / 255., shifted / 255., max_value=1) == pytest.approx(expected, rel=1e-9)
    assert calculate_delta_e2000(bgr.transpose(2, 0, 1), shifted.transpose(2, 0, 1), input_order='CHW') == \
        pytest.approx(expected, rel=1e-9)
    # BasicSR's metric machinery finds it by name; crop_border leaves the border out
    data = {'img': bgr, 'img2': shifted}
    cropped = deltaE_ciede2000(rgb2lab(bgr[1:-1, 1:-1, ::-1] / 255), rgb2lab(shifted[1:-1, 1:-1, ::-1] / 255)).mean()
    assert calculate_metric(data, {'type': 'calculate_delta_e2000', 'crop_border': 1}) == pytest.approx(cropped)


def test_sharma_reference_pair_of_the_ciede2000_formula():
    """The CIEDE2000 implementation used (skimage) on a pair of Sharma, Wu & Dalal (2005), table 1: 2.0425."""
    assert deltaE_ciede2000(np.array([50.0, 2.6772, -79.7751]), np.array([50.0, 0.0, -82.7485])) == \
        pytest.approx(2.0425, abs=1e-4)


def test_grey_images_are_an_error():
    with pytest.raises(ValueError, match='3 channels'):
        calculate_delta_e2000(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))
