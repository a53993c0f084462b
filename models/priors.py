"""Prior specifications that can be stored, compared and turned into PyMC variables.

A :class:`Prior` names a PyMC distribution and its parameters. Models keep a
dictionary of default priors; users override any of them by name, and the
whole configuration round-trips through :meth:`Prior.to_dict` when a fit is
saved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pymc as pm

__all__ = ["Prior"]


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
        If ``distribution`` is not a PyMC distribution or a parameter is not numeric.

    Examples
    --------
    >>> from models.priors import Prior
    >>> p = Prior("Gamma", alpha=2.0, beta=1.0)
    >>> p
    Prior("Gamma", alpha=2.0, beta=1.0)
    >>> Prior.from_dict(p.to_dict()) == p
    True
    """

    __slots__ = ("distribution", "params")

    def __init__(self, distribution: str, **params: Any) -> None:
        dist = getattr(pm, distribution, None)
        if not (isinstance(dist, type) and issubclass(dist, pm.Distribution)):
            raise ValueError(
                f"The 'distribution' of a Prior must name a PyMC distribution such as "
                f"'Normal', 'HalfNormal' or 'Gamma'. Got {distribution!r} instead."
            )
        clean: dict[str, float | list] = {}
        for key, value in params.items():
            arr = np.asarray(value)
            if not np.issubdtype(arr.dtype, np.number):
                raise ValueError(
                    f"The parameter {key!r} of Prior({distribution!r}) must be numeric. "
                    f"Got {value!r} instead."
                )
            clean[key] = arr.item() if arr.ndim == 0 else arr.tolist()
        object.__setattr__(self, "distribution", distribution)
        object.__setattr__(self, "params", clean)

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
        """Rebuild a prior from :meth:`to_dict` output."""
        return cls(spec["distribution"], **spec.get("params", {}))

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
