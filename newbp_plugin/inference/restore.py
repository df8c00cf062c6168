"""``basicsr restore``: a trained network on image files, bit depth and format kept.

``basicsr restore -i IN -o OUT --weights W.pth [--arch A] [--kernel SPEC] [--noise SPEC|estimate]
[--tile 512 --tile-overlap 32] [--save-s] [--device cpu|cuda] [--cfa P --raw-bits B --black-level L --white-level W]``

- IN is an image or a folder (its PNG, TIFF and JPEG files, not recursive); OUT is then a file
  (an existing folder: the file goes in it, same name) or a folder (created), same file names.
- 8- and 16-bit grey, colour or colour + alpha images: the output has the input's bit depth,
  format and channels (a grey image is restored as three equal channels, then made grey again;
  alpha is copied).
- The architecture comes from ``--arch`` or from the training YAML beside the weights
  (:func:`newbp_plugin.inference.network.network_options`).
- Raw: a network of 4 channels (``img_channel: 4``, trained on ``domain: raw``) restores CFA mosaics, single-channel
  16-bit codes in a PNG, TIFF or ``.npy``, or a DNG (read through rawpy, the optional extra ``raw``:
  :mod:`newbp_plugin.sensor.dng`). The codes are normalised, ``(code - black) / (white - black)``, packed into the
  4 phase planes, restored, unpacked and written back as codes (rounded, clipped to [0, white]): same format, CFA
  and levels. ``cfa``, ``raw_bits``, ``black_level`` and ``white_level`` default to those of the training YAML's
  raw datasets (the dataset's defaults where it leaves them unset: RGGB, 12 bits, 64 · 2^(bits - 10), 2^bits - 1);
  without a training YAML, to RGGB and 16 bits (the uint16 container). A ``cfa`` other than the training's is an
  error; so are codes above the white level (the file's levels differ from the given ones). A kernel file that
  records its CFA (``basicsr calibrate --cfa``) must record ``cfa``.
- A DNG brings its own CFA and levels: its CFA must be ``cfa`` (else the file fails, naming both), its black and
  white levels are used whatever the training's, and a ``black_level``, ``white_level`` or ``raw_bits`` given
  explicitly must agree with them (else the file fails). It is restored into a DNG (:func:`write_dng`: the visible
  area, uncompressed 16-bit, the same CFA and levels, its camera names, colour matrices and white balance).
- A file that cannot be read, restored or written is reported and skipped; the others go on.
"""
import os
import os.path as osp

import cv2
import numpy as np
import torch
import yaml
from tqdm import tqdm

from newbp_plugin.archs.forward_arguments import forward_takes
from newbp_plugin.data.crosstalk_dataset import OPTIONS as DATASET_OPTIONS, RAW_CHANNELS
from newbp_plugin.inference.network import load_network, network_options, run_network, yamls_beside
from newbp_plugin.kernels import parse_kernel_spec
from newbp_plugin.kernels.bayer import on_cfa, phase_names
from newbp_plugin.pictures import s_kind, s_to_image
from newbp_plugin.sensor import physical_kernel
from newbp_plugin.sensor.dng import DNG_SUFFIX, read_dng, write_dng
from newbp_plugin.sensor.mosaic import pack, unpack
from newbp_plugin.sensor.noise import NoiseModel
from newbp_plugin.sensor.noise_estimate import estimate_noise
from newbp_plugin.sensor.unprocess import default_raw_levels, from_raw_codes, to_raw_codes

_FORMATS = {'.png': 'PNG', '.tif': 'TIFF', '.tiff': 'TIFF', '.jpg': 'JPEG', '.jpeg': 'JPEG', '.npy': 'NPY',
            DNG_SUFFIX: 'DNG'}
IMAGE_SUFFIXES = ('.png', '.tif', '.tiff', '.jpg', '.jpeg')  # what restore reads and writes, bit depth kept
MOSAIC_SUFFIXES = ('.png', '.tif', '.tiff', '.npy', DNG_SUFFIX)  # raw mosaics, 16-bit codes
CONTAINER_BITS = 16  # raw_bits of a mosaic file when no training YAML tells them: the uint16 container


