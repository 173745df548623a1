"""Repeat-consumption models (top-frequency, tifu-knn): hand-computed tiny examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from longrec.data.dataset import Dataset
from longrec.models import get_model_class
from longrec.models._baskets import basket_rows


def orders() -> pd.DataFrame:
    """User 1: order 1 {A, B}, order 2 {A, C}, order 3 {B, D}. User 2: order 1 {E, A}, order 2 {E}.
    Rows are the order log (repeat rows kept); timestamp = order number."""
    rows = [(1, "A", 1), (1, "B", 1), (1, "A", 2), (1, "C", 2), (1, "B", 3), (1, "D", 3),
            (2, "E", 1), (2, "A", 1), (2, "E", 2)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def items_of(recs: pd.DataFrame, user) -> list:
    return list(recs.loc[recs["user_id"] == user].sort_values("rank")["item_id"])


def test_baskets_from_timestamp_and_from_a_basket_column():
    ds = Dataset(orders())
    vocab = ds.vocabulary()
    u, i, b = basket_rows(ds, vocab)
    got = sorted(zip(vocab.users.ids[u], vocab.items.ids[i], b))
    assert got == sorted([(1, "A", 0), (1, "B", 0), (1, "A", 1), (1, "C", 1), (1, "B", 2), (1, "D", 2),
                          (2, "E", 0), (2, "A", 0), (2, "E", 1)])
    # an explicit basket column wins over the timestamp: user 1's orders 2 and 3 as one basket
    df = orders().assign(basket=[10, 10, 11, 11, 11, 11, 20, 20, 21])
    u, i, b = basket_rows(Dataset(df), vocab)
    assert sorted(zip(vocab.users.ids[u], vocab.items.ids[i], b))[:6] == sorted(
        [(1, "A", 0), (1, "B", 0), (1, "A", 1), (1, "C", 1), (1, "B", 1), (1, "D", 1)])


def test_top_frequency_hand_computed():
    m = get_model_class("top-frequency")().fit(Dataset(orders()))
    recs = m.recommend(users=[1, 2], k=5, exclude_seen=False)
    # user 1: A and B twice (B last in order 3, A in order 2), C and D once (D later), then E (popular)
    assert items_of(recs, 1) == ["B", "A", "D", "C", "E"]
    # user 2: E twice, A once; then by global rows: B (2 rows) before C and D (1 row each, lower id first)
    assert items_of(recs, 2) == ["E", "A", "B", "C", "D"]
    # with the default exclusion only the unseen items remain, by popularity
    assert items_of(m.recommend(users=[2], k=5), 2) == ["B", "C", "D"]


def test_top_frequency_counts_repeats_only_when_kept():
    from longrec.data.readers import read_interactions
    from longrec.data.validate import DataWarning

    kept = read_interactions(orders(), duplicates="keep-all")
    with pytest.warns(DataWarning, match="removed 3 rows"):
        deduped = read_interactions(orders())
    a = get_model_class("top-frequency")().fit(Dataset(kept)).recommend(users=[1], k=2, exclude_seen=False)
    b = get_model_class("top-frequency")().fit(Dataset(deduped)).recommend(users=[1], k=2, exclude_seen=False)
    assert items_of(a, 1) == ["B", "A"]
    assert items_of(b, 1) != items_of(a, 1)  # every item once: recency alone decides


def test_top_frequency_history_only_user_and_extra_history():
    m = get_model_class("top-frequency")().fit(Dataset(orders()))
    recs = m.recommend(histories={"new": ["C", "D"]}, k=3, exclude_seen=False)
    assert items_of(recs, "new") == ["D", "C", "A"]  # later in the history = more recent
    recs = m.recommend(users=[2], histories={2: ["D"]}, k=4, exclude_seen=False)
    assert items_of(recs, 2) == ["E", "D", "A", "B"]  # D once but newest, ahead of A (once, older)


def tifu(**cfg):
    return get_model_class("tifu-knn")(cfg).fit(Dataset(orders()))


def test_tifu_user_vector_paper_grouping():
    # user 1, m = 2: groups {o1}, {o2, o3}; r = 0.5 for both decays
    # g0 = A + B;  g1 = (0.5 (A + C) + (B + D)) / 2;  u = (0.5 g0 + g1) / 2
    m = tifu(n_groups=0, group_size=2, within_decay_scope="group", within_decay=0.5, group_decay=0.5, alpha=1.0)
    s = m.score(users=[1]).loc[1]
    expect = {"A": (0.5 + 0.25) / 2, "B": (0.5 + 0.5) / 2, "C": 0.25 / 2, "D": 0.5 / 2, "E": 0.0}
    for item, v in expect.items():
        assert s[item] == pytest.approx(v, abs=1e-6)


def test_tifu_user_vector_code_grouping():
    # n_groups = 2 over 3 orders: {o1}, {o2, o3}; decay by age in the whole history
    # g0 = 0.25 (A + B);  g1 = (0.5 (A + C) + (B + D)) / 2;  u = (0.5 g0 + g1) / 2
    m = tifu(n_groups=2, within_decay_scope="history", within_decay=0.5, group_decay=0.5, alpha=1.0)
    s = m.score(users=[1]).loc[1]
    g0, g1 = {"A": .25, "B": .25}, {"A": .25, "B": .5, "C": .25, "D": .5}
    for item in "ABCDE":
        assert s[item] == pytest.approx((0.5 * g0.get(item, 0) + g1.get(item, 0)) / 2, abs=1e-6)


def test_tifu_neighbours_only():
    # alpha 0, k 1: user 2's score is its only neighbour's (user 1's) vector
    m = tifu(n_groups=2, within_decay=0.5, group_decay=0.5, alpha=0.0, k=1)
    own1 = tifu(n_groups=2, within_decay=0.5, group_decay=0.5, alpha=1.0).score(users=[1]).loc[1]
    np.testing.assert_allclose(m.score(users=[2]).loc[2].to_numpy(), own1.to_numpy(), atol=1e-6)


def test_tifu_ranks_repeats_first_and_new_history_counts():
    m = tifu(alpha=0.9, k=1)
    assert items_of(m.recommend(users=[2], k=2, exclude_seen=False), 2) == ["E", "A"]
    # a history-only user: the history is one basket
    recs = m.recommend(histories={"new": ["C"]}, k=1, exclude_seen=False)
    assert items_of(recs, "new") == ["C"]


def test_tifu_save_load_keeps_baskets(tmp_path):
    m = tifu(n_groups=0, group_size=2)
    m.save(tmp_path / "m")
    again = get_model_class("tifu-knn").load(tmp_path / "m")
    pd.testing.assert_frame_equal(m.score(users=[1, 2]), again.score(users=[1, 2]))


@pytest.mark.realdata
def test_instacart_top_frequency_reproduces_the_reference(real_data_dir):
    from longrec.metrics.ranking import evaluate

    df = pd.read_csv(real_data_dir / "instacart-sample" / "orders.csv.gz",
                     usecols=["user_id", "order_number", "product_id"])
    df = df[df["user_id"] != 1246].rename(columns={"product_id": "item_id", "order_number": "timestamp"})
    last = df.groupby("user_id")["timestamp"].transform("max")
    test = df[df["timestamp"] == last]
    train = df[df["timestamp"] < last]
    prev = train.groupby("user_id")["timestamp"].transform("max")
    cands = train.loc[train["timestamp"] < prev, "item_id"].unique()  # products seen in train proper
    m = get_model_class("top-frequency")().fit(Dataset(train.reset_index(drop=True)))
    recs = m.recommend(users=test["user_id"].unique(), k=10, exclude_seen=False, candidates=cands)
    ndcg = evaluate(recs, test[["user_id", "item_id"]].drop_duplicates(), ks=(10,), metrics=["NDCG"])["NDCG@10"]
    assert ndcg == pytest.approx(0.4448, abs=0.01)
