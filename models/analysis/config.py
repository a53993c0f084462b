"""Analysis configuration: TOML defaults shipped with the package, user overrides, checks.

Each analysis has a file ``<name>.toml`` next to this module holding every choice it
makes (data window, periods, sampler settings, draws, priors), with a comment per
key. A ``[quick]`` table in the same file holds the smaller settings of ``--quick``.
A user file passed with ``--config`` replaces any of those keys; a key that the
defaults do not have is an error that names it, so a typo never passes silently.
"""

from __future__ import annotations

import copy
import math
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["ConfigError", "default_config", "dump_toml", "load_config", "merge_config"]

#: Top-level tables whose keys are free-form (model name -> prior name -> prior spec).
_FREE_TABLES = ("priors",)
#: Keys whose values a type check does not bound enough: the test, and what it asks for.
_RANGES: dict[str, tuple[Any, str]] = {
    "sampler.target_accept": (lambda v: 0 <= v < 1, "0 (each model's own) or in (0, 1)"),
    "churn.engagement_threads": (lambda v: v >= 1, "at least 1"),
}


class ConfigError(ValueError):
    """An analysis configuration file that cannot be read or has an unknown or bad key."""


def default_config(name: str, *, quick: bool = False) -> dict[str, Any]:
    """Return the default configuration of analysis ``name``.

    Parameters
    ----------
    name : str
        Analysis name (``"churn"``, ``"listening"``, ``"network"``).
    quick : bool, default False
        Apply the file's ``[quick]`` table (a small simulated service, few draws).

    Returns
    -------
    dict
        The configuration, without the ``quick`` table.

    Raises
    ------
    ConfigError
        If the analysis has no defaults file.

    Examples
    --------
    >>> default_config("churn", quick=True)["sampler"]["chains"] <= 2
    True
    """
    path = resources.files("models.analysis").joinpath(f"{name}.toml")
    if not path.is_file():
        raise ConfigError(f"No default configuration for an analysis named {name!r}.")
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    quick_table = config.pop("quick", {})
    if quick:
        config = merge_config(config, quick_table, source=f"the [quick] table of {name}.toml")
    return config


def merge_config(
    base: Mapping[str, Any], override: Mapping[str, Any], *, source: str = "the config file"
) -> dict[str, Any]:
    """Return ``base`` with the keys of ``override`` replaced, checking every key.

    Parameters
    ----------
    base : mapping
        The defaults (nested tables).
    override : mapping
        Keys to replace; every key must exist in ``base`` (except under ``priors``,
        whose tables are checked by the models), and a table may only replace a table.
    source : str
        Where ``override`` comes from, for error messages.

    Returns
    -------
    dict
        A new nested dict; neither argument is changed.

    Raises
    ------
    ConfigError
        For an unknown key (the message names it and lists the valid ones) or a value
        whose type does not match the default's.

    Examples
    --------
    >>> merge_config({"sampler": {"draws": 1000}}, {"sampler": {"draws": 200}})
    {'sampler': {'draws': 200}}
    >>> merge_config({"sampler": {"draws": 1000}}, {"sampler": {"drawz": 200}})
    Traceback (most recent call last):
    ...
    models.analysis.config.ConfigError: Unknown key 'sampler.drawz' in the config file; \
valid keys of [sampler] are ['draws'].
    """
    out = copy.deepcopy(dict(base))
    _merge_into(out, override, prefix="", source=source)
    return out


def _merge_into(target: dict[str, Any], override: Mapping[str, Any], prefix: str,
                source: str) -> None:
    for key, value in override.items():
        dotted = f"{prefix}{key}"
        if prefix == "" and key in _FREE_TABLES:
            if not isinstance(value, Mapping):
                raise ConfigError(f"The key {dotted!r} in {source} must be a table. "
                                  f"Got {value!r} instead.")
            merged = copy.deepcopy(dict(target.get(key, {})))
            for model, priors in value.items():
                if not isinstance(priors, Mapping):
                    raise ConfigError(f"The key '{dotted}.{model}' in {source} must be a table "
                                      f"of priors. Got {priors!r} instead.")
                merged[model] = {**merged.get(model, {}), **copy.deepcopy(dict(priors))}
            target[key] = merged
            continue
        if key not in target:
            where = f"[{prefix[:-1]}]" if prefix else "the top level"
            raise ConfigError(f"Unknown key {dotted!r} in {source}; valid keys of {where} are "
                              f"{sorted(target)}.")
        default = target[key]
        if isinstance(default, dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"The key {dotted!r} in {source} must be a table. "
                                  f"Got {value!r} instead.")
            _merge_into(default, value, prefix=f"{dotted}.", source=source)
        else:
            target[key] = _checked_value(dotted, default, value, source)


def _checked_value(dotted: str, default: Any, value: Any, source: str) -> Any:
    if isinstance(value, Mapping):
        raise ConfigError(f"The key {dotted!r} in {source} must be a value, not a table. "
                          f"Got {dict(value)!r} instead.")
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(value, bool) and isinstance(default, bool)
    elif isinstance(default, int | float):
        ok = isinstance(value, int | float)
        if ok and isinstance(default, int) and isinstance(value, float):
            ok = value.is_integer()
            value = int(value) if ok else value
    elif isinstance(default, list):
        ok = isinstance(value, list)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(f"The key {dotted!r} in {source} must be a {type(default).__name__} "
                          f"like the default {default!r}. Got {value!r} instead.")
    if dotted in _RANGES and not _RANGES[dotted][0](value):
        raise ConfigError(f"The key {dotted!r} in {source} must be {_RANGES[dotted][1]}. "
                          f"Got {value!r} instead.")
    return value


def load_config(
    name: str, path: str | Path | None = None, *, quick: bool = False
) -> dict[str, Any]:
    """Return the resolved configuration of analysis ``name``: defaults, quick, then the file.

    Parameters
    ----------
    name : str
        Analysis name.
    path : str or pathlib.Path, optional
        A TOML file whose keys replace the defaults.
    quick : bool, default False
        Start from the quick defaults.

    Returns
    -------
    dict
        The resolved configuration.

    Raises
    ------
    ConfigError
        If the file is missing, is not valid TOML, or has an unknown or mistyped key.
    """
    config = default_config(name, quick=quick)
    if path is None:
        return config
    return merge_config(config, read_toml(path), source=str(path))


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, turning every failure into a :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"No config file at {str(path)!r}.")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"The config file {str(path)!r} is not valid TOML: {err}.") from None


def dump_toml(config: Mapping[str, Any]) -> str:
    """Write a nested dict of scalars, lists and tables as TOML text.

    Parameters
    ----------
    config : mapping
        Tables are nested mappings; values are str, bool, int, float or lists of them.

    Returns
    -------
    str
        TOML that :func:`tomllib.loads` reads back to ``config``.

    Examples
    --------
    >>> import tomllib
    >>> cfg = {"seed": 1, "sampler": {"draws": 10, "name": "pymc", "xs": [1.5, 2.0]}}
    >>> tomllib.loads(dump_toml(cfg)) == cfg
    True
    """
    lines: list[str] = []
    _dump_table(config, [], lines)
    return "\n".join(lines).strip() + "\n"


def _dump_table(table: Mapping[str, Any], path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    if path and (scalars or not tables):
        lines.append("")
        lines.append("[" + ".".join(_key(p) for p in path) + "]")
    for key, value in scalars.items():
        lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in tables.items():
        _dump_table(value, [*path, key], lines)


def _key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else _value(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise ConfigError(f"Cannot write {value!r} (a {type(value).__name__}) to TOML.")
