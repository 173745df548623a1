"""`longrec experiment --ray`: the (model, seed) runs as Ray tasks give the outputs of a local run."""

from __future__ import annotations

import tomllib

import pandas as pd
import pytest
from typer.testing import CliRunner

from longrec.cli.main import app
from tests.experiment.test_experiment import EXPERIMENT, _write_data

runner = CliRunner()


@pytest.mark.ray
def test_ray_gives_the_local_results(tmp_path):
    pytest.importorskip("ray")
    _write_data(tmp_path / "data")
    exp = tmp_path / "exp.toml"
    exp.write_text(EXPERIMENT)  # pop, itemknn with a valid search, ease with two seeds
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    r = runner.invoke(app, ["experiment", str(exp), "--out", str(local)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["experiment", str(exp), "--out", str(on_ray), "--ray"])
    assert r.exit_code == 0, r.output
    assert "(ray)" in r.output and "ray: 4 run(s)" in r.output

    # deterministic models: every number is equal, not just close; only the fit times differ
    a = pd.read_parquet(local / "results.parquet").drop(columns="fit_seconds")
    b = pd.read_parquet(on_ray / "results.parquet").drop(columns="fit_seconds")
    assert len(a) > 0 and set(a["model"]) == {"pop", "itemknn", "ease"}
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    for name in ("per_user.parquet", "stats.parquet", "fairness.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(local / name), pd.read_parquet(on_ray / name),
                                      check_exact=True)
    for run in ("pop/seed3", "itemknn/seed3", "ease/seed0", "ease/seed1"):
        ra = pd.read_parquet(local / "runs" / run / "recs.parquet")
        rb = pd.read_parquet(on_ray / "runs" / run / "recs.parquet")
        # the same lists; EASE's float32 scores differ in the last bit even between two local fits
        pd.testing.assert_frame_equal(ra.drop(columns="score"), rb.drop(columns="score"), check_exact=True)
        pd.testing.assert_series_equal(ra["score"], rb["score"], check_exact=False, rtol=1e-5, atol=1e-6)
    la = tomllib.loads((local / "experiment.lock.toml").read_text())
    lb = tomllib.loads((on_ray / "experiment.lock.toml").read_text())
    for label, res in la["resolved"].items():  # fit_info holds timings; the rest is the same
        assert {k: v for k, v in res.items() if k != "fit_info"} == \
            {k: v for k, v in lb["resolved"][label].items() if k != "fit_info"}
    assert la["search"] == _no_times(lb["search"], la["search"])
    assert la["executor"] == "local" and lb["executor"] == "ray local"

    # --resume with --ray reuses every finished run and search
    r = runner.invoke(app, ["experiment", str(exp), "--out", str(on_ray), "--ray", "--resume"])
    assert r.exit_code == 0, r.output
    assert r.output.count("reused") == 5 and "(ray)" not in r.output


def _no_times(search: dict, like: dict) -> dict:
    """`search` with the fit times of `like` (the times are the only thing allowed to differ)."""
    out = {}
    for label, s in search.items():
        trials = [{**t, "fit_seconds": u["fit_seconds"]} for t, u in zip(s["trials"], like[label]["trials"])]
        out[label] = {**s, "trials": trials}
    return out


def test_ray_address_that_does_not_answer_exits_2(tmp_path):
    pytest.importorskip("ray")
    _write_data(tmp_path / "data")
    exp = tmp_path / "exp.toml"
    exp.write_text(EXPERIMENT)
    r = runner.invoke(app, ["experiment", str(exp), "--out", str(tmp_path / "out"), "--ray-address",
                            "127.0.0.1:1"])
    assert r.exit_code == 2, r.output
    assert "Ray" in r.output and "Traceback" not in r.output
