"""The compiled forward-backward kernel of the engagement HMM on many users and segments."""

from __future__ import annotations

import numpy as np
import pytest

from models.churn import _hmm
from models.churn import hmm_kernel as hmm_kernel_module
from models.churn.hmm_kernel import hmm_kernel, hmm_layout


def _problem(n_users: int, n_periods: int, n_states: int, n_segments: int, seed: int):
    rng = np.random.default_rng(seed)
    n_codes = 6  # 0..4 active days and the missing code 5
    table = rng.uniform(0.05, 1.0, size=(n_codes, n_states))
    table[-1] = 1.0
    initial = rng.dirichlet(np.ones(n_states))
    trans = rng.dirichlet(np.ones(n_states), size=(n_segments, n_states))
    start = rng.integers(0, n_periods, n_users)
    codes = rng.integers(0, n_codes - 1, size=(n_users, n_periods))
    codes[np.arange(n_periods)[None, :] < start[:, None]] = n_codes - 1
    seg = rng.integers(0, n_segments, n_users)  # interleaved: blocks split by segment
    weights = rng.integers(1, 5, n_users).astype(float)
    return [table[None], initial, trans[None]], (codes, start, seg, weights, np.zeros(1))


@pytest.mark.parametrize("n_states", [2, 5])
def test_blocked_kernel_value_equals_the_forward_algorithm_user_by_user(n_states):
    (table, initial, trans), data = _problem(700, 23, n_states, 3, 1)
    codes, start, seg, weights, _ = data
    value, *_ = hmm_kernel(table, initial, trans, *data)
    loglik, _ = _hmm.forward(codes, start, table, initial[None], trans[0][seg][None])
    assert value == pytest.approx(float(weights @ loglik[0]), rel=1e-12)


def _mixture(codes, start, seg, tables, initial, trans, log_nodes) -> np.ndarray:
    """Each user's log-likelihood, the mixture over nodes of forward algorithms ``(U,)``.

    ``trans`` ``(Q_t, S, C, C)``: per node, or one set shared by the nodes.
    """
    per_node = np.stack([_hmm.forward(codes, start, t[None], initial[None],
                                      trans[min(q, len(trans) - 1)][seg][None])[0][0]
                         for q, t in enumerate(tables)])  # (Q, U)
    return np.logaddexp.reduce(per_node + log_nodes[:, None], axis=0)


def _check_gradients(inputs, data, grads, rng, per_input):
    """Each gradient equals central finite differences of the kernel's value at random entries."""
    eps = 1e-6
    for which, grad in enumerate(grads):
        entries = list(np.ndindex(inputs[which].shape))
        for pick in rng.choice(len(entries), size=min(per_input, len(entries)), replace=False):
            idx = entries[pick]
            up = [x.copy() for x in inputs]
            down = [x.copy() for x in inputs]
            up[which][idx] += eps
            down[which][idx] -= eps
            num = (hmm_kernel(*up, *data)[0] - hmm_kernel(*down, *data)[0]) / (2 * eps)
            assert grad[idx] == pytest.approx(num, rel=1e-5, abs=1e-4), (which, idx)


def test_blocked_kernel_gradient_equals_finite_differences_over_several_blocks():
    inputs, data = _problem(500, 17, 4, 2, 2)
    _, *grads = hmm_kernel(*inputs, *data)
    _check_gradients(inputs, data, grads, np.random.default_rng(0), per_input=8)
    assert np.all(grads[0][:, -1] == 0.0)  # the missing code never enters the likelihood


