from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from longrec.errors import ConfigError
from longrec.models import Recommender
from longrec.privacy.linear import DPLinear, gaussian_sigma, profiles, sufficient_statistics

FAST = {"encoder": "hash", "dim": 16, "l2": 1.0, "clip": 5.0}


def test_gaussian_sigma_is_the_analytic_gaussian_mechanism():
    from scipy.stats import norm

    # Balle & Wang (2018): epsilon 1, delta 1e-5 needs sigma ~ 3.73 (the classic bound says 4.84)
    assert gaussian_sigma(1.0, 1e-5) == pytest.approx(3.7306, abs=2e-3)
    for eps, delta in [(1.0, 1e-3), (3.0, 1 / 943), (8.0, 1 / 6040)]:
        s = gaussian_sigma(eps, delta)
        d = norm.cdf(0.5 / s - eps * s) - math.exp(eps) * norm.cdf(-0.5 / s - eps * s)
        assert 0.99 * delta < d <= delta * (1 + 1e-9)  # the smallest sigma that meets delta
    assert gaussian_sigma(8.0, 1e-3) < gaussian_sigma(3.0, 1e-3) < gaussian_sigma(1.0, 1e-3)


def test_one_user_moves_the_statistics_by_at_most_the_sensitivity():
    rng = np.random.default_rng(0)
    T = rng.normal(size=(30, 6))
    T /= np.linalg.norm(T, axis=1, keepdims=True)
    T[:10] = T[0]  # many identical items: an unclipped profile would grow like sqrt(|H|)
    X = sp.csr_matrix((rng.random((20, 30)) < 0.3).astype(float))
    for clip, iw in ((0.5, 0.0), (1.0, 0.0), (3.0, 0.0), (1.0, 4.0), (3.0, 1.0)):
        S1, S2 = sufficient_statistics(X, T, clip, bias=0.5, item_weight=iw)
        for u in range(20):
            keep = np.r_[0:u, u + 1:20]
            R1, R2 = sufficient_statistics(X[keep], T, clip, bias=0.5, item_weight=iw)
            moved = math.sqrt(np.sum((S1 - R1) ** 2) + np.sum((S2 - R2) ** 2))
            assert moved <= math.sqrt(clip ** 4 + clip ** 2) + 1e-9
    assert (np.linalg.norm(profiles(X, T, 1.0, 0.5), axis=1) <= 1.0 + 1e-9).all()


def test_nonprivate_learns_and_round_trips(split3, tmp_path):
    tr, va = split3["train"], split3["valid"]
    m = DPLinear(FAST).fit(tr, va)
    assert m.meta_["privacy"] == {"private": False}
    recs = m.recommend(users=[1, 2, 3, 4], k=5)
    same = recs["item_id"].astype(int) % 2 == recs["user_id"].astype(int) % 2
    assert same.mean() > 0.7
    m.save(tmp_path / "m")
    back = Recommender.load(tmp_path / "m")
    pd.testing.assert_frame_equal(m.score(users=[1, 2]), back.score(users=[1, 2]))
    ids, u = back.user_embeddings()
    assert u.shape == (len(ids), 17)


def test_private_fit_records_the_guarantee_and_noise_grows_as_epsilon_shrinks(split3):
    tr = split3["train"]
    base = DPLinear(FAST).fit(tr)
    gaps = {}
    for eps in (1000.0, 1.0):
        m = DPLinear({**FAST, "dp_epsilon": eps, "seed": 3}).fit(tr)
        p = m.meta_["privacy"]
        assert p["private"] and p["level"] == "user" and p["epsilon_spent"] == eps
        assert p["delta"] == pytest.approx(1 / 80) and p["l2_sensitivity"] == pytest.approx(math.sqrt(5 ** 4 + 5 ** 2))
        gaps[eps] = float(np.abs(m.W_ - base.W_).mean())
    assert gaps[1000.0] < gaps[1.0]
    # default: the noise comes from OS entropy, so the same seed gives another draw, and the
    # meta says so; reproducible_noise ties it to the model seed (benchmarks)
    assert not np.array_equal(DPLinear({**FAST, "dp_epsilon": 1.0, "seed": 3}).fit(tr).W_, m.W_)
    assert p["noise_seed"].startswith("OS entropy")
    fixed = [DPLinear({**FAST, "dp_epsilon": 1.0, "seed": 3, "reproducible_noise": True}).fit(tr) for _ in range(2)]
    np.testing.assert_array_equal(fixed[0].W_, fixed[1].W_)
    assert fixed[0].meta_["privacy"]["noise_seed"].startswith("from the model seed")


