"""listening-models: Bayesian models of how people use a music-streaming service.

Subpackages
-----------
data
    Listening-log validation, loading, summaries and the simulated service.
diagnostics
    Fit checks, posterior predictive checks and LOO comparison.
"""

from models import data, diagnostics
from models._version import __version__
from models.base import BayesianModel, PosteriorModel
from models.exceptions import (
    ConvergenceWarning,
    DataQualityWarning,
    DataValidationError,
    FitInterrupted,
    ModelMismatchError,
    NotFittedError,
    SavedFitError,
    UninformativeDataWarning,
)
from models.priors import Prior

__all__ = [
    "BayesianModel",
    "ConvergenceWarning",
    "DataQualityWarning",
    "DataValidationError",
    "FitInterrupted",
    "ModelMismatchError",
    "NotFittedError",
    "PosteriorModel",
    "Prior",
    "SavedFitError",
    "UninformativeDataWarning",
    "__version__",
    "data",
    "diagnostics",
]
