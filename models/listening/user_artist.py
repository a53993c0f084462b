r"""Crossed user and artist effects on a user x artist play-count matrix.

How many times user :math:`u` played artist :math:`a` is modelled with a
log-linear mean :math:`\log\mu_{ua} = \beta_0 + b_u + c_a`, which separates how
much a user listens (:math:`b_u`) from how intensely an artist is played by the
people who play it (:math:`c_a`), and a count distribution whose dispersion can
vary by user or by artist to follow the heavy tail of real play counts.

Logs such as Last.fm's ``user_artists.dat`` list only the pairs that were
played, so by default the likelihood is *zero-truncated*: it describes the
plays of an artist *given that the user played it at all* (see
:class:`UserArtistModel`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy import stats

from models._validation import add_problem
from models.base import BayesianModel, resolve_seed
from models.data.schema import ARTIST_ID, USER_ID
from models.data.summaries import UserArtistCounts
from models.exceptions import DataValidationError, Problem
from models.listening.play_count import (
    check_columns,
    check_count_column,
    interval_summary,
)
from models.predict import (
    eti_bounds,
    posterior_arrays,
    predict_in_batches,
    prediction_method,
    sample_shape,
)
from models.priors import Prior

__all__ = ["UserArtistModel", "zero_truncated_negbin_logp", "zero_truncated_poisson_logp"]

PLAYS = "plays"
LIKELIHOODS = ("negbin", "poisson", "negbin_user_dispersion", "negbin_artist_dispersion")
#: Largest number of cells a sparse matrix is expanded to with ``include_zeros=True``.
MAX_DENSE_CELLS = 2_000_000
_DISPERSION_DIM = {"negbin_user_dispersion": USER_ID, "negbin_artist_dispersion": ARTIST_ID}
_USER, _ARTIST = "user", "artist"
#: With ``noncentered="auto"``, a factor whose levels have a median of fewer pairs than
#: this is sampled non-centred (little data per level), otherwise centred.
AUTO_NONCENTERED_BELOW = 5


# ------------------------------------------------------------ log-likelihoods
def _negbin_logp(value: Any, eta: Any, alpha: Any, truncated: bool) -> Any:
    # log NB(y | mu = exp(eta), alpha) written with softplus so that tiny and huge
    # means stay accurate: log(alpha / (alpha + mu)) = -softplus(eta - log alpha).
    log_alpha = pt.log(alpha)
    log_p0 = -alpha * pt.softplus(eta - log_alpha)
    logp = (pt.gammaln(value + alpha) - pt.gammaln(alpha) - pt.gammaln(value + 1.0)
            + log_p0 - value * pt.softplus(log_alpha - eta))
    return logp - pt.log1mexp(log_p0) if truncated else logp


def _poisson_logp(value: Any, eta: Any, truncated: bool) -> Any:
    mu = pt.exp(eta)
    logp = value * eta - mu - pt.gammaln(value + 1.0)
    return logp - pt.log1mexp(-mu) if truncated else logp


def _as_float(x: Any) -> Any:
    # Python numbers become small int or float32 constants in PyTensor; force float64.
    return pt.cast(pt.as_tensor(x), "float64")


def zero_truncated_negbin_logp(value: Any, eta: Any, alpha: Any) -> Any:
    r"""Log-pmf of the zero-truncated negative binomial (a PyTensor expression).

    Parameters
    ----------
    value : tensor-like
        Counts, 1 or more.
    eta : tensor-like
        Log of the mean :math:`\mu` of the untruncated negative binomial.
    alpha : tensor-like
        Dispersion :math:`\alpha > 0` (variance :math:`\mu + \mu^2/\alpha`).

    Returns
    -------
    pytensor.tensor.TensorVariable
        :math:`\log \mathrm{NB}(y \mid \mu, \alpha) - \log(1 - \mathrm{NB}(0 \mid \mu, \alpha))`,
        broadcast over the inputs.

    Notes
    -----
    With :math:`p_0 = (\alpha / (\alpha + \mu))^\alpha`,

    .. math::

        \log p(y \mid y > 0) = \log\Gamma(y + \alpha) - \log\Gamma(\alpha) - \log y!
            + \alpha \log\frac{\alpha}{\alpha + \mu} + y \log\frac{\mu}{\alpha + \mu}
            - \log(1 - p_0).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import stats
    >>> lp = zero_truncated_negbin_logp(3.0, np.log(2.0), 1.5).eval()
    >>> nb = stats.nbinom(1.5, 1.5 / 3.5)
    >>> ref = nb.logpmf(3) - np.log1p(-nb.pmf(0))
    >>> bool(np.isclose(lp, ref))
    True
    """
    return _negbin_logp(_as_float(value), _as_float(eta), _as_float(alpha), True)


def zero_truncated_poisson_logp(value: Any, eta: Any) -> Any:
    r"""Log-pmf of the zero-truncated Poisson (a PyTensor expression).

    Parameters
    ----------
    value : tensor-like
        Counts, 1 or more.
    eta : tensor-like
        Log of the Poisson mean :math:`\mu`.

    Returns
    -------
    pytensor.tensor.TensorVariable
        :math:`y \log\mu - \mu - \log y! - \log(1 - e^{-\mu})`.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import stats
    >>> lp = zero_truncated_poisson_logp(2.0, np.log(0.5)).eval()
    >>> bool(np.isclose(lp, stats.poisson.logpmf(2, 0.5) - np.log1p(-np.exp(-0.5))))
    True
    """
    return _poisson_logp(_as_float(value), _as_float(eta), True)


def _draw_counts(eta: np.ndarray, alpha: np.ndarray | None, truncated: bool,
                 rng: np.random.Generator, size: Any) -> np.ndarray:
    """Draw (zero-truncated) Poisson or negative binomial counts by inverse CDF."""
    shape = size if size is not None else np.broadcast_shapes(
        np.shape(eta), () if alpha is None else np.shape(alpha))
    mu = np.broadcast_to(np.exp(eta), shape)
    if alpha is None:
        dist = stats.poisson(mu)
    else:
        a = np.broadcast_to(alpha, shape)
        dist = stats.nbinom(a, a / (a + mu))
    low = dist.cdf(0) if truncated else np.zeros(shape)
    u = low + (1.0 - low) * rng.uniform(size=shape)
    out = dist.ppf(np.minimum(u, np.nextafter(1.0, 0.0)))
    return np.maximum(out, 1.0 if truncated else 0.0).astype("int64")


# ------------------------------------------------------------------ model
class UserArtistModel(BayesianModel):
    r"""Crossed user and artist effects on play counts of (user, artist) pairs.

    Parameters
    ----------
    priors : mapping of str to Prior, optional
        Replace default priors by name: ``intercept``, ``sigma_user``,
        ``sigma_artist``, ``alpha`` (negative binomial dispersion; the median
        dispersion for the ``*_dispersion`` likelihoods) and
        ``sigma_dispersion`` (spread of the log dispersion across users or
        artists).
    likelihood : {"negbin", "poisson", "negbin_user_dispersion", "negbin_artist_dispersion"}
        Count distribution: negative binomial with one dispersion (default);
        Poisson; negative binomial whose dispersion varies by user (how
        concentrated each user's listening is) or by artist, as a
        hierarchical log-normal effect.
    include_zeros : bool, default False
        False: the data hold only played pairs (plays >= 1) and the likelihood
        is zero-truncated, i.e. it models plays *given that the user played the
        artist*. True: zeros are observations too and the likelihood is not
        truncated; a :class:`~models.data.summaries.UserArtistCounts` matrix
        is then expanded to every cell (at most 2 million).
    noncentered : bool or "auto", default "auto"
        Sample the user and artist effects non-centred (True), centred
        (False), or choose per factor ("auto"): non-centred when the median
        user (or artist) has fewer than 5 pairs, where the data say little
        about each level, centred otherwise. Only the sampling geometry
        changes, not the model.

    Attributes
    ----------
    idata_, model_, data_, fit_report_
        See :class:`~models.base.BayesianModel`. ``data_`` has columns
        ``user_id``, ``artist_id``, ``plays``, one row per pair.

    Notes
    -----
    For user :math:`u` and artist :math:`a` with :math:`y_{ua}` plays:

    .. math::

        \log \mu_{ua} = \beta_0 + b_u + c_a, \qquad
        b \sim \mathrm{ZeroSumNormal}(\sigma_u), \;
        c \sim \mathrm{ZeroSumNormal}(\sigma_a), \\
        y_{ua} \sim \mathrm{NegBin}(\mu_{ua}, \alpha_{ua}) \;\text{truncated to}\; y \ge 1,
        \qquad \operatorname{Var} = \mu + \mu^2/\alpha,

    with :math:`\alpha_{ua} = \alpha` (``"negbin"``),
    :math:`\log\alpha_{ua} = \log\alpha + \sigma_\alpha w_u` (``"negbin_user_dispersion"``) or
    :math:`\log\alpha + \sigma_\alpha w_a` (``"negbin_artist_dispersion"``),
    :math:`w \sim \mathrm{ZeroSumNormal}(1)`; ``"poisson"`` is the limit
    :math:`\alpha \to \infty`. Non-centred, :math:`b_u = \sigma_u z_u` with
    :math:`z \sim \mathrm{ZeroSumNormal}(1)` (variables ``user_z``, ``artist_z``);
    centred, the effects are the variables ``user_effect``, ``artist_effect``.

    The effects are the hierarchical :math:`N(0, \sigma^2)` effects with their
    sample mean moved into the intercept (each ZeroSumNormal component has
    variance :math:`\sigma^2 (n-1)/n`): :math:`\beta_0` is the log-mean for the
    average user and artist of the data. Without the constraint the intercept
    and the mean effects form a ridge that NUTS crosses slowly (an effective
    sample size of 86 of 1,000 draws for the intercept on a Last.fm subset,
    347 with it).

    :math:`b_u` is how much user :math:`u` plays the artists they play;
    :math:`c_a` is how intensely artist :math:`a` is played *by its
    listeners*, not how many listeners it has (the number of listeners is a
    separate column of :meth:`artist_effects`).

    *What the likelihood is conditioned on.* A table of played pairs carries
    no zeros, so modelling it with an untruncated count distribution would
    treat the absence of zeros as evidence about :math:`\mu`. The zero-truncated
    likelihood :math:`p(y \mid y \ge 1) = \mathrm{NB}(y) / (1 - \mathrm{NB}(0))`
    is the honest model for "how much, given they listen". Modelling the full
    matrix instead (``include_zeros=True``) answers "how much, including
    whether at all", but the Last.fm matrix has 33 million cells, far too
    many for NUTS. Last.fm HetRec lists each user's *top 50* artists, a
    stronger selection than :math:`y \ge 1`: the truncation point is really
    each user's 50th-largest count, so the fitted tail describes top artists.

    *LOO and predictive checks.* The unit of the pointwise log-likelihood
    (:meth:`compute_log_likelihood`, variable ``plays``, dim ``pair``) is one
    (user, artist) pair, under the (zero-truncated) count distribution. PyMC
    computes it, and the replicates of :meth:`sample_posterior_predictive`,
    from the observed ``plays``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> pairs = pd.DataFrame({"user_id": np.repeat(np.arange(8), 5),
    ...                       "artist_id": np.tile(["a", "b", "c", "d", "e"], 8)})
    >>> pairs["plays"] = 1 + rng.poisson(np.tile([20.0, 10, 5, 3, 2], 8))
    >>> model = UserArtistModel().fit(pairs, method="advi", advi_steps=5000, draws=200,
    ...                               random_seed=0, progressbar=False)
    >>> ranking = model.artist_popularity_ranking()
    >>> ranking.index[0]
    'a'
    """

    default_priors: ClassVar[Mapping[str, Prior]] = {
        "intercept": Prior("Normal", mu=3.0, sigma=3.0),
        "sigma_user": Prior("HalfNormal", sigma=2.0),
        "sigma_artist": Prior("HalfNormal", sigma=2.0),
        "alpha": Prior("Gamma", alpha=2.0, beta=1.0),
        "sigma_dispersion": Prior("HalfNormal", sigma=1.0),
    }

    def __init__(
        self,
        *,
        priors: Mapping[str, Prior | Mapping[str, Any]] | None = None,
        likelihood: Literal[
            "negbin", "poisson", "negbin_user_dispersion", "negbin_artist_dispersion"
        ] = "negbin",
        include_zeros: bool = False,
        noncentered: bool | Literal["auto"] = "auto",
    ) -> None:
        self.likelihood = likelihood
        self.include_zeros = include_zeros
        self.noncentered = noncentered
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"The 'likelihood' parameter of UserArtistModel must be one of "
                             f"{list(LIKELIHOODS)}. Got {likelihood!r} instead.")
        if not isinstance(include_zeros, bool):
            raise ValueError("The 'include_zeros' parameter of UserArtistModel must be True or "
                             f"False. Got {include_zeros!r} instead.")
        if not (isinstance(noncentered, bool) or noncentered == "auto"):
            raise ValueError("The 'noncentered' parameter of UserArtistModel must be True, False "
                             f"or 'auto'. Got {noncentered!r} instead.")
        super().__init__(priors=priors)

    # ---------------------------------------------------------------- data
    def _as_frame(self, data: Any, owner: str) -> pd.DataFrame:
        """Return the long (user_id, artist_id, plays) table of a DataFrame or UserArtistCounts."""
        if not isinstance(data, UserArtistCounts):
            check_columns(data, [USER_ID, ARTIST_ID, PLAYS], owner, "user-artist table",
                          "pass one row per (user_id, artist_id) pair with its plays, or "
                          "models.data.summaries.user_artist_matrix output")
            return data[[USER_ID, ARTIST_ID, PLAYS]].reset_index(drop=True)
        matrix = data.matrix
        if self.include_zeros:
            n_cells = matrix.shape[0] * matrix.shape[1]
            if n_cells > MAX_DENSE_CELLS:
                raise ValueError(
                    f"The matrix passed to {owner} has {n_cells:,} cells, too many to model "
                    f"with include_zeros=True (at most {MAX_DENSE_CELLS:,}). Restrict it to "
                    "fewer users and artists, or use include_zeros=False."
                )
            rows, cols = np.divmod(np.arange(n_cells), matrix.shape[1])
            values = np.asarray(matrix.toarray()).ravel()
        else:
            coo = matrix.tocoo()
            keep = coo.data != 0
            rows, cols, values = coo.row[keep], coo.col[keep], coo.data[keep]
        return pd.DataFrame({USER_ID: data.users[rows], ARTIST_ID: data.artists[cols],
                             PLAYS: values})

    def _validate_data(self, data: Any) -> pd.DataFrame:
        what = "user-artist table"
        frame = self._as_frame(data, "UserArtistModel.fit")
        problems: list[Problem] = []
        for c in (USER_ID, ARTIST_ID):
            add_problem(problems, c, "no missing ids", frame[c].isna().to_numpy(),
                        frame[c].to_numpy())
        check_count_column(problems, frame, PLAYS)
        if problems:
            raise DataValidationError(problems, what=what)
        plays = frame[PLAYS].to_numpy(dtype=float)
        if not self.include_zeros:
            add_problem(problems, PLAYS,
                        "positive counts (the zero-truncated likelihood models plays given "
                        "that the user played the artist)", plays == 0, plays,
                        fix="drop the zero rows, or use include_zeros=True to model zeros")
        dup = frame.duplicated([USER_ID, ARTIST_ID]).to_numpy()
        add_problem(problems, ARTIST_ID, "one row per (user_id, artist_id) pair", dup,
                    frame[ARTIST_ID].to_numpy(), fix="sum the plays of duplicate pairs")
        if problems:
            raise DataValidationError(problems, what=what)
        frame[PLAYS] = frame[PLAYS].astype("int64")
        return frame.sort_values([USER_ID, ARTIST_ID], kind="stable").reset_index(drop=True)

    def _levels(self, data: pd.DataFrame | None = None) -> dict[str, pd.Index]:
        data = self.data_ if data is None else data
        return {c: pd.Index(pd.unique(data[c]), name=c).sort_values()
                for c in (USER_ID, ARTIST_ID)}

    def _codes(self, rows: pd.DataFrame, owner: str) -> dict[str, np.ndarray]:
        """Return the positions of the rows' user and artist ids among the training levels."""
        levels = self._levels()
        problems: list[Problem] = []
        codes = {}
        for c in (USER_ID, ARTIST_ID):
            codes[c] = levels[c].get_indexer(rows[c])
            shown = [*levels[c][:10].tolist(), *(["..."] if len(levels[c]) > 10 else [])]
            add_problem(problems, c, f"ids seen in training, such as {shown}", codes[c] < 0,
                        rows[c].to_numpy(), fix="predict only for users and artists in the fit")
        if problems:
            raise DataValidationError(problems, what=f"rows passed to {owner}")
        return codes

    # --------------------------------------------------------------- model
    @property
    def _dispersion_dim(self) -> str | None:
        return _DISPERSION_DIM.get(self.likelihood)

    def _build_model(self, data: pd.DataFrame) -> pm.Model:
        priors = self.resolved_priors()
        levels = self._levels(data)
        u = levels[USER_ID].get_indexer(data[USER_ID])
        a = levels[ARTIST_ID].get_indexer(data[ARTIST_ID])
        coords = {_USER: levels[USER_ID], _ARTIST: levels[ARTIST_ID], "pair": np.arange(len(data))}
        truncated = not self.include_zeros
        with pm.Model(coords=coords) as model:
            intercept = priors["intercept"].create("intercept")
            sigma_user = priors["sigma_user"].create("sigma_user")
            sigma_artist = priors["sigma_artist"].create("sigma_artist")
            effects = {}
            for kind, sigma in ((_USER, sigma_user), (_ARTIST, sigma_artist)):
                if self._is_noncentered(kind, data):
                    effects[kind] = sigma * pm.ZeroSumNormal(f"{kind}_z", sigma=1.0, dims=kind)
                else:
                    effects[kind] = pm.ZeroSumNormal(f"{kind}_effect", sigma=sigma, dims=kind)
            eta = intercept + effects[_USER][u] + effects[_ARTIST][a]
            observed = data[PLAYS].to_numpy()
            if self.likelihood == "poisson":
                pm.CustomDist(
                    PLAYS, eta,
                    logp=lambda y, e: _poisson_logp(y, e, truncated),
                    random=lambda e, rng=None, size=None: _draw_counts(e, None, truncated,
                                                                         rng, size),
                    dtype="int64", observed=observed, dims="pair",
                )
                return model
            alpha = priors["alpha"].create("alpha")
            dim = self._dispersion_dim
            if dim is not None:
                sigma_disp = priors["sigma_dispersion"].create("sigma_dispersion")
                dims = _USER if dim == USER_ID else _ARTIST
                disp_z = pm.ZeroSumNormal("dispersion_z", sigma=1.0, dims=dims)
                alpha = alpha * pt.exp(sigma_disp * disp_z[u if dim == USER_ID else a])
            pm.CustomDist(
                PLAYS, eta, alpha,
                logp=lambda y, e, al: _negbin_logp(y, e, al, truncated),
                random=lambda e, al, rng=None, size=None: _draw_counts(e, al, truncated,
                                                                         rng, size),
                dtype="int64", observed=observed, dims="pair",
            )
        return model

    def _hyperparameters(self) -> list[str]:
        names = ["intercept", "sigma_user", "sigma_artist"]
        if self.likelihood != "poisson":
            names.append("alpha")
        if self._dispersion_dim is not None:
            names.append("sigma_dispersion")
        return names

    def _is_noncentered(self, kind: str, data: pd.DataFrame | None = None) -> bool:
        """Whether the user or artist effects are sampled non-centred."""
        if self.noncentered != "auto":
            return bool(self.noncentered)
        data = self.data_ if data is None else data
        col = USER_ID if kind == _USER else ARTIST_ID
        return float(data.groupby(col).size().median()) < AUTO_NONCENTERED_BELOW

    def _effect_names(self) -> list[str]:
        return [f"{k}_z" if self._is_noncentered(k) else f"{k}_effect" for k in (_USER, _ARTIST)]

    def _parameter_names(self) -> list[str]:
        names = [*self._hyperparameters(), *self._effect_names()]
        return names + (["dispersion_z"] if self._dispersion_dim is not None else [])

    def summary(
        self, var_names: list[str] | None = None, *, ci_prob: float = 0.89
    ) -> pd.DataFrame:
        """Posterior summary of the hyperparameters (or of ``var_names``).

        Parameters
        ----------
        var_names : list of str, optional
            Variables to summarise; by default ``intercept``, ``sigma_user``,
            ``sigma_artist`` and the dispersion parameters (the per-user and
            per-artist effects are in :meth:`user_effects` and :meth:`artist_effects`).
        ci_prob : float, default 0.89
            Probability mass of the equal-tailed interval.

        Returns
        -------
        pandas.DataFrame
            One row per scalar parameter element.
        """
        return super().summary(var_names or self._hyperparameters(), ci_prob=ci_prob)

    # ---------------------------------------------------------- predictions
    @prediction_method()
    def expected_plays(
        self,
        data: pd.DataFrame | None = None,
        *,
        given_played: bool = True,
        ci_prob: float = 0.89,
        max_draws: int | None = 1000,
        random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Posterior expected plays of (user, artist) pairs.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Rows with ``user_id`` and ``artist_id`` seen in training (other
            columns are ignored); the training pairs by default.
        given_played : bool, default True
            With a zero-truncated fit, return :math:`E[y \mid y \ge 1] =
            \mu / (1 - p_0)`, the plays expected given that the user plays the
            artist; False returns the untruncated mean :math:`\mu`. Ignored
            (always :math:`\mu`) when the fit includes zeros.
        ci_prob : float, default 0.89
            Probability mass of the equal-tailed interval.
        max_draws : int, optional
            Use a random subset of at most this many posterior draws.
        random_seed : int, numpy.random.Generator or None
            Seed of that subset.
        return_draws : bool, default False
            Return the draws instead of the summary.

        Returns
        -------
        pandas.DataFrame or xarray.DataArray
            ``mean``, ``sd``, ``ci_lower``, ``ci_upper`` per row of ``data``
            (same index), computed in batches of rows; or the draws, dims
            ``(chain, draw, row)`` with the data's index as the ``row`` coordinate
            (one chain of ``max_draws`` draws when ``max_draws`` keeps a subset).

        Raises
        ------
        models.exceptions.NotFittedError
            Before :meth:`fit`.
        models.exceptions.DataValidationError
            For missing columns or ids not seen in training (the message names them).
        """
        self._require_fitted("expected_plays()")
        owner = "UserArtistModel.expected_plays"
        if data is None:
            rows = self.data_
        else:
            check_columns(data, [USER_ID, ARTIST_ID], owner, f"rows passed to {owner}",
                          "pass a table with user_id and artist_id columns")
            rows = data
        codes = self._codes(rows, owner)
        names = ["intercept", "sigma_user", "sigma_artist", *self._effect_names()]
        names += [n for n in ("alpha", "sigma_dispersion", "dispersion_z")
                  if n in self._parameter_names()]
        q_all = posterior_arrays(self.idata_, names, max_draws=max_draws,
                                 random_seed=resolve_seed(random_seed))
        truncated = given_played and not self.include_zeros
        dim = self._dispersion_dim
        frame = pd.DataFrame({"_row": np.arange(len(rows))}, index=rows.index)

        def func(q: Mapping[str, np.ndarray], block: pd.DataFrame) -> np.ndarray:
            i = block["_row"].to_numpy()
            u, a = codes[USER_ID][i], codes[ARTIST_ID][i]
            eta = (q["intercept"][:, None] + self._effect_draws(q, _USER, u)
                   + self._effect_draws(q, _ARTIST, a))
            mu = np.exp(eta)
            if not truncated:
                return mu
            if self.likelihood == "poisson":
                return mu / -np.expm1(-mu)
            alpha = np.broadcast_to(q["alpha"][:, None], eta.shape)
            if dim is not None:
                g = u if dim == USER_ID else a
                alpha = alpha * np.exp(q["sigma_dispersion"][:, None] * q["dispersion_z"][:, g])
            log_p0 = -alpha * np.logaddexp(0.0, eta - np.log(alpha))
            return mu / -np.expm1(log_p0)

        return predict_in_batches(func, q_all, frame, ci_prob=ci_prob, return_draws=return_draws,
                                  shape=sample_shape(self.idata_, max_draws), unit="row",
                                  name="expected_plays")

    def _effect_draws(self, q: Mapping[str, np.ndarray], kind: str,
                      index: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Return draws of the user or artist effects (draws x levels) at ``index``."""
        if self._is_noncentered(kind):
            return q[f"sigma_{kind}"][:, None] * q[f"{kind}_z"][:, index]
        return q[f"{kind}_effect"][:, index]

    def _posterior_effects(self, kind: str, max_draws: int | None = None,
                           random_seed: int | np.random.Generator | None = None) -> np.ndarray:
        names = [f"sigma_{kind}",
                 f"{kind}_z" if self._is_noncentered(kind) else f"{kind}_effect"]
        q = posterior_arrays(self.idata_, names, max_draws=max_draws,
                             random_seed=resolve_seed(random_seed))
        return self._effect_draws(q, kind)

    def _effects(self, kind: str, ci_prob: float) -> pd.DataFrame:
        col = USER_ID if kind == _USER else ARTIST_ID
        draws = self._posterior_effects(kind)
        out = interval_summary(draws, ci_prob, self._levels()[col])
        other = ARTIST_ID if col == USER_ID else USER_ID
        counts = self.data_.groupby(col).agg(**{
            "n_artists" if col == USER_ID else "n_listeners": (other, "size"),
            "total_plays": (PLAYS, "sum")})
        return out.join(counts)

    @prediction_method()
    def user_effects(self, *, ci_prob: float = 0.89) -> pd.DataFrame:
        r"""Posterior of each user's effect :math:`b_u` on the log of expected plays.

        Parameters
        ----------
        ci_prob : float, default 0.89
            Probability mass of the equal-tailed interval.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``user_id`` (sorted): ``mean``, ``sd``, ``ci_lower``,
            ``ci_upper``, ``prob_positive`` of :math:`b_u`, and the user's
            ``n_artists`` and ``total_plays`` in the training data.
            :math:`e^{b_u}` is how many times more than average the user plays
            the same artists.
        """
        self._require_fitted("user_effects()")
        return self._effects(_USER, ci_prob)

    @prediction_method()
    def artist_effects(self, *, ci_prob: float = 0.89) -> pd.DataFrame:
        r"""Posterior of each artist's effect :math:`c_a` on the log of expected plays.

        Parameters
        ----------
        ci_prob : float, default 0.89
            Probability mass of the equal-tailed interval.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``artist_id`` (sorted): ``mean``, ``sd``, ``ci_lower``,
            ``ci_upper``, ``prob_positive`` of :math:`c_a`, and the artist's
            ``n_listeners`` and ``total_plays`` in the training data. With a
            zero-truncated fit :math:`c_a` measures how much the artist's
            listeners play it, after allowing for how much they play anything.
        """
        self._require_fitted("artist_effects()")
        return self._effects(_ARTIST, ci_prob)

    @prediction_method()
    def artist_popularity_ranking(
        self,
        *,
        ci_prob: float = 0.89,
        max_draws: int | None = 1000,
        random_seed: int | np.random.Generator | None = None,
    ) -> pd.DataFrame:
        """Rank artists by their effect, with the posterior uncertainty of each rank.

        Parameters
        ----------
        ci_prob : float, default 0.89
            Probability mass of the rank's equal-tailed interval.
        max_draws : int, optional
            Use a random subset of at most this many posterior draws.
        random_seed : int, numpy.random.Generator or None
            Seed of that subset.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``artist_id``, most popular first (by posterior mean
            rank): ``rank_mean``, ``rank_ci_lower``, ``rank_ci_upper`` (1 is
            the top), ``effect_mean``, ``n_listeners`` and ``total_plays``.
        """
        self._require_fitted("artist_popularity_ranking()")
        effect = self._posterior_effects(_ARTIST, max_draws, random_seed)
        ranks = np.empty(effect.shape, dtype=np.int32)
        for start in range(0, effect.shape[0], 100):
            block = effect[start:start + 100]
            ranks[start:start + 100] = (
                stats.rankdata(-block, axis=1, method="ordinal").astype(np.int32))
        lower, upper = eti_bounds(ranks, ci_prob)
        table = self.artist_effects(ci_prob=ci_prob)
        out = pd.DataFrame({"rank_mean": ranks.mean(axis=0),
                            "rank_ci_lower": np.floor(lower).astype(int),
                            "rank_ci_upper": np.ceil(upper).astype(int),
                            "effect_mean": effect.mean(axis=0)}, index=table.index)
        out = out.join(table[["n_listeners", "total_plays"]])
        out.attrs["ci_prob"] = ci_prob
        return out.sort_values(["rank_mean", "effect_mean"], ascending=[True, False])
