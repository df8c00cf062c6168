"""The sensor model: the physics ``X = q(srgb(K * linear(Y)) + N)`` written once (no BasicSR).

The dataset, the NewBP head, the losses, the classical baselines, the benchmark and restore
all go through it; it is the only code that applies K or draws noise.
"""
from .layout import is_channel_mixing, physical_kernel, select_kernel

__all__ = ['is_channel_mixing', 'physical_kernel', 'select_kernel']
