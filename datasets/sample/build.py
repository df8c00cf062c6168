"""Build ``train.lmdb``, ``val.lmdb``, ``test.lmdb`` and ``test_color.lmdb`` from photographs shipped inside scikit-image.

Usage (from the repository root, with the plugin installed)::

    python datasets/sample/build.py

The sources, regions and licences are listed in ``SOURCES`` and in README.md here.
The build is deterministic: the same scikit-image files give byte-identical LMDBs.
"""
import os
import os.path as osp
import tempfile

import cv2
import skimage

from newbp_plugin.data.lmdb_tools import make_lmdb

HERE = osp.dirname(osp.abspath(__file__))
SKIMAGE_DATA = osp.join(osp.dirname(skimage.__file__), 'data')
TRAIN_TILE, TRAIN_STEP = 192, 160  # training sub-images [px]: side, stride (leftover strips dropped)
VAL_SIZE = 256  # validation and test: centre crop side [px]
COMPRESS_LEVEL = 9  # PNG compression in the LMDBs (small files)

# split -> [(name in the LMDB, file in skimage/data, region (top, left, height, width) or None: whole)]
SOURCES = {
    'train': [
        ('astronaut', 'astronaut.png', None),  # NASA, public domain
        ('camera', 'camera.png', None),  # grey; CC0, Lav Varshney
        ('coffee', 'coffee.png', None),  # CC0, Rachel Michetti
        ('retina', 'retina.jpg', (450, 450, 512, 512)),  # CC0, Mikael Häggström
        ('rocket', 'rocket.jpg', None),  # SpaceX, public domain
    ],
    'val': [
        ('chelsea', 'chelsea.png', 'centre'),  # CC0, Stefan van der Walt
        ('hubble', 'hubble_deep_field.jpg', 'centre'),  # NASA, public domain
    ],
    'test': [  # basicsr benchmark (options/benchmark/sample.yml): neither trained on nor validated with
        ('ihc', 'ihc.png', 'centre'),  # immunohistochemistry, CMMI; no known copyright restrictions
        ('coins', 'coins.png', 'centre'),  # grey; Brooklyn Museum Collection; no known copyright restrictions
        ('brick', 'brick.png', 'centre'),  # grey texture; CC0Textures (Bricks25), CC0
        ('gravel', 'gravel.png', 'centre'),  # grey texture; CC0Textures (Gravel04), CC0
    ],
    # 12 colour crops 256x256 that overlap no training or validation region, to rank models. Of the colour
    # photographs skimage ships with a stated licence, only these three have room left outside those regions.
    'test_color': [
        ('ihc_tl', 'ihc.png', (0, 0, 256, 256)),  # the four quadrants; no known copyright restrictions
        ('ihc_tr', 'ihc.png', (0, 256, 256, 256)),
        ('ihc_bl', 'ihc.png', (256, 0, 256, 256)),
        ('ihc_br', 'ihc.png', (256, 256, 256, 256)),
        ('hubble_tl', 'hubble_deep_field.jpg', (0, 0, 256, 256)),  # corners, away from the val centre crop
        ('hubble_tr', 'hubble_deep_field.jpg', (0, 744, 256, 256)),
        ('hubble_bl', 'hubble_deep_field.jpg', (616, 0, 256, 256)),
        ('hubble_br', 'hubble_deep_field.jpg', (616, 744, 256, 256)),
        ('retina_top', 'retina.jpg', (150, 577, 256, 256)),  # around the training region (450-962)
        ('retina_bottom', 'retina.jpg', (1000, 577, 256, 256)),
        ('retina_left', 'retina.jpg', (577, 150, 256, 256)),
        ('retina_right', 'retina.jpg', (577, 1000, 256, 256)),
    ],
}


def write_sources(split, folder):
    """Write the source images (regions, centre crops) of ``split`` as PNGs into ``folder``."""
    for name, filename, region in SOURCES[split]:
        img = cv2.imread(osp.join(SKIMAGE_DATA, filename), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise FileNotFoundError(f'{filename} is not in {SKIMAGE_DATA} (scikit-image {skimage.__version__})')
        if region == 'centre':
            region = ((img.shape[0] - VAL_SIZE) // 2, (img.shape[1] - VAL_SIZE) // 2, VAL_SIZE, VAL_SIZE)
        if region is not None:
            top, left, height, width = region
            img = img[top:top + height, left:left + width]
        cv2.imwrite(osp.join(folder, f'{name}.png'), img)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for split in SOURCES:
            folder = osp.join(tmp, split)
            os.makedirs(folder)
            write_sources(split, folder)
            crop = dict(crop_size=TRAIN_TILE, step=TRAIN_STEP, thresh_size=TRAIN_TILE) if split == 'train' else {}
            count = make_lmdb(folder, osp.join(HERE, f'{split}.lmdb'), compress_level=COMPRESS_LEVEL, overwrite=True,
                              progress=False, **crop)
            # lock.mdb holds the writer's process state, not data: drop it so that rebuilds are
            # byte-identical (BasicSR opens LMDBs with lock=False; LMDB recreates it when needed).
            os.remove(osp.join(HERE, f'{split}.lmdb', 'lock.mdb'))
            print(f'{split}.lmdb: {count} images')


if __name__ == '__main__':
    main()
