"""``basicsr benchmark -opt options/benchmark/X.yml``: methods × degradations on a test set.

Every clean image of the test set is degraded by every pair (kernel, noise) of the options,
exactly as NewBPModel degrades validation data (CrosstalkDataset reads the image and draws the
degradation, :func:`~newbp_plugin.data.crosstalk_dataset.degrade_batch` applies it on the benchmark's device):
degradation d (kernels outer, noises inner, from 0) of image i draws from
``np.random.default_rng([seed + d, i])``, so every run sees the same degraded images. Every
method restores every degraded image; BasicSR's metrics compare the result with the clean image
(8-bit, as BasicSR's validation does), and the time of each call is measured (after one warm-up
call per method). Results go to ``results/<name>/`` (see :mod:`newbp_plugin.benchmark.report`).

Options (YAML; an unknown key fails naming it)::

    name: sample                       # results/<name>/ (an existing folder is archived, as BasicSR does)
    device: auto                       # auto (cuda when available) | cpu | cuda
    seed: 0                            # degradation d of image i: default_rng([seed + d, i])
    linear_light: true                 # K and N act on linear light (the images are sRGB-encoded)
    dataset:                           # clean images; CrosstalkDataset's options of the same names
      dataroot_gt: datasets/sample/val.lmdb   # an LMDB or a folder
      io_backend: {type: lmdb}         # optional: derived from dataroot_gt
      meta_info_file: ~                # optional: a subset, one name per line
      val_crop_size: ~                 # optional: centre crop side [px]
    kernels:                           # name -> kernel spec (basicsr kernels show ...)
      crosstalk: {type: crosstalk, size: 5, left: 0.06, right: 0.06}
    noises:                            # name -> noise spec (CrosstalkDataset's noise)
      gauss_0.01: {type: gaussian, sigma: 0.01, quantize: 8}
    methods:                           # name -> {type: ..., options}; in this order in the tables
      input: {type: identity}          # the degraded image itself
      wiener: {type: wiener}           # options: balance, boundary, pad (classical.wiener)
      rl: {type: richardson_lucy}      # options: iterations, boundary, pad
      converse: {type: converse}       # options: lam, boundary, pad
      nafnet:
        type: network
        weights: experiments/pretrained_models/NAFNet-GoPro-width32.pth
        network_g: {type: NAFNet, width: 32, ...}  # or a YAML path; default: beside the weights
        param_key: params              # optional (default params), strict: true, tile: ~, tile_overlap: 32
        noise: oracle                  # kernel-aware networks: oracle (the drawn parameters) | estimate (from X)
    metrics:                           # optional; BasicSR's val.metrics; default: PSNR and SSIM, RGB and Y
      psnr: {type: calculate_psnr, crop_border: 0, test_y_channel: false}
    figure:                            # optional: benchmark.png, the same crop of one image from every method
      image: 0                         # index in the test set
      crop_size: 64                    # [px]
      crop: auto                       # auto (per degradation, where the methods disagree most) | centre | [top, left]
      zoom: 2                          # nearest-neighbour magnification
      metric: ~                        # benchmark_<metric>.png, per method and image; default: the first of metrics

The classical methods are given the oracle kernel (the one the image was degraded with) and the
oracle noise level, :func:`newbp_plugin.sensor.degradation.noise_variance` of the parameters drawn
for that image; a network is given the kernel when its ``forward``
takes ``kernel`` (NewBP networks, KernelAwareNAFNet), the noise parameters drawn for the image when it
takes ``noise`` (KernelAwareNAFNet; or, with ``noise: estimate``, the parameters
:func:`newbp_plugin.sensor.noise_estimate.estimate_noise` finds in the degraded image), and its S
is kept for the figure when it returns one.
"""
import inspect
import itertools
import os.path as osp
import time

import numpy as np
import torch
from basicsr.metrics import calculate_metric
from basicsr.utils import mkdir_and_rename, tensor2img
from basicsr.utils.registry import METRIC_REGISTRY
from torch.utils.data import default_collate
from tqdm import tqdm

