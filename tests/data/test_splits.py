"""Evaluation protocols: exact reproduction of the shared ml-100k splits plus unit tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from longrec.data.splits import (
    SplitInfo,
    split_counts,
    split_p1,
    split_p2,
    split_p3,
    split_per_user_random,
    split_provenance,
    split_temporal,
)
from longrec.errors import ConfigError, DataError

# --------------------------------------------------------------------------- real data
DATA_DIR = os.environ.get("LONGREC_DATA_DIR")


def _ml100k_dir() -> Path:
    if not DATA_DIR:
        pytest.skip("LONGREC_DATA_DIR is not set")
    d = Path(DATA_DIR) / "ml-100k"
    if not (d / "ml-100k.inter").exists():
        pytest.skip(f"{d / 'ml-100k.inter'} not found")
    return d


@pytest.fixture(scope="module")
def ml100k() -> pd.DataFrame:
    d = _ml100k_dir()
    df = pd.read_csv(d / "ml-100k.inter", sep="\t")
    df.columns = [c.split(":")[0] for c in df.columns]
    return df


def _assert_same(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    assert list(got.columns) == list(ref.columns)
    assert got.shape == ref.shape
    pd.testing.assert_frame_equal(got.reset_index(drop=True), ref.reset_index(drop=True), check_dtype=False)


@pytest.mark.realdata
@pytest.mark.parametrize("protocol", ["p1", "p2", "p3"])
def test_reproduces_shared_splits(ml100k, protocol):
    d = _ml100k_dir() / "splits" / protocol
    fn = {"p1": split_p1, "p2": split_p2, "p3": split_p3}[protocol]
    out = fn(ml100k)
    for part in ("train", "valid", "test"):
        _assert_same(out[part], pd.read_csv(d / f"{part}.csv"))
    if protocol == "p3":
        cold = pd.read_csv(d / "cold_items.csv")["item_id"].to_numpy()
        np.testing.assert_array_equal(out["cold_items"], cold)
        assert len(cold) == 202 and out["test"]["user_id"].nunique() == 938


@pytest.mark.realdata
def test_real_counts_and_provenance(ml100k):
    sizes = {k: len(v) for k, v in split_p1(ml100k).items()}
    assert sizes == {"train": 80808, "valid": 9596, "test": 9596}
    sizes = {k: len(v) for k, v in split_p2(ml100k).items()}
    assert sizes == {"train": 98114, "valid": 943, "test": 943}
    prov = split_provenance("ml-100k", "P1", 2026, ml100k)
    assert prov["protocol"] == "P1" and prov["seed"] == 2026 and prov["fingerprint"].startswith("sha256:")


# --------------------------------------------------------------------------- synthetic
def _toy(n_users=12, seed=0, min_n=1, max_n=25) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, n_users + 1):
        n = int(rng.integers(min_n, max_n + 1))
        items = rng.choice(200, size=n, replace=False) + 1
        ts = rng.integers(1000, 1010, size=n)  # many timestamp ties
        rows += [(u, int(i), float(rng.integers(1, 6)), int(t)) for i, t in zip(items, ts)]
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return df.sample(frac=1.0, random_state=1).reset_index(drop=True)  # input order must not matter


def _recbole_counts(tot, ratios):
    cnt = [int(ratios[i] * tot) for i in range(len(ratios))]
    cnt[0] = tot - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * tot < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


@pytest.mark.parametrize("ratios", [(0.8, 0.1, 0.1), (0.9, 0.1), (0.6, 0.2, 0.2), (0.7, 0.3)])
def test_split_counts_match_recbole_loop(ratios):
    n = np.arange(0, 60)
    got = split_counts(n, ratios)
    for tot in n:
        assert list(got[tot]) == _recbole_counts(int(tot), list(ratios)), tot


def test_move_rule_cases():
    # 3 rows, 80/10/10: int() gives [3,0,0]; test gets one (0<0.3<1), then valid (cnt0 = 2 > 1)
    assert list(split_counts(3, (0.8, 0.1, 0.1))) == [1, 1, 1]
    # 2 rows: test takes one, then cnt0 == 1 stops the loop
    assert list(split_counts(2, (0.8, 0.1, 0.1))) == [1, 0, 1]
    assert list(split_counts(1, (0.8, 0.1, 0.1))) == [1, 0, 0]
    # P3's [0.9, 0.1]: users with < 10 warm rows get one valid row when they have >= 2
    assert list(split_counts(5, (0.9, 0.1))) == [4, 1]
    assert list(split_counts(9, (0.9, 0.1))) == [8, 1]
    assert list(split_counts(10, (0.9, 0.1))) == [9, 1]
    assert list(split_counts(1, (0.9, 0.1))) == [1, 0]
    assert list(split_counts(20, (0.8, 0.1, 0.1))) == [16, 2, 2]


def _reference_per_user(df, ratios, seed, names):
    """The README's rule written as a plain loop over users."""
    d = df.sort_values(["user_id", "timestamp", "item_id"], kind="stable").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    labels = np.empty(len(d), dtype=int)
    for _, idx in sorted(d.groupby("user_id").indices.items()):
        perm = rng.permutation(len(idx))
        cnt = _recbole_counts(len(idx), list(ratios))
        bounds = np.cumsum(cnt)
        for p, row in enumerate(perm):
            labels[idx[row]] = int(np.searchsorted(bounds, p, side="right"))
    return {n: d[labels == j].reset_index(drop=True) for j, n in enumerate(names)}


