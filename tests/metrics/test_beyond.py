"""Beyond-accuracy metrics on hand-computed tiny cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from longrec.metrics import calibration_kl, intra_list_diversity, novelty

RECS = pd.DataFrame({"user_id": [1, 1, 1, 2, 2], "item_id": [10, 11, 12, 10, 13], "rank": [1, 2, 3, 1, 2]})
GENRES = {10: {"a"}, 11: {"a", "b"}, 12: {"b"}, 13: set()}


def test_novelty_hand():
    # n_users = 4; pops 10:4, 11:2, 12:1, 13 missing -> 1
    # user 1: (0 + 1 + 2) / 3 = 1; user 2: (0 + 2) / 2 = 1
    assert novelty(RECS, {10: 4, 11: 2, 12: 1}, n_users=4, k=3) == pytest.approx(1.0)
    # k = 1: both users' top item is 10 -> 0 bits
    assert novelty(RECS, {10: 4, 11: 2, 12: 1}, n_users=4, k=1) == pytest.approx(0.0)
    pop = pd.DataFrame({"item_id": ["10", "11", "12", "13"], "count": [4, 2, 1, 1]})
    assert novelty(RECS, pop, n_users=8, k=3) == pytest.approx(
        ((1 + 2 + 3) / 3 + (1 + 3) / 2) / 2)


def test_ild_jaccard_hand():
    # user 1: d(10,11) = 1 - 1/2, d(10,12) = 1, d(11,12) = 1/2 -> 2/3; user 2: d(10,13) = 1
    assert intra_list_diversity(RECS, GENRES, k=3) == pytest.approx((2 / 3 + 1) / 2)
    # lists of genre names and a Series work too
    as_lists = pd.Series({i: sorted(g) for i, g in GENRES.items()})
    assert intra_list_diversity(RECS, as_lists, k=3) == pytest.approx((2 / 3 + 1) / 2)
    # k = 1: no pairs anywhere
    assert math.isnan(intra_list_diversity(RECS, GENRES, k=1))


def test_ild_cosine_hand():
    vecs = {10: [1.0, 0.0], 11: [1.0, 1.0], 12: [0.0, 1.0], 13: [0.0, 0.0]}
    d = 1 - 1 / math.sqrt(2)
    u1 = (d + 1 + d) / 3
    assert intra_list_diversity(RECS, vecs, k=3) == pytest.approx((u1 + 1.0) / 2)
    df = pd.DataFrame({"item_id": [10, 11, 12, 13], "x": [1.0, 1, 0, 0], "y": [0.0, 1, 1, 0]})
    assert intra_list_diversity(RECS, df, k=3) == pytest.approx((u1 + 1.0) / 2)
    # items without a vector are dropped: user 2 then has one item and is skipped
    assert intra_list_diversity(RECS, {k: v for k, v in vecs.items() if k != 13}, k=3) == pytest.approx(u1)


def test_ild_batches_agree():
    import longrec.metrics.beyond as beyond

    rng = np.random.default_rng(0)
    recs = pd.DataFrame({"user_id": np.repeat(np.arange(50), 5), "item_id": rng.integers(0, 30, 250),
                         "rank": np.tile(np.arange(1, 6), 50)})
    vecs = {i: rng.normal(size=4) for i in range(30)}
    full = intra_list_diversity(recs, vecs, k=5)
    old = beyond._BATCH
    try:
        beyond._BATCH = 7
        assert intra_list_diversity(recs, vecs, k=5) == pytest.approx(full, abs=1e-12)
    finally:
        beyond._BATCH = old


def test_calibration_hand():
    history = pd.DataFrame({"user_id": [1, 2, 2], "item_id": [10, 11, 11]})  # duplicate counted once
    alpha = 0.01
    # user 1: p = {a: 1}; q = {a: 1.5/3, b: 1.5/3}; q~(a) = 0.99 * 0.5 + 0.01 = 0.505
    u1 = math.log(1 / 0.505)
    # user 2: p = {a: .5, b: .5}; list 10 {a}, 13 {} -> q = {a: 1}; q~ = {a: .995, b: .005}
    u2 = 0.5 * math.log(0.5 / 0.995) + 0.5 * math.log(0.5 / 0.005)
    assert calibration_kl(RECS, history, GENRES, k=3, alpha=alpha) == pytest.approx((u1 + u2) / 2)
    # a list matching the history exactly is perfectly calibrated
    recs = pd.DataFrame({"user_id": [1], "item_id": [10], "rank": [1]})
    assert calibration_kl(recs, history, GENRES, k=1) == pytest.approx(0.0, abs=1e-12)
    # users without history genres are skipped
    h2 = pd.DataFrame({"user_id": [1, 2], "item_id": [10, 13]})
    assert calibration_kl(RECS, h2, GENRES, k=3) == pytest.approx(u1)
    with pytest.raises(Exception):
        calibration_kl(RECS, history, GENRES, k=3, alpha=0.0)
