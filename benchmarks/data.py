"""Data loading: CrosstalkDataset + degradation of the batch against PairedImageDataset (stored pairs).

Both read the same clean images from LMDB: photographs shipped with scikit-image, cut into
480x480 sub-images as BasicSR prepares DIV2K (``make-lmdb --crop-size 480 --step 240``).
PairedImageDataset reads, for the same keys, LQ images degraded beforehand with the same
kernel and noise and stored as 8-bit PNGs (BasicSR's pre-rendered workflow). Each yields
256x256 training crops with flips and rotations. CrosstalkDataset returns clean crops and the
draws of K and N; ``degrade_batch`` then degrades the whole batch in the main process, as
``NewBPModel.feed_data`` does (on the CPU here): a gaussian kernel of 7x7 or 31x31, noise in
linear light, quantised to 8 bits: the Poisson-Gaussian noise of the shipped recipes (gain
0.002: 500 electrons at full scale), a harsher one (gain 0.01: 100 electrons), or Gaussian noise.

Throughput: samples/s of whole batches (batch 8, shuffled) through a DataLoader with
``num_workers`` 0 (the main process) and 1, the degradation of each batch included for
CrosstalkDataset; the median of ``--rounds`` timed passes of ``--samples`` samples after one
warm-up batch, the two alternating so that they share the machine's load. Then where the time of
one batch's degradation goes, step by step; and, for the front door and the width-32 recipe (on
the sample set, CPU), the iteration time and data wait BasicSR logs beside the time of
``degrade_batch`` on one of their training batches.

Usage: ``python benchmarks/data.py [--samples 160] [--rounds 3] [--threads 1] [--recipe-iters 40]
[--out benchmarks/results/data.json]``
"""
import argparse
import os
import os.path as osp
import platform
import shutil
import statistics
import sys
import tempfile
import time

import cv2
import numpy as np
import skimage
import torch
from torch.utils.data import DataLoader, default_collate

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import newbp_plugin  # noqa: E402,F401  (registration)
from basicsr.data.paired_image_dataset import PairedImageDataset  # noqa: E402
from newbp_plugin.data.crosstalk_dataset import CrosstalkDataset, degrade_batch  # noqa: E402
from newbp_plugin.data.lmdb_tools import make_lmdb  # noqa: E402
from newbp_plugin.sensor.degradation import batch_optics  # noqa: E402
from newbp_plugin.sensor.noise import add_noise, quantize  # noqa: E402

from report import save_json

PHOTOS = ('astronaut.png', 'hubble_deep_field.jpg', 'retina.jpg', 'coffee.png', 'rocket.jpg')
KERNELS = {7: {'type': 'gaussian', 'sigma': 1.2, 'size': 7}, 31: {'type': 'gaussian', 'sigma': 5.0, 'size': 31}}
NOISES = {
    'recipe': {'type': 'poisson_gaussian', 'gain': 0.002, 'read_sigma': 0.003, 'quantize': 8},  # options/*.yml
    'high gain': {'type': 'poisson_gaussian', 'gain': 0.01, 'read_sigma': 0.002, 'quantize': 8},
    'gaussian': {'type': 'gaussian', 'sigma': 0.01, 'quantize': 8},
}
GT_SIZE, BATCH = 256, 8


def build_lmdbs(folder):
    """Write gt.lmdb and one lq_k{size}_{noise}.lmdb per kernel and noise (the same keys) into ``folder``."""
    photos = osp.join(folder, 'photos')
    os.makedirs(photos)
    for name in PHOTOS:
        img = cv2.imread(osp.join(osp.dirname(skimage.__file__), 'data', name), cv2.IMREAD_COLOR)
        cv2.imwrite(osp.join(photos, osp.splitext(name)[0] + '.png'), img)
    gt = osp.join(folder, 'gt.lmdb')
    make_lmdb(photos, gt, crop_size=480, step=240, progress=False)
    for size, spec in KERNELS.items():
        for noise_name, noise_spec in NOISES.items():
            degraded = osp.join(folder, lq_name(size, noise_name))
            os.makedirs(degraded)
            clean = CrosstalkDataset({'dataroot_gt': gt, 'phase': 'val', 'kernel': spec, 'noise': noise_spec})
            for index, key in enumerate(clean.paths):
                lq = degrade_batch(default_collate([clean[index]]))[0].numpy()
                bgr = np.round(lq.transpose(1, 2, 0)[..., ::-1] * 255).astype(np.uint8)
                cv2.imwrite(osp.join(degraded, f'{key}.png'), bgr)
            count = len(clean)
            make_lmdb(degraded, osp.join(folder, f'{lq_name(size, noise_name)}.lmdb'), progress=False)
    # py-lmdb opens a path once per process: PairedImageDataset reads its own copy of the same images.
    shutil.copytree(gt, osp.join(folder, 'gt_copy.lmdb'))
    return gt, count


