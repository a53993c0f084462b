"""Covariates on the engagement HMM's transitions: each user's own matrix, recovery, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from models.churn import EngagementStateModel, _hmm
from models.data import simulate_engagement
from models.exceptions import DataValidationError

N = 3  # days per period
MEAN = np.array([0.05, 0.4, 0.8])
KAPPA = np.array([3.0, 5.0, 9.0])
PI = np.array([0.2, 0.3, 0.5])
#: move logits against staying, for 3 states and a churned one (dormant->light, ...)
ETA = np.array([-1.0, -2.5, -3.0, -1.5, -1.2, -2.0, -2.2, -1.8, -2.6])
#: coefficients (covariate, move) on the standardised covariates
BETA = np.array([[0.8, 0.5, -0.6, 0.9, -0.7, -0.4, -0.9, -0.3, -1.1],
                 [-0.3, 0.2, 0.4, -0.5, 0.3, 0.1, 0.6, 0.2, 0.5]])
HISTORIES = [[2, 0, 0, 1, 3], [np.nan, np.nan, 0, 0, 0], [np.nan, 3, 3, 0, 2],
             [1, 1, 1, 1, 1], [0, 0, 0, 0, 1], [3, 3, 2, 3, 3]]


def _table() -> pd.DataFrame:
    data = pd.DataFrame(HISTORIES, index=pd.Index(list("abcdef"), name="user_id"),
                        columns=[f"w{i}" for i in range(5)])
    data["plan"] = ["free", "paid", "free", "paid", "paid", "free"]
    data["premium"] = [True, False, True, True, False, False]
    data["age"] = [19.0, 35.0, 52.0, 27.0, 41.0, 23.0]
    return data


def _posterior(model: EngagementStateModel, extra: dict, draws: int = 2,
               segments: list | None = None) -> xr.DataTree:
    def tile(x):
        return np.tile(np.asarray(x, dtype=float), (1, draws) + (1,) * np.ndim(x))

    post = {"emission_probability": (("chain", "draw", "state"), tile(MEAN)),
            "emission_concentration": (("chain", "draw", "state"), tile(KAPPA)),
            "initial_probability": (("chain", "draw", "state"), tile(PI))}
    for name, (dims, value) in extra.items():
        post[name] = (("chain", "draw", *dims), tile(value))
    coords = {"segment": segments} if segments else None
    return xr.DataTree.from_dict({"posterior": xr.Dataset(post, coords=coords)})


def _standardised(data: pd.DataFrame, covs: list[str]) -> np.ndarray:
    x = data[covs].to_numpy(dtype=float)
    return (x - x.mean(axis=0)) / x.std(axis=0)


def _softmax_matrix(model: EngagementStateModel, logits: np.ndarray) -> np.ndarray:
    """Transition matrix of move logits by hand: rows exp(logit) / sum, the churned row absorbing."""
    c = len(model._labels)
    p = np.eye(c)  # staying has logit 0; an absorbing churned row keeps only its diagonal
    for (i, j), v in zip(model._space.moves(), logits, strict=True):
        p[i, j] = np.exp(v)
    return p / p.sum(axis=1, keepdims=True)


def _predictions(model: EngagementStateModel) -> list[np.ndarray]:
    states = model.probability_states()["mean"].to_numpy()
    ll = model.compute_log_likelihood()["log_likelihood"]["activity"].values[0, 0]
    return [model.probability_active(horizon=2 + 1 / 3)["mean"].to_numpy(),
            model.expected_activity(horizon=3)["mean"].to_numpy(), states, ll]


@pytest.mark.parametrize("segment", [None, "plan"])
def test_each_user_forecasts_with_its_own_transition_matrix(segment):
    """Covariates give user i the matrix softmax(eta + offset_g + x_i beta), built here by hand."""
    data = _table() if segment else _table().drop(columns="plan")
    covs = ["premium", "age"]
    model = EngagementStateModel(period_length=N, churn_state=True, segment=segment,
                                 covariates=covs)
    model.data_ = model._validate_data(data)
    extra = {"transition_logit": (("move",), ETA), "transition_coef": (("covariate", "move"), BETA)}
    offsets = np.zeros((2, len(ETA)))
    if segment:
        offsets = np.random.default_rng(0).normal(size=(2, len(ETA)))
        extra.update(segment_sigma=((), 0.7), segment_offset=(("segment", "move"), offsets))
    model.idata_ = _posterior(model, extra, segments=["free", "paid"] if segment else None)
    x = _standardised(data, covs)
    seg = (_table()["plan"] == "paid").to_numpy(int)
    # the oracle: one model per user, without covariates, holding that user's matrix
    got = _predictions(model)
    for u in range(len(data)):
        logits = ETA + (0.7 * offsets[seg[u]] if segment else 0.0) + x[u] @ BETA
        p = _softmax_matrix(model, logits)
        # one user's table starts active: condition on it as the whole table's model does
        alone = EngagementStateModel(period_length=N, churn_state=True,
                                     starts_active=model.starts_active_)
        alone.data_ = alone._validate_data(data.iloc[[u], :5])
        alone.idata_ = _posterior(alone, {"transition_probability": (
            ("state", "to_state"), p[:3])})
        want = _predictions(alone)
        for g, w in zip(got, want, strict=True):
            width = len(g) // len(data)
            np.testing.assert_allclose(g[u * width:(u + 1) * width], w, rtol=1e-10)
    # the coefficients matter: without them every user of a segment has one matrix
    flat = EngagementStateModel(period_length=N, churn_state=True, segment=segment,
                                covariates=covs)
    flat.data_ = model.data_
    extra["transition_coef"] = (("covariate", "move"), np.zeros_like(BETA))
    flat.idata_ = _posterior(flat, extra, segments=["free", "paid"] if segment else None)
    assert np.abs(_predictions(flat)[0] - got[0]).max() > 0.01


def test_covariates_with_the_tilted_user_effects_equal_one_segment_per_user():
    """With user effects tilting the transitions, covariates add to the logits of every node.

    The oracle is the segment code path with one segment per user, whose offsets
    hold the user's covariate shift.
    """
    data = _table().drop(columns="plan")
    covs = ["premium", "age"]
    opts = {"period_length": N, "churn_state": True, "churn_returns": True,
            "user_effects": True, "user_transitions": True}
    model = EngagementStateModel(covariates=covs, **opts)
    model.data_ = model._validate_data(data)
    n_moves = len(model._space.moves())
    eta = np.linspace(-2.5, -1.0, n_moves)
    beta = np.random.default_rng(1).normal(scale=0.7, size=(2, n_moves))
    common = {"transition_logit": (("move",), eta), "sigma_user": ((), 0.9),
              "transition_tilt": ((), 0.6)}
    model.idata_ = _posterior(model, {**common, "transition_coef": (("covariate", "move"), beta)})
    oracle = EngagementStateModel(segment="uid", **opts)
    by_user = data.drop(columns=covs).assign(uid=data.index.to_numpy())
    oracle.data_ = oracle._validate_data(by_user)
    shift = _standardised(data, covs) @ beta  # (users, moves), users sorted like the labels
    oracle.idata_ = _posterior(oracle, {**common, "segment_sigma": ((), 1.0),
                                        "segment_offset": (("segment", "move"), shift),
                                        # loaded, unused: the tilt builds each node's matrices
                                        "transition_probability_segment": (
                                            ("segment", "from", "to"), np.zeros((6, 4, 4)))},
                               segments=list(data.index))
    for g, w in zip(_predictions(model), _predictions(oracle), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-10)


@pytest.mark.parametrize("options", [{}, {"segment": "plan", "user_effects": True,
                                          "user_transitions": True, "churn_state": True}])
def test_the_compiled_likelihood_and_its_gradient_in_the_coefficients(options):
    """PyMC's log-likelihood of the groups equals the numpy forward pass; gradient by differences."""
    sim = simulate_engagement(80, 6, period_length=N, max_join=2, with_events=False,
                              emission_probability=(0.05, 0.4, 0.8), random_seed=3,
                              covariates={"premium": np.arange(80) % 2,
                                          "age": np.linspace(18, 60, 80)})
    data = sim.activity.assign(plan=np.resize(["free", "paid", "family"], 80)) if options \
        else sim.activity
    model = EngagementStateModel(period_length=N, covariates=["premium", "age"], **options)
    pm_model = model.build_model(data)
    point = pm_model.initial_point()
    point["transition_coef"] = np.random.default_rng(0).normal(
        scale=0.5, size=point["transition_coef"].shape)
    if "segment" in options:
        point["segment_offset"] = np.random.default_rng(1).normal(
            size=point["segment_offset"].shape)
        point["sigma_user_log__"] = np.log(1.2)
        point["transition_tilt"] = np.asarray(0.5)
    value = float(pm_model.compile_fn(pm_model.logp(vars=pm_model.potentials))(point))
    names = model._var_names()
    got = pm_model.compile_fn(pm_model.replace_rvs_by_values([pm_model[n] for n in names]))(point)
    clean = model._validate_data(data)
    group, design = model._groups(clean, ["family", "free", "paid"] if options else None,
                                  train=clean)
    params = model._space.params({n: np.asarray(v)[None] for n, v in zip(names, got,
                                                                          strict=True)}, design)
    codes = model._codes(clean)
    nodes = _hmm.forward_nodes(codes, np.argmax(codes != N + 1, axis=1), params["emission"],
                               params["initial"], model._space.transitions_for(params, group),
                               params["log_nodes"])
    assert value == pytest.approx(nodes.loglik.sum(), rel=1e-7)
    sd = clean[["premium", "age"]].std(ddof=0).to_numpy()
    per_unit = pm_model.compile_fn(pm_model.replace_rvs_by_values(
        [pm_model["transition_coef_per_unit"]]))({"transition_coef": point["transition_coef"]})[0]
    assert np.allclose(per_unit, point["transition_coef"] / sd[:, None])
    logp = pm_model.compile_logp()
    grad = np.asarray(pm_model.compile_dlogp(vars=[pm_model["transition_coef"]])(point))
    for flat in (0, 5, grad.size - 1):
        idx = np.unravel_index(flat, point["transition_coef"].shape)
        up, down = dict(point), dict(point)
        up["transition_coef"] = point["transition_coef"].copy()
        down["transition_coef"] = point["transition_coef"].copy()
        up["transition_coef"][idx] += 1e-5
        down["transition_coef"][idx] -= 1e-5
        num = (float(logp(up)) - float(logp(down))) / 2e-5
        assert grad.ravel()[flat] == pytest.approx(num, rel=1e-5, abs=1e-6)


