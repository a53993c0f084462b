"""The ``churn`` analysis: who is still listening, who will be, and which segments leave.

Steps: churn labels and summaries of the whole log; a calibration/holdout split of
the window; BG/NBD (and BG/BB) activity models, a shifted-beta-geometric cohort
model, a discrete-time hazard model, an engagement-state model (hidden Markov
states of weekly activity, in which a silent user may come back) and a return
hazard model (the chance of an active day by the length of the silence before
it) fitted on the calibration part; their
predictions checked against what happened in the holdout (AUC, Brier score,
calibration judged against the predictions' uncertainty, warned loudly when off), and
a predictive check of the gaps between active periods (can the model produce the
pauses users take?); retention curves by segment with credible bands; per-user
P(active) and expected activity with intervals; segments ranked by how fast they
lose users.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from models.analysis.config import ConfigError, default_config
from models.analysis.context import Analysis, AnalysisContext
from models.analysis.report import plot_trace_rank

__all__ = ["ANALYSIS"]


def _segment_column(ctx: AnalysisContext) -> str | None:
    seg = ctx.config["churn"]["segment"]
    users = ctx.inputs.users
    if not seg:
        return None
    if users is not None and seg in users.columns:
        return seg
    if seg != default_config("churn")["churn"]["segment"]:
        # asked for by the user's configuration: a typo must not pass as "no segments"
        have = ("there is no users table (pass --users)" if users is None else
                f"the users table has the columns {sorted(map(str, users.columns))}")
        raise ConfigError(f"The segment column {seg!r} (churn.segment) does not exist: {have}. "
                          "Set churn.segment to one of those columns, or to \"\" to fit "
                          "without segments.")
    ctx.out.note(f"No '{seg}' column in the users table: the models are fitted without "
                 "segments.")
    return None


def _user_segments(ctx: AnalysisContext, seg: str | None) -> pd.Series | None:
    if seg is None:
        return None
    values = ctx.inputs.users.set_index("user_id")[seg]
    missing = int(values.isna().sum())
    if missing:
        ctx.out.note(f"{missing} users have no '{seg}'; they form the segment '(missing)'.")
    return values.astype("string").fillna("(missing)").astype(object)


def _engagement_covariates(ctx: AnalysisContext) -> pd.DataFrame | None:
    """User columns of ``churn.engagement_covariates`` as numbers, one row per user id.

    Numbers and booleans (0/1) enter as they are; any other column is coded by
    its levels, one 0/1 column per level but the first (``plan_premium``). A
    missing value stays missing (the model names the users), never a 0.
    """
    names = ctx.config["churn"]["engagement_covariates"]
    if not names:
        return None
    users = ctx.inputs.users
    have = [] if users is None else [c for c in users.columns if c != "user_id"]
    bad = [n for n in names if not isinstance(n, str) or n not in have]
    if bad or len(set(names)) < len(names):
        where = ("there is no users table (pass --users)" if users is None else
                 f"the users table has the columns {sorted(map(str, have))}")
        raise ConfigError(f"churn.engagement_covariates must name distinct columns of the users "
                          f"table; {bad or names} are not ({where}).")
    frame = users.set_index("user_id")
    out: dict[str, pd.Series] = {}
    for name in names:
        col = frame[name]
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            out[name] = col.astype(float)
            continue
        text = col.astype("string")
        levels = sorted(text.dropna().unique())
        if len(levels) < 2:
            raise ConfigError(f"churn.engagement_covariates: the column {name!r} of the users "
                              f"table has the one value {levels}: its effect on the transitions "
                              "is not identified. Leave it out.")
        for level in levels[1:]:
            out[f"{name}_{level}"] = (text == level).astype(float).where(text.notna())
    return pd.DataFrame(out, index=frame.index)


def _flatten(frame: pd.DataFrame, prefix: str) -> pd.DataFrame:
    cols = ["mean", "ci_lower", "ci_upper"]
    return frame[cols].rename(columns={c: f"{prefix}_{c}" for c in cols})


def _cohorts(ctx: AnalysisContext, events: pd.DataFrame, end: pd.Timestamp, seg: str | None,
             segments: pd.Series | None) -> pd.DataFrame:
    """Cohort table of ``events``, observed up to ``end`` (the end of *their* window)."""
    from models.data import cohort_table

    period = ctx.config["churn"]["cohort_period"]
    # users silent for less than the churn definition at the end are alive, not lost
    kw = dict(period=period, observation_end=end, inactivity=ctx.config["churn"]["inactivity"])
    if seg is None:
        return cohort_table(events, **kw)
    parts = []
    label = events["user_id"].map(segments)
    for level in sorted(label.dropna().unique()):
        table = cohort_table(events[label.to_numpy() == level], **kw)
        parts.append(table.assign(**{seg: level}))
    return pd.concat(parts, ignore_index=True)


def _retention_figure(model: Any, cohorts: pd.DataFrame, periods: int, unit: str) -> Figure:
    from models.churn import plot_retention_curves

    ax = plot_retention_curves(model, cohorts, horizon=periods,
                               ax=Figure(figsize=(7, 4.5)).subplots())
    ax.set_xlabel(f"{unit} since the cohort started")
    ax.set_title("Retention curves by segment (shifted-beta-geometric)")
    return ax.figure


def _summary(draws: Any) -> pd.DataFrame:
    """Mean and 89% interval per unit of posterior draws (chain, draw, unit)."""
    from models.predict import flatten_draws, summarize_draws

    return summarize_draws(flatten_draws(draws), index=draws.indexes[draws.dims[-1]])


def _unit_draws(draws: Any, index: pd.Index) -> pd.DataFrame:
    """Posterior draws (chain, draw, unit) as a frame: one row per draw, one column per unit."""
    unit = draws.dims[-1]
    flat = draws.stack(sample=("chain", "draw")).transpose("sample", unit)
    return pd.DataFrame(flat.values, columns=pd.Index(flat[unit].values)).reindex(columns=index)


def _fit_sample(ctx: AnalysisContext, table: pd.DataFrame, key: str, label: str,
                stream: Any) -> pd.DataFrame:
    """Rows of ``table`` to fit on: all, or a sample of ``churn.<key>`` users (seed ``stream``).

    The population parameters come from the sample; the model's predictions for
    every user filter that user's own history (the churn guide's advice at scale).
    """
    cap = int(ctx.config["churn"][key])
    if not cap or len(table) <= cap:
        return table
    keep = np.random.default_rng(stream).choice(len(table), cap, replace=False)
    ctx.out.note(f"{label}: fitted on {cap:,} of the {len(table):,} users drawn at random "
                 f"(seed {ctx.seed}; churn.{key}); predictions for all of them, each from "
                 "its own history.")
    return table.iloc[np.sort(keep)]


def _gap_check_step(out: Any, name: str, label: str, check: Callable[[], Any],
                    description: str, subject: str | None = None) -> None:
    """Run one model's gap check into table ``name``; warn loudly when the model fails it.

    ``label`` names the model in the notes and the warning, ``subject`` (``label`` by
    default) in the finding. A history too short for any statistic of the check gives a
    note, not a failed run.
    """
    from models.churn.gaps import HistoryTooShortError
    from models.exceptions import ModelCheckWarning

    try:
        result = check()
    except HistoryTooShortError as err:
        out.note(f"{label} gap check not run: {err}")
        return
    out.add_table(name, result.table, description)
    if result.cannot_reproduce:
        warnings.warn(f"{label}: {result.message}", ModelCheckWarning, stacklevel=3)
        out.finding(f"WARNING: {subject or label} on the calibration window: "
                    f"{result.message}")
    else:
        out.note(f"{label} gap check: {result.message}")


def _holdout_figure(metrics: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> Figure:
    from models.churn import plot_holdout_calibration

    ax = Figure(figsize=(5.5, 5)).subplots()
    for i, (name, table) in enumerate(tables.items()):
        plot_holdout_calibration(table, ax=ax, color=f"C{i}",
                                 label=f"{name} (AUC {metrics.loc[name, 'auc']:.2f})")
    return ax.figure


def run(ctx: AnalysisContext) -> None:
    """Run the churn analysis on ``ctx`` (see the module docstring)."""
    from models.churn import (
        BetaGeoBetaBinomModel,
        BetaGeoModel,
        ChurnHazardModel,
        EngagementStateModel,
        ReturnHazardModel,
        ShiftedBetaGeoModel,
        activity_table,
        bgbb_summary,
        brier_score,
        build_hazard_table,
        calibration_table,
        churn_labels,
        roc_auc,
    )
    from models.churn.gaps import gap_check
    from models.data import summarize_activity
    from models.exceptions import ModelCheckWarning
    from models.metrics import calibration_check

    cfg, out, seed = ctx.config["churn"], ctx.out, ctx.seed
    events, users, end = ctx.inputs.events, ctx.inputs.users, ctx.inputs.observation_end
    priors = ctx.config.get("priors", {})
    seg = _segment_column(ctx)
    segments = _user_segments(ctx, seg)
    hmm_covariates = _engagement_covariates(ctx) if cfg["fit_engagement"] else None
    n_levels = 0 if segments is None else int(segments.nunique())
    pooled = n_levels >= cfg["pool_from_segments"]
    if seg:
        out.note(f"{n_levels} '{seg}' segments: the BG/NBD and sBG segment parameters are "
                 + ("partially pooled (hierarchical)." if pooled else
                    "fitted without pooling (too few segments to estimate their spread; "
                    "see churn.pool_from_segments)."))
    holdout = pd.Timedelta(days=cfg["holdout_days"])
    cutoff = end - holdout
    max_draws = cfg["max_draws"]

    with out.step("churn labels and summaries"):
        labels = churn_labels(events, inactivity=cfg["inactivity"], observation_end=end,
                              users=users)
        keys = [seg] if seg else []
        if seg:
            labels[seg] = labels.index.map(segments)
        grouped = labels.groupby(keys) if keys else labels.assign(_all="all").groupby("_all")
        summary = grouped.agg(users=("churned", "size"), churned=("churned", "sum"),
                              median_tenure_days=("tenure_days", "median"),
                              mean_events=("n_events", "mean"))
        # Beta(1 + churned, 1 + censored) interval of the observed churn share (uniform prior).
        from scipy import stats

        a, b = 1 + summary["churned"], 1 + summary["users"] - summary["churned"]
        summary["churned_share"] = summary["churned"] / summary["users"]
        summary["share_lower_89"] = stats.beta.ppf(0.055, a, b)
        summary["share_upper_89"] = stats.beta.ppf(0.945, a, b)
        out.add_table("churn_labels_by_segment", summary,
                      f"Users labelled churned (silent for {cfg['inactivity']} before the end "
                      "of the log) by segment; 89% interval of the share (Beta(1, 1) prior).")

    with out.step("calibration / holdout split"):
        cal = events[events["timestamp"] < cutoff]
        if cal.empty:
            raise ValueError(f"The holdout of {cfg['holdout_days']} days leaves no events "
                             "before it; lower churn.holdout_days in the config.")
        activity = summarize_activity(cal, period=cfg["activity_period"],
                                      observation_end=cutoff)
        after = events[events["timestamp"] >= cutoff]
        active_days = after.groupby("user_id")["timestamp"].agg(
            lambda s: s.dt.floor("D").nunique())
        activity["active_in_holdout"] = activity.index.isin(after["user_id"].unique())
        activity["active_days_in_holdout"] = active_days.reindex(activity.index).fillna(0)
        if seg:
            activity[seg] = activity.index.map(segments)
        out.note(f"Models are fitted on the log before {cutoff} ({len(activity):,} users) and "
                 f"checked on the last {cfg['holdout_days']} days.")

    with out.step("fit BG/NBD activity model"):
        bg = out.fit("bgnbd", BetaGeoModel(segment=seg, hierarchical=pooled,
                                           priors=priors.get("BetaGeoModel")),
                     activity.drop(columns=["active_in_holdout", "active_days_in_holdout"]),
                     description="activity and silent dropout (BG/NBD), calibration window",
                     **ctx.sampler_kwargs(1))
        out.add_figure("trace_bgnbd", plot_trace_rank(bg), "BG/NBD: trace and rank plots")

    with out.step("predictive check of the gaps between active periods"):
        _gap_check_step(
            out, "gap_check", "BG/NBD",
            lambda: gap_check(bg, cal, period=cfg["activity_period"], observation_end=cutoff,
                              random_seed=seed),
            "Can BG/NBD produce the pauses the users took? Share of the gaps between "
            "consecutive active periods by length, and heavy users who returned after a long "
            "silence: observed against populations replicated from the fitted model (95% "
            "interval, two-sided predictive p-value).")

    bgbb = None
    if cfg["fit_bgbb"]:
        with out.step("fit BG/BB discrete-time model"):
            period_end = cutoff - pd.Timedelta(microseconds=1)
            grid = bgbb_summary(cal, period=cfg["bgbb_period"], observation_end=period_end)
            bgbb = out.fit("bgbb", BetaGeoBetaBinomModel(
                priors=priors.get("BetaGeoBetaBinomModel")), grid,
                description=f"discrete-time activity and dropout (BG/BB, {cfg['bgbb_period']} "
                "opportunities)", **ctx.sampler_kwargs(2))
            out.add_figure("trace_bgbb", plot_trace_rank(bgbb), "BG/BB: trace and rank plots")

    with out.step("fit cohort retention model (shifted-beta-geometric)"):
        cohorts = _cohorts(ctx, cal, cutoff, seg, segments)
        sbg = out.fit("sbg", ShiftedBetaGeoModel(segment=seg, hierarchical=pooled,
                                                 priors=priors.get("ShiftedBetaGeoModel")),
                      cohorts, description=f"cohort retention by {seg or 'population'} "
                      f"({cfg['cohort_period']} periods)", **ctx.sampler_kwargs(3))
        out.add_figure("trace_sbg", plot_trace_rank(sbg), "sBG: trace and rank plots")
        periods = cfg["retention_periods"]
        unit = {"M": "months", "W": "weeks", "D": "days"}[cfg["cohort_period"]]
        out.add_figure("retention_curves", _retention_figure(sbg, cohorts, periods, unit),
                       "Retention curves by segment with 89% credible bands",
                       section="findings")
        surv = sbg.expected_survival_new_user(horizon=[1, periods])
        draws = sbg.expected_survival_new_user(horizon=[periods], return_draws=True)
        loss = surv.xs(periods, level=-1) if seg else surv.loc[[periods]]
        loss = loss.rename(columns=lambda c: f"survival_{periods}_{c}")
        first = surv.xs(1, level=-1) if seg else surv.loc[[1]]
        loss["churn_first_period_mean"] = 1 - first["mean"].to_numpy()
        if seg and draws.sizes["segment"] > 1:
            # the segment with the lowest survival in each posterior draw
            survival = draws.sel(horizon=periods).stack(sample=("chain", "draw"))
            worst = survival.transpose("sample", "segment").argmin("segment").values
            loss["probability_loses_fastest"] = [(worst == i).mean() for i in range(len(loss))]
        loss = loss.sort_values(f"survival_{periods}_mean")
        out.add_table("segments_losing_users", loss,
                      f"Segments ranked by how fast they lose users: expected share of a new "
                      f"cohort still listening after {periods} {unit} (89% interval), churn in the "
                      "first period, and the posterior probability that the segment has the "
                      "lowest survival.", section="findings")
        out.finding(f"Segment losing users fastest: {loss.index[0]!r}, with "
                    f"{loss.iloc[0][f'survival_{periods}_mean']:.1%} of a new cohort expected "
                    f"to be listening after {periods} {unit}"
                    + (f" (against {loss.iloc[-1][f'survival_{periods}_mean']:.1%} in "
                       f"{loss.index[-1]!r})." if len(loss) > 1 else "."))

    hazard = None
    if cfg["fit_hazard"]:
        with out.step("fit discrete-time churn hazard model"):
            hazard_kw = dict(period=cfg["hazard_period"], inactivity=cfg["inactivity"],
                             observation_end=cutoff, returns=cfg["hazard_returns"])
            table = build_hazard_table(cal, users, **hazard_kw)
            # the rows to forecast from: users still at risk at the cutoff, next period
            ahead = build_hazard_table(cal, users, forecast=True, **hazard_kw)
            covs = [c for c in ("log_plays_prev", "skip_rate_prev", "log_artists_prev",
                                "days_since_last_play") if c in table.columns]
            groups = [g for g in cfg["hazard_groups"] if g in table.columns]
            for g in groups:
                for frame in (table, ahead):
                    if frame[g].isna().any():
                        frame[g] = frame[g].astype("string").fillna("(missing)")
            # A random intercept needs enough levels to estimate their spread; a column with
            # fewer (plan: free/premium) enters as fixed effects, one 0/1 column per level
            # after the first.
            few = [g for g in groups if table[g].nunique() < cfg["pool_from_segments"]]
            for g in few:
                levels = sorted(table[g].unique())
                for level in levels[1:]:
                    name = f"{g}_{level}"
                    for frame in (table, ahead):
                        frame[name] = (frame[g] == level).astype(float)
                    covs.append(name)
            if few:
                out.note("Hazard model: " + ", ".join(few) + " enter as fixed effects (fewer "
                         f"than {cfg['pool_from_segments']} levels); random intercepts for "
                         + (", ".join(g for g in groups if g not in few) or "none") + ".")
            groups = [g for g in groups if g not in few]
            if table.empty or table["event"].sum() == 0:
                out.note("The hazard table has no churn events in the calibration window; "
                         "the hazard model is not fitted.")
            else:
                hazard = out.fit("hazard", ChurnHazardModel(
                    covariates=covs, groups=groups, priors=priors.get("ChurnHazardModel")),
                    table, description="weekly churn hazard with engagement covariates",
                    **ctx.sampler_kwargs(4))
                out.add_figure("trace_hazard", plot_trace_rank(hazard),
                               "Hazard model: trace and rank plots")

    engagement = None
    if cfg["fit_engagement"]:
        with out.step("fit engagement-state model (pauses with returns)"):
            length = int(cfg["engagement_period_days"])
            first = cal["timestamp"].min().floor("D")
            n_periods = math.ceil((cutoff - first) / pd.Timedelta(days=length))
            start = cutoff - pd.Timedelta(days=length * n_periods)
            states_table = activity_table(cal, start=start, observation_end=cutoff,
                                          period_length=length)
            hmm_seg = seg if (seg and pooled) else None
            if hmm_seg:
                states_table[hmm_seg] = states_table.index.map(segments)
            hmm_covs = [] if hmm_covariates is None else list(hmm_covariates.columns)
            if hmm_covs:
                states_table = states_table.join(hmm_covariates.reindex(states_table.index))
                out.note("Engagement-state model: " + ", ".join(hmm_covs) + " shift the "
                         "transitions (churn.engagement_covariates; coefficients in its "
                         "summary, transition_coef_per_unit).")
            fit_table = _fit_sample(ctx, states_table, "engagement_max_users",
                                    "Engagement-state model", seed)
            engagement = out.fit("engagement", EngagementStateModel(
                n_states=int(cfg["engagement_states"]), period_length=length,
                churn_state=bool(cfg["engagement_churn_state"]),
                churn_returns=bool(cfg["engagement_churn_returns"]), segment=hmm_seg,
                covariates=hmm_covs, user_effects=bool(cfg["engagement_user_effects"]),
                user_transitions=bool(cfg["engagement_user_transitions"]),
                threads=int(cfg["engagement_threads"]),
                priors=priors.get("EngagementStateModel")), fit_table,
                description=f"engagement states of active days per {length}-day period, "
                "silent users may return", **ctx.sampler_kwargs(5))
            out.add_figure("trace_engagement", plot_trace_rank(engagement),
                           "Engagement-state model: trace and rank plots")
        with out.step("predictive check of the engagement-state model's gaps"):
            _gap_check_step(
                out, "gap_check_engagement", "Engagement-state model",
                lambda: gap_check(engagement, random_seed=seed),
                "Can the engagement-state model produce the pauses the users took? As the "
                f"BG/NBD gap check, on its own table (periods of {length} days, the users it "
                "was fitted on).", subject="engagement-state model")

    returns = None
    if cfg["fit_return_hazard"]:
        with out.step("fit return hazard model (every silence can end)"):
            first = cal["timestamp"].min().floor("D")
            n_days = math.ceil((cutoff - first) / pd.Timedelta(days=1))
            # active days of the calibration window, ending at the cutoff
            days_table = activity_table(cal, start=cutoff - pd.Timedelta(days=n_days),
                                        observation_end=cutoff, period_length=1)
            # users outside the sample: each effect conditioned on the user's own silences
            fit_days = _fit_sample(ctx, days_table, "return_max_users", "Return hazard model",
                                   [seed, 6])
            returns = out.fit("return_hazard", ReturnHazardModel(
                priors=priors.get("ReturnHazardModel")), fit_days,
                description="hazard of an active day by the length of the silence before it, "
                "per-user effects; a silent user may always return", **ctx.sampler_kwargs(6))
            out.add_figure("trace_return_hazard", plot_trace_rank(returns),
                           "Return hazard model: trace and rank plots")

    with out.step("holdout comparison"):
        horizon = float(cfg["holdout_days"])
        if cfg["activity_period"] == "W":
            horizon /= 7
        elif cfg["activity_period"] == "M":
            horizon /= 30.44
        preds = pd.DataFrame(index=activity.index)
        if seg:
            preds[seg] = activity[seg]
        preds = preds.join(_flatten(bg.probability_alive(max_draws=max_draws,
                                                         random_seed=seed),
                                    "probability_alive"))
        bg_active = bg.probability_active(horizon=horizon, max_draws=max_draws,
                                          random_seed=seed, return_draws=True)
        preds = preds.join(_flatten(_summary(bg_active), "probability_active_holdout"))
        preds = preds.join(_flatten(bg.expected_activity(horizon=horizon, max_draws=max_draws,
                                                         random_seed=seed),
                                    "expected_active_periods_holdout"))
        scores = {"BG/NBD P(active in holdout)": preds["probability_active_holdout_mean"]}
        # posterior draws of the probabilities, for calibration judged against their uncertainty
        draws = {"BG/NBD P(active in holdout)": _unit_draws(bg_active, activity.index)}
        if bgbb is not None:
            alive = bgbb.probability_alive()
            preds = preds.join(_flatten(alive, "bgbb_probability_alive"))
            scores["BG/BB P(alive) [not the holdout event]"] = preds[
                "bgbb_probability_alive_mean"]
        if hazard is not None:
            steps = math.ceil(pd.Timedelta(days=cfg["holdout_days"])
                              / pd.Timedelta(cfg["hazard_period"] if cfg["hazard_period"] != "W"
                                             else "7D"))
            # forecast from each at-risk user's first period of unknown outcome; users
            # who churned in the calibration table have no forecast (NaN, not scored)
            churn = hazard.probability_churn(ahead, horizon=steps)
            preds = preds.join(_flatten(churn, "hazard_probability_churn"))
            scores["hazard 1 - P(churn) [approximate event; users at risk]"] = 1 - preds[
                "hazard_probability_churn_mean"]
        mae = {"BG/NBD P(active in holdout)": preds["expected_active_periods_holdout_mean"]}
        if engagement is not None:
            hmm_horizon = cfg["holdout_days"] / engagement.period_length
            kw = dict(horizon=hmm_horizon, max_draws=max_draws, random_seed=seed)
            name = "engagement states P(active in holdout)"
            active = engagement.probability_active(states_table, return_draws=True, **kw)
            preds = preds.join(_flatten(_summary(active),
                                        "engagement_probability_active_holdout"))
            preds = preds.join(_flatten(engagement.expected_activity(states_table, **kw),
                                        "engagement_expected_active_days_holdout"))
            scores[name] = preds["engagement_probability_active_holdout_mean"]
            draws[name] = _unit_draws(active, activity.index)
            mae[name] = preds["engagement_expected_active_days_holdout_mean"]
        if returns is not None:
            kw = dict(horizon=int(cfg["holdout_days"]), max_draws=max_draws, random_seed=seed)
            name = "return hazard P(active in holdout)"
            active = returns.probability_active(days_table, return_draws=True, **kw)
            preds = preds.join(_flatten(_summary(active), "return_probability_active_holdout"))
            preds = preds.join(_flatten(returns.expected_activity(days_table, **kw),
                                        "return_expected_active_days_holdout"))
            scores[name] = preds["return_probability_active_holdout_mean"]
            draws[name] = _unit_draws(active, activity.index)
            mae[name] = preds["return_expected_active_days_holdout_mean"]
        preds["active_in_holdout"] = activity["active_in_holdout"]
        preds["active_periods_in_holdout"] = activity["active_days_in_holdout"]
        y = activity["active_in_holdout"].to_numpy()
        rows, tables = [], {}
        for name, score in scores.items():
            ok = score.notna().to_numpy()
            row = {"model": name, "users": int(ok.sum()), "auc": roc_auc(y[ok], score[ok]),
                   "brier": brier_score(y[ok], score[ok]),
                   "brier_base_rate": brier_score(y[ok], np.full(ok.sum(), y[ok].mean())),
                   "calibration": "not checked (no posterior draws of this event)"}
            if name in draws:
                # bins judged against the predictions' own uncertainty (posterior predictive)
                check = calibration_check(y[ok], draws[name].to_numpy()[:, ok],
                                          n_bins=cfg["calibration_bins"], random_seed=seed)
                tables[name] = check.table
                row["calibration"] = "MISCALIBRATED" if check.miscalibrated else "ok"
                if check.miscalibrated:
                    warnings.warn(f"{name}: {check.message}", ModelCheckWarning,
                                  stacklevel=2)
                    out.finding(f"WARNING: {name} on the holdout: {check.message}")
            else:
                tables[name] = calibration_table(y[ok], score[ok],
                                                 n_bins=cfg["calibration_bins"])
            rows.append(row)
        metrics = pd.DataFrame(rows).set_index("model")
        # mean absolute error of the expected active days (periods) in the holdout
        metrics["mae_active_periods"] = pd.Series({
            name: float(np.mean(np.abs(expected - preds["active_periods_in_holdout"])))
            for name, expected in mae.items()})
        out.add_table("holdout_metrics", metrics,
                      "Holdout comparison: did the user listen at all in the holdout? AUC "
                      "(0.5 = chance), Brier score (lower is better; compare with predicting "
                      "the base rate), and the mean absolute error of the expected active "
                      f"{'days' if cfg['activity_period'] == 'D' else 'periods'} in the "
                      "holdout. The BG/NBD and engagement-state probabilities target exactly "
                      "this event; the others approximate it.", section="findings")
        for name in mae:
            row = metrics.loc[name]
            out.finding(f"Holdout: {name} tells who listens in the holdout with AUC "
                        f"{row['auc']:.3f} (0.5 is chance), Brier {row['brier']:.4f} (base "
                        f"rate {row['brier_base_rate']:.4f}), calibration {row['calibration']}; "
                        f"expected active periods off by {row['mae_active_periods']:.3g} on "
                        "average.")
        if len(mae) > 1:
            # the models that forecast exactly this event, ranked on this service's holdout
            ranked = metrics.loc[list(mae)].sort_values("brier")
            best = ranked.index[0]
            out.finding(f"Holdout: of the models that forecast this event, {best} scores best "
                        f"(Brier {ranked['brier'].iloc[0]:.4f}; next {ranked.index[1]}, "
                        f"{ranked['brier'].iloc[1]:.4f})"
                        + ("; it is also judged MISCALIBRATED above, so read its predictions "
                           "with care." if ranked["calibration"].iloc[0] == "MISCALIBRATED"
                           else ": prefer its predictions for this service."))
        calib = pd.concat(tables, names=["model", "row"]).reset_index(level=0)
        out.add_table("holdout_calibration", calib,
                      "Holdout calibration: predicted probability against the observed share "
                      "active, in bins of equal counts of the prediction; lower/upper bound the "
                      "share expected (95%) if the predictions were right, with the posterior "
                      "uncertainty of the predictions where the model gives draws (then also "
                      "p_value; a bin below 0.05 / bins is a miscalibration beyond that "
                      "uncertainty, warned as such)")
        out.add_figure("holdout_calibration", _holdout_figure(metrics, tables),
                       "Holdout calibration of the activity predictions", section="findings")
        truth = ctx.inputs.truth
        if truth is not None:
            out.note("Simulated data: the true BG/NBD population parameters by plan are "
                     + "; ".join(f"{plan}: " + ", ".join(f"{k}={v:.3g}" for k, v in row.items())
                                 for plan, row in truth.population.iterrows()) + ".")
        out.set_predictions(preds.reset_index())


ANALYSIS = Analysis(
    name="churn",
    description="Churn labels, BG/NBD, BG/BB, cohort (sBG), hazard, engagement-state and "
    "return-hazard models, checked on a holdout window; retention curves and per-user "
    "P(active) with intervals.",
    needs="events: user_id, timestamp (skipped, artist_id used when present); users table "
    "optional (plan segments, country/plan hazard groups).",
    run=run,
    models=("BetaGeoModel", "BetaGeoBetaBinomModel", "ShiftedBetaGeoModel", "ChurnHazardModel",
            "EngagementStateModel", "ReturnHazardModel"),
    min_users=10,
)
