"""How well `basicsr calibrate` (sensor.calibration.fit_kernel) recovers a sensor kernel, and what its error costs.

Pairs are synthesised from scikit-image photos (astronaut 512x512, chelsea 300x451, coffee 400x600; none of
them in the test split) with the front door's sensor: its 5x5 crosstalk kernel (and a channel-mixing kernel),
Poisson-Gaussian noise (gain 0.002, read σ 0.003, linear light), clipping and 8 bits. Reported: the fit's
error, max |K_fit - K| over all entries, per scenario; then the classical Wiener deconvolution of the 12
colour test crops (datasets/sample/test_color.lmdb, the front door's degradation, oracle noise variance) given
the fitted K against the true K, mean PSNR [dB].

``--raw``: the same for a Bayer sensor (sensor.calibration.fit_raw_kernel, the packed (4, 4, 3, 3) kernel) on
RGGB and GBRG mosaics. The pair is astronaut unprocessed to linear raw with one drawn camera and degraded as the
raw recipe's items (options/train/*-raw-sample.yml): its ``bayer_crosstalk`` kernel on the packed planes, its
sensor noise (gain 0.002, read σ 0.003 of the white level), 12-bit codes with black 256 and white 4095. Reported
per scenario: max |K_fit - K|, the shift found, each output phase's gain (the fitted kernel's sum before its
normalisation) and its light received from neighbours (1 - own centre), fitted and true; then Wiener on the
packed planes of the 12 colour test crops (the same degradation on that CFA, oracle noise variance) given the
fitted K against the true K, mean PSNR of the mosaic [dB], as ``basicsr benchmark`` on raw. Also a picture of
the fitted kernel's four phase kernels under the true ones (the pair with noise and a shift, RGGB).

    OMP_NUM_THREADS=1 python benchmarks/calibration.py [--out benchmarks/results/calibration.json]
    OMP_NUM_THREADS=1 python benchmarks/calibration.py --raw [--out benchmarks/results/calibration_raw.json]
"""
import argparse
import os.path as osp
import sys
import time

import cv2
import numpy as np
import skimage.data
import torch
from torch.utils.data import default_collate

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import newbp_plugin  # noqa: F401,E402  (BasicSR compatibility fixes first)
from basicsr.metrics.psnr_ssim import calculate_psnr  # noqa: E402
from basicsr.utils import tensor2img  # noqa: E402
from newbp_plugin.benchmark.classical import wiener  # noqa: E402
from newbp_plugin.data.crosstalk_dataset import CrosstalkDataset, degrade_batch  # noqa: E402
from newbp_plugin.kernels import build_kernel  # noqa: E402
from newbp_plugin.kernels.bayer import packed_to_phase_kernels  # noqa: E402
from newbp_plugin.kernels.preview import channel_names, render_kernel  # noqa: E402
from newbp_plugin.pictures import stacked, titled  # noqa: E402
from newbp_plugin.sensor.calibration import fit_kernel, fit_raw_kernel  # noqa: E402
from newbp_plugin.sensor.degradation import degrade, noise_variance  # noqa: E402
from newbp_plugin.sensor.layout import physical_kernel  # noqa: E402
from newbp_plugin.sensor.mosaic import pack, unpack  # noqa: E402
from newbp_plugin.sensor.noise import NoiseModel, add_noise  # noqa: E402
from newbp_plugin.sensor.optics import SensorOptics  # noqa: E402
from newbp_plugin.sensor.unprocess import draw_cameras, unprocess  # noqa: E402

from report import save_json  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
RESULTS = osp.join(ROOT, 'benchmarks', 'results')
FRONT_DOOR_KERNEL = {'type': 'crosstalk', 'size': 5, 'left': 0.06, 'right': 0.06, 'up': 0.05, 'down': 0.05,
                     'diagonal': 0.02, 'second_ring': 0.01}
MIXING_KERNEL = {'type': 'cross_channel', 'mix': [[0.9, 0.07, 0.03], [0.05, 0.9, 0.05], [0.03, 0.07, 0.9]],
                 'kernel': {'type': 'gaussian', 'sigma': 0.8, 'size': 5}}
