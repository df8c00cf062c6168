"""The reports of ``basicsr benchmark``, written into ``results/<name>/``.

- ``benchmark.md``: the table, one row per (kernel, noise, method), mean metrics and runtime;
- ``benchmark.csv``: every figure, one line per (kernel, noise, method, image) plus the ``mean`` line;
- ``benchmark.json``: the options, the device and every figure (means and per image);
- ``benchmark.png``: one row per degradation, the same crop of one image (``figure: crop``; by default
  where the methods disagree most): clean, then each method's result under its name and PSNR (of the
  image, and of the crop), and the S of methods that return one (NewBP networks) beside it;
- ``benchmark_<metric>.png``: ``figure: metric`` per method and degradation, each image a dot, the
  mean a bar.

Raw benchmarks (``dataset: domain: raw``) say in the table's header what each metric compares (the
raw mosaic, or sRGB after the fixed pipeline), and ``benchmark.png`` is the camera engineer's view:
per degradation the crop of the degraded mosaic in its filters' colours, the demosaiced input, each
method's result and the clean image, processed to sRGB with the image's camera, under each the first
raw metric and the sRGB ones, of the whole image; then the phase kernels of the image's K.
"""
import csv
import itertools
import json
import math
import os.path as osp

import cv2
import numpy as np
import torch
from basicsr.metrics.psnr_ssim import calculate_psnr
from basicsr.utils import imwrite, tensor2img

from newbp_plugin.kernels.bayer import packed_to_phase_kernels
from newbp_plugin.kernels.preview import render_kernel
from newbp_plugin.pictures import (BACKGROUND, LABEL_HEIGHT, TEXT_COLOUR, enlarge, label, put_text, s_to_image,
                                   side_by_side, stacked, text_width, titled)

