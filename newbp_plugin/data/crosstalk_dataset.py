"""CrosstalkDataset: clean images from an LMDB or a folder, with the draws of their degradation ``X = K * Y + N``."""
import itertools
import logging
import os
import os.path as osp

import cv2
import lmdb
import numpy as np
import torch
from basicsr.utils import bgr2ycbcr, imfrombytes, scandir
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from newbp_plugin.data.lmdb_tools import IMAGE_SUFFIXES
from newbp_plugin.kernels import MAX_KERNEL_SIZE, KernelSampler, build_kernel
from newbp_plugin.kernels.bayer import CFA_PATTERNS, on_cfa, phase_kernels_to_packed
from newbp_plugin.kernels.build import RANDOM_TYPE, as_spec
from newbp_plugin.kernels.grid import centre_pad
from newbp_plugin.options import Option, is_bool, is_int, one_of, optional, parse_options
from newbp_plugin.ranges import RANDOM_RULES
from newbp_plugin.registration import register
from newbp_plugin.sensor.degradation import degrade
from newbp_plugin.sensor.mosaic import pack
from newbp_plugin.sensor.noise import NoiseModel
from newbp_plugin.sensor.unprocess import default_raw_levels, draw_cameras, unprocess

logger = logging.getLogger('basicsr')

COLORS = {'rgb': 3, 'y': 1, 'gray': 1}  # color option -> channels
DOMAINS = ('rgb', 'raw')
RAW_CHANNELS = 4  # the phases of the packed CFA mosaic
RAW_BITS = (10, 14)  # the range of raw_bits
RAW_OPTIONS = ('cfa', 'raw_bits', 'black_level', 'white_level')  # options of domain raw only
OPTIONS = {  # the dataset's own options (io_backend: derived from dataroot_gt)
    'dataroot_gt': Option(),
    'io_backend': Option(None, optional(lambda value: isinstance(value, dict)), 'a mapping {type: ...}'),
    'meta_info_file': Option(None),
    'gt_size': Option(None, optional(lambda value: is_int(value, 1)), 'a positive integer (required for training)'),
    'use_hflip': Option(True, is_bool, 'true or false'),
    'use_rot': Option(True, is_bool, 'true or false'),
    'kernel': Option({'type': 'crosstalk'}),
    'kernel_size': Option(None, optional(lambda value: is_int(value, 1) and value % 2 == 1 and value <= MAX_KERNEL_SIZE),
                          f'null or an odd integer <= {MAX_KERNEL_SIZE}'),
    'noise': Option(None),
    'color': Option('rgb', one_of(COLORS), f"one of {', '.join(COLORS)}"),
    'linear_light': Option(True, is_bool, 'true or false'),
    'val_crop_size': Option(None, optional(lambda value: is_int(value, 1)), 'null or a positive integer'),
    'val_seed': Option(0, lambda value: is_int(value, 0), 'a non-negative integer'),
    'domain': Option('rgb', one_of(DOMAINS), f"one of {', '.join(DOMAINS)}"),
    'cfa': Option('RGGB', one_of(CFA_PATTERNS), f"one of {', '.join(CFA_PATTERNS)}"),
    'raw_bits': Option(12, lambda value: is_int(value, RAW_BITS[0]) and value <= RAW_BITS[1],
                       f'an integer from {RAW_BITS[0]} to {RAW_BITS[1]}'),
    'black_level': Option(None, optional(lambda value: is_int(value, 0)), 'null or an integer >= 0 [codes]'),
    'white_level': Option(None, optional(lambda value: is_int(value, 1)), 'null or a positive integer [codes]'),
}
# Options BasicSR itself writes into, or reads from, every dataset's options.
BASICSR_OPTIONS = ('name', 'type', 'phase', 'scale', 'num_worker_per_gpu', 'batch_size_per_gpu',
                   'dataset_enlarge_ratio', 'prefetch_mode', 'num_prefetch_queue', 'pin_memory', 'persistent_workers',
                   'use_shuffle')
