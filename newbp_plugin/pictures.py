"""Pictures for people to look at (OpenCV and numpy, no BasicSR): labels, colour maps, colour bars, S.

Every picture is uint8 BGR (H, W, 3), as OpenCV writes it. Sizes are in screen pixels.
"""
import math

import cv2
import numpy as np

from newbp_plugin.sensor.mosaic import unpack

FONT, FONT_SCALE = cv2.FONT_HERSHEY_SIMPLEX, 0.35
LABEL_HEIGHT = 14  # one line of text
GAP = 4  # between panels
BACKGROUND, TEXT_COLOUR = 40, (255, 255, 255)  # dark grey canvas, white text
BAR_WIDTH = 10  # the colour strip of a colour bar
MIN_PANEL_SIDE = 64  # smaller maps are enlarged (nearest) so that their colour bar can carry labels
S_KINDS = ('image', 'residual')
PACKED_RAW_CHANNELS = 4  # an S of this many channels is the packed Bayer planes of a raw network


def _diverging_lut():
    """(256, 1, 3) uint8 BGR blue - white - red map (ColorBrewer RdBu), for cv2.applyColorMap."""
    anchors_rgb = np.array([(33, 102, 172), (146, 197, 222), (247, 247, 247), (244, 165, 130), (178, 24, 43)])
    position = np.linspace(0, 1, len(anchors_rgb))
    lut = [np.interp(np.linspace(0, 1, 256), position, anchors_rgb[:, c]) for c in (2, 1, 0)]
    return np.round(np.stack(lut, axis=1)).astype(np.uint8)[:, None]


DIVERGING = _diverging_lut()  # blue below the centre, white at it, red above
VIRIDIS = cv2.COLORMAP_VIRIDIS


def text_width(text):
    """Width [px] of ``text`` in the pictures' font."""
    return cv2.getTextSize(text, FONT, FONT_SCALE, 1)[0][0]


def put_text(image, text, left, baseline, colour=TEXT_COLOUR):
    """Draw ``text`` into ``image`` (in place) with its baseline at row ``baseline``."""
    cv2.putText(image, text, (int(left), int(baseline)), FONT, FONT_SCALE, colour, 1, cv2.LINE_AA)


def label(width, text, height=LABEL_HEIGHT):
    """(height, width, 3) strip with ``text`` on the left, cut to fit."""
    strip = np.full((height, width, 3), BACKGROUND, np.uint8)
    while text and text_width(text) > width - 4:
        text = text[:-1]
    put_text(strip, text, 2, height - 4)
    return strip


def titled(panel, *lines):
    """``panel`` under one label strip per line of text, widened (background on the right) to fit them."""
    width = max([panel.shape[1]] + [text_width(line) + 4 for line in lines])
    panel = np.pad(panel, ((0, 0), (0, width - panel.shape[1]), (0, 0)), constant_values=BACKGROUND)
    return np.concatenate([label(width, line) for line in lines] + [panel])


def side_by_side(panels, gap=GAP):
    """Panels left to right, tops aligned, ``gap`` px apart, padded with the background."""
    height = max(panel.shape[0] for panel in panels)
    parts = []
    for panel in panels:
        parts += [np.pad(panel, ((0, height - panel.shape[0]), (0, 0), (0, 0)), constant_values=BACKGROUND),
                  np.full((height, gap, 3), BACKGROUND, np.uint8)]
    return np.concatenate(parts[:-1], axis=1)


def stacked(panels, gap=GAP):
    """Panels top to bottom, left edges aligned, ``gap`` px apart, padded with the background."""
    width = max(panel.shape[1] for panel in panels)
    parts = []
    for panel in panels:
        parts += [np.pad(panel, ((0, 0), (0, width - panel.shape[1]), (0, 0)), constant_values=BACKGROUND),
                  np.full((gap, width, 3), BACKGROUND, np.uint8)]
    return np.concatenate(parts[:-1])


def enlarge(image, zoom):
    """``image`` (H, W, ...) magnified ``zoom`` times, nearest neighbour."""
    return np.repeat(np.repeat(image, zoom, axis=0), zoom, axis=1)


def colourise(values, lo, hi, colour_map=VIRIDIS):
    """(H, W, 3) colours of ``values`` (H, W) on the scale [lo, hi] (clipped) of an OpenCV colour map."""
    levels = np.round(255 * np.clip((np.asarray(values, np.float64) - lo) / (hi - lo), 0, 1)).astype(np.uint8)
    return cv2.applyColorMap(levels, colour_map)


