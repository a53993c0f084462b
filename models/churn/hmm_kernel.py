r"""Compiled log-likelihood and gradient of the engagement-state HMM on compressed rows.

:class:`HMMLogp` is the total log-likelihood of
:class:`~models.churn.EngagementStateModel`'s weighted unique histories with
its gradient, one PyTensor Op computed by one compiled (numba) pass of the
scaled forward-backward algorithm. Written in PyTensor, the forward recursion
unrolled over periods is a graph of hundreds of nodes that takes minutes to
compile; this Op compiles in seconds.

The histories are laid out once, when the model is built (:func:`hmm_layout`):
sorted into blocks of users with close first periods, each block's codes
transposed (period by period, users innermost) as small integers. The pass
keeps the users of a block in the innermost loops. Its loops are generated for
the model's number of states ``C`` and of codes ``V`` (:func:`blocked_kernel`):
with the states unrolled into scalars, every step of a user's recursion is one
loop body over the users of the block, which the compiler vectorises; the
emission of a code is a chain of selects among the ``V`` codes rather than a
table load (a gather, which stops the vectorisation). The transition gradients
are sums over users and periods (vectorised reductions); the emission gradient
is scattered by code in a scalar loop. Each user of a block carries its own
transition matrix (its segment's, or with covariates its transition group's);
a block whose users share one takes it as scalars. The forward variables of a
block stay in cache for the backward pass. The inverse scale factors are multiplied over
periods, and their logarithm taken only when a product grows large. On several threads
(:func:`threaded_kernel`) the blocks are dealt out to the threads, and their sums added in a
fixed order.

With user effects integrated out over ``Q`` nodes, a user's likelihood is the
mixture :math:`\sum_q \omega_q L_q` of the likelihoods under the emission
table of each node: the pass runs the forward algorithm once per node, and the
forward-backward pass of each node with the user's weight times the node's
posterior probability :math:`r_q = \omega_q L_q / \sum_{q'} \omega_{q'} L_{q'}`
(the gradient of the log of a mixture).

With normalised forward variables :math:`\hat a_t`, constants :math:`c_t`
(:math:`\log L = \sum_t \log c_t`), :math:`m_t = \hat a_{t-1} P` (:math:`\pi`
in the first period) and backward variables :math:`\hat b_T = 1`,
:math:`\hat b_{t-1}(j) = \sum_k P_{jk} e_t(k) \hat b_t(k) / c_t`:

.. math::

    \frac{\partial \log L}{\partial e_t(k)} = \frac{m_t(k)\,\hat b_t(k)}{c_t},\quad
    \frac{\partial \log L}{\partial P_{jk}} = \sum_{t > t_0}
        \frac{\hat a_{t-1}(j)\,e_t(k)\,\hat b_t(k)}{c_t},\quad
    \frac{\partial \log L}{\partial \pi_k} = \frac{e_{t_0}(k)\,\hat b_{t_0}(k)}{c_{t_0}}.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numba
import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

from models._compiled import source_salt, threadsafe_layer

__all__ = ["BlockedHistories", "HMMLogp", "blocked_kernel", "hmm_kernel", "hmm_layout",
           "threaded_kernel"]

_KERNEL_VERSION = source_salt(__file__)

_BLOCK = 128  # users per block: the block's forward variables stay in cache
_BLOCK_NODES = 16  # users per block with several nodes (the variables of every node are kept)
#: The inverse scale factors (each at least 1) are multiplied until one lane's product
#: passes this, and then their logarithms taken: on weekly histories one logarithm
#: per user rather than one every few periods. A product overflows only after a period whose
#: observation has probability below 1e-158 given the past.
_LOG_FROM = 1e150
_BANKS = 8  # copies (a power of 2) of the emission gradient, for neighbouring users
_SELECT_MAX_CODES = 16  # more codes: the emission is a table load (not vectorised)
_FAST = {"reassoc", "contract", "arcp", "nsz"}  # no "nnan"/"ninf": a zero scale stays -inf
_MARKER = "last-used"  # in each version's folder of generated modules: touched on use
_KEEP_DAYS = 30.0  # generated modules of other versions unused this long are removed


class BlockedHistories(NamedTuple):
    """Histories laid out in blocks for the compiled pass (:func:`hmm_layout`).

    ``codes`` ``(B, T, n)`` (uint8, or int32 for more than 256 codes), ``start``,
    ``group`` ``(B, n)`` int64 and ``weights`` ``(B, n)`` per block and lane
    (padding lanes: weight 0, one missing period at the end), ``shared`` ``(B,)``
    (1 where the lanes of a block share one transition group).
    """

    codes: np.ndarray
    start: np.ndarray
    group: np.ndarray
    weights: np.ndarray
    shared: np.ndarray


def block_size(n_nodes: int) -> int:
    """Users per block of the compiled pass with ``n_nodes`` nodes of a user effect."""
    return _BLOCK if n_nodes == 1 else _BLOCK_NODES


def hmm_layout(codes: np.ndarray, start: np.ndarray, group: np.ndarray, weights: np.ndarray,
               n_codes: int, n_groups: int, n_nodes: int = 1) -> BlockedHistories:
    """Sort histories into blocks and transpose each block's codes, once per model.

    Blocks hold users of one group, by first period within it, when the groups
    are large (at least a block per group on average); otherwise (many small
    groups: covariates) they are filled by first period and mix groups.
    ``n_codes`` is ``V`` (the last code, ``V - 1``, marks a missing period).
    """
    codes = np.asarray(codes)
    start = np.asarray(start, dtype=np.int64)
    group = np.asarray(group, dtype=np.int64)
    weights = np.asarray(weights, dtype=float)
    n_users, n_periods = codes.shape
    if codes.size and (codes.min() < 0 or codes.max() >= n_codes):  # never wrap into uint8
        raise ValueError(f"hmm_layout: codes must lie in 0..{n_codes - 1}; got "
                         f"{codes.min()}..{codes.max()}.")
    block = block_size(n_nodes)
    if n_users >= n_groups * block:
        order = np.lexsort((start, group))
    else:
        order = np.lexsort((group, start))
    n_blocks = max(1, -(-n_users // block))
    pad = n_blocks * block - n_users
    dtype = np.uint8 if n_codes <= 256 else np.int32
    full = np.full((n_blocks * block, n_periods), n_codes - 1, dtype=dtype)
    full[:n_users] = codes[order]
    lanes_start = np.full(n_blocks * block, n_periods - 1, dtype=np.int64)
    lanes_start[:n_users] = start[order]
    lanes_group = np.empty(n_blocks * block, dtype=np.int64)
    lanes_group[:n_users] = group[order]
    lanes_weight = np.zeros(n_blocks * block)
    lanes_weight[:n_users] = weights[order]
    lanes_group = lanes_group.reshape(n_blocks, block)
    if pad:  # padding lanes take the group of their block's first user
        lanes_group[-1, block - pad:] = lanes_group[-1, 0] if n_users else 0
    blocked = np.ascontiguousarray(full.reshape(n_blocks, block, n_periods).transpose(0, 2, 1))
    shared = (lanes_group == lanes_group[:, :1]).all(axis=1).astype(np.int8)
    return BlockedHistories(blocked, lanes_start.reshape(n_blocks, block), lanes_group,
                            lanes_weight.reshape(n_blocks, block), shared)


# ----------------------------------------------------------------- generated passes
def _states(c: int, fmt: str, sep: str = "; ") -> str:
    return sep.join(fmt.format(k=k) for k in range(c))


def _emission(c: int, v: int, ind: str) -> list[str]:
    """Lines setting ``e0..e{C-1}`` to the emissions of code ``v`` (selects, or a load)."""
    if v > _SELECT_MAX_CODES:
        return [ind + _states(c, "e{k} = tq[v, {k}]")]
    lines = [ind + _states(c, "e{k} = t{k}_0")]
    for code in range(1, v):
        lines.append(f"{ind}h = v == {code}")
        lines.append(ind + _states(c, f"e{{k}} = t{{k}}_{code} if h else e{{k}}"))
    return lines


def _prologue(c: int, v: int) -> list[str]:
    """Hoisted constants: the table (for the selects of ``v`` codes) and the initial state."""
    lines = ["    n_periods, n = cb.shape", "    t_lo = n_periods",
             "    for i in range(n):", "        t_lo = min(t_lo, st[i])"]
    if 0 < v <= _SELECT_MAX_CODES:
        lines += [f"    t{k}_{code} = tq[{code}, {k}]" for code in range(v) for k in range(c)]
    lines += [f"    i{k} = initial[{k}]" for k in range(c)]
    return lines


def _matrix(c: int, ind: str, lane: bool) -> list[str]:
    """``p{j}_{k}`` as scalars: the block's shared matrix, or the lane's own."""
    idx = "i" if lane else "0"
    return [ind + "; ".join(f"p{j}_{k} = pb[{j}, {k}, {idx}]" for k in range(c))
            for j in range(c)]


def _predict(c: int, ind: str) -> list[str]:
    """``x{j}`` (the lane's last filtered state) and ``m{k}`` (this period's prediction)."""
    lines = [ind + _states(c, "x{k} = fw[tp, {k}, i]"), f"{ind}late = t > st[i]"]
    for k in range(c):
        dot = " + ".join(f"x{j} * p{j}_{k}" for j in range(c))
        lines.append(f"{ind}m{k} = {dot} if late else i{k}")
    return lines


def _forward_source(c: int, v: int) -> str:
    """Return the source of the forward pass over a block.

    ``fw[t]`` holds the filtered state (rows ``0..C-1``), the emissions
    (``C..2C-1``) and the inverse scale factor (``2C``) of each period. The
    main loop writes this one array only: with a few arrays more, LLVM gives up
    the run-time checks of their overlap and the loop stays scalar.
    """
    ind = "            "
    body = [*_predict(c, ind), f"{ind}v = cb[t, i]", *_emission(c, v, ind),
            ind + _states(c, "y{k} = m{k} * e{k}"),
            f"{ind}inv = 1.0 / (" + " + ".join(f"y{k}" for k in range(c)) + ")",
            ind + _states(c, "fw[t, {k}, i] = y{k} * inv"),
            ind + _states(c, f"fw[t, {c} + {{k}}, i] = e{{k}}"),
            f"{ind}fw[t, {2 * c}, i] = inv"]
    scale = ["        big = 0.0",
             "        for i in range(n):",  # the product of the inverse scale factors
             f"            prod[i] *= fw[t, {2 * c}, i] if t >= st[i] else 1.0",
             "            big = max(big, prod[i])",
             f"        if big > {_LOG_FROM!r} or t == n_periods - 1:",
             "            for i in range(n):",
             "                ll[i] -= np.log(prod[i])",
             "                prod[i] = 1.0"]

    def loop(lane: bool) -> list[str]:
        head = ["    for t in range(t_lo, n_periods):", "        tp = max(t - 1, 0)",
                "        for i in range(n):"]
        return head + (_matrix(c, ind, True) if lane else []) + body + scale

    lines = ["def forward(tq, initial, pb, shared, cb, st, fw, prod, ll):",
             *_prologue(c, v),
             "    for i in range(n):", "        prod[i] = 1.0", "        ll[i] = 0.0",
             "    if shared:", *_matrix(c, "        ", False), *["    " + x for x in loop(False)],
             "    else:", *["    " + x for x in loop(True)]]
    return "\n".join(lines)


def _backward_source(c: int) -> str:
    """Return the source of the backward pass after the forward one, with the gradients.

    ``scr`` holds the backward variables (rows ``0..C-1``), the emission
    gradients of the period (``C..2C-1``) and, for a block whose users have
    their own matrices, their transition gradients (``2C..2C+C*C-1``). For a
    block that shares one matrix the main loop writes this one array (and
    vectorises); for the other blocks it also keeps ``q`` in ``fw`` for the
    sums after it, and stays scalar.
    """
    g0 = 2 * c

    def body(lane: bool) -> list[str]:
        ind = "            "
        lines = [*_predict(c, ind), ind + _states(c, f"e{{k}} = fw[t, {c} + {{k}}, i]"),
                 f"{ind}inv = fw[t, {2 * c}, i]",
                 ind + _states(c, "c{k} = scr[{k}, i] * inv"),
                 f"{ind}wi = w[i] if t >= st[i] else 0.0",
                 ind + _states(c, f"scr[{c} + {{k}}, i] = wi * m{{k}} * c{{k}}"),
                 ind + _states(c, "q{k} = e{k} * c{k}")]
        if lane:  # kept in place of the emissions, summed after the loop (``sums_lane``)
            lines.append(ind + _states(c, f"fw[t, {c} + {{k}}, i] = q{{k}}"))
        else:
            lines += [f"{ind}wl = w[i] if late else 0.0", ind + _states(c, "wx{k} = wl * x{k}")]
            for j in range(c):
                lines.append(ind + "; ".join(f"s{j}_{k} += wx{j} * q{k}" for k in range(c)))
        lines += [f"{ind}ws = w[i] if t == st[i] else 0.0",
                  ind + _states(c, "g{k} += ws * q{k}")]
        for j in range(c):
            dot = " + ".join(f"p{j}_{k} * q{k}" for k in range(c))
            lines.append(f"{ind}scr[{j}, i] = {dot}")
        return lines

    scatter = ["        for i in range(n):",
               f"            bank = gtab[i & {_BANKS - 1}, cb[t, i]]",
               *[f"            bank[{k}] += scr[{c + k}, i]" for k in range(c)]]

    # each user's own transition gradients: sum_t w a_{t-1}(j) q_t(k) over its periods
    sums_lane = ["    for t in range(t_lo + 1, n_periods):", "        for i in range(n):",
                 "            wl = w[i] if t > st[i] else 0.0",
                 "            " + _states(c, "wx{k} = wl * fw[t - 1, {k}, i]"),
                 "            " + _states(c, f"q{{k}} = fw[t, {c} + {{k}}, i]"),
                 *["            " + "; ".join(f"scr[{g0 + j * c + k}, i] += wx{j} * q{k}"
                                              for k in range(c)) for j in range(c)]]

    def loop(lane: bool) -> list[str]:
        head = ["    for t in range(n_periods - 1, t_lo - 1, -1):", "        tp = max(t - 1, 0)",
                "        for i in range(n):"]
        return head + (_matrix(c, "            ", True) if lane else []) + body(lane) + scatter

    sums = [f"s{j}_{k}" for j in range(c) for k in range(c)]
    lines = ["def backward(initial, pb, shared, cb, st, w, fw, scr, gtab, red):",
             *_prologue(c, 0),
             "    for i in range(n):", "        " + _states(c, "scr[{k}, i] = 1.0"),
             "    " + "; ".join(f"{s} = 0.0" for s in sums),
             "    " + _states(c, "g{k} = 0.0"),
             "    if shared:", *_matrix(c, "        ", False), *["    " + x for x in loop(False)],
             "    else:", *["    " + x for x in loop(True) + sums_lane]]
    lines += [f"    red[{n}] += {s}" for n, s in enumerate(sums)]
    lines += [f"    red[{c * c + k}] += g{k}" for k in range(c)]
    return "\n".join(lines)


_DRIVER = """
@numba.njit(cache=True, error_model="numpy")
def blocks_pass(table, initial, transition, codes, start, group, weights, shared, log_nodes,
                first, step):
    n_blocks, n_periods, n = codes.shape
    c = initial.shape[0]
    n_nodes = table.shape[0]
    n_trans = transition.shape[0]
    g_banks = np.zeros((n_nodes, BANKS, table.shape[1], c))
    g_init = np.zeros(c)
    g_trans = np.zeros_like(transition)
    fw = np.zeros((n_nodes, n_periods, 2 * c + 1, n))
    ll = np.zeros((n_nodes, n))
    prod = np.ones(n)
    scr = np.zeros((2 * c + c * c, n))
    red = np.zeros(c * c + c)
    pb = np.zeros((n_trans, c, c, n))
    wq = np.empty(n)
    total = 0.0
    for blk in range(first, n_blocks, step):
        cb = codes[blk]
        st = start[blk]
        w = weights[blk]
        g = group[blk]
        sh = shared[blk] != 0
        for qt in range(n_trans):  # the block's matrices: one shared, or each lane's own
            for j in range(c):
                for k in range(c):
                    if sh:
                        pb[qt, j, k, 0] = transition[qt, g[0], j, k]
                    else:
                        for i in range(n):
                            pb[qt, j, k, i] = transition[qt, g[i], j, k]
        for q in range(n_nodes):
            forward(table[q], initial, pb[min(q, n_trans - 1)], sh, cb, st, fw[q], prod,
                    ll[q])
        if n_nodes == 1:
            for i in range(n):
                total += w[i] * (ll[0, i] + log_nodes[0])
                wq[i] = w[i]
        else:  # the log of each lane's mixture, and the nodes' posterior probabilities
            for i in range(n):
                top = -np.inf
                for q in range(n_nodes):
                    ll[q, i] += log_nodes[q]
                    top = max(top, ll[q, i])
                acc = 0.0
                for q in range(n_nodes):
                    acc += np.exp(ll[q, i] - top)
                lse = top + np.log(acc)
                total += w[i] * lse
                for q in range(n_nodes):
                    ll[q, i] = np.exp(ll[q, i] - lse) if np.isfinite(lse) else 0.0
        for q in range(n_nodes):
            if n_nodes > 1:
                big = 0.0
                for i in range(n):
                    wq[i] = w[i] * ll[q, i]
                    big = max(big, ll[q, i])
                if big <= 1e-12:
                    continue
            qt = min(q, n_trans - 1)
            red[:] = 0.0
            backward(initial, pb[qt], sh, cb, st, wq, fw[q], scr, g_banks[q], red)
            for k in range(c):
                g_init[k] += red[c * c + k]
            for j in range(c):
                for k in range(c):
                    if sh:
                        g_trans[qt, g[0], j, k] += red[j * c + k]
                    else:
                        for i in range(n):
                            g_trans[qt, g[i], j, k] += scr[2 * c + j * c + k, i]
                            scr[2 * c + j * c + k, i] = 0.0
    return total, g_banks.sum(axis=1), g_init, g_trans


