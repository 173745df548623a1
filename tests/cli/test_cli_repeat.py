"""The CLI on an order log: repeat rows kept at training (--duplicates keep-all) and consumed
items kept eligible (--keep-seen)."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from longrec.cli.main import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_train_keep_all_and_recommend_keep_seen(tmp_path):
    # user 1 buys milk in every order, bread twice, eggs once; user 2 buys other things
    rows = [(1, "milk", 1), (1, "bread", 1), (1, "milk", 2), (1, "eggs", 2), (1, "milk", 3), (1, "bread", 3),
            (2, "tea", 1), (2, "jam", 1), (2, "tea", 2), (2, "rice", 2), (2, "oats", 2)]
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(tmp_path / "orders.csv", index=False)
    r = invoke("train", "--model", "top-frequency", "--train", tmp_path / "orders.csv", "--duplicates", "keep-all",
               "--out", tmp_path / "m")
    assert r.exit_code == 0, r.output
    r = invoke("recommend", "--model", tmp_path / "m", "--k", 3, "--keep-seen", "--output", tmp_path / "recs.csv")
    assert r.exit_code == 0, r.output
    recs = pd.read_csv(tmp_path / "recs.csv")
    assert list(recs.loc[recs.user_id == 1, "item_id"]) == ["milk", "bread", "eggs"]
    assert json.loads((tmp_path / "recs.csv.meta.json").read_text())["keep_seen"] is True
    # without --keep-seen the user's own items are excluded, as for every other model
    r = invoke("recommend", "--model", tmp_path / "m", "--k", 3, "--output", tmp_path / "recs2.csv")
    assert r.exit_code == 0, r.output
    recs2 = pd.read_csv(tmp_path / "recs2.csv")
    assert not set(recs2.loc[recs2.user_id == 1, "item_id"]) & {"milk", "bread", "eggs"}


def test_default_duplicates_drop_repeats_and_a_bad_policy_is_exit_2(tmp_path):
    rows = [(1, "milk", 1), (1, "bread", 1), (1, "bread", 2), (1, "milk", 3), (1, "milk", 4), (1, "eggs", 4)]
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(tmp_path / "o.csv", index=False)
    r = invoke("train", "--model", "top-frequency", "--train", tmp_path / "o.csv", "--out", tmp_path / "m")
    assert r.exit_code == 0, r.output
    r = invoke("recommend", "--model", tmp_path / "m", "--k", 1, "--keep-seen", "--output", tmp_path / "r.csv")
    assert r.exit_code == 0
    # keep-last left one row per item: milk and eggs tie on count and recency, the lower id wins
    assert pd.read_csv(tmp_path / "r.csv")["item_id"].tolist() == ["eggs"]
    r = invoke("train", "--model", "top-frequency", "--train", tmp_path / "o.csv", "--duplicates", "sum-up",
               "--out", tmp_path / "m2")
    assert r.exit_code == 2 and "duplicate policy" in r.output
