"""Bayesian models of retention and dropout.

Models
------
ShiftedBetaGeoModel
    Contractual cohort retention (shifted-beta-geometric, Fader & Hardie 2007),
    with partially pooled segments.
BetaGeoModel
    Non-contractual activity and dropout (BG/NBD, Fader, Hardie & Lee 2005).
BetaGeoBetaBinomModel
    Discrete-time non-contractual activity (BG/BB, Fader, Hardie & Shang 2010).
ChurnHazardModel
    Discrete-time hazard of churn with user covariates.

Helpers
-------
melt_cohort_table, bgbb_summary, build_hazard_table, churn_labels
"""

from models.churn.beta_geo import BetaGeoModel
from models.churn.beta_geo_beta_binom import BetaGeoBetaBinomModel, bgbb_summary
from models.churn.features import build_hazard_table
from models.churn.hazard import ChurnHazardModel
from models.churn.labels import churn_labels
from models.churn.shifted_beta_geo import ShiftedBetaGeoModel, melt_cohort_table

__all__ = [
    "BetaGeoBetaBinomModel",
    "BetaGeoModel",
    "ChurnHazardModel",
    "ShiftedBetaGeoModel",
    "bgbb_summary",
    "build_hazard_table",
    "churn_labels",
    "melt_cohort_table",
]
