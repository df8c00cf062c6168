"""Converse2D on CPU: the stable ``converse2d`` against the printed formula of seed 004.

Both ops solve the same problem (``converse2d_printed`` is the straightforward full-FFT
evaluation of the printed closed form). Inputs as in a ConverseBlock: y (B, C, h, w),
a learnable depthwise kernel (1, C, k, k) and λ = sigmoid(bias - 9) + 1e-5, bias (1, C, 1, 1).

Time: wall-clock of ``--repeats`` calls after ``--warmup`` calls, the two ops alternating so
that they share whatever else loads the machine; the median and the best (least disturbed)
are recorded, with the load average, and so are both speed-ups (printed / stable).
Peak memory: torch.profiler(profile_memory=True) allocation events of one call: the
largest running total of tensor bytes allocated above the level at the start of the
call (every tensor of torch's CPU allocator, saved-for-backward ones included; not the
FFT library's internal scratch nor Python objects).

Usage: ``python benchmarks/converse.py [--threads 2 [1]] [--shape 4 64 64 64] [--kernel-size 3]``
"""
import argparse
import os
import os.path as osp
import platform
import statistics
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from newbp_plugin.ops.converse import converse2d, converse2d_printed  # noqa: E402

from report import save_json

OPS = {'stable': converse2d, 'printed': converse2d_printed}


def make_call(op, shape, kernel_size, scale, backward):
    """A closure running one forward (and backward) pass of ``op`` on fixed random inputs."""
    generator = torch.Generator().manual_seed(0)
    batch, channels, height, width = shape
    y = torch.rand(shape, generator=generator, requires_grad=backward)
    logits = torch.randn(1, channels, kernel_size * kernel_size, generator=generator)
    weight = logits.softmax(-1).view(1, channels, kernel_size, kernel_size).requires_grad_(backward)
    bias = torch.zeros(1, channels, 1, 1, requires_grad=backward)
    grad_out = torch.randn(batch, channels, height * scale, width * scale, generator=generator)

    def call():
        with torch.set_grad_enabled(backward):
            out = op(y, weight, torch.sigmoid(bias - 9.0) + 1e-5, scale)
            if backward:
                out.backward(grad_out)
        return out

    return call


def times_ms(calls, warmup, repeats):
    """(median, best) wall-clock times in ms of each call; the calls alternate."""
    for _ in range(warmup):
        for call in calls:
            call()
    times = [[] for _ in calls]
    for _ in range(repeats):
        for call, samples in zip(calls, times):
            start = time.perf_counter()
            call()
            samples.append(time.perf_counter() - start)
    return [(1e3 * statistics.median(samples), 1e3 * min(samples)) for samples in times]


def peak_mib(call):
    """Peak of tensor bytes allocated during one call, above the level at its start (MiB)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call()
    events = sorted((event.start_ns(), event.nbytes()) for event in prof.profiler.kineto_results.events()
                    if event.name() == '[memory]')
    total = peak = 0
    for _, nbytes in events:
        total += nbytes
        peak = max(peak, total)
    return peak / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--threads',
        type=int,
        nargs='+',
        default=[2],
        help='torch intra-op thread counts to run, e.g. 2 1 (1 thread is less disturbed by other load)')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=4,
        default=(4, 64, 64, 64),
        metavar=('B', 'C', 'H', 'W'),
        help='shape of y (low resolution)')
    parser.add_argument('--kernel-size', type=int, default=3)
    parser.add_argument('--scales', type=int, nargs='+', default=(1, 2))
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--repeats', type=int, default=15)
    parser.add_argument('--out', default=osp.join(osp.dirname(osp.abspath(__file__)), 'results', 'converse.json'))
    args = parser.parse_args()
    rows = []
    load_before = os.getloadavg()[0]
    print(f'{"threads":>7} {"scale":>5} {"pass":>8} {"op":>8} {"median ms":>10} {"best ms":>8} {"peak MiB":>9} '
          f'{"speed-up med / best":>18}')
    for threads in args.threads:
        torch.set_num_threads(threads)
        for scale in args.scales:
            for backward in (False, True):
                row = {'threads': threads, 'scale': scale, 'pass': 'fwd+bwd' if backward else 'fwd'}
                calls = [make_call(op, tuple(args.shape), args.kernel_size, scale, backward) for op in OPS.values()]
                for name, call, (median, best) in zip(OPS, calls, times_ms(calls, args.warmup, args.repeats)):
                    row[f'{name}_ms'], row[f'{name}_best_ms'] = median, best
                    row[f'{name}_peak_mib'] = peak_mib(call)
                row['speedup'] = row['printed_ms'] / row['stable_ms']
                row['speedup_best'] = row['printed_best_ms'] / row['stable_best_ms']
                rows.append(row)
                for name in OPS:
                    speedup = f'{row["speedup"]:.1f}x / {row["speedup_best"]:.1f}x' if name == 'stable' else ''
                    print(f'{threads:>7} {scale:>5} {row["pass"]:>8} {name:>8} {row[name + "_ms"]:10.2f} '
                          f'{row[name + "_best_ms"]:8.2f} {row[name + "_peak_mib"]:9.1f} {speedup:>18}')

    report = {
        'benchmark': 'converse2d (stable) vs converse2d_printed (seed 004 formula, full complex FFTs)',
        'shape_y': list(args.shape),
        'kernel': [1, args.shape[1], args.kernel_size, args.kernel_size],
        'threads': args.threads,
        'warmup': args.warmup,
        'repeats': args.repeats,
        'time': 'wall-clock median and best of the repeats; speedup(_best) = printed / stable median (best)',
        'load_average_1min': [load_before, os.getloadavg()[0]],
        'memory': 'torch.profiler allocator events: peak tensor bytes above the start of one call',
        'torch': torch.__version__,
        'machine': f'{platform.machine()} {platform.processor()}'.strip(),
        'cpus': os.cpu_count(),
        'results': rows,
    }
    save_json(report, args.out)


if __name__ == '__main__':
    main()
