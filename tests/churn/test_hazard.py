"""Tests of ChurnHazardModel: exact math, fake-posterior predictions, fits and recovery."""

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import special, stats

from models.churn.features import build_hazard_table
from models.churn.hazard import ChurnHazardModel
from models.churn.labels import churn_labels
from models.exceptions import ConvergenceWarning, DataValidationError, NotFittedError
from models.predict import flatten_draws

COVS = ["plays", "new"]
GROUPS = ["country", "plan"]
# ../shared/data beside the checkout (parents[3]); parents[3] / "shared" for a data folder
# kept inside the checkout.
_HERE = Path(__file__).resolve()
DATA_DIR = next((p / "shared" / "data" for p in (_HERE.parents[3], _HERE.parents[2])
                 if (p / "shared" / "data").is_dir()), _HERE.parents[3] / "shared" / "data")


def simulate_person_periods(n_users, baseline, beta, u_country, u_plan, rng):
    """Person-period rows drawn from the model itself (discrete covariates).

    Loops over tenure periods only; every period is vectorised over the users
    still at risk.
    """
    country = rng.integers(0, len(u_country), n_users)
    plan = rng.integers(0, len(u_plan), n_users)
    at_risk = np.ones(n_users, dtype=bool)
    parts = []
    for t, alpha in enumerate(baseline):
        idx = np.flatnonzero(at_risk)
        x = np.column_stack([rng.integers(0, 4, idx.size), rng.integers(0, 2, idx.size)])
        eta = alpha + x @ beta + u_country[country[idx]] + u_plan[plan[idx]]
        event = (rng.random(idx.size) < special.expit(eta)).astype(int)
        parts.append(pd.DataFrame({
            "user_id": idx, "tenure": t, "event": event, "plays": x[:, 0], "new": x[:, 1],
            "country": np.array(["c0", "c1", "c2", "c3", "c4", "c5"])[country[idx]],
            "plan": np.array(["free", "premium"])[plan[idx]],
        }))
        at_risk[idx[event == 1]] = False
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(42)
    return simulate_person_periods(
        300, np.linspace(-1.8, -2.4, 5), np.array([-0.3, 0.4]),
        np.array([0.3, -0.1, -0.2]), np.array([-0.2, 0.2]), rng,
    )


@pytest.fixture(scope="module")
def fitted(table):
    model = ChurnHazardModel(covariates=COVS, groups=GROUPS)
    with warnings.catch_warnings():
        # A short smoke-test fit; convergence is checked by the slow recovery test.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(table, draws=150, tune=200, chains=2, cores=1, random_seed=3)


# ------------------------------------------------------------------ exact math


def _point(model, table, rng):
    n_t = table["tenure"].max() + 1
    point = {
        "baseline_start": -2.0, "baseline_sigma_log__": np.log(0.3),
        "baseline_z": rng.normal(size=n_t - 1), "beta": rng.normal(size=2),
        "group_sigma_log__": np.log([0.5, 0.8]),
        "z_country": rng.normal(size=table["country"].nunique()),
        "z_plan": rng.normal(size=2),
    }
    return point


def _bernoulli_loglik(table, point):
    """Brute force: per-row Bernoulli log-likelihood with standardisation done by hand."""
    x = table[COVS].to_numpy(float)
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    sigma = np.exp(point["baseline_sigma_log__"])
    alpha = point["baseline_start"] + np.concatenate([[0.0], np.cumsum(point["baseline_z"])
                                                      * sigma])
    gs = np.exp(point["group_sigma_log__"])
    u_c = gs[0] * point["z_country"]
    u_p = gs[1] * point["z_plan"]
    c_code = pd.Categorical(table["country"], sorted(table["country"].unique())).codes
    p_code = pd.Categorical(table["plan"], sorted(table["plan"].unique())).codes
    eta = alpha[table["tenure"]] + z @ point["beta"] + u_c[c_code] + u_p[p_code]
    return stats.bernoulli.logpmf(table["event"], special.expit(eta)).sum()


def test_collapsed_cells_match_bernoulli_rows(table):
    model = ChurnHazardModel(covariates=COVS, groups=GROUPS)
    pm_model = model.build_model(table)
    n_cells = len(pm_model.coords["cell"])
    assert n_cells == len(table.drop_duplicates(["tenure", *COVS, *GROUPS])) < len(table)
    logp = pm_model.compile_logp(vars=[pm_model["churn"]], mode="FAST_COMPILE")
    rng = np.random.default_rng(0)
    for _ in range(2):
        point = _point(model, table, rng)
        # the cells' likelihood is exactly the sum of the rows' Bernoulli log-likelihoods
        assert logp(point) == pytest.approx(_bernoulli_loglik(table, point), rel=1e-10)