def lq_name(size, noise_name):
    return f"lq_k{size}_{noise_name.replace(' ', '_')}"


def datasets(folder, gt, size, noise_name):
    """{name: dataset} for one kernel size and noise."""
    common = {'phase': 'train', 'gt_size': GT_SIZE, 'use_hflip': True, 'use_rot': True, 'scale': 1}
    paired = PairedImageDataset(dict(common, dataroot_gt=osp.join(folder, 'gt_copy.lmdb'),
                                     dataroot_lq=osp.join(folder, f'{lq_name(size, noise_name)}.lmdb'),
                                     io_backend={'type': 'lmdb'}))
    synthesis = CrosstalkDataset(dict(common, dataroot_gt=gt, kernel=KERNELS[size], noise=NOISES[noise_name]))
    return {'PairedImageDataset (stored pairs)': paired, 'CrosstalkDataset + degrade_batch': synthesis}


def samples_per_second(dataset, workers, samples, seed):
    """Samples/s of one pass of ``samples`` samples, after a warm-up batch (workers started); a batch
    of CrosstalkDataset is degraded in this process, as NewBPModel.feed_data does."""
    torch.manual_seed(seed)
    sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=samples + BATCH)
    batches = iter(DataLoader(dataset, batch_size=BATCH, sampler=sampler, num_workers=workers, drop_last=True))
    next(batches)
    start = time.perf_counter()
    count = 0
    for batch in batches:
        lq = degrade_batch(batch) if 'scene' in batch else batch['lq']
        count += len(lq)
    return count / (time.perf_counter() - start)


def median_ms(step, repeats=15):
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def step_times(gt, size, noise_name):
    """{step: median ms} of degrading one batch of BATCH 256x256 crops with a size x size kernel."""
    dataset = CrosstalkDataset({'dataroot_gt': gt, 'phase': 'train', 'gt_size': GT_SIZE, 'kernel': KERNELS[size],
                                'noise': NOISES[noise_name]})
    batch = default_collate([dataset[index % len(dataset)] for index in range(BATCH)])
    optics, draws, context = batch_optics(batch['sensor']), batch['sensor'], size // 2
    light = optics.to_linear(batch['scene'])
    blurred = optics.blur(light, batch['kernel'])[..., context:-context, context:-context]
    noisy = add_noise(blurred, draws['gain'], draws['read_sigma'], draws['seed']).clamp(0, 1)
    return {
        'sRGB -> linear': median_ms(lambda: optics.to_linear(batch['scene'])),
        'blur (crosstalk)': median_ms(lambda: optics.blur(light, batch['kernel'])),
        'noise (Poisson + normal)': median_ms(lambda: add_noise(blurred, draws['gain'], draws['read_sigma'],
                                                                draws['seed'])),
        'linear -> sRGB, quantise': median_ms(lambda: quantize(optics.to_encoded(noisy), draws['quantize'])),
        'whole degrade_batch': median_ms(lambda: degrade_batch(batch)),
    }


