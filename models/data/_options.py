"""The settings of the simulated service, in four option objects with defaults.

:func:`~models.data.simulate.simulate_service` and
:func:`~models.experiments.simulate.simulate_experiment` take the same four objects:
who the users are (:class:`UserOptions`), how they come and go (:class:`ChurnOptions`),
how they listen and skip (:class:`ListeningOptions`) and the catalogue whose genre
communities shape the co-listening network (:class:`NetworkOptions`). Each checks its
values when it is made, so a wrong setting fails where it is written, with its name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from models._deprecation import warn_deprecated
from models._validation import check_int
from models.data._generators import PLANS, check, check_pos

__all__ = [
    "DEFAULT_ACTIVITY",
    "DEFAULT_COUNTRIES",
    "DEFAULT_DAY_OF_WEEK",
    "DEFAULT_HOUR_EFFECTS",
    "ChurnOptions",
    "ListeningOptions",
    "NetworkOptions",
    "UserOptions",
]

#: Default country mix: country -> (share of users, share of those on the premium plan).
DEFAULT_COUNTRIES: dict[str, tuple[float, float]] = {
    "US": (0.30, 0.55),
    "GB": (0.15, 0.50),
    "DE": (0.15, 0.45),
    "BR": (0.15, 0.25),
    "IN": (0.15, 0.15),
    "SE": (0.10, 0.65),
}
#: Default BG/NBD population parameters per plan (sessions per day, dropout per session).
DEFAULT_ACTIVITY: dict[str, dict[str, float]] = {
    "free": {"r": 0.8, "alpha": 3.0, "a": 1.2, "b": 8.0},
    "premium": {"r": 1.2, "alpha": 3.0, "a": 1.5, "b": 24.0},
}
#: Default multipliers of the mean extra plays per session, Monday first.
DEFAULT_DAY_OF_WEEK = (0.9, 0.9, 0.95, 1.0, 1.1, 1.25, 1.05)
#: Default skip log-odds shifts for the hour bins [0, 6), [6, 12), [12, 18), [18, 24).
DEFAULT_HOUR_EFFECTS = (0.3, -0.2, 0.0, 0.15)


def _finite(value: Any) -> bool:
    return (isinstance(value, int | float | np.number) and not isinstance(value, bool)
            and bool(np.isfinite(value)))


@dataclass(frozen=True)
class UserOptions:
    """Who the users are: their countries, plans and when they sign up.

    Parameters
    ----------
    countries : mapping of str to (float, float), optional
        Country -> (weight among users, share of its users on the premium plan).
        Default ``models.data.simulate.DEFAULT_COUNTRIES`` (six countries).
    initial_share : float, default 0.5
        Share of users whose first session falls on the first day; the others sign
        up uniformly over the window.

    Raises
    ------
    ValueError
        If a value is out of range; the message names it and its value.
    """

    countries: Mapping[str, tuple[float, float]] = field(
        default_factory=lambda: dict(DEFAULT_COUNTRIES))
    initial_share: float = 0.5

    def __post_init__(self) -> None:
        owner = "UserOptions"
        shares, premium = self._arrays()
        ok = (len(shares) > 0 and bool(np.all(shares >= 0)) and shares.sum() > 0
              and bool(np.all((premium >= 0) & (premium <= 1))))
        check(ok, "countries", owner, "a mapping country -> (share > 0, premium share in "
              "[0, 1])", dict(self.countries))
        check(_finite(self.initial_share) and 0.0 <= self.initial_share <= 1.0,
              "initial_share", owner, "in [0, 1]", self.initial_share)

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        try:
            pairs = [(float(v[0]), float(v[1])) for v in dict(self.countries).values()]
        except (TypeError, ValueError, IndexError):
            pairs = [(np.nan, np.nan)]
        values = np.array(pairs, dtype=float).reshape(-1, 2)
        return values[:, 0], values[:, 1]

    def shares(self) -> tuple[np.ndarray, np.ndarray]:
        """Each country's share of users (summing to 1) and its premium share."""
        shares, premium = self._arrays()
        return shares / shares.sum(), premium


@dataclass(frozen=True)
class ChurnOptions:
    """How users come back and drop out: BG/NBD session rates and dropout per plan.

    Parameters
    ----------
    activity : mapping, optional
        Plan (``"free"``, ``"premium"``) -> ``{"r", "alpha", "a", "b"}``, the BG/NBD
        population parameters of that segment: the session rate per day is
        ``Gamma(r, alpha)`` and the dropout probability after each repeat session
        ``Beta(a, b)``. Default ``models.data.simulate.DEFAULT_ACTIVITY``: mean rate
        0.27 (free) and 0.4 (premium) sessions a day, mean dropout probability 0.13 and
        0.06.

    Raises
    ------
    ValueError
        If a plan or a parameter is missing or not positive.
    """

    activity: Mapping[str, Mapping[str, float]] = field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_ACTIVITY.items()})

    def __post_init__(self) -> None:
        need = {"r", "alpha", "a", "b"}
        activity = self.activity
        ok = (isinstance(activity, Mapping) and set(activity) == set(PLANS)
              and all(isinstance(v, Mapping) and set(v) == need
                      and all(_finite(x) and x > 0 for x in v.values())
                      for v in activity.values()))
        check(ok, "activity", "ChurnOptions",
              "a mapping {'free': {...}, 'premium': {...}} of positive 'r', 'alpha', 'a', 'b'",
              activity)


