"""Every analysis in turn: `python analyses/run_all.py [--quick] ...` (`run all`)."""

import sys

from models.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["run", "all", *sys.argv[1:]]))
