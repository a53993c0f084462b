r"""Validation of a sufficient-statistics table and the per-arm normal moments.

The table (see :func:`models.experiments.engine.analyze`) has one row per
(metric, variant), with ``n`` users and the sums of the target ``y / d`` and of
the pre-period covariate ``x / w``. This module checks it and turns each row
into the arm's estimate of the ratio of means and the variance of that estimate
by the delta method (Deng, Knoblich & Lu 2018), optionally adjusted with the
covariate (CUPED, Deng et al. 2013):

.. math::

    \hat R = \frac{\sum y}{\sum d}, \qquad
    y^{lin}_i = \frac{y_i - \hat R d_i}{\bar d}, \qquad
    \widehat{\mathrm{Var}}(\hat R) = \frac{s^2(y^{lin})}{n}
    = \frac{s_{yy} - 2 \hat R s_{yd} + \hat R^2 s_{dd}}{n \bar d^2},

with sample (co)variances (``ddof=1``; ``ddof=0`` for binary metrics, which
gives :math:`p(1-p)/n`). With the covariate's linearisation :math:`x^{lin}` (the
same with ``x``, ``w``), :math:`\theta` is pooled across the arms of a metric,

.. math::

    \theta = \frac{\sum_k \sum_{i \in k} y^{lin}_i x^{lin}_i}
                  {\sum_k \sum_{i \in k} (x^{lin}_i)^2}, \qquad
    \hat R^{adj}_k = \hat R_k - \theta (\hat R^x_k - \hat R^x), \qquad
    \widehat{\mathrm{Var}}(\hat R^{adj}_k) = \frac{s^2_k(y^{lin} - \theta x^{lin})}{n_k},

where :math:`\hat R^x` is the covariate ratio of all arms together. The sums
are all the table needs: :math:`\sum_i (y_i - R d_i)(x_i - R_x w_i) = S_{yx} -
R_x S_{yw} - R S_{dx} + R R_x S_{dw}`, and so on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models._validation import TABLE, row_problem
from models.exceptions import DataValidationError, Problem

__all__ = ["KINDS", "STAT_COLUMNS", "ArmMoments", "StatsTable", "arm_moments", "prepare_stats"]

KINDS = ("continuous", "binary", "ratio")
METRIC, VARIANT = "metric", "variant"
SUMS = ("sum_y", "sum_d", "sum_x", "sum_w")
PRODUCTS = (
    "sum_yy", "sum_dd", "sum_xx", "sum_ww", "sum_yd", "sum_yx",
    "sum_yw", "sum_dx", "sum_dw", "sum_xw",
)  # fmt: skip
#: The numeric columns of the table, in the order of the contract.
STAT_COLUMNS = ("n", *SUMS, *PRODUCTS)
REQUIRED = ("kind", "n", "sum_y", "sum_yy")
#: Needed for ratio metrics; for means ``d = 1`` fills them in.
DENOMINATOR = ("sum_d", "sum_dd", "sum_yd")
#: The covariate; without any of them there is none (``x = 0``).
COVARIATE = ("sum_x", "sum_xx", "sum_yx")
#: The covariate's denominator; without any of them ``w = 1``.
COVARIATE_DENOMINATOR = ("sum_w", "sum_ww", "sum_xw", "sum_yw", "sum_dw")
_REL_TOL = 1e-9


@dataclass(frozen=True)
class StatsTable:
    """A validated statistics table as arrays, one entry per (key, variant) row.

    ``key`` is every index level but ``variant`` (the metric, and segments if
    the table has them); ``code`` numbers the keys in order of appearance.
    """

    key_names: tuple[str, ...]
    level_names: tuple[str, ...]  # the index levels of the input, variant included
    keys: pd.MultiIndex | pd.Index  # one entry per key, in order
    code: np.ndarray  # (rows,) key of each row
    variant: np.ndarray  # (rows,) variant of each row, as str
    variants: tuple[str, ...]  # in order of appearance
    kind: np.ndarray  # (keys,)
    higher_is_better: np.ndarray  # (keys,) bool
    values: dict[str, np.ndarray]  # STAT_COLUMNS -> (rows,) float
    has_covariate: bool

    def key_label(self, k: int) -> str:
        key = self.keys[k]
        return key if isinstance(key, str) else "/".join(map(str, np.atleast_1d(key)))


def _label(frame: pd.DataFrame, key_names: tuple[str, ...]) -> pd.Series:
    """Name of each row's metric: the metric, or the whole key joined by '/'."""
    if len(key_names) == 1:
        return frame[key_names[0]]
    parts = [frame[k].astype(str) for k in key_names]
    return parts[0].str.cat(parts[1:], sep="/")


