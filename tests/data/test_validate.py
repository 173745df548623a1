"""Validation: each bad input is one DataError that names file, line, column and a fix."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from longrec.data import DataWarning, read_interactions, read_items
from longrec.errors import DataError


def write(path, data: str | bytes):
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_misnamed_column_suggests(tmp_path):
    p = write(tmp_path / "r.csv", "usr_id,item_id\n1,2\n")
    with pytest.raises(DataError) as e:
        read_interactions(p)
    msg = str(e.value)
    assert "r.csv" in msg and "'user_id'" in msg and "Did you mean 'usr_id'?" in msg
    assert "columns={'usr_id': 'user_id'}" in msg


def test_bad_mapping_names_missing_column(tmp_path):
    p = write(tmp_path / "r.csv", "a,b\n1,2\n")
    with pytest.raises(DataError, match="no such column"):
        read_interactions(p, columns={"uid": "user_id"})


def test_non_numeric_rating_points_at_line(tmp_path):
    p = write(tmp_path / "r.csv", "user_id,item_id,rating\n1,2,4\n1,3,five\n")
    with pytest.raises(DataError) as e:
        read_interactions(p)
    msg = str(e.value)
    assert "line 3 (data row 2)" in msg and "'rating'" in msg and "'five'" in msg


def test_non_numeric_in_atomic_float_column(tmp_path):
    p = write(tmp_path / "x.inter", "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t10\n1\t3\tsoon\n")
    with pytest.raises(DataError, match=r"line 3 .*'timestamp'"):
        read_interactions(p)


def test_missing_rating_and_empty_id(tmp_path):
    with pytest.raises(DataError, match=r"line 2 .*missing"):
        read_interactions(write(tmp_path / "a.csv", "user_id,item_id,rating\n1,2,\n"))
    with pytest.raises(DataError, match=r"line 3 .*'item_id'.*empty"):
        read_interactions(write(tmp_path / "b.csv", "user_id,item_id\n1,2\n1,\n"))
    with pytest.raises(DataError, match=r"row 2, column 'user_id'"):
        read_interactions(pd.DataFrame({"user_id": [1, None], "item_id": [1, 2]}))


def test_empty_and_header_only(tmp_path):
    with pytest.raises(DataError, match="empty"):
        read_interactions(write(tmp_path / "e.csv", ""))
    with pytest.raises(DataError, match="no interactions"):
        read_interactions(write(tmp_path / "h.csv", "user_id,item_id\n"))
    with pytest.raises(DataError, match="empty"):
        read_interactions(write(tmp_path / "e.inter.gz", gzip.compress(b"")))


def test_ragged_lines(tmp_path):
    with pytest.raises(DataError, match="sep="):
        read_interactions(write(tmp_path / "r.csv", "user_id,item_id\n1,2\n1,2,3,4\n"))


def test_bad_encoding_suggests_latin1(tmp_path):
    p = write(tmp_path / "r.csv", "user_id,item_id\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError) as e:
        read_interactions(p)
    assert "encoding='latin-1'" in str(e.value) and "line 2" in str(e.value)
    assert read_interactions(p, encoding="latin-1")["item_id"].tolist() == ["café"]


def test_bad_parquet(tmp_path):
    with pytest.raises(DataError, match="Parquet"):
        read_interactions(write(tmp_path / "x.parquet", "not parquet"))


DUPS = "user_id,item_id,rating\n1,2,1\n1,3,2\n1,2,5\n"


@pytest.mark.parametrize("policy,ratings", [("keep-last", [2.0, 5.0]), ("keep-first", [1.0, 2.0]),
                                            ("drop", [2.0]), ("keep-all", [1.0, 2.0, 5.0])])
def test_duplicate_policies(tmp_path, policy, ratings):
    p = write(tmp_path / "d.csv", DUPS)
    with pytest.warns(DataWarning) if policy != "keep-all" else _nothing():
        df = read_interactions(p, duplicates=policy)
    assert df["rating"].tolist() == ratings


def test_duplicate_error(tmp_path):
    with pytest.raises(DataError, match=r"line 4 .*already appear at line 2"):
        read_interactions(write(tmp_path / "d.csv", DUPS), duplicates="error")
    with pytest.raises(DataError, match="unknown duplicate policy"):
        read_interactions(write(tmp_path / "e.csv", DUPS), duplicates="sometimes")


def test_rating_range(tmp_path):
    p = write(tmp_path / "r.csv", "user_id,item_id,rating\n1,2,4\n1,3,11\n")
    with pytest.raises(DataError, match=r"line 3 .*outside the allowed range \[1, 5\]"):
        read_interactions(p, rating_range=(1, 5))
    assert len(read_interactions(p)) == 2


def test_item_table_repeated_id(tmp_path):
    with pytest.raises(DataError, match=r"line 3 .*already appears at line 2"):
        read_items(write(tmp_path / "i.csv", "item_id,title\n1,a\n1,b\n"))


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_missing_item_id_never_suggests_user_id(tmp_path):
    # "user_id" is the closest spelling of "item_id"; proposing it would turn user ids into item ids
    p = tmp_path / "r.csv"
    p.write_text("user_id,ISBN,rating\n1,0345,5\n2,0346,3\n")
    with pytest.raises(DataError) as e:
        read_interactions(p)
    msg = str(e.value)
    assert "no 'item_id' column" in msg
    assert "Did you mean 'user_id'" not in msg and "{'user_id': 'item_id'}" not in msg
    assert "--columns item_id=" in msg


def test_missing_user_id_never_suggests_item_id(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("uid_x,item_id\n1,2\n")
    with pytest.raises(DataError) as e:
        read_interactions(p)
    assert "'item_id'?" not in str(e.value)


def test_close_spelling_still_suggested(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("user_id,itm_id\n1,2\n")
    with pytest.raises(DataError, match="Did you mean 'itm_id'"):
        read_interactions(p)


@pytest.mark.parametrize("col,text", [("rating", "inf"), ("rating", "-inf"), ("timestamp", "inf")])
def test_non_finite_numbers_refused(tmp_path, col, text):
    p = tmp_path / "r.csv"
    rows = {"rating": ["4", "4"], "timestamp": ["100", "200"]}
    rows[col][1] = text
    p.write_text("user_id,item_id,rating,timestamp\n" + f"1,1,{rows['rating'][0]},{rows['timestamp'][0]}\n"
                 + f"1,2,{rows['rating'][1]},{rows['timestamp'][1]}\n")
    with pytest.raises(DataError) as e:
        read_interactions(p)
    assert f"column '{col}'" in str(e.value) and "line 3" in str(e.value) and "finite" in str(e.value)


def test_non_finite_in_dataframe_refused():
    df = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "rating": [1.0, np.inf]})
    with pytest.raises(DataError, match="column 'rating'.*not a finite"):
        read_interactions(df)
    df = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "rating": [1.0, np.nan]})
    with pytest.raises(DataError, match="column 'rating'"):
        read_interactions(df)