MAX_KERNEL_CORNERS = 4096  # random-spec extremes built to find the largest kernel
LMDB_DEFAULTS = {'readonly': True, 'lock': False, 'readahead': False}  # BasicSR's LmdbBackend defaults
_LMDB_ENVIRONMENTS = {}  # LMDB path -> (process id, lmdb.Environment)


def _fail(message):
    raise ValueError(f'CrosstalkDataset: {message}')


def _read_meta_info(path):
    """The names of a meta-info file: the first field of each line (BasicSR: ``name.png (h,w,c) compression``)."""
    if not osp.isfile(path):
        _fail(f'meta-info file not found: {path}')
    with open(path, encoding='utf-8') as f:
        names = [line.split()[0] for line in f if line.strip()]
    if not names:
        _fail(f'meta-info file {path} lists no image')
    return names


def _corner_specs(spec):
    """Every fixed spec made by setting each random part of a kernel spec to one of its extremes.

    ``{uniform|randint: [low, high]}`` -> low or high; ``{choice: [...]}`` and ``type: random`` ->
    each choice. Kernel sizes grow monotonically with every size-setting option (sigma, radius,
    length, wavelength, f_number, size, ...), so the largest kernel of a spec is one of these.
    """
    if isinstance(spec, (list, tuple)):
        return [list(combination) for combination in itertools.product(*map(_corner_specs, spec))]
    if not isinstance(spec, dict):
        return [spec]
    if len(spec) == 1 and next(iter(spec)) in RANDOM_RULES:
        rule, values = next(iter(spec.items()))
        return [corner for value in (values if rule == 'choice' else (values[0], values[-1]))
                for corner in _corner_specs(value)]
    if spec.get('type') == RANDOM_TYPE:
        return [corner for choice in spec['choices'] for corner in _corner_specs(as_spec(choice))]
    keys = list(spec)
    return [dict(zip(keys, values)) for values in itertools.product(*(_corner_specs(spec[key]) for key in keys))]


def _open_lmdb(path, options):
    """The environment of the LMDB ``path`` in this process.

    py-lmdb opens a path once per process, and an environment must not be used across a fork:
    the datasets of a process share one (whatever spelling of the path they were given: the key
    is the real path; the first opening's options hold); a DataLoader worker closes the copy it
    inherited (the parent's stays open) and opens its own.
    """
    key = osp.realpath(path)
    pid, env = _LMDB_ENVIRONMENTS.get(key, (None, None))
    if pid != os.getpid():
        if env is not None:
            env.close()
        env = lmdb.open(key, **dict(LMDB_DEFAULTS, **options))
        _LMDB_ENVIRONMENTS[key] = (os.getpid(), env)
    return env


def _window(img, top, left, height, width):
    """``img[top:top + height, left:left + width]``, continued by reflection where it leaves the image."""
    img_h, img_w = img.shape[:2]
    top_in, left_in = max(top, 0), max(left, 0)
    bottom_in, right_in = min(top + height, img_h), min(left + width, img_w)
    pads = [(top_in - top, top + height - bottom_in), (left_in - left, left + width - right_in)]
    patch = img[top_in:bottom_in, left_in:right_in]
    if any(any(pad) for pad in pads):
        patch = np.pad(patch, pads + [(0, 0)] * (img.ndim - 2), mode='reflect')
    return patch


def degrade_batch(batch, device=None):
    """X of a batch of CrosstalkDataset items (collated), degraded on ``device``.

    Args:
        batch (dict): ``scene``, ``gt``, ``kernel`` and ``sensor`` of the items, with a batch dim.
        device (torch.device | str | None): where to degrade; None: where the batch is.

    Returns:
        Tensor: (B, C, H, W) X, the size of ``gt``.
    """
    scene = batch['scene'].to(device)
    context = (scene.shape[-1] - batch['gt'].shape[-1]) // 2
    return degrade(scene, batch['kernel'].to(device), batch['sensor'], context)


