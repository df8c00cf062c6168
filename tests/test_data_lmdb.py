"""LMDB tooling: ``basicsr make-lmdb``, sub-images as BasicSR's extract_subimages, round trips, errors."""
import os

import cv2
import lmdb
import numpy as np
import pytest

from newbp_plugin import cli
from newbp_plugin.data.crosstalk_dataset import CrosstalkDataset
from newbp_plugin.data.lmdb_tools import make_lmdb, sub_image_origins
from tests.conftest import run_basicsr


@pytest.fixture
def photos(tmp_path):
    """{name: pixels} of a folder with an 8-bit colour, a 16-bit colour, a grey and a JPEG image."""
    folder = tmp_path / 'photos'
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = {
        'a8': rng.integers(0, 256, (40, 50, 3), dtype=np.uint8),
        'b16': rng.integers(0, 65536, (30, 20, 3), dtype=np.uint16),
        'c_grey': rng.integers(0, 256, (25, 35), dtype=np.uint8),
    }
    for name, img in images.items():
        cv2.imwrite(str(folder / f'{name}.png'), img)
    cv2.imwrite(str(folder / 'd.jpg'), images['a8'])
    images['d'] = cv2.imread(str(folder / 'd.jpg'), cv2.IMREAD_UNCHANGED)
    (folder / 'notes.txt').write_text('not an image')
    return folder, images


def read_lmdb(path):
    """{key: decoded pixels} of an LMDB, read with lmdb directly."""
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        items = {key.decode(): cv2.imdecode(np.frombuffer(value, np.uint8), cv2.IMREAD_UNCHANGED)
                 for key, value in txn.cursor()}
    env.close()
    return items


@pytest.mark.parametrize('length, crop, step, thresh, expected', [
    (1000, 480, 240, 0, [0, 240, 480, 520]),  # DIV2K-like: a last window flush with the edge
    (960, 480, 240, 0, [0, 240, 480]),  # exact fit, nothing left out
    (1000, 480, 240, 40, [0, 240, 480]),  # 40 px left out is not more than thresh_size
    (1000, 480, 240, 39, [0, 240, 480, 520]),
    (300, 480, 240, 0, [0]),  # smaller than a sub-image: stored whole
])
def test_sub_image_origins_follow_extract_subimages(length, crop, step, thresh, expected):
    origins = sub_image_origins(length, 480, crop, step, thresh)
    assert [top for top, left in origins if left == 0] == expected
    assert len(origins) == len(expected)


def test_make_lmdb_round_trip_8_16_bit_grey_jpeg(photos, tmp_path, capsys):
    folder, images = photos
    output = tmp_path / 'out.lmdb'
    assert cli.main(['make-lmdb', '--input', str(folder), '--output', str(output)]) == 0
    assert f'wrote 4 images to {output}' in capsys.readouterr().out
    assert sorted(os.listdir(output)) == ['data.mdb', 'lock.mdb', 'meta_info.txt']
    assert (output / 'meta_info.txt').read_text().splitlines() == [
        'a8.png (40,50,3) 1', 'b16.png (30,20,3) 1', 'c_grey.png (25,35,1) 1', 'd.png (40,50,3) 1']
    stored = read_lmdb(output)
    for name, img in images.items():
        assert stored[name].dtype == img.dtype
        np.testing.assert_array_equal(stored[name], img)

    dataset = CrosstalkDataset({'dataroot_gt': str(output), 'phase': 'val'})
    for index, key in enumerate(dataset.paths):
        img = images[key].astype(np.float64)
        expected = np.repeat(img[None], 3, 0) if img.ndim == 2 else img[..., ::-1].transpose(2, 0, 1)
        levels = 65535 if images[key].dtype == np.uint16 else 255
        np.testing.assert_array_equal(np.round(dataset[index]['gt'].numpy() * levels), expected)