def output_paths(input_path, output, suffixes=IMAGE_SUFFIXES):
    """``[(source, destination)]`` of a run: a file, or every image of a folder (``suffixes``: which files).

    Raises:
        ValueError: the input does not exist, holds no image, or the output's format differs.
    """
    if osp.isdir(input_path):
        names = sorted(name for name in os.listdir(input_path)
                       if name.lower().endswith(suffixes) and osp.isfile(osp.join(input_path, name)))
        if not names:
            raise ValueError(f"no image ({', '.join(suffixes)}) in {input_path}")
        if osp.isfile(output):
            raise ValueError(f'the input is a folder, so the output must be a folder: {output} is a file')
        return [(osp.join(input_path, name), osp.join(output, name)) for name in names]
    if not osp.isfile(input_path):
        raise ValueError(f'input not found: {input_path}')
    if osp.isdir(output):
        return [(input_path, osp.join(output, osp.basename(input_path)))]
    source_suffix = osp.splitext(input_path)[1].lower()
    source_format = _FORMATS[source_suffix] if source_suffix in suffixes else None
    target_format = _FORMATS.get(osp.splitext(output)[1].lower())
    if source_format is None or target_format != source_format:
        readable = ', '.join(sorted({_FORMATS[suffix] for suffix in suffixes}))
        raise ValueError(f'the output keeps the format of the input: {input_path} is '
                         f'{source_format or "not one of " + readable}, {output} is {target_format or "not that"}')
    return [(input_path, output)]


NOISE_ESTIMATE = 'estimate'  # --noise: estimate the level of each image from the image


def parse_noise_option(text, channels, name):
    """The noise level of ``--noise``: ``'estimate'``, or ``{'gain': (1, C), 'read_sigma': (1, C)}`` of a fixed spec.

    Args:
        text (str): ``estimate`` or a noise spec in YAML, e.g. ``'{type: poisson_gaussian, gain: 0.002,
            read_sigma: 0.003}'`` (:class:`newbp_plugin.sensor.noise.NoiseModel`; in linear light).
        channels (int): the network's channels.
        name (str): the network's type, for messages.

    Raises:
        ValueError: not YAML, not a noise spec, a range (one level is needed), or no noise at all.
    """
    if text == NOISE_ESTIMATE:
        return NOISE_ESTIMATE
    try:
        spec = yaml.safe_load(text)
        model = NoiseModel(spec, channels)
    except (yaml.YAMLError, ValueError) as error:
        raise ValueError(f"--noise {text!r}: {error}; give 'estimate' or a spec such as "
                         "'{type: poisson_gaussian, gain: 0.002, read_sigma: 0.003}'") from None
    if model.is_random:
        raise ValueError(f'--noise {text!r}: a range; restoring needs the one level of your camera (or estimate)')
    level = {key: model.draw(np.random.default_rng(0))[key][None] for key in ('gain', 'read_sigma')}
    if not (level['gain'] > 0).any() and not (level['read_sigma'] > 0).any():
        raise ValueError(f"--noise {text!r} is no noise: {name} weighs its data step with K by the noise level, "
                         "and with none it would invert K outright; give the camera's noise or 'estimate'")
    return level


def training_yaml(arch, weights):
    """The path of the YAML the network options come from (``--arch FILE``, or the one beside
    ``experiments/<name>/models/W.pth``, as :func:`network_options` finds them); None: options given inline."""
    if isinstance(arch, str) and osp.isfile(arch):
        return arch
    found = yamls_beside(weights)
    return found[0] if arch is None and len(found) == 1 else None


def training_raw_options(path):
    """The raw options the network was trained with: ``{option: (value, where)}`` for ``cfa``, ``raw_bits``,
    ``black_level`` and ``white_level`` of the first ``domain: raw`` dataset of the YAML at ``path`` (the
    dataset's default where it leaves one unset; a kernel's ``pattern`` where ``cfa`` is); {} when none."""
    with open(path, encoding='utf-8') as f:
        content = yaml.safe_load(f)
    datasets = content.get('datasets') if isinstance(content, dict) else None
    for name, dataset in (datasets.items() if isinstance(datasets, dict) else ()):
        if not isinstance(dataset, dict) or dataset.get('domain') != 'raw':
            continue
        where = f'datasets.{name} of {path}'
        options = {key: (dataset.get(key, DATASET_OPTIONS[key].default), where)
                   for key in ('cfa', 'raw_bits', 'black_level', 'white_level')}
        kernel = dataset.get('kernel')
        if 'cfa' not in dataset and isinstance(kernel, dict) and 'pattern' in kernel:
            options['cfa'] = (kernel['pattern'], f'the kernel pattern of {where}')
        return options
    return {}


