"""``python -m newbp_plugin.test -opt X.yml``: BasicSR's test pipeline with the plugin registered."""
import sys

from newbp_plugin.cli import main

if __name__ == '__main__':
    sys.exit(main(['test'] + sys.argv[1:]))