def prepare_stats(stats: Any, *, control: str, owner: str) -> StatsTable:
    """Check the table and return it as arrays; every problem found is reported at once.

    Raises
    ------
    TypeError
        If ``stats`` is not a DataFrame.
    models.exceptions.DataValidationError
        For every broken rule, naming the column, the (metric, variant) rows and a fix.
    """
    if not isinstance(stats, pd.DataFrame):
        raise TypeError(
            f"The 'stats' parameter of {owner} must be a pandas DataFrame. "
            f"Got {type(stats).__name__} instead."
        )
    what = "statistics table"
    frame = stats.copy()
    if METRIC in frame.columns and VARIANT in frame.columns:
        frame = frame.reset_index(drop=frame.index.names == [None]).set_index([METRIC, VARIANT])
    names = [n for n in frame.index.names if n is not None]
    if METRIC not in names or VARIANT not in names:
        raise DataValidationError(
            [Problem(TABLE, "an index (or columns) named 'metric' and 'variant'",
                     fix="build the table with sufficient_statistics or set_index"
                         "(['metric', 'variant'])")],
            what=what,
        )  # fmt: skip
    level_names = tuple(frame.index.names)
    key_names = tuple(n for n in level_names if n != VARIANT)
    frame = frame.reset_index()
    frame[VARIANT] = frame[VARIANT].astype(str)

    def _examples(frame: pd.DataFrame, column: str | None = None) -> pd.DataFrame:
        shown = pd.DataFrame({METRIC: _label(frame, key_names), VARIANT: frame[VARIANT]})
        if column:
            shown[column] = frame[column]
        return shown

    problems: list[Problem] = []
    missing = [c for c in REQUIRED if c not in frame.columns]
    kinds = frame["kind"].astype(str) if "kind" in frame.columns else None
    is_ratio = (kinds == "ratio").to_numpy() if kinds is not None else np.zeros(len(frame), bool)
    if is_ratio.any():
        missing += [c for c in DENOMINATOR if c not in frame.columns]
    cov_present = [c for c in COVARIATE if c in frame.columns]
    has_covariate = bool(cov_present)
    if has_covariate:
        missing += [c for c in COVARIATE if c not in frame.columns]
        if is_ratio.any() and "sum_dx" not in frame.columns:
            missing.append("sum_dx")
        w_present = [c for c in COVARIATE_DENOMINATOR if c in frame.columns]
        if w_present:
            missing += [c for c in COVARIATE_DENOMINATOR if c not in frame.columns]
    if missing:
        problems.append(Problem(
            TABLE, f"the columns {sorted(set(missing))}", fix="add them: see the table "
            "layout in the documentation of models.experiments.analyze"))  # fmt: skip
        raise DataValidationError(problems, what=what)

    # ---- fill in what means (d = 1) and an absent covariate (x = 0, w = 1) imply
    n = pd.to_numeric(frame["n"], errors="coerce").to_numpy(dtype=float)
    values: dict[str, np.ndarray] = {}
    for col in STAT_COLUMNS:
        if col in frame.columns:
            values[col] = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
    v = values
    v.setdefault("sum_d", n.copy())
    v.setdefault("sum_dd", n.copy())
    v.setdefault("sum_yd", v["sum_y"].copy())
    for col in ("sum_x", "sum_xx", "sum_yx"):
        v.setdefault(col, np.zeros_like(n))
    v.setdefault("sum_dx", v["sum_x"].copy())
    v.setdefault("sum_w", n.copy())
    v.setdefault("sum_ww", n.copy())
    v.setdefault("sum_xw", v["sum_x"].copy())
    v.setdefault("sum_yw", v["sum_y"].copy())
    v.setdefault("sum_dw", v["sum_d"].copy())

    # ---- row rules
    for col in STAT_COLUMNS:
        if col in frame.columns:
            bad = ~np.isfinite(v[col])
            if bad.any():
                problems.append(row_problem(
                    col, "finite numbers (no NaN, no infinity)", bad, _examples(frame, col),
                    fix="fill or drop the metric; NaN per-user values must be handled "
                        "before summing"))  # fmt: skip
    finite = np.ones(len(frame), bool)
    for col in STAT_COLUMNS:
        finite &= np.isfinite(v[col])
    bad = finite & ((n < 2) | (n != np.round(n)))
    if bad.any():
        problems.append(row_problem(
            "n", "an integer of at least 2 users in every arm", bad, _examples(frame, "n"),
            fix="drop the metric or wait for more users"))  # fmt: skip
    bad_kind = ~kinds.isin(KINDS).to_numpy()
    if bad_kind.any():
        problems.append(row_problem(
            "kind", f"one of {list(KINDS)}", bad_kind, _examples(frame, "kind")))
    for col in [c for c in ("sum_yy", "sum_dd", "sum_xx", "sum_ww") if c in frame.columns]:
        bad = finite & (v[col] < 0)
        if bad.any():
            problems.append(row_problem(
                col, "a non-negative sum of squares", bad, _examples(frame, col)))
    # a sum of squares below sum^2 / n is a negative variance: the sums do not match
    for sq, s in (("sum_yy", "sum_y"), ("sum_xx", "sum_x")):
        gap = v[sq] - v[s] ** 2 / np.maximum(n, 1)
        bad = finite & (n >= 1) & (v[sq] >= 0)
        bad &= gap < -_REL_TOL * np.maximum(np.abs(v[sq]), 1.0)
        if bad.any():
            problems.append(row_problem(
                sq, f"at least {s}**2 / n (a sum of squares of the same values)", bad,
                _examples(frame, sq), fix=f"{sq} must be the sum of the squared values"))
    binary = (kinds == "binary").to_numpy()
    bad = finite & binary & ((v["sum_y"] < 0) | (v["sum_y"] > n))
    if bad.any():
        problems.append(row_problem(
            "sum_y", "a count between 0 and n for a binary metric", bad,
            _examples(frame, "sum_y")))
    bad = finite & binary & (np.abs(v["sum_yy"] - v["sum_y"]) > _REL_TOL * np.maximum(n, 1))
    if bad.any():
        problems.append(row_problem(
            "sum_yy", "equal to sum_y for a binary metric (values 0 or 1)", bad,
            _examples(frame, "sum_yy"), fix="declare the metric 'continuous'"))
    bad = finite & is_ratio & ~(v["sum_d"] > 0)
    if bad.any():
        problems.append(row_problem(
            "sum_d", "a positive sum of the denominator of a ratio metric", bad,
            _examples(frame, "sum_d"),
            fix="the denominator is zero for every user of this arm: the ratio is "
                "undefined; drop the metric or use a longer window"))  # fmt: skip
    means = finite & ~is_ratio
    for col in ("sum_d", "sum_dd"):
        if col in frame.columns:
            bad = means & (np.abs(v[col] - n) > _REL_TOL * np.maximum(n, 1))
            if bad.any():
                problems.append(row_problem(
                    col, "equal to n for a continuous or binary metric (d = 1)", bad,
                    _examples(frame, col), fix="declare the metric 'ratio'"))

    # ---- table rules
    key_index = pd.MultiIndex.from_frame(frame[list(key_names)]) if len(key_names) > 1 \
        else pd.Index(frame[key_names[0]])  # fmt: skip
    code, keys = pd.factorize(key_index)
    vcode, variants_index = pd.factorize(frame[VARIANT])
    variants = tuple(variants_index)
    cell = code * len(variants) + vcode
    counts = np.bincount(cell, minlength=len(keys) * len(variants))
    dup = counts[cell] > 1
    if dup.any():
        problems.append(row_problem(
            VARIANT, "one row per (metric, variant)", dup, _examples(frame)))
    if control not in variants:
        problems.append(Problem(
            VARIANT, f"the control variant {control!r} in the table",
            fix=f"pass control= one of {list(variants)}"))  # fmt: skip
    else:
        missing_k, missing_v = np.nonzero(counts.reshape(len(keys), len(variants)) == 0)
        if missing_k.size:
            first_row = np.unique(code, return_index=True)[1]
            names = _label(frame, key_names).to_numpy()[first_row]
            pairs = zip(missing_k[:5], missing_v[:5], strict=True)
            shown = ", ".join(f"({names[k]!r}, {variants[j]!r})" for k, j in pairs)
            problems.append(Problem(
                VARIANT, f"every variant present for every metric; {missing_k.size} "
                f"(metric, variant) row(s) missing, first: {shown}",
                fix="a variant with no users for a metric must still have its row; drop "
                    "the variant everywhere or recompute the statistics"))  # fmt: skip
        if len(variants) < 2:
            problems.append(Problem(
                VARIANT, "at least one treatment variant besides the control"))
    first = np.unique(code, return_index=True)[1]
    for col in ("kind", "higher_is_better"):
        if col in frame.columns:
            values = frame[col].to_numpy()
            bad = values != values[first][code]
            if bad.any():
                problems.append(row_problem(
                    col, "the same value in every arm of a metric", bad,
                    _examples(frame, col)))
    if problems:
        raise DataValidationError(problems, what=what)

    hib = (frame["higher_is_better"].to_numpy()[first].astype(bool)
           if "higher_is_better" in frame.columns else np.ones(first.size, bool))  # fmt: skip
    return StatsTable(
        key_names=key_names,
        level_names=level_names,
        keys=keys,
        code=code,
        variant=frame[VARIANT].to_numpy(dtype=object),
        variants=variants,
        kind=kinds.to_numpy()[first],
        higher_is_better=hib,
        values=v,
        has_covariate=has_covariate,
    )


