"""Random-draw and option-check helpers shared by the simulators.

Internal: used by :mod:`models.data.simulate` and :mod:`models.experiments.simulate`
so that both draw users, sessions, catalogues and plays with one implementation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.data.schema import ARTIST_ID, TRACK_ID

NS_PER_DAY = 86_400 * 10**9
NS_PER_HOUR = 3_600 * 10**9
NS_PER_MS = 10**6
#: Plans, in the order of their integer codes.
PLANS = ("free", "premium")


def make_rng(
    random_seed: int | np.random.Generator | None,
) -> tuple[np.random.Generator, int | None]:
    if isinstance(random_seed, np.random.Generator):
        return random_seed, None
    if random_seed is None:
        random_seed = int(np.random.SeedSequence().entropy % 2**63)
    elif not isinstance(random_seed, int | np.integer) or isinstance(random_seed, bool):
        raise TypeError(
            "The 'random_seed' parameter must be an int, a numpy.random.Generator or None. "
            f"Got {random_seed!r} instead."
        )
    return np.random.default_rng(int(random_seed)), int(random_seed)


def check(ok: bool, name: str, func: str, rule: str, value: object) -> None:
    if not ok:
        raise ValueError(f"The '{name}' parameter of {func} must be {rule}. Got {value!r} instead.")


def check_pos(value: object, name: str, func: str) -> float:
    ok = isinstance(value, int | float | np.number) and np.isfinite(value) and value > 0
    check(bool(ok), name, func, "a positive finite number", value)
    return float(value)


def geometric(rng: np.random.Generator, prob: np.ndarray) -> np.ndarray:
    """Draw ``G ~ Geometric(prob)`` on {1, 2, ...} as floats (``P(G > t) = (1 - prob)^t``)."""
    prob = np.clip(prob, np.finfo(float).tiny, 1.0)
    u = 1.0 - rng.random(prob.shape)  # in (0, 1]
    with np.errstate(divide="ignore"):
        return np.floor(np.log(u) / np.log1p(-prob)) + 1.0


def bgnbd_draw(
    rng: np.random.Generator, lam: np.ndarray, p: np.ndarray, T: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact BG/NBD repeat-transaction times in (0, T] for each customer.

    Returns the number of repeat transactions ``x``, the flat array of their
    times (customer-major, increasing within a customer) and the dropped flag.
    """
    n_total = rng.poisson(lam * T)  # repeat transactions while alive forever
    j = geometric(rng, p)  # the customer drops out right after repeat transaction j
    dropped = j <= n_total
    x = np.minimum(n_total, j).astype(np.int64)
    # The first x of n_total sorted uniforms on (0, T): S_k / S_{n+1} with S the
    # partial sums of Exp(1), and S_{n+1} = S_x + Gamma(n + 1 - x).
    steps = rng.standard_exponential(int(x.sum()))
    csum = np.cumsum(steps)
    before = np.concatenate(([0.0], csum))[np.cumsum(x) - x]
    partial = np.maximum(csum - np.repeat(before, x), 0.0)
    s_x = np.concatenate(([0.0], csum))[np.cumsum(x)] - before
    total = s_x + rng.standard_gamma((n_total - x + 1).astype(float))
    times = np.repeat(T / total, x) * partial
    return x, times, dropped


