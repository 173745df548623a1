"""Studies over several worlds: config inheritance, outputs, the per-goal summary."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from longrec.errors import ConfigError
from longrec.simulate import study
from longrec.simulate.config import load_config, parse_config
from longrec.simulate.loop import simulate

REPO = Path(__file__).resolve().parents[2]
EASE = {"l2": 50.0, "tune_l2": False}


def _cfg(syn_dir):
    return parse_config({
        "simulation": {"dataset": str(syn_dir), "steps": 6, "retrain_every": 3, "slate_size": 5, "seeds": [0, 1]},
        "world": {"latent_dim": 16, "utility_l2": 50.0, "no_choice_utility": 2.0},
        "worlds": [{"name": "e", "family": "ease"}, {"name": "l", "family": "lowrank", "latent_dim": 8},
                   {"name": "t", "family": "text", "text_encoder": "hash"}],
        "metrics": {"pairs": 100},
        "policies": [{"name": "ease", "model": "ease", "params": EASE},
                     {"name": "lt", "model": "ease", "params": EASE, "satiation": {"weight": 1.0}},
                     {"name": "pop", "model": "pop"}, {"name": "oracle", "model": "oracle"}]})


def test_worlds_inherit_world_and_override(syn_dir):
    cfg = _cfg(syn_dir)
    assert [w.no_choice_utility for w in cfg.worlds] == [2.0, 2.0, 2.0]
    assert cfg.worlds[1].latent_dim == 8 and cfg.worlds[0].latent_dim == 16
    assert cfg.worlds[2].text_weight == 0.3
    one = cfg.for_world("l")
    assert one.worlds == [] and one.world.family == "lowrank" and one.world.latent_dim == 8
    with pytest.raises(ConfigError):
        parse_config({"worlds": [{"name": "a"}, {"name": "a"}], "policies": [{"name": "r", "model": "random"}]})
    with pytest.raises(ConfigError):
        parse_config({"worlds": [{"name": "a", "family": "gnn"}], "policies": [{"name": "r", "model": "random"}]})


def test_study_configs_are_valid():
    for f in ("examples/long_term_study.toml", "bench/long_term_study_reduced.toml"):
        cfg = load_config(REPO / f, check_dataset=False)
        assert {w.family for w in cfg.worlds} == {"ease", "lowrank", "text"}
        names = {p.name for p in cfg.policies}
        assert {"lm-linear", "lm-seq", "long-term", "long-term-bandit", "ease+calibrated"} <= names and len(names) >= 8
        assert cfg.policy("long-term-bandit").bandit is not None
        assert len(cfg.simulation.seeds) >= 3
    full = load_config(REPO / "bench/long_term_study_full.toml", check_dataset=False)
    assert full.simulation.max_users == 0 and full.simulation.steps == 200 and len(full.policies) >= 8


def test_study_runs_every_world_and_summarises(syn_dir, tmp_path):
    df = simulate(_cfg(syn_dir), tmp_path / "study", report=False)
    assert set(df["world"]) == {"e", "l", "t"}
    for w in ("e", "l", "t"):
        assert (tmp_path / "study" / w / "metrics.parquet").is_file()
    s = json.loads((tmp_path / "study" / "study.json").read_text())
    assert set(s["worlds"]) == {"e", "l", "t"} and all(v["NDCG@10"] > 0.1 for v in s["worlds"].values())
    assert len(s["runs"]) == 3 * 4 * 2
    md = (tmp_path / "study" / "study.md").read_text()
    assert "world `l`" in md and "winners per goal" in md
    for goal, g in s["winners"].items():
        for v in g["per_world"].values():
            assert v["winner"] != "oracle"


def test_summary_arithmetic():
    rows = []
    for w in ("a", "b", "c"):
        for p, wel in (("x", 2.0), ("y", 1.0), ("oracle", 9.0)):
            for seed in (0, 1):
                for step in range(10):
                    for grp, share in (("all", 1.0), ("g1", 0.5)):
                        rows.append({"world": w, "policy": p, "seed": seed, "step": step, "group": grp,
                                     "welfare": wel * share + 0.01 * seed, "active": 1.0 - 0.01 * step,
                                     "jaccard_consumed": 0.1 * wel, "exposure_gini": 0.5})
    runs = study.per_run(pd.DataFrame(rows))
    r = runs[(runs.world == "a") & (runs.policy == "x") & (runs.seed == 0)].iloc[0]
    assert r["cum_welfare"] == pytest.approx(20.0) and r["homogenisation"] == pytest.approx(0.2)
    assert r["retention"] == pytest.approx(0.91) and r["min_group_ratio"] == pytest.approx(0.5)
    agg = study.aggregate(runs)
    wins = study.winners(agg)
    assert wins["welfare"]["conclusion"] == "x"          # oracle is never a winner
    assert wins["homogenisation"]["conclusion"] == "y"   # lower is better
    cmp = study.compare(agg, "y", exclude_worlds=("a",))
    assert set(cmp) == {"b", "c"} and cmp["b"]["baseline"] == "x"
    assert cmp["b"]["welfare_ratio"] == pytest.approx(10.05 / 20.05, abs=1e-4) and not cmp["b"]["welfare_met"]
    assert cmp["b"]["homogenisation_cut"] == pytest.approx(0.5) and cmp["b"]["homogenisation_met"]
    assert np.isfinite(agg["cum_welfare_std"]).all()