def _truth_model(data: pd.DataFrame, truth: dict, scale: float) -> EngagementStateModel:
    """A model whose one draw is the truth, the covariate's coefficients times ``scale``."""
    model = EngagementStateModel(emission="binomial", covariates=["premium"])
    model.data_ = model._validate_data(data)
    p = np.asarray(truth["transition"])
    moves = model._space.moves()
    sd = data["premium"].std(ddof=0)
    mean = data["premium"].mean()
    beta = np.array([scale * truth["beta"][i, j] for i, j in moves])
    # the logits at the covariate's mean: log(p_ij / p_ii) + mean * beta
    eta = np.array([np.log(p[i, j] / p[i, i]) for i, j in moves]) + mean * beta
    post = {"emission_probability": (("chain", "draw", "state"),
                                     np.asarray(truth["emission_probability"])[None, None]),
            "initial_probability": (("chain", "draw", "state"),
                                    np.asarray(truth["initial"])[None, None]),
            "transition_logit": (("chain", "draw", "move"), eta[None, None]),
            "transition_coef": (("chain", "draw", "covariate", "move"),
                                (sd * beta)[None, None, None])}
    model.idata_ = xr.DataTree.from_dict({"posterior": xr.Dataset(post)})
    return model


def test_the_likelihood_recovers_the_covariate_effects_and_they_sharpen_forecasts():
    """Profile likelihood of a scale on the true coefficients: 1 with an effect, 0 without."""
    beta = np.array([[0.0, 1.0, 0.8], [-1.0, 0.0, 0.8], [-0.8, -1.0, 0.0]])
    truth = {"initial": (0.2, 0.4, 0.4),
             "transition": ((0.8, 0.15, 0.05), (0.1, 0.8, 0.1), (0.05, 0.15, 0.8)),
             "emission_probability": (0.05, 0.3, 0.7), "beta": beta}
    grid = np.linspace(-0.5, 2.0, 11)
    premium = (np.random.default_rng(2).random(800) < 0.4).astype(float)
    for effect in (0.0, 1.0):
        sim = simulate_engagement(800, 16, max_join=2, with_events=False,
                                  covariates={"premium": premium},
                                  transition_coef={"premium": effect * beta},
                                  random_seed=7, **{k: v for k, v in truth.items()
                                                    if k != "beta"})
        periods = sim.activity.columns[:-1]
        train = sim.activity[[*periods[:12], "premium"]]
        future = sim.activity[periods[12:]].sum(axis=1)
        profile = [float(_truth_model(train, truth, g).compute_log_likelihood()
                         ["log_likelihood"]["activity"].sum()) for g in grid]
        best = grid[int(np.argmax(profile))]
        assert abs(best - effect) <= 0.25, (effect, best)
        errors = [np.mean(np.abs(_truth_model(train, truth, g).expected_activity(
            horizon=4)["mean"] - future)) for g in (0.0, effect)]
        if effect:  # premium users' forecasts from their own matrix are closer
            assert errors[1] < 0.97 * errors[0], errors