def draw_catalogue(
    rng,
    n_artists,
    n_communities,
    zipf_exponent,
    tracks_per_artist,
    track_zipf_exponent,
    track_length_median_s,
    track_length_sigma,
    sigma_track,
):
    community = rng.permutation(np.arange(n_artists) % n_communities)
    rank = rng.permutation(n_artists) + 1
    popularity = rank.astype(float) ** -zipf_exponent
    in_comm = popularity / np.bincount(community, weights=popularity)[community]
    artists = pd.DataFrame(
        {
            ARTIST_ID: np.arange(n_artists, dtype=np.int64),
            "community": community,
            "popularity_rank": rank,
            "popularity": popularity,
            "prob_in_community": in_comm,
        }
    )
    n_tracks = 1 + rng.poisson(tracks_per_artist - 1.0, n_artists)
    t_artist = np.repeat(np.arange(n_artists), n_tracks)
    t_rank = np.arange(t_artist.size) - np.repeat(np.cumsum(n_tracks) - n_tracks, n_tracks) + 1
    t_weight = t_rank.astype(float) ** -track_zipf_exponent
    length = np.round(
        1000
        * track_length_median_s
        * np.exp(track_length_sigma * rng.standard_normal(t_artist.size))
    )
    tracks = pd.DataFrame(
        {
            TRACK_ID: np.arange(t_artist.size, dtype=np.int64),
            ARTIST_ID: t_artist.astype(np.int64),
            "length_ms": np.maximum(length, 1000).astype(np.int64),
            "rank_in_artist": t_rank,
            "prob_in_artist": t_weight / np.bincount(t_artist, weights=t_weight)[t_artist],
            "skip_effect": sigma_track * rng.standard_normal(t_artist.size),
        }
    )
    return artists, tracks


def grouped_choice(rng, group_of_draw, group_of_item, prob_in_group):
    """Pick an item within each draw's group with the given within-group probabilities.

    Items are laid out by group on [g, g + 1) through their within-group CDF and
    ``g + u`` is located by an indexed (guide-table) search, which gives exactly
    ``searchsorted(cdf, g + u, side="right")`` at a fraction of its cost.
    """
    order = np.argsort(group_of_item, kind="stable")
    g_sorted = group_of_item[order]
    sizes = np.bincount(g_sorted)
    ends = np.cumsum(sizes)
    cdf = np.cumsum(prob_in_group[order])
    cdf = g_sorted + cdf - np.repeat(np.concatenate(([0.0], cdf[ends[:-1] - 1])), sizes)
    cdf[ends - 1] = np.arange(ends.size) + 1.0  # each group's CDF ends exactly at g + 1
    value = group_of_draw + rng.random(group_of_draw.size)
    res = 4 * int(sizes.max())  # guide cells per unit of the CDF axis
    guide = np.searchsorted(cdf, np.arange(ends.size * res + 1) / res, side="right")
    pos = guide[np.maximum(np.floor(value * res).astype(np.int64) - 1, 0)]
    cdf = np.append(cdf, np.inf)
    todo = np.flatnonzero(cdf[pos] <= value)
    while todo.size:  # a few steps forward at most; a loop over steps, not draws
        pos[todo] += 1
        todo = todo[cdf[pos[todo]] <= value[todo]]
    return order[np.minimum(pos, ends[group_of_draw] - 1)]


def play_sequence(sess_ns, n_plays, off, base_logit, hour_effects, u_skip, length, short):
    """Timestamps, skip flags and durations of the plays of each session, position by position.

    Play ``j`` (0-based) of session ``s`` lives at flat index ``off[s] + j`` for
    ``j < n_plays[s]``.  It starts when play ``j - 1`` ends (play 0 at
    ``sess_ns[s]``), is skipped when ``u_skip < logistic(base_logit +
    hour_effects[hour // 6])`` with the hour of its own start, and lasts
    ``short`` ms if skipped, else ``length`` ms.  Returns three arrays of the
    size of ``base_logit``; flat entries that no play reaches are left unset.
    The loop runs over positions within a session, never over sessions.
    """
    size = base_logit.size
    ts = np.empty(size, dtype=np.int64)
    skipped = np.empty(size, dtype=bool)
    ms = np.empty(size, dtype=np.int64)
    order = np.argsort(-n_plays, kind="stable")
    n_active = np.searchsorted(-n_plays[order], -np.arange(n_plays.max(initial=0)), side="left")
    off_sorted, clock = off[order], sess_ns[order]
    for j, m in enumerate(n_active):
        idx = off_sorted[:m] + j
        now = clock[:m]
        ts[idx] = now
        logit = base_logit[idx] + hour_effects[(now // NS_PER_HOUR) % 24 // 6]
        skip = u_skip[idx] * (1.0 + np.exp(-logit)) < 1.0
        skipped[idx] = skip
        dur = np.where(skip, short[idx], length[idx]).astype(np.int64)
        ms[idx] = dur
        clock[:m] = now + dur * NS_PER_MS
    return ts, skipped, ms