def test_kernel_with_effect_nodes_equals_the_mixture_of_forward_algorithms():
    """Value: each user's likelihood is the mixture over nodes; gradient: finite differences."""
    (table, initial, trans), (codes, start, seg, weights, _) = _problem(150, 9, 3, 2, 3)
    rng = np.random.default_rng(4)
    tables = np.concatenate([table, rng.uniform(0.05, 1.0, size=(2, *table.shape[1:]))])
    tables[:, -1] = 1.0
    log_nodes = np.log([0.2, 0.5, 0.3])
    data = (codes, start, seg, weights, log_nodes)
    value, *grads = hmm_kernel(tables, initial, trans, *data)
    mixture = _mixture(codes, start, seg, tables, initial, trans, log_nodes)
    assert value == pytest.approx(float(weights @ mixture), rel=1e-12)
    _check_gradients([tables, initial, trans], data, grads, rng, per_input=10)


def test_kernel_with_transitions_per_node_equals_the_mixture_of_forward_algorithms():
    """Each node its own transition matrices (the effect tilts them): value and gradients."""
    (table, initial, _), (codes, start, seg, weights, _) = _problem(120, 8, 3, 2, 5)
    rng = np.random.default_rng(6)
    tables = np.concatenate([table, rng.uniform(0.05, 1.0, size=(2, *table.shape[1:]))])
    tables[:, -1] = 1.0
    trans = rng.dirichlet(np.ones(3), size=(3, 2, 3))  # (nodes, segments, C, C)
    log_nodes = np.log([0.3, 0.3, 0.4])
    data = (codes, start, seg, weights, log_nodes)
    value, *grads = hmm_kernel(tables, initial, trans, *data)
    mixture = _mixture(codes, start, seg, tables, initial, trans, log_nodes)
    assert value == pytest.approx(float(weights @ mixture), rel=1e-12)
    assert grads[2].shape == trans.shape
    _check_gradients([tables, initial, trans], data, grads, rng, per_input=12)


@pytest.mark.parametrize("n_nodes", [1, 3])
def test_kernel_with_many_small_groups_mixes_them_in_blocks(n_nodes):
    """Covariates make many transition groups of a few users: blocks then hold users of several
    groups, each user with its own matrix (value, and gradients by finite differences)."""
    (table, initial, _), (codes, start, seg, weights, _) = _problem(260, 9, 3, 90, 7)
    rng = np.random.default_rng(8)
    tables = np.concatenate([table, rng.uniform(0.05, 1.0, size=(n_nodes - 1,
                                                                  *table.shape[1:]))])
    tables[:, -1] = 1.0
    trans = rng.dirichlet(np.ones(3), size=(n_nodes, 90, 3))  # (nodes, groups, C, C)
    log_nodes = np.log(rng.dirichlet(np.ones(n_nodes)))
    data = (codes, start, seg, weights, log_nodes)
    value, *grads = hmm_kernel(tables, initial, trans, *data)
    mixture = _mixture(codes, start, seg, tables, initial, trans, log_nodes)
    assert value == pytest.approx(float(weights @ mixture), rel=1e-12)
    _check_gradients([tables, initial, trans], data, grads, rng, per_input=12)
    # the same users as a few large groups (blocks of one group) give the same value
    few = seg % 2
    big = trans[:, :2]
    value_few = hmm_kernel(tables, initial, big, codes, start, few, weights, log_nodes)[0]
    mixture = _mixture(codes, start, few, tables, initial, big, log_nodes)
    assert value_few == pytest.approx(float(weights @ mixture), rel=1e-12)


