from pathlib import Path

import pytest

from longrec.errors import ConfigError
from longrec.simulate.config import load_config, parse_config

REPO = Path(__file__).resolve().parents[2]
POL = [{"name": "ease", "model": "ease"}]


def _err(data) -> str:
    with pytest.raises(ConfigError) as e:
        parse_config(data, source="my.toml")
    return str(e.value)


def test_example_config_is_valid():
    cfg = load_config(REPO / "examples" / "simulate_ml100k.toml", check_dataset=False)
    names = [p.name for p in cfg.policies]
    assert {"pop", "ease", "random", "oracle"} <= set(names)
    assert any(p.exploration and p.exploration.kind == "epsilon" for p in cfg.policies)
    assert cfg.simulation.steps == 200 and cfg.simulation.slate_size == 10 and cfg.simulation.retrain_every == 20


def test_unknown_policy_model():
    msg = _err({"policies": [{"name": "x", "model": "deepfm"}]})
    assert "[[policies]] #1 ('x').model" in msg and "unknown model 'deepfm'" in msg and "ease" in msg


def test_negative_steps():
    msg = _err({"simulation": {"steps": -3}, "policies": POL})
    assert "simulation.steps" in msg and "greater than or equal to 1" in msg


def test_bad_model_params_and_unknown_keys():
    msg = _err({"policies": [{"name": "e", "model": "ease", "params": {"l2": -1}}]})
    assert "EASEConfig" in msg and "l2" in msg
    msg = _err({"world": {"drift": 0.1}, "policies": POL})
    assert "world.drift" in msg and "Extra inputs" in msg


def test_duplicates_and_empty_policies():
    assert "repeated: a" in _err({"policies": [{"name": "a", "model": "pop"}, {"name": "a", "model": "ease"}]})
    assert "policies" in _err({"policies": []})
    assert "takes no params" in _err({"policies": [{"name": "o", "model": "oracle", "params": {"k": 1}}]})


def test_missing_dataset_fails_before_work(tmp_path, monkeypatch):
    monkeypatch.setenv("LONGREC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LONGREC_CACHE_DIR", str(tmp_path / "cache"))
    f = tmp_path / "c.toml"
    f.write_text('[simulation]\ndataset = "ml-100k"\n[[policies]]\nname = "p"\nmodel = "pop"\n')
    with pytest.raises(ConfigError, match="'ml-100k' was not found.*LONGREC_DATA_DIR"):
        load_config(f)
    f.write_text('[simulation]\ndataset = "nope"\n[[policies]]\nname = "p"\nmodel = "pop"\n')
    with pytest.raises(ConfigError, match="'nope' was not found"):
        load_config(f)


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.toml")
    f = tmp_path / "bad.toml"
    f.write_text("[simulation\nsteps=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(f)
