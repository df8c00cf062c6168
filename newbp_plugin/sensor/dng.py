"""Bayer mosaics in DNG files: :func:`read_dng` through rawpy (LibRaw), :func:`write_dng` through tifffile (no BasicSR).

Both are optional dependencies, the ``raw`` extra: ``pip install newbp-plugin[raw]`` (rawpy; tifffile comes with
scikit-image, or install it too). Without them the rest of the plugin works and reading or writing a DNG is a
one-line error that names the file.

:func:`read_dng` returns the visible area's codes as stored (LibRaw's ``raw_image_visible``: no black subtraction,
no scaling, the masked border left out), the CFA pattern of its 2x2 cell (one of
:data:`newbp_plugin.kernels.bayer.CFA_PATTERNS`), its black level and its white level. A sensor that is not a 2x2
Bayer mosaic of red, green and blue (X-Trans, CYGM, a linear DNG) is an error; so are black levels that differ
between the four phases, since the plugin normalises a mosaic with one black level.

:func:`write_dng` writes a minimal valid DNG 1.4 of one uncompressed 16-bit CFA image (the codes, the CFA pattern,
the levels, a colour matrix and the as-shot white balance) that rawpy, dcraw, darktable and RawTherapee read.
"""
from dataclasses import dataclass, field

import numpy as np

from newbp_plugin.kernels.bayer import CFA_PATTERNS

DNG_SUFFIX = '.dng'
MISSING = 'reading DNG files needs rawpy: pip install newbp-plugin[raw] (or pip install rawpy)'
MISSING_WRITER = 'writing DNG files needs tifffile: pip install newbp-plugin[raw] (or pip install tifffile)'
# CFAPattern tag values (TIFF/EP): 0 red, 1 green, 2 blue
_CFA_CODES = {'R': 0, 'G': 1, 'B': 2}
# XYZ (D65) -> camera of a camera whose raw RGB is linear sRGB: the inverse of newbp_plugin.sensor.unprocess.RGB_TO_XYZ
SRGB_COLOR_MATRIX = ((3.2404542, -1.5371385, -0.4985314), (-0.9692660, 1.8760108, 0.0415560),
                     (0.0556434, -0.2040259, 1.0572252))
D65 = 21  # CalibrationIlluminant code of D65
RATIONAL_DENOMINATOR = 10000
# what a restored DNG takes over from its input: Make, Model, UniqueCameraModel, ColorMatrix1/2,
# CameraCalibration1/2, AnalogBalance, AsShotNeutral, AsShotWhiteXY, BaselineExposure, CalibrationIlluminant1/2,
# ForwardMatrix1/2
CAMERA_TAGS = (271, 272, 50708, 50721, 50722, 50723, 50724, 50727, 50728, 50729, 50730, 50778, 50779, 50964, 50965)


@dataclass
class DngMosaic:
    """The Bayer mosaic of a DNG file and what is needed to normalise it and to write it again.

    Attributes:
        codes (np.ndarray): (H, W) uint16, the visible area as stored.
        cfa (str): the pattern of its 2x2 cell, e.g. 'RGGB'.
        black_level (int): code of no light (one for every phase).
        white_level (int): code of saturation.
        camera_tags (dict): ``{code: (TIFF type, count, value)}`` of the file's :data:`CAMERA_TAGS` (camera names,
            colour matrices, white balance), read with tifffile (empty without it), for :func:`write_dng`.
    """
    codes: np.ndarray
    cfa: str
    black_level: int
    white_level: int
    camera_tags: dict = field(default_factory=dict)


def _import_rawpy(path):
    try:
        import rawpy
    except ImportError:
        raise ValueError(f'{path}: {MISSING}') from None
    return rawpy


def _cfa_name(path, raw):
    """The pattern of the 2x2 cell at the top left of a LibRaw image's visible area, e.g. 'RGGB'."""
    pattern, colors = raw.raw_pattern, raw.raw_colors_visible
    if pattern is None or np.shape(pattern) != (2, 2) or min(colors.shape) < 2:
        raise ValueError(f'{path}: not a 2x2 Bayer mosaic (CFA cell {np.shape(pattern)}); newbp-plugin restores '
                         'Bayer raw')
    letters = ''.join(raw.color_desc.decode('ascii')[int(index)] for index in colors[:2, :2].ravel())
    if letters not in CFA_PATTERNS:
        raise ValueError(f"{path}: a {letters} colour-filter cell; newbp-plugin restores Bayer mosaics, "
                         f"{', '.join(CFA_PATTERNS)}")
    return letters


def read_dng(path):
    """The Bayer mosaic of the DNG (or any raw file LibRaw reads) at ``path``, see the module docstring.

    Returns:
        DngMosaic: the codes, CFA pattern, levels and camera tags.

    Raises:
        ValueError: rawpy is missing; the file cannot be read; it is not a Bayer mosaic; its phases have different
            black levels. The message names the file.
    """
    rawpy = _import_rawpy(path)
    try:
        raw = rawpy.imread(str(path))
    except (rawpy.LibRawError, OSError) as error:
        raise ValueError(f'{path}: cannot read it as a raw file ({type(error).__name__}: {error})') from None
    with raw:
        if raw.raw_type != rawpy.RawType.Flat or raw.num_colors != 3:
            raise ValueError(f'{path}: not a Bayer mosaic ({raw.num_colors} colours, {raw.raw_type.name} raw); '
                             'newbp-plugin restores Bayer raw')
        cfa = _cfa_name(path, raw)
        codes = np.array(raw.raw_image_visible, dtype=np.uint16)
        blacks = [int(raw.black_level_per_channel[int(index)]) for index in raw.raw_colors_visible[:2, :2].ravel()]
        if len(set(blacks)) != 1:
            raise ValueError(f"{path}: black levels {', '.join(map(str, blacks))} on the phases "
                             f"{', '.join(CFA_PATTERNS[cfa])}; newbp-plugin normalises a mosaic with one black level")
        white = int(raw.white_level)
    return DngMosaic(codes, cfa, blacks[0], white, _camera_tags(path))