@pytest.mark.parametrize("n_codes", [22, 300])
def test_kernel_with_many_codes_loads_the_emissions(n_codes):
    """Periods of many days: above 16 codes the emission is a table load, above 256 the codes
    are int32; value against the forward algorithm, gradients by finite differences."""
    rng = np.random.default_rng(9)
    n_users, n_periods, c = 150, 7, 3
    table = rng.uniform(0.05, 1.0, size=(1, n_codes, c))
    table[:, -1] = 1.0
    initial = rng.dirichlet(np.ones(c))
    trans = rng.dirichlet(np.ones(c), size=(1, 2, c))
    start = rng.integers(0, n_periods, n_users)
    codes = rng.integers(0, n_codes - 1, size=(n_users, n_periods))
    codes[np.arange(n_periods)[None, :] < start[:, None]] = n_codes - 1
    seg = rng.integers(0, 2, n_users)
    weights = rng.integers(1, 4, n_users).astype(float)
    data = (codes, start, seg, weights, np.zeros(1))
    value, *grads = hmm_kernel(table, initial, trans, *data)
    assert hmm_layout(codes, start, seg, weights, n_codes, 2).codes.dtype == (
        np.uint8 if n_codes <= 256 else np.int32)
    loglik = _hmm.forward(codes, start, table, initial[None], trans[0][seg][None])[0][0]
    assert value == pytest.approx(float(weights @ loglik), rel=1e-12)
    _check_gradients([table, initial, trans], data, grads, rng, per_input=6)


def test_kernel_takes_logarithms_when_the_scale_product_grows_large():
    """Observations of probability near 1e-12 each: a user's product of inverse scale
    factors passes 1e150 every dozen periods, so its logarithm is taken mid-history (and
    never overflows); the value still equals the forward algorithm's, to 1e-12."""
    rng = np.random.default_rng(12)
    n_users, n_periods, c, n_codes = 300, 60, 3, 6
    table = rng.uniform(0.5e-12, 2e-12, size=(1, n_codes, c))
    table[:, -1] = 1.0
    initial = rng.dirichlet(np.ones(c))
    trans = rng.dirichlet(np.ones(c), size=(1, 1, c))
    start = rng.integers(0, 10, n_users)
    codes = rng.integers(0, n_codes - 1, size=(n_users, n_periods))
    codes[np.arange(n_periods)[None, :] < start[:, None]] = n_codes - 1
    seg = np.zeros(n_users, dtype=int)
    weights = np.ones(n_users)
    data = (codes, start, seg, weights, np.zeros(1))
    value, *grads = hmm_kernel(table, initial, trans, *data)
    loglik = _hmm.forward(codes, start, table, initial[None], trans[0][seg][None])[0][0]
    assert loglik.min() < -1500  # far past one product's range (log 1e308 = 709)
    assert np.isfinite(value) and all(np.isfinite(g).all() for g in grads)
    assert value == pytest.approx(float(weights @ loglik), rel=1e-12)


def test_layout_keeps_every_user_once_with_its_weight():
    (_, _, _), (codes, start, seg, weights, _) = _problem(300, 11, 3, 4, 10)
    blocks = hmm_layout(codes, start, seg, weights, 6, 4)
    n_blocks, n_periods, block = blocks.codes.shape
    assert n_blocks == 3 and n_periods == 11
    lanes = blocks.codes.transpose(0, 2, 1).reshape(-1, n_periods)
    real = blocks.weights.reshape(-1) > 0
    assert real.sum() == 300 and np.all(blocks.weights.reshape(-1)[~real] == 0)
    # each user's (codes, start, group, weight) appears once among the real lanes
    got = sorted(map(tuple, np.column_stack([lanes[real], blocks.start.reshape(-1)[real],
                                             blocks.group.reshape(-1)[real],
                                             blocks.weights.reshape(-1)[real]])))
    want = sorted(map(tuple, np.column_stack([codes, start, seg, weights])))
    assert got == want
    # padding lanes are missing periods; a block shares a matrix exactly when its groups agree
    assert np.all(lanes[~real] == 5)
    for b in range(n_blocks):
        assert blocks.shared[b] == (len(set(blocks.group[b])) == 1)
    # a code outside 0..V-1 is an error, never wrapped into the small integer type
    with pytest.raises(ValueError, match="0..5"):
        hmm_layout(np.where(codes == 2, 262, codes), start, seg, weights, 6, 4)


