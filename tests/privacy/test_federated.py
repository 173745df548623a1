from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from longrec.errors import ConfigError
from longrec.privacy.federated import FederatedConfig, partition_users, run_federated

MODEL = {"encoder": "hash", "batch_size": 16, "lr": 0.02}


def test_partitions_cover_users_once():
    ids = np.arange(1, 11)
    users = pd.DataFrame({"user_id": ids, "occupation": list("aabbbccccd"),
                          "zip_code": ["12345", "13000", "2", "T8H", "99999"] * 2})
    for how in ("random", "occupation", "zip"):
        parts = partition_users(ids, users, how, n_clients=3)
        assert sorted(np.concatenate(parts).tolist()) == ids.tolist() and all(len(p) for p in parts)
    assert [len(p) for p in partition_users(ids, users, "occupation")] == [2, 3, 4, 1]
    assert len(partition_users(ids, users, "zip")) == 4  # 1, 2, 9, other
    with pytest.raises(ConfigError, match="n_clients"):
        partition_users(ids, users, "random", n_clients=11)
    with pytest.raises(ConfigError, match="occupation"):
        partition_users(ids, None, "occupation")


def test_config_errors_are_clear(tmp_path):
    p = tmp_path / "f.toml"
    p.write_text("rounds = 0\nbogus = 1\n")
    with pytest.raises(ConfigError, match="bogus"):
        FederatedConfig.from_toml(p)
    with pytest.raises(ConfigError, match="does not exist"):
        FederatedConfig.from_toml(tmp_path / "missing.toml")


def test_local_fedavg_learns_and_saves(split3, tmp_path):
    from longrec.models import Recommender

    cfg = FederatedConfig(engine="local", n_clients=4, rounds=4, model=MODEL, output=str(tmp_path / "fed"))
    rep = run_federated(cfg, split=split3)
    assert rep["n_parties"] == 4 and sum(rep["party_sizes"]) == 80
    assert [c[0] for c in rep["valid_curve"]] == [1, 2, 3, 4]
    m = Recommender.load(tmp_path / "fed")
    assert m.meta_["federated"]["rounds"] == 4
    # the global model ranks items of the user's taste cluster first
    recs = m.recommend(users=[1, 2, 3, 4], k=5)
    assert (recs["item_id"].astype(int) % 2 == recs["user_id"].astype(int) % 2).mean() > 0.7


def test_local_fedavg_with_user_level_dp(split3, tmp_path):
    """dp_epsilon in [model]: every party runs DP-SGD on its own users, noise calibrated per party
    (users are disjoint across parties) for all rounds, with its popularity release."""
    pytest.importorskip("opacus")
    from longrec.models import Recommender

    cfg = FederatedConfig(engine="local", n_clients=4, rounds=2, model={**MODEL, "dp_epsilon": 8.0},
                          output=str(tmp_path / "dp"))
    rep = run_federated(cfg, split=split3)
    p = rep["privacy"]
    assert p["private"] and p["level"] == "user" and p["epsilon_target"] == 8.0
    assert len(p["noise_multipliers"]) == 4 and all(x > 0 for x in p["noise_multipliers"])
    assert p["noise_seed"].startswith("OS entropy") and p["noise_seed"].endswith("per party and round")
    # the record of every private fit (privacy_record), less the single ε spent / noise it has not got
    assert {"mechanism", "delta", "max_grad_norm", "popularity_prior"} <= set(p)
    assert "epsilon_spent" not in p and "noise_multiplier" not in p
    m = Recommender.load(tmp_path / "dp")
    assert m.privacy_["private"] and m.meta_["privacy"]["noise_multipliers"] == p["noise_multipliers"]
    # by default every party's sampling and noise are secret (OS entropy): two runs differ; with
    # reproducible_noise they come from the seed and repeat exactly
    small = {**cfg.model_dump(), "n_clients": 2, "rounds": 1}
    runs = [run_federated(FederatedConfig(**{**small, "output": str(tmp_path / f"s{i}")}), split=split3) for i in (0, 1)]
    a, b = (Recommender.load(tmp_path / f"s{i}").get_arrays() for i in (0, 1))
    assert any(not np.array_equal(a[k], b[k]) for k in a)
    runs = [run_federated(FederatedConfig(**{**small, "reproducible_noise": True, "output": str(tmp_path / f"r{i}")}),
                          split=split3) for i in (0, 1)]
    a, b = (Recommender.load(tmp_path / f"r{i}").get_arrays() for i in (0, 1))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(ConfigError, match="top level"):  # the model's own switch would be silently ignored
        run_federated(FederatedConfig(**{**small, "model": {**small["model"], "reproducible_noise": True}}), split=split3)
    plain = run_federated(FederatedConfig(engine="local", n_clients=4, rounds=2, model=MODEL), split=split3)
    assert plain["privacy"] == {"private": False}
    from longrec.privacy.federated import _party_noise
    from longrec.privacy.twotower import DPTwoTowerConfig
    # more rounds -> more steps to pay for -> more noise per step
    more = _party_noise(FederatedConfig(rounds=20), DPTwoTowerConfig(**MODEL, dp_epsilon=8.0), [20, 20], p["delta"])
    assert more[0] > p["noise_multipliers"][0]


