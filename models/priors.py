"""Prior specifications that can be stored, compared and turned into PyMC variables.

A :class:`Prior` names a PyMC distribution and its parameters. Models keep a
dictionary of default priors; users override any of them by name, and the
whole configuration round-trips through :meth:`Prior.to_dict` when a fit is
saved.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pymc as pm
import xarray as xr

__all__ = ["Prior", "check_prior_domain", "draw_prior"]

#: Keywords of a PyMC distribution that are not parameters of the prior.
_NOT_PARAMETERS = frozenset({"cls", "size", "shape", "dims", "initval", "observed", "transform",
                             "default_transform", "rng", "dtype", "name", "model"})
#: Keys of the dict form of a prior (:meth:`Prior.to_dict`).
_DICT_KEYS = ("distribution", "params")


def _parameter_names(dist: type) -> list[str] | None:
    """Named parameters of a PyMC distribution, or None when its signature does not say."""
    try:
        params = inspect.signature(dist.dist).parameters.values()
    except (TypeError, ValueError):
        return None
    names = [p.name for p in params
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
             and p.name not in _NOT_PARAMETERS]
    return names or None


@functools.lru_cache(maxsize=512)
def _support_violation(distribution: str, items: tuple[tuple[str, Any], ...]) -> str | None:
    """Return the parameter condition of PyMC's log-density that the values break, if any.

    Evaluates the log-density at the distribution's support point with PyMC's own
    parameter checks (``check_parameters``), compiled without rewrites (a few ms). A
    prior that cannot be built without a shape (a scalar Dirichlet concentration) is
    not checked here; PyMC checks it when the model is built.
    """
    import pytensor
    from pymc.distributions.distribution import support_point
    from pymc.logprob.utils import ParameterValueError
    from pytensor.compile.mode import Mode

    params = {k: np.asarray(v, dtype=float) for k, v in items}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rv = getattr(pm, distribution).dist(**params)
            logp = pm.logp(rv, support_point(rv))
            pytensor.function([], logp, mode=Mode(linker="py", optimizer=None))()
    except ParameterValueError as err:
        return str(err)
    except Exception:  # noqa: BLE001 - not checkable without the model's shape
        return None
    return None


@functools.lru_cache(maxsize=512)
def _domain(distribution: str, items: tuple[tuple[str, Any], ...]) -> tuple[float, float] | None:
    """Return the values a prior can take, from PyMC's default transform of the distribution.

    ``(-inf, inf)`` without a transform, ``(0, inf)`` for a log transform, ``(0, 1)`` for
    log-odds; None for bounded supports of other kinds (an interval), which
    :func:`check_prior_domain` then checks by drawing.
    """
    from pymc.distributions.transforms import _default_transform

    params = {k: np.asarray(v, dtype=float) for k, v in items}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rv = getattr(pm, distribution).dist(**params)
            transform = _default_transform(rv.owner.op, rv)
    except Exception:  # noqa: BLE001 - needs the model's shape; not checked
        return None
    kind = type(transform).__name__ if transform is not None else None
    return {None: (-np.inf, np.inf), "LogTransform": (0.0, np.inf),
            "LogOddsTransform": (0.0, 1.0)}.get(kind)


@functools.lru_cache(maxsize=512)
def _drawn_range(distribution: str, items: tuple[tuple[str, Any], ...]) -> tuple[float, float]:
    params = {k: np.asarray(v, dtype=float) for k, v in items}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x = np.asarray(pm.draw(getattr(pm, distribution).dist(**params), draws=2000,
                               random_seed=0))
    return float(x.min()), float(x.max())


def check_prior_domain(name: str, prior: Prior, default: Prior, owner: str) -> None:
    """Raise when ``prior`` puts mass where the parameter it replaces cannot be.

    The parameter's domain is that of its default prior (positive for a rate or a
    scale, (0, 1) for a probability). A Normal prior on a positive parameter would
    otherwise sample values the likelihood cannot use and end in divergences and an
    R-hat failure that never names the cause.

    Raises
    ------
    ValueError
        Naming the parameter, the prior, the domain and distributions that fit it.

    Examples
    --------
    >>> check_prior_domain("r", Prior("Gamma", alpha=2, beta=1), Prior("LogNormal"), "M")
    >>> check_prior_domain("r", Prior("Normal", mu=0, sigma=1), Prior("LogNormal"), "M")
    Traceback (most recent call last):
    ...
    ValueError: The prior of 'r' in M, Prior("Normal", mu=0, sigma=1), puts mass outside (0, inf), where r must lie (its default prior is Prior("LogNormal")). Use a distribution on (0, inf) such as LogNormal, Gamma, HalfNormal or TruncatedNormal(lower=0).
    """  # noqa: E501
    def key(p: Prior) -> tuple[str, tuple[tuple[str, Any], ...]]:
        return p.distribution, tuple((k, _hashable(v)) for k, v in p.params.items())

    allowed = _domain(*key(default))
    if allowed is None or allowed == (-np.inf, np.inf):
        return
    own = _domain(*key(prior)) or _drawn_range(*key(prior))
    if allowed[0] <= own[0] and own[1] <= allowed[1]:
        return
    lo, hi = allowed
    domain = f"({lo:g}, {hi:g})"
    examples = ("LogNormal, Gamma, HalfNormal or TruncatedNormal(lower=0)" if hi == np.inf
                else "Beta or Uniform(0, 1)")
    raise ValueError(
        f"The prior of {name!r} in {owner}, {prior!r}, puts mass outside {domain}, where "
        f"{name} must lie (its default prior is {default!r}). Use a distribution on {domain} "
        f"such as {examples}."
    )


class Prior:
    """A prior distribution: a PyMC distribution name and its parameters.

    Parameters
    ----------
    distribution : str
        Name of a PyMC distribution, e.g. ``"HalfNormal"``, ``"Gamma"``, ``"Flat"``.
    **params : float or array-like
        Keyword parameters of that distribution (``sigma=1.0``, ``alpha=2, beta=1``).

    Raises
    ------
    ValueError
        If ``distribution`` is not a PyMC distribution; a parameter is not one of the
        distribution's (the message lists the valid names: PyMC itself would ignore a
        misspelt ``sd=``), is not numeric or not finite; or the values are outside the
        distribution's parameter space (``sigma > 0``, ``lower <= upper``, ...).

    Examples
    --------
    >>> from models.priors import Prior
    >>> p = Prior("Gamma", alpha=2.0, beta=1.0)
    >>> p
    Prior("Gamma", alpha=2.0, beta=1.0)
    >>> Prior.from_dict(p.to_dict()) == p
    True
    >>> Prior("LogNormal", mu=0.0, sd=0.01)
    Traceback (most recent call last):
    ...
    ValueError: Prior('LogNormal') has no parameter 'sd'; its parameters are ['mu', 'sigma', 'tau'].
    >>> Prior("HalfNormal", sigma=-1.0)
    Traceback (most recent call last):
    ...
    ValueError: Prior("HalfNormal", sigma=-1.0) is outside the distribution's parameter space: PyMC requires sigma > 0.
    """  # noqa: E501

    __slots__ = ("distribution", "params")

    def __init__(self, distribution: str, **params: Any) -> None:
        dist = getattr(pm, distribution, None)
        if not (isinstance(dist, type) and issubclass(dist, pm.Distribution)):
            raise ValueError(
                f"The 'distribution' of a Prior must name a PyMC distribution such as "
                f"'Normal', 'HalfNormal' or 'Gamma'. Got {distribution!r} instead."
            )
        valid = _parameter_names(dist)
        unknown = [k for k in params if valid is not None and k not in valid]
        if unknown:
            raise ValueError(
                f"Prior({distribution!r}) has no parameter {unknown[0]!r}; its parameters "
                f"are {valid}."
            )
        clean: dict[str, float | list] = {}
        for key, value in params.items():
            try:
                arr = np.asarray(value)
            except ValueError:  # ragged nested lists
                arr = np.asarray(value, dtype=object)
            if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_):
                raise ValueError(
                    f"The parameter {key!r} of Prior({distribution!r}) must be numeric. "
                    f"Got {value!r} instead."
                )
            if not np.isfinite(arr).all():
                raise ValueError(
                    f"The parameter {key!r} of Prior({distribution!r}) must be finite. "
                    f"Got {value!r} instead."
                )
            clean[key] = arr.item() if arr.ndim == 0 else arr.tolist()
        object.__setattr__(self, "distribution", distribution)
        object.__setattr__(self, "params", clean)
        violation = _support_violation(
            distribution, tuple((k, _hashable(v)) for k, v in clean.items()))
        if violation is not None:
            raise ValueError(
                f"{self!r} is outside the distribution's parameter space: PyMC requires "
                f"{violation}."
            )

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Prior is immutable")

    def create(self, name: str, *, dims: str | Sequence[str] | None = None, **kwargs: Any):
        """Add this prior as a random variable to the PyMC model in context.

        Parameters
        ----------
        name : str
            Name of the variable in the model.
        dims : str or sequence of str, optional
            Named dimensions of the variable.
        **kwargs
            Extra keyword arguments for the PyMC distribution (e.g. ``shape``).

        Returns
        -------
        pytensor.tensor.TensorVariable
            The new random variable.
        """
        return getattr(pm, self.distribution)(name, **self.params, dims=dims, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable description of the prior."""
        return {"distribution": self.distribution, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Prior:
        """Rebuild a prior from :meth:`to_dict` output.

        Raises
        ------
        ValueError
            If ``spec`` has no ``"distribution"``, a key other than ``"distribution"``
            and ``"params"``, or ``"params"`` is not a mapping (and for the errors of
            :class:`Prior`).

        Examples
        --------
        >>> Prior.from_dict({"distribution": "Gamma", "params": {"alpha": 2.0, "beta": 1.0}})
        Prior("Gamma", alpha=2.0, beta=1.0)
        >>> Prior.from_dict({"params": {"sigma": 1.0}})
        Traceback (most recent call last):
        ...
        ValueError: A prior given as a dict needs a 'distribution' (e.g. {'distribution': 'HalfNormal', 'params': {'sigma': 1.0}}). Got {'params': {'sigma': 1.0}} instead.
        """  # noqa: E501
        if not isinstance(spec, Mapping):
            raise ValueError(f"A prior given as a dict must be a mapping. Got {spec!r} instead.")
        example = "{'distribution': 'HalfNormal', 'params': {'sigma': 1.0}}"
        if "distribution" not in spec:
            raise ValueError(f"A prior given as a dict needs a 'distribution' (e.g. {example}). "
                             f"Got {dict(spec)!r} instead.")
        unknown = [k for k in spec if k not in _DICT_KEYS]
        if unknown:
            raise ValueError(f"A prior given as a dict has only the keys {list(_DICT_KEYS)} "
                             f"(e.g. {example}); {unknown[0]!r} is not one. Got {dict(spec)!r} "
                             "instead.")
        params = spec.get("params", {})
        if not isinstance(params, Mapping):
            raise ValueError(f"The 'params' of a prior must be a mapping of parameter names to "
                             f"numbers (e.g. {example}). Got {params!r} instead.")
        if not isinstance(spec["distribution"], str):
            raise ValueError(f"The 'distribution' of a prior must be a string such as "
                             f"'HalfNormal'. Got {spec['distribution']!r} instead.")
        return cls(spec["distribution"], **params)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Prior)
            and self.distribution == other.distribution
            and self.params == other.params
        )

    def __hash__(self) -> int:
        return hash((self.distribution, repr(sorted(self.params.items()))))

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f'Prior("{self.distribution}"{args})'