@pytest.mark.slow
def test_nuts_recovers_the_coefficients_per_unit_of_the_covariate():
    beta = np.array([[0.0, 0.9, 0.9], [-0.9, 0.0, 0.9], [-0.9, -0.9, 0.0]])
    premium = (np.random.default_rng(2).random(1000) < 0.4).astype(float)
    sim = simulate_engagement(1000, 10, max_join=2, with_events=False,
                              covariates={"premium": premium},
                              transition_coef={"premium": beta}, random_seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = EngagementStateModel(covariates=["premium"]).fit(
            sim.activity, draws=200, tune=200, chains=2, random_seed=1, progressbar=False)
    draws = model.idata_["posterior"]["transition_coef_per_unit"].sel(covariate="premium")
    mean = draws.mean(("chain", "draw")).to_numpy()
    sd = draws.std(("chain", "draw")).to_numpy()
    want = np.array([beta[i, j] for i, j in model._space.moves()])
    assert np.all(np.abs(mean - want) < 3.3 * sd), (mean, sd)
    informed = sd < 0.35  # moves between rare states (dormant -> engaged) stay vague
    assert informed.sum() >= 3, sd
    assert np.sign(mean[informed]).tolist() == np.sign(want[informed]).tolist(), (mean, sd)
    assert model.covariate_means_["premium"] == pytest.approx(premium.mean())


def test_covariate_errors_name_the_column_and_rows():
    data = _table().drop(columns="plan")
    model = EngagementStateModel(period_length=N, covariates=["premium", "age"])
    with pytest.raises(DataValidationError, match="column 'age': expected a column of this "
                       "name"):
        model.build_model(data.drop(columns="age"))
    bad = data.assign(age=[19.0, np.nan, 52.0, np.inf, 41.0, 23.0])
    with pytest.raises(DataValidationError, match=r"column 'age': expected a finite covariate "
                       r"value on every row; 2 row\(s\) break this, first: row 1 \(nan\)"):
        model.build_model(bad)
    with pytest.raises(DataValidationError, match="column 'age': expected a numeric covariate"):
        model.build_model(data.assign(age=data["age"].astype(str)))
    with pytest.raises(DataValidationError, match="column 'premium': expected a covariate that "
                       "varies"):
        model.build_model(data.assign(premium=True))
    clash = data.drop(columns="age").set_axis([0, 1, 2, 3, 4, "premium"], axis=1)
    with pytest.raises(DataValidationError, match="column '4': expected a period name other"):
        EngagementStateModel(period_length=N, covariates=["premium", "4"]).build_model(
            clash.assign(**{"4": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}))
    for value in ("age", ["age", "age"], [""], ["plan"]):
        with pytest.raises(ValueError, match="The 'covariates' parameter of "
                           "EngagementStateModel"):
            EngagementStateModel(segment="plan", covariates=value)
    with pytest.raises(ValueError, match="'covariates' parameter of simulate_engagement"):
        simulate_engagement(5, 3, covariates={"x": [1.0, 2.0]})
    with pytest.raises(ValueError, match="'covariates' parameter of simulate_engagement"):
        simulate_engagement(5, 3, covariates={"p001": np.ones(5)})  # a period's name
    for coef in (np.ones((3, 3)), "strong"):
        with pytest.raises(ValueError, match="'transition_coef' parameter of "
                           "simulate_engagement"):
            simulate_engagement(5, 3, covariates={"x": np.ones(5)}, transition_coef={"x": coef})
