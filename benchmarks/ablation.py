"""Ablation of the NewBP head on the front-door recipe: same data, budget and seed for every variant.

Each variant is options/newbp_nafnet.yml with its ``network_g`` changed (and, for the fine-tuned
variants, its ``path:pretrain_network_g``), trained by the real ``basicsr train`` (CPU), and scored
by validation at the last iteration on the recipe's two validation photographs and on the 12
colour test crops (datasets/sample/test_color.lmdb), both degraded by the recipe's sensor block
(the degraded input's PSNR is logged beside each).

    python benchmarks/ablation.py [--iters 1500] [--variants nafnet newbp_converse ...] [--threads 2]

Writes benchmarks/results/ablation.json and prints a markdown table.
"""
import argparse
import os
import os.path as osp
import re
import subprocess
import sys
import tempfile
import time

import yaml

from report import save_json

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
RECIPE = osp.join(ROOT, 'options', 'newbp_nafnet.yml')
BODY_KEYS = ('img_channel', 'width', 'middle_blk_num', 'enc_blk_nums', 'dec_blk_nums')
NEWBP = 'NewBPNAFNet'
KERNEL_AWARE = 'KernelAwareNAFNet'
UNIVERSAL = 'experiments/pretrained_models/KernelAwareNAFNet-universal.pth'  # 2 stages, one prior
# the first universal model (not shipped): basicsr train -opt options/train/KernelAwareNAFNet-universal.yml
#     --force_yml name=KernelAwareNAFNet-universal-1stage network_g:stages=1
UNIVERSAL_1_STAGE = 'experiments/KernelAwareNAFNet-universal-1stage/models/net_g_latest.pth'
# the NewBP head as a physics-consistency term: K * Ŷ must explain X within each sample's noise (RedegradationLoss)
NEWBP_CONSISTENCY = {'redegradation_opt': {'type': 'RedegradationLoss', 'loss_weight': 0.01, 'margin': 1.0,
                                           'sigma': 'noise'}}
# name -> (description, network_g beyond the recipe's body options (the sensor block hands the kernel and the
# light to networks that take them), path:pretrain_network_g relative to the repository root or None[, train
# options beyond the recipe's])
VARIANTS = {
    'nafnet': ('NAFNet (no head)', {'type': 'NAFNet'}, None),
    'newbp_literal': ('NewBP head, S = NAFNet(X) (skip: input)',
                      {'type': NEWBP, 'output': 'direct', 'skip': 'input'}, None),
    'newbp_no_skip': ('NewBP head, S = R (skip: none)', {'type': NEWBP, 'output': 'direct', 'skip': 'none'}, None),
    'newbp_converse': ('NewBP head, S = R + C_{K*K}(X) (skip: converse)',
                       {'type': NEWBP, 'output': 'direct', 'skip': 'converse'}, None),
    'newbp_residual': ('NewBP residual, Ŷ = X + K * R', {'type': NEWBP, 'output': 'residual', 'skip': 'none'}, None),
    'newbp_converse_blocks': ('skip: converse + entrance/middle/ending Converse', {
        'type': NEWBP, 'output': 'direct', 'skip': 'converse', 'entrance_converse': True, 'middle_converse_blocks': 1,
        'ending_converse_blocks': 1}, None),
    'kernel_aware_1': ('KernelAwareNAFNet, 1 stage (data step with K, then the prior)',
                       {'type': KERNEL_AWARE, 'stages': 1}, None),
    'kernel_aware_3': ('KernelAwareNAFNet, 3 stages, shared prior', {'type': KERNEL_AWARE, 'stages': 3}, None),
    'kernel_aware_1_finetune': ('KernelAwareNAFNet, 1 stage, fine-tuned from the 1-stage universal model '
                                '(the front door of session 5)', {'type': KERNEL_AWARE, 'stages': 1, 'alpha': 'hyper'},
                                UNIVERSAL_1_STAGE),
    'kernel_aware_1_finetune_newbp': ('the same + the NewBP head as a consistency term (RedegradationLoss, '
                                      'sigma: noise, margin 1, weight 0.01)',
                                      {'type': KERNEL_AWARE, 'stages': 1, 'alpha': 'hyper'}, UNIVERSAL_1_STAGE,
                                      NEWBP_CONSISTENCY),
    'kernel_aware_2_finetune': ('KernelAwareNAFNet, 2 stages, fine-tuned from the shipped universal model '
                                '(the front door)', {'type': KERNEL_AWARE, 'stages': 2, 'alpha': 'hyper'}, UNIVERSAL),
    'nafnet_finetune': ('NAFNet, fine-tuned from NAFNet-universal (options/train/NAFNet-universal.yml, trained first)',
                        {'type': 'NAFNet'}, 'experiments/NAFNet-universal/models/net_g_latest.pth'),
}
TEST_SPLIT = 'datasets/sample/test_color.lmdb'  # 12 colour crops in no training or validation region


