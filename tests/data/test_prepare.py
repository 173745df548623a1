"""`longrec prepare` (longrec.data.prepare): reader options, filters, splits, outputs, safety."""

from __future__ import annotations

import gzip
import time
import tomllib

import numpy as np
import pandas as pd
import pytest

from longrec.data import splits
from longrec.data.prepare import (
    PreparedDataset,
    PrepareOptions,
    ReaderOptions,
    aggregate_reviews,
    parse_columns,
    prepare_dataset,
    split_basket,
    split_random,
)
from longrec.errors import ConfigError, DataError

BX = ReaderOptions(sep=";", encoding="latin-1", escapechar="\\",
                   columns={"user_id": "User-ID", "item_id": "ISBN", "rating": "Book-Rating"})


def _bx_files(tmp_path):
    """A Book-Crossing-shaped trio: ';', every field quoted, latin-1, a \\" inside a title, gzip."""
    ratings = ['"User-ID";"ISBN";"Book-Rating"']
    rng = np.random.default_rng(0)
    for u in range(1, 13):
        for i in rng.choice(10, size=7, replace=False):
            ratings.append(f'"{u}";"00{i}X";"{int(rng.choice([0, 0, 3, 7, 9]))}"')
    ratings.append('"1";"UNKNOWN";"8"')
    ratings.append('"2";"UNKNOWN";"0"')
    books = ['"ISBN";"Book-Title";"Book-Author";"Image-URL-S"']
    for i in range(10):
        books.append(f'"00{i}X";"B\\"ook\\" {i} é";"Auth {i}";"http://x/{i}.jpg"')
    users = ['"User-ID";"Location";"Age"'] + [f'"{u}";"town {u}, usa";"NULL"' for u in range(1, 14)]
    out = {}
    for name, lines in (("ratings", ratings), ("books", books), ("users", users)):
        p = tmp_path / f"BX-{name}.csv.gz"
        with gzip.open(p, "wb") as f:
            f.write(("\r\n".join(lines) + "\r\n").encode("latin-1"))
        out[name] = p
    return out


def _prep(tmp_path, out="out", **kw):
    f = _bx_files(tmp_path)
    opt = kw.pop("options", PrepareOptions())
    return prepare_dataset(f["ratings"], tmp_path / out, items=f["books"], users=f["users"], reader=BX,
                           item_reader=ReaderOptions(columns={"item_id": "ISBN", "title": "Book-Title",
                                                              "author": "Book-Author"}),
                           user_reader=ReaderOptions(columns={"user_id": "User-ID"}), options=opt, **kw)


# ---------------------------------------------------------------- reading
def test_reader_options_bx_layout(tmp_path):
    res = _prep(tmp_path, options=PrepareOptions(split="none"))
    items = pd.read_csv(res.out / "items.csv", dtype=str)
    assert list(items.columns) == ["item_id", "title", "author"]  # only the mapped columns
    assert items.loc[items.item_id == "003X", "title"].item() == 'B"ook" 3 é'
    train = pd.read_csv(res.out / "train.csv", dtype={"item_id": str})
    assert len(train) == 12 * 7 + 2 and set(train.columns) == {"user_id", "item_id", "rating"}
    assert res.card.steps[0].rows == 86


def test_parse_columns():
    assert parse_columns("user_id=User-ID, item_id=ISBN") == {"user_id": "User-ID", "item_id": "ISBN"}
    with pytest.raises(ConfigError, match="NAME=FILE_COLUMN"):
        parse_columns("user_id")


