r"""The fast engine: effects of every metric and variant from sufficient statistics.

:func:`analyze` reads a table of sums (one row per metric and variant; see its
documentation for the layout) and returns, for every metric and every variant
against the control, the posterior of the absolute and the relative effect,
the probability that the variant is better, the expected loss of shipping it and
of not shipping it, and the probability of practical equivalence. No per-user
data enters: hundreds of metrics x variants take milliseconds.

Two models, chosen per metric:

- **Beta-binomial** for binary metrics (without a usable pre-period covariate,
  or with ``cuped=False``): conjugate Beta posteriors of each arm's rate, and
  exact probabilities, expected losses and intervals by one-dimensional
  quadrature (no Monte Carlo).
- **Normal** for continuous and ratio metrics (and binary metrics with CUPED):
  each arm's ratio of sums is approximately normal with the delta-method
  variance; the relative lift by the delta method too. A flat prior by default
  (the posterior is the normal likelihood, and intervals match the usual
  z-intervals), or a normal prior on the lift (or on the absolute effect).
  CUPED (regression adjustment on the pre-period value of the metric, with one
  coefficient pooled across arms) shrinks the variance by about
  :math:`1 - \rho^2`. ``sequential=True`` replaces the intervals by an always-valid
  confidence sequence (:mod:`models.experiments.sequential`).

The two models on plain numbers (or arrays) are
:func:`~models.experiments.conjugate.beta_binomial` and
:func:`~models.experiments.conjugate.normal_effect`; they return the same columns.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import special

from models._validation import check_choice, check_positive_int
from models.experiments._checks import check_bool, check_prior, check_probability, check_rope
from models.experiments._stats import arm_moments, prepare_stats
from models.experiments.conjugate import beta_rows, normal_rows
from models.experiments.sequential import confidence_sequence

__all__ = ["EFFECT_COLUMNS", "analyze", "summarize_arms"]

#: Columns of the effect table returned by :func:`analyze`, in order.
EFFECT_COLUMNS = (
    "kind", "n_control", "n_treatment", "mean_control", "mean_treatment",
    "effect", "effect_sd", "effect_ci_lower", "effect_ci_upper",
    "lift", "lift_sd", "lift_ci_lower", "lift_ci_upper",
    "prob_better", "expected_loss_ship", "expected_loss_keep", "prob_rope",
    "variance_reduction", "theta", "method", "higher_is_better", "note",
)  # fmt: skip
_EFFECT_NUMBERS = EFFECT_COLUMNS[3:19]
BINARY_MODELS = ("beta-binomial", "normal")


# ------------------------------------------------------------------- the table API
def _metric_names(table) -> list[str]:
    """Return the ``metric`` level of every key (for ``rope`` mappings)."""
    if len(table.key_names) == 1:
        return [str(k) for k in table.keys]
    level = table.key_names.index("metric")
    return [str(k[level]) for k in table.keys]


def _index(table, keys: np.ndarray, rows: np.ndarray) -> pd.MultiIndex:
    """Index of the output rows: the input's levels, in its order."""
    if len(table.key_names) == 1:
        levels = {table.key_names[0]: np.asarray(table.keys)[keys]}
    else:
        levels = {name: table.keys.get_level_values(i)[keys]
                  for i, name in enumerate(table.key_names)}  # fmt: skip
    levels["variant"] = table.variant[rows]
    return pd.MultiIndex.from_arrays([levels[n] for n in table.level_names],
                                     names=list(table.level_names))  # fmt: skip


