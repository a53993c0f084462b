"""The :class:`FitReport` returned by :func:`models.diagnostics.check_fit`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from models import _html

__all__ = ["FitReport", "Verdict"]

Verdict = Literal["pass", "warn", "fail", "not-applicable"]


@dataclass(frozen=True, eq=False)
class FitReport:
    """Outcome of :func:`check_fit`: every convergence check of one fit, and a verdict.

    Parameters
    ----------
    verdict : {"pass", "warn", "fail", "not-applicable"}
        Overall verdict; see :func:`check_fit` for the rule.
    variables : pandas.DataFrame
        One row per posterior variable with columns ``variable``, ``size`` (number of
        elements), ``rhat`` (largest rank-normalised split R-hat over the elements),
        ``ess_bulk`` and ``ess_tail`` (smallest over the elements) and ``flags`` (the checks
        this variable broke, comma separated, empty when none).
    n_divergent : int or None
        Number of divergent transitions after tuning (None when the sampler does not
        record divergences).
    n_draws : int
        Draws per chain.
    n_chains : int
        Number of chains.
    treedepth_hits : int or None
        Transitions that stopped at the maximum tree depth (None when not recorded).
    ebfmi : tuple of float
        Energy Bayesian fraction of missing information, one value per chain (empty when
        the sampler does not record the energy).
    problems : list of str
        Checks that failed, quoting the numbers.
    cautions : list of str
        Checks that are not failures but deserve attention (verdict "warn").
    notes : list of str
        Information about what could not be checked and why.
    advice : list of str
        What to try to fix the problems and cautions.
    sampler : str or None
        Sampler that produced the fit, from the tree's attributes, e.g. ``"nutpie 0.16.11"``.
    method : str
        ``"mcmc"``, or the non-MCMC method recorded in the attributes (e.g. ``"map"``).
    thresholds : dict
        The thresholds used: ``rhat_max``, ``ess_min``, ``bfmi_min``, ``max_divergences``.
    contraction : dict of str to float
        Posterior contraction of each checked variable (empty when the fit has no
        ``prior`` group); see :func:`check_fit`.
    uninformed : list of str
        Variables whose contraction is below the threshold: the data did not inform them.

    Examples
    --------
    >>> import numpy as np
    >>> import arviz as az
    >>> from models.diagnostics import check_fit
    >>> rng = np.random.default_rng(0)
    >>> idata = az.from_dict({
    ...     "posterior": {"mu": rng.normal(size=(4, 1000))},
    ...     "sample_stats": {"diverging": np.zeros((4, 1000), dtype=bool),
    ...                      "energy": rng.normal(size=(4, 1000))},
    ... })
    >>> report = check_fit(idata)
    >>> report.verdict, report.ok
    ('pass', True)
    """

    verdict: Verdict
    variables: pd.DataFrame
    n_divergent: int | None
    n_draws: int
    n_chains: int
    treedepth_hits: int | None
    ebfmi: tuple[float, ...]
    problems: list[str] = field(default_factory=list)
    cautions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)
    sampler: str | None = None
    method: str = "mcmc"
    thresholds: dict[str, float] = field(default_factory=dict)
    contraction: dict[str, float] = field(default_factory=dict)
    uninformed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the verdict is ``"pass"`` (False for every other verdict)."""
        return self.verdict == "pass"

    def to_frame(self) -> pd.DataFrame:
        """Return the fit-level checks as a table.

        Returns
        -------
        pandas.DataFrame
            Indexed by check (``max_rhat``, ``min_ess_bulk``, ``min_ess_tail``,
            ``n_divergent``, ``treedepth_hits``, ``min_ebfmi``) with columns ``value``,
            ``threshold`` and ``status`` (``"ok"``, ``"warn"``, ``"fail"`` or ``"n/a"``).
            The per-variable table is ``variables``.

        Examples
        --------
        >>> import numpy as np
        >>> import arviz as az
        >>> from models.diagnostics import check_fit
        >>> rng = np.random.default_rng(1)
        >>> idata = az.from_dict({"posterior": {"mu": rng.normal(size=(4, 1000))},
        ...                       "sample_stats": {"diverging": np.zeros((4, 1000), bool)}})
        >>> check_fit(idata).to_frame().loc["n_divergent", "status"]
        'ok'
        """
        th = self.thresholds
        ess_min = th.get("ess_min", math.nan)
        half = ess_min / 2

        def _stat(values: pd.Series, reduce: str) -> float:
            finite = values.dropna()
            if finite.empty:
                return math.nan
            return float(finite.max() if reduce == "max" else finite.min())

        def _status(value: float | None, bad: bool, caution: bool = False) -> str:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return "n/a"
            return "fail" if bad else ("warn" if caution else "ok")

        rhat = _stat(self.variables["rhat"], "max")
        bulk = _stat(self.variables["ess_bulk"], "min")
        tail = _stat(self.variables["ess_tail"], "min")
        bfmi = min(self.ebfmi) if self.ebfmi else math.nan
        ndiv, tdh = self.n_divergent, self.treedepth_hits
        rows = [
            ("max_rhat", rhat, th.get("rhat_max"), _status(rhat, rhat > th["rhat_max"])),
            ("min_ess_bulk", bulk, ess_min, _status(bulk, bulk < half, bulk < ess_min)),
            ("min_ess_tail", tail, ess_min, _status(tail, tail < half, tail < ess_min)),
            (
                "n_divergent",
                ndiv,
                th.get("max_divergences"),
                _status(ndiv, ndiv is not None and ndiv > th["max_divergences"], bool(ndiv)),
            ),
            ("treedepth_hits", tdh, 0, _status(tdh, False, bool(tdh))),
            ("min_ebfmi", bfmi, th.get("bfmi_min"), _status(bfmi, bfmi < th["bfmi_min"])),
        ]
        frame = pd.DataFrame(rows, columns=["check", "value", "threshold", "status"])
        if self.verdict == "not-applicable":
            frame["status"] = "n/a"
        return frame.set_index("check")

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-serialisable dict (NaN becomes ``None``).

        Returns
        -------
        dict
            Keys ``verdict``, ``ok``, ``method``, ``sampler``, ``n_chains``, ``n_draws``,
            ``n_divergent``, ``treedepth_hits``, ``ebfmi``, ``thresholds``, ``variables``
            (a list of records), ``problems``, ``cautions``, ``notes`` and ``advice``; and,
            when the fit was compared with its prior, ``contraction`` (rounded to 4
            decimals) and ``uninformed``.

        Examples
        --------
        >>> import json
        >>> import numpy as np
        >>> import arviz as az
        >>> from models.diagnostics import check_fit
        >>> rng = np.random.default_rng(2)
        >>> idata = az.from_dict({"posterior": {"mu": rng.normal(size=(4, 1000))}})
        >>> json.loads(json.dumps(check_fit(idata).to_dict()))["verdict"]
        'not-applicable'
        """
        records = [
            {key: _jsonable(value) for key, value in row.items()}
            for row in self.variables.to_dict(orient="records")
        ]
        out = {
            "verdict": self.verdict,
            "ok": self.ok,
            "method": self.method,
            "sampler": self.sampler,
            "n_chains": int(self.n_chains),
            "n_draws": int(self.n_draws),
            "n_divergent": _jsonable(self.n_divergent),
            "treedepth_hits": _jsonable(self.treedepth_hits),
            "ebfmi": [_jsonable(v) for v in self.ebfmi],
            "thresholds": {k: _jsonable(v) for k, v in self.thresholds.items()},
            "variables": records,
            "problems": list(self.problems),
            "cautions": list(self.cautions),
            "notes": list(self.notes),
            "advice": list(self.advice),
        }
        if self.contraction:
            out["contraction"] = {k: round(v, 4) for k, v in self.contraction.items()}
            out["uninformed"] = list(self.uninformed)
        return out

    def __str__(self) -> str:
        th = self.thresholds
        lines = [
            f"Fit check: {self.verdict.upper()}",
            f"  method: {self.method}; sampler: {self.sampler or 'unknown'}; "
            f"{self.n_chains} chain(s) x {self.n_draws} draw(s)",
        ]
        if th:
            lines.append(
                f"  thresholds: R-hat <= {th['rhat_max']:g}, bulk and tail ESS >= "
                f"{th['ess_min']:g}, E-BFMI >= {th['bfmi_min']:g}, "
                f"divergences <= {th['max_divergences']:g}"
            )
        ndiv = "not recorded" if self.n_divergent is None else str(self.n_divergent)
        tdh = "not recorded" if self.treedepth_hits is None else str(self.treedepth_hits)
        bfmi = ", ".join(f"{v:.2f}" for v in self.ebfmi) if self.ebfmi else "not recorded"
        lines += [
            f"  divergent transitions: {ndiv}",
            f"  tree-depth hits: {tdh}",
            f"  E-BFMI per chain: {bfmi}",
        ]
        if not self.variables.empty:
            table = self.variables.to_string(
                index=False, float_format=lambda v: f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
            )
            lines += ["", "Variables:"] + ["  " + row for row in table.splitlines()]
        for title, items in (
            ("Problems", self.problems),
            ("Cautions", self.cautions),
            ("Notes", self.notes),
            ("Advice", self.advice),
        ):
            if items:
                lines += ["", f"{title}:"] + [f"  - {item}" for item in items]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """Notebook display: the verdict, the fit-level checks and what to do."""
        head = {
            "verdict": _html.markup(_html.verdict_badge(self.verdict)),
            "method": f"{self.method} ({self.sampler or 'unknown sampler'})",
            "draws": f"{self.n_chains} chain(s) x {self.n_draws:,}",
        }
        if self.uninformed:
            head["not informed by the data"] = ", ".join(self.uninformed)
        flagged = self.variables[self.variables["flags"].astype(bool)] if (
            "flags" in self.variables.columns) else self.variables.iloc[:0]
        return _html.card(
            "Fit check", _html.pairs_html(head), _html.frame_html(self.to_frame()),
            _html.frame_html(flagged) if len(flagged) else "",
            _html.items_html("Problems", self.problems),
            _html.items_html("Cautions", self.cautions),
            _html.items_html("Notes", self.notes),
            _html.items_html("Advice", self.advice),
        )

    def __repr__(self) -> str:
        return (
            f"FitReport(verdict={self.verdict!r}, n_chains={self.n_chains}, "
            f"n_draws={self.n_draws}, n_divergent={self.n_divergent}, "
            f"problems={len(self.problems)})"
        )


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
