"""The ``listening`` analysis: how much people play, and what they skip.

Steps: daily play counts of a window of the log for a seeded sample of users; the
play-count model under each likelihood of the configuration; their PSIS-LOO
comparison on pointwise log-likelihoods; segment contrasts (ratios of expected
plays, with intervals); a posterior predictive check of the play counts; the skip
model with its own predictive check; expected daily plays per user.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import special, stats

from models.analysis.context import Analysis, AnalysisContext
from models.analysis.report import plot_trace_rank

__all__ = ["ANALYSIS", "pointwise_log_likelihood"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return special.expit(x)


def _count_part(model: Any, max_draws: int, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Draws of the count-part mean of every training row and the matching parameters."""
    from models.predict import posterior_arrays

    mean = model.expected_plays(return_draws=True, max_draws=max_draws, random_seed=seed)
    names = [n for n in ("alpha", "zero_logit")
             if n in model.idata_["posterior"].data_vars]
    p = posterior_arrays(model.idata_, names, max_draws=max_draws, random_seed=seed) \
        if names else {}
    if model.likelihood == "zinb":
        mean = mean / (1.0 - _sigmoid(p["zero_logit"]))[:, None]
    return mean, p


def pointwise_log_likelihood(model: Any, *, max_draws: int, seed: int) -> np.ndarray:
    r"""Log-likelihood of every training row under every posterior draw, (draw, row).

    For ``negbin`` :math:`\log \mathrm{NB}(y; \mu, \alpha)`, ``poisson``
    :math:`\log \mathrm{Pois}(y; \mu)`, ``zinb`` :math:`\log[\pi 1_{y=0} + (1-\pi)
    \mathrm{NB}(y; \mu, \alpha)]`, with :math:`\mu` recovered from the model's
    ``expected_plays`` draws.

    Raises
    ------
    ValueError
        For the ``hurdle`` likelihood (not supported here).
    """
    y = model.data_["plays"].to_numpy(dtype=float)[None, :]
    mu, p = _count_part(model, max_draws, seed)
    if model.likelihood == "poisson":
        return stats.poisson.logpmf(y, mu)
    if model.likelihood not in ("negbin", "zinb"):
        raise ValueError(f"LOO for the {model.likelihood!r} likelihood is not supported.")
    a = p["alpha"][:, None]
    ll = stats.nbinom.logpmf(y, a, a / (a + mu))
    if model.likelihood == "zinb":
        pi = _sigmoid(p["zero_logit"])[:, None]
        ll = np.where(y == 0, np.logaddexp(np.log(pi), np.log1p(-pi) + ll), np.log1p(-pi) + ll)
    return ll


def _simulate_counts(model: Any, max_draws: int, seed: int, n_draws: int) -> np.ndarray:
    """Posterior predictive draws of the training rows' play counts, (draw, row)."""
    mu, p = _count_part(model, max_draws, seed)
    rng = np.random.default_rng(seed)
    pick = rng.choice(mu.shape[0], size=min(n_draws, mu.shape[0]), replace=False)
    mu = mu[pick]
    if model.likelihood == "poisson":
        return rng.poisson(mu)
    a = p["alpha"][pick][:, None]
    y = rng.poisson(rng.gamma(a, mu / a))
    if model.likelihood == "zinb":
        y = np.where(rng.random(y.shape) < _sigmoid(p["zero_logit"][pick])[:, None], 0, y)
    return y


