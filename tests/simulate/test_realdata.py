"""The fitted world on MovieLens-100K (needs LONGREC_DATA_DIR)."""

import pytest


@pytest.mark.realdata
def test_ml100k_true_utility_ranks_p1_test(real_data_dir, monkeypatch):
    monkeypatch.setenv("LONGREC_DATA_DIR", str(real_data_dir))
    from longrec.data.registry import load_split
    from longrec.simulate.config import WorldSettings
    from longrec.simulate.world import validate_world

    res = validate_world(load_split("ml-100k", "p1"), WorldSettings())
    assert res["n_users"] == 943
    assert res["NDCG@10"] >= 0.30, res


@pytest.mark.realdata
@pytest.mark.parametrize("family,floor", [("lowrank", 0.30), ("text", 0.25)])
def test_ml100k_other_world_families_rank_p1_test(real_data_dir, monkeypatch, family, floor):
    # the settings of examples/long_term_study.toml (text with the dependency-free hash encoder here)
    monkeypatch.setenv("LONGREC_DATA_DIR", str(real_data_dir))
    from longrec.data.registry import load_split
    from longrec.simulate.config import WorldSettings
    from longrec.simulate.world import validate_world

    res = validate_world(load_split("ml-100k", "p1"), WorldSettings(family=family, latent_dim=24, text_encoder="hash"))
    assert res["n_users"] == 943 and res["family"] == family
    assert res["NDCG@10"] >= floor, res
