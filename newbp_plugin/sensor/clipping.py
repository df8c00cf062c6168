"""Where clipping touched an image: windows that hold a value at 0 or 1, whose noise clipping cut to one side."""
import torch.nn.functional as F


def unclipped_windows(planes, size):
    """Whether each ``size``×``size`` window of each plane holds no clipped value (0 or 1).

    Args:
        planes (Tensor): (N, H, W) images in [0, 1] as stored (clipped values are exactly 0 or 1).
        size (int): window side [px].

    Returns:
        Tensor: (N, H - size + 1, W - size + 1) bool, one per window (indexed by its top-left pixel).
    """
    planes = planes[:, None]
    low = -F.max_pool2d(-planes, size, stride=1)
    high = F.max_pool2d(planes, size, stride=1)
    return ((low > 0) & (high < 1))[:, 0]
