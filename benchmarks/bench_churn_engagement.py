"""Engagement-state HMM vs BG/NBD on real listening (Last.fm 1K), and the HMM's scale.

Run from the repository root::

    python benchmarks/bench_churn_engagement.py lastfm    # the real-data comparison
    python benchmarks/bench_churn_engagement.py scale --n-users 10000 --n-periods 52

``lastfm``: the Last.fm 1K prefix in ``../shared/data/lastfm-1k-events`` split
at day 273 (calibration days 0-272, holdout the next 93 days; the users active
in the calibration window). ``BetaGeoModel`` (NUTS, active days),
``ReturnHazardModel`` (NUTS, the hazard of an active day after a silence, by its
length, on active days from day 0), ``EngagementStateModel`` (NUTS, active days
per 7-day period from day 0, the holdout 13 2/7 periods; by default 3 states, 4
states with a returning churned state, and 3 states with a returning churned state
and user effects on the emissions and the transitions; ``--configs`` takes a JSON
list of option sets) and lifetimes' ``BetaGeoFitter`` (maximum likelihood, run by
a Python that has ``lifetimes``: ``--lifetimes-python`` or the
``LIFETIMES_PYTHON`` environment variable; left out without one) score the same
holdout: Brier score of P(active in the holdout), calibration by fifth of the
predictions (mean predicted vs observed share active; beside the largest gap,
how often outcomes drawn from the predictions themselves give a gap at least as
large, and how often they meet a goal of 0.10: with about 37 users a fifth, a
fifth's observed share has a standard error near 0.08), MAE of the expected
holdout active days (the predictive mean, and the predictive median, which
minimises the expected absolute error) and the coverage of 90% predictive
intervals of the holdout active days (lifetimes: draws of the BG/NBD
predictive at its MLE). The NUTS fits use ``--sampler`` (nutpie by default; 2
chains on 2 cores of ``--draws`` tune + ``--draws`` draws).

``--calibration-days 175`` scores the same models on a validation split that
ends before the test holdout begins (calibration days 0-174, holdout days
175-267, the 130 users active in the calibration window): the place to choose
between model variants without looking at the test holdout.

``--calibration-days 274 --first-day 1`` is the split one day later (calibration
days 0-273, holdout days 274-366). It reproduces the BG/NBD figures the issue
quotes (25 users below 10%, 52% of them active again, a lowest fifth of 0.14,
lifetimes' MAE 9.32; 9.53 on the default split). The weekly table of the
engagement model then starts on day 1 (39 whole weeks ending on day 273; a day-0
activity is left out of it), the other models see day 0.

``scale``: simulated users (``simulate_engagement``): the unique histories,
compilation, the time of one gradient, NUTS (``--sampler``, nutpie by default;
``--chains`` chains (2) of ``--tune`` + ``--draws``, at ``--target-accept`` or the model's
default, one fit per seed of ``--seeds`` and target of ``--target-accept``
(both take lists separated by commas); the fit's wall time includes its own
compilation, the sampling time does not) with its steps per draw (after
warm-up, and over the whole run as estimated from the sampling time and the
gradient's), the steps per draw and final step size of each chain,
divergences, largest R-hat, smallest and median bulk ESS and smallest tail
ESS, the peak memory of the process and the 1-minute load average at the end;
``--gradient-only`` skips NUTS, for sizes whose fit does not fit in a run.
``--threads 1,2`` runs everything for each number of threads of the model's
compiled pass (``EngagementStateModel(threads=...)``); ``--chains`` sets the
chains (2 by default) and ``--cores`` how many run at once (nutpie: threads of
one process). With fewer cores than chains the chains run one after another,
and the sampling time is theirs together.
``--covariates binary`` or ``continuous`` adds a user covariate on the
transitions (a continuous one gives every user a transition matrix of its own);
``--user-transitions`` fits user effects on the emissions and the transitions.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from models.churn import BetaGeoModel, EngagementStateModel, ReturnHazardModel, activity_table
from models.churn.validation import calibration_holdout_split
from models.data import simulate_engagement
from models.metrics import brier_score
from models.predict import flatten_draws, predictive_summary

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lastfm-1k-events"
START = pd.Timestamp("2008-01-01")
CAL_DAYS, HOLD_DAYS = 273, 93
FIRST_DAY = 0  # first day of the engagement model's weekly table

LIFETIMES_SCRIPT = r"""
import json, sys, warnings
import numpy as np, pandas as pd
from lifetimes import BetaGeoFitter
table = pd.read_csv(sys.argv[1]); h = float(sys.argv[2])
warnings.simplefilter("ignore")
f = BetaGeoFitter().fit(table["frequency"], table["recency"], table["T"])
r, alpha, a, b = (float(f.params_[k]) for k in ("r", "alpha", "a", "b"))
alive = np.asarray(f.conditional_probability_alive(table["frequency"], table["recency"],
                                                   table["T"]))
