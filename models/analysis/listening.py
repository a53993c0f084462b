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

from models.analysis.context import Analysis, AnalysisContext
from models.analysis.report import plot_trace_rank

__all__ = ["ANALYSIS"]


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
        if ctx.config["sampler"]["method"] == "map":
            out.note("MAP fits have no posterior draws: no LOO comparison.")
            fits_with_loo = {}
        else:
            fits_with_loo = fits
            for model in fits.values():
                model.compute_log_likelihood(max_draws=cfg["loo_max_draws"])
        if len(fits_with_loo) >= 2:
            table = compare_models(fits_with_loo)
            out.add_table("loo_comparison", table,
                          "PSIS-LOO comparison of the play-count likelihoods (per user-day; "
                          "best first; a difference matters when it is several times dse; "
                          "Pareto k above 0.7 makes an elpd unreliable)", section="findings")
            out.finding(f"Play counts are best described by the {table.index[0]} likelihood "
                        "(PSIS-LOO, per user-day).")
        elif len(fits) < 2:
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
                          "the first level), 89% interval, and P(ratio > 1)", section="findings")

    with out.step("posterior predictive check of play counts"):
        observed = counts["plays"].to_numpy(dtype=np.int64)
        sims = {}
        for name, m in fits.items():
            replicates = m.sample_posterior_predictive(max_draws=100, random_seed=seed)
            plays = replicates["posterior_predictive"]["plays"]
            sims[name] = plays.values.reshape(-1, plays.sizes["user_period"])
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
                          "(log-odds effect, 89% interval), top 20", section="findings")
    else:
        out.note("No 'skipped' column (or fit_skips = false): the skip model is not fitted.")

    with out.step("per-user predictions"):
        from models.predict import flatten_draws, summarize_draws

        draws = flatten_draws(main.expected_plays(return_draws=True, max_draws=cfg["max_draws"],
                                                  random_seed=seed))
        codes, users_idx = pd.factorize(main.data_["user_id"], sort=True)
        n_rows = np.bincount(codes)
        per_user = np.stack([np.bincount(codes, weights=d) for d in draws]) / n_rows
        pred = summarize_draws(per_user, ci_prob=0.89, index=pd.Index(users_idx, name="user_id"))
        pred = pred[["mean", "ci_lower", "ci_upper"]].add_prefix("expected_daily_plays_")
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
