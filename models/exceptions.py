"""Exceptions and warnings raised by listening-models.

Every error about user data derives from :class:`DataValidationError`, a
``ValueError``, so ``except ValueError`` keeps working for callers who do not
care about the distinction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "ApproximationWarning",
    "ConvergenceWarning",
    "DataQualityWarning",
    "DataValidationError",
    "FitInterrupted",
    "ModelCheckWarning",
    "ModelMismatchError",
    "NotFittedError",
    "Problem",
    "SavedFitError",
    "UninformativeDataWarning",
]


@dataclass(frozen=True)
class Problem:
    """One rule broken by the input data.

    Parameters
    ----------
    column : str
        Column the rule is about (``"<table>"`` for table-wide rules).
    rule : str
        What was expected, in words, e.g. ``"non-negative integers"``.
    n_rows : int
        How many rows break the rule (0 for a rule about the table itself).
    rows : tuple of int
        Positions (0-based) of the first offending rows.
    examples : tuple
        The offending values at those rows.
    fix : str, optional
        A hint on how to fix the data.
    """

    column: str
    rule: str
    n_rows: int = 0
    rows: tuple[int, ...] = ()
    examples: tuple = ()
    fix: str = ""

    def __str__(self) -> str:
        text = f"column '{self.column}': expected {self.rule}"
        if self.n_rows:
            shown = ", ".join(
                f"row {r} ({v!r})" for r, v in zip(self.rows, self.examples, strict=False)
            ) or ", ".join(f"row {r}" for r in self.rows)
            text += f"; {self.n_rows} row(s) break this, first: {shown}"
        if self.fix:
            text += f". Fix: {self.fix}"
        return text


@dataclass
class DataValidationError(ValueError):
    """Input data broke one or more rules; ``problems`` lists every one found.

    Parameters
    ----------
    problems : sequence of Problem
        Every rule broken, in the order they were checked.
    what : str
        Name of the table that was checked, used in the message.
    """

    problems: Sequence[Problem] = field(default_factory=list)
    what: str = "data"

    def __post_init__(self) -> None:
        self.problems = list(self.problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [f"Invalid {self.what}: {len(self.problems)} problem(s) found."]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)

    def __reduce__(self):
        return (type(self), (self.problems, self.what))


class NotFittedError(RuntimeError):
    """A model method that needs a fitted model was called before ``fit``."""


class ModelMismatchError(ValueError):
    """A saved fit does not belong to the model class or version asked to load it."""


class SavedFitError(ValueError):
    """A saved fit that cannot be used: unreadable (truncated, corrupt) or incomplete.

    Raised by :meth:`models.base.PosteriorModel.load` instead of the reader's own
    error, with the file's path and what to do.
    """


class FitInterrupted(KeyboardInterrupt):
    """Sampling or optimisation was interrupted (Ctrl-C) before it finished.

    PyMC and nutpie return the draws made so far when interrupted; ``fit`` raises
    this instead of returning a fit with fewer draws or chains than asked. It is a
    :class:`KeyboardInterrupt`, so ``except Exception`` does not swallow it.
    """


class ConvergenceWarning(UserWarning):
    """A fit did not pass its convergence checks (R-hat, ESS, divergences, E-BFMI)."""


class ApproximationWarning(UserWarning):
    """An approximation used by a fit (e.g. Laplace user effects) is measurably off.

    The message quotes the diagnostic (Pareto k of importance weights) and what to do.
    """


class UninformativeDataWarning(UserWarning):
    """The data did not inform some parameters: their posterior is close to their prior.

    Issued by ``fit`` when the posterior of a parameter is (nearly) as wide as its
    prior (posterior contraction below the threshold of
    :func:`models.diagnostics.check_fit`), e.g. the dropout parameters of BG/NBD when
    no user has repeat activity. The numbers then restate the prior.
    """


class ModelCheckWarning(UserWarning):
    """A model check failed beyond the model's own uncertainty.

    Predictions miscalibrated on held-out outcomes
    (:func:`models.metrics.calibration_check` with ``warn=True``), or a posterior
    predictive check the model cannot pass (:func:`models.churn.gaps.gap_check`);
    the churn analysis warns it loudly. The message names the statistic, what was
    observed and what the model allows.
    """


class DataQualityWarning(UserWarning):
    """Rows of the input data broke a rule and were dropped, as the caller asked.

    Issued by :func:`models.data.validation.validate_events` with
    ``drop_invalid=True``; the message says how many rows were dropped and why.
    ``problems`` holds the :class:`Problem` records behind the message.
    """

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)