def raw_settings(arch, weights, cfa=None, raw_bits=None, black_level=None, white_level=None):
    """``(cfa, raw_bits, black_level, white_level)`` of a raw restore: the options given, else the training's
    (:func:`training_raw_options`), else RGGB and ``CONTAINER_BITS``; levels by default those of the dataset,
    64 · 2^(bits - 10) and 2^bits - 1 [codes].

    Raises:
        ValueError: a ``cfa`` other than the training's, or levels that do not fit; the message names the option.
    """
    path = training_yaml(arch, weights)
    trained = training_raw_options(path) if path else {}
    if cfa is not None and 'cfa' in trained and cfa != trained['cfa'][0]:
        raise ValueError(f"--cfa {cfa}: the network was trained on {trained['cfa'][0]} mosaics "
                         f"({trained['cfa'][1]}); a mosaic of another CFA would swap its phases")
    cfa = cfa or trained.get('cfa', (DATASET_OPTIONS['cfa'].default, ))[0]
    phase_names(cfa)  # an unknown pattern fails here
    bits = raw_bits if raw_bits is not None else trained.get('raw_bits', (CONTAINER_BITS, ))[0]
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= CONTAINER_BITS:
        raise ValueError(f'--raw-bits {bits}: an integer from 1 to {CONTAINER_BITS}')
    black = black_level if black_level is not None else trained.get('black_level', (None, ))[0]
    white = white_level if white_level is not None else trained.get('white_level', (None, ))[0]
    default_black, default_white = default_raw_levels(bits)
    black = default_black if black is None else black
    white = default_white if white is None else white
    if not 0 <= black < white <= 2**bits - 1:
        raise ValueError(f'--black-level {black} --white-level {white}: need 0 <= black < white <= 2^raw_bits - 1 = '
                         f'{2**bits - 1} (--raw-bits {bits})')
    return cfa, bits, black, white


