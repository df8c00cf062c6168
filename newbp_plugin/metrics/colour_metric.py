"""Colour fidelity: the mean CIEDE2000 difference (ΔE00) of two sRGB images, a BasicSR metric."""
import numpy as np
from basicsr.metrics.metric_util import reorder_image
from basicsr.utils.registry import METRIC_REGISTRY
from skimage.color import deltaE_ciede2000, rgb2lab

from newbp_plugin.registration import register


@register(METRIC_REGISTRY)
def calculate_delta_e2000(img, img2, crop_border=0, input_order='HWC', max_value=255., **kwargs):
    """Mean CIEDE2000 colour difference ΔE00 over the pixels of two sRGB images (lower is better; 1: just noticeable).

    Each pixel is converted from sRGB (D65) to CIELAB (``skimage.color.rgb2lab``) and the two are compared by
    ``skimage.color.deltaE_ciede2000`` (k_L = k_C = k_H = 1). As BasicSR's metrics, it takes BGR images (OpenCV's
    order, what ``tensor2img`` gives), 8-bit or float.

    Args:
        img, img2 (np.ndarray): (H, W, 3) BGR images (``input_order='CHW'``: (3, H, W)), values in [0, max_value].
        crop_border (int): pixels left out on each side. Default: 0.
        input_order (str): 'HWC' or 'CHW'. Default: 'HWC'.
        max_value (float): the value of full scale: 255 for 8-bit images (BasicSR's), 1 for float images in
            [0, 1]. Default: 255.

    Returns:
        float: the mean ΔE00.
    """
    if img.shape != img2.shape:
        raise ValueError(f'calculate_delta_e2000: image shapes differ: {img.shape}, {img2.shape}')
    if input_order not in ('HWC', 'CHW'):
        raise ValueError(f"calculate_delta_e2000: input_order must be 'HWC' or 'CHW', got {input_order!r}")
    img, img2 = reorder_image(img, input_order=input_order), reorder_image(img2, input_order=input_order)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'calculate_delta_e2000: expected colour images (3 channels), got shape {img.shape}')
    if crop_border:
        img, img2 = (image[crop_border:-crop_border, crop_border:-crop_border] for image in (img, img2))
    labs = [rgb2lab(np.clip(image[..., ::-1].astype(np.float64) / max_value, 0, 1)) for image in (img, img2)]
    return float(np.mean(deltaE_ciede2000(*labs)))
