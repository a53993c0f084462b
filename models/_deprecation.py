"""Deprecated names, kept for one release: they warn and name their replacement.

Two decorators: :func:`deprecated_arguments` for a function or method whose
arguments were renamed (or made keyword-only), and :func:`deprecated_alias` for
a method kept under its old name beside its replacement. Both warn with a
:class:`FutureWarning` (shown to users by default) that names the replacement.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

__all__ = ["deprecated_alias", "deprecated_arguments", "warn_deprecated"]

F = TypeVar("F", bound=Callable[..., Any])

#: The release after which the deprecated names are removed.
REMOVED_IN = "0.3"


def warn_deprecated(message: str, *, stacklevel: int = 3) -> None:
    """Emit a :class:`FutureWarning` for a deprecated name, saying when it goes."""
    warnings.warn(f"{message} The old form will be removed in listening-models {REMOVED_IN}.",
                  FutureWarning, stacklevel=stacklevel)


def _owner(func: Callable[..., Any], args: Sequence[Any], is_method: bool) -> str:
    if is_method and args:
        return f"{type(args[0]).__name__}.{func.__name__}"
    return func.__name__


def deprecated_arguments(
    *,
    renamed: Mapping[str, str] | None = None,
    positional: Sequence[str] = (),
    removed: Mapping[str, str] | None = None,
    collect: str | None = None,
) -> Callable[[F], F]:
    """Accept the old argument names of a function for one release, with a warning.

    Parameters
    ----------
    renamed : mapping of str to str, optional
        Old keyword name -> new name. The value is passed on under the new name.
    positional : sequence of str, optional
        Names (new ones) of arguments that used to be positional after those
        that still are: extra positional values are passed on under these names.
    removed : mapping of str to str, optional
        Old keyword name -> why it is gone (the argument is dropped).
    collect : str, optional
        Name of a mapping argument that gathers unknown keyword arguments (which
        used to be taken by ``**kwargs``).

    Returns
    -------
    callable
        The decorator. The decorated function keeps its signature (``inspect``
        shows the new one).
    """
    renamed = dict(renamed or {})
    removed = dict(removed or {})

    def decorate(func: F) -> F:
        sig = inspect.signature(func)
        params = list(sig.parameters.values())
        is_method = bool(params) and params[0].name == "self"
        n_positional = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            owner = _owner(func, args, is_method)
            if positional and len(args) > n_positional:
                extra, args = args[n_positional:], args[:n_positional]
                if len(extra) > len(positional):
                    raise TypeError(f"{owner}() takes at most {n_positional + len(positional)} "
                                    f"positional arguments ({len(extra) + n_positional} given).")
                names = positional[:len(extra)]
                for name, value in zip(names, extra, strict=True):
                    if name in kwargs:
                        raise TypeError(f"{owner}() got multiple values for argument {name!r}.")
                    kwargs[name] = value
                shown = ", ".join(f"{n}=..." for n in names)
                warn_deprecated(f"Passing {list(names)} positionally to {owner} is deprecated; "
                                f"pass them by keyword ({shown}).")
            for old, new in renamed.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{owner}() got both {old!r} (deprecated) and its "
                                        f"replacement {new!r}; pass only {new!r}.")
                    kwargs[new] = kwargs.pop(old)
                    warn_deprecated(f"The {old!r} parameter of {owner} is deprecated; use "
                                    f"{new!r} instead.")
            for old, why in removed.items():
                if old in kwargs:
                    kwargs.pop(old)
                    warn_deprecated(f"The {old!r} parameter of {owner} is deprecated and "
                                    f"ignored: {why}")
            if collect is not None:
                unknown = {k: kwargs.pop(k) for k in list(kwargs) if k not in sig.parameters}
                if unknown:
                    if kwargs.get(collect) is not None:
                        raise TypeError(f"{owner}() got both {collect}= and the keyword "
                                        f"arguments {sorted(unknown)}; pass only {collect}=.")
                    kwargs[collect] = unknown
                    warn_deprecated(f"Passing {sorted(unknown)} as keyword arguments of {owner} "
                                    f"is deprecated; pass {collect}={unknown!r}.")
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def deprecated_alias(replacement: str) -> Callable[[F], F]:
    """Mark a method as the deprecated old name of ``replacement`` (a method of the same class).

    Calling it warns with a :class:`FutureWarning` naming the replacement. The
    wrapper carries ``__deprecated__`` (the replacement's name), which the
    contract tests use to leave the alias out of the vocabulary checks.
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            cls = type(self).__name__
            warn_deprecated(f"{cls}.{func.__name__} is deprecated; use {cls}.{replacement} "
                            "instead (see its documentation for the new argument names).")
            return func(self, *args, **kwargs)

        wrapper.__deprecated__ = replacement  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
