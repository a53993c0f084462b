r"""Gamma-distributed user rates integrated out: the collapsed likelihood and its user draws.

With ``PlayCountModel(user_effect="gamma", likelihood="poisson")`` each user's rate
multiplier :math:`\lambda_u` is Gamma with mean 1 and shape :math:`k`, and the plays of
user :math:`u` in period :math:`t` are Poisson with mean
:math:`\lambda_u m_u e^{\phi_t}`, where :math:`m_u` is the user's segment mean and
:math:`\phi_t` the period part of the log-mean. The Gamma is conjugate to the Poisson,
so the user rates integrate out in closed form (a negative multinomial per user):

.. math::

    \log p(y_{u\cdot}) = \log\Gamma(k + Y_u) - \log\Gamma(k) + k\log k
        + Y_u \log m_u - (k + Y_u)\log(k + m_u E_u)
        + \sum_t y_{ut}\phi_t - \sum_t \log y_{ut}!,

with :math:`Y_u = \sum_t y_{ut}` and :math:`E_u = \sum_t e^{\phi_t}` over the user's
periods. A user enters only through their segment, :math:`Y_u` and which periods they
were observed in, so users sharing these are one weighted row: with every user
observed in every period, 100,000 users become a few thousand rows and NUTS samples
a posterior of the population parameters alone. Given those, each user's rate is
exactly :math:`\lambda_u \mid y \sim \mathrm{Gamma}(k + Y_u,\; k + m_u E_u)`
(shape, rate), which :func:`draw_user_log_rates` samples once per posterior draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytensor.tensor as pt

__all__ = ["GammaUserRows", "compress_users", "draw_user_log_rates", "gamma_user_loglik"]


@dataclass(frozen=True)
class GammaUserRows:
    """Users with the same segment, total plays and observed columns, as weighted rows.

    Attributes
    ----------
    codes : numpy.ndarray
        ``(rows, groups)`` level codes of each row's segment.
    total : numpy.ndarray
        ``(rows,)`` plays of each of the row's users.
    n : numpy.ndarray
        ``(rows, columns)`` periods each of the row's users has in each grid column.
    weight : numpy.ndarray
        ``(rows,)`` number of users in the row.
    """

    codes: np.ndarray
    total: np.ndarray
    n: np.ndarray
    weight: np.ndarray


def compress_users(user_codes: np.ndarray, n: np.ndarray, plays: np.ndarray) -> GammaUserRows:
    """Group users whose collapsed likelihood is identical.

    Parameters
    ----------
    user_codes : numpy.ndarray
        ``(users, groups)`` level codes of each user's segment (``groups`` may be 0).
    n, plays : numpy.ndarray
        ``(users, columns)`` periods and summed plays per grid cell.

    Returns
    -------
    GammaUserRows
        The unique rows and how many users each stands for.
    """
    total = plays.sum(axis=1)
    key = np.column_stack([user_codes.astype(np.int64), total.astype(np.int64),
                           n.astype(np.int64)])
    rows, weight = np.unique(key, axis=0, return_counts=True)
    g = user_codes.shape[1]
    return GammaUserRows(codes=rows[:, :g], total=rows[:, g].astype(float),
                         n=rows[:, g + 1:].astype(float), weight=weight.astype(float))


def gamma_user_loglik(
    shape: Any, log_mean: Any, log_exposure: Any, total: np.ndarray, weight: np.ndarray,
) -> Any:
    r"""Return the summed collapsed log-likelihood of weighted user rows (PyTensor scalar).

    The terms of the user's plays per period, :math:`\sum_t y_{ut}\phi_t -
    \sum_t\log y_{ut}!`, do not involve the user rate and are left to the caller.

    Parameters
    ----------
    shape : tensor
        Gamma shape :math:`k` of the user rates.
    log_mean : tensor
        ``(rows,)`` log segment mean :math:`\log m_u`.
    log_exposure : tensor
        ``(rows,)`` :math:`\log E_u`, the log of the summed period means.
    total, weight : numpy.ndarray
        ``(rows,)`` plays per user and users per row.

    Returns
    -------
    tensor
        :math:`\sum_r w_r [\log\Gamma(k+Y_r) - \log\Gamma(k) + k\log k + Y_r\log m_r
        - (k+Y_r)\log(k + m_r E_r)]`.
    """
    k = shape
    log_k = pt.log(k)
    # log(k + m E) = logaddexp(log k, log m + log E) = a + softplus(b - a), one fused op
    b = log_mean + log_exposure
    log_k_me = log_k + pt.softplus(b - log_k)
    per_row = (pt.gammaln(k + total) - pt.gammaln(k) + k * log_k + total * log_mean
               - (k + total) * log_k_me)
    return pt.sum(weight * per_row)


def draw_user_log_rates(
    shape: np.ndarray, log_mean: np.ndarray, exposure: np.ndarray, total: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    r"""Draw each user's log-rate from its exact conditional, once per posterior draw.

    Parameters
    ----------
    shape : numpy.ndarray
        ``(draws,)`` Gamma shape :math:`k`.
    log_mean : numpy.ndarray
        ``(draws, users)`` log segment mean :math:`\log m_u`.
    exposure : numpy.ndarray
        ``(draws, users)`` summed period means :math:`E_u`.
    total : numpy.ndarray
        ``(users,)`` plays per user.
    rng : numpy.random.Generator
        Source of the Gamma draws.

    Returns
    -------
    numpy.ndarray
        ``(draws, users)`` draws of :math:`\log(\lambda_u m_u)`, the user's log-rate on
        the scale of the period means: :math:`\lambda_u m_u \sim
        \mathrm{Gamma}(k + Y_u, k / m_u + E_u)`.
    """
    k = shape[:, None]
    rate = k * np.exp(-log_mean) + exposure
    return np.log(rng.gamma(k + total[None, :], 1.0 / rate))
