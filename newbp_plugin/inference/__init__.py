"""Trained networks at work, outside training.

- :mod:`.network`: networks for inference (architecture options, checkpoints, tiled forward);
- :mod:`.restore`: ``basicsr restore``, a trained network on image files.
"""