@numba.njit(cache=True, error_model="numpy")
def kernel(table, initial, transition, codes, start, group, weights, shared, log_nodes):
    return blocks_pass(table, initial, transition, codes, start, group, weights, shared,
                       log_nodes, 0, 1)


@numba.njit(cache=True, error_model="numpy")
def combine(totals, g_table, g_init, g_trans):
    total = 0.0
    for p in range(totals.shape[0]):  # in order: the same sums whatever the threads' timing
        total += totals[p]
    for p in range(1, totals.shape[0]):
        g_table[0] += g_table[p]
        g_init[0] += g_init[p]
        g_trans[0] += g_trans[p]
    return total, g_table[0], g_init[0], g_trans[0]


@numba.njit(cache=True, error_model="numpy", parallel=True)
def kernel_threads(table, initial, transition, codes, start, group, weights, shared, log_nodes,
                   n_threads):
    parts = min(n_threads, codes.shape[0])
    if parts <= 1:
        return kernel(table, initial, transition, codes, start, group, weights, shared,
                      log_nodes)
    totals = np.zeros(parts)
    g_table = np.zeros((parts,) + table.shape)
    g_init = np.zeros((parts,) + initial.shape)
    g_trans = np.zeros((parts,) + transition.shape)
    for p in numba.prange(parts):  # part p takes blocks p, p + parts, ...: mixed first periods
        value, gt, gi, gr = blocks_pass(table, initial, transition, codes, start, group,
                                        weights, shared, log_nodes, p, parts)
        totals[p] = value
        g_table[p] = gt
        g_init[p] = gi
        g_trans[p] = gr
    return combine(totals, g_table, g_init, g_trans)
