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
EngagementStateModel
    Hidden Markov model of engagement states (engaged, light, dormant, churned):
    pauses with returns (Netzer, Lattin & Srinivasan 2008).
ReturnHazardModel
    Hazard of activity after a silence, by its length: a renewal model of activity
    in which any pause can end.

Helpers
-------
melt_cohort_table, bgbb_summary, build_hazard_table, churn_labels, activity_table,
silence_table

Out-of-time validation
----------------------
calibration_holdout_split, holdout_evaluation, score_holdout, roc_auc,
brier_score, calibration_table (``probability_active_within`` is deprecated: use
``BetaGeoModel.probability_active``)

Model checks
------------
gap_check (can the model produce the pauses users take? a predictive check of the
gaps between active periods in the log), observed_gaps, GapCheck,
HistoryTooShortError;
:func:`models.metrics.calibration_check` judges holdout calibration against the
predictions' uncertainty

Plots
-----
plot_holdout_calibration, plot_retention_curves, plot_probability_alive_matrix,
plot_expected_activity_matrix; posterior predictive checks plot_ppc_repeat_activity,
plot_ppc_gaps, plot_ppc_survival
"""

from models.churn.beta_geo import BetaGeoModel
from models.churn.beta_geo_beta_binom import BetaGeoBetaBinomModel, bgbb_summary
from models.churn.engagement import EngagementStateModel
from models.churn.engagement_data import activity_table
from models.churn.features import build_hazard_table
from models.churn.gaps import GapCheck, HistoryTooShortError, gap_check, observed_gaps
from models.churn.hazard import ChurnHazardModel
from models.churn.labels import churn_labels
from models.churn.plotting import (
    plot_expected_activity_matrix,
    plot_holdout_calibration,
    plot_ppc_gaps,
    plot_ppc_repeat_activity,
    plot_ppc_survival,
    plot_probability_alive_matrix,
    plot_retention_curves,
)
from models.churn.returns import ReturnHazardModel, silence_table
from models.churn.shifted_beta_geo import ShiftedBetaGeoModel, melt_cohort_table
from models.churn.validation import (
    HoldoutEvaluation,
    brier_score,
    calibration_holdout_split,
    calibration_table,
    holdout_evaluation,
    probability_active_within,
    roc_auc,
    score_holdout,
)

__all__ = [
    "BetaGeoBetaBinomModel",
    "BetaGeoModel",
    "ChurnHazardModel",
    "EngagementStateModel",
    "GapCheck",
    "HistoryTooShortError",
    "HoldoutEvaluation",
    "ReturnHazardModel",
    "ShiftedBetaGeoModel",
    "activity_table",
    "bgbb_summary",
    "brier_score",
    "build_hazard_table",
    "calibration_holdout_split",
    "calibration_table",
    "churn_labels",
    "gap_check",
    "holdout_evaluation",
    "melt_cohort_table",
    "observed_gaps",
    "plot_expected_activity_matrix",
    "plot_holdout_calibration",
    "plot_ppc_gaps",
    "plot_ppc_repeat_activity",
    "plot_ppc_survival",
    "plot_probability_alive_matrix",
    "plot_retention_curves",
    "probability_active_within",
    "roc_auc",
    "score_holdout",
    "silence_table",
]
