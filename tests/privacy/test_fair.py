"""Fair training of lm-twotower-dp: removing a sensitive attribute from the user vectors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from longrec.errors import ConfigError
from longrec.models import Recommender
from longrec.privacy.twotower import DPTwoTower
from longrec.fair.erasure import nullspace_projection

pytest.importorskip("sklearn")
FAST = {"encoder": "hash", "epochs": 15, "batch_size": 16, "lr": 0.02, "num_threads": 1}


def planted(n_users: int = 160, n_items: int = 60, per_user: int = 12, seed: int = 0):
    """Two taste clusters (user parity -> even/odd items), and gender planted in behaviour:
    within their cluster, F users favour its first third of items and M users its last third."""
    from longrec.data.dataset import Dataset

    rng = np.random.default_rng(seed)
    rows, gender = [], []
    for u in range(n_users):
        f = rng.random() < 0.5
        gender.append("F" if f else "M")
        pool = np.arange(u % 2, n_items, 2)
        w = np.ones(len(pool))
        third = len(pool) // 3
        if f:
            w[:third] *= 4
        else:
            w[-third:] *= 4
        chosen = rng.choice(pool, size=per_user, replace=False, p=w / w.sum())
        rows += [(u + 1, int(i) + 1, 1_000_000 + 100 * u + t) for t, i in enumerate(chosen)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    items = pd.DataFrame({"item_id": np.arange(1, n_items + 1), "title": [f"Item {i}" for i in range(1, n_items + 1)],
                          "genre": ["Even" if i % 2 == 0 else "Odd" for i in range(1, n_items + 1)]})
    users = pd.DataFrame({"user_id": np.arange(1, n_users + 1), "gender": gender})
    test = inter.groupby("user_id").tail(1)
    return (Dataset(inter.drop(test.index).reset_index(drop=True), items, users, name="planted-train"),
            Dataset(test.reset_index(drop=True), items, users, name="planted-test"))


def gender_auc(m, train) -> float:
    from longrec.privacy.attacks import attribute_inference_auc

    ids, U = m.user_embeddings()
    g = train.users.set_index("user_id")["gender"]
    return attribute_inference_auc(U, g.reindex(ids.astype(int)).to_numpy())["auc"]


def taste_share(m) -> float:
    recs = m.recommend(users=list(range(1, 21)), k=5)  # user u+1 draws items of parity (u+1) % 2
    return float((recs["item_id"].astype(int) % 2 == recs["user_id"].astype(int) % 2).mean())


@pytest.fixture(scope="module")
def data():
    return planted()


@pytest.fixture(scope="module")
def off(data):
    return DPTwoTower(FAST).fit(data[0])


def test_nullspace_projection_removes_a_planted_direction():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    U = rng.normal(size=(400, 8))
    U[:, 3] += 2.0 * y            # the label lives in one (rotated) direction
    U = U @ np.linalg.qr(rng.normal(size=(8, 8)))[0]
    P, rounds = nullspace_projection(U, y, stop_auc=0.55)
    np.testing.assert_allclose(P, P.T, atol=1e-10)
    np.testing.assert_allclose(P @ P, P, atol=1e-10)   # an orthogonal projection
    assert rounds[0] > 0.9 and rounds[-1] <= 0.55
    assert 1 <= round(8 - np.trace(P)) <= 3             # a few directions, not the whole space


def test_leace_hides_gender_and_keeps_taste(data, off, tmp_path):
    train, _ = data
    m = DPTwoTower({**FAST, "fair_attribute": "gender"}).fit(train)   # default method: leace
    base_auc, fair_auc = gender_auc(off, train), gender_auc(m, train)
    assert base_auc > 0.9 and fair_auc < 0.6 and base_auc - fair_auc > 0.3
    assert m.fit_info_["fair"]["method"] == "leace" and m.fit_info_["fair"]["removed_directions"] == 1
    assert taste_share(m) >= 0.8
    m.save(tmp_path / "leace")
    back = Recommender.load(tmp_path / "leace")
    pd.testing.assert_frame_equal(back.score(users=[1, 2]), m.score(users=[1, 2]))


def test_leace_eraser_equalises_class_means():
    from longrec.fair.erasure import leace_eraser

    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 600)
    U = rng.normal(size=(600, 6)) + np.eye(6)[y] * 2.0
    M = leace_eraser(U, y)
    out = U @ M
    means = np.stack([out[y == c].mean(0) for c in range(3)])
    np.testing.assert_allclose(means - means.mean(0), 0, atol=1e-8)
    assert round(6 - np.trace(M)) == 2                  # rank (#classes - 1) erased


def test_nullspace_hides_gender_and_keeps_taste(data, off, tmp_path):
    train, _ = data
    m = DPTwoTower({**FAST, "fair_attribute": "gender", "fair_method": "nullspace"}).fit(train)
    base_auc, fair_auc = gender_auc(off, train), gender_auc(m, train)
    assert base_auc > 0.9                                # gender is plainly in the vectors ...
    assert fair_auc < 0.6 and base_auc - fair_auc > 0.3  # ... and the option removes it
    info = m.fit_info_["fair"]
    assert info["classes"] == ["F", "M"] and info["removed_directions"] >= 1 and info["probe_auc"][-1] <= 0.52
    assert taste_share(m) >= 0.8                         # the taste clusters survive
    m.save(tmp_path / "fair")
    back = Recommender.load(tmp_path / "fair")
    np.testing.assert_allclose(back.user_embeddings()[1], m.user_embeddings()[1], atol=1e-6)
    pd.testing.assert_frame_equal(back.score(users=[1, 2]), m.score(users=[1, 2]))


def test_debiased_post_hoc(data, off):
    train, test = data
    m = off.debiased(train, test, fair_attribute="gender", fair_method="nullspace", fair_finetune_epochs=2)
    assert gender_auc(m, train) < 0.6 and m.fit_info_["fair"]["method"] == "nullspace"
    assert gender_auc(off.debiased(train, fair_attribute="gender"), train) < 0.6   # leace
    assert "valid_ndcg@10" in m.fit_info_
    assert getattr(off.net_, "fair_proj", None) is None  # the original is untouched
    with pytest.raises(ConfigError, match="fitted on"):
        off.debiased(test, fair_attribute="gender")
    with pytest.raises(ConfigError, match="nullspace option"):
        m.debiased(train, fair_attribute="gender")


def test_adversarial_option_trains(data):
    train, _ = data
    m = DPTwoTower({**FAST, "fair_attribute": "gender", "fair_method": "adversarial", "fair_weight": 5.0}).fit(train)
    assert m.fit_info_["fair"]["method"] == "adversarial"
    assert m.fit_info_["loss_curve"][-1] < m.fit_info_["loss_curve"][0]
    assert taste_share(m) >= 0.8
    assert 0.0 <= gender_auc(m, train) <= 1.0


def test_bad_fair_configs(data, split3):
    train, _ = data
    with pytest.raises(ConfigError, match="dp_epsilon"):
        DPTwoTower({**FAST, "fair_attribute": "gender", "dp_epsilon": 3.0}).fit(train)
    with pytest.raises(ConfigError, match="age"):
        DPTwoTower({**FAST, "fair_attribute": "age"}).fit(train)
    from longrec.data.dataset import Dataset

    with pytest.raises(ConfigError, match="user table"):
        DPTwoTower({**FAST, "fair_attribute": "gender"}).fit(Dataset(train.interactions, train.items))
    with pytest.raises(ConfigError, match="fair_attribute"):  # federated training refuses it too
        DPTwoTower({**FAST, "fair_attribute": "gender"}).fit_untrained(train)


def test_multiclass_attribute(split3):
    """Occupation has three values: one direction per class and round."""
    m = DPTwoTower({**FAST, "fair_attribute": "occupation", "fair_method": "nullspace",
                    "fair_max_directions": 2}).fit(split3["train"])
    info = m.fit_info_["fair"]
    assert info["classes"] == ["a", "b", "c"] and len(info["probe_auc"]) <= 3
    leace = DPTwoTower({**FAST, "fair_attribute": "occupation"}).fit(split3["train"])
    assert leace.fit_info_["fair"]["removed_directions"] == 2
