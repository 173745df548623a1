"""recommend() over many batches with an inference-time history table: the table is matched
against the user list once (rows grouped by batch) and the lists are exactly those of the
per-batch scan of the whole table (same rows, same order, same warnings)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from longrec.models.base import Recommender
from tests.conftest import make_synthetic


@pytest.fixture(scope="module")
def data():
    from longrec.data.dataset import Dataset

    inter, items = make_synthetic(n_users=90, n_items=40, per_user=8)
    last = inter.groupby("user_id").tail(3)
    train = Dataset(inter.drop(last.index).reset_index(drop=True), items)
    # the history: known users' last items, new users, an unknown item, rows in shuffled order
    extra = pd.concat([last[["user_id", "item_id", "timestamp"]],
                       pd.DataFrame({"user_id": [1000 + j for j in range(25)],
                                     "item_id": [1 + j % 40 for j in range(25)], "timestamp": 3_000_000}),
                       pd.DataFrame({"user_id": [5], "item_id": [999], "timestamp": 3_000_001})])
    return train, extra.sample(frac=1.0, random_state=0).reset_index(drop=True)


def scan_whole_table(monkeypatch):
    """The per-batch scan of the whole history table (recommend before the grouping)."""
    monkeypatch.setattr(Recommender, "_histories_by_batch", staticmethod(lambda ids, extra, bs: (lambda b: extra)))


@pytest.mark.parametrize("name,config", [("ease", {}), ("lm-seq", {"encoder": "hash", "epochs": 1, "dim": 16,
                                                                   "n_layers": 1, "n_heads": 1, "max_len": 6})])
def test_grouped_histories_give_the_per_batch_scan_rows(data, monkeypatch, name, config):
    from longrec.models.registry import get_model_class

    train, extra = data
    model = get_model_class(name)(config).fit(train)
    users = list(np.random.default_rng(1).permutation(list(range(1, 91)) + [1000 + j for j in range(25)])) + [7777]
    for bs in (7, 32, 1024):
        with warnings.catch_warnings(record=True) as new_w:
            warnings.simplefilter("always")
            new = model.recommend(users=users, histories=extra, k=6, batch_size=bs)
        with monkeypatch.context() as m:
            scan_whole_table(m)
            with warnings.catch_warnings(record=True) as old_w:
                warnings.simplefilter("always")
                old = model.recommend(users=users, histories=extra, k=6, batch_size=bs)
        pd.testing.assert_frame_equal(new, old)
        assert [str(w.message) for w in new_w] == [str(w.message) for w in old_w]
        assert any("unknown to the model" in str(w.message) for w in new_w)
        # the history counts: a new user's list is built from it, seen items are excluded
        u0 = extra["user_id"].iloc[0]
        assert not set(new[new["user_id"] == u0]["item_id"]) & set(extra[extra["user_id"] == u0]["item_id"])
        assert new["user_id"].nunique() == len(users)


def test_ids_with_one_text_form_keep_the_per_batch_scan(data, monkeypatch):
    from longrec.models.ease import EASE

    train, extra = data
    model = EASE().fit(train)
    mixed = extra.astype({"user_id": object})
    mixed.loc[mixed["user_id"] == 3, "user_id"] = "3"
    users = [3] + list(range(10, 40)) + ["3"]  # 3 and "3" in different batches: both take the rows of "3"
    new = model.recommend(users=users, histories=mixed, k=5, batch_size=8)
    with monkeypatch.context() as m:
        scan_whole_table(m)
        old = model.recommend(users=users, histories=mixed, k=5, batch_size=8)
    pd.testing.assert_frame_equal(new, old)


def test_lm_seq_length_buckets_give_the_max_len_states(monkeypatch):
    """lm-seq runs short histories padded to 16 or 32 positions, not max_len: each user's state,
    and so the lists, are bit for bit those of one max_len batch."""
    import longrec.models.lm_seq as lm_seq
    from longrec.data.dataset import Dataset
    from longrec.models.lm_seq import LMSeq

    inter, items = make_synthetic(n_users=40, n_items=120, per_user=55)
    model = LMSeq({"encoder": "hash", "epochs": 1, "dim": 64, "n_layers": 2, "n_heads": 2, "max_len": 50},
                  ).fit(Dataset(inter, items))
    rng = np.random.default_rng(0)
    hist = {f"new{n}": list(rng.choice(np.arange(1, 121), n, replace=False)) for n in range(1, 60)}
    users = list(hist) + [1, 2, 3]
    ids, uidx, batch = model.histories(users=users, histories=hist)
    assert set(batch.lengths()) >= {1, 16, 17, 32, 33, 50, 59}
    rows, h = model._last_hidden(batch)
    new = model.recommend(users=users, histories=hist, k=10, batch_size=16)
    monkeypatch.setattr(lm_seq, "LAST_HIDDEN_BUCKETS", ())  # every row at max_len, as before the buckets
    rows_full, h_full = model._last_hidden(batch)
    old = model.recommend(users=users, histories=hist, k=10, batch_size=16)
    np.testing.assert_array_equal(rows, rows_full)
    np.testing.assert_array_equal(h.numpy(), h_full.numpy())
    pd.testing.assert_frame_equal(new, old)


def test_int_vocabulary_lookup_of_object_ids():
    """recommend's user lists are object arrays: their ints are looked up as int64 keys (fast),
    with the same answers, and what is not an int stays unknown."""
    from longrec.data.vocab import IdMap

    m = IdMap(np.arange(1, 2001) * 3)
    tail = list(range(3, 400, 3))  # longer than 32 ids: the vectorised lookup
    ids = np.array([3, np.int64(6), 6000, 7, "9", " 12 "] + tail, dtype=object)
    np.testing.assert_array_equal(m.lookup(ids), [0, 1, 1999, -1, 2, 3] + list(range(len(tail))))
    odd = np.array([3, 2**70, True, "x", None] + tail, dtype=object)  # no int64 array: the object lookup
    np.testing.assert_array_equal(m.lookup(odd), [0, -1, -1, -1, -1] + list(range(len(tail))))
