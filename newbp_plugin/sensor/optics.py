"""How the sensor kernel acts on an image: in linear light, across one border convention."""
from newbp_plugin.ops import crosstalk
from newbp_plugin.ops.color import linear_to_srgb, srgb_to_linear
from newbp_plugin.ops.newbp import PADDING_MODES

DEFAULT_PADDING_MODE = 'reflect'  # how the scene continues beyond the pixels given


class SensorOptics:
    """K applied as the sensor applies it: ``srgb(K * linear(Y))`` (``K * Y`` without linear light).

    The dataset, the NewBP head and the re-degradation loss hold the same optics, so that they
    mean the same K, the same light and the same border.

    Args:
        linear_light (bool): images are sRGB-encoded and K acts on linear light. Default: True.
        padding_mode (str): the image beyond its border, one of 'zeros', 'reflect', 'replicate',
            'circular' (``ops.crosstalk``). Default: 'reflect'.
    """

    def __init__(self, linear_light=True, padding_mode=DEFAULT_PADDING_MODE):
        if not isinstance(linear_light, bool):
            raise ValueError(f'linear_light must be true or false, got {linear_light!r}')
        if padding_mode not in PADDING_MODES:
            raise ValueError(f'padding_mode must be one of {", ".join(PADDING_MODES)}, got {padding_mode!r}')
        self.linear_light = linear_light
        self.padding_mode = padding_mode

    def to_linear(self, image):
        """(B, C, H, W) encoded image -> the light K acts on (the identity without linear light)."""
        return srgb_to_linear(image) if self.linear_light else image

    def to_encoded(self, light):
        """The inverse of :meth:`to_linear`."""
        return linear_to_srgb(light) if self.linear_light else light

    def blur(self, light, kernel):
        """``K * light`` (B, C, H, W), kernel in any layout of :mod:`newbp_plugin.sensor.layout`."""
        return crosstalk(light, kernel, padding_mode=self.padding_mode)

    def apply(self, image, kernel):
        """``srgb(K * linear(image))``: an encoded image seen through K, without noise."""
        return self.to_encoded(self.blur(self.to_linear(image), kernel))

    def __repr__(self):
        return f'SensorOptics(linear_light={self.linear_light}, padding_mode={self.padding_mode!r})'
