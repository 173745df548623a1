from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from longrec.models import Recommender
from longrec.privacy.twotower import DPTwoTower
from longrec.privacy.twotower_train import split_batch

FAST = {"encoder": "hash", "epochs": 15, "batch_size": 16, "lr": 0.02}


def test_split_batch_holds_out_at_least_one_item():
    import scipy.sparse as sp

    X = sp.csr_matrix(np.array([[1, 1, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    text = np.eye(4, dtype=np.float32)
    x, y = split_batch(X, np.array([0, 1, 2]), text, keep_prob=0.99, rng=np.random.default_rng(0))
    assert x.shape == (3, 4) and y.shape == (3, 4)
    np.testing.assert_allclose(y.sum(1), [1, 1, 0])          # targets normalised, empty row stays empty
    assert (y[0] > 0).sum() >= 1 and y[1, 1] == 1.0          # a single-item history is all target
    assert (x[1] == 0).all() and (y[:, 2] == 0).all()        # nothing outside the history


def test_nonprivate_learns_and_round_trips(split3, tmp_path):
    tr, va = split3["train"], split3["valid"]
    m = DPTwoTower(FAST).fit(tr, va)
    assert m.meta_["privacy"] == {"private": False}
    curve = m.fit_info_["loss_curve"]
    assert curve[-1] < curve[0]
    # two taste clusters (even / odd items): recommendations should follow the user's cluster
    recs = m.recommend(users=[1, 2, 3, 4], k=5)
    same = recs["item_id"].astype(int) % 2 == recs["user_id"].astype(int) % 2  # user u+1 draws items of parity (u+1)%2
    assert same.mean() > 0.7
    m.save(tmp_path / "m")
    back = Recommender.load(tmp_path / "m")
    pd.testing.assert_frame_equal(m.score(users=[1, 2]), back.score(users=[1, 2]))
    ids, u = back.user_embeddings()
    assert u.shape == (len(tr.user_ids), m.config.dim) and len(ids) == len(u)


def test_history_only_user(split3):
    m = DPTwoTower(FAST).fit(split3["train"])
    recs = m.recommend(histories={"new": [2, 4, 6]}, k=3)
    assert len(recs) == 3 and not set(recs["item_id"]) & {2, 4, 6}


def test_dp_training_spends_the_target_epsilon(split3, tmp_path):
    pytest.importorskip("opacus")
    tr = split3["train"]
    m = DPTwoTower({**FAST, "dp_epsilon": 3.0, "epochs": 5}).fit(tr)
    p = m.meta_["privacy"]
    assert p["private"] and p["level"] == "user"
    assert 0 < p["epsilon_spent"] <= 3.0 * 1.02
    assert p["delta"] == pytest.approx(1 / 80)
    assert p["noise_multiplier"] > 0 and p["steps"] >= 5
    m.save(tmp_path / "dp")
    meta = json.loads((tmp_path / "dp" / "meta.json").read_text())
    assert meta["privacy"]["epsilon_spent"] == p["epsilon_spent"]
    assert np.isfinite(m.score(users=[1]).to_numpy()).all()


def test_dp_noise_is_secret_unless_reproducible(split3):
    """Default: the Poisson sampling, the gradient noise and the prior's noise are seeded from
    OS entropy (the model seed is in meta.json: noise drawn from it could be subtracted);
    reproducible_noise = true ties them to the seed."""
    pytest.importorskip("opacus")
    tr = split3["train"]
    cfg = {**FAST, "dp_epsilon": 3.0, "epochs": 2, "seed": 5}
    a, b = (DPTwoTower(cfg).fit(tr) for _ in range(2))
    assert a.meta_["privacy"]["noise_seed"].startswith("OS entropy")
    assert not np.array_equal(a.score(users=[1, 2]).to_numpy(), b.score(users=[1, 2]).to_numpy())
    c, d = (DPTwoTower({**cfg, "reproducible_noise": True}).fit(tr) for _ in range(2))
    np.testing.assert_array_equal(c.score(users=[1, 2]).to_numpy(), d.score(users=[1, 2]).to_numpy())



def test_dp_sampling_and_noise_use_independent_seeds(split3, monkeypatch):
    """One seed for the Poisson sampler and the noise generator would make the noise a function
    of who was sampled (torch draws both from the same uniforms): each gets its own draw."""
    pytest.importorskip("opacus")
    import longrec.privacy.twotower as tt

    drawn = []
    monkeypatch.setattr(tt, "noise_seed", lambda seed, reproducible: drawn.append(len(drawn) + 101) or drawn[-1])
    seen, real_loader = [], tt.user_loader

    def spy(n, batch, seed):
        seen.append(seed)
        return real_loader(n, batch, seed)

    monkeypatch.setattr(tt, "user_loader", spy)
    tt.DPTwoTower({**FAST, "dp_epsilon": 3.0, "epochs": 1}).fit(split3["train"])
    assert len(drawn) == 3 and seen[-1] == drawn[0]  # sampler, noise, prior: three separate draws


def test_dp_gradients_are_per_user():
    """Opacus sees one row per user in every trained layer: its per-sample gradients must
    equal gradients computed user by user (the item tower is applied on the user side)."""
    pytest.importorskip("opacus")
    import torch
    from opacus import GradSampleModule

    from longrec.privacy.twotower import DPTwoTowerConfig
    from longrec.privacy.twotower_train import build_net

    rng = np.random.default_rng(0)
    text = rng.normal(size=(7, 5)).astype(np.float32)
    net = build_net(text, DPTwoTowerConfig(dim=4, hidden=4))
    net.prior.copy_(torch.from_numpy(rng.random(7).astype(np.float32)))  # the prior's scale is trained too
    x = torch.from_numpy(rng.normal(size=(3, 5)).astype(np.float32))
    y = torch.softmax(torch.from_numpy(rng.normal(size=(3, 7)).astype(np.float32)), 1)
    gsm = GradSampleModule(net, loss_reduction="sum")
    (-(y * torch.log_softmax(gsm(x), 1)).sum()).backward()
    for b in range(3):
        net2 = build_net(text, DPTwoTowerConfig(dim=4, hidden=4))
        net2.load_state_dict({k.removeprefix("_module."): v for k, v in gsm.state_dict().items()})
        (-(y[b] * torch.log_softmax(net2(x[b:b + 1])[0], 0)).sum()).backward()
        for (name, p), p2 in zip(gsm._module.named_parameters(), net2.parameters()):
            torch.testing.assert_close(p.grad_sample[b], p2.grad, msg=name)


def test_popularity_counts_are_per_user_unit_vectors_and_add_up_across_parties():
    import scipy.sparse as sp

    from longrec.privacy.twotower_train import popularity_counts, popularity_prior

    X = sp.csr_matrix(np.array([[1, 1, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 1]], dtype=np.float32))
    c = popularity_counts(X)
    np.testing.assert_allclose(c, [1 / 3**0.5 + 1 / 2**0.5, 1 / 3**0.5 + 1, 0, 1 / 3**0.5 + 1 / 2**0.5])
    # removing one user moves c by exactly that user's unit vector (sensitivity 1)
    assert np.linalg.norm(c - popularity_counts(X[[1, 2, 3]])) == pytest.approx(1.0)
    np.testing.assert_allclose(popularity_counts(X[:2]) + popularity_counts(X[2:]), c)
    np.testing.assert_allclose(popularity_prior(X), np.log1p(c), rtol=1e-6)
    noisy = popularity_prior(X, noise=0.5, rng=np.random.default_rng(0))
    assert noisy.shape == c.shape and (noisy >= 0).all() and not np.allclose(noisy, np.log1p(c))


def test_the_popularity_release_is_composed_into_the_budget(split3):
    pytest.importorskip("opacus")
    from opacus.accountants import RDPAccountant

    from longrec.errors import ConfigError
    from longrec.privacy.accounting import calibrate_noise

    q, steps, delta = 0.1, 200, 1e-3
    alone = calibrate_noise(3.0, delta, q, steps)
    with_prior = calibrate_noise(3.0, delta, q, steps, prior_noise=2.0)
    assert with_prior > alone  # the release costs budget: DP-SGD needs more noise
    acc = RDPAccountant()
    acc.history = [(2.0, 1.0, 1), (with_prior, q, steps)]
    assert acc.get_epsilon(delta) <= 3.0
    with pytest.raises(ConfigError, match="prior_noise"):
        calibrate_noise(0.5, delta, q, steps, prior_noise=0.1)
    m = DPTwoTower({**FAST, "dp_epsilon": 3.0, "epochs": 3, "prior_noise": 2.0}).fit(split3["train"])
    p = m.meta_["privacy"]
    assert p["popularity_prior"]["noise_multiplier"] == 2.0 and p["epsilon_spent"] <= 3.0 * 1.02
    assert float(m.net_.prior.abs().sum()) > 0


def test_pca_init_starts_from_content_similarity():
    import torch

    from longrec.privacy.twotower import DPTwoTowerConfig
    from longrec.privacy.twotower_train import build_net

    rng = np.random.default_rng(0)
    text = rng.normal(size=(40, 6)).astype(np.float32)
    net = build_net(text, DPTwoTowerConfig(dim=6, init="pca", popularity_prior=False))
    x = torch.from_numpy(text[:5])
    with torch.no_grad():  # full rank: P P^T = I, so the score is 16 <x, t_i> (the towers' x4 scales)
        torch.testing.assert_close(net(x), 16 * x @ torch.from_numpy(text).T, rtol=1e-4, atol=1e-4)


def test_loaded_private_model_still_knows_it_is_private(split3, tmp_path):
    """Recommender.load sets meta_ before _set_state, so the guarantee survives a round trip
    (and the non-private-only guards, like debiased(), still apply)."""
    pytest.importorskip("opacus")
    m = DPTwoTower({**FAST, "epochs": 2, "dp_epsilon": 8.0}).fit(split3["train"])
    m.save(tmp_path / "p")
    back = Recommender.load(tmp_path / "p")
    assert back.privacy_["private"] and back.privacy_ == m.meta_["privacy"]


def test_private_model_scores_empty_histories_with_its_trained_net(split3):
    """A private two-tower serves users without history from its DP-trained net (biases and the
    noisy popularity release), never from the exact training popularity; a non-private one
    keeps the popularity fallback."""
    pytest.importorskip("opacus")
    m = DPTwoTower({**FAST, "epochs": 2, "dp_epsilon": 8.0}).fit(split3["train"])
    s = m.score(histories={"newcomer": []}).to_numpy()[0]
    net = m._score(np.array([-1]), m._build_histories(np.array(["newcomer"], dtype=object),
                                                       m._history_frame({"newcomer": []}))[1])[0]
    np.testing.assert_allclose(s, net, rtol=1e-5)
    assert not np.allclose(s, m.popularity_)
    plain = DPTwoTower({**FAST, "epochs": 2}).fit(split3["train"])
    np.testing.assert_allclose(plain.score(histories={"newcomer": []}).to_numpy()[0], plain.popularity_)


def test_dp_net_scores_are_inner_products_of_its_item_vectors():
    """The net scores through the user side (<W^T u + c, t_i>) for Opacus; item_vectors() must give
    the same scores as plain two-tower inner products <u, v_i> + b_i (what retrieval indexes)."""
    import torch

    from longrec.models.twotower_net import DPTwoTowerNet

    rng = np.random.default_rng(1)
    text = rng.normal(size=(9, 5)).astype(np.float32)
    net = DPTwoTowerNet(text, dim=4, hidden=3)
    with torch.no_grad():
        net.prior.copy_(torch.from_numpy(rng.random(9).astype(np.float32)))
        net.bias.weight.copy_(torch.from_numpy(rng.normal(size=(9, 1)).astype(np.float32)))
        net.prior_scale.weight.fill_(0.7)
        x = torch.from_numpy(rng.normal(size=(2, 5)).astype(np.float32))
        v, b = net.item_vectors()
        torch.testing.assert_close(net(x), net.user_vectors(x) @ v.T + b, rtol=1e-5, atol=1e-5)