def test_independent_baseline_and_no_groups_build(table):
    pm_model = ChurnHazardModel(covariates=["plays"], groups=[],
                                baseline="independent").build_model(table)
    assert {rv.name for rv in pm_model.free_RVs} == {"baseline", "beta"}
    assert len(pm_model.coords["tenure"]) == 5


# ------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t: t.drop(columns="plays"), "column 'plays': expected a column"),
        (lambda t: t.assign(plays=np.where(t.index == 3, np.nan, t["plays"])),
         r"column 'plays': expected finite covariate values \(no NaN\); 1 row\(s\).*row 3"),
        (lambda t: t.assign(event=np.where(t.index == 0, 2, t["event"])),
         r"column 'event': expected 0 or 1.*row 0 \(2\)"),
        (lambda t: t.assign(tenure=np.where(t.index == 1, -1, t["tenure"])),
         r"column 'tenure': expected non-negative integer.*row 1 \(-1\)"),
        (lambda t: t.assign(country=np.where(t.index == 2, None, t["country"])),
         "column 'country': expected no missing group labels"),
        (lambda t: t.iloc[:0], "at least one row"),
    ],
)
def test_fit_rejects_bad_tables(table, change, match):
    with pytest.raises(DataValidationError, match=match):
        ChurnHazardModel(covariates=COVS, groups=GROUPS).build_model(change(table))


def test_rejects_bad_options(table):
    with pytest.raises(ValueError, match="The 'baseline' parameter of ChurnHazardModel must"):
        ChurnHazardModel(baseline="spline")
    with pytest.raises(ValueError, match="The 'covariates' parameter .* Got 'plays' instead"):
        ChurnHazardModel(covariates="plays")
    with pytest.raises(ValueError, match="has no prior named 'alpha'"):
        ChurnHazardModel(priors={"alpha": {"distribution": "Normal"}})
    with pytest.raises(TypeError, match="must be a pandas DataFrame. Got dict instead"):
        ChurnHazardModel().build_model({"tenure": [1]})
    with pytest.raises(NotFittedError, match="call fit"):
        ChurnHazardModel().probability_churn(table)


# ------------------------------------------------- predictions, fixed posterior


@pytest.fixture
def fake(table):
    """A model with a hand-made posterior of 3 draws."""
    model = ChurnHazardModel(covariates=COVS, groups=GROUPS)
    model.data_ = model._validate_data(table)
    baseline = np.array([[-2.0, -1.5, -1.0, -1.2, -1.4], [-2.2, -2.0, -1.8, -1.6, -1.4],
                         [-1.0, -1.0, -1.0, -1.0, -1.0]])
    post = xr.Dataset({
        "baseline": (("chain", "draw", "tenure"), baseline[None]),
        "beta": (("chain", "draw", "covariate"), np.array([[[0.5, -0.2], [0.1, 0.3],
                                                            [0.0, 0.0]]])),
        "u_country": (("chain", "draw", "country"), np.array([[[0.1, 0.2, -0.3], [0.0, 0.4,
                                                               -0.1], [0.3, 0.3, 0.3]]])),
        "u_plan": (("chain", "draw", "plan"), np.array([[[0.2, -0.2], [-0.5, 0.5], [0, 0]]])),
    })
    model.idata_ = xr.DataTree.from_dict({"posterior": post})
    return model, post, table


def _hand_probability(post, table, rows, horizon):
    x = table[COVS].to_numpy(float)
    mean, sd = x.mean(axis=0), x.std(axis=0)
    countries, plans = ["c0", "c1", "c2"], ["free", "premium"]
    out = np.zeros((3, len(rows)))
    for d in range(3):
        for i, (_, row) in enumerate(rows.iterrows()):
            z = (row[COVS].to_numpy(float) - mean) / sd
            surv = 1.0
            for j in range(horizon):
                t = min(row["tenure"] + j, 4)
                eta = (post["baseline"].values[0, d, t] + z @ post["beta"].values[0, d]
                       + post["u_country"].values[0, d, countries.index(row["country"])]
                       + post["u_plan"].values[0, d, plans.index(row["plan"])])
                surv *= 1 - 1 / (1 + np.exp(-eta))
            out[d, i] = 1 - surv
    return out


