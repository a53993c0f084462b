r"""Ship, do not ship or keep running: one decision across success and guardrail metrics.

:func:`decide` reads the effect table of
:func:`~models.experiments.engine.analyze` and applies one rule per variant:

- **ship** if at least one success metric is credibly better
  (:math:`P(\text{better}) \ge` ``threshold``) and every guardrail is credibly
  not worse than its non-inferiority margin
  (:math:`P(\text{lift better than} -\text{margin}) \ge` ``threshold``);
- **do not ship** if a success metric is credibly worse
  (:math:`P(\text{better}) \le 1 -` ``threshold``) or a guardrail credibly
  breaches its margin;
- **keep running** otherwise.

Failed pre-analysis checks (a sample-ratio mismatch, ...) override everything:
the verdict is **invalid** and says why first. The expected loss of the chosen
action is reported beside the verdict: what shipping (or not shipping) costs, in
each metric's units, if the decision is wrong.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from models.experiments._checks import check_probability, check_real

__all__ = ["VERDICTS", "Decision", "decide"]

#: The possible verdicts, most serious first.
VERDICTS = ("invalid", "do not ship", "keep running", "ship")
_NEEDED = (
    "lift", "lift_sd", "lift_ci_lower", "lift_ci_upper", "prob_better",
    "expected_loss_ship", "expected_loss_keep", "method", "higher_is_better",
)  # fmt: skip
_TABLE_COLUMNS = (
    "role", "margin", "lift", "lift_ci_lower", "lift_ci_upper", "prob_better",
    "prob_noninferior", "expected_loss_ship", "expected_loss_keep", "status", "reason",
)  # fmt: skip


@dataclass(frozen=True)
class Decision:
    """The verdict of :func:`decide`, with the reason for every metric.

    Attributes
    ----------
    verdict : str
        ``"ship"``, ``"do not ship"``, ``"keep running"`` or ``"invalid"``.
    variant : str or None
        The variant to ship (with ``"ship"``), else None.
    table : pandas.DataFrame
        One row per (variant, metric) of the rule: ``role`` (``"success"`` or
        ``"guardrail"``), ``margin`` (relative, 0 for success metrics), ``lift``
        and its interval, ``prob_better``, ``prob_noninferior`` (P(lift better
        than -margin); NaN for success metrics and sequential rows),
        ``expected_loss_ship``, ``expected_loss_keep``, ``status`` (``"better"``,
        ``"not worse"``, ``"worse"``, ``"inconclusive"``) and ``reason`` in words.
    expected_loss : pandas.Series
        Expected loss of the chosen action per (variant, metric), in each metric's
        units: of shipping the variant for ``"ship"``, of keeping the control (not
        shipping each variant) otherwise.
    verdicts : dict of str to str
        The verdict of each variant on its own.
    reasons : tuple of str
        The reasons behind the verdict, most important first.
    threshold : float
        The probability a statement needs to count as credible.
    """

    verdict: str
    variant: str | None
    table: pd.DataFrame
    expected_loss: pd.Series
    verdicts: dict[str, str] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()
    threshold: float = 0.95

    def __str__(self) -> str:
        head = self.verdict.upper()
        if self.verdict == "ship":
            head += f" {self.variant!r}"
        lines = [head] + [f"  {r}" for r in self.reasons]
        for variant, rows in self.table.groupby(level="variant", sort=False):
            lines.append(f"  {variant} ({self.verdicts.get(variant, '')}):")
            lines += [f"    - {reason}" for reason in rows["reason"]]
        what = "shipping" if self.verdict == "ship" else "not shipping"
        losses = ", ".join(f"{m} {v:.4g}" for (_, m), v in self.expected_loss.items()
                           if np.isfinite(v))  # fmt: skip
        if losses:
            lines.append(f"  Expected loss of {what}: {losses}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Decision(verdict={self.verdict!r}, variant={self.variant!r})"

    def _repr_html_(self) -> str:
        head = html.escape(str(self).splitlines()[0])
        reasons = "".join(f"<li>{html.escape(r)}</li>" for r in self.reasons)
        return f"<p><b>{head}</b></p><ul>{reasons}</ul>{self.table.to_html()}"


def _failed_messages(checks: Any) -> list[str]:
    """Return the messages of the failed checks (all of them when there is no table)."""
    table = getattr(checks, "table", None)
    if isinstance(table, pd.DataFrame) and {"ok", "message"} <= set(table.columns):
        return [str(m) for m in table.loc[~table["ok"].astype(bool), "message"]]
    return [str(m) for m in getattr(checks, "messages", ())]


def _fmt(x: float) -> str:
    return "nan" if not np.isfinite(x) else f"{x:+.1%}"


def _names(owner: str, name: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise ValueError(
            f"The '{name}' parameter of {owner} must be a metric name or a list of them. "
            f"Got {value!r} instead."
        )
    return list(value)


def _row(r: pd.Series, role: str, margin: float, threshold: float, ci_prob: float):
    """Status, P(non-inferior) and reason of one metric of one variant."""
    up = bool(r["higher_is_better"])
    d = 1.0 if up else -1.0  # s, the direction of "better"
    lift, lo, hi = r["lift"], r["lift_ci_lower"], r["lift_ci_upper"]
    name = r.name[0] if role == "success" else f"{r.name[0]} (guardrail {margin:.1%})"
    interval = f"lift {_fmt(lift)} [{_fmt(lo)}, {_fmt(hi)}]"
    if r["method"] == "sequential":
        # the always-valid interval of s * L (at ci_prob) must exclude the boundary
        g_lo, g_hi = (lo, hi) if up else (-hi, -lo)
        bound = 0.0 if role == "success" else -margin
        which = f"the always-valid {ci_prob:.0%} interval"
        if not (np.isfinite(g_lo) and np.isfinite(g_hi)):
            return "inconclusive", np.nan, f"{name}: inconclusive (no lift; {interval})"
        if g_lo > bound:
            status = "better" if role == "success" else "not worse"
            return status, np.nan, f"{name}: {status} ({which}, {interval}, clears {bound:+.1%})"
        if g_hi < bound:
            return "worse", np.nan, f"{name}: worse ({which}, {interval}, is beyond {bound:+.1%})"
        return "inconclusive", np.nan, f"{name}: inconclusive ({which}, {interval})"
    if role == "success":
        p = r["prob_better"]
        text = f"P(better) = {p:.3f}; {interval}"
        if p >= threshold:
            return "better", np.nan, f"{name}: better ({text})"
        if p <= 1 - threshold:
            return "worse", np.nan, f"{name}: worse ({text})"
        return "inconclusive", np.nan, f"{name}: inconclusive ({text})"
    if margin == 0:
        p = r["prob_better"]
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            p = float(special.ndtr((d * lift + margin) / r["lift_sd"]))
    text = f"P(in margin) = {p:.3f}; {interval}"
    if not np.isfinite(p):
        return "inconclusive", p, f"{name}: inconclusive (no lift; {interval})"
    if p >= threshold:
        return "not worse", p, f"{name}: not worse ({text})"
    if p <= 1 - threshold:
        return "worse", p, f"{name}: worse than the margin ({text})"
    return "inconclusive", p, f"{name}: inconclusive ({text})"


def decide(
    effects: pd.DataFrame,
    *,
    success: str | Sequence[str],
    guardrails: Mapping[str, float] | None = None,
    threshold: float = 0.95,
    checks: Any = None,
) -> Decision:
    r"""Decide whether to ship, from the effect table of one experiment.

    Parameters
    ----------
    effects : pandas.DataFrame
        The table of :func:`~models.experiments.engine.analyze` (index
        ``("metric", "variant")``).
    success : str or list of str
        Success metrics: shipping needs at least one of them credibly better.
    guardrails : mapping of str to float, optional
        Guardrail metrics and their non-inferiority margins on the relative scale:
        ``{"skip_rate": 0.02}`` means "not more than 2% worse than the control",
        "worse" in the metric's direction (``higher_is_better``).
    threshold : float, default 0.95
        Probability that makes a statement credible, in (0.5, 1).
    checks : object, optional
        Pre-analysis checks with attributes ``ok`` (bool) and ``messages``
        (strings), such as :class:`~models.experiments.checks.ExperimentChecks`.
        When ``ok`` is false the verdict is ``"invalid"`` whatever the effects.

    Returns
    -------
    Decision
        Verdict, variant to ship, per-metric table with reasons, expected loss.

    Raises
    ------
    ValueError
        If a metric is not in ``effects``, is both a success metric and a
        guardrail, a margin is negative, ``threshold`` is outside (0.5, 1),
        ``checks`` has no ``ok``, or ``effects`` is not an effect table.

    Notes
    -----
    For a variant, with :math:`L` the relative lift and :math:`s = \pm 1` the
    direction of "better":

    - success metric *better*: :math:`P(sL > 0) \ge \tau`; *worse*:
      :math:`P(sL > 0) \le 1 - \tau`;
    - guardrail with margin :math:`m` *not worse*: :math:`P(sL > -m) \ge \tau`;
      *worse*: :math:`P(sL > -m) \le 1 - \tau`.

    :math:`P(sL > -m)` is :math:`\Phi((sL + m)/sd_L)` from the table's lift and
    its sd (the normal posterior of the normal model, a normal approximation with
    the exact moments for Beta-binomial rows; ``prob_better`` itself when
    :math:`m = 0`). Rows of a sequential analysis have no probabilities: there a
    statement is credible when the always-valid interval excludes the boundary.
    With several variants each gets its own verdict; the experiment ships the
    shipping variant with the largest lift on the first success metric, is
    "do not ship" when every variant is, and "keep running" otherwise.

    Examples
    --------
    >>> import pandas as pd
    >>> from models.experiments.engine import analyze
    >>> stats = pd.DataFrame({
    ...     "metric": ["minutes"] * 2 + ["skips"] * 2,
    ...     "variant": ["control", "treatment"] * 2,
    ...     "kind": "continuous", "higher_is_better": [True, True, False, False],
    ...     "n": 20000, "sum_y": [200000.0, 206000.0, 80000.0, 80040.0],
    ...     "sum_yy": [2.5e6, 2.6218e6, 520000.0, 520320.0],
    ... })
    >>> decision = decide(analyze(stats), success="minutes", guardrails={"skips": 0.02})
    >>> print(decision)
    SHIP 'treatment'
      'treatment': a success metric credibly better, every guardrail credibly within its margin
      treatment (ship):
        - minutes: better (P(better) = 1.000; lift +3.0% [+2.0%, +4.0%])
        - skips (guardrail 2.0%): not worse (P(in margin) = 0.993; lift +0.0% [-1.5%, +1.6%])
      Expected loss of shipping: minutes 7.825e-12, skips 0.01364
    """
    owner = "decide"
    if not isinstance(effects, pd.DataFrame) or list(effects.index.names) != ["metric",
                                                                                "variant"]:
        raise ValueError(
            f"The 'effects' parameter of {owner} must be the table of analyze, indexed by "
            f"('metric', 'variant') (one experiment, no segments). Got {type(effects).__name__}"
            f" with index {getattr(effects, 'index', None)!r} instead."
        )
    missing = [c for c in _NEEDED if c not in effects.columns]
    if missing:
        raise ValueError(
            f"The 'effects' parameter of {owner} must be the table of analyze; it lacks the "
            f"columns {missing}."
        )
    threshold = check_probability(owner, "threshold", threshold, low=0.5)
    success_names = _names(owner, "success", success)
    if not success_names:
        raise ValueError(f"The 'success' parameter of {owner} must name at least one metric.")
    guardrails = dict(guardrails or {})
    for name, margin in guardrails.items():
        check_real(owner, f"guardrails[{name!r}]", margin, low=0.0)
    both = sorted(set(success_names) & set(guardrails))
    if both:
        raise ValueError(
            f"The metric(s) {both} are both success metrics and guardrails in {owner}; "
            "give each metric one role."
        )
    metrics = list(pd.unique(effects.index.get_level_values("metric")))
    unknown = [m for m in [*success_names, *guardrails] if m not in metrics]
    if unknown:
        raise ValueError(
            f"The metric(s) {unknown} given to {owner} are not in the effect table; its "
            f"metrics are {metrics}."
        )
    if checks is not None and not hasattr(checks, "ok"):
        raise ValueError(
            f"The 'checks' parameter of {owner} must have an 'ok' attribute (and "
            f"'messages'), like ExperimentChecks. Got {checks!r} instead."
        )
    ci_prob = float(effects.attrs.get("ci_prob", 0.95))

    roles = [(m, "success", 0.0) for m in success_names]
    roles += [(m, "guardrail", float(g)) for m, g in guardrails.items()]
    variants = list(pd.unique(effects.index.get_level_values("variant")))
    records, index = [], []
    for variant in variants:
        for metric, role, margin in roles:
            r = effects.loc[(metric, variant)]
            status, p_noninf, reason = _row(r, role, margin, threshold, ci_prob)
            records.append({
                "role": role, "margin": margin, "lift": r["lift"],
                "lift_ci_lower": r["lift_ci_lower"], "lift_ci_upper": r["lift_ci_upper"],
                "prob_better": r["prob_better"], "prob_noninferior": p_noninf,
                "expected_loss_ship": r["expected_loss_ship"],
                "expected_loss_keep": r["expected_loss_keep"], "status": status,
                "reason": reason,
            })  # fmt: skip
            index.append((variant, metric))
    table = pd.DataFrame(records, index=pd.MultiIndex.from_tuples(index, names=["variant",
                                                                               "metric"]))
    table = table[list(_TABLE_COLUMNS)]

    verdicts: dict[str, str] = {}
    for variant in variants:
        rows = table.loc[variant]
        if (rows["status"] == "worse").any():
            verdicts[variant] = "do not ship"
        elif ((rows["role"] == "success") & (rows["status"] == "better")).any() and (
            rows.loc[rows["role"] == "guardrail", "status"] == "not worse"
        ).all():
            verdicts[variant] = "ship"
        else:
            verdicts[variant] = "keep running"

    reasons: list[str] = []
    shipping = [v for v in variants if verdicts[v] == "ship"]
    chosen = None
    if checks is not None and not bool(checks.ok):
        verdict = "invalid"
        verdicts = dict.fromkeys(variants, "invalid")
        reasons.append("The pre-analysis checks failed; do not read the effects:")
        reasons += _failed_messages(checks)
    elif shipping:
        verdict = "ship"
        first = success_names[0]
        sign = np.where(effects.loc[(first, shipping[0]), "higher_is_better"], 1.0, -1.0)
        lifts = [sign * table.loc[(v, first), "lift"] for v in shipping]
        chosen = shipping[int(np.nanargmax(lifts))] if len(shipping) > 1 else shipping[0]
        reasons.append(f"{chosen!r}: a success metric credibly better, every guardrail "
                       "credibly within its margin")  # fmt: skip
        if len(shipping) > 1:
            reasons.append(f"{len(shipping)} variants qualify; {chosen!r} has the largest lift "
                           f"on {first!r}")  # fmt: skip
    elif all(v == "do not ship" for v in verdicts.values()):
        verdict = "do not ship"
        reasons.append("every variant has a success metric credibly worse or a guardrail "
                       "credibly beyond its margin")  # fmt: skip
    else:
        verdict = "keep running"
        reasons.append("no variant is credibly better on a success metric with every "
                       "guardrail credibly within its margin yet")  # fmt: skip
    if verdict == "ship":
        expected_loss = table.loc[[chosen], "expected_loss_ship"]
    else:
        expected_loss = table["expected_loss_keep"]
    return Decision(
        verdict=verdict,
        variant=chosen,
        table=table,
        expected_loss=expected_loss.rename("expected_loss"),
        verdicts=verdicts,
        reasons=tuple(reasons),
        threshold=threshold,
    )
