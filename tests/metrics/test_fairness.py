"""Fairness metrics on hand-computed tiny cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from longrec.metrics.fairness import (
    aplt,
    exposure_gini,
    exposure_merit,
    fairness_report,
    group_metrics,
    largest_gaps,
    popularity_calibration,
    user_groups,
)

# 4 users; user 1, 2 are F, 3, 4 are M. Truth: each user has item 1 relevant.
RECS = pd.DataFrame({"user_id": [1, 1, 2, 2, 3, 3, 4, 4], "item_id": [1, 2, 1, 3, 2, 3, 2, 1],
                     "rank": [1, 2, 1, 2, 1, 2, 1, 2]})
TRUTH = pd.DataFrame({"user_id": [1, 2, 3, 4], "item_id": [1, 1, 1, 1]})
USERS = pd.DataFrame({"user_id": [1, 2, 3, 4], "gender": ["F", "F", "M", "M"], "age": ["17", "24", "30", "60"],
                      "occupation": ["a", "b", "a", "b"]})
# training: item 1 seen by 4 users, 2 by 2, items 3..8 by 1 -> head (top ceil(20% of 8) items) = {1, 2}
TRAIN = pd.DataFrame({"user_id": [1, 2, 3, 4, 1, 2, 3, 4, 1, 1, 1, 1],
                      "item_id": [1, 1, 1, 1, 2, 2, 3, 4, 5, 6, 7, 8]})


def test_user_groups_buckets_and_activity():
    g = user_groups(USERS, TRAIN).set_index("user_id")
    assert list(g.loc[[1, 2, 3, 4], "age"]) == ["<18", "18-24", "25-34", "56+"]
    assert list(g.loc[[1, 2, 3, 4], "gender"]) == ["F", "F", "M", "M"]
    # activity: user 1 has 6 items, others 2 -> user 1 is "high", the first tertile is "low"
    assert g.loc[1, "activity"] == "high"
    assert set(g["activity"]) == {"low", "mid", "high"}
    # str ids in the user table still join int ids in training
    g2 = user_groups(USERS.assign(user_id=USERS["user_id"].astype(str)), TRAIN)
    assert g2["activity"].notna().all() and g2["gender"].notna().all()


def test_group_metrics_hand_and_ci():
    g = user_groups(USERS, TRAIN)
    t = group_metrics(RECS, TRUTH, g, k=2, metrics=("Hit", "NDCG"), n_boot=200, seed=1)
    row = t[(t.attribute == "gender") & (t.group == "F") & (t.metric == "Hit")].iloc[0]
    assert row["mean"] == 1.0 and row["n_users"] == 2 and row["ci_low"] == 1.0 and row["ci_high"] == 1.0
    # M: user 3 misses, user 4 hits at rank 2 -> NDCG = (0 + 1/log2(3)) / 2
    row = t[(t.attribute == "gender") & (t.group == "M") & (t.metric == "NDCG")].iloc[0]
    assert row["mean"] == pytest.approx(0.5 / math.log2(3))
    assert row["ci_low"] == pytest.approx(0.0) and row["ci_high"] == pytest.approx(1 / math.log2(3))
    overall = t[(t.attribute == "all") & (t.metric == "Hit")].iloc[0]
    assert overall["mean"] == 0.75 and overall["n_users"] == 4
    gaps = largest_gaps(t, min_group_size=1).set_index(["attribute", "metric"])
    assert gaps.loc[("gender", "Hit"), "relative_gap"] == pytest.approx(0.5)
    assert gaps.loc[("gender", "Hit"), "worst_group"] == "M"
    # groups below min_group_size are left out of the gaps
    assert largest_gaps(t, min_group_size=3).empty


def test_bootstrap_ci_covers_mean_on_noise():
    rng = np.random.default_rng(0)
    n = 400
    recs = pd.DataFrame({"user_id": np.arange(n), "item_id": rng.integers(0, 2, n), "rank": 1})
    truth = pd.DataFrame({"user_id": np.arange(n), "item_id": 0})
    g = pd.DataFrame({"user_id": np.arange(n), "x": "a"})
    t = group_metrics(recs, truth, g, k=1, metrics=("Hit",), n_boot=500)
    r = t[t.attribute == "x"].iloc[0]
    assert r["ci_low"] < r["mean"] < r["ci_high"]
    # the CI half-width is about 1.96 * sqrt(p(1-p)/n)
    assert (r["ci_high"] - r["ci_low"]) / 2 == pytest.approx(1.96 * math.sqrt(0.25 / n), rel=0.25)


def test_exposure_gini_hand():
    # exposure at k=2 over items {1,2,3}: item1: 3, item2: 3, item3: 2
    x = np.sort([3.0, 3.0, 2.0])
    n = 3
    expect = sum((2 * (j + 1) - n - 1) * v for j, v in enumerate(x)) / (n * x.sum())
    assert exposure_gini(RECS, k=2) == pytest.approx(expect)
    # a catalogue with a never-shown item raises the Gini
    assert exposure_gini(RECS, k=2, catalog=[1, 2, 3, 4]) > expect
    # everyone gets the same single item -> maximal inequality (n-1)/n
    same = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 1], "rank": [1, 1]})
    assert exposure_gini(same, k=1, catalog=[1, 2, 3, 4]) == pytest.approx(0.75)


def test_aplt_hand():
    # head = {1, 2}; lists at k=2: u1 {1,2} -> 0, u2 {1,3} -> 0.5, u3 {2,3} -> 0.5, u4 {2,1} -> 0
    assert aplt(RECS, TRAIN, k=2) == pytest.approx((0 + 0.5 + 0.5 + 0) / 4)
    assert aplt(RECS, TRAIN, k=1) == pytest.approx(0.0)
    # a wider head share (top 50% = 4 items: 1, 2, 3, 4) leaves nothing of these lists in the tail
    assert aplt(RECS, TRAIN, k=2, head_share=0.5) == pytest.approx(0.0)


def test_exposure_merit_hand():
    r = exposure_merit(RECS, TRUTH, TRAIN, k=2)
    w2 = 1 / math.log2(3)
    e_head = 4 * 1 + 2 * w2      # items 1 and 2: pos 1 four times, pos 2 twice
    e_all = 4 * 1 + 4 * w2
    assert r["exposure_head_share"] == pytest.approx(e_head / e_all)
    e_item1 = 2 * 1 + w2
    assert r["merit_head_share"] == 1.0        # all merit on item 1 (head) -> tail merit 0 -> dtr = inf
    assert r["dtr"] == float("inf")
    # tv: merit all on item 1, exposure share of item 1 = e_head/e_all
    assert r["tv"] == pytest.approx(1 - e_item1 / e_all)


def test_popularity_calibration_zero_when_same_mix():
    # history of user 1 is all head; a list of head items only is perfectly calibrated
    train = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [1, 2, 1, 2, 3]})
    recs = pd.DataFrame({"user_id": [1, 1], "item_id": [1, 2], "rank": [1, 2]})
    assert popularity_calibration(recs, train, k=2) == pytest.approx(0.0)
    # a tail-only list for a head-only user is maximally miscalibrated (JS = 1 bit)
    recs2 = pd.DataFrame({"user_id": [1], "item_id": [3], "rank": [1]})
    assert popularity_calibration(recs2, train, k=1) == pytest.approx(1.0)


def test_fairness_report_is_json_and_complete():
    rep = fairness_report(RECS, TRUTH, USERS, TRAIN, 2, n_boot=50, min_group_size=1)
    json.dumps(rep)  # JSON-ready (inf became null)
    assert set(rep["user_groups"]) == {"all", "gender", "age", "occupation", "activity"}
    assert rep["user_groups"]["gender"]["F"]["Hit@2"]["mean"] == 1.0
    assert "gender/Hit@2" in rep["largest_gaps"]
    assert set(rep["items"]) >= {"exposure_gini", "aplt", "exposure_vs_merit", "popularity_calibration_js"}
    assert rep["items"]["exposure_vs_merit"]["dtr"] is None
    # without a user table: activity groups only
    rep2 = fairness_report(RECS, TRUTH, None, TRAIN, 2, n_boot=20)
    assert set(rep2["user_groups"]) == {"all", "activity"}


def test_fairness_report_files(tmp_path, synthetic):
    from longrec.pipeline import fairness_report_files
    from longrec.models.ease import EASE
    from longrec.pipeline import recommend_to_file

    train, valid = synthetic
    m = EASE(l2=10.0, tune_l2=False).fit(train)
    m.save(tmp_path / "m")
    recommend_to_file(tmp_path / "m", k=5, output=tmp_path / "recs.csv")
    valid.interactions.to_csv(tmp_path / "truth.csv", index=False)
    users = pd.DataFrame({"user_id": range(1, 31), "gender": ["F", "M"] * 15})
    users.to_csv(tmp_path / "users.csv", index=False)
    train.interactions.to_csv(tmp_path / "train.csv", index=False)
    rep = fairness_report_files(tmp_path / "recs.csv", tmp_path / "truth.csv", tmp_path / "users.csv",
                                k=5, n_boot=50, min_group_size=5)
    # training data recovered from the model directory named in recs.csv.meta.json
    assert set(rep["user_groups"]) == {"all", "gender", "activity"}
    assert "aplt" in rep["items"]
    explicit = fairness_report_files(tmp_path / "recs.csv", tmp_path / "truth.csv", tmp_path / "users.csv",
                                     train=tmp_path / "train.csv", k=5, n_boot=50, min_group_size=5)
    assert explicit == rep
