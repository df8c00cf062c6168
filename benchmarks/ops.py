"""Timing of the NewBP crosstalk op (forward + backward), measured side by side.

1. ``crosstalk(method='direct')`` vs autograd of ``F.pad`` + ``F.conv2d`` on the same
   shapes (target: at most 1.1x the time);
2. the FFT path vs the direct one at 31x31 (target: at least 5x faster);
3. a sweep of square kernel sizes 3..63, the source of ``FFT_MIN_KERNEL_SIZE``.

Times are wall-clock ms of forward + backward (grad w.r.t. x; w.r.t. the kernel too
where said), B=4, 256x256, reflect padding. Each pair of closures runs interleaved;
the best time is the one compared (other processes on a shared machine only add
time), the median is recorded beside it.

Usage::

    python benchmarks/ops.py [--threads 2] [--quick] [--out benchmarks/results/ops.json]

On a machine shared with other jobs, run it with ``OMP_WAIT_POLICY=PASSIVE``: OpenMP
threads spinning on an oversubscribed core stall every parallel region for a time
slice (the FFT path, made of many short regions, took 2 s instead of 0.3 s so).
"""
import argparse
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from newbp_plugin.ops import crosstalk  # noqa: E402
from newbp_plugin.ops.newbp import FFT_MIN_KERNEL_SIZE  # noqa: E402

from report import save_json

BATCH, SIZE, PADDING_MODE = 4, 256, 'reflect'
COMPARE_CHANNELS, COMPARE_KERNELS = (3, 32), (5, 31)
KERNEL_GRAD_SIZE = 5  # grad w.r.t. a 31x31 kernel takes seconds through F.conv2d's backward
SWEEP_KERNELS = tuple(range(3, 22, 2)) + (25, 31, 39, 47, 55, 63)


def conv2d_crosstalk(x, kernel, padding_mode):
    """The baseline: plain autograd of F.pad + depthwise F.conv2d with the flipped PSF."""
    kh, kw = kernel.shape[-2:]
    mode = 'constant' if padding_mode == 'zeros' else padding_mode
    padded = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode=mode)
    weight = kernel.flip((-2, -1)).expand(x.shape[1], 1, kh, kw)
    return F.conv2d(padded, weight, groups=x.shape[1])


def direct_crosstalk(x, kernel, padding_mode):
    return crosstalk(x, kernel, padding_mode, method='direct')


def fft_crosstalk(x, kernel, padding_mode):
    return crosstalk(x, kernel, padding_mode, method='fft')


def forward_backward(op, channels, kernel_size, kernel_grad=False):
    """A closure running op forward and backward (grad w.r.t. x, and the kernel if asked)."""
    x = torch.rand(BATCH, channels, SIZE, SIZE, requires_grad=True)
    kernel = torch.rand(kernel_size, kernel_size)
    kernel = (kernel / kernel.sum()).requires_grad_(kernel_grad)
    grad_out = torch.rand(BATCH, channels, SIZE, SIZE)

    def run():
        x.grad = kernel.grad = None
        op(x, kernel, PADDING_MODE).backward(grad_out)

    return run


def best_and_median_ms(runs, budget_s, max_rounds=50):
    """[(best, median)] wall time in ms of each closure, the closures run in interleaved rounds.

    The first round is a warm-up unless it took over a second. Timed rounds go on
    until ``budget_s`` is spent (at least 2, at most ``max_rounds``).
    """
    samples = [[] for _ in runs]
    warm_up, rounds, spent = True, 0, 0.0
    while rounds < 2 or (rounds < max_rounds and spent < budget_s):
        round_times = []
        for run in runs:
            start = time.perf_counter()
            run()
            round_times.append(time.perf_counter() - start)
        if warm_up and sum(round_times) < 1:
            warm_up = False
            continue
        warm_up = False
        for times, seconds in zip(samples, round_times):
            times.append(seconds)
        rounds, spent = rounds + 1, spent + sum(round_times)
    return [(round(min(times) * 1e3, 2), round(statistics.median(times) * 1e3, 2)) for times in samples]


def compare_with_conv2d(budget_s):
    rows = []
    cases = [(c, k, False) for c in COMPARE_CHANNELS for k in COMPARE_KERNELS]
    cases += [(c, KERNEL_GRAD_SIZE, True) for c in COMPARE_CHANNELS]
    for channels, kernel_size, kernel_grad in cases:
        runs = [forward_backward(op, channels, kernel_size, kernel_grad) for op in (direct_crosstalk, conv2d_crosstalk)]
        (op_ms, op_median), (conv2d_ms, conv2d_median) = best_and_median_ms(runs, budget_s)
        rows.append(
            dict(
                channels=channels,
                kernel=kernel_size,
                kernel_grad=kernel_grad,
                op_ms=op_ms,
                conv2d_ms=conv2d_ms,
                ratio=round(op_ms / conv2d_ms, 3),
                op_median_ms=op_median,
                conv2d_median_ms=conv2d_median))
        print(
            f'  C={channels:2d} k={kernel_size:2d} kernel_grad={kernel_grad!s:5}  op {op_ms:8.1f} ms  '
            f'conv2d {conv2d_ms:8.1f} ms  ratio {op_ms / conv2d_ms:5.2f}  (medians {op_median:.1f} / '
            f'{conv2d_median:.1f})',
            flush=True)
    return rows


