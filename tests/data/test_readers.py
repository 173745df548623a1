"""Readers: every supported format on tiny synthetic files."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from longrec.data import (
    DataWarning, dataset_from_frames, from_dataframe, load_dataset, read_id_list, read_interactions,
    read_items, read_users,
)
from longrec.errors import DataError

INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t10\t4\t100\n1\t11\t5\t101\n2\t10\t3\t102\n"
ITEM = "item_id:token\tmovie_title:token_seq\trelease_year:float\tclass:token_seq\n10\tToy Story\t1995\tAnimation Comedy\n11\t\"Heat\"\t1995\tAction\n"
USER = "user_id:token\tage:token\tgender:token\n1\t24\tM\n2\t53\tF\n"


def write(path, text, encoding="utf-8"):
    data = text.encode(encoding)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_atomic_files(tmp_path, suffix):
    inter = read_interactions(write(tmp_path / f"x.inter{suffix}", INTER))
    assert list(inter.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert inter["user_id"].dtype == np.int64 and inter["timestamp"].dtype == np.int64
    assert inter["rating"].tolist() == [4.0, 5.0, 3.0]
    items = read_items(write(tmp_path / f"x.item{suffix}", ITEM))
    assert list(items.columns) == ["item_id", "movie_title", "release_year", "class"]
    assert items["movie_title"].tolist() == ["Toy Story", '"Heat"']  # no quote processing
    assert items["class"].iloc[0] == "Animation Comedy" and items["release_year"].dtype == np.int64
    users = read_users(write(tmp_path / f"x.user{suffix}", USER))
    assert users["age"].tolist() == ["24", "53"]  # token columns stay strings


def test_atomic_dir_and_inter_file(tmp_path):
    for ext, text in (("inter", INTER), ("item", ITEM), ("user", USER)):
        write(tmp_path / f"toy.{ext}.gz", text)
    ds = load_dataset(tmp_path)
    assert len(ds) == 3 and len(ds.items) == 2 and len(ds.users) == 2
    ds2 = load_dataset(tmp_path / "toy.inter.gz")
    assert ds2.name == "toy" and ds2.items is not None


def test_string_ids_kept(tmp_path):
    p = write(tmp_path / "a.csv", "user,item\n007,1m_1\nu2,x\n")
    df = read_interactions(p)
    assert df["user_id"].tolist() == ["007", "u2"] and df["item_id"].tolist() == ["1m_1", "x"]


def test_ml100k_originals(tmp_path):
    write(tmp_path / "u.data", "1\t10\t4\t100\n2\t11\t5\t101\n")
    genres = ["0"] * 19
    g1, g2 = list(genres), list(genres)
    g1[3] = g1[5] = "1"
    g2[0] = "1"
    write(tmp_path / "u.item", f"10|Amélie (2001)|01-Jan-2001||http://x|{'|'.join(g1)}\n"
                               f"11|unknown||||{'|'.join(g2)}\n", encoding="latin-1")
    write(tmp_path / "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n")
    ds = load_dataset(tmp_path)
    assert ds.items["title"].tolist() == ["Amélie (2001)", "unknown"]
    assert ds.items["genres"].tolist() == ["Animation Comedy", "unknown"]
    assert ds.users["age"].tolist() == [24, 53]
    assert ds.interactions["timestamp"].tolist() == [100, 101]


def test_ml1m_originals(tmp_path):
    write(tmp_path / "ratings.dat", "1::10::4::978300760\n2::11::5::978300761\n")
    write(tmp_path / "movies.dat", "10::Star Wars: Episode IV (1977)::Action|Sci-Fi\n11::Café (1999)::Drama\n", "latin-1")
    write(tmp_path / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n")
    ds = load_dataset(tmp_path / "ratings.dat")
    assert ds.items["title"].tolist() == ["Star Wars: Episode IV (1977)", "Café (1999)"]
    assert ds.items["genres"].iloc[0] == "Action Sci-Fi"
    assert ds.users.columns.tolist() == ["user_id", "gender", "age", "occupation", "zip_code"]
    assert ds.interactions["rating"].tolist() == [4.0, 5.0]


def test_ml_latest_small(tmp_path):
    write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,10,4.5,964982703\n1,11,3.0,964981247\n")
    write(tmp_path / "movies.csv", 'movieId,title,genres\n10,"Heat, The (1995)",Action|Crime\n11,Odd (2018),(no genres listed)\n')
    ds = load_dataset(tmp_path)
    assert ds.interactions.columns.tolist() == ["user_id", "item_id", "rating", "timestamp"]
    assert ds.items["title"].iloc[0] == "Heat, The (1995)"
    assert ds.items["genres"].tolist() == ["Action Crime", ""]


def test_csv_mapping_tsv_parquet_frame(tmp_path):
    p = write(tmp_path / "r.csv", "uid;iid;stars\na;x;1\nb;y;2\n")
    df = read_interactions(p, columns={"uid": "user_id", "iid": "item_id", "stars": "rating"})
    assert df.columns.tolist() == ["user_id", "item_id", "rating"]
    # the reverse direction (canonical -> file column) is accepted too
    assert read_interactions(p, columns={"user_id": "uid", "item_id": "iid"}).shape == (2, 3)
    t = write(tmp_path / "r.tsv", "u\ti\n1\t2\n")
    assert read_interactions(t, columns={"u": "user_id", "i": "item_id"}).iloc[0].tolist() == [1, 2]
    pq = tmp_path / "r.parquet"
    pd.DataFrame({"user": [1, 2], "item": ["a", "b"], "ts": pd.to_datetime(["2024-01-01", "2024-01-02"])}).to_parquet(pq)
    out = read_interactions(pq)
    assert out["timestamp"].tolist() == [1704067200, 1704153600]
    assert read_interactions(pd.DataFrame({"userId": [1], "movieId": [2]})).shape == (1, 2)


def test_headerless_csv_detected(tmp_path):
    df = read_interactions(write(tmp_path / "h.csv", "1,2,5,100\n3,4,1,200\n"))
    assert df.shape == (2, 4) and df["item_id"].tolist() == [2, 4]


def test_iso_dates_become_seconds(tmp_path):
    df = read_interactions(write(tmp_path / "d.csv", "user_id,item_id,timestamp\n1,2,1970-01-02\n"))
    assert df["timestamp"].tolist() == [86400]


def test_read_id_list(tmp_path):
    assert read_id_list(write(tmp_path / "c.csv", "item_id\n3\n1\n3\n"), "item_id").tolist() == [3, 1]
    assert read_id_list(write(tmp_path / "one.csv", "whatever\nx\ny\n"), "user_id").tolist() == ["x", "y"]
    pq = tmp_path / "u.parquet"
    pd.DataFrame({"user_id": [5, 6], "other": [0, 0]}).to_parquet(pq)
    assert read_id_list(pq, "user_id").dtype == np.int64
    with pytest.raises(DataError, match="item_id"):
        read_id_list(write(tmp_path / "two.csv", "a,b\n1,2\n"), "item_id")


def test_dataset_from_frames_unknown_items():
    inter = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 99, 10]})
    items = pd.DataFrame({"item_id": [10, 11], "title": ["a", "b"]})
    with pytest.raises(DataError, match="not in the item table"):
        dataset_from_frames(inter, items)
    with pytest.warns(DataWarning, match="dropped 1 interactions"):
        ds = dataset_from_frames(inter, items, unknown_items="warn")
    assert len(ds) == 2
    assert len(from_dataframe(inter)) == 3


def test_wrong_role_and_missing(tmp_path):
    p = write(tmp_path / "u.data", "1\t2\t3\t4\n")
    with pytest.raises(DataError, match="holds interactions"):
        read_items(p)
    with pytest.raises(DataError, match="no such file"):
        read_interactions(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="not a known dataset"):
        load_dataset("definitely-not-a-dataset")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no dataset files"):
        load_dataset(tmp_path / "empty")


def test_read_items_escapechar_and_quotechar(tmp_path):
    # Book-Crossing style: ';'-separated, every field quoted, a \" inside a field
    p = tmp_path / "books.csv"
    p.write_bytes('"ISBN";"Book-Title"\n"0001";"The \\"Best\\" Book"\n"0002";"Plain"\n'.encode("latin-1"))
    from longrec.data import read_items
    from longrec.errors import DataError

    items = read_items(p, {"ISBN": "item_id"}, sep=";", encoding="latin-1", escapechar="\\")
    assert items["Book-Title"].tolist() == ['The "Best" Book', "Plain"]
    assert items["item_id"].tolist() == ["0001", "0002"]
    q = tmp_path / "q.csv"
    q.write_text("item_id,title\n1,'a, b'\n")
    assert read_items(q, quotechar="'")["title"].tolist() == ["a, b"]
    with pytest.raises(DataError, match="one character"):
        read_items(q, escapechar="ab")


def test_read_jsonl_gz(tmp_path):
    import gzip

    from longrec.data import read_interactions

    p = tmp_path / "inter.jsonl.gz"
    with gzip.open(p, "wt") as f:
        f.write('{"user_id": 1, "item_id": "a", "rating": 4}\n{"user_id": 2, "item_id": "b", "rating": 5}\n')
    df = read_interactions(p)
    assert df["item_id"].tolist() == ["a", "b"] and df["rating"].tolist() == [4.0, 5.0]