@dataclass(frozen=True)
class ArmMoments:
    """Per arm row: the estimate of the ratio of means and the variance of it."""

    mean: np.ndarray  # raw ratio of sums
    var: np.ndarray  # its delta-method variance
    mean_adj: np.ndarray  # CUPED-adjusted (equal to mean where CUPED is off)
    var_adj: np.ndarray
    theta: np.ndarray  # (keys,) 0 where CUPED is off
    cuped: np.ndarray  # (keys,) bool: CUPED applied
    cuped_note: np.ndarray  # (keys,) str: why CUPED is off ("" when on or not asked)


def arm_moments(table: StatsTable, *, cuped: bool) -> ArmMoments:
    """Delta-method moments of every arm, CUPED-adjusted where ``cuped`` and possible."""
    v = table.values
    n = v["n"]
    code = table.code
    n_keys = len(table.keys)
    ddof = np.where(table.kind[code] == "binary", 0.0, 1.0)
    r = v["sum_y"] / v["sum_d"]
    dbar = v["sum_d"] / n
    q_yy = np.maximum(v["sum_yy"] - 2 * r * v["sum_yd"] + r**2 * v["sum_dd"], 0.0)
    var_y = q_yy / (dbar**2 * (n - ddof))  # sample variance of y_lin
    var = var_y / n
    theta = np.zeros(n_keys)
    on = np.zeros(n_keys, bool)
    note = np.full(n_keys, "", dtype=object)
    mean_adj, var_adj = r.copy(), var.copy()
    if not cuped:
        return ArmMoments(r, var, mean_adj, var_adj, theta, on, note)

    sum_w_key = np.bincount(code, v["sum_w"], n_keys)
    with np.errstate(divide="ignore", invalid="ignore"):
        rx = v["sum_x"] / v["sum_w"]
        wbar = v["sum_w"] / n
        q_xx = np.maximum(v["sum_xx"] - 2 * rx * v["sum_xw"] + rx**2 * v["sum_ww"], 0.0)
        q_yx = v["sum_yx"] - rx * v["sum_yw"] - r * v["sum_dx"] + r * rx * v["sum_dw"]
        scale_xx = (v["sum_xx"] + rx**2 * v["sum_ww"]) / wbar**2
        sxx = np.bincount(code, np.nan_to_num(q_xx / wbar**2), n_keys)
        syx = np.bincount(code, np.nan_to_num(q_yx / (dbar * wbar)), n_keys)
        size = np.bincount(code, np.nan_to_num(scale_xx), n_keys)
        rx_pool = np.bincount(code, v["sum_x"], n_keys) / sum_w_key
        theta_all = syx / sxx
    zero_w = np.bincount(code, ~(v["sum_w"] > 0), n_keys) > 0
    constant = ~zero_w & ~(sxx > _REL_TOL * size)
    on = ~zero_w & ~constant & np.isfinite(theta_all)
    if table.has_covariate:  # a table without covariate columns needs no note
        note[constant] = "covariate constant (or no pre-period): CUPED off"
        note[zero_w] = "covariate denominator is zero in an arm: CUPED off"
    theta = np.where(on, theta_all, 0.0)
    t = theta[code]
    use = on[code]
    with np.errstate(divide="ignore", invalid="ignore"):
        var_x = q_xx / (wbar**2 * (n - ddof))
        cov_yx = q_yx / (dbar * wbar * (n - ddof))
        adj_mean = r - t * (rx - rx_pool[code])
        adj_var = np.maximum(var_y - 2 * t * cov_yx + t**2 * var_x, 0.0) / n
    mean_adj = np.where(use, adj_mean, r)
    var_adj = np.where(use, adj_var, var)
    return ArmMoments(r, var, mean_adj, var_adj, theta, on, note)