@dataclass(frozen=True)
class ListeningOptions:
    r"""How users listen and skip: plays per session, weekdays and the skip model.

    Parameters
    ----------
    plays_mean : float, default 5.0
        Mean plays per session for an average user on a day with multiplier 1.
    plays_dispersion : float, default 2.0
        NegBin size :math:`\phi` of the extra plays per session.
    play_propensity_shape : float, default 4.0
        Shape (and rate) of each user's Gamma play propensity, mean 1.
    day_of_week_multipliers : sequence of 7 float, optional
        Multipliers of the mean extra plays by the weekday of the session start,
        Monday first. Default ``models.data.simulate.DEFAULT_DAY_OF_WEEK``.
    skip_intercept : float, default -1.0
        :math:`\mu`, the skip log-odds intercept.
    skip_sigma_user, skip_sigma_track : float, default 0.6 and 0.4
        Standard deviations of the user and track skip effects.
    skip_beta_position : float, default 0.2
        Coefficient of log(position in session) in the skip log-odds.
    skip_hour_effects : sequence of 4 float, default (0.3, -0.2, 0.0, 0.15)
        Skip log-odds shifts for hours [0, 6), [6, 12), [12, 18), [18, 24).
    skip_fraction : (float, float), default (0.02, 0.15)
        A skipped play lasts ``Uniform(low, high)`` times the track length.

    Raises
    ------
    ValueError
        If a value is out of range; the message names it and its value.
    """

    plays_mean: float = 5.0
    plays_dispersion: float = 2.0
    play_propensity_shape: float = 4.0
    day_of_week_multipliers: Sequence[float] = DEFAULT_DAY_OF_WEEK
    skip_intercept: float = -1.0
    skip_sigma_user: float = 0.6
    skip_sigma_track: float = 0.4
    skip_beta_position: float = 0.2
    skip_hour_effects: Sequence[float] = DEFAULT_HOUR_EFFECTS
    skip_fraction: tuple[float, float] = (0.02, 0.15)

    def __post_init__(self) -> None:
        owner = "ListeningOptions"
        check(_finite(self.plays_mean) and self.plays_mean >= 1.0, "plays_mean", owner,
              "at least 1", self.plays_mean)
        check_pos(self.plays_dispersion, "plays_dispersion", owner)
        check_pos(self.play_propensity_shape, "play_propensity_shape", owner)
        check(_finite(self.skip_intercept), "skip_intercept", owner, "a finite number",
              self.skip_intercept)
        for name in ("skip_sigma_user", "skip_sigma_track"):
            value = getattr(self, name)
            check(_finite(value) and value >= 0, name, owner, "a finite number >= 0", value)
        check(_finite(self.skip_beta_position), "skip_beta_position", owner, "a finite number",
              self.skip_beta_position)
        dow = tuple(self.day_of_week_multipliers)
        check(len(dow) == 7 and all(_finite(m) and m > 0 for m in dow),
              "day_of_week_multipliers", owner, "7 positive numbers, Monday first", dow)
        hour = tuple(self.skip_hour_effects)
        check(len(hour) == 4 and all(_finite(h) for h in hour), "skip_hour_effects", owner,
              "4 finite numbers (hours 0-6, 6-12, 12-18, 18-24)", hour)
        low_high = tuple(self.skip_fraction)
        check(len(low_high) == 2 and all(_finite(f) for f in low_high)
              and 0 < low_high[0] < low_high[1] <= 1, "skip_fraction", owner,
              "a pair (low, high) with 0 < low < high <= 1", low_high)


