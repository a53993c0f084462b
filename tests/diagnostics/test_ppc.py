"""Tests for models.diagnostics.ppc: p-values exactly, plots as Axes without global state."""

from __future__ import annotations

import arviz as az
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from models.diagnostics import STATISTICS, plot_ppc_counts, plot_ppc_stat, ppc_pvalue  # noqa: E402


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.fixture
def poisson_fit(rng):
    return az.from_dict(
        {
            "posterior_predictive": {"plays": rng.poisson(3.0, size=(2, 100, 60))},
            "observed_data": {"plays": rng.poisson(3.0, size=60)},
        }
    )


@pytest.fixture
def ladder_fit():
    """Draw s predicts every observation equal to s, s = 0..99; observed all 89.5."""
    pp = np.repeat(np.arange(100.0)[:, None], 10, axis=1)[None]  # (1 chain, 100 draws, 10)
    return az.from_dict(
        {"posterior_predictive": {"y": pp}, "observed_data": {"y": np.full(10, 89.5)}}
    )


# ----------------------------------------------------------------- ppc_pvalue, exact


def test_pvalue_exact_on_ladder(ladder_fit):
    # T(y_rep) = s >= 89.5 for s = 90..99: 10 of 100 draws
    assert ppc_pvalue(ladder_fit, "y", "mean") == pytest.approx(0.10)
    assert ppc_pvalue(ladder_fit, "y", "max") == pytest.approx(0.10)
    assert ppc_pvalue(ladder_fit, "y", "sd") == pytest.approx(1.0)  # ties count as >=


def test_callable_stat_matches_named(poisson_fit):
    assert ppc_pvalue(poisson_fit, "plays", np.mean) == ppc_pvalue(poisson_fit, "plays", "mean")
    assert ppc_pvalue(poisson_fit, "plays", lambda x: np.mean(x == 0)) == ppc_pvalue(
        poisson_fit, "plays", "prop_zero"
    )


def test_named_statistics_values():
    x = np.array([[0.0, 0.0, 2.0, 6.0]])
    assert STATISTICS["prop_zero"](x, axis=-1)[0] == pytest.approx(0.5)
    # mean 2, sample variance (4 + 4 + 0 + 16) / 3 = 8 -> dispersion 4
    assert STATISTICS["dispersion"](x, axis=-1)[0] == pytest.approx(4.0)


def test_overdispersion_detected_against_poisson(rng):
    observed = rng.negative_binomial(1, 1 / (1 + 4.0), size=200)  # mean 4, variance 20
    fit = az.from_dict(
        {
            "posterior_predictive": {"y": rng.poisson(observed.mean(), size=(2, 200, 200))},
            "observed_data": {"y": observed},
        }
    )
    assert ppc_pvalue(fit, "y", "dispersion") < 0.01
    assert ppc_pvalue(fit, "y", "prop_zero") < 0.01


def test_multidimensional_observations_flatten_consistently(rng):
    obs = rng.poisson(2.0, size=(5, 4))
    pp = rng.poisson(2.0, size=(2, 50, 5, 4))
    fit = az.from_dict(
        {"posterior_predictive": {"y": pp}, "observed_data": {"y": obs}},
        dims={"y": ["user", "period"]},
    )
    expected = np.mean(pp.reshape(100, -1).mean(axis=1) >= obs.mean())
    assert ppc_pvalue(fit, "y", "mean") == pytest.approx(expected)


# ----------------------------------------------------------------- errors


def test_missing_group_is_named(rng):
    only_obs = az.from_dict({"observed_data": {"y": rng.poisson(2.0, size=10)}})
    with pytest.raises(
        ValueError, match="'posterior_predictive' group.*sample_posterior_predictive"
    ):
        ppc_pvalue(only_obs, "y", "mean")
    only_pp = az.from_dict({"posterior_predictive": {"y": rng.poisson(2.0, size=(1, 5, 10))}})
    with pytest.raises(ValueError, match="'observed_data' group"):
        plot_ppc_counts(only_pp, "y")


def test_missing_variable_is_named(poisson_fit):
    with pytest.raises(
        ValueError, match=r"Variable 'skips' not in the 'posterior_predictive'.*plays"
    ):
        plot_ppc_stat(poisson_fit, "skips")


def test_unknown_stat_lists_valid_ones(poisson_fit):
    with pytest.raises(ValueError, match=r"'stat' parameter must be one of .*'mean'.*Got 'mode'"):
        ppc_pvalue(poisson_fit, "plays", "mode")


