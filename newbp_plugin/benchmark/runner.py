"""``basicsr benchmark -opt options/benchmark/X.yml``: methods × degradations on a test set.

Every clean image of the test set is degraded by every pair (kernel, noise) of the options,
exactly as NewBPModel degrades validation data (CrosstalkDataset reads the image and draws the
degradation, :func:`~newbp_plugin.data.crosstalk_dataset.degrade_batch` applies it on the benchmark's device):
degradation d (kernels outer, noises inner, from 0) of image i draws from
``np.random.default_rng([seed + d, i])``, so every run sees the same degraded images. Every
method restores every degraded image; BasicSR's metrics compare the result with the clean image
(8-bit, as BasicSR's validation does), and the time of each call is measured (after one warm-up
call per method). Results go to ``results/<name>/`` (see :mod:`newbp_plugin.benchmark.report`).

Raw (``dataset: domain: raw``): the clean images are unprocessed into packed Bayer raw with a
camera drawn per image and degraded on the mosaic, as CrosstalkDataset trains (its options
``cfa``, ``raw_bits``, ``black_level``, ``white_level``; kernels such as ``{type: bayer_crosstalk}``
give the packed (4, 4, s, s) kernel; noise in units of the normalised raw, without ``quantize``);
methods restore the (1, 4, H/2, W/2) packed raw. Each metric says what it compares (its key
``domain``):

- ``raw`` (default): the packed raw as its (H, W) mosaic, 8-bit, all four phases, as NewBPModel's
  validation computes its metrics;
- ``srgb``: the result and the clean raw both through one fixed pipeline, the image's own camera:
  OpenCV bilinear demosaicing, white balance, colour matrix, sRGB curve
  (:func:`newbp_plugin.sensor.unprocess.process`); ``demosaic_wiener`` too, on the raw it
  mosaicked back (``view: raw``, default), or from its own restored RGB without a second
  demosaicing (``view: rgb``, :func:`~newbp_plugin.sensor.unprocess.process_rgb`; it then lacks the
  bilinear demosaicing's smoothing that the clean reference went through). Colour fidelity:
  ``calculate_delta_e2000`` (mean CIEDE2000, :mod:`newbp_plugin.metrics`), on ``srgb`` only.

Options (YAML; an unknown key fails naming it)::

    name: sample                       # results/<name>/ (an existing folder is archived, as BasicSR does)
    device: auto                       # auto (cuda when available) | cpu | cuda
    seed: 0                            # degradation d of image i: default_rng([seed + d, i])
    linear_light: true                 # K and N act on linear light (the images are sRGB-encoded); raw: false or unset
    dataset:                           # clean images; CrosstalkDataset's options of the same names
      dataroot_gt: datasets/sample/val.lmdb   # an LMDB or a folder
      io_backend: {type: lmdb}         # optional: derived from dataroot_gt
      meta_info_file: ~                # optional: a subset, one name per line
      val_crop_size: ~                 # optional: centre crop side [px] (raw: even)
      domain: rgb                      # optional: rgb | raw (packed Bayer raw, see above)
      cfa: RGGB                        # raw only, optional: RGGB | BGGR | GRBG | GBRG
      raw_bits: 12                     # raw only, optional: 10..14
      black_level: 256                 # raw only, optional [codes]; default 64 * 2^(raw_bits - 10)
      white_level: 4095                # raw only, optional [codes]; default 2^raw_bits - 1
    kernels:                           # name -> kernel spec (basicsr kernels show ...)
      crosstalk: {type: crosstalk, size: 5, left: 0.06, right: 0.06}
    noises:                            # name -> noise spec (CrosstalkDataset's noise)
      gauss_0.01: {type: gaussian, sigma: 0.01, quantize: 8}
    methods:                           # name -> {type: ..., options}; in this order in the tables
      input: {type: identity}          # the degraded image itself
      wiener: {type: wiener}           # options: balance, boundary, pad (classical.wiener)
      rl: {type: richardson_lucy}      # options: iterations, boundary, pad
      converse: {type: converse}       # options: lam, boundary, pad (depthwise kernels: not on raw)
      demosaic_wiener: {type: demosaic_wiener}   # raw only: OpenCV demosaic, RGB Wiener, mosaic back; balance, boundary, pad, view
      nafnet:
        type: network
        weights: experiments/pretrained_models/NAFNet-GoPro-width32.pth
        network_g: {type: NAFNet, width: 32, ...}  # or a YAML path; default: beside the weights
        param_key: params              # optional (default params), strict: true, tile: ~, tile_overlap: 32
        noise: oracle                  # kernel-aware networks: oracle (the drawn parameters) | estimate (from X)
    metrics:                           # optional; BasicSR's val.metrics; default: PSNR and SSIM, RGB and Y
      psnr: {type: calculate_psnr, crop_border: 0, test_y_channel: false}
      # raw default: psnr and ssim (domain raw), psnr_srgb (domain srgb) and delta_e00:
      delta_e00: {type: calculate_delta_e2000, domain: srgb}   # domain (raw only): raw (default) | srgb
    figure:                            # optional: benchmark.png, the same crop of one image from every method
      image: 0                         # index in the test set
      crop_size: 64                    # [px]
      crop: auto                       # auto (per degradation, where the methods disagree most) | centre | [top, left]
      zoom: 2                          # nearest-neighbour magnification
      metric: ~                        # benchmark_<metric>.png, per method and image; default: the first of metrics

Raw, ``benchmark.png`` is the camera engineer's view, per degradation: the crop of the degraded
mosaic (each pixel in its filter's colour), the demosaiced input, each method's result and the
clean raw, all processed to sRGB by the image's camera (the crop starts on a whole CFA cell), and
the phase kernels of the image's K.

The classical methods are given the oracle kernel (the one the image was degraded with) and the
oracle noise level, :func:`newbp_plugin.sensor.degradation.noise_variance` of the parameters drawn
for that image; a network is given the kernel when its ``forward``
takes ``kernel`` (NewBP networks, KernelAwareNAFNet), the noise parameters drawn for the image when it
takes ``noise`` (KernelAwareNAFNet; or, with ``noise: estimate``, the parameters
:func:`newbp_plugin.sensor.noise_estimate.estimate_noise` finds in the degraded image), and its S
is kept for the figure when it returns one. On raw, classical methods work on the four phase
planes with the packed kernel (linear: no sRGB decoding), networks take the packed raw as they
were trained (``img_channel: 4``).
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
from newbp_plugin.data.crosstalk_dataset import RAW_OPTIONS
from newbp_plugin.pictures import s_kind
from newbp_plugin.sensor.degradation import noise_variance
from newbp_plugin.sensor.mosaic import unpack
from newbp_plugin.sensor.noise_estimate import estimate_noise
from newbp_plugin.sensor.unprocess import Cameras, mosaic_view, process, process_rgb

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
DATASET_OPTIONS = ('dataroot_gt', 'io_backend', 'meta_info_file', 'val_crop_size', 'domain') + RAW_OPTIONS
RAW_METRICS = {  # the default metrics of a raw benchmark
    'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False, 'domain': 'raw'},
    'ssim': {'type': 'calculate_ssim', 'crop_border': 0, 'test_y_channel': False, 'domain': 'raw'},
    'psnr_srgb': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False, 'domain': 'srgb'},
    'delta_e00': {'type': 'calculate_delta_e2000', 'crop_border': 0, 'domain': 'srgb'},
}
METRIC_DOMAINS = ('raw', 'srgb')  # what a metric of a raw benchmark compares (module docstring)
COLOUR_METRICS = ('calculate_delta_e2000', )  # metrics of colour images: srgb only on raw
FIGURE_OPTIONS = {'image': Option(0, lambda value: is_int(value, 0), 'an integer >= 0'),
                  'crop_size': Option(64, lambda value: is_int(value, 1), 'a positive integer'),
                  'crop': Option('auto', lambda value: value in ('auto', 'centre') or (
                      isinstance(value, list) and len(value) == 2 and all(is_int(v, 0) for v in value)),
                                 'auto, centre or [top, left]'),
                  'zoom': Option(2, lambda value: is_int(value, 1), 'a positive integer'),
                  'metric': Option(None, optional(lambda value: isinstance(value, str)), 'a key of metrics')}
CLASSICAL = {'wiener': classical.wiener, 'richardson_lucy': classical.richardson_lucy,
             'converse': classical.converse, 'demosaic_wiener': classical.demosaic_wiener}
RAW_INPUT_TITLE = 'input, demosaiced'  # the degraded raw in the figure, through the fixed pipeline
RAW_ONLY = ('demosaic_wiener', )  # methods of packed raw only
VIEWS = ('raw', 'rgb')  # demosaic_wiener's view: its mosaicked-back raw through the fixed ISP, or its own RGB
CLASSICAL_SUPPLIED = ('x', 'kernel', 'noise_var', 'linear_light', 'cfa', 'return_rgb')  # given by the benchmark
NETWORK_OPTIONS = {'weights': Option(), 'network_g': Option(None), 'param_key': Option('params'),
                   'strict': Option(True, is_bool, 'true or false'),
                   'tile': Option(None, optional(lambda value: is_int(value, 1)), 'null or a positive integer'),
                   'tile_overlap': Option(32, lambda value: is_int(value, 0), 'an integer >= 0'),
                   'noise': Option('oracle', one_of(('oracle', 'estimate')), 'oracle or estimate')}
METHOD_TYPES = ('identity', 'network') + tuple(CLASSICAL)


class Method:
    """One restoration method of the benchmark, built from its options.

    ``method(x, kernel, noise_var, noise)`` -> ``(Ŷ, S or None, RGB or None)``, with x (1, C, H, W) on
    the device, the oracle kernel of the batch ((1, C, S, S) or channel-mixing (1, C, C, S, S):
    :mod:`newbp_plugin.sensor.layout`), the oracle σ² (1, C, 1, 1) of
    :func:`newbp_plugin.sensor.degradation.noise_variance` and the drawn noise parameters
    ``{'gain': (1, C), 'read_sigma': (1, C)}`` (None in the dry run of a classical method). RGB: the
    demosaiced camera RGB a raw method restored before mosaicking it back (``demosaic_wiener``).

    Args:
        name (str): the method's name in the tables.
        opt (dict): ``{type: identity | wiener | richardson_lucy | converse | demosaic_wiener | network, ...}``.
        linear_light (bool): the degradation acted on linear light (classical methods follow).
        device (torch.device): where networks run.
        cfa (str | None): the CFA pattern of packed raw (C = 4); None: RGB images.
    """

    def __init__(self, name, opt, linear_light, device, cfa=None):
        where = f'methods:{name}'
        if not isinstance(opt, dict) or opt.get('type') not in METHOD_TYPES:
            raise ValueError(f"{OWNER}: {where} needs a type, one of {', '.join(METHOD_TYPES)}; got {opt!r}")
        self.name, self.type, self.linear_light, self.cfa = name, opt['type'], linear_light, cfa
        if self.type in RAW_ONLY and cfa is None:
            raise ValueError(f'{OWNER}: {where}: {self.type} restores packed raw; set dataset:domain: raw')
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
            self.view = options.pop('view', 'raw') if self.type in RAW_ONLY else None
            if self.view not in (None, ) + VIEWS:
                raise ValueError(f"{OWNER}: {where}:view must be one of {', '.join(VIEWS)}, got {self.view!r}")
            function = CLASSICAL[self.type]
            valid = [key for key in inspect.signature(function).parameters if key not in CLASSICAL_SUPPLIED]
            check_options(options, valid, OWNER, prefix=f'{where}:')
            self.options = options
            self.takes_noise = all(key not in options for key in ('balance', 'lam'))
            channels = 3 if cfa is None else 4
            # the identity kernel of the images (raw: packed, channel-mixing)
            kernel = torch.ones(1, 3, 1, 1) if cfa is None else torch.eye(4)[None, :, :, None, None]
            try:  # a bad value fails now, not after the first images: a dry run on a tiny image
                self(torch.full((1, channels, 8, 8), 0.5), kernel, torch.full((1, channels, 1, 1), 1e-4), None)
            except (ValueError, TypeError) as error:
                raise ValueError(f'{OWNER}: {where}: {error}') from None

    def __call__(self, x, kernel, noise_var, noise):
        if self.type == 'identity':
            return x, None, None
        if self.type == 'network':
            if self.noise == 'estimate' and forward_takes(self.net, 'noise'):
                noise = estimate_noise(x, linear_light=self.linear_light)
            return run_network(self.net, x, kernel, noise, self.tile, self.tile_overlap) + (None, )
        noise = {'noise_var': noise_var} if self.takes_noise else {}
        if self.type in RAW_ONLY:
            noise.update(cfa=self.cfa, return_rgb=self.view == 'rgb')
        restored = CLASSICAL[self.type](x, kernel.to(x), linear_light=self.linear_light, **noise, **self.options)
        return (restored[0], None, restored[1]) if isinstance(restored, tuple) else (restored, None, None)


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
        check_options(self.opt['dataset'], DATASET_OPTIONS, OWNER, prefix='dataset:')
        self.raw = self.opt['dataset'].get('domain') == 'raw'
        if self.raw:  # raw is linear already; RAW_METRICS unless metrics are given
            if opt.get('linear_light'):
                raise ValueError(f'{OWNER}: option linear_light must be false or unset with dataset:domain: raw '
                                 '(raw data are linear light already)')
            self.opt['linear_light'] = False
            if 'metrics' not in opt:
                self.opt['metrics'] = {name: dict(spec) for name, spec in RAW_METRICS.items()}
        seed, linear_light = self.opt['seed'], self.opt['linear_light']
        self.device = self._device(self.opt['device'])

        self.degradations = []  # (kernel name, noise name, CrosstalkDataset)
        for index, ((kernel_name, kernel), (noise_name, noise)) in enumerate(
                itertools.product(self.opt['kernels'].items(), self.opt['noises'].items())):
            dataset_opt = dict(self.opt['dataset'], phase='test', kernel=kernel, noise=noise, val_seed=seed + index)
            if not self.raw:  # raw: CrosstalkDataset takes no linear_light
                dataset_opt['linear_light'] = linear_light
            try:
                dataset = CrosstalkDataset(dataset_opt)
            except ValueError as error:
                raise ValueError(f'{OWNER}: kernels:{kernel_name} / noises:{noise_name}: {error}') from None
            self.degradations.append((kernel_name, noise_name, dataset))

        self.metric_domains = {}  # metric name -> 'rgb' (RGB benchmark), 'raw' or 'srgb'
        for name, metric in self.opt['metrics'].items():
            if not isinstance(metric, dict) or metric.get('type') not in METRIC_REGISTRY:
                raise ValueError(f"{OWNER}: metrics:{name} needs a type from BasicSR's METRIC_REGISTRY "
                                 f"(e.g. calculate_psnr), got {metric!r}")
            self.metric_domains[name] = self._metric_domain(name, metric)
        self.cfa = self.degradations[0][2].opt['cfa'] if self.raw else None
        self.figure = parse_options(self.opt['figure'], FIGURE_OPTIONS, OWNER, prefix='figure:')
        self.figure['metric'] = self.figure['metric'] or next(iter(self.opt['metrics']), None)
        if self.figure['metric'] is not None and self.figure['metric'] not in self.opt['metrics']:
            raise ValueError(f"{OWNER}: figure:metric must be a key of metrics ({', '.join(self.opt['metrics'])}), "
                             f"got {self.figure['metric']!r}")
        num_images = len(self.degradations[0][2])
        if not 0 <= self.figure['image'] < num_images:
            raise ValueError(f"{OWNER}: figure:image must be an index below {num_images}, got {self.figure['image']}")
        self.methods = [Method(name, method, linear_light, self.device, self.cfa)
                        for name, method in self.opt['methods'].items()]
        for method in self.methods:
            mixing = [f'{kernel} / {noise}' for kernel, noise, dataset in self.degradations if dataset.channel_mixing]
            if method.type == 'converse' and mixing:
                raise ValueError(f'{OWNER}: methods:{method.name}: Converse2D inverts depthwise kernels only; '
                                 f'{mixing[0]} mixes channels')

    def _metric_domain(self, name, metric):
        """What metric ``name`` compares: 'rgb' (an RGB benchmark), 'raw' or 'srgb' (module docstring)."""
        domain = metric.get('domain')
        if not self.raw:
            if domain not in (None, 'rgb'):
                raise ValueError(f'{OWNER}: metrics:{name}: domain {domain!r} applies to raw benchmarks only '
                                 '(dataset:domain: raw); remove it')
            return 'rgb'
        domain = domain or 'raw'
        if domain not in METRIC_DOMAINS:
            raise ValueError(f"{OWNER}: metrics:{name}: domain must be one of {', '.join(METRIC_DOMAINS)}, "
                             f'got {domain!r}')
        if domain == 'raw' and metric['type'] in COLOUR_METRICS:
            raise ValueError(f"{OWNER}: metrics:{name}: {metric['type']} compares colours; the raw mosaic has "
                             'one channel: set domain: srgb')
        return domain

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

    def _pictures(self, image, rgb, cameras):
        """``({domain: 8-bit BGR picture the metrics compare}, the image to show (1, 3, H, W) in [0, 1])``.

        RGB: the image itself. Raw (``cameras``): ``image`` is packed raw; 'raw' is its mosaic, 'srgb'
        the fixed pipeline of the image's camera on it, or on ``rgb`` (camera RGB restored by the method).
        """
        if cameras is None:
            image = image.detach().cpu()
            return {'rgb': tensor2img([image])}, image
        image = image.detach().cpu().double()
        if rgb is None:
            view = process(unpack(image.clamp(0, 1)), cameras, self.cfa)
        else:
            view = process_rgb(rgb.detach().cpu().double(), cameras)
        return {'raw': tensor2img([unpack(image)]), 'srgb': tensor2img([view])}, view

    def _figures(self, pictures, gt_pictures):
        """{metric: value} of one result's :meth:`_pictures` against the clean image's, each metric in its domain."""
        figures = {}
        for name, domain in self.metric_domains.items():
            spec = {key: value for key, value in self.opt['metrics'][name].items() if key != 'domain'}
            figures[name] = float(calculate_metric({'img': pictures[domain], 'img2': gt_pictures[domain]}, spec))
        return figures

    def _note(self, figures):
        """The figures shown under a raw figure's panel: the first metric on the raw, every one on sRGB."""
        raw = next((key for key, domain in self.metric_domains.items() if domain == 'raw'), None)
        shown = [raw] + [key for key, domain in self.metric_domains.items() if domain == 'srgb']
        return ', '.join(f'{key} {figures[key]:.2f}' for key in shown if key is not None)

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
                cameras = Cameras.from_draws(batch['sensor']) if self.raw else None
                gt_pictures, gt_view = self._pictures(gt, None, cameras)
                in_figure = index == self.figure['image']
                if in_figure:
                    figure_row['tiles'].append(('clean', gt_view, None, None))
                    if self.raw:  # the camera engineer's view: the mosaic, the demosaiced input, the phase kernels
                        input_pictures, input_view = self._pictures(x, None, cameras)
                        figure_row.update(raw=True, cfa=self.cfa, kernel=kernel[0].numpy(),
                                          mosaic=mosaic_view(unpack(x.detach().cpu().double()), cameras, self.cfa),
                                          notes={RAW_INPUT_TITLE: self._note(self._figures(input_pictures,
                                                                                            gt_pictures))})
                        figure_row['tiles'].append((RAW_INPUT_TITLE, input_view, None, None))
                for method in self.methods:
                    progress.set_postfix_str(f'{kernel_name} / {noise_name}: {method.name}')
                    args = (x, kernel, noise_var, noise)
                    if method.name not in warmed_up:
                        method(*args)
                        warmed_up.add(method.name)
                    (restored, s, rgb), seconds = self._timed(method, *args)
                    pictures, view = self._pictures(restored.detach().cpu(), rgb, cameras)
                    figures = self._figures(pictures, gt_pictures)
                    figures['runtime_ms'] = seconds * 1000
                    results[method.name][image_name] = figures
                    if in_figure and not (self.raw and method.type == 'identity'):  # raw: the input is shown
                        if s is not None:
                            s = s.detach().cpu()
                            s = unpack(s) if self.raw else s  # raw: S as its mosaic, the crop's pixels
                        if self.raw:
                            figure_row['notes'][method.name] = self._note(figures)
                        figure_row['tiles'].append((method.name, view, s, None if s is None else s_kind(method.net)))
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
