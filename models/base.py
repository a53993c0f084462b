"""The one base class for every Bayesian model of listening-models.

A model subclass declares three things: its default priors, how it checks its
input data (``_validate_data``) and the PyMC model it builds from that data
(``_build_model``). The base class does the rest: fitting with an explicit
inference method and sampler, the convergence report, summaries, posterior
predictive sampling and saving/loading a fit.
"""

from __future__ import annotations

import json
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from inspect import Parameter, signature
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from models._atomic import atomic_path
from models._fitfile import (
    check_complete,
    encode_labels,
    import_model_module,
    missing_draws,
    read_fit_file,
)
from models._interrupts import watch_interrupts
from models._version import __version__
from models.diagnostics import FitReport, check_fit, warn_if_not_converged, warn_if_uninformed
from models.diagnostics.contraction import PRIOR_DRAWS
from models.exceptions import FitInterrupted, ModelMismatchError, NotFittedError
from models.priors import Prior, check_prior_domain, draw_prior

__all__ = ["BayesianModel", "resolve_seed"]

METHODS = ("nuts", "advi", "map")
SAMPLERS = ("pymc", "nutpie")
_FIT_DATA_GROUP = "fit_data"
_ATTR_KEY = "listening_models"


def resolve_seed(random_seed: int | np.random.Generator | None) -> int:
    """Turn a seed argument into one non-negative integer.

    Parameters
    ----------
    random_seed : int, numpy.random.Generator or None
        An integer is used as it is; a generator gives its next integer; ``None``
        draws fresh entropy from the operating system.

    Returns
    -------
    int
        A seed in ``[0, 2**32)``.

    Raises
    ------
    ValueError
        If ``random_seed`` is a negative integer or of another type.

    Examples
    --------
    >>> resolve_seed(7)
    7
    >>> import numpy as np
    >>> resolve_seed(np.random.default_rng(0)) == resolve_seed(np.random.default_rng(0))
    True
    """
    if random_seed is None:
        return int(np.random.SeedSequence().entropy % 2**32)
    if isinstance(random_seed, np.random.Generator):
        return int(random_seed.integers(2**32))
    if isinstance(random_seed, int | np.integer) and not isinstance(random_seed, bool):
        if random_seed < 0:
            raise ValueError(f"The 'random_seed' must be non-negative. Got {random_seed} instead.")
        return int(random_seed)
    raise ValueError(
        "The 'random_seed' must be an int, a numpy.random.Generator or None. "
        f"Got {random_seed!r} instead."
    )