x, T = table["frequency"].to_numpy(), table["T"].to_numpy()
p_active = alive * -np.expm1((r + x) * (np.log(alpha + T) - np.log(alpha + T + h)))
expected = np.asarray(f.conditional_expected_number_of_purchases_up_to_time(
    h, table["frequency"], table["recency"], table["T"]))
print(json.dumps({"params": [r, alpha, a, b], "p_active": p_active.tolist(),
                  "expected": expected.tolist()}))
"""


def load_lastfm() -> pd.DataFrame:
    raw = pd.read_csv(DATA / "lastfm_jodie_prefix.csv", usecols=[0, 2], header=0,
                      names=["user_id", "seconds"])
    return pd.DataFrame({"user_id": raw["user_id"],
                         "timestamp": START + pd.to_timedelta(raw["seconds"], unit="s")})


def lastfm_split(events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """BG/NBD summary with holdout outcomes, and the weekly activity table (same users)."""
    cal, end = START + pd.Timedelta(days=CAL_DAYS), START + pd.Timedelta(days=CAL_DAYS + HOLD_DAYS)
    summary = calibration_holdout_split(events, calibration_end=cal, holdout_end=end)
    first = START + pd.Timedelta(days=FIRST_DAY)
    table = activity_table(events[events["timestamp"] >= first], start=first,
                           observation_end=cal, period_length=7)
    return summary, table.loc[summary.index]


def score(name: str, y_active: np.ndarray, y_days: np.ndarray, p_active: np.ndarray,
          expected: np.ndarray, draws: np.ndarray) -> dict:
    """Scores of one model's holdout predictions; ``draws`` (sample x user) predictive counts."""
    s = predictive_summary(draws, ci_prob=0.9)
    lower, upper = s["ci_lower"].to_numpy(), s["ci_upper"].to_numpy()
    median = np.quantile(draws, 0.5, axis=0, method="inverted_cdf")
    fifth = pd.qcut(pd.Series(p_active).rank(method="first"), 5, labels=False)
    by = pd.DataFrame({"p": p_active, "y": y_active, "fifth": fifth}).groupby("fifth").mean()
    covered = np.mean((y_days >= lower) & (y_days <= upper))
    worst = float((by["p"] - by["y"]).abs().max())
    # the same fifths if the predictions were exactly right: outcomes drawn from them
    rng = np.random.default_rng(0)
    rep = (rng.random((2000, len(p_active))) < p_active).astype(float)
    onehot = np.eye(5)[fifth.to_numpy()]  # (users, 5)
    size = onehot.sum(axis=0)
    rep_worst = np.abs((rep @ onehot - p_active @ onehot) / size).max(axis=1)
    return {"model": name, "brier": brier_score(y_active, p_active),
            "worst_fifth": worst, "worst_fifth_p": float(np.mean(rep_worst >= worst)),
            "fifths_goal_if_right": float(np.mean(rep_worst <= 0.10)),
            "fifths": [(round(float(p), 3), round(float(y), 3)) for p, y in
                       zip(by["p"], by["y"], strict=True)],
            "mae": float(np.mean(np.abs(expected - y_days))), "coverage90": float(covered),
            "mae_median": float(np.mean(np.abs(median - y_days))),
            "below_10pct": int((p_active < 0.1).sum()),
            "below_10pct_returned": float(y_active[p_active < 0.1].mean())
            if (p_active < 0.1).any() else np.nan}