FRONT_DOOR_NOISE = {'type': 'poisson_gaussian', 'gain': 0.002, 'read_sigma': 0.003, 'quantize': 8}
PHOTOS = ('astronaut', 'chelsea', 'coffee')
OPTICS = SensorOptics(linear_light=True)
# scenario: (photos used, noisy, content shift (dy, dx) [px] of the capture)
SCENARIOS = {
    'noiseless, 1 pair': (1, False, (0, 0)),
    'front-door noise, 1 pair': (1, True, (0, 0)),
    '1-px shift, no noise': (1, False, (1, -1)),
    'noise + 1-px shift': (1, True, (1, -1)),
    'noise, 3 pairs': (3, True, (0, 0)),
    'noise + 1-px shift, 3 pairs': (3, True, (1, -1)),
}
RAW_KERNEL = {'type': 'bayer_crosstalk'}  # the raw recipe's (options/train/*-raw-sample.yml), packed (4, 4, 3, 3)
RAW_NOISE = {'type': 'poisson_gaussian', 'gain': 0.002, 'read_sigma': 0.003}  # its sensor noise, normalised raw
RAW_LEVELS = {'raw_bits': 12, 'black_level': 256, 'white_level': 4095}  # its codes
RAW_PATTERNS = ('RGGB', 'GBRG')
RAW_PHOTO = 'astronaut'
RAW_MARGIN = 2  # packed px left out around the reference: the kernel's ring (1) and the largest shift (1)
# raw scenario: (noisy, content shift (dy, dx) [packed px = 2x2 CFA cells] of the capture)
RAW_SCENARIOS = {
    'no noise (12-bit codes)': (False, (0, 0)),
    'sensor noise': (True, (0, 0)),
    'sensor noise + 1-cell shift': (True, (1, -1)),
}
RAW_FIGURE_SCENARIO = 'sensor noise + 1-cell shift'


def photo(name):
    """(3, H, W) float64 sRGB photo in [0, 1]."""
    return getattr(skimage.data, name)().transpose(2, 0, 1) / 255.0


def sensor_pair(image, kernel, noisy, shift, seed):
    """(reference, capture): the photo without a 1-px margin, and the sensor's view of it moved by ``shift``."""
    height, width = image.shape[1:]
    reference = image[:, 1:height - 1, 1:width - 1]
    moved = image[:, 1 - shift[0]:height - 1 - shift[0], 1 - shift[1]:width - 1 - shift[1]]
    light = OPTICS.blur(OPTICS.to_linear(torch.as_tensor(moved)[None]), physical_kernel(kernel, 3, 'pair').double())
    if noisy:
        light = add_noise(light, torch.full((1, 3), FRONT_DOOR_NOISE['gain']),
                          torch.full((1, 3), FRONT_DOOR_NOISE['read_sigma']), torch.tensor([seed])).clamp(0, 1)
    captured = OPTICS.to_encoded(light)
    return reference, (torch.round(captured * 255) / 255 if noisy else captured)[0].numpy()


def calibrate(kernel, scenario, mixing):
    """The fit of one scenario: (Calibration, seconds)."""
    count, noisy, shift = SCENARIOS[scenario]
    pairs = [sensor_pair(photo(name), kernel, noisy, shift, seed) for seed, name in enumerate(PHOTOS[:count])]
    start = time.perf_counter()
    fit = fit_kernel([reference for reference, _ in pairs], [captured for _, captured in pairs], size=5,
                     mixing=mixing)
    return fit, time.perf_counter() - start