PLOT_WIDTH = 360  # [px] of the metric axis of benchmark_<metric>.png
ROW_HEIGHT = 16  # [px] per method in benchmark_<metric>.png
MEAN_COLOUR, GRID_COLOUR, RANGE_COLOUR = (0, 165, 255), (70, 70, 70), (140, 140, 140)  # BGR


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
        figure_rows (list[dict]): per degradation: ``label`` and ``tiles``, a list of ``(title, image
            (1, C, H, W) in [0, 1], S (1, C, H, W) or None, kind of S (:func:`s_to_image`) or None)``,
            the clean image first. Raw: the images are sRGB-processed, the input's after the clean
            one, and the row also has ``raw`` (True), ``mosaic`` ((1, 3, H, W), the degraded mosaic in
            its filters' colours), ``kernel`` (the packed (4, 4, s, s) K), ``cfa`` and ``notes``
            ({title: the figures written under its panel}).
        figure (dict): ``crop_size`` [px], ``crop`` ('auto', 'centre' or [top, left]), ``zoom`` and
            ``metric`` (a key of the metrics, or None: no metric plot).
    """
    columns = metric_names + ['runtime_ms']
    dataset = opt['dataset']
    crop = dataset.get('val_crop_size')
    images = len(rows[0]['images'])
    raw = dataset.get('domain') == 'raw'
    domain = 'linear light' if opt['linear_light'] else 'the encoded values'
    if raw:
        domain = (f"the linear packed raw ({dataset.get('cfa', 'RGGB')}, {dataset.get('raw_bits', 12)}-bit codes, "
                  f"black level {dataset.get('black_level') or 'default'}, white level "
                  f"{dataset.get('white_level') or 'default'}; a camera drawn per image)")
    where = {'raw': ', on the raw mosaic', 'srgb': ', on sRGB'}
    metrics = '; '.join(f"{name}: {spec['type']}, crop_border {spec.get('crop_border', 0)}"
                        f"{', Y' if spec.get('test_y_channel') else ''}"
                        f"{where[spec.get('domain') or 'raw'] if raw else ''}" for name, spec in opt['metrics'].items())
    raw_note = (' The raw mosaic: all four phases, linear, as NewBPModel validates; sRGB: the result and the '
                "clean raw through one fixed pipeline with the image's camera (OpenCV bilinear demosaicing, white "
                'balance, colour matrix, sRGB curve; demosaic_wiener with view: rgb from its own RGB).'
                if raw else '')
    lines = [
        f"# Benchmark: {opt['name']}",
        '',
        f"{images} images of `{dataset['dataroot_gt']}` ({f'centre crop {crop} px' if crop else 'full size'}), "
        f"degradations seeded from {opt['seed']}, K and N in {domain}; "
        f'device: {device}. Metrics (BasicSR, on 8-bit images): {metrics or "none"}.{raw_note} '
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

    imwrite(_figure(figure_rows, figure['crop_size'], figure['crop'], figure['zoom']),
            osp.join(folder, 'benchmark.png'))
    if figure['metric'] is not None:
        imwrite(_metric_plot(rows, figure['metric']), osp.join(folder, f"benchmark_{figure['metric']}.png"))


def _crop_position(tiles, size, crop):
    """(top, left) of the ``size`` window shown: ``crop`` [top, left] or 'centre' (moved inside the image),
    or 'auto': where the methods' results (the tiles after the clean one) differ most, the largest
    window mean of their per-pixel standard deviation."""
    height, width = tiles[0][1].shape[-2:]
    if crop == 'auto':
        spread = torch.stack([image[0].float() for _, image, _, _ in tiles[1:]]).std(0, unbiased=False).mean(0)
        window = (min(size, height), min(size, width))
        pooled = torch.nn.functional.avg_pool2d(spread[None, None], window, stride=1)[0, 0]
        return divmod(int(pooled.argmax()), pooled.shape[1])
    top, left = ((height - size) // 2, (width - size) // 2) if crop == 'centre' else crop
    return min(max(top, 0), max(height - size, 0)), min(max(left, 0), max(width - size, 0))


def _figure(figure_rows, crop_size, crop, zoom):
    """The comparison picture, uint8 BGR: per degradation a label strip, then the labelled tiles side by side."""
    picture_rows = []
    for row in figure_rows:
        if row.get('raw'):
            picture_rows.append(_raw_figure_row(row, crop_size, crop, zoom))
            continue
        tiles = row['tiles']
        top, left = _crop_position(tiles, crop_size, crop)

        def window(image):
            return image[..., top:top + crop_size, left:left + crop_size]

        clean, clean_crop = tensor2img([tiles[0][1]]), tensor2img([window(tiles[0][1])])
        panels = [titled(enlarge(clean_crop, zoom), tiles[0][0], f'crop at ({top}, {left})')]
        for title, image, s, kind in tiles[1:]:
            psnr = calculate_psnr(tensor2img([image]), clean, crop_border=0)
            psnr_crop = calculate_psnr(tensor2img([window(image)]), clean_crop, crop_border=0)
            panels.append(titled(enlarge(tensor2img([window(image)]), zoom), title,
                                 f'PSNR {psnr:.2f} / crop {psnr_crop:.2f}'))
            if s is not None:
                s_crop = window(s)[0].repeat_interleave(zoom, -1).repeat_interleave(zoom, -2)
                panels.append(titled(s_to_image(s_crop, kind), f'{title}: S', ''))
        body = side_by_side(panels)
        picture_rows.append(titled(body, f"{row['label']}: {crop_size} px crop, x{zoom}; PSNR [dB] of the image "
                                         '/ of the crop'))
    return stacked(picture_rows, gap=3 * LABEL_HEIGHT // 2)


def _raw_figure_row(row, crop_size, crop, zoom):
    """One degradation of a raw benchmark's figure (module docstring), uint8 BGR; the crop starts on a CFA cell."""
    tiles = row['tiles']
    top, left = _crop_position(tiles, crop_size, crop)
    top, left = top - top % 2, left - left % 2

    def panel(image):
        return enlarge(tensor2img([image[..., top:top + crop_size, left:left + crop_size]]), zoom)

    panels = [titled(panel(row['mosaic']), 'mosaic input', 'filter colours, WB, sRGB curve')]
    for title, image, s, kind in tiles[1:]:
        panels.append(titled(panel(image), title, row['notes'].get(title, '')))
        if s is not None:
            s_crop = s[..., top:top + crop_size, left:left + crop_size][0]
            panels.append(titled(s_to_image(s_crop.repeat_interleave(zoom, -1).repeat_interleave(zoom, -2), kind),
                                 f'{title}: S', ''))
    panels.append(titled(panel(tiles[0][1]), tiles[0][0], f'crop at ({top}, {left})'))
    phase_kernels = _smallest_phase_kernels(np.asarray(row['kernel'], dtype=np.float64))
    scale = max(1, crop_size * zoom // phase_kernels.shape[-1])
    panels.append(titled(render_kernel(phase_kernels, scale=scale, pattern=row['cfa']), 'K: the phase kernels'))
    return titled(side_by_side(panels), f"{row['label']}: {crop_size} px crop, x{zoom}, {row['cfa']}; processed "
                                        "with the image's camera; figures of the whole image")


def _smallest_phase_kernels(packed):
    """The phase kernels (4, k, k) of a packed kernel (4, 4, s, s), k the smallest odd side holding them all."""
    for size in range(1, 2 * packed.shape[-1] + 2, 2):
        try:
            return packed_to_phase_kernels(packed, size=size)
        except ValueError:
            continue
    return packed_to_phase_kernels(packed)


def _metric_plot(rows, metric):
    """Dot plot of ``metric`` per method (a line) and degradation (a panel): each image a white dot,
    the mean an orange bar and its value; one axis for all panels."""
    values = [figures[metric] for row in rows for figures in list(row['images'].values()) + [row['mean']]]
    values = [value for value in values if math.isfinite(value)] or [0.0]
    step = next(scale * 10 ** power for power in range(-3, 4) for scale in (1, 2, 5)
                if (max(values) - min(values)) / (scale * 10 ** power) <= 6)
    lo, hi = math.floor(min(values) / step) * step, math.ceil(max(values) / step) * step
    hi = hi if hi > lo else lo + step
    decimals = max(0, -math.floor(math.log10(step)))
    name_width = max(text_width(row['method']) for row in rows) + 8
    value_width = max(text_width(f"{row['mean'][metric]:.{decimals + 2}f}") for row in rows) + 8
    width = name_width + PLOT_WIDTH + value_width
    ticks = np.arange(lo, hi + step / 2, step)

    def x(value):
        return name_width + int(round((min(max(value, lo), hi) - lo) / (hi - lo) * (PLOT_WIDTH - 1)))

    panels = []
    for (kernel, noise), group in itertools.groupby(rows, key=lambda row: (row['kernel'], row['noise'])):
        group = list(group)
        panel = np.full((ROW_HEIGHT * len(group), width, 3), BACKGROUND, np.uint8)
        for tick in ticks:
            cv2.line(panel, (x(tick), 0), (x(tick), panel.shape[0] - 1), GRID_COLOUR, 1)
        for index, row in enumerate(group):
            middle = index * ROW_HEIGHT + ROW_HEIGHT // 2
            put_text(panel, row['method'], 2, middle + 4)
            points = [figures[metric] for figures in row['images'].values() if math.isfinite(figures[metric])]
            if points:
                cv2.line(panel, (x(min(points)), middle), (x(max(points)), middle), RANGE_COLOUR, 1)
            mean = row['mean'][metric]
            if math.isfinite(mean):
                cv2.line(panel, (x(mean), middle - 6), (x(mean), middle + 6), MEAN_COLOUR, 2)
            for point in points:
                cv2.circle(panel, (x(point), middle), 2, TEXT_COLOUR, -1, cv2.LINE_AA)
            put_text(panel, f'{mean:.{decimals + 2}f}', name_width + PLOT_WIDTH + 6, middle + 4, MEAN_COLOUR)
        panels.append(titled(panel, f'{kernel} / {noise}'))
    axis = np.full((LABEL_HEIGHT, width, 3), BACKGROUND, np.uint8)
    for tick in ticks:
        text = f'{tick:.{decimals}f}'
        put_text(axis, text, min(x(tick) - text_width(text) // 2, width - text_width(text)), LABEL_HEIGHT - 3)
    header = label(width, f'{metric}: each image a dot, the mean a bar (value on the right)')
    return np.pad(stacked([header] + panels + [axis]), ((4, 4), (4, 4), (0, 0)), constant_values=BACKGROUND)
