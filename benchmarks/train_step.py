"""Training-step time of KernelAwareNAFNet beside the NAFNet it is compared with (issue 14's ≤ 1.5× target).

One step = forward, L1 loss, backward and an AdamW update, on a batch of the universal recipe's
shape (8 crops of 64², per-sample kernels of 13×13; depthwise, or channel-mixing when the family
holds a mixing kernel, as options/train/KernelAwareNAFNet-universal.yml's does), the networks timed in
turn within each repeat (interleaved), so that other load weighs on all alike. Median of
``--repeats`` after ``--warmup`` steps; the ratio is to the plain NAFNet of the same width.

    python benchmarks/train_step.py [--threads 2] [--repeats 20] [--width 16 32]
"""
import argparse
import os.path as osp
import platform
import statistics
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import newbp_plugin  # noqa: E402, F401  (compat before the archs import BasicSR)
from newbp_plugin.archs.kernel_aware_arch import KernelAwareNAFNet  # noqa: E402
from newbp_plugin.archs.nafnet_arch import NAFNet  # noqa: E402

from report import save_json  # noqa: E402

BODY = dict(img_channel=3, middle_blk_num=1, enc_blk_nums=[1, 1, 1], dec_blk_nums=[1, 1, 1])
VARIANTS = {  # name -> (builder of width, kernel layout)
    'NAFNet': (lambda width: NAFNet(width=width, **BODY), 'none'),
    'KernelAwareNAFNet, 1 stage, depthwise K': (lambda width: KernelAwareNAFNet(width=width, **BODY), 'depthwise'),
    'KernelAwareNAFNet, 1 stage, mixing K': (lambda width: KernelAwareNAFNet(width=width, **BODY), 'mixing'),
    'KernelAwareNAFNet, 1 stage, alpha: hyper, mixing K':
        (lambda width: KernelAwareNAFNet(width=width, alpha='hyper', **BODY), 'mixing'),
    'KernelAwareNAFNet, 2 stages, shared prior, alpha: hyper, mixing K (the shipped universal model)':
        (lambda width: KernelAwareNAFNet(width=width, stages=2, alpha='hyper', **BODY), 'mixing'),
    'KernelAwareNAFNet, 3 stages, shared prior, mixing K':
        (lambda width: KernelAwareNAFNet(width=width, stages=3, **BODY), 'mixing'),
}


def batch(layout, size=64, kernel_size=13, count=8):
    """(x, gt, kernel, noise) of one training batch, random (timing only)."""
    generator = torch.Generator().manual_seed(0)
    x, gt = torch.rand(count, 3, size, size, generator=generator), torch.rand(count, 3, size, size, generator=generator)
    shape = {'depthwise': (count, 3, kernel_size, kernel_size), 'mixing': (count, 3, 3, kernel_size, kernel_size)}
    kernel = None
    if layout in shape:
        kernel = torch.rand(shape[layout], generator=generator)
        kernel = kernel / kernel.sum(dim=tuple(range(2, kernel.ndim)), keepdim=True)  # each output channel sums to 1
    noise = {'gain': torch.full((count, 3), 0.002), 'read_sigma': torch.full((count, 3), 0.003)}
    return x, gt, kernel, noise


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--width', type=int, nargs='+', default=[16, 32])
    parser.add_argument('--out', default=osp.join(osp.dirname(osp.abspath(__file__)), 'results', 'train_step.json'))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for width in args.width:
        runs = {}
        for name, (build, layout) in VARIANTS.items():
            torch.manual_seed(0)
            net = build(width)
            optimizer = torch.optim.AdamW(net.parameters(), 1e-3)
            x, gt, kernel, noise = batch(layout)
            kwargs = {} if kernel is None else {'kernel': kernel, 'noise': noise}

            def step(net=net, optimizer=optimizer, x=x, gt=gt, kwargs=kwargs):
                optimizer.zero_grad()
                (net(x, **kwargs) - gt).abs().mean().backward()
                optimizer.step()

            runs[name] = (step, sum(p.numel() for p in net.parameters()), [])
        for _ in range(args.warmup):
            for step, _, _ in runs.values():
                step()
        for _ in range(args.repeats):
            for step, _, times in runs.values():
                start = time.perf_counter()
                step()
                times.append(time.perf_counter() - start)
        reference = statistics.median(runs['NAFNet'][2])
        print(f'\nwidth {width}, batch 8 x 64², {args.threads} thread(s), torch {torch.__version__}, '
              f'{platform.processor() or platform.machine()}')
        print('| network | parameters | step [ms] | × NAFNet |')
        print('|---|---|---|---|')
        for name, (_, parameters, times) in runs.items():
            median = statistics.median(times)
            rows.append({'width': width, 'network': name, 'parameters': parameters, 'step_ms': median * 1000,
                         'ratio': median / reference})
            print(f'| {name} | {parameters:,} | {median * 1000:.0f} | {median / reference:.2f} |')
    save_json({'threads': args.threads, 'repeats': args.repeats, 'torch': torch.__version__, 'rows': rows}, args.out)


if __name__ == '__main__':
    main()