@pytest.mark.parametrize("ratios", [(0.8, 0.1, 0.1), (0.9, 0.1)])
def test_per_user_random_matches_loop(ratios):
    df = _toy(30, seed=3)
    names = ("train", "valid", "test")[: len(ratios)]
    got = split_per_user_random(df, ratios, seed=7)
    ref = _reference_per_user(df, ratios, 7, names)
    assert set(got) == set(names)
    for n in names:
        pd.testing.assert_frame_equal(got[n], ref[n])


def _key(df):
    return set(map(tuple, df[["user_id", "item_id", "timestamp"]].to_numpy().tolist()))


def _check_partition(df, out, parts=("train", "valid", "test")):
    assert sum(len(out[p]) for p in parts) == len(df)
    keys = [_key(out[p]) for p in parts]
    for a in range(len(parts)):
        for b in range(a + 1, len(parts)):
            assert not keys[a] & keys[b]  # no leakage
    assert set().union(*keys) == _key(df)
    for p in parts:
        o = out[p]
        assert list(o.columns) == list(df.columns)
        assert o.index.equals(pd.RangeIndex(len(o)))
        s = o.sort_values(["user_id", "timestamp", "item_id"], kind="stable").reset_index(drop=True)
        pd.testing.assert_frame_equal(o, s)


def test_p1_counts_partition_determinism():
    df = _toy(15, seed=5, min_n=1, max_n=30)
    out = split_p1(df, seed=11)
    _check_partition(df, out)
    n = df.groupby("user_id").size()
    for p, j in (("train", 0), ("valid", 1), ("test", 2)):
        got = out[p].groupby("user_id").size().reindex(n.index, fill_value=0)
        exp = pd.Series([_recbole_counts(int(t), [0.8, 0.1, 0.1])[j] for t in n], index=n.index)
        pd.testing.assert_series_equal(got, exp, check_names=False)
    again = split_p1(df.sample(frac=1.0, random_state=9), seed=11)  # input order irrelevant
    for p in out:
        pd.testing.assert_frame_equal(out[p], again[p])
    other = split_p1(df, seed=12)
    assert not out["test"].equals(other["test"])


def test_p1_string_ids_sorted_as_strings():
    df = _toy(6, seed=2, min_n=5, max_n=12)
    df["user_id"] = "u" + df["user_id"].astype(str)
    out = split_p1(df, seed=1)
    _check_partition(df, out)
    assert not pd.api.types.is_integer_dtype(out["train"]["user_id"])
    ref = _reference_per_user(df, (0.8, 0.1, 0.1), 1, ("train", "valid", "test"))
    for p in out:
        pd.testing.assert_frame_equal(out[p], ref[p])


def test_p1_without_timestamp():
    df = _toy(5, seed=4).drop(columns="timestamp").drop_duplicates(["user_id", "item_id"])
    out = split_p1(df)
    assert sum(len(v) for v in out.values()) == len(df)
    assert list(out["train"].columns) == ["user_id", "item_id", "rating"]


