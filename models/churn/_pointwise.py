r"""Per-unit log-likelihoods and replicated data of the churn models, with numpy.

The churn models evaluate their likelihood on compressed rows (users sharing a
summary, cohort survivor counts, person-period cells), which PyMC cannot expand
into one value per observation; their ``_pointwise_log_likelihood`` and
``_posterior_predictive`` hooks call these functions on blocks of units. Every
function takes parameter draws that broadcast against the units: ``(draws, 1)``
or ``(draws, units)`` arrays, and returns ``(draws, units)``.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from models.data._generators import geometric

__all__ = [
    "bernoulli_logit_loglik",
    "bgnbd_loglik",
    "sbg_transition_loglik",
    "simulate_bgbb_summary",
    "simulate_bgnbd_summary",
]


def bgnbd_loglik(r, alpha, a, b, x, t_x, T):
    r"""BG/NBD log-likelihood of each user's ``(x, t_x, T)`` (Fader, Hardie & Lee 2005, eq. 6).

    .. math::

        \log L = \log\Gamma(r+x) - \log\Gamma(r) + r\log\alpha + \log B(a, b+x) - \log B(a, b)
            + \operatorname{logaddexp}\big(-(r+x)\log(\alpha+T),\;
            \mathbb 1_{x>0}[\log a - \log(b+x-1) - (r+x)\log(\alpha+t_x)]\big)

    (the same terms the compiled kernel of :class:`~models.churn.BetaGeoModel` sums).
    """
    rx = r + x
    const = (special.gammaln(rx) - special.gammaln(r) + r * np.log(alpha)
             + special.betaln(a, b + x) - special.betaln(a, b))
    alive = -rx * np.log(alpha + T)
    dead = np.log(a) - np.log(b + np.maximum(x, 1.0) - 1.0) - rx * np.log(alpha + t_x)
    return const + np.where(x > 0, np.logaddexp(alive, dead), alive)


def simulate_bgnbd_summary(r, alpha, a, b, T, rng: np.random.Generator):
    r"""Draw each user's ``(frequency, recency)`` over ``(0, T]`` from the BG/NBD model.

    :math:`\lambda \sim \mathrm{Gamma}(r, \alpha)`, :math:`p \sim \mathrm{Beta}(a, b)`;
    the count while alive is :math:`N \sim \mathrm{Poisson}(\lambda T)`, the user drops
    out right after repeat activity :math:`J \sim \mathrm{Geometric}(p)`, so
    :math:`x = \min(N, J)`, and the last activity is the :math:`x`-th of :math:`N`
    uniform times on :math:`(0, T]`: :math:`t_x = T\,\mathrm{Beta}(x, N - x + 1)`.

    Returns
    -------
    frequency, recency : numpy.ndarray
        Int64 counts and float times, ``(draws, users)``.
    """
    shape = np.broadcast_shapes(np.shape(r), np.shape(T))
    lam = rng.gamma(np.broadcast_to(r, shape), 1.0 / np.broadcast_to(alpha, shape))
    p = rng.beta(np.broadcast_to(a, shape), np.broadcast_to(b, shape))
    T = np.broadcast_to(T, shape)
    n = rng.poisson(lam * T)
    x = np.minimum(n, geometric(rng, p)).astype(np.int64)
    has = x > 0
    share = rng.beta(np.maximum(x, 1), np.maximum(n - x + 1, 1))
    return x, np.where(has, T * share, 0.0)


def simulate_bgbb_summary(alpha, beta, gamma, delta, n, rng: np.random.Generator):
    r"""Draw each user's ``(frequency, recency)`` over opportunities ``1..n`` from the BG/BB model.

    :math:`p \sim \mathrm{Beta}(\alpha, \beta)`, :math:`\theta \sim \mathrm{Beta}(\gamma,
    \delta)`; the user is alive for the first :math:`\mathrm{Geometric}(\theta) - 1`
    opportunities and active at each of them with probability :math:`p`.

    Returns
    -------
    frequency, recency : numpy.ndarray
        Int64 arrays, ``(draws, users)``.
    """
    shape = np.broadcast_shapes(np.shape(alpha), np.shape(n))
    p = rng.beta(np.broadcast_to(alpha, shape), np.broadcast_to(beta, shape))
    theta = rng.beta(np.broadcast_to(gamma, shape), np.broadcast_to(delta, shape))
    last = np.minimum(geometric(rng, theta) - 1.0, np.broadcast_to(n, shape))
    x = np.zeros(shape, dtype=np.int64)
    recency = np.zeros(shape, dtype=np.int64)
    for t in range(1, int(np.max(n, initial=0)) + 1):
        active = (t <= last) & (rng.random(shape) < p)
        x += active
        recency[active] = t
    return x, recency


def sbg_transition_loglik(alpha, beta, period, at_risk, churned):
    r"""Log-likelihood of each cohort-period transition of the shifted-beta-geometric model.

    Of the :math:`s_k` users of a cohort alive in period :math:`k`, :math:`d_k` do not
    renew; given the cohort's history that is
    :math:`\mathrm{Binomial}(s_k, h_k)` with :math:`h_k = P(T = k+1 \mid T > k) =
    \alpha / (\alpha + \beta + k)`. The product over a cohort's periods is its
    multinomial likelihood of last-alive periods (coefficient included: the
    binomial coefficients telescope to the multinomial one).
    """
    log_total = np.log(alpha + beta + period)
    coef = (special.gammaln(at_risk + 1.0) - special.gammaln(churned + 1.0)
            - special.gammaln(at_risk - churned + 1.0))
    return (coef + churned * (np.log(alpha) - log_total)
            + (at_risk - churned) * (np.log(beta + period) - log_total))


def bernoulli_logit_loglik(eta, y):
    r""":math:`y \log h + (1 - y)\log(1 - h)` with :math:`h = \operatorname{logit}^{-1}\eta`.

    Written as :math:`-\operatorname{softplus}(\mp\eta)`, accurate for any :math:`\eta`.
    """
    return -np.logaddexp(0.0, np.where(y > 0, -eta, eta))
