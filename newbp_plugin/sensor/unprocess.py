"""sRGB <-> linear camera raw, after Brooks et al. 2019, "Unprocessing Images for Learned Raw Denoising" (torch).

:func:`unprocess` walks a camera pipeline backwards from a clean sRGB image: sRGB decoding,
the inverse colour-correction matrix (CCM), the inverse white-balance gains, the mosaic.
:func:`process` walks it forwards (white balance, OpenCV demosaicing, CCM, sRGB encoding) to view
raw images, :func:`process_rgb` finishes "demosaic, then restore RGB" baselines the same way, and
:func:`mosaic_view` shows the mosaic itself in the colours of its filters. The camera of each sample is drawn by
:func:`draw_cameras` from a numpy Generator. Brooks' tone curve and brightness gain are left out:
the plugin's images are sRGB-encoded linear light. Also raw quantisation with black and white
levels: :func:`to_raw_codes`, :func:`from_raw_codes`.
"""
from dataclasses import dataclass, fields

import numpy as np
import torch

from newbp_plugin.ops.color import linear_to_srgb, srgb_to_linear
from newbp_plugin.sensor.mosaic import PHASE_OFFSETS, demosaic, mosaic, pack, phase_channels, unpack

# XYZ -> camera matrices of four cameras (Brooks et al. 2019); a camera is a random convex combination
XYZ_TO_CAMERA = np.array([
    [[1.0234, -0.2969, -0.2266], [-0.5625, 1.6328, -0.0469], [-0.0703, 0.2188, 0.6406]],
    [[0.4913, -0.0541, -0.0202], [-0.613, 1.3513, 0.2906], [-0.1564, 0.2151, 0.7183]],
    [[0.838, -0.263, -0.0639], [-0.2887, 1.0725, 0.2496], [-0.0627, 0.1427, 0.5438]],
    [[0.6596, -0.2079, -0.0562], [-0.4782, 1.3016, 0.1933], [-0.097, 0.1581, 0.5181]],
])
# linear sRGB (D65) -> XYZ
RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                       [0.0193339, 0.1191920, 0.9503041]])
RED_GAIN_RANGE = (1.9, 2.4)  # white-balance gain of red (uniform draw)
BLUE_GAIN_RANGE = (1.5, 1.9)  # white-balance gain of blue (uniform draw)


@dataclass
class Cameras:
    """The camera of each sample of a batch.

    Attributes:
        rgb_to_camera (np.ndarray): (B, 3, 3) linear sRGB -> camera RGB, each row summing to 1.
        red_gain (np.ndarray): (B,) white-balance gain of the red channel.
        blue_gain (np.ndarray): (B,) white-balance gain of the blue channel (green's is 1).
    """
    rgb_to_camera: np.ndarray
    red_gain: np.ndarray
    blue_gain: np.ndarray

    def draws(self, index):
        """The camera of sample ``index`` as float64 tensors named as the fields, for a dataset item's draws."""
        return {field.name: torch.as_tensor(getattr(self, field.name)[index]) for field in fields(self)}

    @classmethod
    def from_draws(cls, draws):
        """The cameras of a batch: the fields from a mapping of collated :meth:`draws` (other keys ignored)."""
        return cls(*(torch.as_tensor(draws[field.name]).detach().cpu().double().numpy() for field in fields(cls)))

    def gains(self, like):
        """(B, 3) white-balance gains (red, 1, blue) as a tensor of ``like``'s dtype and device."""
        gains = np.stack([self.red_gain, np.ones_like(self.red_gain), self.blue_gain], axis=1)
        return torch.as_tensor(gains, dtype=like.dtype, device=like.device)

    def matrix(self, like, inverse=False):
        """(B, 3, 3) rgb_to_camera (or its inverse, camera -> sRGB) as a tensor of ``like``'s dtype and device."""
        matrix = np.linalg.inv(self.rgb_to_camera) if inverse else self.rgb_to_camera
        return torch.as_tensor(matrix, dtype=like.dtype, device=like.device)


