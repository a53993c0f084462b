"""The experiment analysis as a script: `python analyses/experiment.py [--quick] ...`.

Same options and outputs as `listening-models run experiment`; see `--help`.
"""

import sys

from models.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["run", "experiment", *sys.argv[1:]]))