class Restorer:
    """A loaded network that restores uint8/uint16 images, or (4 channels) raw mosaics of uint16 codes.

    Args:
        weights (str): the checkpoint.
        arch (str | dict | None): network options, see :func:`network_options`.
        kernel (str | None): kernel spec text (:func:`newbp_plugin.kernels.parse_kernel_spec`)
            for networks whose forward takes ``kernel``; None: the network's own.
        noise (str | None): for networks whose forward takes ``noise`` (KernelAwareNAFNet): a noise
            spec (:func:`parse_noise_option`) or ``estimate`` (each image's level from the image itself,
            :func:`newbp_plugin.sensor.noise_estimate.estimate_noise`). Default: estimate.
        tile (int | None): tile side [px]; None: whole images.
        tile_overlap (int): pixels shared by neighbouring tiles.
        save_s (bool): keep S (the network must return it).
        device (str | None): 'cpu' or 'cuda'; None: cuda when available.
        param_key (str): checkpoint key of the weights.
        cfa, raw_bits, black_level, white_level: the mosaics of a 4-channel network (:func:`raw_settings`);
            None: the training's (see the module docstring).

    Raises:
        ValueError: any of the above does not fit (the message names it).
    """

    def __init__(self, weights, arch=None, kernel=None, tile=None, tile_overlap=32, save_s=False, device=None,
                 param_key='params', noise=None, cfa=None, raw_bits=None, black_level=None, white_level=None):
        if device == 'cuda' and not torch.cuda.is_available():
            raise ValueError('--device cuda: torch sees no CUDA device')
        self.device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
        if tile is not None and not 0 <= tile_overlap < tile:
            raise ValueError(f'--tile {tile} --tile-overlap {tile_overlap}: need 0 <= overlap < tile')
        self.options = network_options(arch, weights)
        self.net = load_network(self.options, weights, param_key=param_key, device=self.device)
        name = self.options['type']
        takes_kernel, takes_noise = forward_takes(self.net, 'kernel'), forward_takes(self.net, 'noise')
        if save_s and not forward_takes(self.net, 'return_s'):
            raise ValueError(f'--save-s: {name} has no S (only networks with a NewBP head return one)')
        if kernel is not None and not takes_kernel:
            raise ValueError(f'--kernel: {name} takes no kernel')
        if kernel is None and takes_kernel and getattr(self.net, 'kernel', None) is None:
            raise ValueError(f'{name} has no kernel of its own: give the sensor kernel with --kernel SPEC')
        if noise is not None and not takes_noise:
            raise ValueError(f'--noise: {name} takes no noise level')
        self.channels = self.options.get('img_channel', 3)
        raw_options = {'--cfa': cfa, '--raw-bits': raw_bits, '--black-level': black_level, '--white-level': white_level}
        self.raw = None  # (cfa, raw_bits, black_level, white_level) of a packed-raw network
        self.given = {option: value for option, value in raw_options.items() if value is not None}
        if self.channels == RAW_CHANNELS:
            if save_s:
                raise ValueError(f'--save-s: not for raw (packed, {RAW_CHANNELS}-channel) networks')
            self.raw = raw_settings(arch, weights, cfa, raw_bits, black_level, white_level)
        elif any(value is not None for value in raw_options.values()):
            given = next(option for option, value in raw_options.items() if value is not None)
            raise ValueError(f'{given}: for raw mosaics, restored by a network of {RAW_CHANNELS} channels '
                             f'(img_channel: {RAW_CHANNELS}); {name} takes {self.channels}')
        self.suffixes = MOSAIC_SUFFIXES if self.raw else IMAGE_SUFFIXES
        self.noise = None
        if takes_noise:
            self.noise = parse_noise_option(NOISE_ESTIMATE if noise is None else noise, self.channels, name)
        if kernel is not None:
            spec = parse_kernel_spec(kernel)
            self.kernel = physical_kernel(on_cfa(spec, self.raw[0]) if self.raw else spec, self.channels, '--kernel')
        else:
            self.kernel = None
        self.tile, self.tile_overlap, self.save_s = tile, tile_overlap, save_s

    def restore(self, img):
        """Restore one image as OpenCV holds it.

        Args:
            img (np.ndarray): (H, W) grey, (H, W, 3) BGR or (H, W, 4) BGRA; uint8 or uint16.

        Returns:
            tuple[np.ndarray, Tensor | None]: the restored image, same shape and dtype, and S
            (C, H, W) float32 when ``save_s``.
        """
        if img.dtype not in (np.uint8, np.uint16):
            raise ValueError(f'{img.dtype} pixels; expected 8- or 16-bit integers')
        peak = np.iinfo(img.dtype).max
        alpha = img[..., 3:] if img.ndim == 3 and img.shape[2] == 4 else None
        colour = img[..., :3] if img.ndim == 3 else img[..., None]
        if colour.shape[2] != self.channels:
            if self.channels != 3 or colour.shape[2] != 1:
                raise ValueError(f'{colour.shape[2]} colour channel(s); the network takes {self.channels}')
            colour = np.repeat(colour, 3, axis=2)
        rgb = colour[..., ::-1] if self.channels == 3 else colour
        x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div(peak)[None]
        restored, s = self._run(x, getattr(getattr(self.net, 'optics', None), 'linear_light', True))
        out = restored[0].float().cpu().clamp(0, 1).numpy().transpose(1, 2, 0)
        out = out[..., ::-1] if self.channels == 3 else out
        if img.ndim == 2 or img.shape[2] == 1:
            out = cv2.cvtColor(np.ascontiguousarray(out), cv2.COLOR_BGR2GRAY) if self.channels == 3 else out[..., 0]
        out = np.round(out * peak).astype(img.dtype)
        if alpha is not None:
            out = np.concatenate([out, alpha], axis=2)
        return out, (s[0].float().cpu() if self.save_s else None)

    def _run(self, x, linear_light):
        """``(Ŷ, S)`` of the network on ``x`` (1, C, H, W), with its kernel and noise level (estimated from ``x``
        in linear light or not, when so asked)."""
        x = x.to(self.device)
        noise = estimate_noise(x, linear_light=linear_light) if self.noise == NOISE_ESTIMATE else self.noise
        return run_network(self.net, x, self.kernel, noise, self.tile, self.tile_overlap)

    def restore_mosaic(self, codes, levels=None):
        """Restore one raw mosaic of a packed-raw network (see the module docstring).

        Args:
            codes (np.ndarray): (H, W) uint16 codes, H and W even, none above the white level.
            levels (tuple[int, int, int] | None): ``(raw_bits, black_level, white_level)`` of these codes;
                None: the restorer's.

        Returns:
            np.ndarray: (H, W) uint16 codes of the restored mosaic, in [0, white_level].
        """
        bits, black, white = levels or self.raw[1:]
        if codes.ndim == 3 and codes.shape[2] != 1:
            raise ValueError(f'{codes.shape[2]} channels; a raw network ({RAW_CHANNELS} channels, packed) restores '
                             'single-channel CFA mosaics')
        codes = codes.reshape(codes.shape[:2])
        if codes.dtype != np.uint16:
            raise ValueError(f'{codes.dtype} pixels; a raw mosaic holds 16-bit integer codes')
        if codes.shape[0] % 2 or codes.shape[1] % 2:
            raise ValueError(f'{codes.shape[1]}x{codes.shape[0]} px; a mosaic holds whole 2x2 CFA cells (even sides)')
        if codes.max() > white:
            raise ValueError(f'codes up to {codes.max()}, above the white level {white}: give the file\'s '
                             '--white-level (or --raw-bits)')
        linear = from_raw_codes(torch.from_numpy(codes.astype(np.float32))[None, None], black, white)
        restored, _ = self._run(pack(linear), linear_light=False)  # raw is linear light already
        return to_raw_codes(unpack(restored.float().cpu()), black, white, bits)[0, 0].numpy().astype(np.uint16)

    def dng_levels(self, mosaic):
        """``(raw_bits, black_level, white_level)`` of a DNG's mosaic (:func:`read_dng`), see the module docstring.

        Raises:
            ValueError: its CFA is not the network's, or an option given differs from the file.
        """
        cfa = self.raw[0]
        if mosaic.cfa != cfa:
            where = '--cfa' if '--cfa' in self.given else "the network's CFA"
            raise ValueError(f'a {mosaic.cfa} mosaic (its DNG CFA pattern); {where} is {cfa}: a mosaic of another '
                             'CFA would swap its phases')
        bits = max(mosaic.white_level.bit_length(), 1)
        found = {'--black-level': mosaic.black_level, '--white-level': mosaic.white_level}
        for option, value in found.items():
            if option in self.given and self.given[option] != value:
                raise ValueError(f'{option} {self.given[option]}, but the DNG records {value}: a DNG brings its own '
                                 'levels (leave the option out, or give the same)')
        if '--raw-bits' in self.given and mosaic.white_level > 2**self.given['--raw-bits'] - 1:
            raise ValueError(f"--raw-bits {self.given['--raw-bits']}, but the DNG's white level is "
                             f'{mosaic.white_level}')
        return bits, mosaic.black_level, mosaic.white_level

    def restore_file(self, source, destination):
        """Read ``source``, restore it, write ``destination`` (and S beside it with ``save_s``)."""
        if self.raw and source.lower().endswith(DNG_SUFFIX):
            mosaic = read_dng(source)
            out = self.restore_mosaic(mosaic.codes, self.dng_levels(mosaic))
            os.makedirs(osp.dirname(osp.abspath(destination)), exist_ok=True)
            write_dng(destination, out, mosaic.cfa, mosaic.black_level, mosaic.white_level,
                      camera_tags=mosaic.camera_tags)
            return
        if self.raw:
            codes = np.load(source) if source.lower().endswith('.npy') else cv2.imread(source, cv2.IMREAD_UNCHANGED)
            if codes is None:
                raise ValueError('cannot read it as an image (corrupt, or not a PNG or TIFF)')
            out = self.restore_mosaic(codes)
            os.makedirs(osp.dirname(osp.abspath(destination)), exist_ok=True)
            if destination.lower().endswith('.npy'):
                np.save(destination, out)
            elif not cv2.imwrite(destination, out):
                raise ValueError(f'cannot write {destination}')
            return
        img = cv2.imread(source, cv2.IMREAD_UNCHANGED)
        if img is None:
            raise ValueError('cannot read it as an image (corrupt, or not a PNG, TIFF or JPEG)')
        out, s = self.restore(img)
        os.makedirs(osp.dirname(osp.abspath(destination)), exist_ok=True)
        if not cv2.imwrite(destination, out):
            raise ValueError(f'cannot write {destination}')
        if s is not None:
            stem = osp.splitext(destination)[0]
            cv2.imwrite(f'{stem}_S.png', s_to_image(s, s_kind(self.net)))
            np.save(f'{stem}_S.npy', s.numpy())


def restore(input_path, output, weights, arch=None, kernel=None, tile=None, tile_overlap=32, save_s=False,
            device=None, param_key='params', noise=None, cfa=None, raw_bits=None, black_level=None, white_level=None):
    """Restore an image or a folder of images (see the module docstring); a progress bar runs.

    Args:
        input_path (str), output (str): see :func:`output_paths`.
        weights, arch, kernel, tile, tile_overlap, save_s, device, param_key, noise, cfa, raw_bits, black_level,
            white_level: see :class:`Restorer`.

    Returns:
        tuple[list[tuple[str, str]], int]: ``[(file, reason)]`` of the files that failed, and the
        number of files.

    Raises:
        ValueError: a bad argument, before any file is touched.
    """
    restorer = Restorer(weights, arch, kernel, tile, tile_overlap, save_s, device, param_key, noise, cfa, raw_bits,
                        black_level, white_level)
    pairs = output_paths(input_path, output, restorer.suffixes)
    failures = []
    for source, destination in tqdm(pairs, unit='image', desc='restore'):
        try:
            restorer.restore_file(source, destination)
        except (ValueError, OSError, cv2.error) as error:
            failures.append((source, str(error)))
    return failures, len(pairs)