@register(DATASET_REGISTRY)
class CrosstalkDataset(data.Dataset):
    """Clean images Y from an LMDB or a folder, and the draws of ``X = K * Y + N`` for every sample.

    The dataset returns clean crops; the model degrades the whole batch on its device
    (``NewBPModel.feed_data`` calls :func:`newbp_plugin.sensor.degradation.degrade`), as
    Real-ESRGAN does. Each item is a dict:

    * ``gt``: Y, float32 (C, H, W) in [0, 1] (C = 3 for ``color: rgb``, else 1);
    * ``scene``: (C, H + 2r, W + 2r), Y with r = S // 2 pixels of its real surroundings on each
      side (reflected beyond the image's border), which the kernel reads;
    * ``kernel``: the float32 K of this sample, zero-padded to (C, S, S), or to (C, C, S, S) when
      the spec can give channel-mixing kernels (S: ``kernel_size``), so that batches collate into
      the layouts of :mod:`newbp_plugin.sensor.layout`;
    * ``sensor``: the noise drawn for this sample (:meth:`NoiseModel.draw`: ``gain``,
      ``read_sigma``, ``clip``, ``quantize``, ``seed``) and ``linear_light``;
    * ``gt_path`` (LMDB key or file path) and ``lq_path`` (the same: X is made from it).

    Domain raw (``domain: raw``): the clean sRGB crop, flipped and rotated in RGB (so that the CFA
    phase stays put), is unprocessed with a camera drawn for the sample (inverse sRGB, CCM and
    white balance after Brooks et al. 2019: :func:`newbp_plugin.sensor.unprocess.unprocess`),
    mosaicked on ``cfa`` and packed (:func:`newbp_plugin.sensor.mosaic.pack`). The target ``gt``
    is this clean packed raw, (4, H/2, W/2), linear, 0 at the black level and 1 at the white
    level, unquantised: the network restores raw, an ISP does the rest
    (:func:`~newbp_plugin.sensor.unprocess.process` views it, with the camera of ``sensor``).
    ``scene`` is it with S // 2 packed pixels of context; ``kernel`` is packed, (4, 4, S, S):
    a spec's (4, 4, s, s) kernel as it is (``{type: bayer_crosstalk}``, its pattern the dataset's
    ``cfa``), a (k, k) PSF as the kernel of every pixel of the mosaic and a (4, k, k) kernel as the
    phase kernels of :mod:`newbp_plugin.kernels.bayer`, both converted exactly; an RGB kernel
    (3 channels) is an error. The model makes X the codes of a raw file
    (:func:`newbp_plugin.sensor.degradation.degrade`): K on the packed planes, noise parameters in
    units of the normalised raw (a list gives one per phase), clipping at the white level and at
    code 0, ``raw_bits`` codes, read back normalised. ``sensor`` also holds ``black_level``,
    ``white_level``, ``raw_bits``, ``cfa`` and the camera (``rgb_to_camera``, ``red_gain``,
    ``blue_gain``), and its ``linear_light`` is false (the data are linear already).

    Training (``phase: train``): a random ``gt_size`` crop, flips and 90° rotations of the clean
    patch (before K: K keeps the sensor's orientation), then the draws of K and noise. Every random draw of a
    sample comes from ``np.random.default_rng([t, index])``, ``t`` drawn from torch's RNG, which
    BasicSR seeds per rank and the DataLoader per worker and per epoch: samples differ between
    workers, ranks and epochs, and repeat with torch's seed. Validation / test: the full image or
    its centre ``val_crop_size`` crop, with draws from ``default_rng([val_seed, index])``: the same
    degraded image at every epoch and in every run.

    Options (BasicSR's names first; an unknown option is an error that names it):
        dataroot_gt (str): the LMDB (``*.lmdb``) or folder of clean images (8- or 16-bit PNG, JPEG, ...;
            grey images in a colour set are replicated; an alpha channel is dropped).
        io_backend (dict): ``{type: lmdb}`` (other keys: arguments of ``lmdb.open``, default BasicSR's
            ``readonly: true, lock: false, readahead: false``) or ``{type: disk}``.
            Default: lmdb when dataroot_gt ends with ``.lmdb``, else disk.
        meta_info_file (str | None): images to use, one per line (first field; BasicSR's format).
            Default: the LMDB's ``meta_info.txt``, or every image of the folder.
        phase (str): ``train``, ``val`` or ``test`` (set by BasicSR).
        scale (int): must be 1 (set by BasicSR from the top-level ``scale``).
        gt_size (int): training crop side [px]; smaller images are reflect-padded (warned once).
        use_hflip (bool): random horizontal flips in training. Default: true.
        use_rot (bool): random vertical flips and transposes in training. Default: true.
        kernel (dict | str | list): kernel spec of :func:`newbp_plugin.kernels.build_kernel`
            (``{type: ..., ...}``, a PSF file, a list of specs drawn from, or a random spec).
            Default: ``{type: crosstalk}``.
        kernel_size (int | None): odd side S of the returned (raw: packed) kernels. Default: the largest the spec
            can give (a random spec: the largest over the extremes of its ranges and choices).
        noise (dict | None): noise spec of :class:`newbp_plugin.sensor.noise.NoiseModel`
            (``{type: gaussian | poisson_gaussian | none, ..., clip, quantize}``). Default: none.
        color (str): ``rgb``, ``y`` (BasicSR's BT.601 Y, 16-235) or ``gray`` (BT.601 luma, 0-255);
            y and gray are made from Y before it is degraded. Default: rgb.
        linear_light (bool): the source is sRGB-encoded: apply K and N in linear light. Default: true.
            X and ``gt`` stay sRGB-encoded; a network that applies K itself (the NewBP head) must do it
            in linear light too (NewBPNAFNet and RedegradationLoss: ``linear_light``; NewBPModel checks it).
        val_crop_size (int | None): validation / test centre crop side [px]; None: the full image.
        val_seed (int): seed of the validation / test degradations. Default: 0.
        domain (str): ``rgb``, or ``raw``: packed Bayer raw (see above; gt_size and val_crop_size even, full
            validation images cropped to even sides; color rgb; linear_light unset or false; noise
            without quantize, clip true). Default: rgb.
        cfa (str): raw: the CFA pattern, one of RGGB, BGGR, GRBG, GBRG. Default: RGGB.
        raw_bits (int): raw: bits of the codes, 10 to 14. Default: 12.
        black_level (int | None): raw: code of no light. Default: 64 · 2^(raw_bits - 10).
        white_level (int | None): raw: code of saturation, <= 2^raw_bits - 1. Default: 2^raw_bits - 1.
    """

    def __init__(self, opt):
        super().__init__()
        if 'dataroot_lq' in opt:
            _fail('option dataroot_lq: this dataset synthesises lq from dataroot_gt; remove dataroot_lq '
                  '(PairedImageDataset reads stored pairs)')
        self.opt = parse_options(opt, OPTIONS, 'CrosstalkDataset', also_valid=BASICSR_OPTIONS)  # BasicSR's too
        self.phase = opt.get('phase', 'train')
        if self.phase not in ('train', 'val', 'test'):
            _fail(f"phase must be train, val or test, got {self.phase!r}")
        if opt.get('scale', 1) != 1:
            _fail(f"scale must be 1 (crosstalk keeps the image size), got {opt['scale']!r}")
        if self.phase == 'train' and self.opt['gt_size'] is None:
            _fail('option gt_size must be a positive integer (required for training), got None')
        self.is_train = self.phase == 'train'
        self.is_raw = self.opt['domain'] == 'raw'
        if self.is_raw:
            self.raw_levels = self._raw_levels(opt)
        elif set(RAW_OPTIONS) & set(opt):
            _fail(f"option {sorted(set(RAW_OPTIONS) & set(opt))[0]} applies to domain: raw only")
        self.channels = RAW_CHANNELS if self.is_raw else COLORS[self.opt['color']]

        self.root = str(self.opt['dataroot_gt'])
        default_backend = 'lmdb' if self.root.rstrip('/').endswith('.lmdb') else 'disk'
        backend = dict(self.opt['io_backend'] or {'type': default_backend})
        self.backend_type = backend.pop('type', None)
        if self.backend_type == 'lmdb':
            meta = self.opt['meta_info_file'] or osp.join(self.root, 'meta_info.txt')
            if not osp.isdir(self.root):
                _fail(f'LMDB not found: {self.root}')
            self.paths = [osp.splitext(name)[0] for name in _read_meta_info(meta)]
        elif self.backend_type == 'disk':
            if backend:
                _fail(f"io_backend {{type: disk}} takes no other option, got {', '.join(backend)}")
            if not osp.isdir(self.root):
                _fail(f'image folder not found: {self.root}')
            names = (_read_meta_info(self.opt['meta_info_file']) if self.opt['meta_info_file'] else sorted(
                name for name in scandir(self.root) if name.lower().endswith(IMAGE_SUFFIXES)))
            if not names:
                _fail(f'no image ({", ".join(IMAGE_SUFFIXES)}) in {self.root}')
            self.paths = [osp.join(self.root, name) for name in names]
        else:
            _fail(f"io_backend.type must be lmdb or disk, got {self.backend_type!r}")
        self.lmdb_options = backend

        self.noise = self._option('noise', lambda spec: NoiseModel(spec, self.channels))
        if self.is_raw and (self.noise.quantize is not None or not self.noise.clip):
            _fail('option noise: in domain raw X is raw_bits codes clipped at white_level; leave noise.quantize '
                  'unset and noise.clip true')
        if self.is_raw:
            self.opt['kernel'] = self._option('kernel', lambda spec: on_cfa(spec, self.opt['cfa']))
        self.kernels = self._option('kernel', KernelSampler)
        self.kernel_size, self.channel_mixing = self._option('kernel', lambda spec: self._kernel_layout())
        self._warned_small = False

    def _option(self, key, build):
        """``build(self.opt[key])``, a ValueError from it reported as an error of option ``key``."""
        try:
            return build(self.opt[key])
        except ValueError as error:
            raise ValueError(f'CrosstalkDataset: option {key}: {error}') from error

    def _raw_levels(self, opt):
        """Check the options of domain raw; (black_level, white_level) [codes], defaults filled in."""
        if self.opt['color'] != 'rgb':
            _fail(f"option color must be rgb in domain raw (the mosaic samples colour), got {self.opt['color']!r}")
        if opt.get('linear_light'):
            _fail('option linear_light must be false or unset in domain raw: raw data are linear light already')
        for key in ('gt_size', 'val_crop_size'):
            if self.opt[key] is not None and self.opt[key] % 2:
                _fail(f'option {key} must be even in domain raw (whole 2x2 CFA cells), got {self.opt[key]}')
        bits = self.opt['raw_bits']
        default_black, default_white = default_raw_levels(bits)
        black = default_black if self.opt['black_level'] is None else self.opt['black_level']
        white = default_white if self.opt['white_level'] is None else self.opt['white_level']
        if white > 2**bits - 1:
            _fail(f'option white_level must be at most 2**raw_bits - 1 = {2**bits - 1}, got {white}')
        if black >= white:
            _fail(f'option black_level must be below white_level ({white}), got {black}')
        return black, white

    def _raw_kernel(self, kernel):
        """A kernel of the spec as the packed (4, 4, s, s) kernel of domain raw (see the class docstring)."""
        if kernel.shape[:-2] == (RAW_CHANNELS, RAW_CHANNELS):
            return kernel
        if kernel.ndim == 2 or kernel.shape[:-2] == (RAW_CHANNELS, ):
            side = max(kernel.shape[-2:])
            phase_kernels = np.broadcast_to(centre_pad(kernel, (side, side)), (RAW_CHANNELS, side, side))
            return phase_kernels_to_packed(np.ascontiguousarray(phase_kernels))
        raise ValueError(f'a kernel of shape {kernel.shape} does not fit packed raw (domain raw); expected a (k, k) '
                         'PSF of the mosaic, (4, k, k) phase kernels or a packed (4, 4, s, s) kernel such as '
                         '{type: bayer_crosstalk}')

    def _kernel_layout(self):
        """(S, channel_mixing) of the returned kernels: their side and whether they are (C, C, S, S)."""
        if self.kernels.is_random:
            self.kernels.sample(np.random.default_rng(0))  # a malformed random spec fails here, with its message
            specs = _corner_specs(self.kernels.spec)
            if len(specs) > MAX_KERNEL_CORNERS and self.opt['kernel_size'] is None:
                raise ValueError(f'the spec has {len(specs)} combinations of extremes; set kernel_size')
            kernels = [build_kernel(spec) for spec in specs]
        else:
            kernels = [self.kernels.sample()]
        if self.is_raw:
            kernels = [self._raw_kernel(kernel) for kernel in kernels]
        for kernel in kernels:
            if kernel.ndim > 2 and kernel.shape[:kernel.ndim - 2] != (self.channels, ) * (kernel.ndim - 2):
                raise ValueError(f'a kernel of shape {kernel.shape} does not fit {self.channels}-channel images '
                                 f"(color: {self.opt['color']})")
        largest = max(max(kernel.shape[-2:]) for kernel in kernels)
        size = self.opt['kernel_size'] or largest
        if size < largest:
            raise ValueError(f'kernel_size {size} is smaller than the largest kernel of the spec ({largest})')
        return size, any(kernel.ndim == 4 for kernel in kernels)

    def _generator(self, index):
        """The numpy Generator of sample ``index`` (see the class docstring)."""
        stream = int(torch.randint(2**62, ())) if self.is_train else self.opt['val_seed']
        return np.random.default_rng([stream, index])

    def _read(self, index):
        """The image of ``index`` as stored: (H, W) or (H, W, 3 | 4) BGR(A), uint8 or uint16."""
        path = self.paths[index]
        if self.backend_type == 'lmdb':
            where = f"image '{path}' in the LMDB {self.root}"
            with _open_lmdb(self.root, self.lmdb_options).begin(write=False) as txn:
                content = txn.get(path.encode('ascii'))
            if content is None:
                raise ValueError(f"CrosstalkDataset: key '{path}' is not in the LMDB {self.root}")
        else:
            where = f'image {path}'
            with open(path, 'rb') as f:
                content = f.read()
        img = imfrombytes(content, flag='unchanged')
        if img is None:
            raise ValueError(f'CrosstalkDataset: cannot decode {where} (not an image file?)')
        if img.dtype not in (np.uint8, np.uint16) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
            raise ValueError(f'CrosstalkDataset: {where} is {img.dtype} with shape {img.shape}; expected 8- or '
                             f'16-bit grey, BGR or BGRA')
        return img

    def _pad_to(self, img, size, path):
        """``img`` reflect-padded (bottom, right) to at least ``size`` x ``size``; warns once."""
        height, width = img.shape[:2]
        if height >= size and width >= size:
            return img
        if not self._warned_small:
            logger.warning(f'CrosstalkDataset: {path} is {height}x{width}, smaller than {size}x{size}: reflect-padded '
                           f'(warned once; other small images are padded silently)')
            self._warned_small = True
        pads = [(0, max(size - height, 0)), (0, max(size - width, 0))] + [(0, 0)] * (img.ndim - 2)
        return np.pad(img, pads, mode='reflect')

    def _rgb_codes(self, img):
        """(3, H, W) RGB view of a stored (H, W) grey or (H, W, 3 | 4) BGR(A) image, its integer code values."""
        if img.ndim == 2:
            img = np.broadcast_to(img[..., None], img.shape + (3, ))
        return img[..., 2::-1].transpose(2, 0, 1)

    def _to_float(self, img):
        """(C, H, W) float32 in [0, 1] of a stored image, in the ``color`` of the options."""
        scale = np.float32(np.iinfo(img.dtype).max)
        color = self.opt['color']
        if color == 'rgb':
            return self._rgb_codes(img).astype(np.float32, order='C') / scale
        if img.ndim == 2 and color == 'gray':
            return (img.astype(np.float32) / scale)[None]
        bgr = np.ascontiguousarray(self._rgb_codes(img)[::-1].transpose(1, 2, 0)).astype(np.float32) / scale
        return (bgr2ycbcr(bgr, y_only=True) if color == 'y' else cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))[None]

    def _augment(self, img, rng):
        """Flips and transposes of BasicSR's ``augment``, drawn from ``rng`` (BasicSR's draw from ``random``,
        which its worker_init_fn reseeds identically at every epoch)."""
        hflip, vflip, transpose = rng.random(3) < 0.5
        if hflip and self.opt['use_hflip']:
            img = img[:, ::-1]
        if vflip and self.opt['use_rot']:
            img = img[::-1]
        if transpose and self.opt['use_rot']:
            img = img.swapaxes(0, 1)
        return img

    def _kernel_tensor(self, kernel):
        """``kernel`` as the float32 (C, S, S) or (C, C, S, S) tensor of the item (zero-padded, centred)."""
        if self.is_raw:
            kernel = self._raw_kernel(kernel)
        if kernel.ndim == 2:
            kernel = np.broadcast_to(kernel, (self.channels, ) + kernel.shape)
        if self.channel_mixing and kernel.ndim == 3:
            diagonal = np.zeros((self.channels, ) + kernel.shape, np.float32)
            diagonal[np.arange(self.channels), np.arange(self.channels)] = kernel
            kernel = diagonal
        if max(kernel.shape[-2:]) > self.kernel_size:
            raise ValueError(f'CrosstalkDataset: a kernel of shape {kernel.shape} was drawn, larger than '
                             f'kernel_size {self.kernel_size}; set the option kernel_size to at least its side')
        return torch.from_numpy(centre_pad(kernel, (self.kernel_size, self.kernel_size)).astype(np.float32))

    def __getitem__(self, index):
        rng = self._generator(index)
        path = self.paths[index]
        img = self._read(index)
        kernel = self.kernels.sample(rng)
        context = self.kernel_size // 2  # [px of gt: raw, packed]
        cell = 2 if self.is_raw else 1  # image pixels per pixel of gt, along each side
        if self.is_train:
            size = self.opt['gt_size']
            img = self._pad_to(img, size, path)
            top, left = rng.integers(img.shape[0] - size + 1), rng.integers(img.shape[1] - size + 1)
            height = width = size
        elif self.opt['val_crop_size'] is None:
            top, left, (height, width) = 0, 0, (side - side % cell for side in img.shape[:2])
        else:
            height = width = self.opt['val_crop_size']
            img = self._pad_to(img, height, path)
            top, left = (img.shape[0] - height) // 2, (img.shape[1] - width) // 2
        ring = context * cell
        window = _window(img, top - ring, left - ring, height + 2 * ring, width + 2 * ring)
        if self.is_train:
            window = self._augment(window, rng)
        scene = torch.from_numpy(self._to_float(window))
        sensor = dict(self.noise.draw(rng), linear_light=torch.tensor(self.opt['linear_light'] and not self.is_raw))
        if self.is_raw:
            cameras = draw_cameras(rng, 1)
            scene = pack(unprocess(scene[None], cameras, self.opt['cfa']))[0]
            height, width = height // cell, width // cell
            black_level, white_level = self.raw_levels
            sensor.update(cameras.draws(0), cfa=self.opt['cfa'], raw_bits=torch.tensor(self.opt['raw_bits']),
                          black_level=torch.tensor(black_level), white_level=torch.tensor(white_level))
        return {
            'gt': scene[:, context:context + height, context:context + width].clone(),
            'scene': scene,
            'kernel': self._kernel_tensor(kernel),
            'sensor': sensor,
            'lq_path': path,
            'gt_path': path,
        }

    def __len__(self):
        return len(self.paths)