def sweep_direct_vs_fft(budget_s):
    rows = []
    for channels in COMPARE_CHANNELS:
        for kernel_size in SWEEP_KERNELS:
            runs = [forward_backward(op, channels, kernel_size) for op in (direct_crosstalk, fft_crosstalk)]
            (direct_ms, direct_median), (fft_ms, fft_median) = best_and_median_ms(runs, budget_s)
            rows.append(
                dict(
                    channels=channels,
                    kernel=kernel_size,
                    direct_ms=direct_ms,
                    fft_ms=fft_ms,
                    fft_speedup=round(direct_ms / fft_ms, 2),
                    direct_median_ms=direct_median,
                    fft_median_ms=fft_median))
            print(
                f'  C={channels:2d} k={kernel_size:2d}  direct {direct_ms:8.1f} ms  fft {fft_ms:7.1f} ms  '
                f'FFT speed-up {direct_ms / fft_ms:5.2f}x  (medians {direct_median:.1f} / {fft_median:.1f})',
                flush=True)
    return rows


def crossover(rows, channels):
    """Smallest swept kernel size from which the FFT path is faster at every larger size."""
    rows = [row for row in rows if row['channels'] == channels]
    for index, row in enumerate(rows):
        if all(later['fft_speedup'] > 1 for later in rows[index:]):
            return row['kernel']
    return None


def recommended_fft_min_kernel_size(rows):
    """The threshold whose worst slowdown (chosen path / faster path) over all swept rows is least."""

    def worst_slowdown(threshold):
        chosen = [row['fft_ms'] if row['kernel'] >= threshold else row['direct_ms'] for row in rows]
        return max(ms / min(row['direct_ms'], row['fft_ms']) for ms, row in zip(chosen, rows))

    return min(SWEEP_KERNELS, key=worst_slowdown), round(min(map(worst_slowdown, SWEEP_KERNELS)), 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--threads', type=int, default=2, help='torch intra-op threads (default: 2)')
    parser.add_argument('--quick', action='store_true', help='1 s of repeats per case instead of 4 (same shapes)')
    parser.add_argument(
        '--out',
        help='JSON results (default: results/ops.json beside this script, '
        'results/ops_threadsN.json for N threads other than 2)')
    args = parser.parse_args()
    if args.out is None:
        name = 'ops.json' if args.threads == 2 else f'ops_threads{args.threads}.json'
        args.out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results', name)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    budget_s = 1.0 if args.quick else 4.0
    load_before = os.getloadavg()[0]

    print(f'B={BATCH}, {SIZE}x{SIZE}, {PADDING_MODE} padding, forward + backward, {args.threads} threads, '
          f'best of {budget_s:g} s of repeats (2 at least); load average {load_before:.2f}')
    print('crosstalk (direct) vs autograd of F.pad + F.conv2d (target ratio <= 1.1):')
    comparison = compare_with_conv2d(budget_s)
    print('direct vs FFT, crossover sweep (target at 31x31: FFT >= 5x faster):')
    sweep = sweep_direct_vs_fft(budget_s)
    crossovers = {channels: crossover(sweep, channels) for channels in COMPARE_CHANNELS}
    recommended, worst = recommended_fft_min_kernel_size(sweep)
    print(f'FFT faster from kernel size (per C): {crossovers}; recommended FFT_MIN_KERNEL_SIZE {recommended} '
          f'(worst slowdown {worst}x); in use: {FFT_MIN_KERNEL_SIZE}')

    results = dict(
        setup=dict(
            batch=BATCH,
            size=SIZE,
            padding_mode=PADDING_MODE,
            threads=args.threads,
            budget_s_per_case=budget_s,
            torch=torch.__version__,
            cpu=platform.processor() or platform.machine(),
            cpu_count=os.cpu_count(),
            omp_wait_policy=os.environ.get('OMP_WAIT_POLICY', 'default'),
            load_average_before=round(load_before, 2),
            load_average_after=round(os.getloadavg()[0], 2)),
        crosstalk_vs_conv2d=comparison,
        direct_vs_fft=sweep,
        fft_faster_from_kernel={
            str(channels): size
            for channels, size in crossovers.items()
        },
        recommended_fft_min_kernel_size=recommended,
        recommended_worst_slowdown=worst,
        fft_min_kernel_size=FFT_MIN_KERNEL_SIZE)
    save_json(results, args.out)


if __name__ == '__main__':
    main()