def test_generated_pass_is_written_once_and_compiles_without_a_folder(tmp_path, monkeypatch):
    """The pass's module file is not rewritten by a later process (numba's disk cache is keyed
    on its time stamp); without a writable folder the pass compiles in memory, same values."""
    inputs, data = _problem(200, 6, 2, 1, 11)
    value = hmm_kernel(*inputs, *data)[0]
    source = hmm_kernel_module._module_source(2, 6)
    monkeypatch.setattr(hmm_kernel_module, "_module_dir", lambda: tmp_path)
    hmm_kernel_module._generated.__wrapped__(2, 6)  # a first process
    files = list(tmp_path.glob("hmm_pass_2_6_*.py"))
    assert [f.read_text() for f in files] == [source]
    stamp = files[0].stat().st_mtime_ns
    hmm_kernel_module._generated.__wrapped__(2, 6)  # a later one
    assert files[0].stat().st_mtime_ns == stamp
    assert not list(tmp_path.glob("*.tmp"))
    table, initial, trans = inputs
    codes, start, seg, weights, log_nodes = data
    blocks = hmm_layout(codes, start, seg, weights, 6, 1)
    monkeypatch.setattr(hmm_kernel_module, "_module_dir", lambda: None)
    in_memory = hmm_kernel_module._generated.__wrapped__(2, 6).kernel
    assert in_memory(table, initial, trans, *blocks, log_nodes)[0] == pytest.approx(value,
                                                                                   rel=1e-14)

    def unreadable(*args, **kwargs):
        raise PermissionError("another user's file")

    # a folder whose files cannot be read or written (shared with other users) is no error
    monkeypatch.setattr(hmm_kernel_module, "_module_dir", lambda: tmp_path)
    monkeypatch.setattr(hmm_kernel_module, "_import_generated", unreadable)
    fallback = hmm_kernel_module._generated.__wrapped__(2, 6).kernel
    assert fallback(table, initial, trans, *blocks, log_nodes)[0] == pytest.approx(value,
                                                                                  rel=1e-14)


