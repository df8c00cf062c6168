"""How far the noise estimate of ``basicsr restore --noise estimate`` is from the truth.

Every crop of the colour test split (datasets/sample/test_color.lmdb, 12 crops 256x256) is degraded
as the benchmark degrades it, by each kernel x noise below; ``estimate_noise`` then sees the degraded
image alone. Reported per degradation: the error of the noise's standard deviation averaged over
the image, σ̄ = sqrt(mean(gain · b + read²)) with b the decoded degraded image (what
KernelAwareNAFNet's data step weighs by), estimated vs drawn, in percent (median and worst of the
12 crops); and the estimated gain and read σ (median) beside the drawn ones.

    python benchmarks/noise_estimate.py [--out benchmarks/results/noise_estimate.json]
"""
import argparse
import os.path as osp
import sys

import numpy as np
import torch
from torch.utils.data import default_collate

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import newbp_plugin  # noqa: F401,E402  (BasicSR compatibility fixes first)
from newbp_plugin.data.crosstalk_dataset import CrosstalkDataset, degrade_batch  # noqa: E402
from newbp_plugin.sensor.noise import noise_variance_map  # noqa: E402
from newbp_plugin.sensor.noise_estimate import estimate_noise  # noqa: E402
from newbp_plugin.sensor.optics import SensorOptics  # noqa: E402

from report import save_json  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
KERNELS = {
    'cmos_5x5': {'type': 'crosstalk', 'size': 5, 'left': 0.06, 'right': 0.06, 'up': 0.05, 'down': 0.05,
                 'diagonal': 0.02, 'second_ring': 0.01},
    'gaussian_1.2': {'type': 'gaussian', 'sigma': 1.2},
    'airy_f8_9x9': {'type': 'airy', 'f_number': 8, 'size': 9},
}
NOISES = {
    'low': {'type': 'poisson_gaussian', 'gain': 0.0005, 'read_sigma': 0.001, 'quantize': 8},
    'sensor': {'type': 'poisson_gaussian', 'gain': 0.002, 'read_sigma': 0.003, 'quantize': 8},
    'high': {'type': 'poisson_gaussian', 'gain': 0.008, 'read_sigma': 0.006, 'quantize': 8},
    'read_only': {'type': 'gaussian', 'sigma': 0.01, 'quantize': 8},
}


def mean_sigma(light, noise):
    """(B,) σ̄ of images ``light`` (B, C, H, W, linear) under ``noise`` {'gain', 'read_sigma'} (B, C)."""
    return noise_variance_map(light, noise['gain'], noise['read_sigma']).mean((1, 2, 3)).sqrt()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=osp.join(ROOT, 'benchmarks', 'results', 'noise_estimate.json'))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    print('| kernel | noise | σ̄ error median | worst | gain drawn / estimated | read σ drawn / estimated |')
    print('|---|---|---|---|---|---|')
    for seed, (kernel_name, kernel) in enumerate(KERNELS.items()):
        for noise_name, noise in NOISES.items():
            dataset = CrosstalkDataset({'dataroot_gt': osp.join(ROOT, 'datasets/sample/test_color.lmdb'),
                                        'phase': 'test', 'kernel': kernel, 'noise': noise, 'val_seed': seed})
            batch = default_collate([dataset[index] for index in range(len(dataset))])
            x = degrade_batch(batch)
            estimate = estimate_noise(x)
            light = SensorOptics(True).to_linear(x)
            drawn = {key: batch['sensor'][key] for key in ('gain', 'read_sigma')}
            error = (mean_sigma(light, estimate) / mean_sigma(light, drawn) - 1) * 100
            row = {'kernel': kernel_name, 'noise': noise_name,
                   'sigma_error_percent': error.tolist(),
                   'gain': [float(drawn['gain'].mean()), float(estimate['gain'].median())],
                   'read_sigma': [float(drawn['read_sigma'].mean()), float(estimate['read_sigma'].median())]}
            rows.append(row)
            print(f"| {kernel_name} | {noise_name} | {float(error.median()):+.1f} % | "
                  f"{float(error[error.abs().argmax()]):+.1f} % | {row['gain'][0]:.4g} / {row['gain'][1]:.4g} | "
                  f"{row['read_sigma'][0]:.4g} / {row['read_sigma'][1]:.4g} |")
    errors = np.abs([value for row in rows for value in row['sigma_error_percent']])
    print(f'all {len(errors)} images: |σ̄ error| median {np.median(errors):.1f} %, 90th percentile '
          f'{np.percentile(errors, 90):.1f} %, worst {errors.max():.1f} %')
    save_json({'rows': rows, 'abs_error_percent': {'median': float(np.median(errors)),
                                                   'p90': float(np.percentile(errors, 90)),
                                                   'max': float(errors.max())}}, args.out)


if __name__ == '__main__':
    main()