def load_recipe():
    with open(RECIPE, encoding='utf-8') as f:
        return yaml.safe_load(f)


def variant_options(recipe, name, iters):
    """The recipe as a plain dict, for one variant and a budget of ``iters`` iterations."""
    opt = dict(recipe, name=f'ablation_{name}')  # its sensor: block reaches the variant's network too
    _, network, pretrained, *train_options = VARIANTS[name]
    opt['network_g'] = {**{key: opt['network_g'][key] for key in BODY_KEYS}, **network}
    opt['path'] = dict(opt['path'], pretrain_network_g=None if pretrained is None else osp.join(ROOT, pretrained))
    opt['datasets'] = dict(opt['datasets'], val_test=dict(opt['datasets']['val'], name='sample_test_color',
                                                          dataroot_gt=TEST_SPLIT))
    for phase in ('train', 'val', 'val_test'):
        opt['datasets'][phase]['dataroot_gt'] = osp.join(ROOT, opt['datasets'][phase]['dataroot_gt'])
    train = opt['train'] = dict(opt['train'], **(train_options[0] if train_options else {}))
    train['total_iter'] = iters
    train['scheduler'] = dict(train['scheduler'], periods=[iters])
    opt['val'] = dict(opt['val'], val_freq=iters, save_img=False)
    opt['logger'] = dict(opt['logger'], save_checkpoint_freq=iters, print_freq=max(iters // 10, 1))
    return opt


def run_variant(name, iters, workdir, threads):
    """Train one variant; return its figures parsed from BasicSR's log."""
    opt = variant_options(load_recipe(), name, iters)
    path = osp.join(workdir, f'{name}.yml')
    with open(path, 'w', encoding='utf-8') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    basicsr = osp.join(osp.dirname(sys.executable), 'basicsr')
    start = time.time()
    result = subprocess.run([basicsr, 'train', '-opt', path], cwd=workdir, env=env, capture_output=True, text=True)
    seconds = time.time() - start
    if result.returncode != 0:
        raise RuntimeError(f'{name} failed:\n{result.stderr[-3000:]}')
    exp = osp.join(workdir, 'experiments', opt['name'])
    log = ''.join(open(osp.join(exp, f), encoding='utf-8').read() for f in sorted(os.listdir(exp))
                  if f.startswith('train_') and f.endswith('.log'))
    def last(pattern):
        return [float(v) for v in re.findall(pattern, log)][-1]

    params = re.search(r'Network: \w+, with parameters: ([\d,]+)', log)
    return {
        'variant': name, 'description': VARIANTS[name][0], 'iters': iters,
        'val_psnr': last(r'Validation sample_val\s+# psnr: ([\d.]+)'),
        'input_psnr': last(r'Degraded input sample_val \(no restoration\)\s+# psnr: ([\d.]+)'),
        'test_psnr': last(r'Validation sample_test_color\s+# psnr: ([\d.]+)'),
        'test_input_psnr': last(r'Degraded input sample_test_color \(no restoration\)\s+# psnr: ([\d.]+)'),
        'params': int(params.group(1).replace(',', '')) if params else None, 'train_seconds': round(seconds, 1)
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iters', type=int, default=1500, help='training iterations per variant')
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument('--threads', type=int, default=2, help='torch threads of each training run')
    parser.add_argument('--out', default=osp.join(ROOT, 'benchmarks', 'results', 'ablation.json'))
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix='newbp_ablation_') as workdir:
        for name in args.variants:
            rows.append(run_variant(name, args.iters, workdir, args.threads))
            row = rows[-1]
            print(f"{name}: val PSNR {row['val_psnr']:.2f} dB (input {row['input_psnr']:.2f}), test split "
                  f"{row['test_psnr']:.2f} dB (input {row['test_input_psnr']:.2f}), {row['train_seconds']:.0f} s",
                  flush=True)
    save_json({'recipe': 'options/newbp_nafnet.yml', 'iters': args.iters, 'rows': rows}, args.out)
    print('\n| variant | val PSNR (dB) | test split PSNR (dB) | test gain over input (dB) | params | train time (s) |'
          '\n|---|---:|---:|---:|---:|---:|')
    for row in rows:
        print(f"| {row['description']} | {row['val_psnr']:.2f} | {row['test_psnr']:.2f} | "
              f"{row['test_psnr'] - row['test_input_psnr']:+.2f} | {row['params']:,} | {row['train_seconds']:.0f} |")


if __name__ == '__main__':
    main()