def test_loaded_private_model_still_knows_it_is_private(split3, tmp_path):
    m = DPLinear({**FAST, "dp_epsilon": 3.0}).fit(split3["train"])
    m.save(tmp_path / "p")
    back = Recommender.load(tmp_path / "p")
    assert back.privacy_["private"] and back.privacy_["epsilon_spent"] == 3.0


def test_bad_privacy_settings_are_clear_errors():
    with pytest.raises(ConfigError):
        DPLinear(dp_epsilon=-1)
    with pytest.raises(ConfigError, match="no usable noise"):
        gaussian_sigma(1e-9, 1e-300)


def test_cold_items_get_a_vector_from_their_text(split3):
    """Items with no training interactions are scored through a text -> vector map, so a cold
    item whose text equals a warm item's text scores like it; without the map its column is 0."""
    from longrec.data.dataset import Dataset

    tr = split3["train"]
    inter = tr.interactions
    cold = sorted(inter["item_id"].unique())[:2]
    warm_tr = tr.with_interactions(inter[~inter["item_id"].isin(cold)])
    on = DPLinear(FAST).fit(warm_tr)
    off = DPLinear({**FAST, "cold_items": False}).fit(warm_tr)
    ci = on.vocab_.items.lookup(np.array(cold, dtype=object))
    assert (ci >= 0).all() and on.fit_info_["cold_items_from_text"] >= 2
    assert np.abs(off.W_[:, ci]).max() == 0 and np.abs(on.W_[:, ci]).max() > 0
    s = on.score(users=[1, 2, 3])
    assert np.isfinite(s.to_numpy()).all()
    # under DP, which items had no interactions is private: the released columns are kept
    priv = DPLinear({**FAST, "dp_epsilon": 8.0}).fit(warm_tr)
    assert "cold_items_from_text" not in priv.fit_info_


def test_private_model_serves_empty_histories_from_its_released_row(split3):
    """No exact training popularity reaches a user without history from a private model."""
    m = DPLinear({**FAST, "dp_epsilon": 3.0}).fit(split3["train"])
    s = m.score(histories={"newcomer": []}).to_numpy()[0]
    beta_row = min(FAST["clip"], 0.5) * m.W_[-1]  # profile [0, ..., β] with β = 0.5 <= clip
    np.testing.assert_allclose(s, beta_row, rtol=1e-5, atol=1e-6)
    assert not np.allclose(s, m.popularity_)
    with pytest.raises(Exception, match="unknown to the model"):
        m.recommend(histories={"newcomer": []}, on_unknown_user="error")


