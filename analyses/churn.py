"""The churn analysis as a script: `python analyses/churn.py [--quick] [--events PATH] ...`.

Same options and outputs as `listening-models run churn`; see `--help`.
"""

import sys

from models.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["run", "churn", *sys.argv[1:]]))