@dataclass(frozen=True)
class NetworkOptions:
    """The catalogue, and the genre communities that shape the co-listening network.

    Parameters
    ----------
    n_artists : int, default 500
        Number of artists.
    n_communities : int, default 8
        Number of latent communities (genres), at most ``n_artists``; artists are
        split evenly.
    zipf_exponent : float, default 1.0
        Artist popularity is ``rank ** -zipf_exponent`` (catalogue rank).
    tracks_per_artist : float, default 8.0
        Mean tracks per artist (``1 + Poisson(tracks_per_artist - 1)``), at least 1.
    track_zipf_exponent : float, default 0.8
        Track popularity within an artist is ``rank ** -track_zipf_exponent``.
    track_length_median_s, track_length_sigma : float, default 210.0 and 0.3
        Track lengths are log-normal with this median (seconds) and log-sd.
    preference_concentration, preference_dominance : float, default 0.2 and 4.0
        User community preferences are Dirichlet with concentration
        ``preference_concentration`` on every community plus ``preference_dominance``
        on one dominant community drawn uniformly.

    Raises
    ------
    ValueError
        If a value is out of range; the message names it and its value.
    """

    n_artists: int = 500
    n_communities: int = 8
    zipf_exponent: float = 1.0
    tracks_per_artist: float = 8.0
    track_zipf_exponent: float = 0.8
    track_length_median_s: float = 210.0
    track_length_sigma: float = 0.3
    preference_concentration: float = 0.2
    preference_dominance: float = 4.0

    def __post_init__(self) -> None:
        owner = "NetworkOptions"
        n_artists = check_int(owner, "n_artists", self.n_artists)
        n_communities = check_int(owner, "n_communities", self.n_communities)
        check(n_communities <= n_artists, "n_communities", owner,
              f"at most n_artists ({n_artists})", n_communities)
        for name in ("zipf_exponent", "tracks_per_artist", "track_zipf_exponent",
                     "track_length_median_s", "track_length_sigma",
                     "preference_concentration", "preference_dominance"):
            check_pos(getattr(self, name), name, owner)
        check(self.tracks_per_artist >= 1, "tracks_per_artist", owner, "at least 1",
              self.tracks_per_artist)


OPTION_CLASSES: dict[str, type] = {
    "users": UserOptions,
    "churn": ChurnOptions,
    "listening": ListeningOptions,
    "network": NetworkOptions,
}
#: The flat keyword of the old signature -> the option object that now holds it.
_HOME = {f.name: group for group, cls in OPTION_CLASSES.items()
         for f in dataclasses.fields(cls)}


class ServiceSettings(NamedTuple):
    """The checked size and settings of one simulated service."""

    n_users: int
    days: int
    users: UserOptions
    churn: ChurnOptions
    listening: ListeningOptions
    network: NetworkOptions

    def params(self) -> dict[str, Any]:
        """Every setting as plain numbers and tuples (a simulation truth's ``params``)."""
        shares, premium = self.users.shares()
        out: dict[str, Any] = {
            f.name: float(getattr(obj, f.name))
            for obj in (self.users, self.listening, self.network)
            for f in dataclasses.fields(obj)
            if isinstance(getattr(obj, f.name), float | int)
        }
        lst = self.listening
        out.update(
            countries={c: (float(s), float(q)) for c, s, q in
                       zip(self.users.countries, shares, premium, strict=True)},
            activity={g: {k: float(v) for k, v in a.items()}
                      for g, a in self.churn.activity.items()},
            days=self.days,
            day_of_week_multipliers=tuple(float(v) for v in lst.day_of_week_multipliers),
            skip_hour_effects=tuple(float(v) for v in lst.skip_hour_effects),
            skip_fraction=tuple(float(v) for v in lst.skip_fraction),
            n_artists=int(self.network.n_artists),
            n_communities=int(self.network.n_communities),
        )
        return out


def resolve_service(func: str, n_users: Any, days: Any, given: Mapping[str, Any],
                    flat: Mapping[str, Any]) -> ServiceSettings:
    """Check the size of a simulation and return it with its four option objects.

    ``given`` maps ``users``, ``churn``, ``listening``, ``network`` to an option
    object or None (its defaults); ``flat`` holds keywords of the old flat signature,
    each applied to its object with a :class:`FutureWarning` naming the replacement.
    """
    options = _resolve_options(func, given, flat)
    return ServiceSettings(check_int(func, "n_users", n_users), check_int(func, "days", days),
                   **options)


def _resolve_options(func: str, given: Mapping[str, Any],
                     flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for group, cls in OPTION_CLASSES.items():
        value = given.get(group)
        if value is None:
            value = cls()
        elif not isinstance(value, cls):
            raise TypeError(f"The '{group}' parameter of {func} must be a {cls.__name__} (or "
                            f"None for its defaults). Got {value!r} instead.")
        out[group] = value
    unknown = sorted(set(flat) - set(_HOME))
    if unknown:
        raise TypeError(f"{func}() got unexpected keyword argument(s) {unknown}; the service "
                        "settings are the fields of " +
                        ", ".join(f"{g}={c.__name__}(...)" for g, c in OPTION_CLASSES.items()))
    for name, value in flat.items():
        group = _HOME[name]
        cls_name = OPTION_CLASSES[group].__name__
        warn_deprecated(f"{func}({name}=...) is deprecated; pass "
                        f"{group}={cls_name}({name}=...) instead.", stacklevel=5)
        out[group] = dataclasses.replace(out[group], **{name: value})
    return out