def draw_cameras(rng, batch):
    """Draw ``batch`` cameras: a CCM from a random convex combination of ``XYZ_TO_CAMERA``, and gains.

    Args:
        rng (np.random.Generator): the source of every draw.
        batch (int): B.

    Returns:
        Cameras: one camera per sample.
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f'rng must be a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}')
    weights = rng.uniform(size=(batch, len(XYZ_TO_CAMERA)))
    xyz_to_camera = np.einsum('bn,nij->bij', weights / weights.sum(axis=1, keepdims=True), XYZ_TO_CAMERA)
    rgb_to_camera = xyz_to_camera @ RGB_TO_XYZ
    rgb_to_camera /= rgb_to_camera.sum(axis=2, keepdims=True)
    return Cameras(rgb_to_camera, rng.uniform(*RED_GAIN_RANGE, size=batch), rng.uniform(*BLUE_GAIN_RANGE, size=batch))


def _apply_matrix(matrix, image):
    """(B, 3, 3) per-sample colour matrix applied to (B, 3, H, W)."""
    return torch.einsum('bij,bjhw->bihw', matrix, image)


def unprocess(srgb, cameras, pattern):
    """Clean sRGB -> linear camera raw, clipped to [0, 1].

    Args:
        srgb (Tensor): (B, 3, H, W) sRGB-encoded image in [0, 1], H and W even.
        cameras (Cameras): the camera of each sample (:func:`draw_cameras`).
        pattern (str): CFA pattern, one of ``sensor.mosaic.CFA_PATTERNS``.

    Returns:
        Tensor: (B, 1, H, W) raw mosaic in linear light.
    """
    camera_rgb = _apply_matrix(cameras.matrix(srgb), srgb_to_linear(srgb.clamp(0, 1)))
    unbalanced = camera_rgb / cameras.gains(srgb)[:, :, None, None]
    return mosaic(unbalanced.clamp(0, 1), pattern)


def process(raw, cameras, pattern):
    """Linear camera raw -> sRGB: white balance, OpenCV demosaicing (16 bits), CCM, sRGB encoding.

    Args:
        raw (Tensor): (B, 1, H, W) raw mosaic in linear light, [0, 1].
        cameras (Cameras): the camera of each sample.
        pattern (str): CFA pattern, one of ``sensor.mosaic.CFA_PATTERNS``.

    Returns:
        Tensor: (B, 3, H, W) sRGB-encoded image in [0, 1], of raw's dtype and device.
    """
    return _camera_to_srgb(demosaic(_balanced_mosaic(raw, cameras, pattern), pattern), cameras)


def process_rgb(rgb, cameras):
    """Linear camera RGB (a demosaiced raw) -> sRGB: the steps of :func:`process` after its demosaicing
    (white balance, CCM, sRGB encoding), for methods that restore demosaiced images.

    Args:
        rgb (Tensor): (B, 3, H, W) camera RGB in linear light, [0, 1].
        cameras (Cameras): the camera of each sample.

    Returns:
        Tensor: (B, 3, H, W) sRGB-encoded image in [0, 1], of rgb's dtype and device.
    """
    return _camera_to_srgb((rgb * cameras.gains(rgb)[:, :, None, None]).clamp(0, 1), cameras)


def mosaic_view(raw, cameras, pattern):
    """Linear camera raw -> a picture of the mosaic: each pixel white-balanced, sRGB-encoded and shown in the
    colour of its filter (the other two channels 0), as a camera engineer looks at a CFA.

    Args:
        raw (Tensor): (B, 1, H, W) raw mosaic in linear light, [0, 1].
        cameras (Cameras): the camera of each sample.
        pattern (str): CFA pattern, one of ``sensor.mosaic.CFA_PATTERNS``.

    Returns:
        Tensor: (B, 3, H, W) RGB in [0, 1], of raw's dtype and device.
    """
    encoded = linear_to_srgb(_balanced_mosaic(raw, cameras, pattern))
    view = raw.new_zeros(raw.shape[:1] + (3, ) + raw.shape[2:])
    for channel, (row, column) in zip(phase_channels(pattern), PHASE_OFFSETS):
        view[:, channel, row::2, column::2] = encoded[:, 0, row::2, column::2]
    return view


def _balanced_mosaic(raw, cameras, pattern):
    """(B, 1, H, W) raw times each pixel's white-balance gain, clipped to [0, 1]."""
    phase_gains = cameras.gains(raw)[:, list(phase_channels(pattern)), None, None]
    return unpack(pack(raw) * phase_gains).clamp(0, 1)


def _camera_to_srgb(balanced, cameras):
    """White-balanced (B, 3, H, W) camera RGB -> sRGB: CCM (camera -> linear sRGB), clip, sRGB encoding."""
    linear = _apply_matrix(cameras.matrix(balanced, inverse=True), balanced)
    return linear_to_srgb(linear.clamp(0, 1))


def default_raw_levels(bits):
    """(black_level, white_level) [codes] of ``bits``-bit raw codes when none are given: 64 · 2^(bits − 10),
    the black level of many 10–14-bit sensors, and 2^bits − 1."""
    return round(64 * 2.0**(bits - 10)), 2**bits - 1


def _check_levels(black_level, white_level, bits):
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ValueError(f'bits must be an integer in [1, 16] (raw files use 10 to 14), got {bits!r}')
    if not 0 <= black_level < white_level <= 2**bits - 1:
        raise ValueError(f'levels must satisfy 0 <= black_level < white_level <= 2**bits - 1 = {2**bits - 1}, got '
                         f'black_level {black_level}, white_level {white_level}')


def to_raw_codes(linear, black_level, white_level, bits):
    """Linear light -> the integer codes of a raw file: ``round(black + linear * (white - black))``.

    Codes are clipped to [0, white_level] (the sensor saturates at the white level; read noise may
    fall below black).

    Args:
        linear (Tensor): linear light, 1 at saturation.
        black_level (int): code of zero light.
        white_level (int): code of saturation, <= 2**bits - 1.
        bits (int): bits of the raw codes (10 to 14 on most sensors).

    Returns:
        Tensor: the codes, whole numbers in ``linear``'s float dtype.
    """
    _check_levels(black_level, white_level, bits)
    return torch.round(black_level + linear * (white_level - black_level)).clamp(0, white_level)


def from_raw_codes(codes, black_level, white_level):
    """Raw codes -> linear light, ``(codes - black) / (white - black)``; the inverse of :func:`to_raw_codes`."""
    if not 0 <= black_level < white_level:
        raise ValueError(f'levels must satisfy 0 <= black_level < white_level, got black_level {black_level}, '
                         f'white_level {white_level}')
    return (codes - black_level) / (white_level - black_level)
