"""The pictures people look at: S per kind."""
import cv2
import numpy as np
import pytest
import torch
from basicsr.archs import build_network

from newbp_plugin.pictures import (DIVERGING, GAP, LABEL_HEIGHT, MIN_PANEL_SIDE, colour_bar, s_kind,
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


def test_the_kind_of_s_comes_from_the_network():
    residual = build_network({'type': 'NewBPNAFNet', 'width': 8, 'enc_blk_nums': [1], 'dec_blk_nums': [1],
                              'output': 'residual', 'skip': 'none', 'kernel': {'type': 'crosstalk'}})
    direct = build_network({'type': 'NewBPNAFNet', 'width': 8, 'enc_blk_nums': [1], 'dec_blk_nums': [1],
                            'kernel': {'type': 'crosstalk'}})
    assert s_kind(residual) == 'residual' and s_kind(direct) == 'image'
    with pytest.raises(ValueError, match="kind must be one of image, residual, got 'signed'"):
        s_to_image(torch.zeros(3, 4, 4), 'signed')
