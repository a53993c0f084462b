"""The model contract, checked over every registered model class (scikit-learn's estimator checks).

Every :class:`~models.base.PosteriorModel` subclass of the package (the
:class:`~models.base.BayesianModel` ones and the block model) is collected from
``PosteriorModel._registry`` after importing every module of ``models``, and must have a
case in ``CASES`` below: a factory of a tiny, unfitted model, its training data, the
arguments of a quick fit, and the arguments its prediction methods need. A new model
class without a case fails :func:`test_every_model_class_has_a_case`.

The checks: ``__init__`` takes keyword-only arguments and ``get_params`` round-trips;
``fit`` returns self; every public prediction method (``expected_*``, ``probability_*``,
``sample_*``) speaks the one vocabulary (``data=None`` first or keyword-only arguments,
``horizon`` for how far ahead, the options ``ci_prob``, ``max_draws``, ``random_seed``,
``return_draws`` and no synonyms), returns a summary with ``mean, sd, ci_lower,
ci_upper`` and, with ``return_draws=True``, an ``xarray.DataArray`` whose first dims are
``(chain, draw)``; the same method name has the same vocabulary in every model; unfitted
use raises ``NotFittedError``; bad options raise ``ValueError`` in the one template; a
save/load round trip gives equal predictions.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import pkgutil
import re
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import models
from models.base import PosteriorModel
from models.exceptions import NotFittedError
from models.predict import OPTIONS, SUMMARY_COLUMNS


def _import_every_module() -> None:
    for info in pkgutil.walk_packages(models.__path__, "models."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue
        importlib.import_module(info.name)


_import_every_module()
MODEL_CLASSES = {name: cls for name, cls in PosteriorModel._registry.items()
                 if cls.__module__.startswith("models.")}

PREDICTION_PREFIXES = ("expected_", "probability_", "sample_")
#: Synonyms of the vocabulary's names that no public method may take.
BANNED = {"seed": "random_seed", "prob": "ci_prob", "hdi_prob": "ci_prob",
          "batch_size": "max_draws", "t": "horizon", "periods": "horizon",
          "n_future": "horizon", "future": "horizon", "n_periods": "horizon",
          "pairs": "data"}


# ------------------------------------------------------------------------- the cases
@dataclass
class Case:
    """A tiny model and its data; ``rows`` is explicit input for per-unit predictions."""

    model: PosteriorModel
    data: Any
    fit: dict[str, Any] = field(default_factory=lambda: {"method": "map", "random_seed": 0})
    rows: Any = None
    args: dict[str, dict[str, Any]] = field(default_factory=dict)


def _bgnbd() -> Case:
    from models.churn import BetaGeoModel
    from models.data.simulate import simulate_bgnbd

    data = simulate_bgnbd(60, r=0.5, alpha=4.0, a=0.8, b=2.5, T=30.0, random_seed=1)
    data.index = pd.Index([f"u{i}" for i in range(len(data))], name="user_id")
    data = data[["frequency", "recency", "T"]]
    return Case(BetaGeoModel(), data, rows=data.iloc[:4], args={
        "expected_activity": {"horizon": 10.0}, "probability_active": {"horizon": 10.0},
        "sample_activity": {"horizon": 10.0},
        "expected_activity_new_user": {"horizon": [5.0, 10.0]},
        "probability_alive_new_user": {"horizon": [5.0, 10.0]},
        "probability_repeat_count_new_user": {"count": [0, 1, 2], "horizon": [10.0]}})


def _bgbb() -> Case:
    from models.churn import BetaGeoBetaBinomModel
    from models.data.simulate import simulate_bgbb

    data = simulate_bgbb(60, 1.2, 0.8, 0.7, 2.5, 6, random_seed=2)[["frequency", "recency", "n"]]
    return Case(BetaGeoBetaBinomModel(), data, rows=data.iloc[:4], args={
        "expected_activity": {"horizon": 4}, "sample_activity": {"horizon": 3},
        "expected_activity_new_user": {"horizon": [2, 4]},
        "probability_repeat_count_new_user": {"count": [0, 1], "horizon": [3]}})


def _sbg() -> Case:
    from models.churn import ShiftedBetaGeoModel

    data = pd.DataFrame({"cohort": "2001", "period": range(8),
                         "n_surviving": [1000, 631, 468, 382, 326, 289, 262, 241]})
    horizon = {"horizon": [1, 3]}
    return Case(ShiftedBetaGeoModel(), data, args={
        "expected_survival_new_user": horizon, "expected_retention_rate_new_user": horizon,
        "probability_churn_new_user": horizon, "probability_churn_in_period_new_user": horizon,
        "expected_survivors_new_user": {"n_start": 100, **horizon},
        "expected_residual_lifetime": {"discount_rate": 0.1}})


def _hazard() -> Case:
    from models.churn import ChurnHazardModel

    rng = np.random.default_rng(3)
    n = 80
    data = pd.DataFrame({"user_id": np.repeat(np.arange(20), 4), "tenure": np.tile(range(4), 20),
                         "event": rng.binomial(1, 0.2, n), "log_plays_prev": rng.normal(size=n),
                         "plan": rng.choice(["free", "premium"], n)})
    model = ChurnHazardModel(covariates=["log_plays_prev"], groups=["plan"])
    return Case(model, data, rows=data.drop(columns="event").iloc[[0, 5, 9]])


def _engagement() -> Case:
    from models.churn import EngagementStateModel
    from models.data import simulate_engagement

    data = simulate_engagement(40, 6, max_join=2, with_events=False, random_seed=3).activity
    horizon = {"horizon": 2}
    return Case(EngagementStateModel(), data, args={
        "probability_active": horizon, "expected_activity": horizon, "sample_activity": horizon,
        "probability_return": horizon})


def _return_hazard() -> Case:
    from models.churn import ReturnHazardModel

    rng = np.random.default_rng(11)
    data = pd.DataFrame(rng.binomial(1, 0.4, size=(12, 15)).astype(float),
                        index=pd.Index([f"u{i}" for i in range(12)], name="user_id"),
                        columns=[f"d{i}" for i in range(15)])
    data.iloc[:, 0] = 1.0
    horizon = {"horizon": 3}
    return Case(ReturnHazardModel(silence_bins=(1, 2, 4)), data, rows=data.iloc[:4], args={
        "probability_active": horizon, "expected_activity": horizon, "sample_activity": horizon,
        "probability_churn": horizon, "expected_survival": horizon})


def _play_count() -> Case:
    from models.listening import PlayCountModel

    rng = np.random.default_rng(4)
    days = pd.date_range("2024-01-01", periods=7, freq="D")
    data = pd.DataFrame({"user_id": np.repeat([f"u{i}" for i in range(8)], 7),
                         "period_start": np.tile(days, 8),
                         "plan": np.repeat(rng.choice(["free", "premium"], 8), 7),
                         "plays": rng.poisson(3.0, 56)})
    model = PlayCountModel(groups=("plan",), likelihood="poisson")
    segment = {"segment": {"plan": "free"}}
    return Case(model, data, rows=data.iloc[:3], args={
        "expected_plays_new_user": {"horizon": 3, **segment},
        "sample_plays_new_user": {"horizon": 3, **segment},
        "sample_plays": {"horizon": 3}})


def _skip() -> Case:
    from models.listening import SkipModel

    rng = np.random.default_rng(5)
    data = pd.DataFrame({"user_id": rng.choice(["a", "b", "c"], 40),
                         "track_id": rng.choice(["x", "y"], 40),
                         "position": rng.integers(1, 10, 40), "hour_bin": rng.integers(0, 4, 40),
                         "plan": rng.choice(["free", "premium"], 40), "n_plays": 5})
    data["n_skips"] = rng.binomial(5, 0.3, 40)
    return Case(SkipModel(group=("plan",)), data, rows=data.iloc[:3])


def _user_artist() -> Case:
    from models.listening import UserArtistModel

    rng = np.random.default_rng(6)
    data = pd.DataFrame({"user_id": np.repeat(np.arange(6), 4),
                         "artist_id": np.tile(["a", "b", "c", "d"], 6)})
    data["plays"] = 1 + rng.poisson(np.tile([10.0, 5, 3, 2], 6))
    return Case(UserArtistModel(), data, rows=data.iloc[:3])


def _latent_space() -> Case:
    from models.network import LatentSpaceModel

    graph = nx.karate_club_graph()
    return Case(LatentSpaceModel(), graph, rows=[(0, 1), (0, 9), (2, 3)])


def _block_model() -> Case:
    from models.network import StochasticBlockModel

    graph = nx.karate_club_graph()
    return Case(StochasticBlockModel(n_blocks=2), graph,
                fit={"draws": 20, "tune": 10, "chains": 1, "n_starts": 2, "random_seed": 0},
                rows=[(0, 1), (0, 9), (2, 3)])


def _segment_effect() -> Case:
    from models.experiments import SegmentEffectModel

    rng = np.random.default_rng(7)
    data = pd.DataFrame({"variant": np.tile(["control", "new"], 60),
                         "country": np.repeat(["DE", "FR", "SE"], 40)})
    rate = np.where(data["variant"] == "new", 11.0, 10.0)
    data["plays"] = rng.negative_binomial(2.0, 2.0 / (2.0 + rate))
    return Case(SegmentEffectModel(metric="plays", segment="country",
                                   likelihood="negative_binomial"), data)


def _history() -> Case:
    from models.experiments import ExperimentHistoryModel

    rng = np.random.default_rng(8)
    theta = rng.normal(0.01, 0.02, size=12)
    data = pd.DataFrame({"experiment_id": [f"exp{j}" for j in range(12)],
                         "estimate": rng.normal(theta, 0.015), "std_error": 0.015})
    return Case(ExperimentHistoryModel(), data,
                args={"shrink": {"estimate": 0.05, "std_error": 0.02}})


def _surrogate() -> Case:
    from models.experiments import SurrogateIndexModel

    rng = np.random.default_rng(9)
    s = rng.normal(5.0, 2.0, size=(80, 2))
    data = pd.DataFrame({"days_w1": s[:, 0], "days_w2": s[:, 1],
                         "days_m2_6": 10 + 2 * s[:, 0] + 3 * s[:, 1] + rng.normal(0, 4, 80)})
    experiment = pd.DataFrame({"variant": np.repeat(["control", "new"], 20),
                               "days_w1": rng.normal(5, 2, 40), "days_w2": rng.normal(5, 2, 40)})
    return Case(SurrogateIndexModel(surrogates=["days_w1", "days_w2"], outcome="days_m2_6"),
                data, rows=data.iloc[:3], args={"estimate_effect": {"experiment": experiment}})


def _proxy() -> Case:
    from models.experiments import ProxyMetricModel

    rng = np.random.default_rng(10)
    true = rng.multivariate_normal([0, 0, 0], [[1, .2, .8], [.2, 1, .3], [.8, .3, 1]], 30)
    se = np.full((30, 3), 0.3)
    est = true + rng.normal(0, se)
    data = pd.DataFrame({"days": est[:, 0], "days_se": se[:, 0], "skips": est[:, 1],
                         "skips_se": se[:, 1], "long_term": est[:, 2], "long_term_se": se[:, 2]})
    return Case(ProxyMetricModel(candidates=["days", "skips"]), data, rows=data.iloc[:3])


CASES: dict[str, Callable[[], Case]] = {
    "BetaGeoModel": _bgnbd,
    "BetaGeoBetaBinomModel": _bgbb,
    "ShiftedBetaGeoModel": _sbg,
    "ChurnHazardModel": _hazard,
    "EngagementStateModel": _engagement,
    "ReturnHazardModel": _return_hazard,
    "PlayCountModel": _play_count,
    "SkipModel": _skip,
    "UserArtistModel": _user_artist,
    "LatentSpaceModel": _latent_space,
    "StochasticBlockModel": _block_model,
    "SegmentEffectModel": _segment_effect,
    "ExperimentHistoryModel": _history,
    "SurrogateIndexModel": _surrogate,
    "ProxyMetricModel": _proxy,
}

NAMES = sorted(MODEL_CLASSES)

#: Contract breaks of classes owned elsewhere, reported and expected to fail until fixed
#: (strict: the test says so when one is fixed).
KNOWN_BREAKS: dict[tuple[str, str], str] = {}


def _params(test: str) -> list[Any]:
    """NAMES, with the known breaks of ``test`` marked as expected failures."""
    return [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BREAKS[test, n]))
            if (test, n) in KNOWN_BREAKS else n for n in NAMES]


# ------------------------------------------------------------------------- helpers
def _public_methods(cls: type) -> dict[str, Any]:
    """Public methods of ``cls`` (inherited ones included), deprecated aliases left out."""
    out = {}
    for name in dir(cls):
        if name.startswith("_"):
            continue
        attr = inspect.getattr_static(cls, name)
        func = attr.__func__ if isinstance(attr, classmethod | staticmethod) else attr
        if not inspect.isfunction(func) or getattr(func, "__deprecated__", None):
            continue
        out[name] = getattr(cls, name)
    return out


def _prediction_methods(cls: type) -> dict[str, Any]:
    return {n: f for n, f in _public_methods(cls).items()
            if n.startswith(PREDICTION_PREFIXES) and n != "sample_posterior_predictive"}


def _parameters(func: Any) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(func).parameters.values() if p.name != "self"]


def _takes_data(func: Any) -> bool:
    params = _parameters(func)
    return bool(params) and params[0].name == "data" and params[0].kind is not params[0].KEYWORD_ONLY


def _call(model: PosteriorModel, name: str, case: Case, **options: Any) -> Any:
    func = getattr(model, name)
    kwargs = {**case.args.get(name, {}), **options}
    if _takes_data(func) and case.rows is not None and "data" not in kwargs:
        return func(case.rows, **kwargs)
    return func(**kwargs)


def _missing_arguments(cls: type, name: str, case: Case) -> list[str]:
    given = case.args.get(name, {})
    return [p.name for p in _parameters(getattr(cls, name))
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            and p.name not in given and not (p.name == "data" and case.rows is not None)]


_FITTED: dict[str, tuple[PosteriorModel, Case]] = {}


def _fitted(name: str) -> tuple[PosteriorModel, Case]:
    if name not in _FITTED:
        case = CASES[name]()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tiny data: convergence warnings are expected
            model = case.model.fit(case.data, **case.fit)
        _FITTED[name] = (model, case)
    return _FITTED[name]


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(np.all(a == b)) if isinstance(a, np.ndarray | list | tuple) else a == b
    except (TypeError, ValueError):
        return repr(a) == repr(b)


# --------------------------------------------------------------------- registration
def test_every_model_class_has_a_case():
    missing = sorted(set(MODEL_CLASSES) - set(CASES))
    assert not missing, (
        f"{missing} are registered model classes without a case in tests/test_common.py: "
        "add a factory of a tiny model and its data to CASES so the contract checks cover them.")
    assert not set(CASES) - set(MODEL_CLASSES), "CASES names classes that no longer exist"


# ----------------------------------------------------------------------- signatures
@pytest.mark.parametrize("name", NAMES)
def test_init_takes_keyword_only_arguments_and_get_params_round_trips(name):
    if name not in CASES:
        pytest.fail(f"No case for {name}: add one to CASES in tests/test_common.py.")
    cls = MODEL_CLASSES[name]
    kinds = {p.name: p.kind for p in _parameters(cls.__init__)}
    assert all(k is inspect.Parameter.KEYWORD_ONLY for k in kinds.values()), kinds
    model = CASES[name]().model
    params = model.get_params()
    assert set(params) == set(kinds)
    again = cls(**params).get_params()
    assert all(_equal(again[k], v) for k, v in params.items()), (params, again)


@pytest.mark.parametrize("name", NAMES)
def test_public_methods_use_the_vocabulary(name):
    cls = MODEL_CLASSES[name]
    for method, func in _public_methods(cls).items():
        for p in _parameters(func):
            assert p.name not in BANNED, (
                f"{name}.{method} takes {p.name!r}; the vocabulary calls it {BANNED[p.name]!r}")
            if p.name in OPTIONS:
                assert p.kind is p.KEYWORD_ONLY, f"{name}.{method}: {p.name!r} must be keyword-only"


@pytest.mark.parametrize("name", NAMES)
def test_prediction_methods_follow_the_vocabulary(name):
    cls = MODEL_CLASSES[name]
    for method, func in _prediction_methods(cls).items():
        params = _parameters(func)
        where = f"{name}.{method}{inspect.signature(func)}"
        positional = [p for p in params if p.kind is not p.KEYWORD_ONLY]
        if method.endswith("_new_user"):
            assert not positional, f"{where}: a new-user prediction takes keyword arguments only"
            assert "horizon" in [p.name for p in params], f"{where}: needs 'horizon'"
        else:
            assert [p.name for p in positional] in ([], ["data"]), (
                f"{where}: the only positional argument may be 'data'")
            if positional:
                assert positional[0].default is None, f"{where}: 'data' defaults to None"
        names = {p.name for p in params}
        wanted = {"max_draws", "random_seed"} if method.startswith("sample_") else set(OPTIONS)
        assert wanted <= names, f"{where}: missing options {sorted(wanted - names)}"


def test_same_method_name_same_vocabulary_in_every_model():
    seen: dict[str, dict[tuple, list[str]]] = defaultdict(lambda: defaultdict(list))
    for name, cls in MODEL_CLASSES.items():
        for method, func in _prediction_methods(cls).items():
            params = {p.name: p for p in _parameters(func)}
            key = (_takes_data(func), "horizon" in params,
                   params["horizon"].default is inspect.Parameter.empty
                   if "horizon" in params else None,
                   tuple(sorted(set(params) & set(OPTIONS))),
                   params["ci_prob"].default if "ci_prob" in params else None)
            seen[method][key].append(name)
    differ = {m: dict(v) for m, v in seen.items() if len(v) > 1}
    assert not differ, f"methods of one name with different vocabularies: {differ}"


def test_deprecated_aliases_name_an_existing_replacement():
    for name, cls in MODEL_CLASSES.items():
        for attr in dir(cls):
            replacement = getattr(getattr(cls, attr, None), "__deprecated__", None)
            if isinstance(replacement, str):
                assert callable(getattr(cls, replacement, None)), (name, attr, replacement)


# -------------------------------------------------------------------------- unfitted
@pytest.mark.parametrize("name", NAMES)
def test_unfitted_use_raises_not_fitted(name):
    case = CASES[name]()
    with pytest.raises(NotFittedError):
        case.model.summary()
    for method in _prediction_methods(type(case.model)):
        with pytest.raises(NotFittedError):
            _call(case.model, method, case)


# ---------------------------------------------------------------------------- fitted
@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self(name):
    case = CASES[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert case.model.fit(case.data, **case.fit) is case.model
    _FITTED.setdefault(name, (case.model, case))


@pytest.mark.parametrize("name", NAMES)
def test_summary_has_the_interval_columns(name):
    model, _ = _fitted(name)
    table = model.summary(ci_prob=0.8)
    assert list(table.columns[:4]) == list(SUMMARY_COLUMNS)
    assert {"ess_bulk", "ess_tail", "r_hat", "mcse_mean", "mcse_sd"} <= set(table.columns)
    assert table.attrs["ci_prob"] == 0.8


@pytest.mark.parametrize("name", _params("draws"))
def test_predictions_return_summaries_and_draws(name):
    model, case = _fitted(name)
    for method in _prediction_methods(type(model)):
        missing = _missing_arguments(type(model), method, case)
        assert not missing, f"add arguments {missing} of {name}.{method} to its case's args"
        if method.startswith("sample_"):
            draws = _call(model, method, case, random_seed=0)
            assert isinstance(draws, xr.DataArray) and draws.dims[:2] == ("chain", "draw")
            continue
        table = _call(model, method, case, ci_prob=0.8, random_seed=0)
        assert isinstance(table, pd.DataFrame), f"{name}.{method}"
        columns = [c for c in table.columns if c in SUMMARY_COLUMNS]
        assert columns == list(SUMMARY_COLUMNS), f"{name}.{method}: {list(table.columns)}"
        assert table.attrs.get("ci_prob") == 0.8, f"{name}.{method}"
        draws = _call(model, method, case, return_draws=True, random_seed=0)
        assert isinstance(draws, xr.DataArray), f"{name}.{method}: {type(draws).__name__}"
        assert draws.dims[:2] == ("chain", "draw"), f"{name}.{method}: {draws.dims}"
        assert int(np.prod(draws.shape[2:])) == len(table), f"{name}.{method}"
        if _takes_data(getattr(model, method)) and case.rows is not None:
            assert len(table) == len(case.rows), f"{name}.{method}: one row per input row"


def _with_draws(model: PosteriorModel, chains: int, draws: int) -> PosteriorModel:
    """A copy of a fitted model whose posterior is its first draw repeated (chains x draws)."""
    post = model.idata_["posterior"].to_dataset()
    post = post.isel(chain=[0] * chains, draw=[0] * draws).assign_coords(
        chain=np.arange(chains), draw=np.arange(draws))
    light = copy.copy(model)
    light.idata_ = model.idata_.copy()
    light.idata_["posterior"] = xr.DataTree(post)
    return light


@pytest.mark.parametrize("name", _params("max_draws"))
def test_draws_have_the_posterior_shape_or_one_chain_of_max_draws(name):
    fitted, case = _fitted(name)
    model = _with_draws(fitted, chains=2, draws=3)
    for method in _prediction_methods(type(model)):
        extra = {} if method.startswith("sample_") else {"return_draws": True}
        for max_draws, shape in ((None, (2, 3)), (10, (2, 3)), (5, (1, 5))):
            draws = _call(model, method, case, max_draws=max_draws, random_seed=0, **extra)
            got = (draws.sizes["chain"], draws.sizes["draw"])
            assert got == shape, f"{name}.{method}(max_draws={max_draws}): {got}"


@pytest.mark.parametrize("name", NAMES)
def test_bad_options_raise_value_error_in_the_one_template(name):
    model, case = _fitted(name)
    cls = type(model).__name__
    methods = {**_prediction_methods(type(model)), "summary": type(model).summary}
    for method, func in methods.items():
        params = {p.name for p in _parameters(func)}
        for option, value in (("ci_prob", 1.5), ("max_draws", 0)):
            if option not in params:
                continue
            template = (rf"The '{option}' parameter of {cls}\.{method} must be .*"
                        rf"Got {re.escape(repr(value))} instead\.")
            with pytest.raises(ValueError, match=template):
                _call(model, method, case, **{option: value})


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip_gives_equal_predictions(name, tmp_path):
    model, case = _fitted(name)
    back = type(model).load(model.save(tmp_path / f"{name}.nc"))
    assert back.get_params().keys() == model.get_params().keys()
    pd.testing.assert_frame_equal(back.summary(), model.summary())
    for method in _prediction_methods(type(model)):
        if method.startswith("sample_"):
            xr.testing.assert_equal(_call(back, method, case, random_seed=0),
                                    _call(model, method, case, random_seed=0))
        else:
            # (a saved timestamp comes back in microseconds; the values are equal)
            pd.testing.assert_frame_equal(_call(back, method, case, random_seed=0),
                                          _call(model, method, case, random_seed=0),
                                          check_index_type=False)