def _check_positive_int(owner: str, name: str, value: Any, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(
            f"The '{name}' parameter of {owner} must be a {kind} integer. Got {value!r} instead."
        )


def _check_choice(owner: str, name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(
            f"The '{name}' parameter of {owner} must be one of {list(choices)}. "
            f"Got {value!r} instead."
        )


def _stop_after_interrupt(watch: Any, callback: Any) -> Any:
    """Return a ``pymc.sample`` callback that stops every chain once Ctrl-C was pressed."""

    def stop(trace: Any, draw: Any) -> None:
        if watch.hit:
            raise KeyboardInterrupt
        if callback is not None:
            callback(trace=trace, draw=draw)

    return stop


class BayesianModel(ABC):
    """Base class of all Bayesian models: fit, check, summarise, save and load.

    Subclasses define ``default_priors`` (a mapping of prior name to
    :class:`~models.priors.Prior`), ``_validate_data(data)`` returning the clean
    data, and ``_build_model(data)`` returning a :class:`pymc.Model`. Their
    ``__init__`` takes keyword-only options, stores them unchanged under the
    same names and calls ``super().__init__(priors=priors)``.

    Parameters
    ----------
    priors : mapping of str to Prior or dict, optional
        Priors that replace the defaults of the same name. An unknown name is an
        error that lists the valid ones.

    Attributes
    ----------
    idata_ : xarray.DataTree
        The fit: posterior, sample statistics and the training data.
    model_ : pymc.Model
        The PyMC model built from the training data.
    data_ : pandas.DataFrame
        The validated training data.
    fit_report_ : models.diagnostics.FitReport
        Convergence checks of the fit (R-hat, ESS, divergences, E-BFMI).
    """

    default_priors: ClassVar[Mapping[str, Prior]] = {}
    #: NUTS adapts a dense mass matrix (PyMC ``init="jitter+adapt_full"``, nutpie
    #: ``adaptation="low_rank"``) when the model has at most this many unconstrained
    #: parameters, and a diagonal one otherwise. Subclasses with a few strongly
    #: correlated parameters raise it; 0 (the default) always adapts a diagonal.
    dense_mass_max_dim: ClassVar[int] = 0
    _registry: ClassVar[dict[str, type[BayesianModel]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        BayesianModel._registry[cls.__name__] = cls

    def __init__(self, *, priors: Mapping[str, Prior | Mapping[str, Any]] | None = None) -> None:
        self.priors = priors
        self.resolved_priors()  # validates names and types; the stored argument is left as is

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _validate_data(self, data: Any) -> pd.DataFrame:
        """Check the input and return the clean data the model is built from."""

    @abstractmethod
    def _build_model(self, data: pd.DataFrame) -> pm.Model:
        """Return the PyMC model for the clean data."""

    def _parameter_names(self) -> list[str]:
        """Names of the posterior variables checked for convergence and summarised.

        Defaults to the free random variables; models with large per-row latent
        variables or interesting deterministics override it.
        """
        return [rv.name for rv in self.model_.free_RVs]

    # ----------------------------------------------------------- configuration
    def resolved_priors(self) -> dict[str, Prior]:
        """Return the priors in use: the defaults updated with the user's ones.

        Raises
        ------
        ValueError
            If a prior name is unknown or a prior is neither a Prior nor a dict.
        """
        owner = type(self).__name__
        priors = dict(self.default_priors)
        for name, value in (self.priors or {}).items():
            if name not in self.default_priors:
                raise ValueError(
                    f"{owner} has no prior named {name!r}; valid names are "
                    f"{sorted(self.default_priors)}."
                )
            if isinstance(value, Mapping):
                value = Prior.from_dict(value)
            if not isinstance(value, Prior):
                raise ValueError(
                    f"The prior {name!r} of {owner} must be a models.Prior or a dict. "
                    f"Got {value!r} instead."
                )
            check_prior_domain(name, value, self.default_priors[name], owner)
            priors[name] = value
        return priors

    def get_params(self) -> dict[str, Any]:
        """Return the constructor arguments of this model (scikit-learn style)."""
        params = signature(type(self).__init__).parameters.values()
        return {p.name: getattr(self, p.name) for p in params if p.kind is Parameter.KEYWORD_ONLY}

    def _config(self) -> dict[str, Any]:
        params = self.get_params()
        if params.get("priors"):
            params["priors"] = {k: v.to_dict() for k, v in self.resolved_priors().items()
                                if k in params["priors"]}
        return params

    # -------------------------------------------------------------- fitting
    def build_model(self, data: Any) -> pm.Model:
        """Validate ``data`` and return the PyMC model, without fitting it."""
        return self._build_model(self._validate_data(data))

    def fit(
        self,
        data: Any,
        *,
        method: Literal["nuts", "advi", "map"] = "nuts",
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        cores: int | None = None,
        sampler: Literal["pymc", "nutpie"] = "pymc",
        target_accept: float = 0.9,
        random_seed: int | np.random.Generator | None = None,
        progressbar: bool = False,
        log_likelihood: bool = False,
        advi_steps: int = 20_000,
        **sample_kwargs: Any,
    ) -> Self:
        """Fit the model to ``data`` and check the fit.

        Parameters
        ----------
        data : pandas.DataFrame or model-specific input
            Training data; see the model's documentation for the columns.
        method : {"nuts", "advi", "map"}, default "nuts"
            Full MCMC with NUTS; mean-field ADVI for scale; or the maximum a
            posteriori point for a quick look (no uncertainty, no convergence checks).
        draws, tune, chains : int
            Posterior draws per chain, tuning steps per chain, and chains (NUTS).
            With ``method="advi"``, ``draws`` draws are taken from the approximation.
        cores : int, optional
            Chains run in parallel on this many processes (PyMC's default if None);
            a positive integer.
        sampler : {"pymc", "nutpie"}, default "pymc"
            NUTS implementation. ``"nutpie"`` (needs the ``fast`` extra) compiles
            the model with numba; it pays off for larger models.
        target_accept : float, default 0.9
            NUTS target acceptance rate; raise it when there are divergences.
        random_seed : int, numpy.random.Generator or None
            Same seed, data and settings give identical draws. The seed used is
            stored in ``idata_.attrs``.
        progressbar : bool, default False
            Show the sampler's progress bar.
        log_likelihood : bool, default False
            Also store pointwise log-likelihoods (needed for LOO comparison).
        advi_steps : int, default 20000
            Optimisation steps for ``method="advi"``.
        **sample_kwargs
            Passed on to :func:`pymc.sample`. Models with a few correlated
            parameters (``dense_mass_max_dim``; the churn models) adapt a dense
            mass matrix by default: ``init="jitter+adapt_full"`` with PyMC,
            ``nuts={"adaptation": "low_rank"}`` with nutpie. Pass
            ``init="jitter+adapt_diag"`` or ``nuts={"adaptation": "diag"}`` for a
            diagonal one. A model may set other defaults (the collapsed
            ``PlayCountModel(user_effect="gamma")`` starts PyMC's diagonal mass
            matrix from the gradient); ``idata_.attrs`` records which matrix was used.

        Returns
        -------
        self
            The fitted model. ``fit_report_`` says whether the fit converged and
            whether the data informed each parameter (its posterior compared with
            ``idata_["prior"]``, draws of the prior stored with the fit); a fit that
            fails its checks also emits a
            :class:`~models.exceptions.ConvergenceWarning`, one whose data did not
            inform some parameter an :class:`~models.exceptions.UninformativeDataWarning`.

        Raises
        ------
        ValueError
            For invalid settings (the message names the parameter and the value).
        models.exceptions.DataValidationError
            For invalid data.
        models.exceptions.FitInterrupted
            When sampling or optimisation was interrupted (Ctrl-C) before it
            finished. PyMC and nutpie return the draws made so far; ``fit`` never
            returns such a cut-short fit, and the model stays as it was.
        """
        owner = f"{type(self).__name__}.fit"
        _check_choice(owner, "method", method, METHODS)
        _check_choice(owner, "sampler", sampler, SAMPLERS)
        _check_positive_int(owner, "draws", draws)
        _check_positive_int(owner, "tune", tune, allow_zero=True)
        _check_positive_int(owner, "chains", chains)
        _check_positive_int(owner, "advi_steps", advi_steps)
        if cores is not None:
            _check_positive_int(owner, "cores", cores)
        if not 0 < target_accept < 1:
            raise ValueError(
                f"The 'target_accept' parameter of {owner} must be in (0, 1). "
                f"Got {target_accept!r} instead."
            )
        seed = resolve_seed(random_seed)
        data_ = self._validate_data(data)
        model = self._build_model(data_)

        mass_matrix = None
        if method == "nuts":
            defaults = self._sample_defaults(model, sampler)
            if "nuts" in defaults and "nuts" in sample_kwargs:
                sample_kwargs["nuts"] = {**defaults["nuts"], **sample_kwargs["nuts"]}
            sample_kwargs = {**defaults, **sample_kwargs}
            if sampler == "pymc":
                full = "full" in str(sample_kwargs.get("init", ""))
            else:
                full = sample_kwargs.get("nuts", {}).get("adaptation") == "low_rank"
            mass_matrix = "dense" if full else "diagonal"

        loss_steps = None
        with model, warnings.catch_warnings(), watch_interrupts() as watch:
            # the dense mass matrix is chosen deliberately (see dense_mass_max_dim)
            warnings.filterwarnings("ignore", message="QuadPotentialFullAdapt is an experimental")
            if method == "nuts" and sampler == "pymc":
                # PyMC swallows Ctrl-C in one chain and starts the next: stop those too
                sample_kwargs["callback"] = _stop_after_interrupt(
                    watch, sample_kwargs.get("callback"))
            try:
                if method == "nuts":
                    idata = pm.sample(
                        draws=draws,
                        tune=tune,
                        chains=chains,
                        cores=cores,
                        random_seed=seed,
                        nuts_sampler=sampler,
                        target_accept=target_accept,
                        progressbar=progressbar,
                        compute_convergence_checks=False,
                        **sample_kwargs,
                    )
                elif method == "advi":
                    approx = pm.fit(
                        n=advi_steps, method="advi", random_seed=seed, progressbar=progressbar
                    )
                    loss_steps = len(approx.hist)
                    idata = approx.sample(draws, random_seed=seed)
                    idata["advi_loss"] = xr.DataTree(
                        xr.Dataset({"loss": ("step", np.asarray(approx.hist, dtype=float))})
                    )
                else:
                    idata = pm.find_MAP(
                        random_seed=seed,
                        progressbar=progressbar,
                        return_inferencedata=True,
                        jitter=False,
                    )
            except Exception as err:
                # e.g. PyMC's "Not enough samples to build a trace" after an early Ctrl-C
                if watch.hit:
                    raise FitInterrupted(
                        f"{owner} was interrupted (Ctrl-C) before any draw was kept; no fit "
                        "is returned."
                    ) from err
                raise
        meta = {"method": method, "sampler": sampler if method == "nuts" else None,
                "draws": draws, "chains": chains}
        if watch.hit or (loss_steps is not None and loss_steps < advi_steps):
            done = (f"{loss_steps:,} of {advi_steps:,} steps" if loss_steps is not None
                    else missing_draws(idata, meta) or "all draws, but the signal came first")
            raise FitInterrupted(
                f"{owner} was interrupted (Ctrl-C) before {method} finished ({done}). The "
                "partial result was discarded and no fit is returned; run fit again to get a "
                "complete one."
            )
        check_complete(idata, meta, owner)
        if log_likelihood and method != "map":
            with model:
                pm.compute_log_likelihood(idata, model=model, progressbar=False)

        idata.attrs[_ATTR_KEY] = json.dumps(
            {
                "model": type(self).__name__,
                "module": type(self).__module__,
                "version": __version__,
                "method": method,
                "sampler": sampler if method == "nuts" else None,
                "mass_matrix": mass_matrix,
                "draws": draws,
                "tune": tune if method == "nuts" else 0,
                "chains": chains if method == "nuts" else 1,
                "random_seed": seed,
                "config": self._config(),
            }
        )
        idata.attrs["inference_method"] = method
        self.data_ = data_
        self.model_ = model
        self.idata_ = idata
        if method != "map":
            self._attach_prior(seed)
        self._check()
        return self

    def _sample_defaults(self, model: pm.Model, sampler: str) -> dict[str, Any]:
        """Default :func:`pymc.sample` options of this model; the caller's keywords win.

        A dense mass matrix when the model has at most ``dense_mass_max_dim``
        unconstrained parameters, PyMC's and nutpie's defaults otherwise.
        """
        if self.dense_mass_max_dim <= 0:
            return {}
        point = model.initial_point()
        if sum(np.size(point[v.name]) for v in model.value_vars) > self.dense_mass_max_dim:
            return {}
        if sampler == "pymc":
            return {"init": "jitter+adapt_full"}
        return {"nuts": {"adaptation": "low_rank"}}

    def _attach_prior(self, seed: int) -> None:
        """Store draws of the parameters' prior as ``idata_["prior"]`` (for check_fit).

        Seeded with the fit's seed, so a refit gives the same draws and the same
        contraction figures.
        """
        prior = draw_prior(self.model_, self._parameter_names(), draws=PRIOR_DRAWS,
                           random_seed=seed)
        if prior is not None:
            self.idata_["prior"] = xr.DataTree(prior)

    def _check(self) -> None:
        self.fit_report_ = check_fit(self.idata_, var_names=self._parameter_names())
        warn_if_not_converged(self.fit_report_, stacklevel=4)
        warn_if_uninformed(self.fit_report_, stacklevel=4)

    # ----------------------------------------------------------- fitted state
    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`load`) has run."""
        return hasattr(self, "idata_")

    def _require_fitted(self, what: str = "this method") -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet; call fit(data) before {what}."
            )

    @property
    def converged_(self) -> bool:
        """True only when the fit passed every convergence check."""
        self._require_fitted("converged_")
        return self.fit_report_.ok

    def diagnostics(self) -> FitReport:
        """Return the convergence report of the fit (see :func:`models.diagnostics.check_fit`)."""
        self._require_fitted("diagnostics()")
        return self.fit_report_

    def summary(
        self, var_names: Sequence[str] | None = None, *, ci_prob: float = 0.89
    ) -> pd.DataFrame:
        """Posterior summary: mean, sd, equal-tailed interval, ESS, R-hat and MCSE.

        Parameters
        ----------
        var_names : sequence of str, optional
            Variables to summarise; the model's parameters by default.
        ci_prob : float, default 0.89
            Probability mass of the credible interval (ArviZ's default).

        Returns
        -------
        pandas.DataFrame
            One row per scalar parameter element.
        """
        self._require_fitted("summary()")
        names = list(var_names) if var_names is not None else self._parameter_names()
        return az.summary(self.idata_, var_names=names, ci_prob=ci_prob)

    def posterior_draws(self, var_name: str) -> xr.DataArray:
        """Return the posterior draws of one variable, dims ``(chain, draw, ...)``."""
        self._require_fitted(f"posterior_draws({var_name!r})")
        posterior = self.idata_["posterior"]
        if var_name not in posterior.data_vars:
            raise KeyError(
                f"{var_name!r} is not a posterior variable of this {type(self).__name__}; "
                f"available: {sorted(posterior.data_vars)}."
            )
        return posterior[var_name]

    def sample_posterior_predictive(
        self, *, random_seed: int | np.random.Generator | None = None
    ) -> xr.DataTree:
        """Draw from the posterior predictive distribution of the training data.

        The draws are added to ``idata_`` as the ``posterior_predictive`` group
        and returned.
        """
        self._require_fitted("sample_posterior_predictive()")
        with self.model_, warnings.catch_warnings():
            # Custom distributions draw with numpy/scipy in Python by design (e.g. the
            # zero-truncated counts of UserArtistModel); numba's notice that it runs them
            # in object mode says nothing the user can act on.
            warnings.filterwarnings(
                "ignore", message=r"Numba will use object mode to run CustomDist")
            pm.sample_posterior_predictive(
                self.idata_,
                random_seed=resolve_seed(random_seed),
                extend_inferencedata=True,
                progressbar=False,
            )
        return self.idata_

    # ------------------------------------------------------------ persistence
    def _data_to_dataset(self, data: pd.DataFrame) -> xr.Dataset:
        frame = data.reset_index()
        ds = xr.Dataset({c: ("row", frame[c].to_numpy()) for c in frame.columns})
        ds.attrs["index"] = json.dumps([n for n in data.index.names if n is not None])
        return ds

    def _data_from_dataset(self, ds: xr.Dataset) -> pd.DataFrame:
        frame = pd.DataFrame({name: ds[name].values for name in ds.data_vars})
        index = json.loads(ds.attrs.get("index", "[]"))
        if index:
            frame = frame.set_index(index)
        else:
            frame = frame.drop(columns=["index"], errors="ignore")
        return frame

    def save(self, path: str | Path) -> Path:
        """Save the fit, the training data and the configuration to one netCDF file.

        The file is written to a temporary file beside ``path`` that replaces
        ``path`` only when complete, so an interrupted or failed save leaves an
        existing file as it was.

        Parameters
        ----------
        path : str or pathlib.Path
            File to write (conventionally ``*.nc``); parent folders are created.

        Returns
        -------
        pathlib.Path
            The path written.

        Raises
        ------
        OSError
            If the folder or file cannot be written (permission, read-only file
            system, disk full); ``path`` is then unchanged.
        """
        self._require_fitted("save()")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tree = self.idata_.copy()
        tree[_FIT_DATA_GROUP] = xr.DataTree(self._data_to_dataset(self.data_))
        tree = encode_labels(tree)
        with atomic_path(path) as tmp:
            tree.to_netcdf(tmp, engine="h5netcdf")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Load a fit written by :meth:`save`.

        Called on a model class, the file must hold a fit of that class; called
        on :class:`BayesianModel`, the class is taken from the file (its module is
        imported when it has not been yet).

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        models.exceptions.ModelMismatchError
            If the file holds another model or was not written by ``save``.
        models.exceptions.SavedFitError
            If the file cannot be read (empty, truncated, corrupt) or holds fewer
            chains or draws than its fit asked for.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No saved model at {str(path)!r}.")
        tree, meta = read_fit_file(path, _ATTR_KEY, _FIT_DATA_GROUP)
        if meta.get("model") not in cls._registry:
            import_model_module(meta)
        target = cls._registry.get(meta.get("model"))
        if target is None or not issubclass(target, cls):
            raise ModelMismatchError(
                f"{str(path)!r} holds a {meta['model']} fit, not a {cls.__name__} fit."
            )
        config = dict(meta["config"])
        if config.get("priors"):
            config["priors"] = {k: Prior.from_dict(v) for k, v in config["priors"].items()}
        model = target(**config)
        data = model._data_from_dataset(tree[_FIT_DATA_GROUP].to_dataset())
        del tree[_FIT_DATA_GROUP]
        model.data_ = model._validate_data(data)
        model.model_ = model._build_model(model.data_)
        model.idata_ = tree
        model.fit_report_ = check_fit(tree, var_names=model._parameter_names())
        return model

    # ----------------------------------------------------------------- display
    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if v is not None)
        text = f"{type(self).__name__}({params})"
        if self.is_fitted:
            meta = json.loads(self.idata_.attrs[_ATTR_KEY])
            text += f" [fitted: {meta['method']}, verdict={self.fit_report_.verdict}]"
        return text