def _camera_tags(path):
    """``{code: (type, count, value)}`` of the first IFD's :data:`CAMERA_TAGS` (tifffile); {} without tifffile."""
    try:
        import tifffile
    except ImportError:
        return {}
    try:
        with tifffile.TiffFile(str(path)) as dng:
            tags = dng.pages[0].tags
            return {tag.code: (int(tag.dtype), tag.count, tag.value) for tag in tags.values()
                    if tag.code in CAMERA_TAGS}
    except (tifffile.TiffFileError, OSError, ValueError):
        return {}


def _rationals(values, signed=False):
    """Flat (numerator, denominator) pairs of ``values`` for a TIFF (S)RATIONAL tag."""
    pairs = []
    for value in np.asarray(values, dtype=np.float64).ravel():
        pairs += [int(round(value * RATIONAL_DENOMINATOR)), RATIONAL_DENOMINATOR]
    if not signed and min(pairs) < 0:
        raise ValueError(f'negative value in an unsigned rational tag: {values}')
    return tuple(pairs)


def write_dng(path, codes, cfa, black_level, white_level, color_matrix=None, as_shot_neutral=None,
              camera='newbp-plugin', camera_tags=None):
    """Write a Bayer mosaic as a minimal DNG 1.4: one uncompressed 16-bit CFA image, see the module docstring.

    Args:
        path (str): the file to write.
        codes (np.ndarray): (H, W) integer codes in [0, white_level], H and W even.
        cfa (str): the pattern of the 2x2 cell, one of RGGB, BGGR, GRBG, GBRG.
        black_level (int): code of no light.
        white_level (int): code of saturation, at most 65535.
        color_matrix (array | None): (3, 3) XYZ -> camera (the DNG ColorMatrix1, D65). Default: that of a camera
            whose raw RGB is linear sRGB.
        as_shot_neutral (array | None): (3,) camera RGB of a neutral grey. Default: (1, 1, 1).
        camera (str): Model and UniqueCameraModel.
        camera_tags (dict | None): ``{code: (TIFF type, count, value)}`` written as they are, in place of the tags
            above of the same code (:attr:`DngMosaic.camera_tags`: those of another DNG, e.g. the one restored).

    Raises:
        ValueError: tifffile is missing, or an argument does not fit (the message names it).
    """
    try:
        import tifffile
    except ImportError:
        raise ValueError(f'{path}: {MISSING_WRITER}') from None
    if cfa not in CFA_PATTERNS:
        raise ValueError(f"{path}: cfa must be one of {', '.join(CFA_PATTERNS)}, got {cfa!r}")
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[0] % 2 or codes.shape[1] % 2:
        raise ValueError(f'{path}: a mosaic is (H, W) with even sides, got shape {codes.shape}')
    if not 0 <= black_level < white_level <= 65535:
        raise ValueError(f'{path}: need 0 <= black_level < white_level <= 65535, got {black_level}, {white_level}')
    if codes.size and (codes.min() < 0 or codes.max() > white_level):
        raise ValueError(f'{path}: codes in [{codes.min()}, {codes.max()}], outside [0, white_level {white_level}]')
    matrix = SRGB_COLOR_MATRIX if color_matrix is None else color_matrix
    neutral = (1.0, 1.0, 1.0) if as_shot_neutral is None else as_shot_neutral
    if np.shape(matrix) != (3, 3) or np.shape(neutral) != (3, ):
        raise ValueError(f'{path}: color_matrix is (3, 3) and as_shot_neutral (3,), got {np.shape(matrix)} and '
                         f'{np.shape(neutral)}')
    camera = str(camera).encode('ascii', 'replace').decode('ascii')
    tags = [  # (code, TIFF type, count, value, write once): 1 BYTE, 2 ASCII, 3 SHORT, 4 LONG, 5 RATIONAL, 10 SRATIONAL
        (254, 4, 1, 0, True),  # NewSubfileType: the main image
        (271, 2, 0, 'newbp-plugin', True),  # Make
        (272, 2, 0, camera, True),  # Model
        (274, 3, 1, 1, True),  # Orientation: as stored
        (33421, 3, 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, 1, 4, tuple(_CFA_CODES[letter] for letter in cfa), True),  # CFAPattern
        (50706, 1, 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, 1, 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        (50708, 2, 0, camera, True),  # UniqueCameraModel
        (50710, 1, 3, (0, 1, 2), True),  # CFAPlaneColor: R, G, B
        (50711, 3, 1, 1, True),  # CFALayout: rectangular
        (50713, 3, 2, (1, 1), True),  # BlackLevelRepeatDim
        (50714, 4, 1, int(black_level), True),  # BlackLevel
        (50717, 4, 1, int(white_level), True),  # WhiteLevel
        (50721, 10, 9, _rationals(matrix, signed=True), True),  # ColorMatrix1
        (50728, 5, 3, _rationals(neutral), True),  # AsShotNeutral
        (50778, 3, 1, D65, True),  # CalibrationIlluminant1
    ]
    tags = [tag for tag in tags if tag[0] not in (camera_tags or {})]
    tags += [(code, kind, count, value, True) for code, (kind, count, value) in sorted((camera_tags or {}).items())]
    tifffile.imwrite(str(path), np.ascontiguousarray(codes, dtype=np.uint16), photometric=32803, compression=None,
                     planarconfig='contig', metadata=None, software=False, extratags=tags)