def test_probability_churn_is_one_minus_product(fake):
    model, post, table = fake
    rows = pd.DataFrame({"user_id": ["u1", "u2", "u3"], "tenure": [0, 3, 7],
                         "plays": [0, 2, 3], "new": [1, 0, 1],
                         "country": ["c0", "c2", "c1"], "plan": ["free", "premium", "free"]})
    draw_array = model.probability_churn(rows, horizon=4, return_draws=True)
    assert draw_array.dims == ("chain", "draw", "user") and draw_array.shape == (1, 3, 3)
    assert list(draw_array["user"].values) == ["u1", "u2", "u3"]
    draws = flatten_draws(draw_array)
    np.testing.assert_allclose(draws, _hand_probability(post, table, rows, 4), rtol=1e-12)
    summary = model.probability_churn(rows, horizon=4)
    assert list(summary.index) == ["u1", "u2", "u3"] and summary.index.name == "user_id"
    assert list(summary.columns) == ["mean", "sd", "ci_lower", "ci_upper"]
    np.testing.assert_allclose(summary["mean"], draws.mean(axis=0))
    # batch_size is deprecated and ignored (blocks are chosen automatically)
    with pytest.warns(FutureWarning, match="'batch_size' parameter"):
        old = model.probability_churn(rows, horizon=4, batch_size=2)
    pd.testing.assert_frame_equal(old, summary)
    survival = flatten_draws(model.expected_survival(rows, horizon=4, return_draws=True))
    np.testing.assert_allclose(survival, 1 - draws)
    # One period ahead is the hazard itself; the horizon only adds risk.
    one = model.probability_churn(rows, horizon=1)["mean"].to_numpy()
    assert np.all(one < summary["mean"].to_numpy())


def test_default_prediction_rows_are_last_rows_per_user(fake):
    model, post, table = fake
    out = model.probability_churn(horizon=2, return_draws=True)
    last = table.sort_values(["user_id", "tenure"]).drop_duplicates("user_id", keep="last")
    assert list(out["user"].values) == last["user_id"].tolist()
    np.testing.assert_allclose(flatten_draws(out), _hand_probability(post, table, last.iloc[:], 2))


def test_baseline_hazard_from_fake_posterior(fake):
    model, post, _ = fake
    curve = model.baseline_hazard()
    assert curve.index.name == "tenure" and len(curve) == 5
    np.testing.assert_allclose(curve["mean"], special.expit(post["baseline"].values[0]).mean(0))


def test_prediction_errors(fake):
    model, _, table = fake
    rows = table.head(3).drop(columns="event")
    with pytest.raises(ValueError, match="'horizon' parameter of ChurnHazardModel."
                       "probability_churn must be a positive integer. Got 0 instead"):
        model.probability_churn(rows, horizon=0)
    with pytest.raises(DataValidationError,
                       match=r"column 'country': expected labels seen in training.*'xx'"):
        model.probability_churn(rows.assign(country="xx"))
    with pytest.raises(DataValidationError, match="column 'new': expected a column"):
        model.expected_survival(rows.drop(columns="new"))


# ----------------------------------------------------------------- fast fits


def test_fast_fit_predicts_and_round_trips(fitted, table, tmp_path):
    names = {"baseline", "beta", "u_country", "u_plan", "group_sigma", "baseline_sigma"}
    assert names <= set(fitted.idata_["posterior"].data_vars)
    assert fitted.idata_["posterior"]["baseline"].sizes["tenure"] == 5
    assert set(fitted.summary().index) >= {"beta[plays]", "u_plan[premium]"}
    np.testing.assert_allclose(fitted.covariate_means_, table[COVS].mean())
    risk = fitted.probability_churn(horizon=3)
    assert risk.index.name == "user_id" and len(risk) == table["user_id"].nunique()
    assert ((risk["ci_lower"] <= risk["mean"]) & (risk["mean"] <= risk["ci_upper"])).all()
    # More periods of exposure mean more churn.
    assert (fitted.probability_churn(horizon=6)["mean"] > risk["mean"]).all()
    back = ChurnHazardModel.load(fitted.save(tmp_path / "hazard.nc"))
    assert back.get_params()["groups"] == list(GROUPS)
    pd.testing.assert_frame_equal(back.probability_churn(horizon=3), risk)
    pd.testing.assert_frame_equal(back.baseline_hazard(), fitted.baseline_hazard())


@pytest.mark.filterwarnings("ignore::models.exceptions.ConvergenceWarning")
@pytest.mark.skipif(importlib.util.find_spec("models.data.simulate") is None,
                    reason="models.data.simulate is not available")