def test_item_weight_adds_an_item_item_block_fitted_with_the_text(split3, tmp_path):
    tr, va = split3["train"], split3["valid"]
    m = DPLinear({**FAST, "item_weight": 2.0}).fit(tr, va)
    n_items = len(m.vocab_.items)
    assert m.W_.shape == (16 + n_items + 1, n_items)
    ids, u = m.user_embeddings()
    assert u.shape == (len(ids), 16 + n_items + 1)
    # a user's profile now holds their own history, so the scores depend on which items, not only their texts
    recs = m.recommend(users=[1, 2, 3, 4], k=5)
    assert (recs["item_id"].astype(int) % 2 == recs["user_id"].astype(int) % 2).mean() > 0.7
    m.save(tmp_path / "m")
    back = Recommender.load(tmp_path / "m")
    pd.testing.assert_frame_equal(m.score(users=[1, 2]), back.score(users=[1, 2]))
    # the profile stays clipped, so a private fit keeps the same sensitivity
    p = DPLinear({**FAST, "item_weight": 2.0, "dp_epsilon": 3.0}).fit(tr).meta_["privacy"]
    assert p["l2_sensitivity"] == pytest.approx(math.sqrt(5 ** 4 + 5 ** 2))
    with pytest.raises(ConfigError, match="item_weight"):
        DPLinear({**FAST, "item_weight": 1.0, "max_items": 5}).fit(tr)


def test_ridge_predict_primal_and_dual_agree():
    from longrec.privacy.linear import ridge_predict

    rng = np.random.default_rng(0)
    for n, d in ((40, 6), (6, 40)):  # tall: primal; wide: dual
        Zw, Zc, Y = rng.normal(size=(n, d)), rng.normal(size=(5, d)), rng.normal(size=(n, 3))
        A = np.linalg.solve(Zw.T @ Zw + 2.0 * np.eye(d), Zw.T @ Y)
        np.testing.assert_allclose(ridge_predict(Zw, Y, Zc, 2.0), Zc @ A, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(ridge_predict(sp.csr_matrix(Zw), Y, sp.csr_matrix(Zc), 2.0), Zc @ A,
                                   rtol=1e-8, atol=1e-10)


def test_cold_map_uses_the_item_table_metadata(split3):
    """With cold_metadata, a cold item's vector is also predicted from the item table's own
    features (TF-IDF of its columns): a cold item sharing a rare attribute value with warm items
    that some users love scores high for those users, though its text embedding says nothing."""
    from longrec.privacy.linear import LMLinear

    tr = split3["train"]
    inter, items = tr.interactions, tr.items.copy()
    ids = sorted(inter["item_id"].unique())
    fans = sorted(inter["user_id"].unique())[:20]
    studio = ids[:6]  # 5 warm items + 1 cold one share the attribute "studio = acme"
    items["studio"] = np.where(items["item_id"].isin(studio), "acme", "other")
    extra = pd.DataFrame([(u, i, 0) for u in fans for i in studio[:5]], columns=["user_id", "item_id", "timestamp"])
    rows = pd.concat([inter, extra], ignore_index=True).drop_duplicates(["user_id", "item_id"])
    rows = rows[rows["item_id"] != studio[5]]
    from longrec.data.dataset import Dataset

    ds = Dataset(rows.reset_index(drop=True), items, tr.users, name="syn")
    cfg = {"encoder": "hash", "dim": 16, "item_text_columns": ["title"], "cold_l2": 1.0}
    plain = LMLinear({**cfg, "cold_metadata": 0.0}).fit(ds)
    meta = LMLinear({**cfg, "cold_metadata": 1.0, "cold_value_columns": ["studio"]}).fit(ds)
    assert meta.fit_info_["cold_items_from_text"] == plain.fit_info_["cold_items_from_text"] >= 1
    c = meta.vocab_.items.lookup(np.array([studio[5]], dtype=object))[0]
    ranks = {}
    for name, m in (("plain", plain), ("meta", meta)):
        s = m.score(users=fans[:5]).to_numpy()
        ranks[name] = float((s > s[:, [c]]).sum(1).mean())
    assert ranks["meta"] < ranks["plain"]


def test_lm_linear_cold_defaults_use_the_metadata():
    """lm-linear's cold-item map reads the item table's features by default (the setting chosen on
    train-only cold folds); the private variant keeps the text-only map."""
    from longrec.privacy.linear import DPLinearConfig, LMLinearConfig

    c = LMLinearConfig()
    assert c.cold_metadata == 1.0 and c.cold_l2 == 10.0
    assert DPLinearConfig().cold_metadata == 0.0
