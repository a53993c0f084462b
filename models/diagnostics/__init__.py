"""Fit checks, posterior predictive checks and model comparison, thin over ArviZ.

* :mod:`models.diagnostics.checks`: :func:`check_fit` turns R-hat, ESS, divergences,
  tree depth, E-BFMI and posterior contraction into one :class:`FitReport` with a
  verdict and advice.
* :mod:`models.diagnostics.contraction`: how much the data narrowed (or moved) each
  parameter's prior.
* :mod:`models.diagnostics.ppc`: posterior predictive check plots and p-values for
  count data.
* :mod:`models.diagnostics.compare`: PSIS-LOO model comparison with Pareto-k counts.
* :mod:`models.diagnostics.report`: the :class:`FitReport` container.
"""

from models.diagnostics.checks import check_fit, warn_if_not_converged, warn_if_uninformed
from models.diagnostics.compare import LooReport, compare_models, loo_report
from models.diagnostics.contraction import posterior_contraction, posterior_shift
from models.diagnostics.ppc import STATISTICS, plot_ppc_counts, plot_ppc_stat, ppc_pvalue
from models.diagnostics.report import FitReport

__all__ = [
    "STATISTICS",
    "FitReport",
    "LooReport",
    "check_fit",
    "compare_models",
    "loo_report",
    "plot_ppc_counts",
    "plot_ppc_stat",
    "posterior_contraction",
    "posterior_shift",
    "ppc_pvalue",
    "warn_if_not_converged",
    "warn_if_uninformed",
]