def bgnbd_draws(params: list[float], table: pd.DataFrame, h: float, rng) -> np.ndarray:
    """Predictive draws of holdout activity at fixed BG/NBD parameters (simulation)."""
    r, alpha, a, b = params
    x, t_x, T = (table[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    log_odds = np.log(a) - np.log(b + np.maximum(x, 1) - 1) + (r + np.maximum(x, 1)) * np.log1p(
        (T - t_x) / (alpha + t_x))
    alive = np.where(x > 0, 1 / (1 + np.exp(log_odds)), 1.0)
    n = 4000
    lam = rng.gamma(r + x, 1.0 / (alpha + T), size=(n, len(x)))
    p = rng.beta(a, b + x, size=(n, len(x)))
    counts = np.minimum(rng.poisson(lam * h), rng.geometric(p))
    return np.where(rng.random((n, len(x))) < alive, counts, 0)


def run_lastfm(args: argparse.Namespace) -> None:
    events = load_lastfm()
    summary, table = lastfm_split(events)
    y_active = summary["active_in_holdout"].to_numpy()
    y_days = summary["holdout_activity"].to_numpy(float)
    print(f"{len(summary)} users active in days 0-{CAL_DAYS - 1}; {y_active.mean():.3f} active "
          f"in the next {HOLD_DAYS} days; table {table.shape}")
    fit = {"draws": args.draws, "tune": args.draws, "chains": 2, "cores": 2,
           "sampler": args.sampler, "random_seed": 1}
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        bg = BetaGeoModel().fit(summary[["frequency", "recency", "T"]], **fit)
        wall_bg = time.perf_counter() - t0
        p = bg.probability_active(horizon=HOLD_DAYS)["mean"].to_numpy()
        e = bg.expected_activity(horizon=HOLD_DAYS)["mean"].to_numpy()
        d = flatten_draws(bg.sample_activity(horizon=HOLD_DAYS, random_seed=0))
        rows.append({**score("BetaGeoModel (NUTS)", y_active, y_days, p, e, d),
                     "fit_s": wall_bg, "verdict": bg.fit_report_.verdict})
        t0 = time.perf_counter()
        cal = START + pd.Timedelta(days=CAL_DAYS)
        days = activity_table(events, start=START, observation_end=cal,
                              period_length=1).loc[summary.index]
        ret = ReturnHazardModel().fit(days, **fit)
        wall = time.perf_counter() - t0
        p = ret.probability_active(days, horizon=HOLD_DAYS)["mean"].to_numpy()
        e = ret.expected_activity(days, horizon=HOLD_DAYS)["mean"].to_numpy()
        d = flatten_draws(ret.sample_activity(days, horizon=HOLD_DAYS, random_seed=0))
        rows.append({**score("ReturnHazardModel (NUTS)", y_active, y_days, p, e, d),
                     "fit_s": wall, "verdict": ret.fit_report_.verdict})
        for options in args.configs:
            t0 = time.perf_counter()
            hmm = EngagementStateModel(**options).fit(table, **fit)
            wall = time.perf_counter() - t0
            h = HOLD_DAYS / 7
            t0 = time.perf_counter()
            p = hmm.probability_active(horizon=h)["mean"].to_numpy()
            e = hmm.expected_activity(horizon=h)["mean"].to_numpy()
            d = flatten_draws(hmm.sample_activity(horizon=h, random_seed=0))
            predict = time.perf_counter() - t0
            rows.append({**score(f"EngagementStateModel({options})", y_active, y_days, p, e, d),
                         "fit_s": wall, "predict_s": predict, "verdict": hmm.fit_report_.verdict})
    python = args.lifetimes_python
    if python:
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as tmp:
            summary[["frequency", "recency", "T"]].to_csv(tmp.name, index=False)
        t0 = time.perf_counter()
        out = subprocess.run([python, "-c", LIFETIMES_SCRIPT, tmp.name, str(HOLD_DAYS)],
                             capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        res = json.loads(out.stdout)
        d = bgnbd_draws(res["params"], summary, HOLD_DAYS, np.random.default_rng(0))
        rows.append({**score("lifetimes BetaGeoFitter (MLE)", y_active, y_days,
                             np.asarray(res["p_active"]), np.asarray(res["expected"]), d),
                     "fit_s": wall, "verdict": "point"})
    else:
        print("no lifetimes Python (--lifetimes-python or LIFETIMES_PYTHON): left out")
    base = y_active.mean()
    print(f"\nBrier of the base rate: {np.mean((base - y_active) ** 2):.4f}\n")
    print("| model | fit (s) | predict (s) | Brier | worst fifth off by (p if right; "
          "goal met if right) | MAE (mean) | MAE (median) | 90% coverage | "
          "P < 0.1: users (share returned) | check |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['model']} | {r['fit_s']:.0f} | {r.get('predict_s', np.nan):.1f} | "
              f"{r['brier']:.4f} | {r['worst_fifth']:.3f} ({r['worst_fifth_p']:.2f}; "
              f"{r['fifths_goal_if_right']:.2f}) | "
              f"{r['mae']:.2f} | {r['mae_median']:.2f} | {r['coverage90']:.3f} | "
              f"{r['below_10pct']} "
              f"({r['below_10pct_returned']:.2f}) | {r['verdict']} |")
    print("\nFifths (mean predicted, observed), lowest first:")
    for r in rows:
        print(f"- {r['model']}: {r['fifths']}")


def run_scale(args: argparse.Namespace) -> None:
    """Time compilation, one gradient and (unless ``--gradient-only``) NUTS fits."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(4)
    covariates = {"none": {}, "binary": {"premium": (rng.random(args.n_users) < 0.4) * 1.0},
                  "continuous": {"age": rng.uniform(18, 65, args.n_users)}}[args.covariates]
    coef = {name: [[0, 0.5, 0.5], [-0.5, 0, 0.5], [-0.5, -0.5, 0]] if name == "premium" else
            np.array([[0, 1, 1], [-1, 0, 1], [-1, -1, 0]]) * 0.02 for name in covariates}
    sim = simulate_engagement(args.n_users, args.n_periods, emission_concentration=(2, 5, 8),
                              max_join=args.n_periods // 2, with_events=False, random_seed=3,
                              covariates=covariates, transition_coef=coef)
    sim_s = time.perf_counter() - t0
    print(f"covariates: {args.covariates}; user effects and tilt: {args.user_transitions}; "
          f"{args.chains} chain(s) on {args.cores} core(s)")
    print("| users x periods | unique histories | simulate (s) | threads | compile (s) | "
          "gradient (ms) | "
          "seed | target_accept | fit (s) | sampling (s) | sampler, draws | steps per draw | "
          "steps per draw with warm-up (from the time) | steps per draw by chain | final step "
          "size by chain | divergences | max R-hat | "
          "min bulk ESS | median bulk ESS | min tail ESS | peak RSS (MiB) | load (1 min) | "
          "check |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---|---:|---:|---:|"
          "---:|---:|---:|---:|---|")
    for threads in args.threads:
        _scale_runs(args, sim, sim_s, covariates, threads)


def _scale_runs(args: argparse.Namespace, sim, sim_s: float, covariates: dict,
                threads: int) -> None:
    """The scale table's rows for one number of threads of the compiled pass."""
    model = EngagementStateModel(covariates=list(covariates),
                                 user_effects=args.user_transitions,
                                 user_transitions=args.user_transitions, threads=threads)
    t0 = time.perf_counter()
    built = model.build_model(sim.activity)
    dlogp = built.compile_dlogp()
    point = built.initial_point()
    dlogp(point)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(20):
        dlogp(point)
    grad_ms = (time.perf_counter() - t0) / 20 * 1000
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    runs = [(seed, ta) for seed in args.seeds for ta in args.target_accept]
    for seed, target in runs if not args.gradient_only else [(None, None)]:
        fit_s, sample_s, steps, warm_steps, rhat, ess, ess_med, tail, div = (np.nan,) * 9
        verdict, by_chain, step_size = "not run", "", ""
        if seed is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                model.fit(sim.activity, draws=args.draws, tune=args.tune, chains=args.chains,
                          cores=args.cores, sampler=args.sampler, random_seed=seed,
                          target_accept=target)
                fit_s = time.perf_counter() - t0
            stats = model.idata_["sample_stats"]
            sample_s = float(model.idata_["posterior"].attrs.get("sampling_time", np.nan))
            n_steps = stats["n_steps"] if "n_steps" in stats else stats["tree_size"]
            steps = float(n_steps.mean())
            by_chain = ", ".join(f"{v:.1f}" for v in n_steps.mean("draw").values)
            step_size = ", ".join(f"{v:.2f}" for v in stats["step_size"].mean("draw").values)
            div = int(stats["diverging"].sum())
            table = model.fit_report_.variables
            rhat, ess = float(table["rhat"].max()), float(table["ess_bulk"].min())
            ess_med, tail = float(table["ess_bulk"].median()), float(table["ess_tail"].min())
            # leapfrog steps of the whole run (warm-up included) per draw, from the time
            # (chains one after another with fewer cores than chains: each took its share)
            at_once = min(args.chains, args.cores)
            warm_steps = (sample_s * at_once / args.chains / (grad_ms / 1000)
                          / (args.tune + args.draws))
            verdict = model.fit_report_.verdict
            target = model.default_target_accept() if target is None else target
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        load = os.getloadavg()[0]
        print(f"| {args.n_users:,} x {args.n_periods} | {built.engagement_rows:,} | {sim_s:.1f} | "
              f"{threads} | {compile_s:.0f} | {grad_ms:.1f} | {seed} | {target} | {fit_s:.0f} | "
              f"{sample_s:.0f} | {args.sampler}, {args.chains} x ({args.tune} + {args.draws}) | "
              f"{steps:.1f} | "
              f"{warm_steps:.1f} | {by_chain} | {step_size} | {div} | {rhat:.3f} | {ess:.0f} | "
              f"{ess_med:.0f} | {tail:.0f} | "
              f"{peak:.0f} | {load:.1f} | {verdict} |", flush=True)


def main() -> None:
    global CAL_DAYS, FIRST_DAY
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    real = sub.add_parser("lastfm")
    real.add_argument("--draws", type=int, default=500)
    real.add_argument("--lifetimes-python", default=os.environ.get("LIFETIMES_PYTHON"))
    real.add_argument("--configs", type=json.loads,
                      default=[{}, {"n_states": 4, "churn_state": True,
                                    "churn_returns": True},
                               {"n_states": 3, "churn_state": True, "churn_returns": True,
                                "user_effects": True, "user_transitions": True}])
    real.add_argument("--sampler", choices=["pymc", "nutpie"], default="nutpie")
    real.add_argument("--first-day", type=int, default=FIRST_DAY,
                      help="first day of the engagement model's weekly table (the "
                           "calibration days from it must be whole weeks)")
    real.add_argument("--calibration-days", type=int, default=CAL_DAYS,
                      help="days 0..N-1 calibrate, the next 93 are the holdout (whole weeks; "
                           "175 is the validation split inside the default's calibration)")
    scale = sub.add_parser("scale")
    scale.add_argument("--n-users", type=int, default=10_000)
    scale.add_argument("--n-periods", type=int, default=52)
    scale.add_argument("--draws", type=int, default=1000)
    scale.add_argument("--tune", type=int, default=1000)
    scale.add_argument("--sampler", choices=["pymc", "nutpie"], default="nutpie")
    scale.add_argument("--cores", type=int, default=1)
    scale.add_argument("--chains", type=int, default=2)
    scale.add_argument("--threads", type=lambda v: [int(x) for x in v.split(",")], default=[1],
                       help="threads of the model's compiled pass, or several separated by "
                       "commas (the gradient and the fits are run for each)")
    scale.add_argument("--gradient-only", action="store_true")
    scale.add_argument("--target-accept", type=lambda v: [float(x) for x in v.split(",")],
                       default=[None], help="NUTS target acceptance, or several separated "
                       "by commas (the model's default if not given)")
    scale.add_argument("--seeds", type=lambda v: [int(x) for x in v.split(",")], default=[1],
                       help="the fits' random seeds, separated by commas (one fit per seed "
                       "and target)")
    scale.add_argument("--covariates", choices=["none", "binary", "continuous"],
                       default="none", help="a user covariate on the transitions")
    scale.add_argument("--user-transitions", action="store_true",
                       help="user effects on the emissions and the transitions")
    args = parser.parse_args()
    if args.what == "lastfm":
        if (args.calibration_days - args.first_day) % 7 or not 0 <= args.first_day < 7:
            sys.exit("--calibration-days after --first-day (0-6) must be whole weeks")
        CAL_DAYS, FIRST_DAY = args.calibration_days, args.first_day
        if not DATA.is_dir():
            sys.exit(f"no data at {DATA}")
        run_lastfm(args)
    else:
        run_scale(args)


if __name__ == "__main__":
    main()
