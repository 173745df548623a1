"""World families: each fits on the synthetic data, reports its validity on held-out test
behaviour, and differs from the others."""

import numpy as np
import pytest

from longrec.simulate.config import parse_config
from longrec.simulate.loop import build_world, run_policy
from tests.simulate.conftest import sim_config


def _world(syn_dir, **world):
    cfg = parse_config({"simulation": {"dataset": str(syn_dir), "steps": 3},
                        "world": {"latent_dim": 16, "utility_l2": 50.0, **world},
                        "policies": [{"name": "random", "model": "random"}]})
    return build_world(cfg)


@pytest.fixture(scope="module")
def worlds(syn_dir):
    return {f: _world(syn_dir, family=f, text_encoder="hash") for f in ("ease", "lowrank", "text")}


@pytest.mark.parametrize("family", ["ease", "lowrank", "text"])
def test_each_family_is_valid_on_held_out_behaviour(worlds, family):
    w = worlds[family]
    v = w.info["validation"]
    assert w.info["family"] == v["family"] == family
    assert v["n_users"] > 100
    # chance NDCG@10 on this synthetic data is ~0.08; every family ranks test items far better
    assert v["NDCG@10"] > 0.2, v
    assert (w.text is not None) == (family == "text")


def test_families_differ(worlds):
    a, b, c = (worlds[f] for f in ("ease", "lowrank", "text"))
    users = np.arange(a.n_users)
    ua, ub, uc = (w.utility(w.U, users) for w in (a, b, c))
    for x, y in ((ua, ub), (ub, uc)):
        assert not np.allclose(x, y)
        # but they agree on tastes: per-user rank correlation is clearly positive
        r = np.mean([np.corrcoef(np.argsort(np.argsort(x[i])), np.argsort(np.argsort(y[i])))[0, 1]
                     for i in range(0, len(users), 10)])
        assert r > 0.3


def test_text_world_default_share_and_explicit_share():
    cfg = parse_config({"world": {"family": "text"}, "policies": [{"name": "r", "model": "random"}]})
    assert cfg.world.text_weight == 0.3
    cfg = parse_config({"world": {"family": "text", "text_weight": 0.6}, "policies": [{"name": "r", "model": "random"}]})
    assert cfg.world.text_weight == 0.6


def test_policy_runs_in_every_family(syn_dir, worlds):
    cfg = sim_config(syn_dir, [{"name": "ease", "model": "ease", "params": {"l2": 50.0, "tune_l2": False}}], steps=4)
    for w in worlds.values():
        df = run_policy(cfg, w, "ease", 0)
        assert np.isfinite(df[df.group == "all"]["welfare"]).all()


def test_split_folder_dataset(tmp_path, monkeypatch):
    """A published split folder (train/valid/test.csv + items.csv, string ids with leading zeros,
    no timestamps, no genres) runs as a simulation dataset, `$VARS` expanded."""
    from tests.simulate.conftest import make_sim_data

    from longrec.simulate.config import parse_config, split_folder
    from longrec.simulate.loop import build_world, run_policy

    inter, items, users = make_sim_data(n_users=60, n_items=50)
    inter["item_id"] = inter["item_id"].map(lambda i: f"{i:05d}")
    items = items.assign(item_id=items["item_id"].map(lambda i: f"{i:05d}")).rename(columns={"movie_title": "title"})
    d = tmp_path / "b1"
    d.mkdir()
    rng = np.random.default_rng(0)
    part = rng.choice(["train", "valid", "test"], size=len(inter), p=[0.8, 0.1, 0.1])
    for p in ("train", "valid", "test"):
        inter.loc[part == p, ["user_id", "item_id", "rating"]].to_csv(d / f"{p}.csv", index=False)
    items[["item_id", "title"]].to_csv(d / "items.csv", index=False)
    users[["user_id", "age"]].to_csv(d / "users.csv", index=False)
    monkeypatch.setenv("SPLITDIR", str(tmp_path))
    assert split_folder("$SPLITDIR/b1") == d and split_folder(str(tmp_path)) is None
    cfg = parse_config({"simulation": {"dataset": "$SPLITDIR/b1", "steps": 3, "retrain_every": 2, "slate_size": 5},
                        "world": {"latent_dim": 8, "utility_l2": 50.0, "quality_weight": 0.0},
                        "metrics": {"pairs": 50, "groups": ["age"]},
                        "policies": [{"name": "knn", "model": "itemknn"}]})
    w = build_world(cfg)
    assert w.genre_names == ["all"] and str(w.item_ids[0]).startswith("0")
    assert w.info["validation"]["NDCG@10"] > 0
    df = run_policy(cfg, w, "knn", 0)
    assert len(df) == 3 * len(w.groups)


def test_log_all_users_gives_policies_every_users_training_data(syn_dir):
    from longrec.simulate.config import parse_config

    base = {"dataset": str(syn_dir), "steps": 2, "max_users": 20}
    w = {"latent_dim": 8, "utility_l2": 50.0}
    pol = [{"name": "r", "model": "random"}]
    few = build_world(parse_config({"simulation": base, "world": w, "policies": pol}), validate=False)
    all_ = build_world(parse_config({"simulation": {**base, "log_all_users": True}, "world": w, "policies": pol}),
                       validate=False)
    assert few.n_users == all_.n_users == 20
    assert few.initial_frame["user_id"].nunique() == 20 and all_.initial_frame["user_id"].nunique() > 20
    assert (few.initial.toarray() == all_.initial.toarray()).all()  # the simulated users start the same