def raw_pair(image, pattern, noisy, shift, seed):
    """(reference, capture), (1, H, W) mosaics of normalised raw: the photo unprocessed on ``pattern`` with a camera
    drawn from ``seed``, without a ``RAW_MARGIN`` cell margin; and the sensor's view of it moved by ``shift``
    [2x2 cells]: the raw recipe's kernel, noise (``noisy``; else none) and codes (:func:`degrade`, as a raw item)."""
    rng = np.random.default_rng(seed)
    even = image[:, :image.shape[1] // 2 * 2, :image.shape[2] // 2 * 2]
    scene = pack(unprocess(torch.as_tensor(even)[None], draw_cameras(rng, 1), pattern))
    height, width = (side - 2 * RAW_MARGIN for side in scene.shape[-2:])
    reference = scene[..., RAW_MARGIN:RAW_MARGIN + height, RAW_MARGIN:RAW_MARGIN + width]
    top, left = RAW_MARGIN - 1 - shift[0], RAW_MARGIN - 1 - shift[1]  # the capture's window with its 1-cell ring
    sensor = dict(NoiseModel(RAW_NOISE if noisy else None, channels=4).draw(rng), linear_light=torch.tensor(False),
                  **{key: torch.tensor(value) for key, value in RAW_LEVELS.items()})
    kernel = physical_kernel({**RAW_KERNEL, 'pattern': pattern}, 4, 'raw_pair').double()
    captured = degrade(scene[..., top:top + height + 2, left:left + width + 2], kernel, default_collate([sensor]), 1)
    return unpack(reference)[0], unpack(captured)[0]


def wiener_psnr(kernels, cfa=None):
    """Mean PSNR [dB] of Wiener on the 12 colour test crops, one per kernel given to it, and of the degraded input:
    the front door's degradation, or with ``cfa`` the raw recipe's on that CFA pattern (Wiener on the packed planes,
    PSNR of the mosaic as ``basicsr benchmark`` on raw)."""
    options = {'dataroot_gt': osp.join(ROOT, 'datasets/sample/test_color.lmdb'), 'phase': 'test',
               'kernel': FRONT_DOOR_KERNEL, 'noise': FRONT_DOOR_NOISE, 'val_seed': 0}
    if cfa is not None:
        options.update(domain='raw', cfa=cfa, kernel=RAW_KERNEL, noise=RAW_NOISE, **RAW_LEVELS)
    dataset = CrosstalkDataset(options)
    batch = default_collate([dataset[index] for index in range(len(dataset))])
    degraded = degrade_batch(batch).double()
    variance = noise_variance(batch['sensor'], degraded)

    def psnr(images):
        """Mean PSNR [dB] of (B, C, h, w) images against the clean ones (raw: as mosaics)."""
        pictures, clean = (images, batch['gt']) if cfa is None else (unpack(images), unpack(batch['gt']))
        return float(np.mean([calculate_psnr(tensor2img([image.float()]), tensor2img([truth]), crop_border=0)
                              for image, truth in zip(pictures, clean)]))

    scores = {name: psnr(wiener(degraded, physical_kernel(kernel, degraded.shape[1], name).double(), variance,
                                linear_light=cfa is None))
              for name, kernel in kernels.items()}
    scores['degraded'] = psnr(degraded)
    return scores


def render_raw_kernels(kernels, pattern, path):
    """Write the phase kernels (4, 7, 7) of each packed kernel {title: (4, 4, 3, 3)}, one above the other, to
    ``path`` (PNG, :func:`render_kernel`)."""
    pictures = [titled(render_kernel(packed_to_phase_kernels(kernel), pattern=pattern), title)
                for title, kernel in kernels.items()]
    if not cv2.imwrite(path, stacked(pictures, gap=12), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f'could not write {path}')
    print(f'saved {path}')


def main_raw(out, figure):
    """Fit the packed kernel on each CFA pattern and scenario, print the tables, save ``out`` and ``figure``."""
    rows, wiener_scores = [], {}
    print('| CFA | scenario | max abs error of K | shift found (dy, dx) [cells] | gain per phase '
          '| received from neighbours per phase: fitted (true) | Wiener PSNR [dB] | vs true K | fit [s] |')
    print('|---|---|---|---|---|---|---|---|---|')
    for pattern in RAW_PATTERNS:
        truth = build_kernel({**RAW_KERNEL, 'pattern': pattern})
        fits, seconds = {}, {}
        for scenario, (noisy, shift) in RAW_SCENARIOS.items():
            reference, captured = raw_pair(photo(RAW_PHOTO), pattern, noisy, shift, seed=0)
            start = time.perf_counter()
            fits[scenario] = fit_raw_kernel([reference], [captured], pattern, size=3)
            seconds[scenario] = time.perf_counter() - start
        scores = wiener_psnr({'true K': truth, **{scenario: fit.kernel for scenario, fit in fits.items()}}, pattern)
        wiener_scores[pattern] = {'true K': scores['true K'], 'degraded': scores['degraded']}
        true_received = 1 - truth[range(4), range(4), 1, 1]
        for scenario, fit in fits.items():
            received = 1 - fit.kernel[range(4), range(4), 1, 1]
            rows.append({'cfa': pattern, 'scenario': scenario, 'true_shift': list(RAW_SCENARIOS[scenario][1]),
                         'max_abs_error': float(np.abs(fit.kernel - truth).max()), 'shifts': fit.shifts,
                         'phase_sums': fit.kernel.sum((1, 2, 3)).tolist(), 'gain': fit.gain.tolist(),
                         'offset': fit.offset.tolist(), 'received': received.tolist(),
                         'true_received': true_received.tolist(), 'residual_rms': fit.residual_rms.tolist(),
                         'wiener_psnr': scores[scenario], 'wiener_vs_true_k': scores[scenario] - scores['true K'],
                         'seconds': seconds[scenario], 'kernel': fit.kernel.tolist()})
            dy, dx = fit.shifts[0]
            print(f"| {pattern} | {scenario} | {rows[-1]['max_abs_error']:.5f} | ({round(dy):+d}, {round(dx):+d}) | "
                  f"{', '.join(f'{g:.4f}' for g in fit.gain)} | "
                  + ', '.join(f'{name} {value:.4f} ({true:.4f})' for name, value, true
                              in zip(channel_names(4, pattern), received, true_received))
                  + f" | {scores[scenario]:.3f} | {rows[-1]['wiener_vs_true_k']:+.3f} | {seconds[scenario]:.2f} |")
        if pattern == RAW_PATTERNS[0]:
            render_raw_kernels({f'true {pattern} bayer_crosstalk, phase kernels': truth,
                                f'fitted ({RAW_FIGURE_SCENARIO}), phase kernels': fits[RAW_FIGURE_SCENARIO].kernel},
                               pattern, figure)
    print('\n| CFA | Wiener given the true K [dB] | degraded input [dB] |')
    print('|---|---|---|')
    for pattern, scores in wiener_scores.items():
        print(f"| {pattern} | {scores['true K']:.3f} | {scores['degraded']:.3f} |")
    save_json({'fits': rows, 'wiener_psnr': wiener_scores,
               'true_kernels': {pattern: build_kernel({**RAW_KERNEL, 'pattern': pattern}).tolist()
                                for pattern in RAW_PATTERNS}}, out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--raw', action='store_true', help='a Bayer sensor: fit_raw_kernel on mosaics')
    parser.add_argument('--out', help='the JSON results. Default: benchmarks/results/calibration.json, '
                        'calibration_raw.json with --raw')
    parser.add_argument('--figure', default=osp.join(RESULTS, 'calibration_raw_kernel.png'),
                        help='--raw: the picture of the fitted phase kernels')
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.raw:
        main_raw(args.out or osp.join(RESULTS, 'calibration_raw.json'), args.figure)
        return
    rows, fitted = [], {}
    print('| kernel | scenario | max abs error of K | shift found (dy, dx) of pair 1 [px] | gain | fit [s] |')
    print('|---|---|---|---|---|---|')
    for kernel_name, spec, mixing in (('front door 5x5 crosstalk', FRONT_DOOR_KERNEL, False),
                                      ('channel-mixing 3x3x5x5', MIXING_KERNEL, True)):
        kernel = build_kernel(spec)
        truth = kernel if mixing else np.stack([kernel] * 3)
        for scenario in SCENARIOS:
            fit, seconds = calibrate(kernel if mixing else truth, scenario, mixing)
            error = float(np.abs(fit.kernel - truth).max())
            rows.append({'kernel': kernel_name, 'scenario': scenario, 'max_abs_error': error,
                         'shifts': fit.shifts, 'gain': fit.gain.tolist(), 'offset': fit.offset.tolist(),
                         'residual_rms': fit.residual_rms.tolist(), 'seconds': seconds})
            if not mixing:
                fitted[scenario] = fit.kernel
            dy, dx = fit.shifts[0]
            print(f'| {kernel_name} | {scenario} | {error:.4f} | ({dy:+.3f}, {dx:+.3f}) | '
                  f"{', '.join(f'{g:.3f}' for g in fit.gain)} | {seconds:.2f} |")
    chosen = ('front-door noise, 1 pair', 'noise + 1-px shift', 'noise, 3 pairs', 'noise + 1-px shift, 3 pairs')
    scores = wiener_psnr({'true K': np.stack([build_kernel(FRONT_DOOR_KERNEL)] * 3),
                          **{f'fitted K ({scenario})': fitted[scenario] for scenario in chosen}})
    print('\n| Wiener on the 12 colour test crops (front door), given | PSNR [dB] | vs true K |')
    print('|---|---|---|')
    for name, value in scores.items():
        print(f"| {name} | {value:.3f} | {value - scores['true K']:+.3f} |")
    save_json({'fits': rows, 'wiener_psnr': scores}, args.out or osp.join(RESULTS, 'calibration.json'))


if __name__ == '__main__':
    main()
