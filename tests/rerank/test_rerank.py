"""Re-rankers on tiny hand-checkable cases, plus one end-to-end run on a fitted model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from longrec.errors import ConfigError
from longrec.rerank import RerankContext, apply_rerank, parse_rerank, recommend_reranked, rerank, rerank_arrays

# 6 items: 0-2 genre A, 3-5 genre B; popularity decreasing with the index (0, 1 are head at 20%... of 6 -> 2 items)
GENRES = {10: ["A"], 11: ["A"], 12: ["A"], 13: ["B"], 14: ["B"], 15: ["B"]}
POP = np.array([50.0, 40.0, 30.0, 3.0, 2.0, 1.0])


def ctx() -> RerankContext:
    c = RerankContext(item_ids=np.array([10, 11, 12, 13, 14, 15]), popularity=POP.copy())
    c.set_genres(pd.Series(GENRES))
    return c


def cands(scores=(1.0, 0.9, 0.8, 0.7, 0.6, 0.5), user=1) -> pd.DataFrame:
    return pd.DataFrame({"user_id": user, "item_id": [10, 11, 12, 13, 14, 15], "score": list(scores)})


def test_parse_specs():
    s = parse_rerank("MMR:0.3")
    assert (s.name, s.lam, s.options) == ("mmr", 0.3, {})
    s = parse_rerank("fair:0.5, alpha=0.05")
    assert s.options == {"alpha": 0.05} and str(s) == "fair:0.5,alpha=0.05"
    for bad in ("mmr", "nope:0.3", "mmr:1.5", "mmr:x", "mmr:0.3,alpha=0.1", "fair:0.3,alpha=2", "fair:0.3,alpha"):
        with pytest.raises(ConfigError):
            parse_rerank(bad)


@pytest.mark.parametrize("name", ["mmr", "calibrated", "exposure", "longtail", "fair"])
def test_lambda_zero_keeps_order(name):
    hist = pd.DataFrame({"user_id": [1, 1], "item_id": [10, 13]})
    out = rerank(cands(), f"{name}:0", k=4, context=ctx(), profiles=hist)
    assert list(out["item_id"]) == [10, 11, 12, 13]
    assert list(out["rank"]) == [1, 2, 3, 4]
    assert list(out["score"]) == [1.0, 0.9, 0.8, 0.7]


def test_mmr_diversifies():
    # with a strong diversity weight, after item 10 (A) the best B item comes next
    out = rerank(cands(), "mmr:0.5", k=2, context=ctx())
    assert list(out["item_id"]) == [10, 13]
    # the set is shown in the model's order unless resort=0
    out = rerank(cands(scores=(0.5, 0.6, 0.7, 0.8, 0.9, 1.0)), "mmr:0.5", k=3, context=ctx())
    assert list(out["item_id"]) == [15, 14, 12]
    out = rerank(cands(scores=(0.5, 0.6, 0.7, 0.8, 0.9, 1.0)), "mmr:0.5,resort=0", k=3, context=ctx())
    assert list(out["item_id"]) == [15, 12, 14]
    # hand check of the objective at step 2: 11 -> 0.5*0.8 - 0.5*1 = -0.1; 13 -> 0.5*0.4 - 0 = 0.2
    out = rerank(cands(), "mmr:0.1", k=2, context=ctx())
    assert list(out["item_id"]) == [10, 11]   # 0.9*0.8 - 0.1 = 0.62 > 0.9*0.4 = 0.36


def test_calibrated_matches_history_mix():
    # history half A, half B -> a calibrated list of 4 holds 2 A and 2 B
    hist = pd.DataFrame({"user_id": [1, 1, 1, 1], "item_id": [10, 11, 13, 14]})
    out = rerank(cands(), "calibrated:0.9", k=4, context=ctx(), profiles=hist)
    g = [GENRES[i][0] for i in out["item_id"]]
    assert g.count("A") == 2 and g.count("B") == 2
    from longrec.metrics import calibration_kl

    base = rerank(cands(), "calibrated:0", k=4, context=ctx(), profiles=hist)
    kl = lambda r: calibration_kl(r, hist, GENRES, k=4)
    assert kl(out) < kl(base)


def test_exposure_and_tail_constraints():
    out = rerank(cands(), "exposure:0.9", k=2, context=ctx())
    assert set(out["item_id"]) <= {13, 14, 15}          # least popular first when λ is high
    # longtail:0.5 -> every prefix t holds >= floor(t/2) tail items; head = items 10, 11 (top 20% of 6 -> 2)
    out = rerank(cands(), "longtail:0.5", k=4, context=ctx())
    assert list(out["item_id"]) == [10, 12, 11, 13]      # 12 is tail (3rd most popular, outside the top 2)
    # fair: m(t) = binom.ppf(alpha, t, p); p = 0.9, alpha = 0.1 -> m(1) = 0: 10 first, then tail items
    from scipy.stats import binom

    need = binom.ppf(0.1, np.arange(1, 5), 0.9)
    out = rerank(cands(), "fair:0.9", k=4, context=ctx())
    tail = ~out["item_id"].isin([10, 11]).to_numpy()
    assert (np.cumsum(tail) >= need).all()
    assert list(out["item_id"])[0] == 10


def test_vectorised_over_users_and_matrix_input():
    c = ctx()
    df = pd.concat([cands(user="a"), cands(scores=(0.5, 0.6, 0.7, 0.8, 0.9, 1.0), user="b")], ignore_index=True)
    out = rerank(df, "mmr:0.5", k=2, context=c)
    assert list(out[out.user_id == "a"]["item_id"]) == [10, 13]
    assert list(out[out.user_id == "b"]["item_id"]) == [15, 12]
    # the score-matrix form gives the same lists in item indices
    S = np.array([[1.0, 0.9, 0.8, 0.7, 0.6, 0.5], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]])
    S[1, 0] = -np.inf                                   # excluded item never comes back
    idx = rerank(S, "mmr:0.5", k=2, context=c, n_candidates=6)
    assert idx.tolist() == [[0, 3], [5, 2]]
    full = rerank(S, "exposure:0", k=6, context=c)
    assert 0 not in full[1] and full[1, -1] == -1


def test_short_candidate_lists_and_unknown_items():
    c = ctx()
    df = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 99, 13], "score": [1.0, 0.5, 0.3]})
    with pytest.warns(UserWarning, match="unknown"):
        out = rerank(df, "mmr:0.3", k=3, context=c)
    assert out.groupby("user_id").size().to_dict() == {1: 1, 2: 1}


def test_rerank_arrays_shapes():
    cand = np.array([[0, 3, -1]])
    rel = np.array([[1.0, 0.5, -np.inf]])
    sel = rerank_arrays(cand, rel, "longtail:1", 3, ctx())
    assert sel.tolist() == [[1, 0, -1]]                   # tail item forced first, then the head one


def test_with_fitted_model(synthetic):
    from longrec.models.ease import EASE

    train, _ = synthetic
    train.items = train.items.rename(columns={"genre": "genres"})
    m = EASE(l2=10.0, tune_l2=False).fit(train)
    base = m.recommend(users=[1, 2, 3], k=5)
    for spec in ("mmr:0.3", "calibrated:0.5", "exposure:0.5", "longtail:0.5", "fair:0.5"):
        out = recommend_reranked(m, users=[1, 2, 3], k=5, spec=spec, n_candidates=20)
        assert out.groupby("user_id").size().tolist() == [5, 5, 5]
        seen = set(map(tuple, train.interactions[["user_id", "item_id"]].to_numpy()))
        assert not any((u, i) in seen for u, i in out[["user_id", "item_id"]].to_numpy())
    same = recommend_reranked(m, users=[1, 2, 3], k=5, spec="mmr:0", n_candidates=20)
    assert same[["user_id", "item_id"]].equals(base[["user_id", "item_id"]])
    # history-only users work for calibrated (their profile comes from the given history)
    cands_ = m.recommend(histories={"new": [2, 4, 6]}, k=20)
    out = apply_rerank(m, cands_, "calibrated:0.5", k=5, histories={"new": [2, 4, 6]})
    assert len(out) == 5


def test_cooccurrence_features_without_genres(synthetic):
    from longrec.models.itemknn import ItemKNN

    train, _ = synthetic
    train.items = None
    m = ItemKNN(k=10).fit(train)
    out = recommend_reranked(m, users=[1, 2], k=5, spec="mmr:0.5", n_candidates=20)
    assert len(out) == 10
    with pytest.raises(ConfigError, match="genre"):
        recommend_reranked(m, users=[1], k=5, spec="calibrated:0.5", n_candidates=20)


def test_context_from_tables_without_a_model():
    train = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": ["a", "b", "a", "c", "a"]})
    items = pd.DataFrame({"item_id": ["a", "b", "c", "d"], "genre": ["X", "Y", "X|Y", "Y"]})
    c = RerankContext.from_tables(train, items)
    # the item table's items are part of the catalogue (never-seen "d" has popularity 0)
    assert list(c.item_ids) == ["a", "b", "c", "d"] and c.popularity.tolist() == [3.0, 1.0, 1.0, 0.0]
    assert c.genre_names == ["X", "Y"]
    np.testing.assert_allclose(c.genres.toarray(), [[1, 0], [0, 1], [0.5, 0.5], [0, 1]])
    cand = pd.DataFrame({"user_id": 9, "item_id": ["a", "b", "c"], "score": [3.0, 2.0, 1.0]})
    out = rerank(cand, "exposure:0.9", k=2, context=c)
    assert list(out["item_id"]) == ["b", "c"]        # the popular item gives way; shown in model order
