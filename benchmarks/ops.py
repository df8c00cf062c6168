"""Timing of the NewBP crosstalk op (forward + backward), measured side by side.

1. ``crosstalk(method='direct')`` vs the fastest known layout, autograd of F.pad + one grouped
   ``F.conv2d`` with the batch folded into the groups (B·C planes, ``groups=B·C``, as deepinv
   does; target: at most 1.0x its time), and vs the previous layout of the op (``groups=C`` over
   the batch), at (8, 3, 256², 5x5) and (8, 32, 128², 5x5), and a channel-mixing kernel;
2. the FFT path vs the direct one at 31x31 (target: at least 5x faster);
3. a sweep of square kernel sizes 3..63 (B=4, 256x256), the source of ``FFT_MIN_KERNEL_SIZE``.

Times are wall-clock ms of forward + backward (grad w.r.t. x; w.r.t. the kernel too
where said), reflect padding. Each set of closures runs interleaved; the best time is the
one compared (other processes on a shared machine only add time), the median is recorded
beside it.

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

BATCH, SIZE, PADDING_MODE = 4, 256, 'reflect'  # the sweep
# (batch, channels, size, kernel side, kernel grad, channel-mixing) of the layout comparison
COMPARE_CASES = ((8, 3, 256, 5, False, False), (8, 32, 128, 5, False, False), (8, 3, 256, 5, True, False),
                 (8, 32, 128, 5, True, False), (8, 3, 256, 5, False, True))
COMPARE_CHANNELS = (3, 32)
SWEEP_KERNELS = tuple(range(3, 22, 2)) + (25, 31, 39, 47, 55, 63)


def _padded(x, kernel):
    kh, kw = kernel.shape[-2:]
    return F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode=PADDING_MODE)


def folded_conv2d(x, kernel):
    """The fastest known layout: autograd of one grouped F.conv2d over B·C planes (the batch folded)."""
    batch, channels, kh, kw = *x.shape[:2], *kernel.shape[-2:]
    padded = _padded(x, kernel).reshape(1, batch * channels, *(s + k - 1 for s, k in zip(x.shape[-2:], (kh, kw))))
    if kernel.dim() == 5:  # channel-mixing (1, C, C, kh, kw): one C x C group per sample
        weight = kernel.flip((-2, -1)).expand(batch, channels, channels, kh, kw).reshape(-1, channels, kh, kw)
        return F.conv2d(padded, weight, groups=batch).reshape(x.shape)
    weight = kernel.flip((-2, -1)).expand(batch * channels, 1, kh, kw)
    return F.conv2d(padded, weight, groups=batch * channels).reshape(x.shape)


def channel_grouped_conv2d(x, kernel):
    """The previous layout of the op: ``groups=C`` over the batch (a dense conv for channel mixing)."""
    channels, (kh, kw) = x.shape[1], kernel.shape[-2:]
    if kernel.dim() == 5:
        return F.conv2d(_padded(x, kernel), kernel[0].flip((-2, -1)))
    return F.conv2d(_padded(x, kernel), kernel.flip((-2, -1)).expand(channels, 1, kh, kw), groups=channels)


def direct_crosstalk(x, kernel):
    return crosstalk(x, kernel, PADDING_MODE, method='direct')


def fft_crosstalk(x, kernel):
    return crosstalk(x, kernel, PADDING_MODE, method='fft')


def forward_backward(op, batch, channels, size, kernel_size, kernel_grad=False, mixing=False):
    """A closure running op forward and backward (grad w.r.t. x, and the kernel if asked)."""
    x = torch.rand(batch, channels, size, size, requires_grad=True)
    kernel = torch.rand(((1, channels, channels) if mixing else ()) + (kernel_size, kernel_size))
    kernel = (kernel / kernel.sum()).requires_grad_(kernel_grad)
    grad_out = torch.rand(batch, channels, size, size)

    def run():
        x.grad = kernel.grad = None
        op(x, kernel).backward(grad_out)

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


def compare_layouts(budget_s):
    rows = []
    for batch, channels, size, kernel_size, kernel_grad, mixing in COMPARE_CASES:
        ops = (direct_crosstalk, folded_conv2d, channel_grouped_conv2d)
        runs = [forward_backward(op, batch, channels, size, kernel_size, kernel_grad, mixing) for op in ops]
        (op_ms, op_median), (folded_ms, folded_median), (grouped_ms, grouped_median) = best_and_median_ms(
            runs, budget_s)
        rows.append(
            dict(batch=batch, channels=channels, size=size, kernel=kernel_size, kernel_grad=kernel_grad,
                 channel_mixing=mixing, op_ms=op_ms, folded_conv2d_ms=folded_ms, channel_grouped_conv2d_ms=grouped_ms,
                 ratio_to_folded=round(op_ms / folded_ms, 3), speedup_over_channel_grouped=round(grouped_ms / op_ms, 2),
                 op_median_ms=op_median, folded_median_ms=folded_median, grouped_median_ms=grouped_median))
        print(
            f'  ({batch}, {channels:2d}, {size}², {kernel_size}x{kernel_size}) kernel_grad={kernel_grad!s:5} '
            f'mixing={mixing!s:5}  op {op_ms:7.1f} ms  folded conv2d {folded_ms:7.1f} ms  (ratio '
            f'{op_ms / folded_ms:4.2f})  groups=C conv2d {grouped_ms:7.1f} ms  (op {grouped_ms / op_ms:4.1f}x '
            f'faster)',
            flush=True)
    return rows


def sweep_direct_vs_fft(budget_s):
    rows = []
    for channels in COMPARE_CHANNELS:
        for kernel_size in SWEEP_KERNELS:
            runs = [forward_backward(op, BATCH, channels, SIZE, kernel_size) for op in (direct_crosstalk, fft_crosstalk)]
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

    print(f'{PADDING_MODE} padding, forward + backward, {args.threads} threads, best of {budget_s:g} s of '
          f'repeats (2 at least); load average {load_before:.2f}')
    print('crosstalk (direct) vs autograd of the batch-folded grouped F.conv2d (target ratio <= 1.0):')
    comparison = compare_layouts(budget_s)
    print(f'direct vs FFT, crossover sweep at B={BATCH}, {SIZE}x{SIZE} (target at 31x31: FFT >= 5x faster):')
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
        crosstalk_vs_conv2d_layouts=comparison,
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