from newbp_plugin.archs.forward_arguments import forward_takes
from newbp_plugin.benchmark import classical
from newbp_plugin.inference.network import load_network, network_options, run_network
from newbp_plugin.benchmark.report import write_reports
from newbp_plugin.data.crosstalk_dataset import CrosstalkDataset, degrade_batch
from newbp_plugin.options import REQUIRED, Option, check_options, is_bool, is_int, one_of, optional, parse_options
from newbp_plugin.pictures import s_kind
from newbp_plugin.sensor.degradation import noise_variance
from newbp_plugin.sensor.noise_estimate import estimate_noise

OWNER = 'benchmark options'

def _mapping(value):
    return isinstance(value, dict) and bool(value)


OPTIONS = {
    'name': Option(),
    'dataset': Option(REQUIRED, _mapping, 'a non-empty mapping'),
    'kernels': Option(REQUIRED, _mapping, 'a non-empty mapping'),
    'noises': Option(REQUIRED, _mapping, 'a non-empty mapping'),
    'methods': Option(REQUIRED, _mapping, 'a non-empty mapping'),
    'device': Option('auto', one_of(('auto', 'cpu', 'cuda')), 'auto, cpu or cuda'),
    'seed': Option(0, lambda value: is_int(value, 0), 'an integer >= 0'),
    'linear_light': Option(True, is_bool, 'true or false'),
    'metrics': Option({
        'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False},
        'ssim': {'type': 'calculate_ssim', 'crop_border': 0, 'test_y_channel': False},
        'psnr_y': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': True},
        'ssim_y': {'type': 'calculate_ssim', 'crop_border': 0, 'test_y_channel': True},
    }, lambda value: isinstance(value, dict), 'a mapping'),
    'figure': Option({}, lambda value: isinstance(value, dict), 'a mapping'),
}
DATASET_OPTIONS = ('dataroot_gt', 'io_backend', 'meta_info_file', 'val_crop_size')
FIGURE_OPTIONS = {'image': Option(0, lambda value: is_int(value, 0), 'an integer >= 0'),
                  'crop_size': Option(64, lambda value: is_int(value, 1), 'a positive integer'),
                  'crop': Option('auto', lambda value: value in ('auto', 'centre') or (
                      isinstance(value, list) and len(value) == 2 and all(is_int(v, 0) for v in value)),
                                 'auto, centre or [top, left]'),
                  'zoom': Option(2, lambda value: is_int(value, 1), 'a positive integer'),
                  'metric': Option(None, optional(lambda value: isinstance(value, str)), 'a key of metrics')}
CLASSICAL = {'wiener': classical.wiener, 'richardson_lucy': classical.richardson_lucy,
             'converse': classical.converse}
CLASSICAL_SUPPLIED = ('x', 'kernel', 'noise_var', 'linear_light')  # given by the benchmark
NETWORK_OPTIONS = {'weights': Option(), 'network_g': Option(None), 'param_key': Option('params'),
                   'strict': Option(True, is_bool, 'true or false'),
                   'tile': Option(None, optional(lambda value: is_int(value, 1)), 'null or a positive integer'),
                   'tile_overlap': Option(32, lambda value: is_int(value, 0), 'an integer >= 0'),
                   'noise': Option('oracle', one_of(('oracle', 'estimate')), 'oracle or estimate')}
METHOD_TYPES = ('identity', 'network') + tuple(CLASSICAL)


