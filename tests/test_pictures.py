"""The pictures people look at: S per kind, kernels (values, offsets, colour bar, grid), benchmark figures."""
import cv2
import numpy as np
import pytest
import torch
from basicsr.archs import build_network

from newbp_plugin.benchmark.report import MEAN_COLOUR, _crop_position, _metric_plot
from newbp_plugin.kernels import build_kernel
from newbp_plugin.kernels.preview import COLUMN_COLOUR, ROW_COLOUR, format_kernel, render_kernel_png
from newbp_plugin.pictures import (BACKGROUND, DIVERGING, GAP, LABEL_HEIGHT, MIN_PANEL_SIDE, colour_bar, s_kind,
                                   s_to_image)


def is_blue(pixel):
    return pixel[0] > pixel[2] + 60


def is_red(pixel):
    return pixel[2] > pixel[0] + 60


def is_white(pixel):
    return (pixel > 230).all()


def has_text(strip):
    """Whether a label strip carries white text."""
    return int((strip > 200).all(axis=2).sum()) > 5


def test_residual_s_is_a_signed_map_with_a_symmetric_colour_bar():
    s = torch.zeros(3, 8, 8)
    s[:, 0, 0], s[:, 7, 7] = -0.2, 0.4
    picture = s_to_image(s, 'residual')
    zoom = MIN_PANEL_SIDE // 8  # small maps are enlarged
    bar = colour_bar(8 * zoom, -0.4, 0.4, DIVERGING)
    assert picture.shape == (3 * LABEL_HEIGHT + 8 * zoom, 8 * zoom + GAP + bar.shape[1], 3)
    assert all(has_text(picture[row * LABEL_HEIGHT:(row + 1) * LABEL_HEIGHT]) for row in range(3))
    body = picture[3 * LABEL_HEIGHT:]
    assert is_blue(body[zoom // 2, zoom // 2]) and is_red(body[-1, 8 * zoom - 1]) and is_white(body[4 * zoom, 4 * zoom])
    np.testing.assert_array_equal(body[:, 8 * zoom + GAP:], bar)  # the colour bar at +-0.4 (max |R|)
    assert is_red(bar[0, 0]) and is_blue(bar[-1, 0]) and has_text(bar[:, 11:])


def test_image_s_shows_the_image_and_what_lies_outside_with_a_colour_bar():
    s = torch.full((3, 8, 8), 0.5)
    s[:, 0, 0], s[:, 7, 7] = -0.4, 1.4
    picture = s_to_image(s, 'image')
    zoom = MIN_PANEL_SIDE // 8
    body = picture[3 * LABEL_HEIGHT:]
    assert body.shape[0] == 8 * zoom and all(has_text(picture[:LABEL_HEIGHT, x:x + 80]) for x in (0, 8 * zoom + GAP))
    visible = body[:, :8 * zoom]  # S clipped to [0, 1], as an image
    assert (visible[0, 0] == 0).all() and (visible[-1, -1] == 255).all() and (visible[4 * zoom, 4 * zoom] == 128).all()
    start = max(8 * zoom, 4 + max(cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.35, 1)[0][0]
                                  for text in ('S clipped to [0, 1]', 'min -0.4', 'max 1.4'))) + GAP
    outside = body[:, start:]  # blue below 0, red above 1, white inside, then its colour bar
    assert is_blue(outside[0, 0]) and is_red(outside[-1, 8 * zoom - 1]) and is_white(outside[4 * zoom, 4 * zoom])
    assert is_red(outside[0, 8 * zoom + GAP]) and is_blue(outside[-1, 8 * zoom + GAP])


@pytest.mark.parametrize('kind', ['image', 'residual'])
def test_raw_s_of_packed_planes_is_drawn_as_its_grey_mosaic(kind):
    """A raw network's S, (4, h, w) packed Bayer planes, is drawn as its (1, 2h, 2w) CFA mosaic, each phase's value
    at its photodiode: the picture's maps are those of the unpacked S."""
    from newbp_plugin.sensor.mosaic import unpack
    phases = torch.tensor([0.1, 0.4, 0.6, 0.9]) - (0.5 if kind == 'residual' else 0.0)
    s = phases[:, None, None].expand(4, 8, 8).clone()
    picture, mosaic_picture = s_to_image(s, kind), s_to_image(unpack(s[None])[0], kind)
    zoom = MIN_PANEL_SIDE // 16  # the mosaic is 16x16 px
    body, mosaic_body = picture[3 * LABEL_HEIGHT:], mosaic_picture[3 * LABEL_HEIGHT:]
    assert body.shape[0] == 16 * zoom
    np.testing.assert_array_equal(body[:, :16 * zoom], mosaic_body[:, :16 * zoom])
    if kind == 'image':  # grey, the phases of a 2x2 cell in raster order
        cell = body[:2 * zoom:zoom, :2 * zoom:zoom].reshape(4, 3)
        np.testing.assert_array_equal(cell, np.round(255 * phases.numpy())[:, None].repeat(3, 1))


def test_the_kind_of_s_comes_from_the_network():
    residual = build_network({'type': 'NewBPNAFNet', 'width': 8, 'enc_blk_nums': [1], 'dec_blk_nums': [1],
                              'output': 'residual', 'skip': 'none', 'kernel': {'type': 'crosstalk'}})
    direct = build_network({'type': 'NewBPNAFNet', 'width': 8, 'enc_blk_nums': [1], 'dec_blk_nums': [1],
                            'kernel': {'type': 'crosstalk'}})
    assert s_kind(residual) == 'residual' and s_kind(direct) == 'image'
    with pytest.raises(ValueError, match="kind must be one of image, residual, got 'signed'"):
        s_to_image(torch.zeros(3, 4, 4), 'signed')


def big_blocks(picture, colour_test, min_area):
    """[(left, top, width, height)] of the connected regions of pixels passing ``colour_test``, largest area."""
    mask = colour_test(picture.astype(int)).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    return sorted(tuple(stats[i, :4]) for i in range(1, count) if stats[i, 4] >= min_area)


def viridis_top(image):  # the peak of a kernel: viridis yellow
    return (image[..., 2] > 200) & (image[..., 1] > 200) & (image[..., 0] < 100)


def test_kernel_picture_shows_values_offsets_legend_and_a_colour_bar(tmp_path):
    scale = 48
    kernel = build_kernel({'type': 'crosstalk', 'left': 0.05})
    picture = render_kernel_png(kernel, tmp_path / 'k.png', scale)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / 'k.png')), picture)
    (left, top, width, height), = big_blocks(picture, viridis_top, scale * scale // 2)  # the centre cell
    assert (width, height) == (scale, scale)
    cell = picture[top:top + scale, left:left + scale]
    assert int((cell < 60).all(axis=2).sum()) > 20  # its value, written in black
    half = kernel.shape[-1] // 2
    plane_top, plane_left, plane_right = top - half * scale, left - half * scale, left + (half + 1) * scale
    assert has_text(picture[plane_top - LABEL_HEIGHT:plane_top, plane_left:plane_right])  # title and sum
    assert int((picture[top:top + scale, :plane_left] > 100).all(axis=2).sum()) > 5  # its y offset on the left
    columns = [len(np.unique(picture[:, x].reshape(-1, 3), axis=0)) for x in range(picture.shape[1])]
    assert max(columns[plane_right:]) > 100 and max(columns[:plane_right]) < 100  # the colour bar, right
    legend = picture[:2 * LABEL_HEIGHT + 4]
    for colour in (ROW_COLOUR, COLUMN_COLOUR):  # the profiles' legend, in their colours
        assert (np.abs(legend.astype(int) - colour) < 40).all(axis=2).sum() > 5


@pytest.mark.parametrize('spec, rows, columns', [
    ({'type': 'per_channel', 'kernels': [{'type': 'gaussian', 'sigma': 0.5}] * 3}, 1, 3),
    ({'type': 'cross_channel', 'mix': np.eye(3).tolist(), 'kernel': {'type': 'gaussian', 'sigma': 0.5}}, 3, 3),
])
def test_kernel_picture_lays_out_the_planes_as_a_grid(tmp_path, spec, rows, columns):
    scale = 40
    picture = render_kernel_png(build_kernel(spec), tmp_path / 'k.png', scale)
    peaks = big_blocks(picture, viridis_top, scale * scale // 2)  # the peaks: one per R, G, B plane
    assert len(peaks) == 3
    assert len({top for _, top, _, _ in peaks}) == rows and len({left for left, _, _, _ in peaks}) == columns
    assert picture.shape[1] > columns * 3 * scale and picture.shape[0] > rows * 3 * scale


def test_format_kernel_prints_values_offsets_and_sums():
    text = format_kernel(build_kernel({'type': 'crosstalk', 'size': 3, 'left': 0.05}), decimals=3)
    lines = text.splitlines()
    assert lines[0] == 'kernel: sum 1.000' and lines[1].split() == ['-1', '0', '+1']
    assert [line.split()[0] for line in lines[2:]] == ['-1', '0', '+1'] and len(lines) == 5
    mixing = format_kernel(build_kernel({'type': 'cross_channel', 'mix': [[0.9, 0.1, 0], [0, 1, 0], [0, 0, 1]]}))
    assert 'out R <- in G: sum 0.1000' in mixing and 'out R: sum over inputs 1.0000' in mixing
    assert mixing.splitlines()[2] == '   0  0.9000'


def test_format_kernel_names_the_phases_of_packed_raw():
    packed = build_kernel({'type': 'bayer_crosstalk', 'pattern': 'RGGB'})
    assert 'out B <- in Gb: sum' in format_kernel(packed, pattern='BGGR')
    assert 'out TL <- in BR: sum' in format_kernel(packed)  # no pattern: the places in the 2x2 cell


def test_auto_crop_goes_where_the_methods_disagree():
    clean = torch.zeros(1, 3, 40, 50)
    other = clean.clone()
    other[..., 20:30, 31:41] = 1.0
    tiles = [('clean', clean, None, None), ('a', clean, None, None), ('b', other, None, None)]
    assert _crop_position(tiles, 10, 'auto') == (20, 31)
    assert _crop_position(tiles, 10, 'centre') == (15, 20)
    assert _crop_position(tiles, 10, [35, 2]) == (30, 2)  # moved inside the image


def test_metric_plot_has_a_panel_per_degradation_and_a_bar_per_method():
    rows = [{'kernel': kernel, 'noise': 'n', 'method': method,
             'images': {'a': {'psnr': base + 1}, 'b': {'psnr': base + 3}}, 'mean': {'psnr': base + 2}}
            for kernel in ('k1', 'k2') for method, base in (('input', 25.0), ('wiener', 28.0), ('net', 31.0))]
    picture = _metric_plot(rows, 'psnr')
    bars = [block for block in big_blocks(picture, lambda p: (p == MEAN_COLOUR).all(axis=2), 10) if block[3] > 10]
    assert len(bars) == 6
    lefts = sorted({left for left, _, _, _ in bars})
    assert len(lefts) == 3 and lefts[0] < lefts[1] < lefts[2]  # the means, in order, on one axis
    assert picture.shape[0] == 8 + 4 * LABEL_HEIGHT + 3 * GAP + 6 * 16  # header, 2 titled panels, axis
    dots = big_blocks(picture, lambda p: (p == 255).all(axis=2), 5)
    assert len(dots) >= 12  # one per image and method
    assert (picture[4:4 + LABEL_HEIGHT] != BACKGROUND).any()
