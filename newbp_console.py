"""The ``basicsr`` console script, answering ``--version`` before torch and BasicSR are imported.

Importing :mod:`newbp_plugin` registers the plugin in BasicSR's registries, which imports torch and
BasicSR (seconds). This module lives outside the package so that ``basicsr --version`` reads only
the installed distributions' metadata; every other command line goes to :func:`newbp_plugin.cli.main`.
"""
import platform
import sys
from importlib import metadata

DISTRIBUTION = 'newbp-plugin'
VERSION_FLAGS = ('--version', '--verbose')


def version_report(verbose=False):
    """``newbp-plugin X.Y.Z``; with ``verbose``, also Python, torch with its CUDA build and devices, and BasicSR."""
    lines = [f'{DISTRIBUTION} {metadata.version(DISTRIBUTION)}']
    if verbose:
        import torch  # the CUDA build and devices are known only to torch itself
        cuda = (f'CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s) visible' if torch.version.cuda
                else 'CPU-only build')
        lines += [f'Python {platform.python_version()}', f'torch {torch.__version__} ({cuda})',
                  f'basicsr {metadata.version("basicsr")}']
    return '\n'.join(lines)


def main(argv=None):
    """Entry point of the ``basicsr`` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if '--version' in argv and set(argv) <= set(VERSION_FLAGS):
        print(version_report(verbose='--verbose' in argv))
        return 0
    from newbp_plugin.cli import main as cli_main
    return cli_main(argv)


if __name__ == '__main__':
    sys.exit(main())
