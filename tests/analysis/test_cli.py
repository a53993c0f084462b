import subprocess
import sys

import pandas as pd
import pytest

from models.analysis import load_config
from models.analysis.runner import load_inputs
from models.cli import main


def test_list_names_every_analysis(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("churn", "listening", "network", "all"):
        assert f"{name}\n" in out
    assert "needs:" in out


def test_unknown_analysis_is_one_line_error(capsys):
    assert main(["run", "nope", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Unknown analysis 'nope'" in err and "Traceback" not in err


def test_missing_events_and_config(tmp_path, capsys):
    assert main(["run", "churn", "--events", str(tmp_path / "x.parquet"), "--quiet",
                 "--out", str(tmp_path / "o")]) == 2
    assert "No events file or folder at" in capsys.readouterr().err
    assert main(["run", "churn", "--config", str(tmp_path / "c.toml"), "--quiet"]) == 2
    assert "No config file at" in capsys.readouterr().err


def test_bad_config_key(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text("[churn]\ninactivty = '30D'\n")
    assert main(["run", "churn", "--config", str(config), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Unknown key 'churn.inactivty'" in err and "Traceback" not in err


def test_run_all_config_needs_analysis_tables(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text("[sampler]\ndraws = 10\n")
    assert main(["run", "all", "--config", str(config), "--quiet"]) == 2
    assert "one table per analysis" in capsys.readouterr().err


def test_bad_data_is_one_message(tmp_path, capsys):
    events = tmp_path / "events.csv"
    pd.DataFrame({"user": [1], "timestamp": ["2024-01-01"]}).to_csv(events, index=False)
    code = main(["run", "churn", "--events", str(events), "--quiet",
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 3
    assert err.startswith("error: Invalid events") and "user_id" in err
    assert "Traceback" not in err


def test_bad_seed_is_rejected_by_argparse(capsys):
    with pytest.raises(SystemExit):
        main(["run", "churn", "--seed", "-1"])
    assert "non-negative integer" in capsys.readouterr().err


def test_simulate_file_and_inputs_pick_up_users(tmp_path, capsys):
    out = tmp_path / "events.parquet"
    assert main(["simulate", "--users", "40", "--days", "20", "--seed", "3",
                 "--out", str(out)]) == 0
    assert (tmp_path / "events_users.parquet").is_file()
    inputs = load_inputs(out, None, load_config("churn", quick=True), 0)
    assert inputs.users is not None and len(inputs.users) == 40
    assert list(inputs.record["events"]) == [str(out)]
    assert main(["simulate", "--out", str(tmp_path / "e.txt")]) == 2
    assert "must end in .parquet or .csv" in capsys.readouterr().err


def test_simulate_partitioned_folder_is_an_input(tmp_path):
    folder = tmp_path / "log"
    assert main(["simulate", "--users", "60", "--days", "20", "--seed", "1", "--partitioned",
                 "--users-per-partition", "25", "--out", str(folder)]) == 0
    assert len(list((folder / "events").glob("*.parquet"))) == 3
    inputs = load_inputs(folder, None, load_config("churn", quick=True), 0)
    assert inputs.events["user_id"].nunique() <= 60 and len(inputs.users) == 60
    assert len(inputs.record["events"]) == 3


def test_python_dash_m_models_runs():
    done = subprocess.run([sys.executable, "-m", "models", "list"], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0 and "churn" in done.stdout
