"""Sensor kernels: KERNEL_REGISTRY, the built-in kernel types and build_kernel (no BasicSR import).

Importing this package registers the built-ins: gaussian, crosstalk, bayer_crosstalk, airy, disk, motion,
per_channel, cross_channel and file.
"""
from .registry import KERNEL_REGISTRY, Registry
from .build import (MAX_KERNEL_SIZE, KernelSampler, KernelSpecError, build_kernel, check_spec, describe_spec,
                    is_random_spec, parse_kernel_spec, resolve_spec)
from . import bayer, channels, cmos, gaussian, measured, motion, optics  # noqa: F401  (registration)
from .measured import load_psf
from .preview import describe_kernels, render_kernel, render_kernel_png

__all__ = [
    'KERNEL_REGISTRY', 'Registry', 'MAX_KERNEL_SIZE', 'KernelSampler', 'KernelSpecError', 'build_kernel',
    'check_spec', 'describe_spec', 'is_random_spec', 'parse_kernel_spec', 'resolve_spec', 'load_psf',
    'describe_kernels', 'render_kernel', 'render_kernel_png'
]
