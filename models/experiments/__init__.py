"""Bayesian analysis of A/B tests on listening, skips and retention.

From a listening log and an assignment table to checked, decision-ready answers:

Data
    :func:`validate_assignments`; metric objects (:class:`Count`, :class:`Sum`,
    :class:`ActiveDays`, :class:`Distinct`, :class:`Binary`, :class:`Retained`,
    :class:`Ratio`); :func:`compute_user_metrics` (per-user metrics over each user's
    exposure window and a pre-period, pandas or Dask) and
    :func:`sufficient_statistics`.
Checks before any effect is read
    :func:`sample_ratio_test`, :func:`check_experiment`.
Hierarchical models
    :class:`SegmentEffectModel` (effects across segments, partially pooled) and
    :class:`ExperimentHistoryModel` (a prior learned from past experiments).
Fast conjugate engine
    :func:`analyze` (Beta-binomial and delta-method normal models, CUPED with the
    pre-period covariate, priors, ROPE, always-valid sequential intervals),
    :func:`decide` over success and guardrail metrics, :func:`sample_size`.
Long-term outcomes
    :class:`SurrogateIndexModel` with :func:`reference_cohort`;
    :func:`exposure_activity`, :func:`project_arms` and :func:`projection_curve`
    (churn-model projections); :func:`compare_with_observed`;
    :class:`ProxyMetricModel` (choosing a proxy from past experiments).
Simulation with known truth
    :func:`simulate_experiment`, :func:`sample_average_effects`.
"""

from models.experiments.assignments import validate_assignments
from models.experiments.checks import (
    ExperimentChecks,
    SampleRatioResult,
    check_experiment,
    sample_ratio_test,
)
from models.experiments.conjugate import beta_binomial, beta_posterior, normal_effect
from models.experiments.decision import Decision, decide
from models.experiments.engine import EFFECT_COLUMNS, analyze, summarize_arms
from models.experiments.history import ExperimentHistoryModel, estimate_heterogeneity
from models.experiments.metrics import (
    DEFAULT_METRICS,
    ActiveDays,
    Binary,
    Count,
    Distinct,
    Metric,
    Ratio,
    Retained,
    Sum,
)
from models.experiments.plotting import plot_effects, plot_projection
from models.experiments.power import SampleSize, minimum_detectable_lift, sample_size
from models.experiments.projection import (
    LongTermProjection,
    compare_with_observed,
    exposure_activity,
    project_arms,
    projection_curve,
)
from models.experiments.proxies import ProxyMetricModel
from models.experiments.reference import (
    DEFAULT_SURROGATES,
    long_term_outcome,
    reference_cohort,
    sample_average_effects,
)
from models.experiments.segments import SegmentEffectModel
from models.experiments.sequential import (
    PeekingResult,
    confidence_sequence,
    sequential_multiplier,
    simulate_peeking,
)
from models.experiments.simulate import (
    DEFAULT_VARIANTS,
    Effect,
    ExperimentTruth,
    SimulatedExperiment,
    simulate_experiment,
)
from models.experiments.surrogate import SurrogateIndexModel
from models.experiments.user_metrics import (
    STAT_COLUMNS,
    UserMetrics,
    compute_user_metrics,
    sufficient_statistics,
)

__all__ = [
    "DEFAULT_METRICS",
    "DEFAULT_SURROGATES",
    "DEFAULT_VARIANTS",
    "EFFECT_COLUMNS",
    "STAT_COLUMNS",
    "ActiveDays",
    "Binary",
    "Count",
    "Decision",
    "Distinct",
    "Effect",
    "ExperimentChecks",
    "ExperimentHistoryModel",
    "ExperimentTruth",
    "LongTermProjection",
    "Metric",
    "PeekingResult",
    "ProxyMetricModel",
    "Ratio",
    "Retained",
    "SampleRatioResult",
    "SampleSize",
    "SegmentEffectModel",
    "SimulatedExperiment",
    "Sum",
    "SurrogateIndexModel",
    "UserMetrics",
    "analyze",
    "beta_binomial",
    "beta_posterior",
    "check_experiment",
    "compare_with_observed",
    "compute_user_metrics",
    "confidence_sequence",
    "decide",
    "estimate_heterogeneity",
    "exposure_activity",
    "long_term_outcome",
    "minimum_detectable_lift",
    "normal_effect",
    "plot_effects",
    "plot_projection",
    "project_arms",
    "projection_curve",
    "reference_cohort",
    "sample_average_effects",
    "sample_ratio_test",
    "sample_size",
    "sequential_multiplier",
    "simulate_experiment",
    "simulate_peeking",
    "sufficient_statistics",
    "summarize_arms",
    "validate_assignments",
]