def _ppc_figure(observed: np.ndarray, simulated: dict[str, np.ndarray]) -> Figure:
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    top = int(np.quantile(observed, 0.99)) + 1
    counts = np.arange(top + 1)
    obs = np.bincount(np.minimum(observed, top), minlength=top + 1) / len(observed)
    ax.bar(counts, obs, color="0.8", label="observed")
    for i, (name, sims) in enumerate(simulated.items()):
        freq = np.stack([np.bincount(np.minimum(s, top), minlength=top + 1)[: top + 1]
                         for s in sims]) / sims.shape[1]
        lo, mid, hi = np.quantile(freq, [0.055, 0.5, 0.945], axis=0)
        ax.errorbar(counts + 0.15 * (i - 0.5), mid, yerr=[mid - lo, hi - mid], fmt="o",
                    ms=3, color=f"C{i}", label=f"{name}: predictive median and 89%")
    ax.set_xlabel(f"plays in a day (the last bar is {top} or more)")
    ax.set_ylabel("share of user-days")
    ax.set_title("Posterior predictive check of daily play counts")
    ax.legend(fontsize=7)
    return fig


def run(ctx: AnalysisContext) -> None:
    """Run the listening analysis on ``ctx`` (see the module docstring)."""
    import arviz as az

    from models.data import period_play_counts
    from models.diagnostics import compare_models, plot_ppc_counts
    from models.listening import PlayCountModel, SkipModel, skip_table

    cfg, out, seed = ctx.config["listening"], ctx.out, ctx.seed
    events, users, end = ctx.inputs.events, ctx.inputs.users, ctx.inputs.observation_end
    priors = ctx.config.get("priors", {})
    start = end - pd.Timedelta(days=cfg["window_days"])
    groups = [g for g in cfg["groups"] if users is not None and g in users.columns]

    with out.step("daily play counts"):
        window = events[events["timestamp"] >= start]
        if window.empty:
            raise ValueError(f"No plays in the last {cfg['window_days']} days of the log; "
                             "raise listening.window_days in the config.")
        chosen = np.sort(window["user_id"].unique())
        if cfg["max_users"] and len(chosen) > cfg["max_users"]:
            rng = np.random.default_rng(seed)
            chosen = np.sort(rng.choice(chosen, cfg["max_users"], replace=False))
            out.note(f"Play counts of {len(chosen):,} users drawn at random (seed {seed}) "
                     f"from the {window['user_id'].nunique():,} active in the last "
                     f"{cfg['window_days']} days.")
        window = window[window["user_id"].isin(chosen)]
        counts = period_play_counts(window, period="D", start=start, end=end)
        if groups:
            attrs = users.set_index("user_id")[groups].astype("string").fillna("(missing)")
            counts = counts.join(attrs.astype(object), on="user_id")

    fits: dict[str, Any] = {}
    for i, likelihood in enumerate(cfg["likelihoods"]):
        with out.step(f"fit play-count model ({likelihood})"):
            model = PlayCountModel(groups=groups, likelihood=likelihood,
                                   priors=priors.get("PlayCountModel"))
            fits[likelihood] = out.fit(f"plays_{likelihood}", model, counts,
                                       description=f"daily plays per user, {likelihood} "
                                       "likelihood", **ctx.sampler_kwargs(10 + i))
    main_name = cfg["likelihoods"][0]
    main = fits[main_name]
    out.add_figure("trace_plays", plot_trace_rank(main),
                   f"Play-count model ({main_name}): trace and rank plots")

    with out.step("LOO comparison of the likelihoods"):
        trees = {}
        for name, model in fits.items():
            if name == "hurdle":
                out.note("The hurdle likelihood is left out of the LOO comparison.")
                continue
            ll = pointwise_log_likelihood(model, max_draws=cfg["loo_max_draws"], seed=seed)
            trees[name] = az.from_dict({
                "posterior": {"log_likelihood_sum": ll.sum(axis=1)[None, :]},
                "log_likelihood": {"plays": ll[None]},
                "observed_data": {"plays": model.data_["plays"].to_numpy()},
            })
        if len(trees) >= 2:
            table = compare_models(trees, var_name="plays")
            out.add_table("loo_comparison", table,
                          "PSIS-LOO comparison of the play-count likelihoods (per user-day; "
                          "best first; a difference matters when it is several times dse; "
                          "Pareto k above 0.7 makes an elpd unreliable)", section="findings")
            out.finding(f"Play counts are best described by the {table.index[0]} likelihood "
                        "(PSIS-LOO, per user-day).")
        else:
            out.note("Only one likelihood was fitted: no LOO comparison.")

    with out.step("segment contrasts"):
        rows = []
        for g in groups:
            levels = sorted(counts[g].astype(str).unique())
            for level in levels[1:]:
                c = main.segment_contrast(g, level, levels[0])
                rows.append(c.assign(group=g))
        if rows:
            contrasts = pd.concat(rows)
            out.add_table("segment_contrasts", contrasts,
                          "Ratio of expected daily plays between segment levels (each against "
                          "the first level), 89% HDI, and P(ratio > 1)", section="findings")

    with out.step("posterior predictive check of play counts"):
        observed = counts["plays"].to_numpy(dtype=np.int64)
        sims = {name: _simulate_counts(m, cfg["loo_max_draws"], seed, 100)
                for name, m in fits.items() if name != "hurdle"}
        out.add_figure("ppc_plays", _ppc_figure(observed, sims),
                       "Posterior predictive check: distribution of daily play counts")

    if cfg["fit_skips"] and "skipped" in events.columns:
        with out.step("fit skip model"):
            crossed = [c for c in cfg["skip_crossed"] if c in events.columns]
            skip_start = end - pd.Timedelta(days=cfg["skip_window_days"])
            plays = events[(events["timestamp"] >= skip_start)
                           & events["user_id"].isin(chosen)]
            skip_groups = [g for g in groups if g == "plan"]
            table = skip_table(plays, users, crossed=crossed, group=skip_groups)
            skip = out.fit("skips", SkipModel(crossed=crossed, group=skip_groups,
                                              priors=priors.get("SkipModel")), table,
                           description="skip probability with crossed user and artist effects",
                           **ctx.sampler_kwargs(20))
            out.add_figure("trace_skips", plot_trace_rank(skip),
                           "Skip model: trace and rank plots")
            skip.sample_posterior_predictive(random_seed=seed)
            ax = plot_ppc_counts(skip.idata_, "n_skips", random_seed=seed)
            out.add_figure("ppc_skips", ax.figure,
                           "Posterior predictive check: skips per covariate pattern")
            excess = skip.track_skip_excess()
            out.add_table("skip_excess", excess.head(20),
                          f"{crossed[-1]} skipped more than their audience explains "
                          "(log-odds effect, 89% HDI), top 20", section="findings")
    else:
        out.note("No 'skipped' column (or fit_skips = false): the skip model is not fitted.")

    with out.step("per-user predictions"):
        from models.predict import summarize_draws

        draws = main.expected_plays(return_draws=True, max_draws=cfg["max_draws"],
                                    random_seed=seed)
        codes, users_idx = pd.factorize(main.data_["user_id"], sort=True)
        n_rows = np.bincount(codes)
        per_user = np.stack([np.bincount(codes, weights=d) for d in draws]) / n_rows
        pred = summarize_draws(per_user, ci_prob=0.89, index=pd.Index(users_idx, name="user_id"))
        pred = pred[["mean", "hdi_lower", "hdi_upper"]].add_prefix("expected_daily_plays_")
        observed_mean = main.data_.groupby("user_id")["plays"].mean()
        pred["observed_daily_plays"] = observed_mean.reindex(pred.index)
        pred["days"] = n_rows
        out.set_predictions(pred.reset_index())


ANALYSIS = Analysis(
    name="listening",
    description="Play-count models under several likelihoods compared by LOO, segment "
    "contrasts, predictive checks, and the skip model.",
    needs="events: user_id, timestamp (skipped and artist_id/track_id for the skip model); "
    "users table optional (country, plan segments).",
    run=run,
    models=("PlayCountModel", "SkipModel"),
    min_users=10,
)
