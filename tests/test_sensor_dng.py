"""DNG files (``newbp_plugin.sensor.dng``): written with tifffile, read back independently through rawpy (LibRaw)."""
import sys

import numpy as np
import pytest

from newbp_plugin.kernels.bayer import CFA_PATTERNS
from newbp_plugin.sensor.dng import read_dng, write_dng

rawpy = pytest.importorskip('rawpy')


def codes(seed=0, shape=(48, 64), white=4095):
    return np.random.default_rng(seed).integers(0, white + 1, shape).astype(np.uint16)


@pytest.mark.parametrize('cfa', list(CFA_PATTERNS))
def test_a_written_dng_reads_back_through_rawpy(tmp_path, cfa):
    mosaic = codes()
    write_dng(tmp_path / 'a.dng', mosaic, cfa, 256, 4095)
    with rawpy.imread(str(tmp_path / 'a.dng')) as raw:  # LibRaw's own reading, not ours
        np.testing.assert_array_equal(raw.raw_image_visible, mosaic)
        description = raw.color_desc.decode()
        assert ''.join(description[index] for index in raw.raw_colors_visible[:2, :2].ravel()) == cfa
        assert list(raw.black_level_per_channel) == [256] * 4 and raw.white_level == 4095
    read = read_dng(tmp_path / 'a.dng')
    np.testing.assert_array_equal(read.codes, mosaic)
    assert (read.cfa, read.black_level, read.white_level, read.codes.dtype) == (cfa, 256, 4095, np.uint16)


def test_camera_tags_travel_from_one_dng_to_the_next(tmp_path):
    write_dng(tmp_path / 'a.dng', codes(white=1023), 'BGGR', 64, 1023, color_matrix=np.diag([0.5, 0.8, 0.6]),
              as_shot_neutral=(0.5, 1, 0.7), camera='Test Cam')
    first = read_dng(tmp_path / 'a.dng')
    assert first.camera_tags[50708][2] == 'Test Cam' and first.camera_tags[50728][2] == (5000, 10000, 10000, 10000,
                                                                                         7000, 10000)
    write_dng(tmp_path / 'b.dng', codes(1, white=1023), 'BGGR', 64, 1023, camera_tags=first.camera_tags)
    assert read_dng(tmp_path / 'b.dng').camera_tags == first.camera_tags
    with rawpy.imread(str(tmp_path / 'b.dng')) as raw:
        np.testing.assert_allclose(raw.camera_whitebalance[:3], [2, 1, 1 / 0.7], rtol=1e-5)


def test_levels_that_differ_per_phase_are_an_error_naming_the_file(tmp_path):
    import tifffile
    write_dng(tmp_path / 'a.dng', codes(), 'RGGB', 256, 4095)
    # the same file with BlackLevelRepeatDim 2x2 and a black level per phase
    tags = [(50713, 3, 2, (2, 2), True), (50714, 4, 4, (256, 256, 256, 260), True)]
    with tifffile.TiffFile(tmp_path / 'a.dng') as dng:
        kept = [(tag.code, int(tag.dtype), tag.count, tag.value, True) for tag in dng.pages[0].tags.values()
                if tag.code >= 33421 and tag.code not in (50713, 50714)]
    tifffile.imwrite(tmp_path / 'b.dng', codes(), photometric=32803, metadata=None, software=False,
                     extratags=kept + tags)
    with pytest.raises(ValueError, match=r'b.dng: black levels 256, 256, 256, 260 on the phases R, Gr, Gb, B'):
        read_dng(tmp_path / 'b.dng')


def test_not_a_raw_file_and_bad_arguments(tmp_path):
    (tmp_path / 'a.dng').write_bytes(b'not a dng')
    with pytest.raises(ValueError, match='a.dng: cannot read it as a raw file'):
        read_dng(tmp_path / 'a.dng')
    with pytest.raises(ValueError, match="cfa must be one of RGGB, BGGR, GRBG, GBRG, got 'RGBG'"):
        write_dng(tmp_path / 'b.dng', codes(), 'RGBG', 0, 4095)
    with pytest.raises(ValueError, match=r'codes in \[0, 4095\], outside \[0, white_level 1023\]'):
        write_dng(tmp_path / 'b.dng', codes(), 'RGGB', 0, 1023)


def test_without_rawpy_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'rawpy', None)  # import rawpy raises ImportError
    with pytest.raises(ValueError, match=r'a.dng: reading DNG files needs rawpy: pip install newbp-plugin\[raw\]'):
        read_dng(tmp_path / 'a.dng')
