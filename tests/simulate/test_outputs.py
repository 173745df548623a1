"""End to end: CLI -> config -> world -> loop -> metrics.parquet + offline report; Ray sweep."""

import re

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from longrec.cli._common import handle_errors
from longrec.cli.simulate import simulate

TOML = """
[simulation]
name = "tiny"
dataset = "{d}"
steps = {steps}
retrain_every = 4
slate_size = 5
seeds = {seeds}
[world]
latent_dim = 16
utility_l2 = 50.0
no_choice_utility = 2.0
[metrics]
pairs = 200
{policies}
"""
POLICIES = """
[[policies]]
name = "ease"
model = "ease"
params = {{ l2 = 50.0, tune_l2 = false }}
[[policies]]
name = "ease+eps"
model = "ease"
params = {{ l2 = 50.0, tune_l2 = false }}
exploration = {{ kind = "epsilon", epsilon = 0.3 }}
[[policies]]
name = "pop"
model = "pop"
[[policies]]
name = "random"
model = "random"
[[policies]]
name = "oracle"
model = "oracle"
""".format()


def _app():
    app = typer.Typer()
    app.command("simulate")(handle_errors(simulate))
    app.command("other")(lambda: None)  # two commands keep the subcommand name
    return app


def _write(tmp_path, syn_dir, steps=8, seeds="[0, 1]", policies=POLICIES):
    f = tmp_path / "sim.toml"
    f.write_text(TOML.format(d=syn_dir, steps=steps, seeds=seeds, policies=policies))
    return f


def test_cli_end_to_end_and_offline_report(tmp_path, syn_dir):
    cfg = _write(tmp_path, syn_dir)
    out = tmp_path / "out"
    res = CliRunner().invoke(_app(), ["simulate", str(cfg), "--out", str(out)])
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(out / "metrics.parquet")
    assert set(df["policy"]) == {"ease", "ease+eps", "pop", "random", "oracle"}
    assert set(df["seed"]) == {0, 1} and df["step"].max() == 7
    assert {"all", "gender=F", "gender=M"} <= set(df["group"])
    for png in ("metrics_over_time.png", "tradeoff.png", "groups.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    assert not re.search(r"<script|<link|src=\"http|href=\"http", html)  # opens offline, no CDN
    assert "NDCG@10" in html and "Trade-off finding" in html
    assert (out / "world.json").is_file() and (out / "config.toml").is_file()


def test_cli_bad_config_is_one_clear_error(tmp_path, syn_dir):
    bad = POLICIES.replace('model = "pop"', 'model = "popular"')
    cfg = _write(tmp_path, syn_dir, policies=bad)
    out = tmp_path / "out"
    res = CliRunner().invoke(_app(), ["simulate", str(cfg), "--out", str(out)])
    assert res.exit_code == 2
    assert "unknown model 'popular'" in res.output and "Traceback" not in res.output
    assert not out.exists()  # nothing was started
    cfg.write_text(TOML.format(d=syn_dir, steps=-1, seeds="[0]", policies=POLICIES))
    res = CliRunner().invoke(_app(), ["simulate", str(cfg), "--out", str(out)])
    assert res.exit_code == 2 and "simulation.steps" in res.output


@pytest.mark.ray
def test_ray_sweep_two_tasks_same_results(tmp_path, syn_dir):
    pytest.importorskip("ray")
    from longrec.simulate.config import load_config
    from longrec.simulate.loop import build_world, run_sweep

    pol = '[[policies]]\nname = "ease"\nmodel = "ease"\nparams = { l2 = 50.0, tune_l2 = false }\n'
    cfg = load_config(_write(tmp_path, syn_dir, steps=6, seeds="[0, 1]", policies=pol))
    world = build_world(cfg)
    on_ray, timings = run_sweep(cfg, world, use_ray=True)
    assert len(timings) == 2 and set(on_ray["seed"]) == {0, 1}
    local, _ = run_sweep(cfg, world, use_ray=False)
    pd.testing.assert_frame_equal(on_ray, local)  # same code path, same numbers
