"""``python -m newbp_plugin.train -opt X.yml [...]``: the form torchrun launches.

Example: ``torchrun --nproc_per_node=2 -m newbp_plugin.train -opt X.yml --launcher pytorch``.
"""
import sys

from newbp_plugin.cli import main

if __name__ == '__main__':
    sys.exit(main(['train'] + sys.argv[1:]))