def analyze(
    stats: pd.DataFrame,
    *,
    control: str = "control",
    ci_prob: float = 0.95,
    cuped: bool = True,
    prior: Mapping[str, tuple[float, float]] | None = None,
    rope: float | Mapping[str, float] | None = None,
    sequential: bool = False,
    sequential_n: int | None = None,
    binary_model: str = "beta-binomial",
) -> pd.DataFrame:
    r"""Effects of every metric and variant against the control, from sufficient statistics.

    Parameters
    ----------
    stats : pandas.DataFrame
        The statistics table: one row per (metric, variant), indexed by
        ``("metric", "variant")`` (or with those two columns; more index levels,
        e.g. a segment, are analysed as separate metrics). Columns: ``kind``
        (``"continuous"``, ``"binary"`` or ``"ratio"``), optional
        ``higher_is_better`` (default True), ``n`` (users), and the sums of the
        per-user target :math:`y / d` and pre-period covariate :math:`x / w`:
        ``sum_y``, ``sum_yy`` always; ``sum_d``, ``sum_dd``, ``sum_yd`` for ratio
        metrics (means have :math:`d = 1`, which fills them in); ``sum_x``,
        ``sum_xx``, ``sum_yx`` (and ``sum_dx`` for ratios) for the covariate,
        none of them for no covariate; ``sum_w``, ``sum_ww``, ``sum_xw``,
        ``sum_yw``, ``sum_dw`` for a ratio covariate (else :math:`w = 1`). This is
        the table of :func:`~models.experiments.sufficient_statistics`; it can as
        well come from SQL.
    control : str, default "control"
        The variant every other one is compared with.
    ci_prob : float, default 0.95
        Probability of the equal-tailed intervals (and of the confidence sequence).
    cuped : bool, default True
        Adjust with the pre-period covariate where the table has a usable one.
    prior : mapping, optional
        ``{"beta": (a, b)}``: the Beta prior of binary rates (default (1, 1));
        ``{"lift": (mean, sd)}`` or ``{"effect": (mean, sd)}``: a normal prior on
        the relative or absolute effect for the normal model (default flat), e.g.
        a prior learned from past experiments. Keys combine.
    rope : float or mapping, optional
        Half-width of the region of practical equivalence **on the relative
        scale** (0.01: within 1% of the control), for every metric or as
        ``{metric: half-width}``; ``prob_rope`` is NaN where none is given.
    sequential : bool, default False
        Replace the intervals of the normal model by an always-valid confidence
        sequence (:func:`~models.experiments.sequential.confidence_sequence`),
        valid however often the experiment is looked at. Binary metrics use the
        normal model too. ``prob_better``, the expected losses and ``prob_rope``
        are NaN in this mode (a posterior probability has no such guarantee):
        act on the interval.
    sequential_n : int, optional
        Users (both arms) at which the sequence is tightest; required with
        ``sequential=True``. Set it to the planned sample size and keep it.
    binary_model : {"beta-binomial", "normal"}, default "beta-binomial"
        Model of binary metrics without CUPED; ``"normal"`` uses the normal model
        with variance :math:`p(1-p)/n`.

    Returns
    -------
    pandas.DataFrame
        One row per (metric, variant other than the control), indexed like
        ``stats``, with the columns of :data:`EFFECT_COLUMNS`: ``kind``,
        ``n_control``, ``n_treatment``, ``mean_control``, ``mean_treatment``
        (posterior means of the rates, or the ratio-of-sums estimates, CUPED
        adjusted), ``effect`` (absolute), ``effect_sd``, ``effect_ci_lower``,
        ``effect_ci_upper``, ``lift`` (relative to the control), ``lift_sd``,
        ``lift_ci_lower``, ``lift_ci_upper``, ``prob_better`` (P(treatment better),
        using ``higher_is_better``), ``expected_loss_ship`` and
        ``expected_loss_keep`` (expected loss, in the metric's units, of shipping
        and of not shipping), ``prob_rope``, ``variance_reduction``
        (:math:`1 - \mathrm{var}_{adj} / \mathrm{var}_{raw}` of the effect; 0
        without CUPED), ``theta`` (the CUPED coefficient; 0 without), ``method``
        (``"beta-binomial"``, ``"normal"``, ``"normal-cuped"``, ``"sequential"``),
        ``higher_is_better`` and ``note`` (why CUPED is off for a metric with a
        covariate, and other caveats). ``attrs``: ``ci_prob``, ``control``,
        ``sequential_n``.

    Raises
    ------
    ValueError
        For an invalid option (named with its value).
    models.exceptions.DataValidationError
        For a bad table, with every problem found: missing columns, NaN, fewer than
        2 users in an arm, the control or another variant missing for a metric,
        binary counts outside [0, n], a ratio whose denominator sums to 0,
        negative sums of squares, sums that do not belong together.

    See Also
    --------
    models.experiments.conjugate.beta_binomial : the Beta-binomial model on plain numbers.
    models.experiments.conjugate.normal_effect : the normal model on plain numbers.
    summarize_arms : each arm's own posterior.
    models.experiments.decision.decide : a ship / do not ship decision from this table.

    Notes
    -----
    Binary metrics without CUPED: :func:`~models.experiments.conjugate.beta_binomial`
    (exact quadrature). All
    others: each arm's ratio of sums :math:`\hat R = \sum y / \sum d` with the
    delta-method variance :math:`(s_{yy} - 2 \hat R s_{yd} + \hat R^2 s_{dd}) /
    (n \bar d^2)` (sample (co)variances, ``ddof=1``; ``ddof=0`` for binary
    metrics), then :func:`~models.experiments.conjugate.normal_effect`. With CUPED,
    one coefficient per metric pooled over the within-arm moments of all arms,
    :math:`\theta = \mathrm{Cov}(y^{lin}, x^{lin}) / \mathrm{Var}(x^{lin})` with the
    linearised :math:`y^{lin} = (y - \hat R d)/\bar d` and
    :math:`x^{lin} = (x - \hat R_x w)/\bar w` (for means this is ordinary CUPED),
    adjusts each arm to :math:`\hat R - \theta (\hat R_x - \hat R_x^{pooled})` with
    variance :math:`\mathrm{Var}(y^{lin} - \theta x^{lin}) / n`. A covariate that
    is constant (or zero: no pre-period) switches CUPED off for that metric, with a
    note. The sequential interval is
    :math:`\hat\Delta \pm se \sqrt{t} \sqrt{2 (t\rho^2 + 1)/(t^2\rho^2)
    \log(\sqrt{t\rho^2 + 1}/\alpha)}`, :math:`t = n_A + n_B`.

    References
    ----------
    Deng, A., Xu, Y., Kohavi, R. and Walker, T. (2013). Improving the sensitivity
    of online controlled experiments by utilizing pre-experiment data. *WSDM 2013*.

    Deng, A., Knoblich, U. and Lu, J. (2018). Applying the delta method in metric
    analytics: a practical guide with novel ideas. *KDD 2018*.

    Waudby-Smith, I., Arbour, D., Sinha, R., Kennedy, E. H. and Ramdas, A. (2024).
    Time-uniform central limit theory and asymptotic confidence sequences.
    *Annals of Statistics* 52(6).

    Examples
    --------
    Minutes listened (a mean, from totals of 10 users per arm) and retention (a
    rate), without a covariate:

    >>> import pandas as pd
    >>> stats = pd.DataFrame({
    ...     "metric": ["minutes", "minutes", "retained", "retained"],
    ...     "variant": ["control", "treatment"] * 2,
    ...     "kind": ["continuous", "continuous", "binary", "binary"],
    ...     "n": [10, 10, 1000, 1000],
    ...     "sum_y": [100.0, 105.0, 420.0, 455.0],
    ...     "sum_yy": [1002.25, 1111.5, 420.0, 455.0],
    ... }).set_index(["metric", "variant"])
    >>> effects = analyze(stats)
    >>> shown = ["lift", "lift_sd", "prob_better", "method"]
    >>> effects[shown].round(4)  # doctest: +NORMALIZE_WHITESPACE
                          lift  lift_sd  prob_better         method
    metric   variant
    minutes  treatment  0.0500   0.0357       0.9192         normal
    retained treatment  0.0846   0.0551       0.9426  beta-binomial
    """
    owner = "analyze"
    ci_prob = check_probability(owner, "ci_prob", ci_prob)
    beta_prior, normal_prior = check_prior(owner, prior)
    check_choice(owner, "binary_model", binary_model, BINARY_MODELS)
    check_bool(owner, "cuped", cuped)
    check_bool(owner, "sequential", sequential)
    if not isinstance(control, str):
        raise ValueError(
            f"The 'control' parameter of {owner} must be a variant name (str). "
            f"Got {control!r} instead."
        )
    if sequential:
        if sequential_n is None:
            raise ValueError(
                f"The 'sequential_n' parameter of {owner} must be a positive integer with "
                "sequential=True (the planned number of users, both arms). Got None instead."
            )
        check_positive_int(owner, "sequential_n", sequential_n)
        if normal_prior is not None:
            raise ValueError(
                f"The 'prior' parameter of {owner} cannot hold a normal prior on the effect "
                "with sequential=True: the confidence sequence is prior-free."
            )
    elif sequential_n is not None:
        raise ValueError(
            f"The 'sequential_n' parameter of {owner} is used only with sequential=True. "
            f"Got {sequential_n!r} with sequential=False instead."
        )
    table = prepare_stats(stats, control=control, owner=owner)
    mom = arm_moments(table, cuped=cuped)
    v = table.values

    # one comparison per (key, treatment), keys and variants in order of appearance
    is_ctrl = table.variant == control
    ctrl_row = np.zeros(len(table.keys), dtype=np.intp)
    ctrl_row[table.code[is_ctrl]] = np.flatnonzero(is_ctrl)
    position = {name: i for i, name in enumerate(table.variants)}
    t_rows = np.flatnonzero(~is_ctrl)
    t_rows = t_rows[np.lexsort(([position[x] for x in table.variant[t_rows]],
                                table.code[t_rows]))]  # fmt: skip
    keys = table.code[t_rows]
    c_rows = ctrl_row[keys]
    kind = table.kind[keys]
    direction = np.where(table.higher_is_better[keys], 1.0, -1.0)
    rope_arr = check_rope(owner, rope, _metric_names(table))[keys]
    cuped_on = mom.cuped[keys]
    use_beta = (kind == "binary") & ~cuped_on & (binary_model == "beta-binomial")
    use_beta &= not sequential
    normal = ~use_beta

    out = {name: np.full(keys.size, np.nan) for name in _EFFECT_NUMBERS}
    notes: list[list[str]] = [[] for _ in range(keys.size)]
    if normal.any():
        c, t = c_rows[normal], t_rows[normal]
        rows = normal_rows(mom.mean_adj[c], mom.var_adj[c], mom.mean_adj[t], mom.var_adj[t],
                            direction[normal], ci_prob, normal_prior, rope_arr[normal])  # fmt: skip
        if sequential:
            n_total = v["n"][c] + v["n"][t]
            for scale in ("effect", "lift"):
                rows[f"{scale}_ci_lower"], rows[f"{scale}_ci_upper"] = confidence_sequence(
                    rows[scale], rows[f"{scale}_sd"], n_total, sequential_n=sequential_n,
                    ci_prob=ci_prob,
                )
            for name in ("prob_better", "expected_loss_ship", "expected_loss_keep", "prob_rope"):
                rows[name] = np.full(c.size, np.nan)
        for name, values in rows.items():
            out[name][normal] = values
        var_raw = mom.var[c] + mom.var[t]
        with np.errstate(divide="ignore", invalid="ignore"):
            reduction = 1 - (mom.var_adj[c] + mom.var_adj[t]) / var_raw
        out["variance_reduction"][normal] = np.where(cuped_on[normal], reduction, 0.0)
        out["theta"][normal] = mom.theta[keys[normal]]
    if use_beta.any():
        c, t = c_rows[use_beta], t_rows[use_beta]
        rows = beta_rows(v["sum_y"][c], v["n"][c], v["sum_y"][t], v["n"][t],
                          direction[use_beta], ci_prob, beta_prior, rope_arr[use_beta])  # fmt: skip
        for name, values in rows.items():
            out[name][use_beta] = values
        out["variance_reduction"][use_beta] = 0.0
        out["theta"][use_beta] = 0.0

    method = np.where(use_beta, "beta-binomial", np.where(cuped_on, "normal-cuped", "normal"))
    if sequential:
        method[:] = "sequential"
    if cuped:
        for i, note in enumerate(mom.cuped_note[keys]):
            if note:
                notes[i].append(note)
    for i in np.flatnonzero(normal & (out["mean_control"] == 0)):
        notes[i].append("control mean is 0: the lift is undefined; P(better) on the absolute "
                        "scale")  # fmt: skip
    for i in np.flatnonzero(normal & (out["effect_sd"] == 0)):
        notes[i].append("no variance in either arm")
    for i in np.flatnonzero(use_beta & np.isnan(out["lift"])):
        notes[i].append("too few control successes for a finite posterior mean of the lift; "
                        "see its interval")  # fmt: skip
    if sequential:
        for note in notes:
            note.append("sequential: always-valid intervals; P(better), expected losses and "
                        "prob_rope are not reported")  # fmt: skip
    columns = {
        "kind": kind,
        "n_control": v["n"][c_rows].astype(np.int64),
        "n_treatment": v["n"][t_rows].astype(np.int64),
        **{name: out[name] for name in _EFFECT_NUMBERS},
        "method": method,
        "higher_is_better": table.higher_is_better[keys],
        "note": np.array(["; ".join(n) for n in notes], dtype=object),
    }
    frame = pd.DataFrame(columns, index=_index(table, keys, t_rows))[list(EFFECT_COLUMNS)]
    frame.attrs.update(stats.attrs)  # window_days, pre_days of sufficient_statistics
    frame.attrs.update(ci_prob=ci_prob, control=control, sequential_n=sequential_n)
    return frame


