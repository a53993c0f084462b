"""The network analysis as a script: `python analyses/network.py [--quick] [--events PATH] ...`.

Same options and outputs as `listening-models run network`; see `--help`.
"""

import sys

from models.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["run", "network", *sys.argv[1:]]))
