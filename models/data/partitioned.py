"""Simulated listening logs written as partitioned Parquet, one block of users at a time.

:func:`simulate_service_partitioned` writes a log far larger than memory (say
100 million events) by calling :func:`~models.data.simulate.simulate_service`
on blocks of users and writing each block's events, users and truth to its own
files before the next block is drawn. Read the result back with
``load_events(out_dir / "events", lazy=True)``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from models._validation import check_int
from models.data.schema import SESSION_ID, USER_ID
from models.data.simulate import simulate_service

__all__ = ["simulate_service_partitioned"]

_FUNC = "simulate_service_partitioned"


def simulate_service_partitioned(
    n_users: int,
    days: int,
    out_dir: str | os.PathLike[str],
    *,
    users_per_partition: int = 100_000,
    random_seed: int | None = None,
    overwrite: bool = False,
    **simulate_kwargs: Any,
) -> Path:
    r"""Simulate a streaming service block by block and write it as partitioned Parquet.

    Parameters
    ----------
    n_users : int
        Number of users in all.
    days : int
        Length of the observation window in days.
    out_dir : str or path-like
        Folder to write to (created if missing).
    users_per_partition : int, default 100000
        Users per block; each block is one file in ``events/``, ``users/`` and
        ``truth/``. With the defaults of :func:`simulate_service` a block of
        100,000 users over 365 days is about 8.8 million events, 2.5 GB of peak
        memory while it is drawn and roughly 150 MB on disk.
    random_seed : int or None, optional
        Root seed. Block ``i`` is drawn by ``simulate_service`` with the int seed
        ``numpy.random.SeedSequence(random_seed).spawn(n_blocks)[i]
        .generate_state(1, numpy.uint64)[0]``: the blocks' streams are
        independent, the same root seed gives the same files, and one block can
        be redrawn alone from the seed recorded in ``manifest.json``. With
        ``None`` a root seed is drawn and recorded.
    overwrite : bool, default False
        Replace the files of an earlier run in ``out_dir``; otherwise a folder
        that already holds ``manifest.json`` is an error.
    **simulate_kwargs
        Passed to :func:`~models.data.simulate.simulate_service` for every
        block (``start``, ``network=NetworkOptions(n_artists=...)``, ...).

    Returns
    -------
    pathlib.Path
        ``out_dir``, holding

        - ``events/part-00000.parquet``, ... : the log of each block (sorted by
          ``user_id`` then ``timestamp``);
        - ``users/part-00000.parquet``, ... : the users table of each block;
        - ``truth/users-00000.parquet``, ... : the per-user ground truth
          (``truth.users`` of each block: ``lam``, ``p``, ``alive``, ...);
        - ``truth/artists-00000.parquet``, ... : each block's catalogue;
        - ``manifest.json``: the arguments, the root seed, and per block its
          seed, first user id and numbers of users, sessions and events.

    Raises
    ------
    ValueError
        If ``n_users``, ``days`` or ``users_per_partition`` is not a positive
        integer, ``random_seed`` is not an int or None, or ``out_dir`` already
        holds a run (a ``manifest.json``, or Parquet files in ``events/``,
        ``users/`` or ``truth/``) and ``overwrite`` is False.

    Notes
    -----
    User ids run over ``0 .. n_users - 1`` across blocks (block ``i`` adds its
    first user id to the ids ``simulate_service`` draws), and session ids are
    shifted the same way, so both are unique in the whole log. Each block is
    an independent :func:`simulate_service` draw; users are independent in
    that model, so the blocks together are one service of ``n_users`` users,
    **except for the catalogue**: every block draws its own catalogue with the
    same settings, so an ``artist_id`` (or ``track_id``) stands for a different
    artist in different blocks (community, popularity). Activity, churn and
    skip summaries are unaffected; do not use the artist ids across blocks for
    network models.

    Only one block is in memory at a time.

    Examples
    --------
    >>> import tempfile
    >>> from models.data.io import load_events
    >>> from models.data.partitioned import simulate_service_partitioned
    >>> folder = simulate_service_partitioned(
    ...     300, 30, tempfile.mkdtemp(), users_per_partition=100, random_seed=1)
    >>> sorted(p.name for p in (folder / "events").iterdir())
    ['part-00000.parquet', 'part-00001.parquet', 'part-00002.parquet']
    >>> log = load_events(folder / "events")
    >>> int(log["user_id"].max())
    299
    """
    n_users = check_int(_FUNC, "n_users", n_users)
    days = check_int(_FUNC, "days", days)
    block_size = check_int(_FUNC, "users_per_partition", users_per_partition)
    if random_seed is None:
        random_seed = int(np.random.SeedSequence().entropy % 2**63)
    elif isinstance(random_seed, bool) or not isinstance(random_seed, int | np.integer):
        raise ValueError(
            f"The 'random_seed' parameter of {_FUNC} must be an int or None. "
            f"Got {random_seed!r} instead."
        )
    out = Path(out_dir)
    subs = [out / "events", out / "users", out / "truth"]
    earlier = [f for sub in subs for f in sub.glob("*.parquet")]
    if (earlier or (out / "manifest.json").exists()) and not overwrite:
        raise ValueError(
            f"The 'out_dir' parameter of {_FUNC} must not hold an earlier run unless "
            f"overwrite=True. Got '{out}' (it has a manifest.json or Parquet files) instead."
        )
    for sub in subs:
        sub.mkdir(parents=True, exist_ok=True)
    for old in earlier:
        old.unlink()

    n_blocks = -(-n_users // block_size)
    children = np.random.SeedSequence(int(random_seed)).spawn(n_blocks)
    blocks = []
    first_session = 0
    for i, child in enumerate(children):
        first_user = i * block_size
        size = min(block_size, n_users - first_user)
        seed = int(child.generate_state(1, np.uint64)[0])
        sim = simulate_service(size, days, random_seed=seed, **simulate_kwargs)
        events = sim.events
        events[USER_ID] += first_user
        events[SESSION_ID] += first_session
        users = sim.users
        users[USER_ID] += first_user
        truth_users = sim.truth.users
        truth_users[USER_ID] += first_user
        events.to_parquet(out / "events" / f"part-{i:05d}.parquet", index=False)
        users.to_parquet(out / "users" / f"part-{i:05d}.parquet", index=False)
        truth_users.to_parquet(out / "truth" / f"users-{i:05d}.parquet", index=False)
        sim.truth.artists.to_parquet(out / "truth" / f"artists-{i:05d}.parquet", index=False)
        n_sessions = len(sim.truth.sessions)
        blocks.append(
            {
                "block": i,
                "seed": seed,
                "first_user_id": first_user,
                "n_users": size,
                "first_session_id": first_session,
                "n_sessions": n_sessions,
                "n_events": len(events),
            }
        )
        first_session += n_sessions
        del sim, events, users, truth_users
    manifest = {
        "function": f"models.data.partitioned.{_FUNC}",
        "n_users": n_users,
        "days": days,
        "users_per_partition": block_size,
        "random_seed": int(random_seed),
        "simulate_kwargs": {k: repr(v) for k, v in simulate_kwargs.items()},
        "n_events": sum(b["n_events"] for b in blocks),
        "blocks": blocks,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out