def test_make_lmdb_sub_images(photos, tmp_path):
    folder, images = photos
    output = tmp_path / 'sub.lmdb'
    count = make_lmdb(folder, output, crop_size=20, step=15, compress_level=0, progress=False)
    stored = read_lmdb(output)
    # a8 and d 40x50: rows 0, 15, 20 x columns 0, 15, 30; b16 30x20: rows 0, 10 x column 0;
    # c_grey 25x35: rows 0, 5 x columns 0, 15
    assert count == len(stored) == 9 + 2 + 4 + 9
    np.testing.assert_array_equal(stored['a8_s001'], images['a8'][0:20, 0:20])
    np.testing.assert_array_equal(stored['a8_s006'], images['a8'][15:35, 30:50])
    np.testing.assert_array_equal(stored['b16_s002'], images['b16'][10:30, 0:20])
    np.testing.assert_array_equal(stored['c_grey_s004'], images['c_grey'][5:25, 15:35])
    meta = (output / 'meta_info.txt').read_text().splitlines()
    assert meta[0] == 'a8_s001.png (20,20,3) 0' and 'c_grey_s004.png (20,20,1) 0' in meta


@pytest.mark.slow
def test_make_lmdb_through_the_console_script(photos, tmp_path):
    result = run_basicsr(['make-lmdb', '--input', str(photos[0]), '--output', 'x.lmdb', '--crop-size', '16'],
                         cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'make-lmdb' in result.stderr  # the tqdm progress bar
    assert len((tmp_path / 'x.lmdb' / 'meta_info.txt').read_text().splitlines()) > 4


def test_existing_output_is_refused_unless_overwrite(photos, tmp_path, capsys):
    folder = str(photos[0])
    output = str(tmp_path / 'out.lmdb')
    assert cli.main(['make-lmdb', '--input', folder, '--output', output]) == 0
    capsys.readouterr()
    assert cli.main(['make-lmdb', '--input', folder, '--output', output, '--crop-size', '10']) == 2
    assert capsys.readouterr().err.strip() == (
        f'basicsr make-lmdb: error: {output} already exists; pass --overwrite to replace it')
    assert len(read_lmdb(output)) == 4
    assert cli.main(['make-lmdb', '--input', folder, '--output', output, '--crop-size', '10', '--overwrite']) == 0
    assert len(read_lmdb(output)) > 4


@pytest.mark.parametrize('setup, args, message', [
    (None, ['--input', 'missing'], 'input folder not found: missing'),
    ('empty', ['--input', 'empty'], 'no image (.png, .jpg, .jpeg, .bmp, .tif, .tiff, .webp) in empty'),
    ('photos', ['--input', 'photos', '--output', 'out'], "the output must be a folder whose name ends with '.lmdb'"),
    ('photos', ['--input', 'photos', '--crop-size', '0'], 'need crop size >= 1, step >= 1 and thresh size >= 0'),
    ('photos', ['--input', 'photos', '--compress-level', '10'], 'compress level must be 0 to 9, got 10'),
    ('photos', ['--input', 'photos', '--step', '10'], 'step and thresh size cut sub-images: they need a crop size'),
    ('not_lmdb', ['--input', 'photos', '--output', 'keep.lmdb', '--overwrite'],
     'keep.lmdb exists and is not an LMDB (no data.mdb); refusing to delete it'),
    ('twins', ['--input', 'photos'], "a8.png and a8.tif in photos would get the same LMDB key 'a8'"),
    ('broken', ['--input', 'photos'], 'cannot decode photos/z.png'),
])
def test_bad_input_is_one_line_exit_2(photos, tmp_path, capsys, monkeypatch, setup, args, message):
    monkeypatch.chdir(photos[0].parent)
    if setup == 'empty':
        os.mkdir('empty')
    elif setup == 'not_lmdb':
        os.mkdir('keep.lmdb')
        open('keep.lmdb/precious.txt', 'w').close()
    elif setup == 'twins':
        cv2.imwrite('photos/a8.tif', np.zeros((4, 4), np.uint8))
    elif setup == 'broken':
        open('photos/z.png', 'wb').write(b'not a png')
    if '--output' not in args:
        args = args + ['--output', 'out.lmdb']
    assert cli.main(['make-lmdb'] + args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith('basicsr make-lmdb: error: ') and message in lines[-1]
    assert len(lines) == 1 or setup == 'broken'  # found while writing: after the progress bar
    assert not os.path.exists('out.lmdb')  # nothing, not even half an LMDB, is left behind
    if setup == 'not_lmdb':
        assert os.path.exists('keep.lmdb/precious.txt')
