"""Ctrl-C: a subprocess running the command line gets SIGINT during sampling or writing.

Each test checks the exit status and message, that the earlier outputs are byte for byte
as they were, that no temporary file is left, and that the next run finishes normally.
"""

import pytest

from models.cli import EXIT_CHECKS_FAILED, EXIT_INTERRUPTED, main

DETERMINISTIC = ("summary.csv", "predictions.csv", "diagnostics.json")

#: Makes the first fit's sampling long enough to be interrupted.
LONG = {"draws": 200000, "tune": 100}

#: Prints a marker when nutpie starts sampling (after its compile).
NUTPIE_MARKER = """
import nutpie
_sample = nutpie.sample
def _marked(*args, **kwargs):
    print("NUTPIE SAMPLING", file=sys.stderr, flush=True)
    return _sample(*args, **kwargs)
nutpie.sample = _marked
"""

#: Holds every netCDF write open after the data is written (SIGINT arrives meanwhile).
SLOW_WRITE = """
import time
import xarray as xr
_to_netcdf = xr.DataTree.to_netcdf
def _slow(self, path, **kwargs):
    _to_netcdf(self, path, **kwargs)
    print("WRITING", path, file=sys.stderr, flush=True)
    time.sleep(120)
xr.DataTree.to_netcdf = _slow
"""


def _long_config(path, *, sampler="pymc", cores=2):
    text = path.read_text().replace("draws = 30\ntune = 30\n",
                                    f"draws = {LONG['draws']}\ntune = {LONG['tune']}\n"
                                    f'sampler = "{sampler}"\ncores = {cores}\n')
    long = path.with_name("long.toml")
    long.write_text(text)
    return long


def _no_temporary_files(root):
    return [p for p in root.rglob("*") if ".tmp" in p.name or p.name.endswith(".link")]


def _check_interrupted(code, err, out, before, snapshot):
    assert code == EXIT_INTERRUPTED, err[-3000:]
    assert "interrupted (Ctrl-C)" in err
    assert f"The churn run did not finish. The outputs in '{out}' are unchanged" in err
    assert "Traceback" not in err
    assert snapshot(out) == before
    assert _no_temporary_files(out.parent) == []


def _check_next_run(out, config, before, snapshot):
    assert main(["run", "churn", "--quick", "--quiet", "--config", str(config),
                 "--out", str(out)]) == EXIT_CHECKS_FAILED
    after = snapshot(out)
    for name in DETERMINISTIC:
        assert after[name] == before[name], name
    assert not (out.parent / "out.partial").exists()


def _interrupt_sampling(churn_copy, interrupt_cli, snapshot, *, sampler, cores, trigger,
                        setup="", delay=3.0):
    out, config = churn_copy
    before = snapshot(out)
    long = _long_config(config, sampler=sampler, cores=cores)
    code, err = interrupt_cli(["run", "churn", "--quick", "--config", long, "--out", out],
                              trigger, delay=delay, setup=setup)
    _check_interrupted(code, err, out, before, snapshot)
    assert "BetaGeoModel.fit was interrupted (Ctrl-C)" in err
    _check_next_run(out, config, before, snapshot)


def test_ctrl_c_while_pymc_samples_in_parallel(churn_copy, interrupt_cli, snapshot):
    _interrupt_sampling(churn_copy, interrupt_cli, snapshot, sampler="pymc", cores=2,
                        trigger="NUTS: [")


@pytest.mark.slow
def test_ctrl_c_while_pymc_samples_one_chain_after_another(churn_copy, interrupt_cli, snapshot):
    _interrupt_sampling(churn_copy, interrupt_cli, snapshot, sampler="pymc", cores=1,
                        trigger="NUTS: [")


@pytest.mark.slow
def test_ctrl_c_while_nutpie_samples(churn_copy, interrupt_cli, snapshot):
    pytest.importorskip("nutpie")
    _interrupt_sampling(churn_copy, interrupt_cli, snapshot, sampler="nutpie", cores=2,
                        trigger="NUTPIE SAMPLING", setup=NUTPIE_MARKER)


def test_ctrl_c_while_a_posterior_is_written(churn_copy, interrupt_cli, snapshot):
    out, config = churn_copy
    before = snapshot(out)
    code, err = interrupt_cli(["run", "churn", "--quick", "--force", "--config", config,
                               "--out", out], "WRITING", delay=0.5, setup=SLOW_WRITE)
    _check_interrupted(code, err, out, before, snapshot)
    # the fit being written left neither a file nor a key behind
    assert not (out.parent / "out.partial" / "posterior" / "bgnbd.key").exists()
    _check_next_run(out, config, before, snapshot)


def test_the_next_run_reuses_the_fits_an_interrupted_run_finished(
        churn_copy, interrupt_cli, snapshot):
    out, config = churn_copy
    before = snapshot(out)
    # refit everything, and interrupt while the second fit (sbg) is being written
    setup = SLOW_WRITE.replace('    print("WRITING"', '    if "sbg" in str(path): print("WRITING"')
    setup = setup.replace("    time.sleep(120)", '    if "sbg" in str(path): time.sleep(120)')
    code, err = interrupt_cli(["run", "churn", "--quick", "--force", "--config", config,
                               "--out", out], "WRITING", delay=0.5, setup=setup)
    _check_interrupted(code, err, out, before, snapshot)
    work = out.parent / "out.partial"
    assert f"the partial files of this run are in '{work}'" in err
    assert sorted(p.name for p in (work / "posterior").iterdir()) == ["bgnbd.key", "bgnbd.nc"]
    _check_next_run(out, config, before, snapshot)
