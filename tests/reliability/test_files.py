"""Reading files: ids keep their identity, no part is skipped, every error names the file."""

import pandas as pd
import pytest

from models.data import load_events, load_users
from models.exceptions import DataValidationError


def _log(user_ids, artists=None):
    n = len(user_ids)
    return pd.DataFrame({"user_id": user_ids,
                         "timestamp": [f"2024-01-{d:02d}" for d in range(1, n + 1)],
                         "artist_id": artists if artists is not None else list(range(n))})


@pytest.fixture
def mixed_folder(tmp_path):
    folder = tmp_path / "log"
    folder.mkdir()
    log = _log([1, 2, 3, 4])
    log.iloc[:2].assign(timestamp=pd.to_datetime(log["timestamp"].iloc[:2])).to_parquet(
        folder / "part-0.parquet")
    log.iloc[2:].to_csv(folder / "part-1.csv", index=False)
    return folder


def test_folder_with_parquet_and_csv_parts_is_refused_listing_the_csv(mixed_folder, snapshot):
    before = snapshot(mixed_folder)
    with pytest.raises(ValueError, match=r"also holds 1 CSV file\(s\) \('.*part-1\.csv'\) that "
                       r"would be left out.*Convert them to Parquet"):
        load_events(mixed_folder)
    assert snapshot(mixed_folder) == before


def test_users_folder_with_parquet_and_csv_parts_is_refused(tmp_path, snapshot):
    folder = tmp_path / "users"
    folder.mkdir()
    pd.DataFrame({"user_id": [1, 2]}).to_parquet(folder / "a.parquet")
    pd.DataFrame({"user_id": [3]}).to_csv(folder / "b.csv", index=False)
    before = snapshot(folder)
    with pytest.raises(ValueError, match=r"load_users .*b\.csv"):
        load_users(folder)
    assert snapshot(folder) == before


def test_users_folder_of_parquet_parts_reads_every_part(tmp_path):
    folder = tmp_path / "users"
    folder.mkdir()
    pd.DataFrame({"user_id": [2, 1]}).to_parquet(folder / "a.parquet")
    pd.DataFrame({"user_id": [3]}).to_parquet(folder / "b.parquet")
    assert load_users(folder)["user_id"].tolist() == [1, 2, 3]


def test_folder_of_csv_files_only_says_so(tmp_path):
    folder = tmp_path / "log"
    folder.mkdir()
    _log([1]).to_csv(folder / "a.csv", index=False)
    with pytest.raises(FileNotFoundError, match=r"no Parquet file.*holds CSV files \(1\)"):
        load_events(folder)


def test_csv_ids_with_leading_zeros_stay_distinct(tmp_path, snapshot):
    path = tmp_path / "ids.csv"
    path.write_text("user_id,timestamp,artist_id\n007,2024-01-01,1\n7,2024-01-02,1\n"
                    "0007,2024-01-03,2\n")
    before = snapshot(path)
    log = load_events(path)
    assert sorted(log["user_id"]) == ["0007", "007", "7"]
    assert log["user_id"].nunique() == 3
    assert snapshot(path) == before


def test_csv_of_plain_integer_ids_keeps_integers(tmp_path):
    path = tmp_path / "ids.csv"
    _log([10, 2, -3]).to_csv(path, index=False)
    log = load_events(path)
    assert log["user_id"].dtype == "int64"
    assert log["user_id"].tolist() == [-3, 2, 10]
    assert log["artist_id"].dtype == "int64"


def test_csv_artist_ids_with_leading_zeros_stay_distinct(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("user_id,timestamp,artist_id\n1,2024-01-01,01\n1,2024-01-02,1\n")
    assert sorted(load_events(path)["artist_id"]) == ["01", "1"]


def test_csv_users_ids_with_leading_zeros_stay_distinct(tmp_path):
    path = tmp_path / "users.csv"
    path.write_text("user_id,country\n007,SE\n7,DE\n")
    assert sorted(load_users(path)["user_id"]) == ["007", "7"]


@pytest.mark.parametrize("text", ["nan", "None", "null", " "])
def test_csv_text_standing_for_a_missing_id_is_missing(tmp_path, text, snapshot):
    path = tmp_path / "log.csv"
    path.write_text(f"user_id,timestamp,artist_id\na,2024-01-01,1\n{text},2024-01-02,1\n")
    before = snapshot(path)
    with pytest.raises(DataValidationError, match=r"(?s)column 'user_id'.*row 1.*real id"):
        load_events(path)
    assert snapshot(path) == before


def test_empty_csv_names_the_file(tmp_path, snapshot):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    before = snapshot(path)
    with pytest.raises(DataValidationError, match=r"(?s)CSV file '.*empty\.csv'.*the file is "
                       r"empty.*written completely"):
        load_events(path)
    assert snapshot(path) == before


def test_ragged_csv_names_the_file_and_line(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("user_id,timestamp,artist_id\n1,2024-01-01,1\n2,2024-01-02,1,9,9\n")
    with pytest.raises(DataValidationError, match=r"(?s)CSV file '.*ragged\.csv'.*line 3.*"
                       r"sep=\.\.\."):
        load_events(path)


@pytest.mark.parametrize(("sep", "hint"), [(";", "sep=';'"), ("\t", "sep='\\\\t'")])
def test_csv_with_another_delimiter_names_it(tmp_path, sep, hint):
    path = tmp_path / "log.csv"
    _log([1, 2]).to_csv(path, index=False, sep=sep)
    with pytest.raises(DataValidationError, match=rf"(?s)'.*log\.csv'.*looks separated.*{hint}"):
        load_events(path)


def test_csv_with_the_delimiter_passed_reads(tmp_path):
    path = tmp_path / "log.csv"
    _log([1, 2]).to_csv(path, index=False, sep=";")
    assert len(load_events(path, sep=";")) == 2


def test_non_utf8_csv_names_the_file_and_encoding(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("user_id,timestamp,artist_id\nJos\u00e9,2024-01-01,1\n".encode("latin-1"))
    with pytest.raises(DataValidationError, match=r"(?s)'.*latin\.csv'.*UTF-8.*encoding="):
        load_events(path)
    assert load_events(path, encoding="latin-1")["user_id"].tolist() == ["Jos\u00e9"]


def test_a_bad_part_of_a_folder_names_its_file(tmp_path):
    folder = tmp_path / "log"
    folder.mkdir()
    _log([1, 2]).to_parquet(folder / "a.parquet")
    _log(["", "b"]).to_parquet(folder / "b.parquet")
    with pytest.raises(DataValidationError, match=r"(?s)file '.*b\.parquet'.*'user_id'.*row 0"):
        load_events(folder)