@pytest.mark.parametrize("fmt", ["tsv", "parquet", "jsonl.gz"])
def test_other_formats(tmp_path, fmt):
    df = pd.DataFrame({"uid": [1, 1, 2, 2, 3], "iid": ["a", "b", "a", "c", "b"], "r": [1, 2, 3, 4, 5]})
    p = tmp_path / f"inter.{fmt}"
    if fmt == "tsv":
        df.to_csv(p, sep="\t", index=False)
    elif fmt == "parquet":
        df.to_parquet(p)
    else:
        with gzip.open(p, "wt") as f:
            f.write(df.to_json(orient="records", lines=True))
    res = prepare_dataset(p, tmp_path / "o", reader=ReaderOptions(columns={"user_id": "uid", "item_id": "iid",
                                                                            "rating": "r"}),
                          options=PrepareOptions(split="none"))
    assert len(pd.read_csv(res.out / "train.csv")) == 5


# ---------------------------------------------------------------- filters
def test_filters_rating_implicit_unknown_dedupe(tmp_path):
    res = _prep(tmp_path, options=PrepareOptions(min_rating=6, implicit_value=0, drop_unknown_items=True,
                                                 dedupe="keep-first", split="none"))
    steps = {s.name: s for s in res.card.steps}
    assert steps["drop unknown items"].dropped == 2
    train = pd.read_csv(res.out / "train.csv", dtype={"item_id": str})
    assert set(train["rating"]) <= {0, 7, 9} and "UNKNOWN" not in set(train["item_id"])
    raw = pd.read_csv(tmp_path / "BX-ratings.csv.gz", sep=";", encoding="latin-1", dtype=str)
    known = raw[raw["ISBN"] != "UNKNOWN"]
    assert steps["rating filter"].dropped == int((known["Book-Rating"] == "3").sum()) > 0


def test_rating_filter_counts(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("user_id,item_id,rating\n1,1,0\n1,2,3\n1,3,6\n2,1,9\n2,2,5\n")
    res = prepare_dataset(p, tmp_path / "o", options=PrepareOptions(min_rating=6, implicit_value=0, split="none"))
    t = pd.read_csv(res.out / "train.csv")
    assert sorted(zip(t.user_id, t.item_id)) == [(1, 1), (1, 3), (2, 1)]
    step = next(s for s in res.card.steps if s.name == "rating filter")
    assert step.dropped == 2 and "implicit" in step.reason
    res = prepare_dataset(p, tmp_path / "o2", options=PrepareOptions(min_rating=6, split="none"))
    assert len(pd.read_csv(res.out / "train.csv")) == 2
    p2 = tmp_path / "norating.csv"
    p2.write_text("user_id,item_id\n1,1\n")
    with pytest.raises(DataError, match="rating column"):
        prepare_dataset(p2, tmp_path / "o3", options=PrepareOptions(min_rating=6, split="none"))


@pytest.mark.parametrize("policy,expect", [("keep-first", [1.0]), ("keep-last", [5.0]), ("drop", []),
                                           ("keep-all", [1.0, 5.0])])
def test_dedupe(tmp_path, policy, expect):
    p = tmp_path / "r.csv"
    p.write_text("user_id,item_id,rating\n1,1,1\n2,2,2\n1,1,5\n")
    res = prepare_dataset(p, tmp_path / "o", options=PrepareOptions(dedupe=policy, split="none"))
    t = pd.read_csv(res.out / "train.csv")
    assert t.loc[(t.user_id == 1) & (t.item_id == 1), "rating"].tolist() == expect


def test_k_core_is_iterative(tmp_path):
    # item 9 has 2 rows; dropping it leaves user 3 with 1 row, so user 3 goes in a second round
    rows = [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 9), (4, 9), (4, 5)]
    p = tmp_path / "r.csv"
    pd.DataFrame(rows, columns=["user_id", "item_id"]).to_csv(p, index=False)
    res = prepare_dataset(p, tmp_path / "o", options=PrepareOptions(k_core=2, split="none"))
    t = pd.read_csv(res.out / "train.csv")
    assert sorted(zip(t.user_id, t.item_id)) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    g = t.groupby("user_id").size().min(), t.groupby("item_id").size().min()
    assert min(g) >= 2


