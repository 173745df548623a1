"""lm-seq-dp: the sequential transformer under user-level DP-SGD."""

from __future__ import annotations

import numpy as np
import pytest

from longrec.models import Recommender

pytest.importorskip("opacus")

from longrec.privacy.sequential import DPLMSeq  # noqa: E402

FAST = {"encoder": "hash", "dim": 16, "n_layers": 1, "n_heads": 1, "max_len": 8, "num_threads": 1,
        "dp_epochs": 3, "dp_batch_size": 16}


def test_private_fit_spends_the_target_and_round_trips(split3, tmp_path):
    m = DPLMSeq({**FAST, "dp_epsilon": 3.0, "seed": 1}).fit(split3["train"], split3["valid"])
    p = m.meta_["privacy"]
    assert p["private"] and p["level"] == "user" and p["delta"] == pytest.approx(1 / 80)
    assert 0 < p["epsilon_spent"] <= 3.0 * 1.01
    assert p["sample_rate"] == pytest.approx(16 / 80) and p["steps"] == 3 * 5
    assert "valid_ndcg@10" in m.fit_info_ and "best_epoch" not in m.fit_info_  # fixed epochs under DP
    m.save(tmp_path / "m")
    back = Recommender.load(tmp_path / "m")
    assert back.privacy_["private"]
    np.testing.assert_allclose(m.score(users=[1, 2]).to_numpy(), back.score(users=[1, 2]).to_numpy(), rtol=1e-5)
    # the sampling and noise come from OS entropy: the same seed does not repeat them ...
    again = DPLMSeq({**FAST, "dp_epsilon": 3.0, "seed": 1}).fit(split3["train"])
    assert not np.array_equal(again.score(users=[1, 2]).to_numpy(), m.score(users=[1, 2]).to_numpy())
    assert p["noise_seed"].startswith("OS entropy")
    # ... unless reproducible_noise ties them to the model seed
    fixed = [DPLMSeq({**FAST, "dp_epsilon": 3.0, "seed": 1, "reproducible_noise": True}).fit(split3["train"])
             for _ in range(2)]
    np.testing.assert_array_equal(fixed[0].score(users=[1, 2]).to_numpy(), fixed[1].score(users=[1, 2]).to_numpy())


def test_noisy_mean_clips_each_user_over_all_tensors_and_adds_calibrated_noise():
    import torch

    from longrec.privacy.sequential import noisy_mean

    g = {"a": torch.tensor([[3.0, 0.0], [0.1, 0.0]]), "b": torch.tensor([[[4.0]], [[0.0]]])}
    gen = torch.Generator().manual_seed(0)
    out = noisy_mean(g, max_norm=1.0, sigma=0.0, denom=2.0, gen=gen)
    # user 0 has norm 5 (3 and 4 across both tensors) -> scaled to 1; user 1 (norm 0.1) is kept
    torch.testing.assert_close(out["a"], torch.tensor([(0.6 + 0.1) / 2, 0.0]))
    torch.testing.assert_close(out["b"], torch.tensor([[0.8 / 2]]))
    big = {"w": torch.zeros((0, 20000))}  # nobody sampled: pure noise, std sigma * C / denom
    noise = noisy_mean(big, max_norm=0.5, sigma=2.0, denom=4.0, gen=gen)["w"]
    assert noise.shape == (20000,) and float(noise.std()) == pytest.approx(2.0 * 0.5 / 4.0, rel=0.03)


def test_training_moves_the_weights(split3):
    m = DPLMSeq({**FAST, "dp_epsilon": 1e4, "dp_lr": 1e-2, "seed": 0}).fit(split3["train"])
    ref = DPLMSeq({**FAST, "dp_epsilon": 1e4, "dp_lr": 1e-9, "seed": 0}).fit(split3["train"])  # ~ initial weights
    assert float((m.net_.proj.weight - ref.net_.proj.weight).abs().mean()) > 1e-3


def test_without_epsilon_it_is_plain_lm_seq(split3):
    from longrec.models.lm_seq import LMSeq

    cfg = {k: v for k, v in FAST.items() if not k.startswith("dp_")} | {"epochs": 2}
    a = DPLMSeq(cfg).fit(split3["train"])
    b = LMSeq(cfg).fit(split3["train"])
    assert a.meta_["privacy"] == {"private": False}
    np.testing.assert_allclose(a.score(users=[1, 2]).to_numpy(), b.score(users=[1, 2]).to_numpy(), rtol=1e-5)


def test_user_embeddings_are_the_last_hidden_state(split3):
    m = DPLMSeq({**FAST, "dp_epsilon": 8.0}).fit(split3["train"])
    ids, U = m.user_embeddings()
    assert U.shape == (len(ids), 16) and np.abs(U).sum(1).min() > 0
    _, one = m.user_embeddings(histories={"new": [m.vocab_.items.ids[0]]})
    assert one.shape == (1, 16)


def test_private_model_serves_empty_histories_from_its_weights(split3):
    m = DPLMSeq({**FAST, "dp_epsilon": 8.0}).fit(split3["train"])
    s = m.score(histories={"newcomer": []}).to_numpy()[0]
    assert np.isfinite(s).all() and s.std() > 0
    assert not np.allclose(s, m.popularity_)
    with pytest.raises(Exception, match="unknown to the model"):
        m.recommend(histories={"newcomer": []}, on_unknown_user="error")
