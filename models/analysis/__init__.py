"""Reproducible analyses: listening log in, fitted and checked models, figures and a report out.

Each analysis (``churn``, ``listening``, ``network``) is a function of an
``AnalysisContext`` (its inputs, configuration, seed and outputs) registered in :data:`ANALYSES`;
:func:`run_analysis` loads or simulates the data, resolves the configuration
(TOML defaults shipped with the package, ``--quick`` settings, a user file) and
writes the same output layout for every analysis (see
:mod:`models.analysis.outputs`), into a working folder that replaces the earlier
outputs only when the run has finished (see ``models.analysis.staging``). The
command line ``listening-models run`` and the scripts in ``analyses/`` call
:func:`run_analysis`.
"""

from models.analysis.config import ConfigError, default_config, load_config
from models.analysis.runner import ANALYSES, run_analysis

__all__ = ["ANALYSES", "ConfigError", "default_config", "load_config", "run_analysis"]
