"""Pure tensor operators of the plugin (no BasicSR import)."""
from .converse import converse2d
from .data_step import data_step
from .newbp import crosstalk
from .otf import psf2otf

__all__ = ['psf2otf', 'crosstalk', 'converse2d', 'data_step']
