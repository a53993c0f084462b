r"""Per-row log-likelihoods of play counts, with numpy, for LOO.

:class:`~models.listening.PlayCountModel` evaluates its likelihood on cell
sufficient statistics inside one ``pm.Potential``; its
``_pointwise_log_likelihood`` hook calls these functions on blocks of user-day
rows. Parameter draws broadcast against the rows: ``(draws, 1)`` or
``(draws, rows)`` arrays; the results are ``(draws, rows)``.
"""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["count_loglik", "gamma_conditional_loglik"]


def _log1mexp(x: np.ndarray) -> np.ndarray:
    """``log(1 - exp(x))`` for ``x < 0``, accurate at both ends (Maechler 2012)."""
    with np.errstate(divide="ignore"):
        return np.where(x > -np.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


def count_loglik(likelihood: str, y: np.ndarray, eta: np.ndarray, alpha: np.ndarray | None = None,
                 zero_logit: np.ndarray | None = None) -> np.ndarray:
    r"""Log-probability of each count ``y`` given the log-mean ``eta`` of the count part.

    Parameters
    ----------
    likelihood : {"poisson", "negbin", "zinb", "hurdle"}
        The count distribution of :class:`~models.listening.PlayCountModel`.
    y : numpy.ndarray
        Counts, ``(rows,)``.
    eta : numpy.ndarray
        :math:`\log\mu`, ``(draws, rows)``.
    alpha, zero_logit : numpy.ndarray, optional
        Negative binomial dispersion and logit of the zero probability :math:`\pi`,
        ``(draws, 1)``.

    Returns
    -------
    numpy.ndarray
        ``(draws, rows)``: :math:`\log\mathrm{Pois}(y; \mu)`,
        :math:`\log\mathrm{NB}(y; \mu, \alpha)`; zero-inflated
        :math:`\log[\pi\,1_{y=0} + (1-\pi)\mathrm{NB}(y)]`; hurdle :math:`\log\pi` for
        :math:`y = 0` and :math:`\log(1-\pi) + \log\mathrm{NB}(y) - \log(1 - \mathrm{NB}(0))`
        otherwise. The same terms as the model's cell likelihood, row by row.
    """
    log_fact = special.gammaln(y + 1.0)
    if likelihood == "poisson":
        return y * eta - np.exp(eta) - log_fact
    log_a = np.log(alpha)
    log_a_mu = np.logaddexp(log_a, eta)  # log(alpha + mu)
    log_p0 = alpha * (log_a - log_a_mu)  # log NB(0)
    nb = (special.gammaln(y + alpha) - special.gammaln(alpha) - log_fact + log_p0
          + y * (eta - log_a_mu))
    if likelihood == "negbin":
        return nb
    log_pi = -np.logaddexp(0.0, -zero_logit)
    log_1m_pi = -np.logaddexp(0.0, zero_logit)
    if likelihood == "zinb":
        return np.where(y == 0, np.logaddexp(log_pi, log_1m_pi + log_p0), log_1m_pi + nb)
    if likelihood == "hurdle":
        return np.where(y == 0, log_pi, log_1m_pi + nb - _log1mexp(log_p0))
    raise ValueError(f"Unknown likelihood {likelihood!r}.")


def gamma_conditional_loglik(shape: np.ndarray, log_mean: np.ndarray, log_e: np.ndarray,
                             exposure: np.ndarray, y: np.ndarray,
                             total: np.ndarray) -> np.ndarray:
    r"""Log-probability of one user-day given the user's other days, Gamma user rates integrated.

    With :math:`y_{ut} \sim \mathrm{Poisson}(\lambda_u m_u e_t)` and
    :math:`\lambda_u \sim \mathrm{Gamma}(k, k)`, the user's other days give
    :math:`\lambda_u \sim \mathrm{Gamma}(k + Y_u - y_{ut},\; k + m_u (E_u - e_t))`, so

    .. math::

        p(y_{ut} \mid y_{u,-t}) = \mathrm{NB}\Big(y_{ut};\; a = k + Y_u - y_{ut},\;
            \frac{b}{b + c}\Big), \quad b = k + m_u(E_u - e_t), \; c = m_u e_t,

    i.e. :math:`\log p(y_u) - \log p(y_{u,-t})` of the collapsed likelihood.

    Parameters
    ----------
    shape : numpy.ndarray
        :math:`k`, ``(draws, 1)``.
    log_mean : numpy.ndarray
        :math:`\log m_u` of each row's user, ``(draws, rows)``.
    log_e : numpy.ndarray
        :math:`\log e_t`, the period part of each row's log-mean, ``(draws, rows)``.
    exposure : numpy.ndarray
        :math:`E_u = \sum_t e_t` over the row's user's days, ``(draws, rows)``.
    y, total : numpy.ndarray
        The row's plays and its user's total plays :math:`Y_u`, ``(rows,)``.

    Returns
    -------
    numpy.ndarray
        ``(draws, rows)``.
    """
    a = shape + total - y
    m = np.exp(log_mean)
    log_c = log_mean + log_e
    rest = np.maximum(exposure - np.exp(log_e), 0.0)
    log_b = np.log(shape + m * rest)
    log_bc = np.logaddexp(log_b, log_c)
    return (special.gammaln(a + y) - special.gammaln(a) - special.gammaln(y + 1.0)
            + a * (log_b - log_bc) + y * (log_c - log_bc))
