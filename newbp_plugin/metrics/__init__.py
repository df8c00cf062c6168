"""The plugin's metrics, registered in BasicSR's METRIC_REGISTRY (usable in ``val.metrics`` and ``basicsr benchmark``).

- :func:`~.colour_metric.calculate_delta_e2000`: mean CIEDE2000 colour difference of two sRGB images.
"""
from .colour_metric import calculate_delta_e2000

__all__ = ['calculate_delta_e2000']