def test_counts_plot_rejects_non_counts(rng):
    fit = az.from_dict(
        {
            "posterior_predictive": {"y": rng.normal(size=(1, 5, 4))},
            "observed_data": {"y": np.array([1.0, 2.5, -1.0, 3.0])},
        }
    )
    with pytest.raises(ValueError, match=r"2 value\(s\) are not, first at position 1 \(2.5\)"):
        plot_ppc_counts(fit, "y")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_draws": 0}, "'num_draws' parameter .* Got 0 instead"),
        ({"ci_prob": 1.5}, "'ci_prob' parameter of plot_ppc_counts must be a number in "
                           r"\(0, 1\). Got 1.5 instead"),
        ({"ci_prob": "wide"}, "'ci_prob' parameter .* Got 'wide' instead"),
        ({"max_count": -3}, "'max_count' parameter .* Got -3 instead"),
    ],
)
def test_counts_plot_parameter_errors(poisson_fit, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_ppc_counts(poisson_fit, "plays", **kwargs)


def test_counts_plot_old_prob_name_warns(poisson_fit):
    with pytest.warns(FutureWarning, match="'prob' parameter of plot_ppc_counts is deprecated"):
        ax = plot_ppc_counts(poisson_fit, "plays", prob=0.5, random_seed=0)
    assert "predictive 50% interval" in ax.get_legend_handles_labels()[1]
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="'ci_prob' parameter"):
        plot_ppc_counts(poisson_fit, "plays", prob=1.5)


def test_mismatched_observation_dims_raise(rng):
    fit = az.from_dict(
        {
            "posterior_predictive": {"y": rng.poisson(2.0, size=(1, 5, 4))},
            "observed_data": {"y": rng.poisson(2.0, size=6)},
        }
    )
    with pytest.raises(ValueError, match="they must match"):
        ppc_pvalue(fit, "y", "mean")


# ----------------------------------------------------------------- plots


def test_counts_plot_returns_axes_without_touching_pyplot(poisson_fit):
    before = plt.get_fignums()
    ax = plot_ppc_counts(poisson_fit, "plays", num_draws=20, random_seed=3, max_count=6)
    try:
        assert isinstance(ax, Axes)
        assert plt.get_fignums() == before  # no figure registered with pyplot
        assert len(ax.patches) == 7  # bars for 0..5 and the pooled "6+"
        assert ax.get_xticklabels()[-1].get_text() == "6+"
        assert ax.get_xlabel() == "plays"
    finally:
        plt.close(ax.figure)


def test_counts_plot_draws_on_given_axes(poisson_fit):
    fig, given = plt.subplots()
    try:
        ax = plot_ppc_counts(poisson_fit, "plays", ax=given, random_seed=1)
        assert ax is given
        observed = np.asarray(poisson_fit["observed_data"]["plays"].values)
        heights = [p.get_height() for p in ax.patches]
        assert sum(heights) == observed.size  # every observation is in one bar
    finally:
        plt.close(fig)


def test_counts_plot_is_reproducible_with_seed(poisson_fit):
    a = plot_ppc_counts(poisson_fit, "plays", num_draws=10, random_seed=5)
    b = plot_ppc_counts(poisson_fit, "plays", num_draws=10, random_seed=5)
    try:
        np.testing.assert_array_equal(a.lines[0].get_ydata(), b.lines[0].get_ydata())
    finally:
        plt.close(a.figure)
        plt.close(b.figure)


def test_stat_plot_shows_observed_and_pvalue(ladder_fit):
    fig, given = plt.subplots()
    try:
        ax = plot_ppc_stat(ladder_fit, "y", "mean", ax=given, bins=10)
        assert ax is given
        texts = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "p = 0.10" in texts
        assert any(t.startswith("observed = 89.5") for t in texts)
        assert ax.get_xlabel() == "mean(y)"
    finally:
        plt.close(fig)


def test_stat_plot_callable_label_and_bins_error(poisson_fit):
    def share_above_five(x):
        return float(np.mean(x > 5))

    ax = plot_ppc_stat(poisson_fit, "plays", share_above_five)
    try:
        assert ax.get_xlabel() == "share_above_five(plays)"
    finally:
        plt.close(ax.figure)
    with pytest.raises(ValueError, match="'bins' parameter .* Got 0 instead"):
        plot_ppc_stat(poisson_fit, "plays", bins=0)
