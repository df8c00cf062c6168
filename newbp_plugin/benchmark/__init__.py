"""Evaluation against the baselines users already have: classical deconvolution and the NAFNet zoo.

- :mod:`.classical`: Wiener, Richardson–Lucy and Converse2D with the oracle kernel (pure torch);
- :mod:`.runner`: ``basicsr benchmark -opt options/benchmark/X.yml``, methods × degradations;
- :mod:`.report`: its markdown, CSV, JSON and PNG reports.

Networks are loaded and run by :mod:`newbp_plugin.inference`.
"""
from .classical import converse, richardson_lucy, wiener

__all__ = ['converse', 'richardson_lucy', 'wiener']