def test_simulated_service_end_to_end():
    from models.data.simulate import simulate_service

    service = simulate_service(n_users=150, days=150, random_seed=4)
    labels = churn_labels(service.events, inactivity="21D", users=service.users,
                          observation_end=service.observation_end)
    assert labels["churned"].any() and labels["censored"].any()
    table = build_hazard_table(service.events, service.users, period="W", inactivity="21D",
                               observation_end=service.observation_end)
    assert {"skip_rate_prev", "log_artists_prev", "country", "plan"} <= set(table.columns)
    assert table["event"].sum() <= labels["churned"].sum()
    model = ChurnHazardModel(groups=GROUPS).fit(table, draws=100, tune=150, chains=2,
                                                cores=1, random_seed=1)
    assert model.probability_churn(horizon=4)["mean"].between(0, 1).all()
    # Forecast from the end of observation: users still at risk, at their next period.
    ahead = build_hazard_table(service.events, service.users, period="W", inactivity="21D",
                               observation_end=service.observation_end, forecast=True)
    risk = model.probability_churn(ahead, horizon=4)
    churned = set(table.loc[table["event"] == 1, "user_id"])
    assert len(risk) == len(ahead) and not churned & set(risk.index)
    assert risk["mean"].between(0, 1).all()
    # Without the optional columns the table and a smaller model still work.
    bare = build_hazard_table(service.events[["user_id", "timestamp"]], service.users,
                              inactivity="21D", observation_end=service.observation_end)
    assert "skip_rate_prev" not in bare
    small = ChurnHazardModel(covariates=["log_plays_prev", "days_since_last_play"])
    assert small.build_model(bare)["churn"] is not None
    with pytest.raises(DataValidationError, match="column 'skip_rate_prev': expected a column"):
        ChurnHazardModel().build_model(bare)


@pytest.mark.data
@pytest.mark.skipif(not (DATA_DIR / "lastfm-1k-events").is_dir(),
                    reason="../shared/data/lastfm-1k-events is absent")
def test_real_lastfm_log_table_is_consistent():
    raw = pd.read_csv(DATA_DIR / "lastfm-1k-events" / "lastfm_jodie_prefix.csv",
                      usecols=[0, 2], header=0, names=["user_id", "seconds"])
    events = pd.DataFrame({"user_id": raw["user_id"], "timestamp": pd.Timestamp("2008-01-01")
                           + pd.to_timedelta(raw["seconds"], unit="s")})
    labels = churn_labels(events, inactivity="30D")
    table = build_hazard_table(events, period="W", inactivity="30D")
    assert len(labels) == 271
    assert table.groupby("user_id")["event"].sum().max() == 1
    # Every event row is a user's last row and is a churned user's.
    last = table.groupby("user_id").tail(1)
    assert table.loc[table["event"] == 1].index.isin(last.index).all()
    assert labels.loc[table.loc[table["event"] == 1, "user_id"], "churned"].all()


# ---------------------------------------------------------------- recovery


@pytest.mark.slow
def test_recovery_and_interval_coverage():
    rng = np.random.default_rng(2024)
    baseline = -2.2 + 0.4 * np.sin(np.arange(10) / 3.0)
    beta = np.array([-0.35, 0.5])
    u_country = np.array([0.4, -0.3, 0.1, -0.5, 0.2, 0.1])
    u_country -= u_country.mean()
    u_plan = np.array([-0.3, 0.3])
    table = simulate_person_periods(3000, baseline, beta, u_country, u_plan, rng)
    model = ChurnHazardModel(covariates=COVS, groups=GROUPS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # checked just below
        model.fit(table, draws=400, tune=400, chains=2, cores=1, random_seed=7,
                  target_accept=0.95)
    report = model.fit_report_
    # Two plans give a funnel-prone group sd; tolerate a stray divergence, not a bad fit.
    assert report.n_divergent <= 4 and report.variables["rhat"].max() < 1.03, report.problems
    post = model.idata_["posterior"]
    # The model's parameters are on the standardised covariate scale; group effects are
    # identified up to a shift absorbed by the baseline, so compare centred contrasts.
    x = table[COVS].to_numpy(float)
    mean, sd = x.mean(axis=0), x.std(axis=0)
    draws = {
        "beta": post["beta"].stack(s=("chain", "draw")).values.T,
        "baseline": (post["baseline"] + post["u_country"].mean("country")
                     + post["u_plan"].mean("plan")).stack(s=("chain", "draw")).values.T,
        "u_country": (post["u_country"] - post["u_country"].mean("country"))
        .stack(s=("chain", "draw")).values.T,
        "u_plan": (post["u_plan"] - post["u_plan"].mean("plan")).stack(s=("chain", "draw"))
        .values.T,
    }
    truth = {"beta": beta * sd, "baseline": baseline + beta @ mean,
             "u_country": u_country, "u_plan": u_plan}
    covered, total = 0, 0
    for name, d in draws.items():
        lo, hi = np.quantile(d, [0.05, 0.95], axis=0)
        covered += int(np.sum((lo <= truth[name]) & (truth[name] <= hi)))
        total += truth[name].size
        assert np.all(np.abs(d.mean(axis=0) - truth[name]) < 4 * d.std(axis=0)), name
    # Nominal 90% intervals: the count covered is at least Binomial(total, 0.9)'s 0.1% quantile.
    print(f"90% intervals covering the truth: {covered} of {total}")
    assert covered >= stats.binom.ppf(0.001, total, 0.9), (covered, total)
    np.testing.assert_allclose(model.covariate_sds_, sd)
