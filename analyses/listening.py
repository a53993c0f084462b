"""The listening analysis as a script: `python analyses/listening.py [--quick] [--events PATH] ...`.

Same options and outputs as `listening-models run listening`; see `--help`.
"""

import sys

from models.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["run", "listening", *sys.argv[1:]]))
