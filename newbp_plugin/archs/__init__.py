"""Architectures (`*_arch.py`), registered in BasicSR's ARCH_REGISTRY on import."""
from newbp_plugin.registration import import_modules_by_suffix

_modules = import_modules_by_suffix(__name__, '_arch')
