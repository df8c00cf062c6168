"""Pure tensor operators of the plugin (no BasicSR import)."""
from .otf import psf2otf

__all__ = ['psf2otf']