"""


def _module_source(c: int, v: int) -> str:
    """Return the source of the generated module of the pass for ``C`` states and ``V`` codes."""
    fast = repr(sorted(_FAST))
    jit = f'@numba.njit(cache=True, error_model="numpy", fastmath=set({fast}))'
    return "\n".join([
        f'"""Generated by models.churn.hmm_kernel ({c} states, {v} codes); do not edit."""',
        "import numba", "import numpy as np", f"BANKS = {_BANKS}", "", "",
        jit, _forward_source(c, v), "", "", jit, _backward_source(c), "", _DRIVER])


def _module_dir(bases: Sequence[Path] | None = None) -> Path | None:
    """Return a writable folder for this version's generated modules, after pruning old ones.

    The folder, ``listening_models_hmm/v<version>`` beside PyTensor's compiled
    code, is named by a hash of this module's source, so every version of the
    package keeps its generated modules (and numba's cache of them) apart.
    ``bases``: the folders to try in turn (PyTensor's compiledir, then the
    temporary folder).
    """
    if bases is None:
        bases = (Path(pytensor.config.compiledir), Path(tempfile.gettempdir()))
    for base in bases:
        root = base / "listening_models_hmm"
        folder = root / f"v{_KERNEL_VERSION:012x}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            _mark_used(folder)
            _prune_once(root)
            return folder
    return None


def _mark_used(folder: Path) -> None:
    """Set the time stamp of ``folder``'s marker file to now (the modules keep theirs)."""
    try:
        (folder / _MARKER).touch()
    except OSError:
        pass


@functools.cache
def _prune_once(root: Path) -> None:
    """:func:`_prune_generated` once per process and folder."""
    _prune_generated(root)


def _prune_generated(root: Path, keep_days: float = _KEEP_DAYS,
                    now: float | None = None) -> list[Path]:
    """Remove the generated modules of other versions not used for ``keep_days`` days.

    A version's folder counts as used when its marker file was last touched (by
    :func:`blocked_kernel` in any process); modules written straight into
    ``root`` by versions before the folders (``hmm_pass_*.py`` and their
    ``__pycache__``) by their own time stamps. Removal is best effort: a file
    another process holds or another user owns stays. A module removed while
    in use costs only a recompilation (it is rewritten, or compiled in
    memory). Returns the paths removed.
    """
    now = time.time() if now is None else now
    cutoff = now - keep_days * 86400.0
    current = f"v{_KERNEL_VERSION:012x}"
    removed = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        try:
            if entry.is_dir() and entry.name.startswith("v") and entry.name != current:
                marker = entry / _MARKER
                stamp = (marker if marker.exists() else entry).stat().st_mtime
                if stamp < cutoff:
                    shutil.rmtree(entry)
                    removed.append(entry)
            elif entry.name.startswith("hmm_pass_") or entry.name == "__pycache__":
                if entry.stat().st_mtime < cutoff:
                    if entry.is_dir():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
                    removed.append(entry)
        except OSError:
            continue
    return removed


def blocked_kernel(c: int, v: int) -> Callable:
    """Return the compiled pass for ``C`` states and ``V`` codes.

    ``kernel(table, initial, transition, codes, start, group, weights, shared,
    log_nodes)`` on a :class:`BlockedHistories` returns the weighted total
    log-likelihood and its gradients in ``table``, ``initial`` and
    ``transition`` (see :func:`hmm_kernel`). See :func:`_generated` for where it
    is compiled.
    """
    return _generated(c, v).kernel


def threaded_kernel(c: int, v: int) -> Callable:
    """Return the compiled pass for ``C`` states and ``V`` codes on several threads.

    ``kernel_threads(..., n_threads)`` takes :func:`blocked_kernel`'s arguments
    and a number of threads: the blocks are dealt out to ``n_threads`` parts
    (part ``p`` takes blocks ``p``, ``p + n_threads``, ..., so each part has
    users of every first period), each part runs on a thread of numba's
    threading layer, and the parts' sums are added in order. The result
    depends on ``n_threads`` (the order of the sums), not on the threads'
    timing; it differs from the one-thread pass in the last digits. Calls from
    several threads at once (nutpie's chains) need a thread-safe layer: see
    :func:`models._compiled.threadsafe_layer`.
    """
    return _generated(c, v).kernel_threads


@functools.cache
def _generated(c: int, v: int) -> types.ModuleType:
    """Return the module of compiled passes for ``C`` states and ``V`` codes.

    Its source is generated for ``C`` and ``V`` into a module file named by a
    hash of that source, so numba caches the compiled code on disk and the next
    process loads it. The file is
    written to a temporary name and renamed, and rewritten only if its text is
    not the source (numba's cache is keyed on its time stamp); without a
    writable folder the module is compiled in memory instead. Each version of
    this module writes into a folder of its own (:func:`_module_dir`), and the
    folders of versions unused for 30 days are removed
    (:func:`_prune_generated`), so upgrades do not pile up compiled code.
    """
    source = _module_source(c, v)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    name = f"hmm_pass_{c}_{v}_{digest}"
    folder = _module_dir()
    if folder is not None:
        try:
            return _import_generated(folder / f"{name}.py", name, source)
        except OSError:  # a folder shared with other users, a full disk: compile in memory
            pass
    module = types.ModuleType(name)
    exec(compile(source.replace("cache=True", "cache=False"), f"<{name}>", "exec"),
         module.__dict__)
    return module


def _import_generated(path: Path, name: str, source: str) -> types.ModuleType:
    """Write ``source`` to ``path`` unless it is there already, and import it as ``name``."""
    if not (path.exists() and path.read_text() == source):  # absent, or damaged: (re)write
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp",
                                         delete=False) as tmp:
            tmp.write(source)
        try:
            os.replace(tmp.name, path)
        finally:
            Path(tmp.name).unlink(missing_ok=True)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # numba's cache finds the module of its functions by name
    spec.loader.exec_module(module)
    return module


