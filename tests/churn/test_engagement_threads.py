"""The engagement HMM's compiled pass on several threads, within fits and samplers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from models.churn import EngagementStateModel
from models.churn.hmm_kernel import HMMLogp
from models.data import simulate_engagement


@pytest.fixture(scope="module")
def activity():
    # 700 users: several blocks of 128, so two threads each take some
    return simulate_engagement(700, 10, random_seed=5).activity


def _ops(model) -> list[HMMLogp]:
    from pytensor.graph.traversal import ancestors

    return [v.owner.op for v in ancestors(model.model_.potentials)
            if v.owner is not None and isinstance(v.owner.op, HMMLogp)]


def test_threads_must_be_a_positive_integer():
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="'threads' parameter"):
            EngagementStateModel(threads=bad)
    assert EngagementStateModel(threads=3).get_params()["threads"] == 3


def test_threaded_map_fit_finds_the_one_thread_fit(activity):
    one = EngagementStateModel().fit(activity, method="map", random_seed=1)
    two = EngagementStateModel(threads=2).fit(activity, method="map", random_seed=1)
    assert [op.n_threads for op in _ops(two)] == [2]
    for name in ("emission_probability", "transition_probability", "initial_probability"):
        np.testing.assert_allclose(two.idata_["posterior"][name].values,
                                   one.idata_["posterior"][name].values, rtol=1e-5, atol=1e-7)


def test_threaded_pass_inside_nutpie_chains_running_at_once(activity):
    """nutpie runs its chains as threads of one process, each calling the threaded pass."""
    pytest.importorskip("nutpie")
    kw = dict(draws=60, tune=60, chains=2, cores=2, sampler="nutpie", random_seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # so few draws: the fit check fails, as it should
        two = EngagementStateModel(threads=2).fit(activity, **kw)
        again = EngagementStateModel(threads=2).fit(activity, **kw)
    post = two.idata_["posterior"]
    assert [op.n_threads for op in _ops(two)] == [2]
    assert np.isfinite(post["emission_probability"].values).all()
    # the sums' order depends on the threads only: the same seed repeats the draws exactly
    np.testing.assert_array_equal(post["transition_logit"].values,
                                  again.idata_["posterior"]["transition_logit"].values)
    # and it recovers the simulated emission probabilities
    truth = simulate_engagement(700, 10, random_seed=5).parameters["emission_probability"]
    mean = post["emission_probability"].mean(("chain", "draw")).values
    assert np.abs(mean - np.asarray(truth)).max() < 0.1


def test_pymc_sampler_in_processes_keeps_one_thread(activity):
    """OpenMP does not survive the fork that starts each PyMC chain: the threads are not used."""
    model = EngagementStateModel(threads=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(activity, draws=20, tune=20, chains=2, cores=2, random_seed=2)
    assert any("threads=2 is not used with sampler='pymc'" in str(w.message) for w in caught)
    assert [op.n_threads for op in _ops(model)] == [1]
    assert model.idata_["posterior"].sizes["draw"] == 20


def test_unsafe_threading_layer_is_a_clear_error():
    """numba's workqueue layer aborts when two chains call it at once: refused, with advice."""
    code = textwrap.dedent("""
        from models.churn import EngagementStateModel
        from models.data import simulate_engagement
        activity = simulate_engagement(300, 6, random_seed=1).activity
        try:
            EngagementStateModel(threads=2).build_model(activity)
        except RuntimeError as err:
            print("ERROR:", err)
    """)
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=600)
    assert "ERROR: EngagementStateModel: threads above 1 need a thread-safe" in out.stdout, (
        out.stdout + out.stderr)
    assert "'workqueue'" in out.stdout and "threads=1" in out.stdout


def test_fit_saved_with_threads_loads_where_no_safe_layer_runs(activity, tmp_path):
    """A model saved with threads=2 and loaded without OpenMP or TBB: its graph, one thread."""
    path = EngagementStateModel(threads=2).fit(activity, method="map", random_seed=1).save(
        tmp_path / "fit.nc")
    code = textwrap.dedent(f"""
        import warnings
        from models.churn import EngagementStateModel
        from models.churn.hmm_kernel import HMMLogp
        from pytensor.graph.traversal import ancestors
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = EngagementStateModel.load({str(path)!r})  # its graph, rebuilt
            graph = model.model_
        ops = [v.owner.op for v in ancestors(graph.potentials)
               if v.owner is not None and isinstance(v.owner.op, HMMLogp)]
        print("THREADS", model.threads, [op.n_threads for op in ops])
        print("WARNED", any("one thread" in str(w.message) for w in caught))
        print("LOGP", float(graph.compile_logp()(graph.initial_point())))
    """)
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=600)
    assert "THREADS 2 [1]" in out.stdout and "WARNED True" in out.stdout, (
        out.stdout + out.stderr)
    assert np.isfinite(float(out.stdout.split("LOGP ")[1].split()[0]))


def test_more_threads_than_cpus_is_a_warning(monkeypatch):
    """Threads of the chains that run at once beyond the CPUs only compete: the fit says so."""
    from models.churn import engagement

    monkeypatch.setattr(engagement, "usable_cpus", lambda: 4)
    model = EngagementStateModel(threads=2)
    cases = [({"method": "nuts", "sampler": "nutpie", "chains": 4, "cores": None}, True),
             ({"method": "nuts", "sampler": "nutpie", "chains": 4, "cores": 2}, False),
             ({"method": "nuts", "sampler": "nutpie", "chains": 2, "cores": None}, False),
             ({"method": "map", "sampler": "pymc", "chains": 4, "cores": None}, False)]
    for plan, warns in cases:
        model._fit_plan = plan
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert model._kernel_threads() == 2
        messages = [str(w.message) for w in caught]
        assert any("asks for 8 threads on 4 CPU(s)" in m and "Use threads=1" in m
                   for m in messages) == warns, (plan, messages)
