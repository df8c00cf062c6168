"""The reports of ``basicsr benchmark``, written into ``results/<name>/``.

- ``benchmark.md``: the table, one row per (kernel, noise, method), mean metrics and runtime;
- ``benchmark.csv``: every figure, one line per (kernel, noise, method, image) plus the ``mean`` line;
- ``benchmark.json``: the options, the device and every figure (means and per image);
- ``benchmark.png``: one row per degradation, the same centred crop of one image: clean, then each
  method's result, and the S of methods that return one (NewBP networks) beside it.
"""
import csv
import json
import os.path as osp

import cv2
import numpy as np
from basicsr.utils import imwrite, tensor2img

from newbp_plugin.pictures import s_to_image

LABEL_HEIGHT = 14  # [px] of the text strip above every tile and row
GAP = 4  # [px] between tiles
BACKGROUND = 40  # grey level of the canvas
FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_SCALE = 0.35


def _format(value):
    """PSNR-like figures with 2 decimals, SSIM-like ones (|v| < 1) with 4."""
    return f'{value:.4f}' if abs(value) < 1 else f'{value:.2f}'


def write_reports(folder, opt, device, metric_names, rows, figure_rows, figure):
    """Write benchmark.md, .csv, .json and .png into ``folder`` (which exists).

    Args:
        folder (str): ``results/<name>``.
        opt (dict): the benchmark's options (with defaults), saved in the JSON.
        device (str): where it ran.
        metric_names (list[str]): the keys of ``opt['metrics']``, in order.
        rows (list[dict]): per (kernel, noise, method): ``kernel``, ``noise``, ``method``,
            ``mean`` ({metric: value, 'runtime_ms': value}) and ``images`` ({name: same}).
        figure_rows (list[dict]): per degradation: ``label`` and ``tiles``, a list of
            ``(title, image (1, C, H, W) in [0, 1], S (1, C, H, W) or None)``.
        figure (dict): ``crop_size`` [px] and ``zoom``.
    """
    columns = metric_names + ['runtime_ms']
    dataset = opt['dataset']
    crop = dataset.get('val_crop_size')
    images = len(rows[0]['images'])
    domain = 'linear light' if opt['linear_light'] else 'the encoded values'
    metrics = '; '.join(f"{name}: {spec['type']}, crop_border {spec.get('crop_border', 0)}"
                        f"{', Y' if spec.get('test_y_channel') else ''}" for name, spec in opt['metrics'].items())
    lines = [
        f"# Benchmark: {opt['name']}",
        '',
        f"{images} images of `{dataset['dataroot_gt']}` ({f'centre crop {crop} px' if crop else 'full size'}), "
        f"degradations seeded from {opt['seed']}, K and N in {domain}; "
        f'device: {device}. Metrics (BasicSR, on 8-bit images): {metrics or "none"}. '
        'runtime_ms: mean wall time of one image [ms].',
        '',
        '| kernel | noise | method | ' + ' | '.join(columns) + ' |',
        '|---|---|---|' + '---:|' * len(columns),
    ]
    lines += [f"| {row['kernel']} | {row['noise']} | {row['method']} | " +
              ' | '.join(_format(row['mean'][key]) for key in columns) + ' |' for row in rows]
    with open(osp.join(folder, 'benchmark.md'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')

    with open(osp.join(folder, 'benchmark.csv'), 'w', encoding='utf-8', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['kernel', 'noise', 'method', 'image'] + columns)
        for row in rows:
            for image, figures in list(row['images'].items()) + [('mean', row['mean'])]:
                writer.writerow([row['kernel'], row['noise'], row['method'], image] + [figures[k] for k in columns])

    with open(osp.join(folder, 'benchmark.json'), 'w', encoding='utf-8') as f:
        json.dump({'name': opt['name'], 'device': device, 'options': opt, 'columns': columns, 'rows': rows}, f,
                  indent=2, default=str)

    imwrite(_figure(figure_rows, figure['crop_size'], figure['zoom']), osp.join(folder, 'benchmark.png'))


def _label(width, text):
    """(LABEL_HEIGHT, width, 3) uint8 strip with ``text``, cut to fit."""
    strip = np.full((LABEL_HEIGHT, width, 3), BACKGROUND, np.uint8)
    while text and cv2.getTextSize(text, FONT, FONT_SCALE, 1)[0][0] > width - 4:
        text = text[:-1]
    cv2.putText(strip, text, (2, LABEL_HEIGHT - 4), FONT, FONT_SCALE, (255, 255, 255), 1, cv2.LINE_AA)
    return strip


def _crop(image, size):
    """Centred ``size`` x ``size`` window of a (1, C, H, W) tensor (the whole image when smaller)."""
    height, width = image.shape[-2:]
    top, left = max((height - size) // 2, 0), max((width - size) // 2, 0)
    return image[..., top:top + size, left:left + size]


def _figure(figure_rows, crop_size, zoom):
    """The comparison picture, uint8 BGR: per row a label strip, then labelled tiles side by side."""
    picture_rows = []
    for row in figure_rows:
        tiles = []
        for title, image, s in row['tiles']:
            tiles.append((title, tensor2img([_crop(image, crop_size)])))
            if s is not None:
                tiles.append((f'{title} S', s_to_image(_crop(s, crop_size)[0])))
        tiles = [(title, np.repeat(np.repeat(tile, zoom, axis=0), zoom, axis=1)) for title, tile in tiles]
        height = max(tile.shape[0] for _, tile in tiles)
        parts = []
        for title, tile in tiles:
            tile = np.pad(tile, ((0, height - tile.shape[0]), (0, 0), (0, 0)), constant_values=BACKGROUND)
            parts += [np.concatenate([_label(tile.shape[1], title), tile]),
                      np.full((height + LABEL_HEIGHT, GAP, 3), BACKGROUND, np.uint8)]
        body = np.concatenate(parts[:-1], axis=1)
        picture_rows.append(np.concatenate([_label(body.shape[1], row['label']), body]))
    width = max(part.shape[1] for part in picture_rows)
    padded = [np.pad(part, ((0, GAP), (0, width - part.shape[1]), (0, 0)), constant_values=BACKGROUND)
              for part in picture_rows]
    return np.concatenate(padded)
