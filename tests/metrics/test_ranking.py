"""Ranking metrics: the shared test vectors to 1e-9, plus behaviour on tiny cases."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from longrec.errors import ConfigError, DataError
from longrec.metrics import evaluate, per_user, top_k


def _shared_dir() -> Path:
    env = os.environ.get("LONGREC_SHARED_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared"


def _vectors():
    path = _shared_dir() / "metrics" / "test_vectors.json"
    if not path.exists():
        return []
    return json.loads(path.read_text())["cases"]


CASES = _vectors()


def _frames(case):
    recs = pd.DataFrame([(u, i, r + 1) for u, lst in case["ranked"].items() for r, i in enumerate(lst)],
                        columns=["user_id", "item_id", "rank"])
    truth = pd.DataFrame([(u, i) for u, lst in case["truth"].items() for i in lst],
                         columns=["user_id", "item_id"])
    return recs, truth


@pytest.mark.skipif(not CASES, reason="shared/metrics/test_vectors.json not found")
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_shared_vectors(case):
    recs, truth = _frames(case)
    got = evaluate(recs, truth, ks=case["ks"], catalog=case["catalog"])
    assert set(got) == set(case["expected"])
    for key, exp in case["expected"].items():
        assert got[key] == pytest.approx(exp, abs=1e-9, rel=0), key
    assert isinstance(got["n_users"], int)


@pytest.mark.skipif(not CASES, reason="shared/metrics/test_vectors.json not found")
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_shared_vectors_via_scores_and_str_ids(case):
    """Same figures from scores instead of ranks, string item ids in truth, shuffled rows."""
    recs, truth = _frames(case)
    recs["score"] = 100.0 - recs.pop("rank")
    recs = recs.sample(frac=1.0, random_state=0)
    truth["item_id"] = truth["item_id"].astype(str)
    got = evaluate(recs, truth, ks=case["ks"], catalog=[str(c) for c in case["catalog"]])
    for key, exp in case["expected"].items():
        assert got[key] == pytest.approx(exp, abs=1e-9, rel=0), key


@pytest.mark.skipif(not CASES, reason="shared/metrics/test_vectors.json not found")
@pytest.mark.parametrize("case", CASES[:4], ids=[c["name"] for c in CASES[:4]])
def test_per_user_means_equal_evaluate(case):
    recs, truth = _frames(case)
    for k in case["ks"]:
        pu = per_user(recs, truth, k)
        ev = evaluate(recs, truth, ks=[k], metrics=["Recall", "NDCG", "Hit", "MRR", "Precision"])
        assert len(pu) == ev["n_users"]
        for m in ("Recall", "NDCG", "Hit", "MRR", "Precision"):
            assert pu[f"{m}@{k}"].mean() == pytest.approx(ev[f"{m}@{k}"], abs=1e-12)


def test_hand_example():
    # user 1: list 5,3,9 ; relevant {3,7}. user 2: no recs ; relevant {5}. user 3 not in truth.
    recs = pd.DataFrame({"user_id": [1, 1, 1, 3], "item_id": [5, 3, 9, 7], "rank": [1, 2, 3, 1]})
    truth = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [3, 7, 5]})
    got = evaluate(recs, truth, ks=(2,), catalog=[3, 5, 7, 9])
    assert got["n_users"] == 2
    assert got["Hit@2"] == 0.5
    assert got["Recall@2"] == pytest.approx(0.25)
    assert got["Precision@2"] == pytest.approx(0.25)
    assert got["MRR@2"] == pytest.approx(0.25)
    ndcg_u1 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert got["NDCG@2"] == pytest.approx(ndcg_u1 / 2)
    assert got["ItemCoverage@2"] == pytest.approx(0.5)  # user 3's item 7 is not evaluated
    # exposures over catalogue [3,5,7,9] = [1,1,0,0] -> sorted 0,0,1,1 -> (1*1+3*1)/(4*2) = 0.5
    assert got["Gini@2"] == pytest.approx(0.5)
    pu = per_user(recs, truth, 2)
    assert pu["user_id"].tolist() == [1, 2]
    assert pu["n_relevant"].tolist() == [2, 1]
    assert pu["n_hits"].tolist() == [1, 0]


def test_score_ties_lower_item_first_and_duplicates():
    recs = pd.DataFrame({"user_id": [1, 1, 1, 1], "item_id": [9, 4, 7, 4], "score": [1.0, 1.0, 2.0, 0.5]})
    top = top_k(recs, 3)
    assert top["item_id"].tolist() == [7, 4, 9]
    assert top["pos"].tolist() == [1, 2, 3]
    truth = pd.DataFrame({"user_id": [1], "item_id": [4]})
    assert evaluate(recs, truth, ks=(1, 2))["MRR@2"] == 0.5
    assert evaluate(recs, truth, ks=(1,))["Hit@1"] == 0.0


def test_rank_gaps_and_k_cut():
    recs = pd.DataFrame({"user_id": ["a"] * 3, "item_id": ["x", "y", "z"], "rank": [10, 2, 5]})
    truth = pd.DataFrame({"user_id": ["a"], "item_id": ["x"]})
    got = evaluate(recs, truth, ks=(2, 3))
    assert got["Hit@2"] == 0.0 and got["MRR@3"] == pytest.approx(1 / 3)


def test_int_and_str_ids_match():
    recs = pd.DataFrame({"user_id": [1, 1], "item_id": [10, 20], "rank": [1, 2]})
    truth = pd.DataFrame({"user_id": ["1"], "item_id": ["20"]})
    assert evaluate(recs, truth, ks=(2,))["Hit@2"] == 1.0
    # non-canonical string ids fall back to string comparison on both sides
    truth2 = pd.DataFrame({"user_id": ["1"], "item_id": ["u20"]})
    assert evaluate(recs, truth2, ks=(2,))["Hit@2"] == 0.0


def test_default_catalog_and_metric_selection():
    recs = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [1, 2, 1], "rank": [1, 2, 1]})
    truth = pd.DataFrame({"user_id": [1, 2], "item_id": [3, 1]})
    got = evaluate(recs, truth, ks=(1,), metrics=["itemcoverage", "gini"])
    # default catalogue = {1, 2} from recs ∪ {3, 1} from truth = 3 items; top-1 lists hold {1}
    assert set(got) == {"ItemCoverage@1", "Gini@1", "n_users"}
    assert got["ItemCoverage@1"] == pytest.approx(1 / 3)
    # exposures sorted 0,0,2 -> (2*3 - 3 - 1) * 2 / (3 * 2) = 2/3
    assert got["Gini@1"] == pytest.approx(2 / 3)


def test_empty_and_errors():
    recs = pd.DataFrame({"user_id": [1], "item_id": [1], "rank": [1]})
    empty = pd.DataFrame({"user_id": pd.Series([], dtype="int64"), "item_id": pd.Series([], dtype="int64")})
    got = evaluate(recs, empty, ks=(5,))
    assert got["n_users"] == 0 and math.isnan(got["NDCG@5"])
    with pytest.raises(DataError):
        evaluate(recs.drop(columns="rank"), recs[["user_id", "item_id"]])
    with pytest.raises(ConfigError):
        evaluate(recs, recs, ks=(0,))
    with pytest.raises(ConfigError):
        evaluate(recs, recs, metrics=["AUC"])


def test_vectorised_scale():
    """943 users x top-20 (P1 scale): values consistent with per_user, no loop over users."""
    rng = np.random.default_rng(0)
    n_users, n_items, k = 943, 1682, 20
    users = np.repeat(np.arange(1, n_users + 1), k)
    items = np.concatenate([rng.choice(n_items, k, replace=False) + 1 for _ in range(n_users)])
    recs = pd.DataFrame({"user_id": users, "item_id": items, "rank": np.tile(np.arange(1, k + 1), n_users)})
    tu = rng.integers(1, n_users + 1, 9596)
    truth = pd.DataFrame({"user_id": tu, "item_id": rng.integers(1, n_items + 1, len(tu))})
    got = evaluate(recs, truth, ks=(10, 20), catalog=np.arange(1, n_items + 1))
    pu = per_user(recs, truth, 20)
    assert got["n_users"] == len(pu)
    assert got["Recall@20"] == pytest.approx(pu["Recall@20"].mean())
    assert 0 <= got["Gini@20"] <= 1
