"""Tiled inference equals whole-image inference for local operators."""
import pytest
import torch
import torch.nn.functional as F

from newbp_plugin.ops.tiling import tiled_forward


def _local_op(x):
    """A 5x5 box filter with replicate padding: its output near a tile edge depends on the edge."""
    return F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode='replicate'), 5, stride=1)


@pytest.mark.parametrize('shape', [(1, 3, 50, 37), (2, 1, 64, 64), (1, 2, 17, 90)])
def test_pointwise_function_is_exact(shape):
    x = torch.rand(shape)
    out = tiled_forward(lambda t: 2 * t + 1, x, tile=16, overlap=4)
    torch.testing.assert_close(out, 2 * x + 1)


def test_overlap_blending_reduces_seam_error_of_local_operator():
    x = torch.rand(1, 3, 64, 64)
    reference = _local_op(x)
    hard = (tiled_forward(_local_op, x, tile=24, overlap=0) - reference).abs().mean()
    blended = (tiled_forward(_local_op, x, tile=24, overlap=8) - reference).abs().mean()
    assert blended < 0.5 * hard
    untiled = tiled_forward(_local_op, x, tile=64, overlap=8)
    torch.testing.assert_close(untiled, _local_op(x))


def test_tuple_outputs_and_coverage():
    x = torch.rand(1, 2, 40, 33)
    y, s = tiled_forward(lambda t: (t * 3, t[:, :1] - 1), x, tile=16, overlap=6)
    torch.testing.assert_close(y, x * 3)
    torch.testing.assert_close(s, x[:, :1] - 1)


def test_bad_tile_settings_are_named():
    with pytest.raises(ValueError, match='tile=8, overlap=8'):
        tiled_forward(lambda t: t, torch.rand(1, 1, 20, 20), tile=8, overlap=8)
