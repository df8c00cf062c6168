"""How well `basicsr calibrate` (sensor.calibration.fit_kernel) recovers a sensor kernel, and what its error costs.

Pairs are synthesised from scikit-image photos (astronaut 512x512, chelsea 300x451, coffee 400x600; none of
them in the test split) with the front door's sensor: its 5x5 crosstalk kernel (and a channel-mixing kernel),
Poisson-Gaussian noise (gain 0.002, read σ 0.003, linear light), clipping and 8 bits. Reported: the fit's
error, max |K_fit - K| over all entries, per scenario; then the classical Wiener deconvolution of the 12
colour test crops (datasets/sample/test_color.lmdb, the front door's degradation, oracle noise variance) given
the fitted K against the true K, mean PSNR [dB].

    OMP_NUM_THREADS=1 python benchmarks/calibration.py [--out benchmarks/results/calibration.json]
"""
import argparse
import os.path as osp
import sys
import time

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
from newbp_plugin.sensor.calibration import fit_kernel  # noqa: E402
from newbp_plugin.sensor.degradation import noise_variance  # noqa: E402
from newbp_plugin.sensor.layout import physical_kernel  # noqa: E402
from newbp_plugin.sensor.noise import add_noise  # noqa: E402
from newbp_plugin.sensor.optics import SensorOptics  # noqa: E402

from report import save_json  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
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


def wiener_psnr(kernels):
    """Mean PSNR [dB] of Wiener on the 12 colour test crops (front-door degradation), one per kernel given to it."""
    dataset = CrosstalkDataset({'dataroot_gt': osp.join(ROOT, 'datasets/sample/test_color.lmdb'), 'phase': 'test',
                                'kernel': FRONT_DOOR_KERNEL, 'noise': FRONT_DOOR_NOISE, 'val_seed': 0})
    batch = default_collate([dataset[index] for index in range(len(dataset))])
    degraded = degrade_batch(batch).double()
    variance = noise_variance(batch['sensor'], degraded)
    scores = {}
    for name, kernel in kernels.items():
        restored = wiener(degraded, physical_kernel(kernel, 3, name).double(), variance, linear_light=True)
        scores[name] = float(np.mean([calculate_psnr(tensor2img([image.float()]), tensor2img([clean]), crop_border=0)
                                      for image, clean in zip(restored, batch['gt'])]))
    scores['degraded'] = float(np.mean([calculate_psnr(tensor2img([image.float()]), tensor2img([clean]), 0)
                                        for image, clean in zip(degraded, batch['gt'])]))
    return scores


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=osp.join(ROOT, 'benchmarks', 'results', 'calibration.json'))
    args = parser.parse_args()
    torch.set_num_threads(1)
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
    save_json({'fits': rows, 'wiener_psnr': scores}, args.out)


if __name__ == '__main__':
    main()
