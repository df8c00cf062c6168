"""newbp-plugin: sensor-crosstalk removal for BasicSR.

Importing the package applies the BasicSR compatibility fixes first, then
registers every architecture, dataset, loss, metric and model of the plugin in
BasicSR's registries (BasicSR's auto-import pattern by file suffix).
"""
from newbp_plugin import compat
from newbp_plugin.version import __version__

compat.apply()

from newbp_plugin import archs, data, losses, metrics, models  # noqa: E402 (registration after compat)

__all__ = ['__version__', 'archs', 'compat', 'data', 'losses', 'metrics', 'models']