def hmm_kernel(table, initial, transition, codes, start, seg, weights,
               log_nodes, threads: int = 1) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted total log-likelihood and its gradients (table, initial, transition).

    ``table`` ``(Q, V, C)`` emission probabilities per observed code at each of
    ``Q`` nodes of a user effect, ``log_nodes`` ``(Q,)`` the log-probabilities
    of the nodes (a user's likelihood is the mixture over the nodes; one node
    of log-probability 0 without user effects), ``initial`` ``(C,)``,
    ``transition`` ``(Q_t, S, C, C)``, per node of the effect (``Q_t = Q``,
    when the effect moves the transitions too) or shared (``Q_t = 1``);
    ``codes`` ``(U, T)``, ``start``, ``seg``
    ``(U,)`` (``seg`` indexes the ``S`` matrices), ``weights`` ``(U,)``.
    Lays the histories out (:func:`hmm_layout`) and runs the compiled pass of
    :func:`blocked_kernel` (:func:`threaded_kernel` with ``threads`` above 1); a
    model lays its histories out once instead.

    With several nodes, a forward pass per node gives each user's
    log-likelihood at the node and the posterior probability :math:`r_{iq}` of
    the node; the gradient is then the backward pass of each node with user
    weights :math:`w_i r_{iq}` (nodes of posterior probability below ``1e-12``
    for every user of the block are skipped).
    """
    table = np.asarray(table, dtype=float)
    transition = np.asarray(transition, dtype=float)
    n_nodes, n_codes, c = table.shape
    blocks = hmm_layout(codes, start, seg, weights, n_codes, transition.shape[1], n_nodes)
    args = (table, np.asarray(initial, dtype=float), transition, *blocks,
            np.asarray(log_nodes, dtype=float))
    if threads > 1:
        threadsafe_layer("hmm_kernel")
        value, *grads = threaded_kernel(c, n_codes)(*args, threads)
    else:
        value, *grads = blocked_kernel(c, n_codes)(*args)
    return float(value), *grads


class HMMLogp(Op):
    """Total engagement-HMM log-likelihood of blocked histories and its gradient.

    Inputs: ``table`` ``(Q, V, C)``, ``initial`` ``(C,)``, ``transition``
    ``(Q_t, S, C, C)`` (``Q_t`` 1 or ``Q``), then the data: the five arrays of
    a :class:`BlockedHistories` and ``log_nodes`` ``(Q,)`` (see
    :func:`hmm_kernel`). Outputs: the value and its gradients with respect to
    the first three inputs (first derivatives only). ``n_states`` (``C``) and
    ``n_codes`` (``V``) choose the compiled pass, ``n_threads`` its threads
    (:func:`threaded_kernel` above 1; numba's threading layer must then be
    thread-safe, :func:`models._compiled.threadsafe_layer`).
    """

    __props__ = ("n_states", "n_codes", "n_threads")

    def __init__(self, n_states: int, n_codes: int, n_threads: int = 1) -> None:
        self.n_states = int(n_states)
        self.n_codes = int(n_codes)
        self.n_threads = int(n_threads)
        super().__init__()

    def make_node(self, *inputs: Any) -> Apply:
        """Build the node from the three parameter arrays and the six data arrays."""
        if len(inputs) != 9:
            raise TypeError(f"HMMLogp takes 9 inputs, got {len(inputs)}")
        params = [pt.as_tensor_variable(p, dtype="float64") for p in inputs[:3]]
        codes = pt.as_tensor_variable(inputs[3])
        data = [pt.as_tensor_variable(v, dtype=d) for v, d in
                zip(inputs[4:], ("int64", "int64", "float64", "int8", "float64"), strict=True)]
        outputs = [pt.dscalar(), *(p.type() for p in params)]
        return Apply(self, params + [codes] + data, outputs)

    def perform(self, node: Apply, inputs: Sequence[np.ndarray], outputs: Any) -> None:
        """Evaluate value and gradients (the compiled kernel)."""
        if self.n_threads > 1:
            value, *grads = threaded_kernel(self.n_states, self.n_codes)(*inputs,
                                                                         self.n_threads)
        else:
            value, *grads = blocked_kernel(self.n_states, self.n_codes)(*inputs)
        outputs[0][0] = np.asarray(value)
        for out, g in zip(outputs[1:], grads, strict=True):
            out[0] = g

    def infer_shape(self, node: Apply, shapes: Sequence[Any]) -> list[Any]:
        """Scalar value; each gradient has its parameter's shape."""
        return [(), *shapes[:3]]

    def pullback(
        self, inputs: Sequence[Any], outputs: Sequence[Any], cotangents: Sequence[Any]
    ) -> list[Any]:
        """Chain rule through the value output (the data inputs are not differentiated)."""
        if any(not isinstance(c.type, DisconnectedType) for c in cotangents[1:]):
            raise NotImplementedError("HMMLogp has no second derivatives (Hessian)")
        out = cotangents[0]
        return [out * g for g in outputs[1:]] + [disconnected_type()] * 6

    def connection_pattern(self, node: Apply) -> list[list[bool]]:
        """Say which inputs feed which outputs: the data arrays feed none."""
        n_out = len(node.outputs)
        return [[True] * n_out] * 3 + [[False] * n_out] * 6


@register_funcify_default_op_cache_key(HMMLogp)
def _numba_hmm(op: HMMLogp, node: Any = None, **kwargs: Any) -> Any:
    """Compiled implementation of :class:`HMMLogp` for the numba backend."""
    if op.n_threads > 1:
        threaded = threaded_kernel(op.n_states, op.n_codes)
        n_threads = op.n_threads

        @numba.njit(error_model="numpy")
        def kernel(table, initial, transition, codes, start, group, weights, shared,
                   log_nodes):  # pragma: no cover - compiled
            return threaded(table, initial, transition, codes, start, group, weights, shared,
                            log_nodes, n_threads)
    else:
        kernel = blocked_kernel(op.n_states, op.n_codes)

    @numba.njit(error_model="numpy")
    def hmm_compiled(table, initial, transition, codes, start, group, weights, shared,
                     log_nodes):  # pragma: no cover - compiled
        value, g_table, g_init, g_trans = kernel(table, initial, transition, codes, start,
                                                 group, weights, shared, log_nodes)
        return np.asarray(value), g_table, g_init, g_trans

    return hmm_compiled, _KERNEL_VERSION
