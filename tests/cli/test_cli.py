"""The CLI's fixed contract: train -> recommend -> evaluate on files, and clear user errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from longrec.cli.main import app
from tests.conftest import make_synthetic

runner = CliRunner()


@pytest.fixture
def files(tmp_path):
    inter, items = make_synthetic()
    last = inter.groupby("user_id").tail(1)
    rest = inter.drop(last.index)
    valid = rest.groupby("user_id").tail(1)
    train = rest.drop(valid.index)
    paths = {n: tmp_path / f"{n}.csv" for n in ("train", "valid", "test", "items")}
    train.to_csv(paths["train"], index=False)
    valid.to_csv(paths["valid"], index=False)
    last.to_csv(paths["test"], index=False)
    items.to_csv(paths["items"], index=False)
    return tmp_path, paths


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("model", ["pop", "itemknn", "ease"])
def test_train_recommend_evaluate(files, model):
    tmp, p = files
    r = invoke("train", "--model", model, "--train", p["train"], "--valid", p["valid"], "--items", p["items"],
               "--out", tmp / "m")
    assert r.exit_code == 0, r.output
    (tmp / "users.csv").write_text("user_id\n1\n2\n3\n")
    r = invoke("recommend", "--model", tmp / "m", "--k", 5, "--history", p["valid"], "--users", tmp / "users.csv",
               "--output", tmp / "recs.csv")
    assert r.exit_code == 0, r.output
    recs = pd.read_csv(tmp / "recs.csv")
    assert list(recs.columns) == ["user_id", "item_id", "rank", "score"]
    assert sorted(recs.user_id.unique()) == [1, 2, 3] and recs.groupby("user_id").size().eq(5).all()
    train = pd.read_csv(p["train"])
    valid = pd.read_csv(p["valid"])
    seen = set(zip(pd.concat([train, valid]).user_id, pd.concat([train, valid]).item_id))
    assert not any(pair in seen for pair in zip(recs.user_id, recs.item_id))
    r = invoke("evaluate", "--recs", tmp / "recs.csv", "--truth", p["test"], "--k", "5,10",
               "--output", tmp / "metrics.json")
    assert r.exit_code == 0, r.output
    out = json.loads((tmp / "metrics.json").read_text())
    assert {"NDCG@5", "Recall@10", "Gini@5"} <= set(out["metrics"]) and out["model"] == model


def test_all_users_and_candidates(files):
    tmp, p = files
    assert invoke("train", "--model", "pop", "--train", p["train"], "--out", tmp / "m").exit_code == 0
    (tmp / "cands.csv").write_text("item_id\n1\n2\n3\n4\n5\n6\n")
    (tmp / "newhist.csv").write_text("user_id,item_id\nnewbie,2\nnewbie,4\n")
    r = invoke("recommend", "--model", tmp / "m", "--k", 3, "--all-users", "--history", tmp / "newhist.csv",
               "--candidates", tmp / "cands.csv", "--output", tmp / "recs.csv")
    assert r.exit_code == 0, r.output
    recs = pd.read_csv(tmp / "recs.csv", dtype={"user_id": str})
    assert "newbie" in set(recs.user_id) and recs.user_id.nunique() == 31
    assert set(recs.item_id) <= {1, 2, 3, 4, 5, 6}
    assert not {2, 4} & set(recs.loc[recs.user_id == "newbie", "item_id"])


def test_config_toml_overrides_defaults(files):
    tmp, p = files
    (tmp / "ease.toml").write_text("[config]\nl2 = 42.0\ntune_l2 = false\n")
    r = invoke("train", "--model", "ease", "--config", tmp / "ease.toml", "--train", p["train"], "--out", tmp / "m")
    assert r.exit_code == 0, r.output
    assert "l2 = 42.0" in (tmp / "m" / "config.toml").read_text()


def test_config_toml_layouts_and_ignored_keys(files):
    """A [model] table (as in federated configs) holds the settings too; keys that a
    layout would ignore, or a [model] table naming another model, are errors, not silent defaults."""
    tmp, p = files
    (tmp / "m.toml").write_text('[model]\nname = "ease"\nl2 = 43.0\ntune_l2 = false\n')
    r = invoke("train", "--model", "ease", "--config", tmp / "m.toml", "--train", p["train"], "--out", tmp / "a")
    assert r.exit_code == 0, r.output
    assert "l2 = 43.0" in (tmp / "a" / "config.toml").read_text()
    for text, needle in (('[model]\nl2 = 43.0\n[other]\nx = 1\n', "other"),
                         ('l2 = 7.0\n[config]\ntune_l2 = false\n', "l2"),
                         ('[model]\nname = "bpr"\n', "bpr")):
        (tmp / "b.toml").write_text(text)
        r = invoke("train", "--model", "ease", "--config", tmp / "b.toml", "--train", p["train"], "--out", tmp / "b")
        assert r.exit_code == 2 and needle in r.output and "Traceback" not in r.output, r.output
        assert not (tmp / "b").exists()


@pytest.mark.parametrize("args,needle", [
    (["train", "--model", "nope", "--train", "X", "--out", "Y"], "unknown model"),
    (["train", "--model", "ease", "--train", "/no/such/file.csv", "--out", "Y"], "file.csv"),
    (["recommend", "--model", "/no/such/dir", "--k", "5", "--output", "r.csv"], "does not exist"),
    (["evaluate", "--recs", "/no/recs.csv", "--truth", "/no/t.csv", "--output", "m.json"], "does not exist"),
])
def test_user_errors_are_one_paragraph_not_tracebacks(args, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke(*args)
    assert r.exit_code == 2
    assert needle in r.output and "Traceback" not in r.output


def test_bad_config_and_bad_k(files):
    tmp, p = files
    (tmp / "bad.toml").write_text("[config]\nl2 = -1\n")
    r = invoke("train", "--model", "ease", "--config", tmp / "bad.toml", "--train", p["train"], "--out", tmp / "m")
    assert r.exit_code == 2 and "l2" in r.output
    assert not (tmp / "m").exists()
    assert invoke("train", "--model", "pop", "--train", p["train"], "--out", tmp / "m").exit_code == 0
    r = invoke("recommend", "--model", tmp / "m", "--k", 0, "--output", tmp / "r.csv")
    assert r.exit_code == 2 and "--k" in r.output
    r = invoke("evaluate", "--recs", tmp / "r.csv", "--truth", p["test"], "--k", "ten", "--output", tmp / "x.json")
    assert r.exit_code == 2


def test_corrupt_model_dir_is_a_clear_error(files):
    tmp, p = files
    assert invoke("train", "--model", "pop", "--train", p["train"], "--out", tmp / "m").exit_code == 0
    (tmp / "m" / "model.safetensors").write_bytes(b"garbage")
    r = invoke("recommend", "--model", tmp / "m", "--k", 3, "--output", tmp / "r.csv")
    assert r.exit_code == 2 and "corrupt" in r.output


def test_rerank_and_fairness_flags(files):
    tmp, p = files
    assert invoke("train", "--model", "ease", "--train", p["train"], "--items", p["items"], "--out", tmp / "m").exit_code == 0
    r = invoke("recommend", "--model", tmp / "m", "--k", 5, "--rerank", "mmr:0.5", "--output", tmp / "recs.csv")
    assert r.exit_code == 0, r.output
    recs = pd.read_csv(tmp / "recs.csv")
    assert recs.groupby("user_id").size().eq(5).all()
    assert json.loads((tmp / "recs.csv.meta.json").read_text())["rerank"] == "mmr:0.5"
    r = invoke("recommend", "--model", tmp / "m", "--k", 5, "--rerank", "bogus", "--output", tmp / "r2.csv")
    assert r.exit_code == 2 and "NAME:λ" in r.output and not (tmp / "r2.csv").exists()
    users = pd.DataFrame({"user_id": range(1, 31), "gender": ["M", "F"] * 15, "age": [20, 40, 60] * 10})
    users.to_csv(tmp / "users.csv", index=False)
    r = invoke("evaluate", "--recs", tmp / "recs.csv", "--truth", p["test"], "--k", "5", "--users", tmp / "users.csv",
               "--fairness", "--train", p["train"], "--output", tmp / "fair.json")
    assert r.exit_code == 0, r.output
    out = json.loads((tmp / "fair.json").read_text())
    assert "fairness" in out and out["metrics"]["n_users"] == 30


# `longrec train --model NAME --dp-epsilon E` (the README's commands): NAME's private variant is
# trained, the spent epsilon lands in meta.json, and the model recommends. slack: the accountant's
# spent epsilon may exceed the target by that factor (None: exactly the target, one release)
CLI_DP = [
    ("lm-twotower", 8, 'encoder = "hash"\nepochs = 3\nbatch_size = 8\n', "lm-twotower-dp", 1.02, True),
    ("lm-linear-dp", 3, 'encoder = "hash"\ndim = 8\n', "lm-linear-dp", None, False),
    ("lm-seq", 8, 'encoder = "hash"\ndim = 16\nn_layers = 1\nn_heads = 1\nmax_len = 8\ndp_epochs = 2\n'
     'dp_batch_size = 8\nnum_threads = 1\n', "lm-seq-dp", 1.01, True),
]


@pytest.mark.parametrize("model,eps,toml,trained,slack,needs_opacus", CLI_DP, ids=[c[0] for c in CLI_DP])
def test_train_with_dp_epsilon_trains_the_private_variant(files, model, eps, toml, trained, slack, needs_opacus):
    import json

    if needs_opacus:
        pytest.importorskip("opacus")
    tmp, p = files
    (tmp / "dp.toml").write_text("[config]\n" + toml)
    r = invoke("train", "--model", model, "--dp-epsilon", eps, "--config", tmp / "dp.toml",
               "--train", p["train"], "--items", p["items"], "--out", tmp / "dp")
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp / "dp" / "meta.json").read_text())
    assert meta["model"] == trained and meta["privacy"]["private"]
    spent = meta["privacy"]["epsilon_spent"]
    assert spent == eps if slack is None else 0 < spent <= eps * slack
    r = invoke("recommend", "--model", tmp / "dp", "--k", 3, "--all-users", "--output", tmp / "r.csv")
    assert r.exit_code == 0, r.output
