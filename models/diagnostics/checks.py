"""Convergence checks for MCMC fits: R-hat, ESS, divergences, tree depth and E-BFMI.

A thin layer over :func:`arviz.rhat`, :func:`arviz.ess` and :func:`arviz.bfmi` that turns
their numbers into one :class:`FitReport` with a verdict, the problems found (quoting the
numbers) and advice on what to try next.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from models.diagnostics.contraction import posterior_contraction, posterior_shift
from models.diagnostics.report import FitReport, Verdict
from models.exceptions import ConvergenceWarning

__all__ = ["check_fit", "warn_if_not_converged", "warn_if_uninformed"]


#: Sample-stats names for "this transition ended in a divergence" (PyMC NUTS, nutpie, Stan).
DIVERGENCE_STATS = ("diverging", "divergent__")
#: Sample-stats names for "this transition hit the maximum tree depth".
#: PyMC's own NUTS writes ``reached_max_treedepth``; nutpie writes ``maxdepth_reached``.
TREEDEPTH_STATS = ("reached_max_treedepth", "maxdepth_reached")
#: Sample-stats names of the Hamiltonian energy, needed for E-BFMI (same in PyMC and nutpie).
ENERGY_STATS = ("energy", "energy__")
#: Attribute keys that may record how a fit was made, looked up on the tree and its posterior.
METHOD_ATTRS = ("method", "fit_method", "inference_method")
#: Method names that are not MCMC: optimisation and variational fits.
NON_MCMC_METHODS = frozenset(
    {
        "map",
        "mle",
        "laplace",
        "optimize",
        "optimise",
        "advi",
        "fullrank_advi",
        "vi",
        "svgd",
        "asvgd",
    }
)
#: Severity order used by :func:`warn_if_not_converged`.
_SEVERITY = {"pass": 0, "not-applicable": 1, "warn": 2, "fail": 3}


def check_fit(
    idata: xr.DataTree,
    *,
    var_names: str | Sequence[str] | None = None,
    rhat_max: float = 1.01,
    ess_min: float | None = None,
    bfmi_min: float = 0.3,
    max_divergences: int = 0,
    contraction_min: float = 0.2,
) -> FitReport:
    r"""Check that an MCMC fit converged and learned from the data, and say what to do if not.

    Parameters
    ----------
    idata : xarray.DataTree
        A fit with a ``posterior`` group (dims ``chain``, ``draw``) and, for the sampler
        checks, a ``sample_stats`` group, e.g. the result of ``pymc.sample``.
    var_names : str or sequence of str, optional
        Posterior variables to check. ``None`` checks every variable in the posterior,
        deterministic ones included. Names starting with ``"~"`` are excluded instead,
        e.g. ``["~mu_user"]`` checks everything except ``mu_user``.
    rhat_max : float, default 1.01
        Largest acceptable rank-normalised split R-hat.
    ess_min : float, optional
        Smallest acceptable bulk and tail ESS. Defaults to ``100 * n_chains``.
    bfmi_min : float, default 0.3
        Smallest acceptable E-BFMI of any chain.
    max_divergences : int, default 0
        Largest number of divergent transitions that is not a failure.
    contraction_min : float, default 0.2
        Smallest posterior contraction (see below) of a parameter the data informed.
        Only used when ``idata`` has a ``prior`` group (``BayesianModel.fit`` stores
        one). With a few thousand draws the contraction of a parameter the data did
        not touch scatters by about 0.1 around 0, so the default leaves a margin.

    Returns
    -------
    FitReport
        Per-variable diagnostics, sampler diagnostics, verdict, problems and advice.

    Raises
    ------
    ValueError
        If ``idata`` has no ``posterior`` group, ``var_names`` names a variable the
        posterior does not have, or a threshold is out of range.
    TypeError
        If ``idata`` is not an :class:`xarray.DataTree`.

    Notes
    -----
    Checks and their thresholds:

    * **R-hat**: the rank-normalised split :math:`\hat{R}` of Vehtari et al. [1]_ (the
      larger of bulk and folded R-hat, :func:`arviz.rhat` with ``method="rank"``), largest
      over a variable's elements. Fails above ``rhat_max`` = 1.01, the threshold [1]_
      recommends. When it fails and the sampler recorded each draw's log density (``lp``
      from PyMC, ``logp`` from nutpie), a chain whose mean log density lies more than 5
      within-chain sds below the best chain's is named in ``problems`` as stuck in a
      poorer mode (chains sampling one mode differ by about an sd over the square root of
      their ESS), with the gap.
    * **ESS**: bulk and tail effective sample size ([1]_; :func:`arviz.ess`), smallest over
      a variable's elements. [1]_ recommends at least 100 per chain, so ``ess_min``
      defaults to :math:`100 \times` ``n_chains``. Fails below ``ess_min / 2``; warns
      between ``ess_min / 2`` and ``ess_min``.
    * **Divergences**: transitions flagged ``diverging`` after tuning. They mean the
      sampler could not follow the posterior's curvature, so estimates may be biased [3]_.
      Fails above ``max_divergences`` (default 0); warns when some divergences occur but
      are tolerated by a larger ``max_divergences``.
    * **Tree depth**: transitions that stopped at the maximum tree depth. This is an
      efficiency problem, not a validity one, so it only warns.
    * **E-BFMI**: energy Bayesian fraction of missing information per chain [2]_
      (:func:`arviz.bfmi`). Fails below ``bfmi_min`` = 0.3, the threshold of [2]_.
    * **Posterior contraction** (when ``idata`` has a ``prior`` group): for each checked
      variable, :math:`1 - (\mathrm{IQR}_\text{post}/\mathrm{IQR}_\text{prior})^2`, the
      largest over its elements (:func:`~models.diagnostics.posterior_contraction`).
      Below ``contraction_min``, with a posterior median less than half a prior IQR
      from the prior's (:func:`~models.diagnostics.posterior_shift`), the
      data did not inform the parameter: its posterior restates the prior. Such variables
      are listed in ``uninformed`` and make the verdict at best ``"warn"``, however well
      the sampler converged.
    * **ADVI loss** (when ``idata`` has an ``advi_loss`` group): the negative ELBO must
      have stopped falling. The median loss of the last tenth of the steps is compared
      with that of the tenth before; a drop larger than the loss's own noise, or fewer
      than 1,000 steps, is a caution (verdict ``"warn"``).

    Verdict, from worst to best:

    * ``"not-applicable"``: the fit is not MCMC. That is when the tree's or the
      posterior's attributes record a method (``method``, ``fit_method`` or
      ``inference_method``) such as ``"map"``, ``"advi"`` or ``"vi"``; the tree has an
      ``optimizer_result`` group (``pymc.find_MAP``); there are fewer than 4 draws per chain;
      or there is no (or an empty) ``sample_stats`` group. R-hat and ESS need several MCMC
      chains, so nothing is claimed; :attr:`FitReport.ok` is False.
    * ``"fail"``: any R-hat above ``rhat_max``, any ESS below ``ess_min / 2``, more
      divergences than ``max_divergences``, any chain's E-BFMI below ``bfmi_min``, or
      non-finite draws.
    * ``"warn"``: none of the above, but tree-depth hits, an ESS in
      ``[ess_min / 2, ess_min)``, tolerated divergences, a single chain (R-hat cannot
      be computed from one chain, so a single-chain fit is at best ``"warn"``), a
      parameter the data did not inform, or an ADVI loss that had not flattened (these
      two also turn a ``"not-applicable"`` fit into ``"warn"``).
    * ``"pass"``: everything else.

    Variables whose draws are all equal (e.g. a constant ``pm.Deterministic``) have no
    R-hat or ESS; they are listed in the notes and otherwise ignored.

    Sample-stats names differ between samplers; the divergence flag is ``diverging`` in
    PyMC's NUTS and nutpie, the tree-depth flag ``reached_max_treedepth`` (PyMC) or
    ``maxdepth_reached`` (nutpie), the energy ``energy`` in both. A missing statistic is
    reported as "not recorded", never as zero.

    References
    ----------
    .. [1] Vehtari, A., Gelman, A., Simpson, D., Carpenter, B. and Bürkner, P.-C. (2021).
       Rank-normalization, folding, and localization: an improved :math:`\hat{R}` for
       assessing convergence of MCMC. *Bayesian Analysis* 16(2), 667-718.
       https://doi.org/10.1214/20-BA1221
    .. [2] Betancourt, M. (2016). Diagnosing suboptimal cotangent disintegrations in
       Hamiltonian Monte Carlo. https://arxiv.org/abs/1604.00695
    .. [3] Betancourt, M. (2017). A conceptual introduction to Hamiltonian Monte Carlo.
       https://arxiv.org/abs/1701.02434

    Examples
    --------
    Four chains that disagree about the mean fail the R-hat check:

    >>> import numpy as np
    >>> import arviz as az
    >>> from models.diagnostics import check_fit
    >>> rng = np.random.default_rng(3)
    >>> draws = rng.normal(size=(4, 500)) + np.array([[0.0], [0.0], [0.0], [2.0]])
    >>> idata = az.from_dict({
    ...     "posterior": {"mu": draws},
    ...     "sample_stats": {"diverging": np.zeros((4, 500), dtype=bool)},
    ... })
    >>> report = check_fit(idata)
    >>> report.verdict
    'fail'
    >>> report.problems[0]
    'R-hat above 1.01 for 1 variable(s): mu (1.317)'

    A fit from ``pymc.sample`` (too slow for a doctest):

    >>> report = check_fit(model.idata_)  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    """
    if not isinstance(idata, xr.DataTree):
        raise TypeError(
            f"check_fit expects an xarray.DataTree (ArviZ 1 fit). Got {type(idata).__name__} "
            "instead."
        )
    if "posterior" not in idata.children:
        raise ValueError(
            "check_fit needs a 'posterior' group. The fit has groups "
            f"{sorted(idata.children)} instead."
        )
    _check_threshold("rhat_max", rhat_max, lower=1.0)
    _check_threshold("bfmi_min", bfmi_min, lower=0.0)
    if ess_min is not None:
        _check_threshold("ess_min", ess_min, lower=0.0)
    if not isinstance(max_divergences, int | np.integer) or max_divergences < 0:
        raise ValueError(
            "The 'max_divergences' parameter of check_fit must be a non-negative integer. "
            f"Got {max_divergences!r} instead."
        )

    posterior = idata["posterior"].to_dataset()
    posterior = posterior[_select_vars(list(posterior.data_vars), var_names)]
    n_chains = int(posterior.sizes.get("chain", 1))
    n_draws = int(posterior.sizes.get("draw", 1))
    ess_min = float(100 * n_chains if ess_min is None else ess_min)
    thresholds = {
        "rhat_max": float(rhat_max),
        "ess_min": ess_min,
        "bfmi_min": float(bfmi_min),
        "max_divergences": int(max_divergences),
    }
    sampler = _sampler_name(idata)
    stats = idata["sample_stats"].to_dataset() if "sample_stats" in idata.children else None

    _check_threshold("contraction_min", contraction_min, lower=0.0)
    contraction, uninformed, data_caution = _contraction(idata, posterior, contraction_min)
    loss_caution = _advi_loss_caution(idata)
    late = [c for c in (data_caution, loss_caution) if c]

    method, reason = _non_mcmc_reason(idata, posterior, stats, n_draws)
    if reason is not None:
        table = _empty_table(posterior)
        return FitReport(
            verdict="warn" if late else "not-applicable",
            variables=table,
            n_divergent=None,
            n_draws=n_draws,
            n_chains=n_chains,
            treedepth_hits=None,
            ebfmi=(),
            notes=[
                reason,
                "R-hat and ESS need several MCMC chains, so convergence was not checked; "
                "this is not a pass.",
                *([_ADVI_FLAT_NOTE] if "advi_loss" in idata.children and not loss_caution
                  else []),
            ],
            advice=[
                "To check convergence, fit with MCMC (fit(method='nuts'), or pymc.sample) "
                "using at least 4 chains.",
                *_late_advice(data_caution, loss_caution),
            ],
            cautions=late,
            sampler=sampler,
            method=method,
            thresholds=thresholds,
            contraction=contraction,
            uninformed=uninformed,
        )

    problems: list[str] = []
    cautions: list[str] = []
    notes: list[str] = []
    advice: list[str] = []
    table = _variable_table(posterior, n_chains, rhat_max, ess_min, notes, problems)

    # R-hat
    if n_chains < 2:
        cautions.append(
            "Only one chain: R-hat compares chains, so it cannot be computed; "
            "convergence cannot be confirmed."
        )
        advice.append("Sample at least 4 chains so that R-hat can be computed.")
    bad = table[table["rhat"] > rhat_max]
    if not bad.empty:
        problems.append(
            f"R-hat above {rhat_max:g} for {len(bad)} variable(s): " + _quote(bad, "rhat", "{:.3f}")
        )
        advice.append(
            "High R-hat means the chains disagree: run longer (more tune and draws), "
            "look for multimodality in a trace plot, and consider stronger priors or a "
            "non-centred parameterisation."
        )
        stuck = _stuck_chains(stats)
        if stuck is not None:
            problems.append(stuck)
            advice.append(
                "A chain stuck in a poorer mode: refit with another random_seed or a longer "
                "warm-up (more tune). If it recurs, the model has a local mode worth a trace "
                "plot (in a model with hidden states: two states that merge into one)."
            )

    # ESS
    low_ess = False
    for kind in ("bulk", "tail"):
        col = f"ess_{kind}"
        very_low = table[table[col] < ess_min / 2]
        low = table[(table[col] >= ess_min / 2) & (table[col] < ess_min)]
        if not very_low.empty:
            problems.append(
                f"{kind} ESS below {ess_min / 2:g} (half the {ess_min:g} required) for "
                f"{len(very_low)} variable(s): " + _quote(very_low, col, "{:.0f}")
            )
            low_ess = True
        if not low.empty:
            cautions.append(
                f"{kind} ESS between {ess_min / 2:g} and {ess_min:g} for {len(low)} "
                "variable(s): " + _quote(low, col, "{:.0f}")
            )
            low_ess = True
    if low_ess:
        advice.append(
            "Low ESS: draw more samples (larger draws and tune); if ESS stays low relative "
            "to the draws, reparameterise to reduce posterior correlations (e.g. non-centred "
            "hierarchies)."
        )

    # Divergences
    n_divergent = _count_stat(stats, DIVERGENCE_STATS)
    total = n_chains * n_draws
    if n_divergent is None:
        notes.append("Divergences not recorded by the sampler; not checked.")
    elif n_divergent > max_divergences:
        problems.append(
            f"{n_divergent} divergent transition(s) of {total} "
            f"({100 * n_divergent / total:.1f}%); at most {max_divergences} allowed."
        )
        advice.append(
            "Divergences: raise target_accept (e.g. pm.sample(target_accept=0.95)); if they "
            "persist, use a non-centred parameterisation for hierarchical effects or stronger "
            "priors on scale parameters."
        )
    elif n_divergent > 0:
        cautions.append(
            f"{n_divergent} divergent transition(s) of {total}, tolerated by "
            f"max_divergences={max_divergences}."
        )

    # Tree depth
    treedepth_hits = _count_stat(stats, TREEDEPTH_STATS)
    if treedepth_hits is None:
        notes.append("Tree-depth hits not recorded by the sampler; not checked.")
    elif treedepth_hits > 0:
        cautions.append(
            f"{treedepth_hits} transition(s) of {total} "
            f"({100 * treedepth_hits / total:.1f}%) stopped at the maximum tree depth."
        )
        advice.append(
            "Tree-depth hits: the sampler is slow, not wrong. Reparameterise to reduce "
            "posterior correlations, or raise the limit (pm.sample(max_treedepth=12), "
            "nutpie maxdepth)."
        )

    # E-BFMI
    ebfmi = _ebfmi(stats)
    if not ebfmi:
        notes.append("Energy not recorded by the sampler; E-BFMI not checked.")
    else:
        low_chains = [(i, v) for i, v in enumerate(ebfmi) if v < bfmi_min]
        if low_chains:
            problems.append(
                f"E-BFMI below {bfmi_min:g} in {len(low_chains)} chain(s): "
                + ", ".join(f"chain {i} ({v:.2f})" for i, v in low_chains)
            )
            advice.append(
                "Low E-BFMI: the sampler explores the energy poorly, usually because of "
                "heavy tails or funnel geometry; reparameterise (non-centred), use stronger "
                "priors, or tune longer."
            )

    cautions += late
    advice += _late_advice(data_caution, loss_caution)
    if problems:
        verdict: Verdict = "fail"
    elif cautions:
        verdict = "warn"
    else:
        verdict = "pass"
    return FitReport(
        verdict=verdict,
        variables=table,
        n_divergent=n_divergent,
        n_draws=n_draws,
        n_chains=n_chains,
        treedepth_hits=treedepth_hits,
        ebfmi=ebfmi,
        problems=problems,
        cautions=cautions,
        notes=notes,
        advice=advice,
        sampler=sampler,
        method=method,
        thresholds=thresholds,
        contraction=contraction,
        uninformed=uninformed,
    )


def warn_if_not_converged(
    report: FitReport, *, level: Literal["warn", "fail"] = "warn", stacklevel: int = 2
) -> bool:
    """Issue a :class:`~models.exceptions.ConvergenceWarning` when a fit did not pass.

    Parameters
    ----------
    report : FitReport
        The result of :func:`check_fit`.
    level : {"warn", "fail"}, default "warn"
        Least severe verdict that warns. With ``"warn"`` both ``"warn"`` and ``"fail"``
        verdicts warn; with ``"fail"`` only ``"fail"`` does.
    stacklevel : int, default 2
        Passed to :func:`warnings.warn`; 2 points at the caller of this function.

    Returns
    -------
    bool
        True when a warning was issued.

    Raises
    ------
    ValueError
        If ``level`` is not ``"warn"`` or ``"fail"``.
    TypeError
        If ``report`` is not a :class:`FitReport`.

    Notes
    -----
    A ``"not-applicable"`` verdict (MAP or variational fit) never warns: there was no
    MCMC run to converge, and the report already says so. A ``"warn"`` verdict warns by
    default because a single chain, low ESS or tree-depth hits are worth knowing about
    before the numbers are used. Parameters the data did not inform are not a
    convergence problem: they raise :func:`warn_if_uninformed`'s
    :class:`~models.exceptions.UninformativeDataWarning` instead, so a fit whose only
    caution is that one does not warn here.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> import arviz as az
    >>> from models.diagnostics import check_fit, warn_if_not_converged
    >>> rng = np.random.default_rng(4)
    >>> idata = az.from_dict({
    ...     "posterior": {"mu": rng.normal(size=(4, 500)) + np.arange(4)[:, None]},
    ...     "sample_stats": {"diverging": np.zeros((4, 500), dtype=bool)},
    ... })
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_if_not_converged(check_fit(idata))
    True
    >>> caught[0].category.__name__
    'ConvergenceWarning'
    """
    if not isinstance(report, FitReport):
        raise TypeError(
            "warn_if_not_converged expects a FitReport from check_fit. "
            f"Got {type(report).__name__} instead."
        )
    if level not in ("warn", "fail"):
        raise ValueError(
            "The 'level' parameter of warn_if_not_converged must be 'warn' or 'fail'. "
            f"Got {level!r} instead."
        )
    if report.verdict == "not-applicable" or _SEVERITY[report.verdict] < _SEVERITY[level]:
        return False
    cautions = [c for c in report.cautions if not c.startswith(_UNINFORMED)]
    if not report.problems and not cautions:
        return False
    lines = [f"The fit did not pass its convergence checks (verdict: {report.verdict})."]
    lines += [f"  - {item}" for item in [*report.problems, *cautions]]
    if report.advice:
        lines.append("Try:")
        lines += [f"  - {item}" for item in report.advice]
    warnings.warn("\n".join(lines), ConvergenceWarning, stacklevel=stacklevel)
    return True


def warn_if_uninformed(report: FitReport, *, stacklevel: int = 2) -> bool:
    """Issue an :class:`~models.exceptions.UninformativeDataWarning` for uninformed parameters.

    Parameters
    ----------
    report : FitReport
        The result of :func:`check_fit` on a fit with a ``prior`` group.
    stacklevel : int, default 2
        Passed to :func:`warnings.warn`.

    Returns
    -------
    bool
        True when a warning was issued (``report.uninformed`` is not empty).

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> import arviz as az
    >>> from models.diagnostics import check_fit
    >>> rng = np.random.default_rng(5)
    >>> idata = az.from_dict({
    ...     "posterior": {"mu": rng.normal(size=(4, 500))},
    ...     "prior": {"mu": rng.normal(size=(1, 2000))},
    ...     "sample_stats": {"diverging": np.zeros((4, 500), dtype=bool)},
    ... })
    >>> report = check_fit(idata)
    >>> report.verdict, report.uninformed
    ('warn', ['mu'])
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_if_uninformed(report)
    True
    >>> caught[0].category.__name__
    'UninformativeDataWarning'
    """
    from models.exceptions import UninformativeDataWarning

    if not isinstance(report, FitReport):
        raise TypeError(
            "warn_if_uninformed expects a FitReport from check_fit. "
            f"Got {type(report).__name__} instead."
        )
    if not report.uninformed:
        return False
    text = next(c for c in report.cautions if c.startswith(_UNINFORMED))
    warnings.warn(text, UninformativeDataWarning, stacklevel=stacklevel)
    return True


# --------------------------------------------------------------------------- helpers

_UNINFORMED = "The data did not inform"
#: A posterior whose median moved this many prior IQRs was informed, however wide.
_SHIFT_MIN = 0.5
#: Steps of ADVI below which the loss trace cannot show that it flattened.
_ADVI_MIN_STEPS = 1000


def _contraction(
    idata: xr.DataTree, posterior: xr.Dataset, contraction_min: float
) -> tuple[dict[str, float], list[str], str | None]:
    """Contraction per variable, the uninformed ones, and the caution naming them."""
    if "prior" not in idata.children:
        return {}, [], None
    prior = idata["prior"].to_dataset()
    contraction = posterior_contraction(posterior, prior)
    shift = posterior_shift(posterior, prior)
    uninformed = [n for n, c in contraction.items()
                  if c < contraction_min and shift.get(n, 0.0) < _SHIFT_MIN]
    if not uninformed:
        return contraction, [], None
    shown = ", ".join(f"{n} ({contraction[n]:.2f})" for n in uninformed)
    caution = (
        f"{_UNINFORMED} {len(uninformed)} parameter(s): {shown} (posterior contraction "
        f"below {contraction_min:g} and median within {_SHIFT_MIN:g} prior IQR of the "
        "prior's: the posterior is about the prior, so these numbers restate the prior, "
        "not the data)."
    )
    return contraction, uninformed, caution


#: Said of an ADVI fit whose loss passed :func:`_advi_loss_caution`.
_ADVI_FLAT_NOTE = ("The ADVI loss had stopped falling (the median of its last tenth of steps "
                   "is within the noise of the tenth before): the optimisation converged, "
                   "though the mean-field approximation may still understate the uncertainty.")


def _advi_loss_caution(idata: xr.DataTree) -> str | None:
    """Return a caution when the ADVI loss had not flattened (None when it had, or no trace)."""
    if "advi_loss" not in idata.children:
        return None
    loss = np.asarray(idata["advi_loss"].to_dataset()["loss"].values, dtype=float)
    loss = loss[np.isfinite(loss)]
    if loss.size < _ADVI_MIN_STEPS:
        return (
            f"ADVI ran {loss.size} step(s); at least {_ADVI_MIN_STEPS:,} are needed to see "
            "whether its loss stopped falling."
        )
    w = loss.size // 10
    last, before = loss[-w:], loss[-2 * w : -w]
    drop = float(np.median(before) - np.median(last))
    noise = float(1.4826 * np.median(np.abs(last - np.median(last))))
    if drop > max(noise, 1e-12):
        return (
            f"The ADVI loss was still falling: its median over the last {w:,} steps is "
            f"{drop:.3g} below that of the {w:,} steps before (noise {noise:.3g}); the "
            "approximation had not converged."
        )
    return None


def _late_advice(data_caution: str | None, loss_caution: str | None) -> list[str]:
    advice = []
    if data_caution:
        advice.append(
            "Parameters the data did not inform: check that the data hold what the model "
            "needs (e.g. enough users, repeat activity, observation time), or report them "
            "as prior assumptions."
        )
    if loss_caution:
        advice.append("Raise advi_steps (e.g. fit(method='advi', advi_steps=50_000)), or fit "
                      "with method='nuts'.")
    return advice




def _check_threshold(name: str, value: float, *, lower: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValueError(
            f"The '{name}' parameter of check_fit must be a number >= {lower:g}. "
            f"Got {value!r} instead."
        )
    if not math.isfinite(value) or value < lower:
        raise ValueError(
            f"The '{name}' parameter of check_fit must be a finite number >= {lower:g}. "
            f"Got {value!r} instead."
        )


def _select_vars(available: list[str], var_names: str | Sequence[str] | None) -> list[str]:
    if var_names is None:
        return available
    names = [var_names] if isinstance(var_names, str) else list(var_names)
    excluded = [n.startswith("~") for n in names]
    if any(excluded) and not all(excluded):
        raise ValueError(
            "var_names must either all name variables to check or all start with '~' to "
            f"exclude variables. Got {names!r} instead."
        )
    bare = [n[1:] if n.startswith("~") else n for n in names]
    unknown = [n for n in bare if n not in available]
    if unknown:
        raise ValueError(
            f"var_names {unknown!r} not in the posterior. Available variables: {available!r}."
        )
    if all(excluded) and names:
        return [n for n in available if n not in bare]
    return bare


def _sampler_name(idata: xr.DataTree) -> str | None:
    for attrs in (idata.attrs, idata["posterior"].attrs):
        if attrs.get("sampler"):
            return str(attrs["sampler"])
    for node in ("sample_stats", "posterior"):
        if node in idata.children:
            attrs = idata[node].attrs
            lib = attrs.get("inference_library")
            if lib:
                version = attrs.get("inference_library_version")
                return f"{lib} {version}" if version else str(lib)
    return None


def _recorded_method(idata: xr.DataTree) -> str | None:
    for attrs in (idata.attrs, idata["posterior"].attrs):
        for key in METHOD_ATTRS:
            if attrs.get(key):
                return str(attrs[key]).lower()
    return None


def _non_mcmc_reason(
    idata: xr.DataTree, posterior: xr.Dataset, stats: xr.Dataset | None, n_draws: int
) -> tuple[str, str | None]:
    method = _recorded_method(idata)
    if method is not None and method in NON_MCMC_METHODS:
        return method, f"The fit was made with method '{method}', not MCMC."
    if "optimizer_result" in idata.children:
        return "map", "The fit is a MAP estimate (it has an 'optimizer_result' group), not MCMC."
    method = method or "mcmc"
    if "chain" not in posterior.dims or "draw" not in posterior.dims:
        return method, (
            f"The posterior has no chain/draw dimensions (dims: {dict(posterior.sizes)})."
        )
    if n_draws < 4:
        return method, f"Only {n_draws} draw(s) per chain; at least 4 are needed."
    if stats is None or not stats.data_vars:
        return method, (
            "No sampler statistics (sample_stats group missing or empty), as for a MAP or "
            "variational fit."
        )
    return method, None


def _empty_table(posterior: xr.Dataset) -> pd.DataFrame:
    rows = [
        {
            "variable": name,
            "size": _size(da),
            "rhat": math.nan,
            "ess_bulk": math.nan,
            "ess_tail": math.nan,
            "flags": "",
        }
        for name, da in posterior.data_vars.items()
    ]
    return pd.DataFrame(rows, columns=["variable", "size", "rhat", "ess_bulk", "ess_tail", "flags"])


def _size(da: xr.DataArray) -> int:
    return int(np.prod([n for d, n in da.sizes.items() if d not in ("chain", "draw")], dtype=int))


def _variable_table(
    posterior: xr.Dataset,
    n_chains: int,
    rhat_max: float,
    ess_min: float,
    notes: list[str],
    problems: list[str],
) -> pd.DataFrame:
    table = _empty_table(posterior)
    numeric = [n for n, da in posterior.data_vars.items() if np.issubdtype(da.dtype, np.number)]
    skipped = [n for n in posterior.data_vars if n not in numeric]
    if skipped:
        notes.append(f"Non-numeric variables skipped: {', '.join(skipped)}.")
    constant, nonfinite, checked = [], [], []
    for name in numeric:
        values = posterior[name].values
        if not np.isfinite(values).all():
            nonfinite.append(name)
        elif values.size and np.all(values == values.flat[0]):
            constant.append(name)
        else:
            checked.append(name)
    if constant:
        notes.append(
            f"Constant variables have no R-hat or ESS and were not checked: {', '.join(constant)}."
        )
    if nonfinite:
        problems.append(f"Non-finite draws (NaN or inf) in: {', '.join(nonfinite)}.")
    if not checked:
        return table
    ds = posterior[checked]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = az.rhat(ds, method="rank") if n_chains >= 2 else None
        bulk = az.ess(ds, method="bulk")
        tail = az.ess(ds, method="tail")
    index = {name: i for i, name in enumerate(table["variable"])}
    for name in checked:
        i = index[name]
        if rhat is not None:
            table.loc[i, "rhat"] = _reduce(rhat[name], "max")
        table.loc[i, "ess_bulk"] = _reduce(bulk[name], "min")
        table.loc[i, "ess_tail"] = _reduce(tail[name], "min")
    for i, row in table.iterrows():
        flags = []
        if row["rhat"] > rhat_max:
            flags.append("rhat")
        if row["ess_bulk"] < ess_min:
            flags.append("ess_bulk")
        if row["ess_tail"] < ess_min:
            flags.append("ess_tail")
        if row["variable"] in nonfinite:
            flags.append("non-finite")
        table.loc[i, "flags"] = ",".join(flags)
    return table


def _reduce(da: xr.DataArray, how: str) -> float:
    values = np.asarray(da.values, dtype=float).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan
    return float(values.max() if how == "max" else values.min())


#: a chain whose mean log density lies this many within-chain sds below the best chain's
#: samples another, poorer region (chains in one mode differ by about sd / sqrt(ESS))
_STUCK_SDS = 5.0


def _stuck_chains(stats: xr.Dataset | None) -> str | None:
    """Say which chains sit in a region of far lower log density than the best chain's.

    Read from the sampler's log density (``lp`` from PyMC, ``logp`` from nutpie); None
    when it is not recorded, there is one chain, or no chain is far below.
    """
    name = next((n for n in ("lp", "logp") if stats is not None and n in stats), None)
    if name is None or stats[name].sizes.get("chain", 0) < 2:
        return None
    lp = stats[name].transpose("chain", ...)
    values = np.asarray(lp.values, dtype=float).reshape(lp.sizes["chain"], -1)
    values[~np.isfinite(values)] = np.nan  # a rejected or failed draw's -inf: left out
    if np.isnan(values).all(axis=1).any():
        return None
    means, sds = np.nanmean(values, axis=1), np.nanstd(values, axis=1)
    best = int(np.argmax(means))
    labels = lp["chain"].values if "chain" in lp.coords else np.arange(len(means))
    low = [c for c in range(len(means)) if c != best
           and means[best] - means[c] > _STUCK_SDS * max(sds[best], sds[c], 1e-12)]
    if not low:
        return None
    worst = max(low, key=lambda c: means[best] - means[c])
    chains = ", ".join(str(labels[c]) for c in low)
    return (f"Chain(s) {chains} sample a region whose log density averages "
            f"{means[best] - means[worst]:,.1f} below chain {labels[best]}'s (within-chain sd "
            f"{max(sds[best], sds[worst]):.1f}): stuck in a poorer mode, their draws do not "
            "describe the posterior, and the R-hat failure comes from them.")


def _quote(rows: pd.DataFrame, column: str, fmt: str) -> str:
    return ", ".join(f"{r.variable} ({fmt.format(getattr(r, column))})" for r in rows.itertuples())


def _count_stat(stats: xr.Dataset | None, names: Sequence[str]) -> int | None:
    if stats is None:
        return None
    for name in names:
        if name in stats.data_vars:
            return int(np.asarray(stats[name].values, dtype=bool).sum())
    return None


def _ebfmi(stats: xr.Dataset | None) -> tuple[float, ...]:
    if stats is None:
        return ()
    for name in ENERGY_STATS:
        if name in stats.data_vars:
            energy = stats[name]
            if "chain" not in energy.dims:
                energy = energy.expand_dims("chain")
            with np.errstate(all="ignore"):
                values = az.bfmi(energy)
            return tuple(float(v) for v in np.atleast_1d(np.asarray(values)))
    return ()