def test_p2_leave_one_out():
    df = pd.DataFrame({
        "user_id": [1, 1, 1, 1, 2, 2, 3],
        "item_id": [5, 3, 4, 9, 7, 8, 1],
        "timestamp": [10, 30, 30, 20, 5, 5, 1],
    })
    out = split_p2(df)
    _check_partition(df, out)
    # user 1 by (timestamp, item): 5@10, 9@20, 3@30, 4@30 -> test 4, valid 3
    assert out["test"].query("user_id == 1")["item_id"].tolist() == [4]
    assert out["valid"].query("user_id == 1")["item_id"].tolist() == [3]
    assert out["train"].query("user_id == 1")["item_id"].tolist() == [5, 9]
    # user 2: tie at ts 5 -> item 8 last
    assert out["test"].query("user_id == 2")["item_id"].tolist() == [8]
    assert out["valid"].query("user_id == 2")["item_id"].tolist() == [7]
    # user 3: one row -> test only
    assert out["test"].query("user_id == 3")["item_id"].tolist() == [1]
    assert 3 not in set(out["valid"]["user_id"]) | set(out["train"]["user_id"])
    with pytest.raises(DataError):
        split_p2(df.drop(columns="timestamp"))


def test_p3_cold_items():
    df = _toy(40, seed=8, min_n=3, max_n=40)
    out = split_p3(df, seed=3, cold_fraction=0.2, min_ratings=4)
    _check_partition(df, out)
    cnt = df["item_id"].value_counts()
    eligible = np.sort(cnt.index[cnt >= 4].to_numpy())
    exp = np.sort(np.random.default_rng(3).choice(eligible, size=round(0.2 * len(eligible)), replace=False))
    np.testing.assert_array_equal(out["cold_items"], exp)
    assert set(out["test"]["item_id"]) <= set(exp)
    assert len(out["test"]) == int(df["item_id"].isin(exp).sum())
    for p in ("train", "valid"):
        assert not out[p]["item_id"].isin(exp).any()
    warm = df[~df["item_id"].isin(exp)]
    ref = _reference_per_user(warm, (0.9, 0.1), 3, ("train", "valid"))
    for p in ("train", "valid"):
        pd.testing.assert_frame_equal(out[p], ref[p])
    # the move rule fires: users with 2..9 warm rows get exactly one valid row
    n = warm.groupby("user_id").size()
    small = n[(n >= 2) & (n < 10)].index
    assert len(small) > 0
    assert (out["valid"].groupby("user_id").size().reindex(small) == 1).all()


def test_temporal_split():
    df = _toy(10, seed=6)
    out = split_temporal(df, (0.8, 0.1, 0.1))
    _check_partition(df, out)
    n = len(df)
    assert len(out["train"]) == int(np.floor(0.8 * n))
    assert len(out["train"]) + len(out["valid"]) == int(np.floor(0.9 * n))
    order = df.sort_values(["timestamp", "user_id", "item_id"], kind="stable")
    cut = int(np.floor(0.8 * n))
    assert _key(order.iloc[:cut]) == _key(out["train"])
    assert out["train"]["timestamp"].max() <= out["valid"]["timestamp"].min()
    assert out["valid"]["timestamp"].max() <= out["test"]["timestamp"].min()
    with pytest.raises(DataError):
        split_temporal(df.drop(columns="timestamp"))


def test_bad_ratios_and_columns():
    df = _toy(3)
    with pytest.raises(ConfigError):
        split_p1(df, ratios=(0.8, 0.1))
    with pytest.raises(ConfigError):
        split_per_user_random(df, (0.5, 0.4, 0.2))
    with pytest.raises(DataError):
        split_p1(df.rename(columns={"item_id": "movie"}))


def test_provenance():
    from longrec.data.dataset import Dataset

    df = _toy(4)
    fp = Dataset(df.copy()).fingerprint()
    assert split_provenance("toy", "P1", 2026, fp) == {
        "name": "toy", "protocol": "P1", "seed": 2026, "fingerprint": fp}
    assert split_provenance("toy", "P1", 2026, df)["fingerprint"] == fp
    assert split_provenance("toy", "P2", None, Dataset(df.copy()))["seed"] is None
    assert SplitInfo("a", "P2", None, fp).to_dict()["protocol"] == "P2"
