"""Losses (`*_loss.py`), registered in BasicSR's LOSS_REGISTRY on import."""
from newbp_plugin.registration import import_modules_by_suffix

_modules = import_modules_by_suffix(__name__, '_loss')
