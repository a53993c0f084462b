"""The base classes of every Bayesian model of listening-models.

:class:`PosteriorModel` is what every model shares, whatever drew its posterior:
options and priors, the fit's record and check, summaries, posterior draws,
saving and loading a fit, pickling and the notebook display.
:class:`BayesianModel` adds PyMC: a subclass declares its default priors, how it
checks its input data (``_validate_data``) and the PyMC model it builds from that
data (``_build_model``), and the base class fits it with an explicit inference
method and sampler, samples the posterior predictive and computes pointwise
log-likelihoods for LOO. Every model but one is a :class:`BayesianModel`; the
stochastic block model samples discrete block labels with its own collapsed Gibbs
sampler, which PyMC's NUTS cannot do, so it builds on :class:`PosteriorModel`
directly (see that class for why this is a base of its own).

Models whose likelihood PyMC cannot expand observation by observation (a
``pm.Potential``, or observations compressed into weighted rows) implement two
more hooks, ``_pointwise_log_likelihood`` and ``_posterior_predictive``, which
compute the ``log_likelihood`` and ``posterior_predictive`` groups with numpy
from the posterior draws (see :meth:`BayesianModel.compute_log_likelihood`).
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

from models import _html
from models._atomic import atomic_path
from models._fitfile import (
    METADATA_ATTR,
    check_complete,
    encode_labels,
    import_model_module,
    missing_draws,
    read_fit_file,
)
from models._interrupts import watch_interrupts
from models._pointwise import thin_draws
from models._progress import NotebookProgress, in_notebook, resolve_progressbar
from models._validation import check_choice, check_positive_int
from models._version import __version__
from models.diagnostics import FitReport, check_fit, warn_if_not_converged, warn_if_uninformed
from models.diagnostics.contraction import PRIOR_DRAWS
from models.exceptions import FitInterrupted, ModelMismatchError, NotFittedError
from models.predict import check_ci_prob
from models.priors import Prior, check_prior_domain, draw_prior

__all__ = ["BayesianModel", "PosteriorModel", "resolve_seed"]

METHODS = ("nuts", "advi", "map")
SAMPLERS = ("pymc", "nutpie")
_FIT_DATA_GROUP = "fit_data"
_ATTR_KEY = METADATA_ATTR


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


def _stop_after_interrupt(watch: Any, callback: Any) -> Any:
    """Return a ``pymc.sample`` callback that stops every chain once Ctrl-C was pressed."""

    def stop(trace: Any, draw: Any) -> None:
        if watch.hit:
            raise KeyboardInterrupt
        if callback is not None:
            callback(trace=trace, draw=draw)

    return stop


def _chain_callbacks(first: Any, second: Any) -> Any:
    """Return a ``pymc.sample`` callback that calls ``first`` and then ``second`` (if any)."""
    if second is None:
        return first

    def both(trace: Any, draw: Any) -> None:
        first(trace=trace, draw=draw)
        second(trace=trace, draw=draw)

    return both


class PosteriorModel(ABC):
    """What every model shares, whatever drew its posterior: check, summarise, save, load.

    Subclasses define ``_validate_data(data)`` returning the clean data,
    ``_parameter_names()`` (the variables checked and summarised) and a ``fit``
    that draws the posterior and ends with ``_store_fit`` and ``_check``.
    Their ``__init__`` takes keyword-only options, stores them unchanged under the
    same names and calls ``super().__init__(priors=priors)``.

    Nearly every model is a :class:`BayesianModel`, whose ``fit`` runs PyMC. A
    model whose posterior needs another sampler derives from this class instead,
    with a ``fit`` of that sampler's own options. It is a base of its own rather
    than a :class:`BayesianModel` overriding ``fit``: every subclass of
    :class:`BayesianModel` accepts the options of its ``fit`` (``method``,
    ``sampler``, ``target_accept``, ...) and has a PyMC model for posterior
    predictive draws and log-likelihoods, and a sampler of discrete labels has
    neither. What a user does after ``fit`` (``summary``, ``diagnostics``,
    ``posterior_draws``, ``save``, ``load``, ``get_params``) is the same for both,
    and the contract test checks both.

    Parameters
    ----------
    priors : mapping of str to Prior or dict, optional
        Priors that replace the defaults of the same name. An unknown name is an
        error that lists the valid ones.

    Attributes
    ----------
    idata_ : xarray.DataTree
        The fit: posterior, sample statistics and the training data.
    data_ : pandas.DataFrame
        The validated training data.
    fit_report_ : models.diagnostics.FitReport
        Convergence checks of the fit (R-hat, ESS and the sampler's own checks).
    """

    default_priors: ClassVar[Mapping[str, Prior]] = {}
    _registry: ClassVar[dict[str, type[PosteriorModel]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__ != __name__:  # the base classes themselves are not models
            PosteriorModel._registry[cls.__name__] = cls

    def __init__(self, *, priors: Mapping[str, Prior | Mapping[str, Any]] | None = None) -> None:
        self.priors = priors
        self.resolved_priors()  # validates names and types; the stored argument is left as is

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _validate_data(self, data: Any) -> pd.DataFrame:
        """Check the input and return the clean data the model is built from."""

    @abstractmethod
    def _parameter_names(self) -> list[str]:
        """Names of the posterior variables checked for convergence and summarised."""

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


    # --------------------------------------------------------------- the fit
    def _store_fit(self, idata: xr.DataTree, data: pd.DataFrame, **settings: Any) -> None:
        """Record a finished fit: its settings in ``idata.attrs``, then ``idata_`` and ``data_``.

        ``settings`` are the inference settings (``method``, ``draws``, ``chains``,
        ``random_seed``, ...); the model's name, module and options and the package
        version are added, so that :meth:`load` can rebuild the model.
        """
        idata.attrs[_ATTR_KEY] = json.dumps(
            {
                "model": type(self).__name__,
                "module": type(self).__module__,
                "version": __version__,
                **settings,
                "config": self._config(),
            }
        )
        idata.attrs["inference_method"] = settings["method"]
        if settings.get("sampler") and settings["method"] != "nuts":
            # a sampler of this package (the block model's collapsed Gibbs), for the fit
            # report; PyMC and nutpie name themselves in sample_stats
            idata.attrs["sampler"] = settings["sampler"]
        self.data_ = data
        self.idata_ = idata

    def _after_load(self) -> None:
        """Rebuild what a loaded fit needs beyond ``data_`` and ``idata_`` (nothing here)."""
        return

    def _check(self) -> None:
        self.fit_report_ = check_fit(self.idata_, var_names=self._parameter_names())
        warn_if_not_converged(self.fit_report_, stacklevel=4)
        warn_if_uninformed(self.fit_report_, stacklevel=4)

    # ----------------------------------------------------------- fitted state
    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` (or :meth:`load`) has run."""
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
            Probability mass of the equal-tailed credible interval (ArviZ's default).

        Returns
        -------
        pandas.DataFrame
            One row per scalar parameter element; columns ``mean``, ``sd``,
            ``ci_lower``, ``ci_upper`` (the equal-tailed interval, as in every
            prediction summary), ``ess_bulk``, ``ess_tail``, ``r_hat``,
            ``mcse_mean``, ``mcse_sd``. ``attrs["ci_prob"]`` holds ``ci_prob``.

        Raises
        ------
        ValueError
            If ``ci_prob`` is not in (0, 1).
        models.exceptions.NotFittedError
            Before ``fit``.
        """
        ci_prob = check_ci_prob(f"{type(self).__name__}.summary", ci_prob)
        self._require_fitted("summary()")
        names = list(var_names) if var_names is not None else self._parameter_names()
        with np.errstate(divide="ignore", invalid="ignore"):  # a constant's R-hat is NaN
            table = az.summary(self.idata_, var_names=names, ci_prob=ci_prob, ci_kind="eti")
        # ArviZ names the bounds after the interval (eti89_lb, eti89_ub): one name everywhere
        bounds = {c: "ci_lower" if c.endswith("_lb") else "ci_upper" for c in table.columns
                  if c.startswith("eti") and c.endswith(("_lb", "_ub"))}
        table = table.rename(columns=bounds)
        table.attrs["ci_prob"] = ci_prob
        return table

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
        on :class:`PosteriorModel` or :class:`BayesianModel`, the class is taken
        from the file (its module is imported when it has not been yet).

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
            hint = ("" if cls is PosteriorModel or target is None else
                    "; PosteriorModel.load reads the fit of any model")
            raise ModelMismatchError(
                f"{str(path)!r} holds a {meta['model']} fit, not a {cls.__name__} fit{hint}."
            )
        config = dict(meta["config"])
        if config.get("priors"):
            config["priors"] = {k: Prior.from_dict(v) for k, v in config["priors"].items()}
        model = target(**config)
        data = model._data_from_dataset(tree[_FIT_DATA_GROUP].to_dataset())
        del tree[_FIT_DATA_GROUP]
        model.data_ = model._validate_data(data)
        model.idata_ = tree
        model._after_load()
        model.fit_report_ = check_fit(tree, var_names=model._parameter_names())
        return model

    # ----------------------------------------------------------------- display
    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if v is not None)
        text = f"{type(self).__name__}({params})"
        if self.is_fitted:
            meta = json.loads(self.idata_.attrs.get(_ATTR_KEY, "{}"))
            how = meta.get("method", self.idata_.attrs.get("inference_method", "?"))
            report = getattr(self, "fit_report_", None)
            verdict = report.verdict if report is not None else "unchecked"
            text += f" [fitted: {how}, verdict={verdict}]"
        return text

    def _repr_html_(self) -> str:
        """Notebook display: options, fit status and verdict, and a short posterior summary."""
        name = type(self).__name__
        options = {k: v for k, v in self.get_params().items() if v is not None}
        status: dict[str, Any] = {}
        parts = []
        if not self.is_fitted:
            status["status"] = "not fitted (call fit(data))"
        else:
            meta = json.loads(self.idata_.attrs.get(_ATTR_KEY, "{}"))
            how = meta.get("method", self.idata_.attrs.get("inference_method", "?"))
            if meta.get("sampler"):
                how += f" ({meta['sampler']})"
            if "chains" in meta and "draws" in meta:
                how += f", {meta['chains']} chain(s) x {meta['draws']:,} draws"
            status["status"] = f"fitted: {how}"
            report = getattr(self, "fit_report_", None)
            if report is not None:
                status["verdict"] = _html.markup(_html.verdict_badge(report.verdict))
                issues = [*report.problems, *report.cautions]
                parts.append(_html.items_html("Checks", issues[:5]))
            data = getattr(self, "data_", None)
            if data is not None:
                status["training rows"] = f"{len(data):,}"
            groups = [g for g in ("log_likelihood", "posterior_predictive")
                      if g in self.idata_.children]
            if groups:
                status["groups"] = ", ".join(groups)
            parts.append(_html.frame_html(self.summary()))
        if options:
            parts.insert(0, _html.pairs_html({k: repr(v) for k, v in options.items()}))
        return _html.card(name, _html.pairs_html(status), *parts)

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        """State for pickling: everything but the PyMC graph ``model_``.

        The graph holds compiled functions that do not pickle; it is rebuilt
        from ``data_`` on first use after unpickling (see :attr:`model_`), so a
        fitted model can be sent to multiprocessing or Dask workers.
        """
        state = self.__dict__.copy()
        state.pop("model_", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore the state written by ``__getstate__``."""
        self.__dict__.update(state)



class BayesianModel(PosteriorModel):
    """Base class of the models fitted with PyMC: fit, check, summarise, save and load.

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

    #: NUTS adapts a dense mass matrix (PyMC ``init="jitter+adapt_full"``, nutpie
    #: ``adaptation="low_rank"``) when the model has at most this many unconstrained
    #: parameters, and a diagonal one otherwise. Subclasses with a few strongly
    #: correlated parameters raise it; 0 (the default) always adapts a diagonal.
    dense_mass_max_dim: ClassVar[int] = 0
    #: While :meth:`fit` builds the model: how it will be fitted (``method``,
    #: ``sampler``, ``chains``, ``cores``), for models whose compiled code uses
    #: threads (how many chains run at once; OpenMP's threads do not survive the
    #: fork of PyMC's chain processes). None outside :meth:`fit`.
    _fit_plan: dict[str, Any] | None = None

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _build_model(self, data: pd.DataFrame) -> pm.Model:
        """Return the PyMC model for the clean data."""

    def _parameter_names(self) -> list[str]:
        """Names of the posterior variables checked for convergence and summarised.

        Defaults to the free random variables; models with large per-row latent
        variables or interesting deterministics override it.
        """
        return [rv.name for rv in self.model_.free_RVs]

    def _pointwise_log_likelihood(self, posterior: xr.Dataset) -> dict[str, xr.DataArray] | None:
        """Log-likelihood of each observation unit of the training data, per posterior draw.

        Models whose likelihood is a ``pm.Potential`` or is evaluated on compressed
        rows return one DataArray per observed quantity, dims ``(chain, draw, <unit>)``
        with the draws of ``posterior``, computed with numpy in blocks of units. The
        units are what leave-one-out should leave out; each model's docstring says
        which. None (the default) lets PyMC compute it from the observed variables.
        """
        return None

    def _posterior_predictive(
        self, posterior: xr.Dataset, rng: np.random.Generator
    ) -> dict[str, xr.DataArray] | None:
        """Replicated training data, one replicate per draw of ``posterior``.

        Same contract as :meth:`_pointwise_log_likelihood`: DataArrays of the
        observed shape with leading ``(chain, draw)``, or None for PyMC's
        :func:`pymc.sample_posterior_predictive`.
        """
        return None

    def _observed_data(self) -> dict[str, xr.DataArray]:
        """Return the observed quantities of :meth:`_posterior_predictive` (``observed_data``)."""
        return {}

    # ------------------------------------------------------------ PyMC graph
    @property
    def model_(self) -> pm.Model:
        """The PyMC model of the fit, built from ``data_``.

        It is not pickled (see ``__getstate__``): after unpickling, or on a
        light copy without it, it is rebuilt from ``data_`` on first use.
        """
        model = self.__dict__.get("model_")
        if model is None:
            if "data_" not in self.__dict__:
                raise AttributeError(f"This {type(self).__name__} has no model_ yet; call "
                                     "fit(data) first (or build_model(data) for the graph alone).")
            model = self.__dict__["model_"] = self._build_model(self.data_)
        return model

    @model_.setter
    def model_(self, value: pm.Model) -> None:
        self.__dict__["model_"] = value

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
        target_accept: float | None = None,
        random_seed: int | np.random.Generator | None = None,
        progressbar: bool | None = None,
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
        target_accept : float, optional
            NUTS target acceptance rate; raise it when there are divergences.
            None (the default) takes the model's :meth:`default_target_accept`:
            0.9, or lower where a model's sampled posterior is smooth and
            low-dimensional (the user effects integrated out).
        random_seed : int, numpy.random.Generator or None
            Same seed, data and settings give identical draws. The seed used is
            stored in ``idata_.attrs``.
        progressbar : bool, optional
            Show the progress of sampling or optimisation. None (the default):
            shown in IPython and Jupyter, quiet in scripts, tests and the docs
            build; the environment variable ``LISTENING_MODELS_PROGRESSBAR`` (0 or
            1) overrides that. In a notebook the progress is written as ordinary
            output (draws per chain, divergences, time, and the verdict at the
            end), so a saved notebook shows it.
        log_likelihood : bool, default False
            Also store the pointwise log-likelihood in ``idata_["log_likelihood"]``
            (see :meth:`compute_log_likelihood`), which :func:`arviz.loo` and
            :func:`models.diagnostics.compare_models` need. Not with ``method="map"``.
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
        check_choice(owner, "method", method, METHODS)
        check_choice(owner, "sampler", sampler, SAMPLERS)
        check_positive_int(owner, "draws", draws)
        check_positive_int(owner, "tune", tune, allow_zero=True)
        check_positive_int(owner, "chains", chains)
        check_positive_int(owner, "advi_steps", advi_steps)
        if cores is not None:
            check_positive_int(owner, "cores", cores)
        if target_accept is None:
            target_accept = self.default_target_accept()
        if not 0 < target_accept < 1:
            raise ValueError(
                f"The 'target_accept' parameter of {owner} must be in (0, 1). "
                f"Got {target_accept!r} instead."
            )
        seed = resolve_seed(random_seed)
        show = resolve_progressbar(progressbar, owner)
        data_ = self._validate_data(data)
        self._fit_plan = {"method": method, "sampler": sampler, "chains": chains,
                          "cores": cores}
        try:
            model = self._build_model(data_)
        finally:
            self._fit_plan = None

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
        tracker = self._notebook_progress(show, method, sampler, draws, tune, chains, advi_steps)
        bar = show and tracker is None  # the samplers' own bars outside notebooks
        if tracker is not None and method == "nuts":
            sample_kwargs["callback"] = _chain_callbacks(tracker.callback,
                                                         sample_kwargs.get("callback"))
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
                        progressbar=bar,
                        compute_convergence_checks=False,
                        **sample_kwargs,
                    )
                elif method == "advi":
                    optimizer = self._advi_optimizer()
                    approx = pm.fit(
                        n=advi_steps, method="advi", random_seed=seed, progressbar=bar,
                        callbacks=[] if tracker is None else [tracker.optimisation_callback],
                        **({} if optimizer is None else {"obj_optimizer": optimizer}),
                    )
                    loss_steps = len(approx.hist)
                    idata = approx.sample(draws, random_seed=seed)
                    idata["advi_loss"] = xr.DataTree(
                        xr.Dataset({"loss": ("step", np.asarray(approx.hist, dtype=float))})
                    )
                else:
                    idata = pm.find_MAP(
                        random_seed=seed,
                        progressbar=bar,
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

        self._store_fit(
            idata, data_, method=method, sampler=sampler if method == "nuts" else None,
            mass_matrix=mass_matrix, target_accept=target_accept if method == "nuts" else None,
            draws=draws, tune=tune if method == "nuts" else 0,
            chains=chains if method == "nuts" else 1, random_seed=seed,
        )
        self.model_ = model
        self._complete_posterior(seed)
        if method != "map":
            self._attach_prior(seed)
            if log_likelihood:
                self.compute_log_likelihood()
        self._check()
        if tracker is not None:
            tracker.close(note=f"verdict: {self.fit_report_.verdict}")
        return self

    def _advi_optimizer(self) -> Any:
        """Return the optimiser of ``method="advi"``; None (the default) for PyMC's own.

        PyMC's default (``adagrad_window``, learning rate 0.001) suits most models; a model
        whose loss is still falling after the default steps returns a faster one here (the
        fit check says when the loss had not flattened).
        """
        return None

    def _notebook_progress(self, show: bool, method: str, sampler: str, draws: int, tune: int,
                           chains: int, advi_steps: int) -> NotebookProgress | None:
        """Progress written as notebook output, for runs whose own bar is a widget there.

        nutpie's progress is already notebook output; PyMC's (NUTS, ADVI, MAP) is a
        widget that a saved notebook shows empty.
        """
        if not (show and in_notebook()) or (method == "nuts" and sampler == "nutpie"):
            return None
        title = f"{type(self).__name__}.fit: {method.upper()}"
        if method == "nuts":
            return NotebookProgress(title, chains=chains, total=draws + tune, tune=tune)
        return NotebookProgress(title, chains=1, total=advi_steps if method == "advi" else 1)

    def default_target_accept(self) -> float:
        """NUTS target acceptance rate of :meth:`fit` when none is given: 0.9.

        A high target (small steps) keeps NUTS safe in the funnels of hierarchical
        posteriors. Models whose sampled posterior has none (their latent
        variables integrated out, leaving a few smooth, nearly normal parameters)
        return a lower one, near the 0.65 that is optimal for such targets
        (Beskos et al. 2013): about half the leapfrog steps for the same effective
        sample size.
        """
        return 0.9

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

    def _complete_posterior(self, seed: int) -> None:
        """Add variables integrated out during sampling to ``idata_["posterior"]``.

        Called by :meth:`fit` after sampling, before the checks; ``data_`` and
        ``model_`` are set. The default does nothing; a model whose sampler saw a
        marginal likelihood (latent variables integrated out) draws them here, so
        that predictions find them in the posterior.
        """
        return

    def _attach_prior(self, seed: int) -> None:
        """Store draws of the parameters' prior as ``idata_["prior"]`` (for check_fit).

        Seeded with the fit's seed, so a refit gives the same draws and the same
        contraction figures.
        """
        prior = draw_prior(self.model_, self._parameter_names(), draws=PRIOR_DRAWS,
                           random_seed=seed)
        if prior is not None:
            self.idata_["prior"] = xr.DataTree(prior)

    def _after_load(self) -> None:
        self.model_ = self._build_model(self.data_)

    def sample_posterior_predictive(
        self, *, random_seed: int | np.random.Generator | None = None,
        max_draws: int | None = None,
    ) -> xr.DataTree:
        """Draw replicated training data from the posterior predictive distribution.

        One replicate of the observed data per posterior draw, of the observed
        shape, for posterior predictive checks (:func:`arviz.plot_ppc_dist`,
        :func:`arviz.plot_ppc_rootogram`, :mod:`models.diagnostics.ppc`, and the
        plots of :mod:`models.churn.plotting`). Models whose likelihood is a
        ``pm.Potential`` or compressed draw the replicates with numpy (their
        docstrings say what is replicated); the others use
        :func:`pymc.sample_posterior_predictive`.

        Parameters
        ----------
        random_seed : int, numpy.random.Generator or None
            Seed of the replicates.
        max_draws : int, optional
            Use at most this many posterior draws, evenly thinned within each chain
            (all of them by default); the replicates take memory draws x observations.

        Returns
        -------
        xarray.DataTree
            ``idata_``, with the ``posterior_predictive`` group (dims ``(chain, draw,
            ...)``) replaced and the matching ``observed_data`` variables added.

        Raises
        ------
        models.exceptions.NotFittedError
            Before :meth:`fit`.
        NotImplementedError
            If the model's likelihood is a ``pm.Potential`` without a replicate
            (PyMC would silently leave it out).
        ValueError
            If ``max_draws`` is not a positive integer or None.
        """
        owner = f"{type(self).__name__}.sample_posterior_predictive"
        self._require_fitted("sample_posterior_predictive()")
        posterior = thin_draws(self.idata_["posterior"].to_dataset(), max_draws, owner)
        seed = resolve_seed(random_seed)
        replicates = self._posterior_predictive(posterior, np.random.default_rng(seed))
        if replicates is not None:
            self.idata_["posterior_predictive"] = xr.DataTree(xr.Dataset(replicates))
            self._attach_observed()
            return self.idata_
        self._refuse_potentials(owner, "posterior predictive replicates")
        with self.model_, warnings.catch_warnings():
            # Custom distributions draw with numpy/scipy in Python by design (e.g. the
            # zero-truncated counts of UserArtistModel); numba's notice that it runs them
            # in object mode says nothing the user can act on.
            warnings.filterwarnings(
                "ignore", message=r"Numba will use object mode to run CustomDist")
            drawn = pm.sample_posterior_predictive(
                xr.DataTree.from_dict({"posterior": posterior}),
                random_seed=seed,
                extend_inferencedata=False,
                progressbar=False,
            )
        self.idata_["posterior_predictive"] = xr.DataTree(
            drawn["posterior_predictive"].to_dataset())
        if "observed_data" not in self.idata_.children and "observed_data" in drawn.children:
            self.idata_["observed_data"] = xr.DataTree(drawn["observed_data"].to_dataset())
        return self.idata_

    def compute_log_likelihood(self, *, max_draws: int | None = None) -> xr.DataTree:
        """Store the pointwise log-likelihood of the training data in ``idata_``.

        One value per posterior draw and per observation unit that leave-one-out
        cross-validation leaves out (a user, a user-day, a cohort-period...: each
        model's docstring says which), so that :func:`arviz.loo` and
        :func:`models.diagnostics.compare_models` work on ``idata_``. For a fitted
        or loaded model; ``fit(..., log_likelihood=True)`` calls it. Models whose
        likelihood is a ``pm.Potential`` or is evaluated on compressed rows
        compute it with numpy from the posterior draws (in blocks of units, so the
        only large array is the result); the others through
        :func:`pymc.compute_log_likelihood`.

        Parameters
        ----------
        max_draws : int, optional
            Use at most this many posterior draws, evenly thinned within each chain
            (all of them by default). The group takes 8 bytes x draws x units;
            :func:`models.diagnostics.loo_report` and ``compare_models`` account
            for the thinning.

        Returns
        -------
        xarray.DataTree
            ``idata_``, with the ``log_likelihood`` group (dims ``(chain, draw,
            <unit>)``) replaced and the matching ``observed_data`` variables added.

        Raises
        ------
        models.exceptions.NotFittedError
            Before :meth:`fit`.
        ValueError
            For a MAP fit (one point, no posterior draws), or if ``max_draws`` is
            not a positive integer or None.
        NotImplementedError
            If the model's likelihood is a ``pm.Potential`` that has no pointwise
            form (PyMC would silently leave it out).
        """
        owner = f"{type(self).__name__}.compute_log_likelihood"
        self._require_fitted("compute_log_likelihood()")
        if self.idata_.attrs.get("inference_method") == "map":
            raise ValueError(f"{owner} needs posterior draws, and a MAP fit has one point; "
                             "refit with method='nuts' (or 'advi').")
        posterior = thin_draws(self.idata_["posterior"].to_dataset(), max_draws, owner)
        values = self._pointwise_log_likelihood(posterior)
        if values is not None:
            dataset = xr.Dataset(values)
        else:
            self._refuse_potentials(owner, "a pointwise log-likelihood")
            if not self.model_.observed_RVs:
                raise NotImplementedError(f"{type(self).__name__} has no observed variables, so "
                                          "no pointwise log-likelihood.")
            dataset = pm.compute_log_likelihood(
                xr.DataTree.from_dict({"posterior": posterior}), model=self.model_,
                extend_inferencedata=False, progressbar=False)
        self.idata_["log_likelihood"] = xr.DataTree(dataset)
        self._attach_observed()
        return self.idata_

    def _refuse_potentials(self, owner: str, what: str) -> None:
        """Raise when PyMC would leave a ``pm.Potential`` likelihood out of ``what``."""
        potentials = [p.name for p in self.model_.potentials]
        if potentials:
            raise NotImplementedError(
                f"{owner}: the likelihood of {type(self).__name__} includes the pm.Potential "
                f"term(s) {potentials}, which PyMC cannot expand into {what}, and this model "
                "does not compute it itself.")

    def _attach_observed(self) -> None:
        """Add the model's observed quantities (:meth:`_observed_data`) to ``observed_data``."""
        observed = self._observed_data()
        if not observed:
            return
        if "observed_data" in self.idata_.children:
            dataset = self.idata_["observed_data"].to_dataset().assign(observed)
        else:
            dataset = xr.Dataset(observed)
        self.idata_["observed_data"] = xr.DataTree(dataset)
