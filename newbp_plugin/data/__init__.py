"""Datasets (`*_dataset.py`), registered in BasicSR's DATASET_REGISTRY on import."""
from newbp_plugin.registration import import_modules_by_suffix

_modules = import_modules_by_suffix(__name__, '_dataset')