# ---------------------------------------------------------------- splits
def _inter(n_users=20, per=12, ts=True, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for k, i in enumerate(rng.choice(60, size=per, replace=False)):
            rows.append((u + 1, int(i) + 1, float(rng.integers(1, 6)), 1000 + 10 * u + k))
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return df if ts else df.drop(columns="timestamp")


def test_random_split_numeric_matches_library_p1():
    df = _inter()
    a = split_random(df, (0.8, 0.1, 0.1), 7, "numeric")
    b = splits.split_p1(df, seed=7)
    for p in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(a[p], b[p])
    assert len(a["valid"]) == 20 and len(a["test"]) == 20  # int(0.1 * 12) = 1 per user


def test_random_split_text_order_differs_and_is_seeded():
    df = _inter(n_users=12, ts=False)  # user ids 1..12: "10" < "2" as text
    a = split_random(df, (0.8, 0.1, 0.1), 3, "text")
    assert split_random(df, (0.8, 0.1, 0.1), 3, "text")["test"].equals(a["test"])
    # the text order is ascending string order, then RecBole cuts per user
    d = df.assign(u=df.user_id.astype(str), i=df.item_id.astype(str)).sort_values(["u", "i"], kind="stable")
    rng = np.random.default_rng(3)
    test = set()
    for u, g in d.groupby("u", sort=True):
        perm = rng.permutation(len(g))
        cnt = splits.split_counts(len(g), (0.8, 0.1, 0.1))
        test |= {(int(u), int(x)) for x in g["item_id"].to_numpy()[perm[cnt[0] + cnt[1]:]]}
    assert set(zip(a["test"].user_id, a["test"].item_id)) == test


def test_loo_temporal_cold_items(tmp_path):
    p = tmp_path / "r.csv"
    _inter().to_csv(p, index=False)
    res = prepare_dataset(p, tmp_path / "loo", options=PrepareOptions(split="loo"))
    test = pd.read_csv(res.out / "test.csv")
    assert len(test) == 20 and (test.groupby("user_id")["timestamp"].max()
                                == _inter().groupby("user_id")["timestamp"].max()).all()
    res = prepare_dataset(p, tmp_path / "tmp", options=PrepareOptions(split="temporal"))
    tr, te = pd.read_csv(res.out / "train.csv"), pd.read_csv(res.out / "test.csv")
    assert tr.timestamp.max() <= te.timestamp.min() and len(tr) == int(0.8 * 240)
    res = prepare_dataset(p, tmp_path / "cold", options=PrepareOptions(split="cold-items", seed=5))
    cold = pd.read_csv(res.out / "cold_items.csv")["item_id"]
    ref = splits.split_p3(_inter(), seed=5)
    assert sorted(cold) == sorted(ref["cold_items"].tolist())
    assert not pd.read_csv(res.out / "train.csv")["item_id"].isin(cold).any()
    assert pd.read_csv(res.out / "test.csv")["item_id"].isin(cold).all()
    with pytest.raises(DataError, match="timestamp"):
        p2 = tmp_path / "nots.csv"
        _inter(ts=False).to_csv(p2, index=False)
        prepare_dataset(p2, tmp_path / "x", options=PrepareOptions(split="loo"))


def test_basket_split_and_keep_repeats(tmp_path):
    rows = []
    for u in (1, 2):
        for order, prods in enumerate([[1, 2], [1, 3], [2, 2, 4], [1, 5]], 1):
            rows += [(u, prods[k], 100 * u + order, order) for k in range(len(prods))]
    rows.append((3, 1, 999, 1))  # a user with one basket: test only
    df = pd.DataFrame(rows, columns=["user", "product_id", "order_id", "order_number"])
    p = tmp_path / "orders.csv"
    df.sample(frac=1, random_state=0).to_csv(p, index=False)  # file order must not matter
    res = prepare_dataset(p, tmp_path / "o", reader=ReaderOptions(columns={"user_id": "user", "item_id": "product_id"}),
                          options=PrepareOptions(split="basket", group_by="order_id", order_by="order_number",
                                                 keep_repeats=True))
    tr, va, te = (pd.read_csv(res.out / f"{x}.csv") for x in ("train", "valid", "test"))
    assert sorted(te[te.user_id == 1].item_id) == [1, 5] and sorted(va[va.user_id == 1].item_id) == [2, 4]
    assert sorted(tr[tr.user_id == 1].item_id) == [1, 1, 2, 3]  # repeat rows kept
    assert te[te.user_id == 3].item_id.tolist() == [1] and 3 not in set(tr.user_id)
    meta = tomllib.loads((res.out / "dataset.toml").read_text())
    assert meta["repeat_consumption"] is True and meta["prepare"]["group_by"] == "order_id"
    assert PreparedDataset.load(res.out).repeat_consumption
    assert len(PreparedDataset.load(res.out).interactions("train")) == len(tr)
    with pytest.raises(ConfigError, match="group-by"):
        PrepareOptions(split="basket").check()


def test_split_basket_order_without_order_by():
    df = pd.DataFrame({"user_id": [1, 1, 1], "item_id": [1, 2, 3], "order_id": ["a", "b", "c"]})
    out = split_basket(df, "order_id")
    assert out["test"].item_id.tolist() == [3] and out["valid"].item_id.tolist() == [2]


# ---------------------------------------------------------------- reviews
def test_aggregate_reviews():
    rv = pd.DataFrame({"item_id": [1, 1, 1, 2, 2, 3], "text": ["ok", "great\nfit", "bad", "", None, "nice"],
                       "stars": [3, 5, 1, 4, 4, 5], "helpful": [0, 9, 2, 0, 0, 0]})
    d = aggregate_reviews(rv, "text", helpful="helpful")
    assert d.set_index("item_id")["description"].to_dict() == {1: "great fit bad ok", 3: "nice"}
    d = aggregate_reviews(rv, "text", rating="stars", min_rating=3, helpful="helpful", max_chars=12)
    assert d.set_index("item_id")["description"].to_dict() == {1: "great fit ok", 3: "nice"}
    assert aggregate_reviews(rv, "text", max_chars=3)["description"].tolist()[0] == "ok"
    with pytest.raises(DataError, match="no column 'nope'"):
        aggregate_reviews(rv, "nope")


def test_reviews_only_folder_has_items_with_description(tmp_path):
    p = tmp_path / "reviews.csv"
    pd.DataFrame({"Clothing ID": [7, 7, 8], "Review Text": ["soft", "warm", ""], "Class Name": ["Knits", "Knits", "Jeans"],
                  "Positive Feedback Count": [1, 5, 0]}).to_csv(p, index=False)
    res = prepare_dataset(None, tmp_path / "o", reviews=p,
                          item_reader=ReaderOptions(columns={"item_id": "Clothing ID", "class": "Class Name"}),
                          options=PrepareOptions(review_text="Review Text", helpful="Positive Feedback Count"))
    items = pd.read_csv(res.out / "items.csv", keep_default_na=False)
    assert items.to_dict("list") == {"item_id": [7, 8], "class": ["Knits", "Jeans"], "description": ["warm soft", ""],
                                     "n_reviews": [2, 0]}
    assert not (res.out / "train.csv").exists()
    assert res.card.summary["items with a review description"] == 1


# ---------------------------------------------------------------- outputs and safety
def test_dataset_toml_and_card(tmp_path):
    res = _prep(tmp_path, options=PrepareOptions(min_rating=6, implicit_value=0, drop_unknown_items=True, seed=11))
    meta = tomllib.loads((res.out / "dataset.toml").read_text())
    assert meta["made_by"] == "longrec prepare" and meta["seed"] == 11 and meta["split"] == "random"
    assert meta["files"]["interactions"]["encoding"] == "latin-1"
    assert meta["files"]["interactions"]["escapechar"] == "\\"
    assert meta["files"]["interactions"]["columns"]["item_id"] == "ISBN"
    assert len(meta["files"]["items"]["sha256"]) == 64 and meta["prepare"]["min_rating"] == 6
    assert meta["repeat_consumption"] is False and "longrec_version" in meta
    card = (res.out / "DATA_CARD.md").read_text()
    assert "| drop unknown items | " in card and "| rating filter |" in card and "density" in card
    assert "text coverage of items" in card
    assert sum(meta["parts"][p]["rows"] for p in ("train", "valid", "test")) == meta["counts"]["interactions"]
    users = pd.read_csv(res.out / "users.csv")
    assert set(users.user_id) == set(pd.read_csv(res.out / "train.csv").user_id)
    for name in ("train.csv", "valid.csv", "test.csv", "items.csv", "users.csv", "dataset.toml", "DATA_CARD.md"):
        assert (res.out / name).is_file()


def test_overwrite_refusal_and_atomic(tmp_path):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not made by `longrec prepare`"):
        _prep(tmp_path, out="mine", options=PrepareOptions(split="none"))
    assert (other / "notes.txt").read_text() == "keep me" and len(list(other.iterdir())) == 1
    with pytest.raises(DataError, match="not made by"):
        _prep(tmp_path, out="mine", options=PrepareOptions(split="none"), overwrite=True)
    res = _prep(tmp_path, out="p", options=PrepareOptions(split="none"))
    with pytest.raises(DataError, match="--overwrite"):
        _prep(tmp_path, out="p", options=PrepareOptions(split="none"))
    before = (res.out / "dataset.toml").read_text()
    time.sleep(1.1)
    _prep(tmp_path, out="p", options=PrepareOptions(split="random"), overwrite=True)
    assert (res.out / "test.csv").is_file() and (res.out / "dataset.toml").read_text() != before
    # a failure half-way leaves the previous output untouched and no temp folder behind
    with pytest.raises(DataError):
        _prep(tmp_path, out="p", options=PrepareOptions(min_rating=100, split="random"), overwrite=True)
    assert (res.out / "test.csv").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_bad_options():
    with pytest.raises(ConfigError, match="unknown split"):
        PrepareOptions(split="p9").check()
    with pytest.raises(ConfigError, match="implicit-value"):
        PrepareOptions(implicit_value=0).check()
    with pytest.raises(ConfigError, match="ratios"):
        PrepareOptions(ratios=(0.5, 0.1)).check()


def test_cli_prepare_refuses_and_reports(tmp_path):
    from typer.testing import CliRunner

    from longrec.cli.main import app

    f = _bx_files(tmp_path)
    out = tmp_path / "bx"
    args = ["prepare", "--interactions", str(f["ratings"]), "--items", str(f["books"]), "--sep", ";",
            "--encoding", "latin-1", "--escapechar", "\\", "--columns", "user_id=User-ID,item_id=ISBN,rating=Book-Rating",
            "--item-columns", "item_id=ISBN,title=Book-Title", "--drop-unknown-items", "--min-rating", "6",
            "--implicit-value", "0", "--out", str(out)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert (out / "DATA_CARD.md").is_file()
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and "--overwrite" in r.output
    r = CliRunner().invoke(app, args[:-2] + ["--columns", "user_id=User-ID", "--out", str(tmp_path / "y")])
    assert r.exit_code == 2 and "Traceback" not in r.output


# ---------------------------------------------------------------- real data
@pytest.mark.realdata
def test_prepare_reproduces_book_crossing_b1(real_data_dir, tmp_path):
    """The B1 rule from the raw BX files gives the published B1 counts and exactly its rows."""
    bx = real_data_dir / "book-crossing"
    if not (bx / "BX-Book-Ratings.csv.gz").is_file():
        pytest.skip("book-crossing is not in LONGREC_DATA_DIR")
    res = prepare_dataset(
        bx / "BX-Book-Ratings.csv.gz", tmp_path / "b1", items=bx / "BX-Books.csv.gz", reader=BX,
        item_reader=ReaderOptions(columns={"item_id": "ISBN", "title": "Book-Title"}),
        options=PrepareOptions(drop_unknown_items=True, min_rating=6, implicit_value=0, dedupe="keep-first",
                               k_core=10, split="random", id_order="text", seed=2026))
    s, parts = res.card.summary, res.card.parts
    assert (s["users"], s["items"], s["interactions"]) == (6049, 12339, 337816)
    assert [parts[p]["rows"] for p in ("train", "valid", "test")] == [274886, 31465, 31465]
    steps = {st.name: st.rows for st in res.card.steps}
    assert steps["drop unknown items"] == 1031175 and steps["rating filter"] == 969229
    assert "(7 rounds)" in next(st.reason for st in res.card.steps if st.name == "k-core")  # as the B1 README
    for p in ("train", "valid", "test"):
        mine = pd.read_csv(res.out / f"{p}.csv", dtype=str)
        ref = pd.read_csv(bx / "splits" / "b1" / f"{p}.csv", dtype=str)
        assert set(map(tuple, mine[["user_id", "item_id", "rating"]].to_numpy())) == \
            set(map(tuple, ref[["user_id", "item_id", "rating"]].to_numpy())), p


def test_cli_data_dir_train_recommend_evaluate(tmp_path):
    from typer.testing import CliRunner

    from longrec.cli.main import app

    p = tmp_path / "ratings.txt"
    df = _inter(n_users=30, per=12, ts=False).rename(columns={"user_id": "U", "item_id": "I"})
    df.to_csv(p, sep="|", index=False)
    run = CliRunner()
    data = tmp_path / "d"
    r = run.invoke(app, ["prepare", "--interactions", str(p), "--sep", "|", "--columns", "user_id=U,item_id=I",
                         "--out", str(data)])
    assert r.exit_code == 0, r.output
    r = run.invoke(app, ["train", "--data", str(data), "--model", "pop", "--out", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    r = run.invoke(app, ["recommend", "--model", str(tmp_path / "m"), "--data", str(data), "--k", "5",
                         "--output", str(tmp_path / "recs.csv")])
    assert r.exit_code == 0, r.output
    recs = pd.read_csv(tmp_path / "recs.csv")
    test, train, valid = (pd.read_csv(data / f"{x}.csv") for x in ("test", "train", "valid"))
    assert set(recs.user_id) == set(test.user_id)
    seen = set(zip(train.user_id, train.item_id)) | set(zip(valid.user_id, valid.item_id))
    assert not seen & set(zip(recs.user_id, recs.item_id))  # history = train + valid at the test stage
    r = run.invoke(app, ["evaluate", "--recs", str(tmp_path / "recs.csv"), "--data", str(data), "--k", "5",
                         "--output", str(tmp_path / "m.json")])
    assert r.exit_code == 0, r.output
    import json

    res = json.loads((tmp_path / "m.json").read_text())
    assert res["truth"].endswith("test.csv") and res["catalog"].endswith("items.csv")
    # the reader options work on the plain file options too
    r = run.invoke(app, ["train", "--train", str(p), "--sep", "|", "--columns", "user_id=U,item_id=I",
                         "--model", "pop", "--out", str(tmp_path / "m2")])
    assert r.exit_code == 0, r.output
    r = run.invoke(app, ["train", "--train", str(p), "--data", str(data), "--model", "pop", "--out", str(tmp_path / "m3")])
    assert r.exit_code == 2 and "not both" in r.output
    r = run.invoke(app, ["evaluate", "--recs", str(tmp_path / "recs.csv"), "--data", str(tmp_path / "nope"),
                         "--output", str(tmp_path / "x.json")])
    assert r.exit_code == 2 and "no such folder" in r.output