def test_a_damaged_generated_module_is_rewritten(tmp_path, monkeypatch):
    """A generated module file whose text is not the source (a partial write, an edit) is
    replaced before it is imported, and no temporary file is left behind."""
    monkeypatch.setattr(hmm_kernel_module, "_module_dir", lambda: tmp_path)
    hmm_kernel_module._generated.__wrapped__(2, 6)
    folder = tmp_path
    source = hmm_kernel_module._module_source(2, 6)
    (path,) = folder.glob("hmm_pass_2_6_*.py")
    assert path.read_text() == source
    path.write_text(source[: len(source) // 2])
    kernel = hmm_kernel_module._generated.__wrapped__(2, 6).kernel
    assert path.read_text() == source
    assert not list(folder.glob("*.tmp"))
    inputs, data = _problem(50, 5, 2, 1, 12)
    codes, start, seg, weights, log_nodes = data
    value = kernel(*inputs, *hmm_layout(codes, start, seg, weights, 6, 1), log_nodes)[0]
    assert value == pytest.approx(hmm_kernel(*inputs, *data)[0], rel=1e-14)


def test_generated_modules_of_other_versions_are_pruned_after_30_days_unused(tmp_path):
    """Each version writes its generated modules into a folder of its own; another version's
    folder (by its marker's time stamp) and modules written straight into the root by older
    versions are removed once unused for 30 days, recent ones and the current version stay."""
    import os
    import time

    now = time.time()
    day = 86400.0
    root = tmp_path / "listening_models_hmm"
    old, recent = root / "v000000000001", root / "v000000000002"
    for folder, age in ((old, 40), (recent, 5)):
        folder.mkdir(parents=True)
        (folder / "hmm_pass_2_6_abc.py").write_text("x = 1\n")
        (folder / "last-used").touch()
        os.utime(folder / "last-used", (now - age * day,) * 2)
    # the old version's module file itself is recent: the marker, not the file, decides
    legacy_old, legacy_new = root / "hmm_pass_3_9_old.py", root / "hmm_pass_3_9_new.py"
    for path, age in ((legacy_old, 31), (legacy_new, 1)):
        path.write_text("x = 1\n")
        os.utime(path, (now - age * day,) * 2)
    other = root / "notes.txt"  # not ours: never touched
    other.write_text("keep")
    os.utime(other, (now - 400 * day,) * 2)
    current = root / f"v{hmm_kernel_module._KERNEL_VERSION:012x}"
    current.mkdir()
    os.utime(current, (now - 400 * day,) * 2)

    removed = hmm_kernel_module._prune_generated(root, now=now)
    assert sorted(removed) == sorted([old, legacy_old])
    assert not old.exists() and not legacy_old.exists()
    assert recent.exists() and legacy_new.exists() and other.exists() and current.exists()
    # a missing root is no error
    assert hmm_kernel_module._prune_generated(tmp_path / "absent", now=now) == []

    # finding the folder for this version marks it used and prunes its neighbours
    os.utime(recent / "last-used", (now - 31 * day,) * 2)
    hmm_kernel_module._prune_once.cache_clear()
    assert hmm_kernel_module._module_dir((tmp_path,)) == current
    assert now - 60 < (current / "last-used").stat().st_mtime
    assert not recent.exists() and legacy_new.exists()


@pytest.mark.parametrize(("n_segments", "n_nodes", "threads"),
                         [(3, 1, 2), (3, 1, 3), (90, 1, 2), (2, 3, 2), (3, 1, 64)])
def test_threaded_pass_equals_the_one_thread_pass(n_segments, n_nodes, threads):
    """Blocks dealt out to threads: the same value and gradients, to the order of the sums.

    Shared matrices per block (3 segments), lanes with their own (90 small groups),
    effect nodes, and more threads than blocks (64: one part per block).
    """
    (table, initial, trans), (codes, start, seg, weights, _) = _problem(
        900, 13, 3, n_segments, 11)
    rng = np.random.default_rng(12)
    tables = np.concatenate([table, rng.uniform(0.05, 1.0, size=(n_nodes - 1,
                                                                 *table.shape[1:]))])
    tables[:, -1] = 1.0
    log_nodes = np.log(np.full(n_nodes, 1.0 / n_nodes))
    data = (codes, start, seg, weights, log_nodes)
    one = hmm_kernel(tables, initial, trans, *data)
    many = hmm_kernel(tables, initial, trans, *data, threads=threads)
    assert many[0] == pytest.approx(one[0], rel=1e-12)
    for a, b in zip(one[1:], many[1:], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
    assert np.abs(one[1]).sum() > 0  # the gradients compared are not all zero
    # the order of the sums depends on the number of threads only: reruns are identical
    again = hmm_kernel(tables, initial, trans, *data, threads=threads)
    assert again[0] == many[0]
    for a, b in zip(many[1:], again[1:], strict=True):
        np.testing.assert_array_equal(a, b)


def test_threaded_pass_on_one_block_is_the_one_thread_pass():
    """Fewer than two blocks: no parts to deal out; the one-thread pass, to the last digit."""
    (table, initial, trans), data = _problem(100, 9, 3, 1, 11)
    one = hmm_kernel(table, initial, trans, *data)
    many = hmm_kernel(table, initial, trans, *data, threads=2)
    assert many[0] == one[0]
    for a, b in zip(one[1:], many[1:], strict=True):
        np.testing.assert_array_equal(b, a)


def test_threaded_pass_called_from_several_threads_at_once():
    """nutpie's chains call the pass concurrently: each call gets its own, correct result."""
    from concurrent.futures import ThreadPoolExecutor

    (table, initial, trans), data = _problem(600, 11, 3, 2, 13)
    scales = [1.0, 0.9, 0.8, 0.7]

    def run(scale):
        t = table.copy()
        t[:, :-1] *= scale
        return hmm_kernel(t, initial, trans, *data, threads=2)[0]

    expected = [run(s) for s in scales]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            assert list(pool.map(run, scales)) == expected
