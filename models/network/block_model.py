r"""Bayesian (degree-corrected) Poisson stochastic block model, fitted by collapsed Gibbs."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any, ClassVar, Self

import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr
from scipy.special import gammaln

from models._compiled import usable_cpus
from models._validation import check_positive_int
from models.base import PosteriorModel, resolve_seed
from models.diagnostics import check_fit
from models.exceptions import ConvergenceWarning
from models.network import _gibbs
from models.network._edgelist import (
    edge_list_from_dataset,
    edge_list_to_dataset,
    label_array,
    pair_codes,
    validate_edge_list,
)
from models.predict import posterior_arrays, predict_in_batches, prediction_method, sample_shape
from models.priors import Prior

__all__ = ["StochasticBlockModel", "select_n_blocks"]

DEFAULT_STARTS_INFERRED = 4
"""Annealed starts per chain by default with the number of blocks inferred."""
DEFAULT_STARTS_FIXED = 16
"""Annealed starts per chain by default with ``n_blocks`` fixed."""
MAX_THIN = 64
"""Largest spacing of recorded draws, in sweeps, that ``thin=None`` reaches."""

_FAMILIES = {"omega": "Gamma", "theta": "Dirichlet", "block_weights": "Dirichlet"}


class StochasticBlockModel(PosteriorModel):
    r"""Poisson stochastic block model with optional degree correction (Karrer & Newman 2011).

    Parameters
    ----------
    n_blocks : int or None, default None
        Number of blocks :math:`K` (some may stay empty). ``None``: inferred, see
        ``max_blocks`` and :meth:`n_blocks_posterior`.
    max_blocks : int, default 12
        With ``n_blocks=None``, the model has this many labels (at most the number of
        nodes) and the number of occupied blocks has a posterior (see Notes).
    degree_corrected : bool, default True
        Give every node its own propensity :math:`\theta_i`; without it all
        :math:`\theta_i = 1` and blocks tend to group nodes by degree.
    priors : mapping, optional
        Replace the defaults by name: ``"omega"`` (``Gamma(alpha, beta)`` on
        :math:`\omega_{rs} / \bar\omega`), ``"theta"`` (``Dirichlet(a)``, symmetric
        within each block) and ``"block_weights"`` (``Dirichlet(a)`` on :math:`\pi`).
        Only these families are conjugate, so others are an error.
    weight : str, optional
        Edge attribute holding non-negative integer edge multiplicities (e.g.
        ``"common"`` of a co-listening graph). ``None``: every edge counts once.

    Attributes
    ----------
    idata_ : xarray.DataTree
        ``posterior``: ``z`` (chain, draw, node), ``omega`` (chain, draw, block,
        ``block_``), ``pi`` (chain, draw, block), ``theta`` (chain, draw, node; degree
        corrected only) and ``log_likelihood`` (chain, draw); labels of every draw
        are aligned to :meth:`point_partition`. ``sample_stats``: ``lp`` (collapsed
        :math:`\log p(A, z)`) and ``log_likelihood``.
    data_ : pandas.DataFrame
        Edge list ``source``, ``target``, ``count``; ``data_.attrs["nodes"]`` lists
        every node, isolated ones included.

    Notes
    -----
    For nodes :math:`i < j` with blocks :math:`z_i, z_j` (Karrer & Newman's
    convention adds self-pairs :math:`A_{ii}/2 \sim \mathrm{Poisson}(\theta_i^2
    \omega_{z_i z_i}/2)`, observed 0 in simple graphs):

    .. math::

        A_{ij} \sim \mathrm{Poisson}(\theta_i \theta_j \omega_{z_i z_j}), \quad
        z_i \sim \mathrm{Categorical}(\pi), \quad
        \pi \sim \mathrm{Dirichlet}(\gamma \mathbf 1_K), \\
        \omega_{rs} \sim \mathrm{Gamma}(a, b / \bar\omega), \quad
        (\theta_i)_{i: z_i = r} \sim \mathrm{Dirichlet}(\eta \mathbf 1_{n_r})

    With degree correction :math:`\sum_{i \in r} \theta_i = 1`, so :math:`\omega_{rs}`
    is the expected number of edges between blocks :math:`r` and :math:`s`
    (:math:`2\times` within :math:`r`); the posterior mean of :math:`\theta_i` is close
    to Karrer & Newman's :math:`k_i / \kappa_{z_i}`. Without it :math:`\theta_i = 1` and
    :math:`\omega_{rs}` is the edge rate of one pair of nodes. :math:`\bar\omega` is the
    average rate (edges over total exposure), making the Gamma prior scale free;
    defaults :math:`a = b = \eta = \gamma = 1`.

    With ``n_blocks=None`` the model has :math:`K` = ``max_blocks`` labels and the
    number of occupied blocks :math:`B` is a random quantity (a sparse finite
    mixture: Nobile 2004, Malsiner-Walli et al. 2016); merge-split moves create and
    remove blocks, and :meth:`n_blocks_posterior` gives its posterior. Each occupied
    pair of blocks adds a rate whose integrated prior costs about
    :math:`\log(2|E|)` nats, so extra blocks must earn their keep; :math:`\bar\omega`
    is then that of one block (:math:`2|E|`), whatever ``max_blocks``.

    All of :math:`\omega, \theta, \pi` integrate out in closed form, giving

    .. math::

        p(A, z) \propto \prod_{r \le s} \frac{\Gamma(e_{rs} + a)}
        {(X_{rs} + b/\bar\omega)^{e_{rs} + a}}
        \prod_r \frac{\Gamma(n_r \eta)}{\Gamma(\kappa_r + n_r \eta)}
        \frac{\prod_r \Gamma(n_r + \gamma)}{\Gamma(n + K\gamma)}

    with :math:`e_{rs}` the edges between (within) blocks, :math:`\kappa_r` the degree
    sum and :math:`X_{rs} = \Theta_r \Theta_s` (:math:`\Theta_r^2/2` on the diagonal;
    :math:`\Theta_r = 1` for a non-empty block with degree correction, :math:`n_r`
    without). :meth:`fit` is a collapsed Gibbs sampler on :math:`z` alone: each sweep
    draws every label from :math:`p(z_i \mid z_{-i}, A)` (a compiled loop over nodes),
    and Metropolis-Hastings merge-split moves change many labels at once; then
    :math:`\omega, \theta, \pi` are drawn from their exact Gamma / Dirichlet
    conditionals given :math:`z`. Each chain starts from the best of several short
    annealed runs (``n_starts`` of :meth:`fit`), as single-site updates rarely leave
    a local mode of the labels. This is fully Bayesian (no plug-in :math:`\theta`) and has no
    :math:`\theta`-:math:`\omega` scale ridge to slow mixing. Labels are exchangeable, so
    each draw is relabelled (Hungarian algorithm) to best match the MAP partition; use
    :meth:`coassignment_matrix` for label-free summaries.

    The labels are discrete, so PyMC's NUTS cannot sample them, and the model has no
    PyMC graph. It is therefore a :class:`~models.base.PosteriorModel`, not a
    :class:`~models.base.BayesianModel`: its :meth:`fit` takes the Gibbs sampler's
    options instead of ``method``, ``sampler`` or ``target_accept``, and it has no
    PyMC posterior predictive or pointwise log-likelihood. Everything after the fit
    (``summary``, ``diagnostics``, ``posterior_draws``, ``save``, ``load``) is the
    same as for every other model.

    References
    ----------
    Karrer, B. and Newman, M. E. J. (2011). Stochastic blockmodels and community
    structure in networks. *Phys. Rev. E* 83, 016107.
    Jain, S. and Neal, R. M. (2004). A split-merge Markov chain Monte Carlo procedure
    for the Dirichlet process mixture model. *J. Comput. Graph. Stat.* 13(1), 158-182.
    Dahl, D. B. (2006). Model-based clustering for expression data via a Dirichlet
    process mixture model. In *Bayesian Inference for Gene Expression and Proteomics*.
    Nobile, A. (2004). On the posterior distribution of the number of components in a
    finite mixture. *Ann. Stat.* 32(5), 2044-2073.
    Malsiner-Walli, G., Frühwirth-Schnatter, S. and Grün, B. (2016). Model-based clustering
    based on sparse finite Gaussian mixtures. *Stat. Comput.* 26, 303-324.
    Côme, E. and Latouche, P. (2015). Model selection and clustering in stochastic block
    models based on the exact integrated complete data likelihood. *Stat. Model.* 15(6).

    Examples
    --------
    >>> import networkx as nx
    >>> from models.network import StochasticBlockModel
    >>> graph = nx.karate_club_graph()
    >>> sbm = StochasticBlockModel(n_blocks=2).fit(
    ...     graph, draws=100, tune=50, chains=2, random_seed=1)  # doctest: +SKIP
    >>> sbm.point_partition().value_counts().sort_index().tolist()  # doctest: +SKIP
    [16, 18]
    """

    default_priors: ClassVar[Mapping[str, Prior]] = {
        "omega": Prior("Gamma", alpha=1.0, beta=1.0),
        "theta": Prior("Dirichlet", a=0.5),
        "block_weights": Prior("Dirichlet", a=1.0),
    }

    def __init__(
        self,
        *,
        n_blocks: int | None = None,
        max_blocks: int = 12,
        degree_corrected: bool = True,
        priors: Mapping[str, Prior | Mapping[str, Any]] | None = None,
        weight: str | None = None,
    ) -> None:
        if n_blocks is not None:
            check_positive_int("StochasticBlockModel", "n_blocks", n_blocks)
        check_positive_int("StochasticBlockModel", "max_blocks", max_blocks)
        if not isinstance(degree_corrected, bool | np.bool_):
            raise ValueError(
                "The 'degree_corrected' parameter of StochasticBlockModel must be a bool. "
                f"Got {degree_corrected!r} instead."
            )
        self.n_blocks = n_blocks
        self.max_blocks = max_blocks
        self.degree_corrected = degree_corrected
        self.weight = weight
        super().__init__(priors=priors)
        self._hyper_constants()

    # ------------------------------------------------------------------ priors
    def _hyper_constants(self) -> dict[str, float]:
        priors = self.resolved_priors()
        values = {}
        for name, family in _FAMILIES.items():
            prior = priors[name]
            keys = ("alpha", "beta") if family == "Gamma" else ("a",)
            params = [np.asarray(prior.params.get(k, np.nan), dtype=float) for k in keys]
            ok = prior.distribution == family and all(
                p.ndim == 0 and np.isfinite(p) and p > 0 for p in params
            )
            if not ok:
                raise ValueError(
                    f"The prior {name!r} of StochasticBlockModel must be a {family} with "
                    f"positive scalar {', '.join(keys)} (conjugacy). Got {prior!r} instead."
                )
            values.update({f"{name}_{k}": float(p) for k, p in zip(keys, params, strict=True)})
        return values

    def _labels(self, n_nodes: int) -> int:
        """Return the number of labels: ``n_blocks``, or ``max_blocks`` capped at the nodes."""
        return self.n_blocks if self.n_blocks is not None else min(self.max_blocks, n_nodes)

    def _hyper(self, total_edges: float, n_nodes: int) -> _gibbs.Hyper:
        c = self._hyper_constants()
        # With the number of blocks inferred, the scale is that of one block (all edges),
        # so the prior on a block pair's rate does not depend on the number of labels.
        scale = _gibbs.omega_scale(total_edges, n_nodes, self.n_blocks or 1,
                                   self.degree_corrected)
        return _gibbs.Hyper(
            a=c["omega_alpha"],
            b=c["omega_beta"] / scale,
            eta=c["theta_a"],
            gamma=c["block_weights_a"],
            degree_corrected=bool(self.degree_corrected),
        )

    # ------------------------------------------------------------------ data
    def _validate_data(self, data: Any) -> pd.DataFrame:
        return validate_edge_list(data, self.weight, type(self).__name__)

    def _arrays(self, data: pd.DataFrame) -> tuple[pd.Index, sp.csr_matrix, np.ndarray]:
        nodes = pd.Index(data.attrs["nodes"], tupleize_cols=False)
        u = nodes.get_indexer(data["source"])
        v = nodes.get_indexer(data["target"])
        count = data["count"].to_numpy(dtype=float)
        n = len(nodes)
        adj = sp.csr_matrix((np.r_[count, count], (np.r_[u, v], np.r_[v, u])), shape=(n, n))
        adj.sum_duplicates()
        adj.eliminate_zeros()
        return nodes, adj, np.asarray(adj.sum(axis=1)).ravel()

    def _parameter_names(self) -> list[str]:
        # The collapsed log joint tells chains in different modes apart even where the
        # log-likelihood (noisy with its drawn rates) and the rates do not.
        if self.n_blocks is None:  # labels beyond the occupied blocks carry prior draws
            return ["n_occupied", "log_likelihood", "log_joint"]
        return ["omega", "pi", "log_likelihood", "log_joint"]

    def _data_to_dataset(self, data: pd.DataFrame) -> xr.Dataset:
        return edge_list_to_dataset(data)

    def _data_from_dataset(self, ds: xr.Dataset) -> pd.DataFrame:
        return edge_list_from_dataset(ds)

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        data: nx.Graph | pd.DataFrame,
        *,
        draws: int = 500,
        tune: int = 200,
        chains: int = 4,
        n_starts: int | None = None,
        merge_split: int = 1,
        thin: int | None = None,
        random_seed: int | np.random.Generator | None = None,
        cores: int | None = None,
    ) -> Self:
        r"""Sample the posterior of block labels and rates with a collapsed Gibbs sampler.

        Parameters
        ----------
        data : networkx.Graph or pandas.DataFrame
            Undirected graph without self-loops, or an edge list with columns
            ``source``, ``target`` and optionally ``count``.
        draws, tune, chains : int, default 500, 200, 4
            Recorded sweeps per chain, discarded sweeps per chain, and chains (each
            from its own starts and seed).
        n_starts : int, optional
            Each chain starts from the best, by the collapsed :math:`\log p(A, z)`, of
            this many short annealed runs from random labellings (see Notes). ``1``:
            start from a single random labelling, without such runs. ``None``
            (default): 4 with the number of blocks inferred (``n_blocks=None``), 16 with
            it fixed; ``metadata["n_starts"]`` records the number used.
        merge_split : int, default 1
            Merge-split moves per occupied block after every tuning sweep and before
            every recorded draw (see Notes); ``0``: single-site Gibbs only.
            ``sample_stats["merge_split_accept"]`` records the share accepted.
        thin : int, optional
            Sweeps per recorded draw. ``None`` (default): 1, doubled while the chains
            disagree (see Notes), up to 64; 1 for a single chain.
        random_seed : int, numpy.random.Generator or None
            Same seed and data give identical draws; stored in ``idata_.attrs``.
        cores : int, optional
            Chains run in parallel threads, up to this many at once. ``None`` (default):
            the CPUs this process may use. Each chain has its own random stream, so the
            draws do not depend on ``cores``.

        Returns
        -------
        self
            Fitted model; ``fit_report_`` checks R-hat and ESS of ``omega`` and ``pi``
            (with ``n_blocks`` fixed; the number of occupied blocks when it is
            inferred), the log-likelihood and the collapsed log joint
            :math:`\log p(A, z)` (posterior variable ``log_joint``).

        Raises
        ------
        ValueError
            For invalid settings.
        models.exceptions.DataValidationError
            For invalid data.

        Notes
        -----
        Single-site label updates rarely leave a local mode of :math:`p(z \mid A)`
        (say two communities merged and another split), so chains from single random
        labellings can settle in different modes. With ``n_starts > 1`` each chain
        first makes ``n_starts`` runs, each from a random labelling: 50 Gibbs sweeps
        at an inverse temperature rising linearly from 0.2 to 1, then iterated
        conditional modes to a local mode, then a greedy clean-up: with the number of
        blocks inferred, blocks merge, and split into empty labels, while that raises
        the log joint by more than 10 nats; with ``n_blocks`` fixed, the two blocks that
        cost least merge and another splits into the freed label while that raises it
        by as much (a run can end with a block cut in two halves or two blocks joined,
        modes the merge-split moves did not leave in 32,000 sweeps on a 5,000-node
        planted graph). The chain starts from the run with the
        highest collapsed log joint and makes its ``tune`` discarded and ``draws``
        recorded sweeps at temperature 1 (with ``n_starts=1`` the tuning sweeps are
        annealed instead, as the only escape from a poor start). Only the start and
        the burn-in change, so the recorded sweeps remain exact Gibbs updates from
        :math:`p(z_i \mid z_{-i}, A)`. Every chain searches from its own random
        starts, so agreement between chains (R-hat) still checks that independent
        searches reach the same mode; it does not show that one chain moves between
        modes. The starts cost about ``n_starts * 50`` sweeps per chain. With the
        number of blocks inferred, 4 by default: empty labels let the merge-split moves
        split a block and merge two, so they repair the starts' merged and split blocks
        (even the best of 16 starts is typically hundreds of nats below the mode), and on
        planted graphs of 240 and 1,000 nodes 4 starts passed the fit check as often as
        16 (every fit) in 15-30% less time. With ``n_blocks`` fixed every label is
        usually occupied, so the moves can only redistribute the nodes of two blocks, and
        a start with two blocks merged and one split can hold a chain for hundreds of
        sweeps: 16 by default (on planted 4-block graphs of 1,000 nodes 4 starts left the
        chains disagreeing until 16-32 sweeps per draw, 16 starts 1-2). Without
        merge-split moves (``merge_split=0``) only the starts bring the chains to one
        mode. Evidence: ``benchmarks/bench_network_starts.py``.

        Merge-split moves change many labels at once, so a chain can move between
        modes that single-site updates connect only through improbable partitions.
        Each move picks two blocks through two random nodes (the second block at
        random when both nodes share one) and proposes new labels for all their nodes
        by restricted Gibbs sampling (Jain & Neal 2004): a launch state from a random
        split and 3 restricted Gibbs scans, then one more scan as the proposal. The
        Metropolis-Hastings ratio uses the collapsed :math:`p(A, z)`, the probability
        of choosing the pair of blocks and the probabilities of the final scan forward
        and back, so every move leaves :math:`p(z \mid A)` invariant. A move costs
        about 5 restricted scans of the nodes of the two blocks.

        Some posteriors have modes that even these moves join only every few dozen
        sweeps (on the karate club with 2 blocks: the two factions, and labellings
        close to random that stand for "no block structure"). With ``thin=None`` the
        chains therefore continue until they agree: after the ``draws`` recorded
        draws, while the fit check (:func:`models.diagnostics.check_fit` on the
        variables above) does not pass, every other draw is
        dropped and the chains continue with the rest recorded twice as many sweeps
        apart, so each chain still holds ``draws`` draws, equally spaced, and its
        whole run is one Markov chain. This stops at 64 sweeps per draw (about
        ``64 * draws`` sweeps per chain in all); ``metadata["thin"]`` records the
        spacing reached. Stopping on a convergence diagnostic can bias the estimates
        slightly (the chains stop when they look alike); fix ``thin`` to avoid it.
        """
        owner = f"{type(self).__name__}.fit"
        check_positive_int(owner, "draws", draws)
        check_positive_int(owner, "tune", tune, allow_zero=True)
        check_positive_int(owner, "chains", chains)
        if n_starts is None:
            n_starts = DEFAULT_STARTS_INFERRED if self.n_blocks is None else DEFAULT_STARTS_FIXED
        check_positive_int(owner, "n_starts", n_starts)
        check_positive_int(owner, "merge_split", merge_split, allow_zero=True)
        if thin is not None:
            check_positive_int(owner, "thin", thin)
        if cores is not None:
            check_positive_int(owner, "cores", cores)
        seed = resolve_seed(random_seed)
        data_ = self._validate_data(data)
        nodes, adj, degree = self._arrays(data_)
        if self.n_blocks is not None and self.n_blocks > len(nodes):
            raise ValueError(
                f"The 'n_blocks' parameter of {type(self).__name__} must be at most the number "
                f"of nodes of the graph ({len(nodes)}); more blocks than nodes leave blocks "
                f"empty. Got {self.n_blocks} instead."
            )
        hyper = self._hyper(float(data_["count"].sum()), len(nodes))
        log_fact = float(gammaln(data_["count"].to_numpy() + 1.0).sum())
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(chains)]
        k = self._labels(len(nodes))
        workers = min(chains, usable_cpus() if cores is None else cores)
        cancel = threading.Event()

        def start(rng: np.random.Generator) -> _gibbs.Chain:
            return _gibbs.Chain(adj, degree, k, hyper, rng=rng, log_factorial=log_fact,
                                n_starts=n_starts, merge_split=merge_split, cancel=cancel,
                                merge_starts=self.n_blocks is None,
                                swap_starts=self.n_blocks is not None)

        def first(run: _gibbs.Chain) -> None:
            run.tune(tune)
            run.record(draws, every)

        def thinned(run: _gibbs.Chain) -> None:
            run.keep_every_other()
            run.record(draws - len(run.draws["lp"]), every)

        runs = _in_threads(start, rngs, workers, cancel)
        every = 1 if thin is None else thin
        _in_threads(first, runs, workers, cancel)
        while (thin is None and every < MAX_THIN and chains > 1 and draws > 1
               and not self._chains_agree(runs, nodes)):
            every *= 2  # keep every other draw, then record the rest twice as far apart
            _in_threads(thinned, runs, workers, cancel)
        results = [run.result() for run in runs]
        stacked = {k: np.stack([r[k] for r in results]) for k in results[0] if results[0][k]
                   is not None}
        # MAP partition: hill-climb from the 3 best draws of each chain, keep the best.
        best = [
            _gibbs.climb(adj, degree, r["z"][d], k, hyper, log_fact)
            for r in results
            for d in np.argsort(r["lp"])[-3:]
        ]
        map_z, map_lp = max(best, key=lambda pair: pair[1])
        self._store_fit(
            self._to_tree(stacked, nodes, _gibbs.canonical(map_z), map_lp), data_,
            method="gibbs", sampler="collapsed-gibbs", draws=draws, tune=tune, chains=chains,
            n_starts=n_starts, merge_split=merge_split, thin=every, random_seed=seed,
        )
        self._check()
        return self

    def _chains_agree(self, runs: list[_gibbs.Chain], nodes: pd.Index) -> bool:
        """Whether the fit check passes on the draws so far (labels aligned to the best)."""
        results = [run.result() for run in runs]
        stacked = {k: np.stack([r[k] for r in results]) for k in results[0]
                   if results[0][k] is not None}
        c, d = np.unravel_index(np.argmax(stacked["lp"]), stacked["lp"].shape)
        tree = self._to_tree(stacked, nodes, _gibbs.canonical(stacked["z"][c, d].astype(
            np.int64)), float(stacked["lp"][c, d]))
        with np.errstate(divide="ignore", invalid="ignore"):  # a constant n_occupied
            return check_fit(tree, var_names=self._parameter_names()).verdict == "pass"

    def _check(self) -> None:
        # Every draw may have the same number of blocks: R-hat of a constant is NaN
        # (reported as such), without numpy's division warnings.
        with np.errstate(divide="ignore", invalid="ignore"):
            super()._check()

    def _to_tree(
        self, draws: dict[str, np.ndarray], nodes: pd.Index, reference: np.ndarray, map_lp: float
    ) -> xr.DataTree:
        z = draws["z"].astype(np.int64)
        k = draws["omega"].shape[-1]
        chains, n_draws, n = z.shape
        flat = z.reshape(-1, n)
        perm = _gibbs.align_all_to(reference, flat, k)
        inverse = np.argsort(perm, axis=1)
        z = np.take_along_axis(perm, flat, axis=1).reshape(chains, n_draws, n)
        rows = np.arange(flat.shape[0])[:, None, None]
        draws["omega"] = draws["omega"].reshape(-1, k, k)[
            rows, inverse[:, :, None], inverse[:, None, :]].reshape(chains, n_draws, k, k)
        draws["pi"] = np.take_along_axis(draws["pi"].reshape(-1, k), inverse,
                                         axis=1).reshape(chains, n_draws, k)
        node_ids = label_array(list(nodes))  # keeps 1 an int beside "a"
        coords = {"chain": np.arange(chains), "draw": np.arange(n_draws), "node": node_ids,
                  "block": np.arange(k), "block_": np.arange(k)}
        posterior = {
            "z": (("chain", "draw", "node"), z.astype(np.int16)),
            "omega": (("chain", "draw", "block", "block_"), draws["omega"]),
            "pi": (("chain", "draw", "block"), draws["pi"]),
            "log_likelihood": (("chain", "draw"), draws["log_likelihood"]),
            "log_joint": (("chain", "draw"), draws["lp"]),
            "n_occupied": (("chain", "draw"), (np.diff(np.sort(z, axis=-1), axis=-1) > 0)
                           .sum(axis=-1) + 1),
        }
        if "theta" in draws:
            posterior["theta"] = (("chain", "draw", "node"), draws["theta"])
        stats = {
            "lp": (("chain", "draw"), draws["lp"]),
            "log_likelihood": (("chain", "draw"), draws["log_likelihood"]),
            "merge_split_accept": (("chain", "draw"), draws["accept"]),
        }
        return xr.DataTree.from_dict(
            {
                "posterior": xr.Dataset(posterior, coords=coords),
                "sample_stats": xr.Dataset(stats, coords={k_: coords[k_] for k_ in
                                                          ("chain", "draw")}),
                "map_partition": xr.Dataset(
                    {"z": ("node", reference), "lp": ((), map_lp)}, coords={"node": node_ids}
                ),
            }
        )

    def sample_posterior_predictive(self, **kwargs: Any) -> xr.DataTree:
        """Not available: the block model is sampled by a custom Gibbs sampler, not PyMC."""
        raise NotImplementedError(
            "StochasticBlockModel has no PyMC posterior predictive; simulate graphs from "
            "posterior_draws('omega'), 'theta' and 'z' instead."
        )

    # ------------------------------------------------------------------ results
    def coassignment_matrix(self) -> pd.DataFrame:
        """Posterior probability that two nodes share a block (label-switching invariant).

        Returns
        -------
        pandas.DataFrame
            Square, indexed and columned by node; diagonal 1.
        """
        self._require_fitted("coassignment_matrix()")
        z = self.idata_["posterior"]["z"]
        flat = z.values.reshape(-1, z.sizes["node"]).astype(np.int64)
        nodes = z["node"].values
        return pd.DataFrame(
            _gibbs.coassignment(flat, self.idata_["posterior"].sizes["block"]),
            index=nodes, columns=nodes
        )

    def point_partition(self, method: str = "map") -> pd.Series:
        r"""Point estimate of the partition.

        Parameters
        ----------
        method : {"map", "least_squares"}, default "map"
            ``"map"``: the partition with the largest collapsed posterior
            :math:`p(z \mid A)` found: the 3 best draws of each chain improved by
            iterated conditional modes (moving single nodes while that helps).
            ``"least_squares"``: the draw closest in squared error to the
            co-assignment matrix (Dahl 2006), a summary of the whole posterior; it
            differs from the MAP when the posterior is diffuse.

        Returns
        -------
        pandas.Series
            Block of each node (index: node), blocks numbered in order of first
            appearance along the nodes.

        Raises
        ------
        ValueError
            If ``method`` is unknown.
        """
        self._require_fitted("point_partition()")
        if method not in ("map", "least_squares"):
            raise ValueError(
                "The 'method' parameter of StochasticBlockModel.point_partition must be one "
                f"of ['map', 'least_squares']. Got {method!r} instead."
            )
        z = self.idata_["posterior"]["z"]
        flat = z.values.reshape(-1, z.sizes["node"]).astype(np.int64)
        if method == "map":
            best = self.idata_["map_partition"]["z"].values.astype(np.int64)
        else:
            k = self.idata_["posterior"].sizes["block"]
            coassign = _gibbs.coassignment(flat, k)
            best = flat[_gibbs.least_squares_draw(flat, coassign, k)]
        return pd.Series(_gibbs.canonical(best), index=z["node"].values, name="block")

    @prediction_method(renamed={"pairs": "data"})
    def probability_edge(
        self,
        data: pd.DataFrame | Sequence[tuple[Any, Any]] | None = None,
        *,
        ci_prob: float = 0.89,
        max_draws: int | None = 1000,
        random_seed: int | np.random.Generator | None = None,
        return_draws: bool = False,
    ) -> pd.DataFrame | xr.DataArray:
        r"""Posterior probability that each pair of nodes is linked.

        Parameters
        ----------
        data : pandas.DataFrame or sequence of (source, target), optional
            Pairs of training nodes (columns ``source`` and ``target``, or 2-tuples);
            the training edges by default. (``pairs`` is its deprecated name.)
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
            ``mean``, ``sd``, ``ci_lower``, ``ci_upper`` per pair, indexed by
            (``source``, ``target``); or the draws, dims ``(chain, draw, pair)``
            with that index as the ``pair`` coordinate (one chain of ``max_draws``
            draws when ``max_draws`` keeps a subset).

        Raises
        ------
        models.exceptions.NotFittedError
            Before :meth:`fit`.
        models.exceptions.DataValidationError
            If a pair names a node the model was not fitted on.

        Notes
        -----
        For every posterior draw of :math:`(z, \theta, \omega)`,

        .. math::

            P(A_{ij} > 0) = 1 - \exp(-\theta_i \theta_j \omega_{z_i z_j})

        (:math:`\theta = 1` without degree correction), so the block labels, the rates
        and the degree propensities are all averaged over; the result does not depend
        on how blocks are labelled.
        """
        self._require_fitted("probability_edge()")
        owner = "StochasticBlockModel.probability_edge"
        nodes = pd.Index(self.data_.attrs["nodes"], tupleize_cols=False)
        pairs = self.data_[["source", "target"]] if data is None else data
        index, i, j = pair_codes(pairs, nodes, owner)
        names = ["z", "omega", *(["theta"] if self.degree_corrected else [])]
        q_all = posterior_arrays(self.idata_, names, max_draws=max_draws,
                                 random_seed=resolve_seed(random_seed))
        q_all["z"] = q_all["z"].astype(np.int64)
        frame = pd.DataFrame({"_row": np.arange(len(index))}, index=index)

        def func(q: Mapping[str, np.ndarray], block: pd.DataFrame) -> np.ndarray:
            r = block["_row"].to_numpy()
            zi, zj = q["z"][:, i[r]], q["z"][:, j[r]]
            draw = np.arange(zi.shape[0])[:, None]
            rate = q["omega"][draw, zi, zj]
            if self.degree_corrected:
                rate = rate * q["theta"][:, i[r]] * q["theta"][:, j[r]]
            return -np.expm1(-rate)

        return predict_in_batches(func, q_all, frame, ci_prob=ci_prob, return_draws=return_draws,
                                  shape=sample_shape(self.idata_, max_draws), unit="pair",
                                  name="probability_edge")

    def n_blocks_posterior(self) -> pd.DataFrame:
        r"""Posterior of the number of occupied blocks.

        Returns
        -------
        pandas.DataFrame
            Index ``n_blocks`` (every number of occupied blocks seen in a draw);
            column ``probability`` (share of draws). ``attrs`` holds ``mean``,
            ``ci_lower`` and ``ci_upper`` (equal-tailed 89%) and ``map`` (the
            occupied blocks of :meth:`point_partition`).

        Notes
        -----
        With ``n_blocks=None`` this is the posterior of the number of blocks: the
        model has ``max_blocks`` labels with a symmetric Dirichlet prior on their
        weights (a sparse finite mixture, Malsiner-Walli et al. 2016), so the
        collapsed :math:`p(A, z)` itself penalises each extra block (through the
        integrated block rates and weights) and the merge-split moves of
        :meth:`fit` add and remove blocks. With ``n_blocks`` given, it shows how many
        of the ``n_blocks`` labels the data fill.
        """
        self._require_fitted("n_blocks_posterior()")
        counts = self.idata_["posterior"]["n_occupied"].values.ravel()
        values, freq = np.unique(counts, return_counts=True)
        table = pd.DataFrame({"probability": freq / counts.size},
                             index=pd.Index(values, name="n_blocks"))
        lower, upper = np.quantile(counts, [0.055, 0.945], method="inverted_cdf")
        table.attrs.update(mean=float(counts.mean()), ci_lower=int(lower), ci_upper=int(upper),
                           map=int(self.point_partition().nunique()))
        return table

    def integrated_complete_likelihood(self) -> float:
        r"""Exact ICL: the collapsed :math:`\log p(A, z \mid K)` at the MAP partition.

        Returns
        -------
        float
            Used by :func:`select_n_blocks` (Côme & Latouche 2015).
        """
        self._require_fitted("integrated_complete_likelihood()")
        return float(self.idata_["map_partition"]["lp"])


def _in_threads[T, R](task: Callable[[T], R], items: Sequence[T], workers: int,
                      cancel: threading.Event) -> list[R]:
    """``[task(item) for item in items]``, up to ``workers`` at a time in threads.

    The chains' compiled kernels release the GIL, so threads run them in parallel. As
    soon as any task fails, or the wait is interrupted (Ctrl-C), ``cancel`` is set, so the
    other chains stop at their next step (:class:`models.network._gibbs.Cancelled`), and
    the error is raised.
    """
    if workers <= 1 or len(items) <= 1:
        return [task(item) for item in items]
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sbm-chain")
    try:
        futures = [pool.submit(task, item) for item in items]
        wait(futures, return_when=FIRST_EXCEPTION)  # not in order: any chain may fail first
        for future in futures:
            if future.done() and future.exception() is not None:
                raise future.exception()
        return [future.result() for future in futures]
    except BaseException:
        cancel.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def select_n_blocks(
    graph: nx.Graph | pd.DataFrame,
    candidates: Sequence[int] = (1, 2, 3, 4),
    *,
    degree_corrected: bool = True,
    priors: Mapping[str, Prior | Mapping[str, Any]] | None = None,
    weight: str | None = None,
    draws: int = 200,
    tune: int = 100,
    chains: int = 2,
    n_starts: int | None = None,
    random_seed: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    r"""Choose the number of blocks by the exact integrated complete-data likelihood.

    Parameters
    ----------
    graph : networkx.Graph or pandas.DataFrame
        As for :meth:`StochasticBlockModel.fit`.
    candidates : sequence of int, default (1, 2, 3, 4)
        Numbers of blocks to compare.
    degree_corrected, priors, weight
        Passed to :class:`StochasticBlockModel`.
    draws, tune, chains : int, default 200, 100, 2
        Gibbs settings for each candidate.
    n_starts : int, optional
        Annealed starting runs per chain (see :meth:`StochasticBlockModel.fit`; default:
        16, as the number of blocks is fixed for each candidate).
    random_seed : int, numpy.random.Generator or None
        Seed of the first candidate; the others use the following seeds.

    Returns
    -------
    pandas.DataFrame
        Index ``n_blocks``; columns ``icl`` (:math:`\log p(A, \hat z \mid K)` at the
        MAP partition :math:`\hat z`, see :meth:`StochasticBlockModel.point_partition`),
        ``occupied`` (non-empty blocks of :math:`\hat z`) and ``selected`` (True for
        the largest ICL).

    Raises
    ------
    ValueError
        If ``candidates`` is empty or holds a non-positive integer.

    Notes
    -----
    The exact ICL of Côme & Latouche (2015) is the collapsed joint
    :math:`\log p(A, \hat z \mid K)` (see :class:`StochasticBlockModel`) at the best
    partition found, with every rate and the block weights integrated out, so it
    penalises extra blocks through the priors rather than an asymptotic term.

    Examples
    --------
    >>> import networkx as nx
    >>> graph = nx.planted_partition_graph(3, 15, 0.6, 0.03, seed=2)
    >>> table = select_n_blocks(graph, (2, 3, 4), random_seed=1)  # doctest: +SKIP
    >>> int(table.index[table["selected"]][0])  # doctest: +SKIP
    3
    """
    candidates = list(candidates)
    if not candidates:
        raise ValueError("The 'candidates' parameter of select_n_blocks must not be empty.")
    seed = resolve_seed(random_seed)
    rows = []
    for offset, k in enumerate(candidates):
        check_positive_int("select_n_blocks", "candidates", k)
        model = StochasticBlockModel(
            n_blocks=k, degree_corrected=degree_corrected, priors=priors, weight=weight
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(graph, draws=draws, tune=tune, chains=chains, n_starts=n_starts,
                      random_seed=seed + offset)
        rows.append(
            {
                "n_blocks": k,
                "icl": model.integrated_complete_likelihood(),
                "occupied": int(model.point_partition().nunique()),
            }
        )
    table = pd.DataFrame(rows).set_index("n_blocks")
    table["selected"] = table["icl"] == table["icl"].max()
    return table