def summarize_arms(
    stats: pd.DataFrame,
    *,
    control: str = "control",
    ci_prob: float = 0.95,
    cuped: bool = True,
    prior: Mapping[str, tuple[float, float]] | None = None,
    binary_model: str = "beta-binomial",
) -> pd.DataFrame:
    r"""Each arm's own posterior: the mean of every metric in every variant.

    Parameters
    ----------
    stats : pandas.DataFrame
        The statistics table of :func:`analyze`.
    control : str, default "control"
        The control variant (the table must hold it).
    ci_prob : float, default 0.95
        Probability of the equal-tailed intervals.
    cuped : bool, default True
        Report CUPED-adjusted means where :func:`analyze` would adjust them.
    prior : mapping, optional
        ``{"beta": (a, b)}``, the Beta prior of binary rates (default (1, 1)).
    binary_model : {"beta-binomial", "normal"}, default "beta-binomial"
        As in :func:`analyze`.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``stats``: ``kind``, ``n``, ``mean``, ``sd``, ``ci_lower``,
        ``ci_upper``, ``method``; ``attrs["ci_prob"]``.

    Raises
    ------
    ValueError, models.exceptions.DataValidationError
        As :func:`analyze`.

    Notes
    -----
    A binary arm analysed by the Beta-binomial model has the posterior
    :math:`\mathrm{Beta}(a + s, b + n - s)`; any other arm the normal
    :math:`N(\hat R, \widehat{\mathrm{Var}}(\hat R))` of :func:`analyze`.

    Examples
    --------
    >>> import pandas as pd
    >>> stats = pd.DataFrame({
    ...     "metric": ["retained", "retained"], "variant": ["control", "treatment"],
    ...     "kind": "binary", "n": [104, 1009], "sum_y": [42, 500], "sum_yy": [42, 500],
    ... })
    >>> arms = summarize_arms(stats, prior={"beta": (0.5, 0.5)})
    >>> arms[["mean", "ci_lower", "ci_upper"]].round(5)  # doctest: +NORMALIZE_WHITESPACE
                           mean  ci_lower  ci_upper
    metric   variant
    retained control    0.40476   0.31324   0.49972
             treatment  0.49554   0.46474   0.52637
    """
    owner = "summarize_arms"
    ci_prob = check_probability(owner, "ci_prob", ci_prob)
    (a0, b0), normal_prior = check_prior(owner, prior)
    if normal_prior is not None:
        raise ValueError(
            f"The 'prior' parameter of {owner} takes only a 'beta' prior (a prior on the "
            "effect does not apply to one arm)."
        )
    check_choice(owner, "binary_model", binary_model, BINARY_MODELS)
    check_bool(owner, "cuped", cuped)
    table = prepare_stats(stats, control=control, owner=owner)
    mom = arm_moments(table, cuped=cuped)
    v = table.values
    kind = table.kind[table.code]
    cuped_on = mom.cuped[table.code]
    use_beta = (kind == "binary") & ~cuped_on & (binary_model == "beta-binomial")
    z = special.ndtri((1 + ci_prob) / 2)
    sd = np.sqrt(mom.var_adj)
    mean = mom.mean_adj.copy()
    lower, upper = mean - z * sd, mean + z * sd
    a, b = a0 + v["sum_y"][use_beta], b0 + v["n"][use_beta] - v["sum_y"][use_beta]
    mean[use_beta] = a / (a + b)
    sd[use_beta] = np.sqrt(mean[use_beta] * (1 - mean[use_beta]) / (a + b + 1))
    lower[use_beta] = special.betaincinv(a, b, (1 - ci_prob) / 2)
    upper[use_beta] = special.betaincinv(a, b, (1 + ci_prob) / 2)
    method = np.where(use_beta, "beta-binomial", np.where(cuped_on, "normal-cuped", "normal"))
    rows = np.arange(table.code.size)
    frame = pd.DataFrame(
        {"kind": kind, "n": v["n"].astype(np.int64), "mean": mean, "sd": sd,
         "ci_lower": lower, "ci_upper": upper, "method": method},
        index=_index(table, table.code, rows),
    )  # fmt: skip
    frame.attrs["ci_prob"] = ci_prob
    return frame
