"""Real-data smoke test: the CLI reproduces the published P1/P2 MostPopular figures and
EASE's P1 target from the shared split files (CI sets LONGREC_DATA_DIR)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from longrec.cli.main import app

pytestmark = pytest.mark.realdata


def run_protocol(real_data_dir, tmp_path, model, protocol):
    s = real_data_dir / "ml-100k"
    split = s / "splits" / protocol
    r = CliRunner()
    out = tmp_path / model
    res = r.invoke(app, ["train", "--model", model, "--train", str(split / "train.csv"), "--valid",
                         str(split / "valid.csv"), "--items", str(s / "ml-100k.item"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    pd.read_csv(split / "test.csv")[["user_id"]].drop_duplicates().to_csv(tmp_path / "u.csv", index=False)
    res = r.invoke(app, ["recommend", "--model", str(out), "--k", "10", "--history", str(split / "valid.csv"),
                         "--users", str(tmp_path / "u.csv"), "--output", str(tmp_path / "recs.csv")])
    assert res.exit_code == 0, res.output
    res = r.invoke(app, ["evaluate", "--recs", str(tmp_path / "recs.csv"), "--truth", str(split / "test.csv"),
                         "--k", "10", "--catalog", str(s / "ml-100k.item"), "--output", str(tmp_path / "m.json")])
    assert res.exit_code == 0, res.output
    return json.loads((tmp_path / "m.json").read_text())["metrics"]


@pytest.mark.parametrize("protocol,expected", [("p1", 0.1416), ("p2", 0.0254)])
def test_most_popular_matches_published_figure(real_data_dir, tmp_path, protocol, expected):
    m = run_protocol(real_data_dir, tmp_path, "pop", protocol)
    assert abs(m["NDCG@10"] - expected) < 1e-4 and m["n_users"] == 943


def test_ease_reaches_p1_target(real_data_dir, tmp_path):
    assert run_protocol(real_data_dir, tmp_path, "ease", "p1")["NDCG@10"] >= 0.33
