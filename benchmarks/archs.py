"""Architectures: parameter count, MACs and forward latency, one row per entry of ``ARCHITECTURES``.

Parameters: trainable parameters. MACs: multiply-accumulates of one forward pass of one
image, from ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products,
functional ones included; MACs = FLOPs / 2; element-wise ops, normalisations, poolings and
FFTs are not counted, as in ptflops-style figures such as NAFNet's). Latency: median
wall-clock of ``--repeats`` forward passes (eval mode, no grad, batch 1) after ``--warmup``,
the architectures timed in turn within each repeat (interleaved), so that a load shared with
other processes weighs on all alike and their ratios stay fair.

Add an architecture by appending ``(name, builder)`` to ``ARCHITECTURES``: the builder takes
no argument and returns the network (image channels 3).

Usage: ``python benchmarks/archs.py [--size 256] [--threads 2] [--device cpu]``
"""
import argparse
import os
import os.path as osp
import platform
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import newbp_plugin  # noqa: E402, F401  (compat before the archs import BasicSR)
from newbp_plugin.archs.nafnet_arch import NAFNet  # noqa: E402
from newbp_plugin.archs.newbp_arch import NewBPNAFNet  # noqa: E402

from report import save_json

GOPRO = dict(img_channel=3, width=32, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 28], dec_blk_nums=[1, 1, 1, 1])
CROSSTALK = {'type': 'crosstalk'}  # 3x3 CMOS crosstalk
ARCHITECTURES = [
    ('NAFNet width 32 (GoPro config)', lambda: NAFNet(**GOPRO)),
    ('NewBPNAFNet, same body, head, skip: input (no converse)',
     lambda: NewBPNAFNet(**GOPRO, kernel=CROSSTALK, skip='input')),
    ('NewBPNAFNet, same body, head, skip: converse (default)', lambda: NewBPNAFNet(**GOPRO, kernel=CROSSTALK)),
    ('NewBPNAFNet, skip: converse + entrance + 1 middle + 1 ending Converse block',
     lambda: NewBPNAFNet(**GOPRO, kernel=CROSSTALK, entrance_converse=True, middle_converse_blocks=1,
                         ending_converse_blocks=1)),
]


def count_macs(net, x):
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    return counter.get_total_flops() // 2


def median_latencies_ms(nets, x, warmup, repeats):
    """Median forward latency of each net, the nets timed in turn within each repeat."""
    def seconds(net):
        start = time.perf_counter()
        with torch.no_grad():
            net(x)
        if x.device.type == 'cuda':
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for _ in range(warmup):
        for net in nets:
            seconds(net)
    times = [[] for _ in nets]
    for _ in range(repeats):
        for net, net_times in zip(nets, times):
            net_times.append(seconds(net))
    return [1e3 * statistics.median(net_times) for net_times in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--size', type=int, default=256, help='input height and width')
    parser.add_argument('--threads', type=int, default=2, help='torch intra-op threads (CPU)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--out', default=osp.join(osp.dirname(osp.abspath(__file__)), 'results', 'archs.json'))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x = torch.rand(1, 3, args.size, args.size, device=device)

    nets = [build().eval().to(device) for _, build in ARCHITECTURES]
    latencies = median_latencies_ms(nets, x, args.warmup, args.repeats)
    rows = []
    print(f'| architecture | params (M) | MACs (G) at {args.size}² | {args.device} latency (ms) | vs first |')
    print('|---|---:|---:|---:|---:|')
    for (name, _), net, latency in zip(ARCHITECTURES, nets, latencies):
        row = {
            'architecture': name,
            'params': sum(p.numel() for p in net.parameters() if p.requires_grad),
            'macs': count_macs(net, x),
            'latency_ms': latency,
            'latency_vs_first': latency / latencies[0],
        }
        rows.append(row)
        print(f'| {name} | {row["params"] / 1e6:.2f} | {row["macs"] / 1e9:.2f} | {row["latency_ms"]:.0f} | '
              f'{row["latency_vs_first"]:.3f} |')

    report = {
        'benchmark': 'architectures: parameters, MACs (FlopCounterMode FLOPs / 2), forward latency',
        'input': [1, 3, args.size, args.size], 'device': args.device, 'threads': args.threads,
        'warmup': args.warmup, 'repeats': args.repeats,
        'time': 'median wall-clock, eval, no grad, architectures interleaved within each repeat',
        'torch': torch.__version__, 'machine': f'{platform.machine()} {platform.processor()}'.strip(),
        'cpus': os.cpu_count(), 'results': rows,
    }
    save_json(report, args.out)


if __name__ == '__main__':
    main()
