"""The ``experiment`` analysis: did a change make people listen more, skip less, stay longer.

Steps: the checks that come before any effect is read (sample-ratio mismatch,
events between the experiment's start and a user's assignment, pre-period balance);
per-user metrics over each user's exposure window and a pre-period; the conjugate
engine with the pre-period covariate (CUPED) on the per-variant sufficient
statistics; the decision over success and guardrail metrics; the hierarchical
model of the effect across segments; and two routes to the long-term effect: a
surrogate index learned on an earlier cohort of the same log, and the BG/NBD churn
model fitted per arm on the experiment window and projected forward. On the
built-in simulated experiment every estimate is set beside the truth, known
exactly from the simulation's potential outcomes.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from models.analysis.context import Analysis, AnalysisContext, Inputs
from models.analysis.report import plot_trace_rank

__all__ = ["ANALYSIS", "load_experiment_inputs"]

_DAY = pd.Timedelta(days=1)


def load_experiment_inputs(events: str | Path | None, users: str | Path | None,
                           assignments: str | Path | None, config: dict[str, Any],
                           seed: int) -> Inputs:
    """Load a log and its assignment table, or simulate an experiment from the config.

    Without ``events`` a service with an experiment is simulated
    (:func:`models.experiments.simulate_experiment`) with the enrolment and the true
    effects of ``[experiment.simulation]``; the log the analysis sees ends
    ``window_days`` after the enrolment week (the experiment as it stands when it is
    read), while the truth (``Inputs.truth``, the whole simulation) runs to the end.

    Raises
    ------
    FileNotFoundError
        If a path does not exist, or ``events`` is given without ``assignments``.
    models.exceptions.DataValidationError
        If the log or the assignment table breaks a rule.
    """
    from models.analysis.outputs import hash_data
    from models.analysis.runner import csv_options, load_inputs
    from models.data import NetworkOptions
    from models.experiments import Effect, simulate_experiment, validate_assignments

    cfg = config["experiment"]
    if events is None:
        if assignments is not None:
            raise FileNotFoundError("An assignment table was given without --events; pass "
                                    "the log it belongs to as well.")
        d, sim = config["data"], cfg["simulation"]
        effect = Effect(session_rate=sim["session_rate"], plays=sim["plays"],
                        skip_logodds=sim["skip_logodds"], dropout=sim["dropout"],
                        delayed_dropout=sim["delayed_dropout"],
                        delay_days=sim["delay_days"] or None)
        full = simulate_experiment(
            d["n_users"], d["days"], enroll_start=sim["enroll_start"],
            enroll_days=sim["enroll_days"], network=NetworkOptions(n_artists=d["n_artists"]),
            random_seed=seed,
            variants={cfg["control"]: Effect(), "treatment": effect})
        end = full.truth.enroll_end + cfg["window_days"] * _DAY
        seen = full.observed_until(end)
        record = {"simulated": {"n_users": d["n_users"], "days": d["days"],
                                "n_artists": d["n_artists"], "random_seed": seed,
                                "experiment": dict(sim)},
                  "events_sha256": hash_data(seen.events),
                  "assignments_sha256": hash_data(seen.assignments)}
        text = (f"Built-in simulated experiment: {d['n_users']:,} users, "
                f"{len(seen.assignments):,} assigned in the enrolment week from day "
                f"{sim['enroll_start']} (seed {seed}); the log is read "
                f"{cfg['window_days']} days after enrolment ends ({len(seen.events):,} "
                f"plays); the truth, simulated to day {d['days']}, is known.")
        return Inputs(seen.events, seen.users, end, text, record, full, seen.assignments)
    if assignments is None:
        raise FileNotFoundError("The experiment analysis of your own log needs its assignment "
                                "table: pass --assignments TABLE (user_id, variant, "
                                "assigned_at).")
    inputs = load_inputs(events, users, config, seed)
    table = _read_table(Path(assignments), csv_options(assignments, config))
    table = validate_assignments(table, control=cfg["control"],
                                 observation_end=inputs.observation_end)
    from models.analysis.report import file_sha256

    inputs.record["assignments"] = file_sha256(assignments)
    inputs.description += f" Assignment table {assignments} ({len(table):,} users)."
    inputs.assignments = table
    return inputs


def _read_table(path: Path, options: dict[str, Any]) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"No assignment table at {str(path)!r}.")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype={"user_id": str, "variant": str}, **options)
    raise ValueError(f"The assignment table {str(path)!r} must be a .csv or .parquet file.")


def _complete_windows(table: pd.DataFrame, end: pd.Timestamp, window_days: int,
                      out: Any) -> pd.DataFrame:
    """Keep the assignments whose exposure window was observed in full (a note otherwise)."""
    done = table["assigned_at"] + window_days * _DAY <= end
    if not done.all():
        late = table.loc[~done, "assigned_at"]
        out.note(f"{int((~done).sum()):,} users assigned after {end - window_days * _DAY} "
                 f"(up to {late.max()}) have not completed their {window_days}-day window "
                 "by the end of the log; they are left out of every estimate.")
    if not done.any():
        raise ValueError(f"No user has completed a {window_days}-day exposure window by the "
                         f"end of the log ({end}); wait, or shorten experiment.window_days.")
    return table.loc[done].reset_index(drop=True)


def _segment_figure(effects: pd.DataFrame, metric: str, ci_prob: float) -> Figure:
    fig = Figure(figsize=(7.5, 0.4 * len(effects) + 1.4))
    ax = fig.subplots()
    labels = [" / ".join(map(str, k)) if isinstance(k, tuple) else str(k)
              for k in effects.index]
    y = np.arange(len(effects))[::-1]
    mean = effects["mean"].to_numpy() * 100
    lo, hi = effects["ci_lower"].to_numpy() * 100, effects["ci_upper"].to_numpy() * 100
    ax.errorbar(mean, y, xerr=[mean - lo, hi - mean], fmt="o", capsize=3, label="partial pooling")
    if "raw_effect" in effects and "mean_control" in effects:
        raw = effects["raw_effect"] / effects["mean_control"] * 100
        ax.plot(raw, y + 0.15, "s", color="0.6", ms=4, label="segment on its own")
    ax.axvline(0.0, color="0.5", lw=0.8, ls="--")
    ax.set_yticks(y, labels)
    ax.set_xlabel(f"relative lift of {metric} (%), {ci_prob:.0%} interval")
    ax.legend(fontsize=8)
    return fig


def run(ctx: AnalysisContext) -> None:  # noqa: C901 - one step after another
    """Run the experiment analysis on ``ctx`` (see the module docstring)."""
    from models.churn import BetaGeoModel
    from models.exceptions import DataQualityWarning, DataValidationError
    from models.experiments import (
        DEFAULT_METRICS,
        DEFAULT_SURROGATES,
        SegmentEffectModel,
        SurrogateIndexModel,
        analyze,
        check_experiment,
        compute_user_metrics,
        decide,
        exposure_activity,
        long_term_outcome,
        plot_effects,
        plot_projection,
        project_arms,
        projection_curve,
        reference_cohort,
        sample_average_effects,
        sufficient_statistics,
    )

    cfg, out, seed = ctx.config["experiment"], ctx.out, ctx.seed
    events, end = ctx.inputs.events, ctx.inputs.observation_end
    control, window, ci = cfg["control"], cfg["window_days"], cfg["ci_prob"]
    horizon, max_draws = cfg["horizon"], cfg["max_draws"]
    simulated = ctx.inputs.truth if hasattr(ctx.inputs.truth, "potential_assignments") else None
    priors = ctx.config.get("priors", {})

    with out.step("checks before any effect is read"):
        table = _complete_windows(ctx.inputs.assignments, end, window, out)
        checks = check_experiment(events, table, control=control, pre_days=cfg["pre_days"] or 14,
                                  threshold=cfg["srm_threshold"])
        out.add_table("checks", checks.table, "Checks before any effect is read: sample-ratio "
                      "mismatch, events between the experiment's start and a user's "
                      "assignment, pre-period balance", section="checks")
        if not checks.ok:
            for message in checks.messages:
                out.finding(f"CHECK FAILED: {message}")

    with out.step("per-user metrics"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataQualityWarning)
        metrics = compute_user_metrics(events, table, DEFAULT_METRICS, window_days=window,
                                       pre_days=cfg["pre_days"] or None, observation_end=end,
                                       unassigned="drop", control=control)
        for rec in caught:
            if issubclass(rec.category, DataQualityWarning):
                out.note(str(rec.message))
            else:
                warnings.warn_explicit(rec.message, rec.category, rec.filename, rec.lineno)
        frame = metrics.frame

    truth = None
    if simulated is not None:
        with out.step("true effects of the simulated experiment"):
            outcomes = [long_term_outcome(window, h, name=f"long_term_{h}")
                        for h in range(7, horizon + 1, 7)]
            if horizon % 7:
                outcomes.append(long_term_outcome(window, horizon, name=f"long_term_{horizon}"))
            truth = sample_average_effects(simulated, [*DEFAULT_METRICS, *outcomes],
                                           window_days=window)

    with out.step("effects (conjugate engine on sufficient statistics)"):
        stats = sufficient_statistics(metrics)
        effects = analyze(stats, control=control, ci_prob=ci, cuped=cfg["cuped"])
        out.set_predictions(effects.reset_index())

    with out.step("decision"):
        if len(cfg["guardrails"]) != len(cfg["guardrail_margins"]):
            raise ValueError("experiment.guardrails and experiment.guardrail_margins must have "
                             f"the same length. Got {cfg['guardrails']!r} and "
                             f"{cfg['guardrail_margins']!r}.")
        margins = dict(zip(cfg["guardrails"], cfg["guardrail_margins"], strict=True))
        decision = decide(effects, success=cfg["success"], guardrails=margins,
                          threshold=cfg["threshold"], checks=checks)
        out.finding(f"Decision: {decision.verdict.upper()}"
                    + (f" {decision.variant!r}" if decision.variant else "") + ". "
                    + " ".join(decision.reasons))
        out.add_table("decision", decision.table,
                      "The decision rule, metric by metric: success metrics must be credibly "
                      "better, guardrails credibly not worse than their margin",
                      section="findings")
        lift_truth = truth["lift"] if truth is not None else None
        ax = plot_effects(effects, status=decision.table["status"], truth=lift_truth)
        ax.set_title(f"Effects with {ci:.0%} intervals"
                     + (" (crosses: the truth)" if truth is not None else ""))
        out.add_figure("effects", ax.figure, "Forest plot: relative lift of every metric "
                       "(colour: status in the decision)", section="findings")
        shown = ["kind", "n_control", "n_treatment", "mean_control", "mean_treatment", "lift",
                 "lift_ci_lower", "lift_ci_upper", "effect", "effect_ci_lower",
                 "effect_ci_upper", "prob_better", "variance_reduction", "method"]
        out.add_table("effects", effects[shown],
                      f"Effect of each variant on each metric ({ci:.0%} intervals; lift is "
                      "relative to the control; variance_reduction is what the pre-period "
                      "covariate removed)", section="findings")

    segment = cfg["segment"]
    if segment and segment in frame.columns and frame[segment].nunique() > 1:
        with out.step(f"effects by {segment} (hierarchical model)"):
            model = SegmentEffectModel(metric=cfg["segment_metric"], segment=segment,
                                       likelihood="negative_binomial", control=control,
                                       priors=priors.get("SegmentEffectModel"))
            data = frame[["variant", segment, cfg["segment_metric"]]].copy()
            data[segment] = data[segment].astype(str)
            fitted = out.fit("segments", model, data,
                             description=f"effect on {cfg['segment_metric']} by {segment}, "
                             "partially pooled", **ctx.sampler_kwargs(1))
            by_segment = fitted.segment_effects(ci_prob=ci)
            out.add_table("segment_effects", by_segment,
                          f"Relative lift of {cfg['segment_metric']} in each {segment} "
                          "(partial pooling; raw_effect is the segment on its own)")
            out.add_figure("segment_effects", _segment_figure(by_segment,
                                                              cfg["segment_metric"], ci),
                           f"Effect on {cfg['segment_metric']} by {segment}")
            out.add_figure("trace_segments", plot_trace_rank(fitted),
                           "Segment model: trace and rank plots")
    elif segment:
        raise ValueError(f"The segment column {segment!r} of experiment.segment is not in the "
                         f"assignment table (columns: {sorted(frame.columns)}) or has a single "
                         "value; set experiment.segment = \"\" to skip the segment model.")

    long_rows = []
    outcome = long_term_outcome(window, horizon)
    if cfg["fit_surrogate"]:
        with out.step("long-term effect: surrogate index"):
            start = events["timestamp"].min().normalize() + cfg["reference_start_day"] * _DAY
            try:
                reference = reference_cohort(
                    events, start=start, enroll_days=cfg["reference_enroll_days"],
                    window_days=window, horizon=horizon, outcome=outcome)
            except DataValidationError as err:
                reference = None
                out.note("No surrogate index: the log holds no reference cohort with a "
                         f"{horizon}-day outcome from day {cfg['reference_start_day']} "
                         f"({str(err).splitlines()[-1].strip()}).")
            if reference is not None:
                names = [m.name for m in DEFAULT_SURROGATES]
                model = SurrogateIndexModel(surrogates=names, outcome=outcome.name,
                                            likelihood="negative_binomial",
                                            priors=priors.get("SurrogateIndexModel"))
                fitted = out.fit("surrogate_index", model, reference[[*names, outcome.name]],
                                 description=f"active days in days {window}-"
                                 f"{window + horizon - 1} given the first two weeks, on "
                                 f"{len(reference):,} users of an earlier cohort",
                                 **ctx.sampler_kwargs(2))
                assigned = events[events["user_id"].isin(table["user_id"])]
                experiment = compute_user_metrics(assigned, table, DEFAULT_SURROGATES,
                                                  window_days=window, pre_days=None,
                                                  observation_end=end, control=control).frame
                estimate = fitted.estimate_effect(experiment, treatment="variant",
                                                  control=control, ci_prob=ci,
                                                  max_draws=max_draws, random_seed=seed)
                for variant, row in estimate.iterrows():
                    long_rows.append({"route": "surrogate index", "variant": variant,
                                      **row[["mean_control", "mean_treatment", "effect",
                                             "effect_sd", "effect_ci_lower",
                                             "effect_ci_upper", "lift", "prob_better",
                                             "share_parameter_variance",
                                             "share_sampling_variance"]].to_dict()})
                out.add_figure("trace_surrogate", plot_trace_rank(fitted),
                               "Surrogate index: trace and rank plots")

    if cfg["fit_projection"]:
        with out.step("long-term effect: churn model per arm"):
            activity = exposure_activity(events, table, window_days=window)
            model = BetaGeoModel(segment="variant", hierarchical=False,
                                 priors=priors.get("BetaGeoModel"))
            bg = out.fit("projection", model, activity,
                         description="BG/NBD of active days after assignment, one set of "
                         "parameters per arm", **ctx.sampler_kwargs(3))
            projection = project_arms(bg, window_days=window, horizon=horizon,
                                      control=control, ci_prob=ci, max_draws=max_draws,
                                      random_seed=seed)
            for (quantity, variant), row in projection.effects.iterrows():
                if quantity == "active_days":
                    long_rows.append({"route": "churn-model projection", "variant": variant,
                                      **row[["mean_control", "mean_treatment", "effect",
                                             "effect_sd", "effect_ci_lower",
                                             "effect_ci_upper", "lift",
                                             "prob_better"]].to_dict()})
            out.add_table("projection_arms", projection.arms,
                          f"Churn-model projection of each arm: active days in the {horizon} "
                          "days after the window and the share still active at its end")
            curve = projection_curve(bg, window_days=window,
                                     horizons=np.arange(7, horizon + 1, 7), control=control,
                                     ci_prob=ci, max_draws=max_draws, random_seed=seed)
            curve_truth = None
            if truth is not None:
                values = {int(m.split("_")[-1]): v for (m, _), v in truth["effect"].items()
                          if m.startswith("long_term_")}
                curve_truth = pd.Series(values).sort_index()
            ax = plot_projection(curve, truth=curve_truth)
            ax.set_title(f"Projected long-term effect with its {ci:.0%} band")
            out.add_figure("long_term_projection", ax.figure,
                           "Long-term projection: difference in cumulative active days after "
                           "the window, churn model per arm", section="findings")
            out.add_figure("trace_projection", plot_trace_rank(bg),
                           "Churn model per arm: trace and rank plots")

    if long_rows:
        with out.step("long-term summary"):
            long_term = pd.DataFrame(long_rows).set_index(["route", "variant"])
            if truth is not None:
                true_long = truth.xs(f"long_term_{horizon}", level="metric")
                variants = long_term.index.get_level_values("variant")
                for column in ("mean_control", "mean_treatment"):
                    long_term[f"true_{column}"] = true_long[column].reindex(variants).to_numpy()
                long_term["truth"] = true_long["effect"].reindex(variants).to_numpy()
                long_term["covered"] = ((long_term["effect_ci_lower"] <= long_term["truth"])
                                        & (long_term["truth"] <= long_term["effect_ci_upper"]))
            out.add_table("long_term", long_term,
                          f"Long-term effect on active days in days {window}-"
                          f"{window + horizon - 1} after assignment, by route ({ci:.0%} "
                          "intervals). Surrogate index: assumes the treatment acts on the "
                          "outcome only through the first two weeks. Churn model: assumes each "
                          "arm's activity and dropout rates stay as measured.",
                          section="findings")
            for (route, variant), row in long_term.iterrows():
                out.finding(f"Long-term ({route}, {variant}): {row['effect']:+.2f} active days "
                            f"over days {window}-{window + horizon - 1} "
                            f"[{row['effect_ci_lower']:+.2f}, {row['effect_ci_upper']:+.2f}]"
                            + (f"; truth {row['truth']:+.2f}" if "truth" in row else "") + ".")

    if truth is not None:
        with out.step("estimates against the truth"):
            short = truth.loc[[m.name for m in DEFAULT_METRICS]]
            both = effects.join(short[["effect", "lift"]].add_prefix("true_"), how="inner")
            compare = pd.DataFrame({
                "lift": both["lift"], "lift_ci_lower": both["lift_ci_lower"],
                "lift_ci_upper": both["lift_ci_upper"], "true_lift": both["true_lift"],
                "covered": (both["lift_ci_lower"] <= both["true_lift"])
                & (both["true_lift"] <= both["lift_ci_upper"])})
            out.add_table("truth", compare, "Simulated experiment: each estimated lift against "
                          "the true sample average effect (known from the potential outcomes)")
            out.finding(f"Against the simulation's truth: {int(compare['covered'].sum())} of "
                        f"{len(compare)} short-term intervals cover the true lift.")


ANALYSIS = Analysis(
    name="experiment",
    description="An A/B test from the log and its assignment table: checks, per-user metrics, "
    "effects with CUPED, the decision, effects by segment, and the long-term effect by a "
    "surrogate index and by the churn model.",
    needs="events: user_id, timestamp, ms_played, skipped, artist_id; an assignment table "
    "(user_id, variant, assigned_at; optional segment columns) with --assignments.",
    run=run,
    models=("SegmentEffectModel", "SurrogateIndexModel", "BetaGeoModel"),
    min_users=20,
    load=load_experiment_inputs,
)