class Method:
    """One restoration method of the benchmark, built from its options.

    ``method(x, kernel, noise_var, noise)`` -> ``(Ŷ, S or None)``, with x (1, C, H, W) on the device,
    the oracle kernel of the batch ((1, C, S, S) or channel-mixing (1, C, C, S, S):
    :mod:`newbp_plugin.sensor.layout`), the oracle σ² (1, C, 1, 1) of
    :func:`newbp_plugin.sensor.degradation.noise_variance` and the drawn noise parameters
    ``{'gain': (1, C), 'read_sigma': (1, C)}`` (None in the dry run of a classical method).

    Args:
        name (str): the method's name in the tables.
        opt (dict): ``{type: identity | wiener | richardson_lucy | converse | network, ...}``.
        linear_light (bool): the degradation acted on linear light (classical methods follow).
        device (torch.device): where networks run.
    """

    def __init__(self, name, opt, linear_light, device):
        where = f'methods:{name}'
        if not isinstance(opt, dict) or opt.get('type') not in METHOD_TYPES:
            raise ValueError(f"{OWNER}: {where} needs a type, one of {', '.join(METHOD_TYPES)}; got {opt!r}")
        self.name, self.type, self.linear_light = name, opt['type'], linear_light
        options = {key: value for key, value in opt.items() if key != 'type'}
        if self.type == 'identity':
            check_options(options, (), OWNER, prefix=f'{where}:')
        elif self.type == 'network':
            options = parse_options(options, NETWORK_OPTIONS, OWNER, prefix=f'{where}:')
            try:
                arch = network_options(options['network_g'], options['weights'])
                self.net = load_network(arch, options['weights'], options['param_key'], options['strict'], device)
            except ValueError as error:
                raise ValueError(f'{OWNER}: {where}: {error}') from None
            self.tile, self.tile_overlap, self.noise = options['tile'], options['tile_overlap'], options['noise']
        else:
            function = CLASSICAL[self.type]
            valid = [key for key in inspect.signature(function).parameters if key not in CLASSICAL_SUPPLIED]
            check_options(options, valid, OWNER, prefix=f'{where}:')
            self.options = options
            self.takes_noise = all(key not in options for key in ('balance', 'lam'))
            try:  # a bad value fails now, not after the first images: a dry run on a tiny image
                self(torch.ones(1, 3, 8, 8), torch.ones(1, 3, 1, 1), torch.full((1, 3, 1, 1), 1e-4), None)
            except (ValueError, TypeError) as error:
                raise ValueError(f'{OWNER}: {where}: {error}') from None

    def __call__(self, x, kernel, noise_var, noise):
        if self.type == 'identity':
            return x, None
        if self.type == 'network':
            if self.noise == 'estimate' and forward_takes(self.net, 'noise'):
                noise = estimate_noise(x, linear_light=self.linear_light)
            return run_network(self.net, x, kernel, noise, self.tile, self.tile_overlap)
        noise = {'noise_var': noise_var} if self.takes_noise else {}
        restored = CLASSICAL[self.type](x, kernel.to(x), linear_light=self.linear_light, **noise, **self.options)
        return restored, None


