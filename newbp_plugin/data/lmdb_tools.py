"""Build BasicSR LMDBs of clean images (``basicsr make-lmdb``).

An LMDB made here is BasicSR's format: ``data.mdb``, ``lock.mdb`` and
``meta_info.txt`` with one ``name.png (h,w,c) compression`` line per image; the key
is the name without ``.png``. Images are stored as PNG bytes of the pixels read
unchanged (8- or 16-bit, grey or colour, JPEG sources decoded once), written with
BasicSR's :class:`~basicsr.utils.lmdb_util.LmdbMaker`.

With ``crop_size``, each image is cut into sub-images as BasicSR's
``scripts/data_preparation/extract_subimages.py`` does (a sliding window of
``crop_size`` every ``step`` pixels, plus a last window flush with the far edge
when more than ``thresh_size`` pixels would be left out), keyed ``{name}_s{index:03d}``;
an image smaller than ``crop_size`` is stored whole.
"""
import os
import os.path as osp
import shutil

import cv2
import numpy as np
from basicsr.utils import scandir
from basicsr.utils.lmdb_util import LmdbMaker
from tqdm import tqdm

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def sub_image_origins(height, width, crop_size, step, thresh_size=0):
    """Top-left corners ``[(top, left)]`` of the sub-images of an image, row by row (extract_subimages).

    Args:
        height (int): image height [px].
        width (int): image width [px].
        crop_size (int): sub-image side [px].
        step (int): window stride [px].
        thresh_size (int): largest leftover strip [px] dropped at the far edges.

    Returns:
        list[tuple[int, int]]: ``[(0, 0)]`` when the image is smaller than ``crop_size``.
    """

    def starts(length):
        if length < crop_size:
            return [0]
        positions = list(range(0, length - crop_size + 1, step))
        if length - (positions[-1] + crop_size) > thresh_size:
            positions.append(length - crop_size)
        return positions

    return [(top, left) for top in starts(height) for left in starts(width)]


def _check_output(output, overwrite):
    """Refuse an existing output unless ``overwrite``; never delete a folder that is not an LMDB."""
    if not output.endswith('.lmdb'):
        raise ValueError(f"the output must be a folder whose name ends with '.lmdb' (BasicSR's convention), "
                         f'got {output}')
    if not osp.exists(output):
        return
    if not overwrite:
        raise FileExistsError(f'{output} already exists; pass --overwrite to replace it')
    if not osp.isdir(output) or (os.listdir(output) and not osp.isfile(osp.join(output, 'data.mdb'))):
        raise FileExistsError(f'{output} exists and is not an LMDB (no data.mdb); refusing to delete it')
    shutil.rmtree(output)


def make_lmdb(input_dir, output, crop_size=None, step=None, thresh_size=0, compress_level=1, overwrite=False,
              progress=True):
    """Write the images of ``input_dir`` (not its sub-folders) into a new LMDB ``output``.

    Args:
        input_dir (str): folder of images (PNG, JPEG, BMP, TIFF, WebP; 8- or 16-bit).
        output (str): LMDB folder to create, ``*.lmdb``.
        crop_size (int | None): sub-image side [px]; None stores whole images.
        step (int | None): sub-image stride [px]. Default: crop_size // 2.
        thresh_size (int): see :func:`sub_image_origins`.
        compress_level (int): PNG compression, 0 (fast to read, large) to 9.
        overwrite (bool): replace an existing LMDB ``output``.
        progress (bool): show a tqdm progress bar.

    Returns:
        int: number of images written.

    Raises:
        FileNotFoundError: ``input_dir`` is not a folder.
        FileExistsError: ``output`` exists (and not ``overwrite``).
        ValueError: a bad size, no image in ``input_dir``, an undecodable image, a non-ASCII name.
    """
    input_dir, output = os.fspath(input_dir), os.fspath(output).rstrip('/')
    if not osp.isdir(input_dir):
        raise FileNotFoundError(f'input folder not found: {input_dir}')
    if crop_size is None and (step is not None or thresh_size):
        raise ValueError('step and thresh size cut sub-images: they need a crop size')
    if crop_size is not None:
        step = crop_size // 2 if step is None else step
        if crop_size < 1 or step < 1 or thresh_size < 0:
            raise ValueError(f'need crop size >= 1, step >= 1 and thresh size >= 0, got {crop_size}, {step}, '
                             f'{thresh_size}')
    if not 0 <= compress_level <= 9:
        raise ValueError(f'compress level must be 0 to 9, got {compress_level}')
    names = sorted(name for name in scandir(input_dir) if name.lower().endswith(IMAGE_SUFFIXES))
    if not names:
        raise ValueError(f'no image ({", ".join(IMAGE_SUFFIXES)}) in {input_dir}')
    stems = {}
    for name in names:
        if not name.isascii() or ' ' in name:
            raise ValueError(f'{osp.join(input_dir, name)}: LMDB keys must be ASCII without spaces; rename it')
        stem = osp.splitext(name)[0]
        if stem in stems:
            raise ValueError(f'{stems[stem]} and {name} in {input_dir} would get the same LMDB key {stem!r}')
        stems[stem] = name
    _check_output(output, overwrite)

    maker = LmdbMaker(output, compress_level=compress_level)
    written = 0
    try:
        for name in tqdm(names, unit='image', desc='make-lmdb', disable=not progress):
            path = osp.join(input_dir, name)
            img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
            if img is None:
                raise ValueError(f'cannot decode {path}')
            stem = osp.splitext(name)[0]
            if crop_size is None:
                pieces = [(stem, img)]
            else:
                origins = sub_image_origins(img.shape[0], img.shape[1], crop_size, step, thresh_size)
                pieces = [(f'{stem}_s{index:03d}', img[top:top + crop_size, left:left + crop_size])
                          for index, (top, left) in enumerate(origins, start=1)]
            for key, piece in pieces:
                ok, png = cv2.imencode('.png', np.ascontiguousarray(piece),
                                       [cv2.IMWRITE_PNG_COMPRESSION, compress_level])
                if not ok:
                    raise ValueError(f'cannot encode {path} as PNG (dtype {piece.dtype}, shape {piece.shape})')
                channels = 1 if piece.ndim == 2 else piece.shape[2]
                maker.put(png.tobytes(), key, (piece.shape[0], piece.shape[1], channels))
                written += 1
    except BaseException:
        maker.close()
        shutil.rmtree(output)  # no half-written LMDB left behind
        raise
    maker.close()
    return written
