"""The command line: one message per failure, distinct exit codes, earlier outputs kept."""

import dataclasses
import errno
import json
import os

import pandas as pd
import pytest

from models.analysis import runner, staging
from models.cli import EXIT_CHECKS_FAILED, EXIT_DATA, EXIT_ERROR, main

DETERMINISTIC = ("summary.csv", "predictions.csv", "diagnostics.json")


def _one_user_log(path):
    pd.DataFrame({"user_id": [7] * 5, "artist_id": [1, 2, 3, 1, 2],
                  "timestamp": pd.date_range("2024-01-01", periods=5, freq="7D")}
                 ).to_parquet(path, index=False)
    return path


# ----------------------------------------------------------------------------- simulate


def test_simulate_refuses_to_overwrite_an_events_file(tmp_path, capsys, snapshot):
    out = tmp_path / "events.parquet"
    assert main(["simulate", "--users", "20", "--days", "10", "--out", str(out)]) == 0
    before = snapshot(tmp_path)
    assert main(["simulate", "--users", "30", "--days", "10", "--out", str(out)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "already exist" in err and "--overwrite" in err and "Traceback" not in err
    assert snapshot(tmp_path) == before


def test_simulate_refuses_when_only_the_users_file_exists(tmp_path, capsys, snapshot):
    (tmp_path / "events_users.csv").write_text("user_id\n1\n")
    before = snapshot(tmp_path)
    assert main(["simulate", "--users", "20", "--days", "10",
                 "--out", str(tmp_path / "events.csv")]) == EXIT_ERROR
    assert "events_users.csv" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_simulate_overwrites_when_asked(tmp_path):
    out = tmp_path / "events.csv"
    assert main(["simulate", "--users", "20", "--days", "10", "--out", str(out)]) == 0
    first = out.read_bytes()
    assert main(["simulate", "--users", "20", "--days", "10", "--seed", "5", "--overwrite",
                 "--out", str(out)]) == 0
    assert out.read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.csv", "events_users.csv"]


def test_simulate_partitioned_refuses_an_earlier_log_naming_the_option(tmp_path, capsys):
    folder = tmp_path / "log"
    args = ["simulate", "--users", "30", "--days", "10", "--partitioned",
            "--users-per-partition", "15", "--out", str(folder)]
    assert main(args) == 0
    assert main(args) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "already holds a simulated log; pass --overwrite" in err
    assert "overwrite=True" not in err
    assert main([*args, "--overwrite"]) == 0


def test_simulate_onto_a_read_only_file_system_is_one_message(tmp_path, capsys, monkeypatch):
    def read_only(self, path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", read_only)
    code = main(["simulate", "--users", "20", "--days", "10",
                 "--out", str(tmp_path / "events.parquet")])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR
    assert err.startswith("error: Read-only file system:") and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- run: fails early


def test_run_into_a_file_is_one_message(tmp_path, capsys):
    out = tmp_path / "results"
    out.write_text("not a folder")
    assert main(["run", "churn", "--quick", "--quiet", "--out", str(out)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "is a file; pass a folder" in err and "Traceback" not in err
    assert out.read_text() == "not a folder"


@pytest.mark.parametrize(("code", "text"), [(errno.EROFS, "Read-only file system"),
                                            (errno.EACCES, "Permission denied"),
                                            (errno.ENOSPC, "No space left on device")])
def test_run_into_an_unwritable_folder_fails_before_any_work(
        churn_copy, capsys, monkeypatch, snapshot, code, text):
    out, config = churn_copy
    before = snapshot(out)

    def probe(folder):
        raise OSError(code, text)

    monkeypatch.setattr(staging, "_probe", probe)
    monkeypatch.setattr(runner, "load_inputs", lambda *a, **k: pytest.fail("loaded the data"))
    assert main(["run", "churn", "--quick", "--quiet", "--config", str(config),
                 "--out", str(out)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith(f"error: Cannot write the outputs to '{out}': {text}")
    assert "Traceback" not in err
    assert snapshot(out) == before


def test_a_second_run_into_the_same_folder_is_refused_while_the_first_runs(
        churn_copy, capsys, snapshot):
    out, config = churn_copy
    lock = out.parent / "out.partial.lock"
    lock.write_text(f"{os.getppid()}\n")  # a live process that is not this one
    before = snapshot(out)
    assert main(["run", "churn", "--quick", "--quiet", "--config", str(config),
                 "--out", str(out)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert f"Another run (process {os.getppid()}) is writing the outputs of '{out}'" in err
    assert snapshot(out) == before and lock.exists()


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path):
    target = tmp_path / "out"
    lock = tmp_path / "out.partial.lock"
    lock.write_text("999999999\n")  # no such process
    work = staging.prepare_work_folder(target)
    assert work == tmp_path / "out.partial"
    assert lock.read_text().strip() == str(os.getpid())
    staging.release_work_folder(work)
    assert not lock.exists()


def test_a_one_user_log_is_explained_before_any_fit(tmp_path, capsys):
    events = _one_user_log(tmp_path / "events.parquet")
    code = main(["run", "churn", "--quick", "--quiet", "--events", str(events),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == EXIT_DATA
    assert "at least 10 distinct users for the churn analysis" in err
    assert "the log has 1 (7)" in err and "Traceback" not in err
    assert "partial files" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.parquet"]


def test_a_prior_table_of_an_unknown_model_fails_before_the_data_is_read(
        tmp_path, capsys, monkeypatch):
    config = tmp_path / "c.toml"
    config.write_text('[priors.BetaGeoModle.r]\ndistribution = "LogNormal"\n'
                      "params = { mu = 0.0, sigma = 1.0 }\n")
    monkeypatch.setattr(runner, "load_inputs", lambda *a, **k: pytest.fail("loaded the data"))
    assert main(["run", "churn", "--quick", "--quiet", "--config", str(config),
                 "--out", str(tmp_path / "out")]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "Unknown model 'BetaGeoModle' under [priors]" in err
    assert "'BetaGeoModel'" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_misspelt_prior_parameter_in_a_config_is_an_error(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text('[priors.BetaGeoModel.r]\ndistribution = "LogNormal"\n'
                      "params = { mu = 0.0, sd = 0.01 }\n")
    assert main(["run", "churn", "--quick", "--quiet", "--config", str(config),
                 "--out", str(tmp_path / "out")]) == EXIT_ERROR
    assert "has no parameter 'sd'; its parameters are ['mu', 'sigma', 'tau']" in (
        capsys.readouterr().err)


def test_a_segment_column_that_does_not_exist_is_an_error(churn_copy, tiny_config, capsys,
                                                         snapshot):
    out, _ = churn_copy
    config = tiny_config()
    config.write_text(config.read_text().replace("[churn]\n", '[churn]\nsegment = "tier"\n'))
    before = snapshot(out)
    assert main(["run", "churn", "--quick", "--quiet", "--config", str(config),
                 "--out", str(out)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "The segment column 'tier' (churn.segment) does not exist" in err
    assert "'plan'" in err and "or to \"\" to fit without segments" in err
    assert f"The outputs in '{out}' are unchanged" in err
    assert snapshot(out) == before


# ---------------------------------------------------------------- run: finished, or not


def test_failed_checks_give_exit_status_4_and_identical_outputs(churn_copy, capsys, snapshot):
    out, config = churn_copy
    before = snapshot(out)
    code = main(["run", "churn", "--quick", "--quiet", "--config", str(config),
                 "--out", str(out)])
    err = capsys.readouterr().err
    verdicts = [f["verdict"] for f in json.loads((out / "diagnostics.json").read_text())
                ["fits"].values()]
    assert "fail" in verdicts  # 30 draws of 2 chains
    assert code == EXIT_CHECKS_FAILED
    assert "fit(s) failed their checks: churn/" in err and "exit status 4" in err
    assert "--quick runs are exploratory" in err
    after = snapshot(out)
    for name in DETERMINISTIC:
        assert after[name] == before[name], name
    manifest = json.loads((out / "manifest.json").read_text())
    assert all(f["cached"] for f in manifest["fits"].values())
    assert not (out.parent / "out.partial").exists()


def test_a_truncated_cached_posterior_is_refitted_with_a_note(churn_copy, capsys, snapshot):
    out, config = churn_copy
    before = snapshot(out)
    path = out / "posterior" / "sbg.nc"
    path.write_bytes(path.read_bytes()[:1000])
    code = main(["run", "churn", "--quick", "--config", str(config), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == EXIT_CHECKS_FAILED
    assert f"The cached fit {path} could not be used" in err and "sbg is refitted" in err
    assert "Traceback" not in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fits"]["bgnbd"]["cached"] and not manifest["fits"]["sbg"]["cached"]
    after = snapshot(out)
    for name in DETERMINISTIC:
        assert after[name] == before[name], name
    assert "could not be used" in (out / "report.html").read_text()


def test_a_failing_run_leaves_the_earlier_outputs_and_says_where_its_files_are(
        churn_copy, monkeypatch, snapshot):
    out, config = churn_copy
    before = snapshot(out)

    def fails_half_way(ctx):
        (ctx.out.out / "figures" / "new.png").write_bytes(b"partial figure")
        raise RuntimeError("the analysis broke")

    monkeypatch.setitem(runner.ANALYSES, "churn",
                        dataclasses.replace(runner.ANALYSES["churn"], run=fails_half_way))
    with pytest.raises(RuntimeError, match="the analysis broke") as info:
        runner.run_analysis("churn", config=config, out=out, quick=True, quiet=True)
    note = " ".join(info.value.__notes__)
    work = out.parent / "out.partial"
    assert f"The outputs in '{out}' are unchanged" in note
    assert f"the partial files of this run are in '{work}'" in note
    assert snapshot(out) == before
    assert (work / "figures" / "new.png").read_bytes() == b"partial figure"


def test_the_quick_option_is_documented_as_exploratory(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "exploratory, not for conclusions" in text and "exit status 4" in text


def test_semicolon_and_tab_separated_inputs_are_read_with_sep(tmp_path, monkeypatch):
    # catalogue 26: the CLI had no way to pass the delimiter of a CSV log
    from models import cli
    from models.analysis import run_analysis
    from models.analysis.runner import load_inputs

    log = pd.DataFrame({"user_id": ["u1", "u2", "u1"], "track_id": ["t1", "t2", "t3"],
                        "timestamp": ["2024-01-01T10:00:00", "2024-01-02T11:00:00",
                                      "2024-01-03T12:00:00"]})
    for sep, name in ((";", "semi.csv"), ("\t", "tab.csv")):
        log.to_csv(tmp_path / name, sep=sep, index=False)
        with pytest.raises(Exception, match="looks separated by"):
            load_inputs(tmp_path / name, None, {"data": {}}, 0)
        inputs = load_inputs(tmp_path / name, None, {"data": {"sep": sep}}, 0)
        assert sorted(inputs.events["user_id"].tolist()) == ["u1", "u1", "u2"]
    seen = {}

    def fake_run_analysis(name, **kwargs):
        seen.update(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr("models.analysis.run_analysis", fake_run_analysis)
    for given, wanted in ((";", ";"), ("\\t", "\t"), ("tab", "\t")):
        with pytest.raises(SystemExit):
            cli.main(["run", "churn", "--events", str(tmp_path / "semi.csv"), "--sep", given])
        assert seen["sep"] == wanted
    monkeypatch.undo()
    with pytest.raises(ValueError, match="'sep' must be one character"):
        run_analysis("churn", sep=";;")