class Benchmark:
    """A benchmark run, its options checked and everything built on construction.

    Args:
        opt (dict): the options (see the module docstring).

    Raises:
        ValueError: an unknown or invalid option (the message names it), a missing file,
            weights that do not fit their network.
    """

    def __init__(self, opt):
        if not isinstance(opt, dict):
            raise ValueError(f'{OWNER}: the options must be a mapping, got {type(opt).__name__}')
        self.opt = parse_options(opt, OPTIONS, OWNER)
        seed, linear_light = self.opt['seed'], self.opt['linear_light']
        self.device = self._device(self.opt['device'])

        check_options(self.opt['dataset'], DATASET_OPTIONS, OWNER, prefix='dataset:')
        self.degradations = []  # (kernel name, noise name, CrosstalkDataset)
        for index, ((kernel_name, kernel), (noise_name, noise)) in enumerate(
                itertools.product(self.opt['kernels'].items(), self.opt['noises'].items())):
            dataset_opt = dict(self.opt['dataset'], phase='test', kernel=kernel, noise=noise,
                               linear_light=linear_light, val_seed=seed + index)
            try:
                dataset = CrosstalkDataset(dataset_opt)
            except ValueError as error:
                raise ValueError(f'{OWNER}: kernels:{kernel_name} / noises:{noise_name}: {error}') from None
            self.degradations.append((kernel_name, noise_name, dataset))

        for name, metric in self.opt['metrics'].items():
            if not isinstance(metric, dict) or metric.get('type') not in METRIC_REGISTRY:
                raise ValueError(f"{OWNER}: metrics:{name} needs a type from BasicSR's METRIC_REGISTRY "
                                 f"(e.g. calculate_psnr), got {metric!r}")
        self.figure = parse_options(self.opt['figure'], FIGURE_OPTIONS, OWNER, prefix='figure:')
        self.figure['metric'] = self.figure['metric'] or next(iter(self.opt['metrics']), None)
        if self.figure['metric'] is not None and self.figure['metric'] not in self.opt['metrics']:
            raise ValueError(f"{OWNER}: figure:metric must be a key of metrics ({', '.join(self.opt['metrics'])}), "
                             f"got {self.figure['metric']!r}")
        num_images = len(self.degradations[0][2])
        if not 0 <= self.figure['image'] < num_images:
            raise ValueError(f"{OWNER}: figure:image must be an index below {num_images}, got {self.figure['image']}")
        self.methods = [Method(name, method, linear_light, self.device)
                        for name, method in self.opt['methods'].items()]
        for method in self.methods:
            mixing = [f'{kernel} / {noise}' for kernel, noise, dataset in self.degradations if dataset.channel_mixing]
            if method.type == 'converse' and mixing:
                raise ValueError(f'{OWNER}: methods:{method.name}: Converse2D inverts depthwise kernels only; '
                                 f'{mixing[0]} mixes channels')

    @staticmethod
    def _device(device):
        if device == 'auto':
            return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
        if device == 'cuda' and not torch.cuda.is_available():
            raise ValueError(f'{OWNER}: option device is cuda, but torch sees no CUDA device')
        return torch.device(device)

    def _timed(self, method, *args):
        """``(method(*args), seconds)``, synchronised on CUDA."""
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        out = method(*args)
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        return out, time.perf_counter() - start

    def run(self, root='.'):
        """Evaluate, write the reports into ``root/results/<name>/``; return that folder."""
        folder = osp.join(root, 'results', str(self.opt['name']))
        metric_names = list(self.opt['metrics'])
        rows, figure_rows = [], []
        num_images = len(self.degradations[0][2])
        progress = tqdm(total=len(self.degradations) * num_images * len(self.methods), unit='run',
                        desc=f'benchmark {self.opt["name"]}')
        warmed_up = set()
        for kernel_name, noise_name, dataset in self.degradations:
            results = {method.name: {} for method in self.methods}  # method -> image -> figures
            figure_row = {'label': f'{kernel_name} / {noise_name}', 'tiles': []}
            for index in range(num_images):
                item = dataset[index]
                image_name = osp.basename(item['gt_path'])
                batch = default_collate([item])
                kernel, gt = batch['kernel'], batch['gt']
                x = degrade_batch(batch, self.device)
                noise_var = noise_variance(batch['sensor'], x)
                noise = {key: batch['sensor'][key] for key in ('gain', 'read_sigma')}  # the oracle parameters
                gt_img = tensor2img([gt])
                in_figure = index == self.figure['image']
                if in_figure:
                    figure_row['tiles'].append(('clean', gt, None, None))
                for method in self.methods:
                    progress.set_postfix_str(f'{kernel_name} / {noise_name}: {method.name}')
                    args = (x, kernel, noise_var, noise)
                    if method.name not in warmed_up:
                        method(*args)
                        warmed_up.add(method.name)
                    (restored, s), seconds = self._timed(method, *args)
                    restored = restored.detach().cpu()
                    data = {'img': tensor2img([restored]), 'img2': gt_img}
                    figures = {key: float(calculate_metric(data, self.opt['metrics'][key])) for key in metric_names}
                    figures['runtime_ms'] = seconds * 1000
                    results[method.name][image_name] = figures
                    if in_figure:
                        figure_row['tiles'].append((method.name, restored, None if s is None else s.detach().cpu(),
                                                    None if s is None else s_kind(method.net)))
                    progress.update()
            figure_rows.append(figure_row)
            for method in self.methods:
                images = results[method.name]
                rows.append({
                    'kernel': kernel_name,
                    'noise': noise_name,
                    'method': method.name,
                    'mean': {key: float(np.mean([v[key] for v in images.values()]))
                             for key in metric_names + ['runtime_ms']},
                    'images': images,
                })
        progress.close()
        mkdir_and_rename(folder)
        write_reports(folder, self.opt, str(self.device), metric_names, rows, figure_rows, self.figure)
        return folder