# (recipe, --force_yml changes): the front door as shipped; the width-32 GPU recipe on the sample set, on the CPU
RECIPES = {
    'front door (options/newbp_nafnet.yml)': ('options/newbp_nafnet.yml', []),
    'width 32 (options/train/NewBPNAFNet-width32.yml)': ('options/train/NewBPNAFNet-width32.yml', [
        'num_gpu=0', 'datasets:train:dataroot_gt=datasets/sample/train.lmdb', 'datasets:train:num_worker_per_gpu=1',
        'datasets:val:dataroot_gt=datasets/sample/val.lmdb', 'logger:use_tb_logger=false']),
}
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def recipe_shares(iters):
    """{recipe: figures} of ``iters`` training iterations run by ``basicsr train``: BasicSR's logged time of
    an iteration and data wait (the last print, an average), and the median time of ``degrade_batch`` on one
    training batch of the recipe, measured in this process."""
    import re
    import subprocess

    import yaml

    from newbp_plugin.sensor_block import apply_sensor_block
    results = {}
    for name, (recipe, changes) in RECIPES.items():
        with tempfile.TemporaryDirectory() as run_dir:
            os.symlink(osp.join(ROOT, 'datasets'), osp.join(run_dir, 'datasets'))
            force = changes + [f'train:total_iter={iters}', f'logger:print_freq={iters // 2}', 'val:val_freq=100000',
                               'logger:save_checkpoint_freq=100000', 'name=data_share']
            basicsr = osp.join(osp.dirname(sys.executable), 'basicsr')
            run = subprocess.run([basicsr, 'train', '-opt', osp.join(ROOT, recipe), '--force_yml'] + force, cwd=run_dir,
                                 capture_output=True, text=True)
            if run.returncode:
                raise RuntimeError(f'{recipe}: {run.stderr[-2000:]}')
            log = ''.join(open(path, encoding='utf-8').read() for path in
                          sorted(__import__('glob').glob(osp.join(run_dir, 'experiments', 'data_share', 'train_*.log'))))
        iteration_s, data_s = map(float, re.findall(r'time \(data\): ([0-9.]+) \(([0-9.]+)\)', log)[-1])
        with open(osp.join(ROOT, recipe), encoding='utf-8') as f:
            opt = yaml.safe_load(f)
        apply_sensor_block(opt, recipe)
        dataset_opt = dict(opt['datasets']['train'], phase='train', scale=1,
                           dataroot_gt=osp.join(ROOT, 'datasets', 'sample', 'train.lmdb'))
        dataset = CrosstalkDataset(dataset_opt)
        batch = default_collate([dataset[index % len(dataset)] for index in range(dataset_opt['batch_size_per_gpu'])])
        degrade_ms = median_ms(lambda: degrade_batch(batch))
        results[name] = {'iteration_s': iteration_s, 'data_wait_s': data_s, 'degrade_batch_ms': degrade_ms,
                         'batch': dataset_opt['batch_size_per_gpu'], 'gt_size': dataset_opt['gt_size'],
                         'degrade_share': degrade_ms / 1e3 / iteration_s, 'data_wait_share': data_s / iteration_s}
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--samples', type=int, default=160, help='samples per timed pass')
    parser.add_argument('--rounds', type=int, default=3, help='timed passes per configuration (median)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads of the main process (workers use 1, as DataLoader sets)')
    parser.add_argument('--recipe-iters', type=int, default=40,
                        help='training iterations of each recipe for the data share of an iteration (0: skip)')
    parser.add_argument('--out', default=osp.join(osp.dirname(osp.abspath(__file__)), 'results', 'data.json'))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        gt, count = build_lmdbs(folder)
        for size in KERNELS:
            for noise_name in NOISES:
                for workers in (0, 1):
                    # new datasets each time: PairedImageDataset's LMDB must not cross a fork
                    candidates = datasets(folder, gt, size, noise_name)
                    rates = {name: [] for name in candidates}
                    for round_index in range(args.rounds):
                        for name, dataset in candidates.items():
                            rates[name].append(samples_per_second(dataset, workers, args.samples, round_index))
                    paired, synthesis = (statistics.median(values) for values in rates.values())
                    rows.append({'kernel': f'{size}x{size}', 'noise': noise_name, 'num_workers': workers,
                                 'paired_samples_per_s': paired, 'synthesis_samples_per_s': synthesis,
                                 'ratio': synthesis / paired, 'rounds': rates})
                    del candidates
        steps = {f'{size}x{size}, {noise_name}': step_times(gt, size, noise_name)
                 for size in KERNELS for noise_name in NOISES}
    shares = recipe_shares(args.recipe_iters) if args.recipe_iters else {}

    print(f'{count} clean 480x480 sub-images; {GT_SIZE}x{GT_SIZE} crops, batch {BATCH}, '
          f'noises {NOISES}; torch threads (main process): {torch.get_num_threads()}')
    print(f"{'kernel':>7} {'noise':>9} {'workers':>7} {'paired/s':>9} {'synthesis/s':>11} {'ratio':>6}")
    for row in rows:
        print(f"{row['kernel']:>7} {row['noise']:>9} {row['num_workers']:>7} {row['paired_samples_per_s']:>9.1f} "
              f"{row['synthesis_samples_per_s']:>11.1f} {row['ratio']:>6.2f}")
    print(f"\n{f'step of one batch of {BATCH} [ms]':<30}" + ''.join(f'{name:>22}' for name in steps))
    for step in next(iter(steps.values())):
        print(f'{step:<30}' + ''.join(f'{times[step]:>22.1f}' for times in steps.values()))
    for name, share in shares.items():
        print(f"{name}: batch {share['batch']} x {share['gt_size']}², iteration {share['iteration_s']:.3f} s, data wait "
              f"{share['data_wait_s']:.3f} s ({100 * share['data_wait_share']:.1f} %), degrade_batch "
              f"{share['degrade_batch_ms']:.1f} ms ({100 * share['degrade_share']:.1f} % of the iteration)")
    result = {
        'benchmark': 'data loading: CrosstalkDataset + degrade_batch vs PairedImageDataset stored pairs',
        'images': f'{count} sub-images 480x480 of {", ".join(PHOTOS)} (scikit-image)',
        'gt_size': GT_SIZE, 'batch_size': BATCH, 'noises': NOISES, 'kernels': KERNELS, 'samples': args.samples,
        'rounds': args.rounds, 'rows': rows, 'batch_step_ms': steps, 'recipe_shares': shares,
        'machine': {'cpus': os.cpu_count(), 'torch_threads': torch.get_num_threads(), 'torch': torch.__version__,
                    'numpy': np.__version__, 'python': platform.python_version(), 'load_average': os.getloadavg()},
    }
    save_json(result, args.out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