def _hashable(value: Any) -> Any:
    return tuple(_hashable(v) for v in value) if isinstance(value, list) else value


def _variable_size(model: pm.Model, name: str) -> int | None:
    """Elements of a model variable from its dims or static shape (None when unknown)."""
    dims = model.named_vars_to_dims.get(name)
    if dims:
        sizes = [len(model.coords[d]) if model.coords.get(d) is not None else None
                 for d in dims]
        return None if None in sizes else int(np.prod(sizes, dtype=int))
    shape = model[name].type.shape
    return None if None in shape else int(np.prod(shape, dtype=int))


def draw_prior(
    model: pm.Model,
    var_names: Sequence[str],
    *,
    draws: int,
    random_seed: int,
    max_size: int = 200,
) -> xr.Dataset | None:
    """Draw from the prior of some variables of a PyMC model, as a posterior-shaped Dataset.

    Parameters
    ----------
    model : pymc.Model
        The model.
    var_names : sequence of str
        Variables to draw. Names that are not variables of ``model``, observed
        variables and variables with more than ``max_size`` elements (per-user
        effects) are left out.
    draws : int
        Number of draws.
    random_seed : int
        Same seed, same draws.
    max_size : int, default 200
        Largest variable drawn.

    Returns
    -------
    xarray.Dataset or None
        Dims ``(chain, draw, ...)`` with one chain and the model's dims and coords;
        None when no variable qualifies.

    Examples
    --------
    >>> import pymc as pm
    >>> with pm.Model() as m:
    ...     mu = pm.Normal("mu", 0, 2)
    >>> ds = draw_prior(m, ["mu"], draws=4000, random_seed=1)
    >>> dict(ds.sizes), round(float(ds["mu"].std()), 1)
    ({'chain': 1, 'draw': 4000}, 2.0)
    """
    observed = {v.name for v in model.observed_RVs}
    names = [n for n in var_names if n in model.named_vars and n not in observed]
    names = [n for n in names if (_variable_size(model, n) or max_size + 1) <= max_size]
    if not names:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = pm.draw([model[n] for n in names], draws=draws, random_seed=random_seed,
                         mode="FAST_COMPILE")
    data = {}
    for name, value in zip(names, values, strict=True):
        value = np.asarray(value)[None, ...]
        dims = list(model.named_vars_to_dims.get(name) or
                    [f"{name}_dim_{i}" for i in range(value.ndim - 2)])
        coords = {d: list(model.coords[d]) for d in dims if model.coords.get(d) is not None}
        data[name] = xr.DataArray(value, dims=["chain", "draw", *dims], coords=coords)
    return xr.Dataset(data)