def colour_bar(height, lo, hi, colour_map=VIRIDIS, ticks=None):
    """Vertical colour bar, ``hi`` at the top, with its values written beside it.

    Args:
        height (int): [px], the height of the map it explains (at least 2 lines of text).
        lo, hi (float): the ends of the scale.
        colour_map: an OpenCV colour map (constant or (256, 1, 3) table).
        ticks (list[tuple[float, str]] | None): (value, text) to write; default: lo, hi and 0
            when it lies between them, as ``%.3g``.

    Returns:
        np.ndarray: (height, BAR_WIDTH + 4 + widest text + 2, 3).
    """
    ticks = ticks or [(value, f'{value:.3g}') for value in ((lo, 0.0, hi) if lo < 0 < hi else (lo, hi))]
    bar = colourise(np.linspace(hi, lo, height)[:, None], lo, hi, colour_map)
    picture = np.full((height, BAR_WIDTH + 6 + max(text_width(text) for _, text in ticks), 3), BACKGROUND, np.uint8)
    picture[:, :BAR_WIDTH] = np.repeat(bar, BAR_WIDTH, axis=1)
    taken = []  # rows of the labels written, so that none overlaps another
    for value, text in sorted(ticks, key=lambda tick: tick[0] not in (lo, hi)):  # the ends first
        row = (height - 1) * (hi - value) / (hi - lo)
        baseline = int(np.clip(row + 4, 9, height - 1))
        if all(abs(baseline - other) >= 11 for other in taken):
            picture[int(round(row)), BAR_WIDTH:BAR_WIDTH + 3] = TEXT_COLOUR
            put_text(picture, text, BAR_WIDTH + 4, baseline)
            taken.append(baseline)
    return picture


def with_colour_bar(values, lo, hi, colour_map=VIRIDIS, ticks=None):
    """The colour-mapped ``values`` (H, W) and their colour bar beside it."""
    panel = colourise(values, lo, hi, colour_map)
    return side_by_side([panel, colour_bar(panel.shape[0], lo, hi, colour_map, ticks)])


def s_kind(net):
    """What a NewBP network's S is: 'residual' (``output: residual``, S = R, signed around 0), else 'image'."""
    return 'residual' if getattr(net, 'output', None) == 'residual' else 'image'


def s_to_image(s, kind='image'):
    """Viewable picture of a network's S (C, H, W), C in {1, 3, 4}, with titles and colour bars.

    - ``kind='residual'`` (S = R of ``Ŷ = X + K * R``, signed): the mean over channels in a
      diverging map centred on 0 (blue < 0, white = 0, red > 0), its colour bar at ± max |R|;
    - ``kind='image'`` (a pre-compensated image): S clipped to [0, 1] as an image, and beside it
      what lies outside [0, 1] (mean over channels), blue below 0 and red above 1, with a colour bar.

    A 4-channel S (a raw network's packed Bayer planes, (4, h, w)) is drawn as its CFA mosaic, (1, 2h, 2w)
    grey (:func:`~newbp_plugin.sensor.mosaic.unpack`): each value at its photodiode, where K acts.
    Maps smaller than MIN_PANEL_SIDE are enlarged by an integer factor (nearest).
    """
    if kind not in S_KINDS:
        raise ValueError(f"kind must be one of {', '.join(S_KINDS)}, got {kind!r}")
    s = s.detach().float().cpu()
    channels = {3: 'mean of RGB', PACKED_RAW_CHANNELS: 'CFA mosaic'}.get(s.shape[0], 'grey')
    s = (unpack(s[None])[0] if s.shape[0] == PACKED_RAW_CHANNELS else s).numpy()
    zoom = math.ceil(MIN_PANEL_SIDE / min(s.shape[1:]))
    s = enlarge(s.transpose(1, 2, 0), zoom)  # (H, W, C)
    low, high = float(s.min()), float(s.max())
    if kind == 'residual':
        mean = s.mean(2)
        limit = max(float(np.abs(mean).max()), 1e-6)
        return titled(with_colour_bar(mean, -limit, limit, DIVERGING), f'residual R, {channels}',
                      f'min {low:.3g}, max {high:.3g}', f'{np.mean(s < 0):.0%} below 0')
    visible = np.clip(s, 0, 1)
    visible = visible[..., ::-1] if s.shape[2] == 3 else np.repeat(visible, 3, axis=2)
    visible = np.round(visible * 255).astype(np.uint8)
    excess = (s - np.clip(s, 0, 1)).mean(2)
    limit = max(float(np.abs(excess).max()), 1e-6)
    ticks = [(-limit, f'{-limit:.3g}'), (0.0, 'in'), (limit, f'1+{limit:.3g}')]
    outside = np.mean((s < 0) | (s > 1))
    return side_by_side([
        titled(visible, 'S clipped to [0, 1]', f'min {low:.3g}', f'max {high:.3g}'),
        titled(with_colour_bar(excess, -limit, limit, DIVERGING, ticks), 'S outside [0, 1]', channels,
               f'{outside:.0%} outside'),
    ])