@pytest.mark.slow
def test_flower_two_rounds_four_clients(split3):
    """The CI check of the Flower path: 2 rounds, 4 simulated clients, local Ray."""
    pytest.importorskip("flwr")
    pytest.importorskip("ray")
    cfg = FederatedConfig(engine="flower", n_clients=4, rounds=2, model=MODEL, client_cpus=1.0)
    rep = run_federated(cfg, split=split3)
    assert rep["engine"] == "flower" and [c[0] for c in rep["valid_curve"]] == [1, 2]
    assert 0.0 <= rep["test_ndcg@10"] <= 1.0


@pytest.mark.slow
def test_flower_secure_aggregation_equals_plain_fedavg(split3, tmp_path):
    """SecAgg+ (Flower's secaggplus_mod + SecAggPlusWorkflow) gives the server only the sum of
    the masked, quantised updates; the global model must match the plain FedAvg arithmetic
    up to the quantisation step, for the same seeds. One round: from the second on, float
    summation order alone (plain Flower vs the local loop) grows to ~1e-2 through Adam."""
    pytest.importorskip("flwr")
    pytest.importorskip("ray")
    import numpy as np

    from longrec.models import Recommender

    def pair(model: dict, tag: str):
        base = dict(n_clients=4, rounds=1, model=model, client_cpus=1.0)
        run_federated(FederatedConfig(engine="local", output=str(tmp_path / f"plain{tag}"), **base), split=split3)
        sec = run_federated(FederatedConfig(engine="flower", secure_aggregation=True,
                                            output=str(tmp_path / f"sec{tag}"), **base), split=split3)
        assert sec["secure_aggregation"] and [c[0] for c in sec["valid_curve"]] == [1]
        assert sec["max_abs_parameter"] < 8.0  # the global model sits inside SecAgg+'s clipping range
        return Recommender.load(tmp_path / f"plain{tag}").get_arrays(), Recommender.load(tmp_path / f"sec{tag}").get_arrays()

    # the popularity prior, summed through SecAgg+ as well, matches the plain sum's ...
    a, b = pair(MODEL, "-prior")
    assert np.abs(a["prior"] - b["prior"]).max() < 1e-4
    # ... but Adam magnifies its rounding in near-zero gradients, so the parameters are compared without it
    a, b = pair({**MODEL, "popularity_prior": False}, "")
    assert a.keys() == b.keys()
    for k in a:
        assert np.abs(a[k] - b[k]).max() < 2e-5, k  # quantisation step 16 / 2**22 ≈ 4e-6
    assert max(np.abs(a[k] - b[k]).max() for k in a) > 0  # it did go through the quantised protocol


@pytest.mark.slow
def test_secure_sum_gives_the_plain_sum():
    """The popularity counts under secure_aggregation: one SecAgg+ round returns the sum of the
    parties' vectors (within quantisation), each bounded by its party's size."""
    pytest.importorskip("flwr")
    pytest.importorskip("ray")
    from longrec.privacy.federated import secure_sum

    rng = np.random.default_rng(0)
    sizes = [5, 9, 3]
    vecs = [rng.random(30) * n for n in sizes]  # entries in [0, size]
    got = secure_sum(vecs, sizes, FederatedConfig(client_cpus=1.0))
    np.testing.assert_allclose(got, np.sum(vecs, axis=0), atol=1e-3)
    assert np.abs(got - np.sum(vecs, axis=0)).max() > 0  # it went through the quantised protocol


def test_secure_aggregation_needs_two_parties_per_round(split3):
    cfg = FederatedConfig(engine="flower", secure_aggregation=True, n_clients=4, fraction_train=0.25, rounds=1,
                          model=MODEL)
    with pytest.raises(ConfigError, match="at least 2 parties per round"):
        run_federated(cfg, split=split3)


def test_secure_aggregation_needs_flower(split3):
    with pytest.raises(ConfigError, match="secure_aggregation needs engine"):
        run_federated(FederatedConfig(engine="local", secure_aggregation=True, n_clients=2, rounds=1, model=MODEL),
                      split=split3)
