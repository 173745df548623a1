"""`longrec experiment`: a tiny experiment end to end, resume, the statistics, bad input."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from longrec.cli.main import app
from tests.conftest import make_synthetic

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]

EXPERIMENT = """
name = "tiny"
[data]
dir = "data"
seed = 3
[[models]]
name = "pop"
[[models]]
name = "itemknn"
search = { k = [5, 20] }
[[models]]
name = "ease"
config = { tune_l2 = false, l2 = 10.0 }
seeds = [0, 1]
[metrics]
k = [5, 10]
fairness = ["gender"]
n_boot = 50
[stats]
baseline = "pop"
"""


def _write_data(d: Path) -> None:
    d.mkdir(parents=True)
    inter, items = make_synthetic(n_users=40, n_items=30, per_user=8)
    inter = inter.sort_values(["user_id", "timestamp"])
    test = inter.groupby("user_id").tail(2)
    rest = inter.drop(test.index)
    valid = rest.groupby("user_id").tail(1)
    rest.drop(valid.index).to_csv(d / "train.csv", index=False)
    valid.to_csv(d / "valid.csv", index=False)
    test.to_csv(d / "test.csv", index=False)
    items.to_csv(d / "items.csv", index=False)
    users = pd.DataFrame({"user_id": np.arange(1, 41), "gender": ["F" if u % 3 == 0 else "M" for u in range(1, 41)]})
    users.to_csv(d / "users.csv", index=False)


@pytest.fixture
def exp(tmp_path) -> Path:
    _write_data(tmp_path / "data")
    p = tmp_path / "exp.toml"
    p.write_text(EXPERIMENT)
    return p


def _cells(html: str) -> dict[tuple[str, str], float]:
    return {(m, c): float(v) for m, c, v in
            re.findall(r'data-model="([^"]+)" data-col="([^"]+)" data-value="([^"]+)"', html)}


def test_end_to_end_report_matches_results(exp, tmp_path):
    out = tmp_path / "out"
    r = runner.invoke(app, ["experiment", str(exp), "--out", str(out)])
    assert r.exit_code == 0, r.output
    for f in ("results.parquet", "per_user.parquet", "stats.parquet", "fairness.parquet", "experiment.lock.toml",
              "report.html"):
        assert (out / f).is_file(), f
    res = pd.read_parquet(out / "results.parquet")
    # one row per model x seed x metric x k
    assert not res.duplicated(["model", "seed", "metric", "k"]).any()
    assert set(res["model"]) == {"pop", "itemknn", "ease"}
    assert set(res[res["model"] == "ease"]["seed"]) == {0, 1}
    assert {"NDCG", "Recall", "Hit", "MRR", "ItemCoverage", "Gini", "Novelty", "ILD"} <= set(res["metric"])
    # report.html's numbers are results.parquet's (mean over seeds)
    cells = _cells((out / "report.html").read_text())
    main = res[(res["metric"] == "NDCG") & (res["k"] == 10)].groupby("model")["value"].mean()
    for model, v in main.items():
        assert cells[(model, "value")] == pytest.approx(v, abs=1e-12)
        assert cells[(model, "NDCG@10")] == pytest.approx(v, abs=1e-12)
    rec5 = res[(res["metric"] == "Recall") & (res["k"] == 5)].groupby("model")["value"].mean()
    for model, v in rec5.items():
        assert cells[(model, "Recall@5")] == pytest.approx(v, abs=1e-12)
    # the leaderboard's diff and p-values are stats.parquet's
    st = pd.read_parquet(out / "stats.parquet")
    s = st[(st["metric"] == "NDCG") & (st["k"] == 10)].set_index("model")
    for model in ("itemknn", "ease"):
        assert cells[(model, "p_t_holm")] == pytest.approx(s.loc[model, "p_t_holm"], rel=1e-12)
        assert cells[(model, "diff")] == pytest.approx(main[model] - main["pop"], abs=1e-12)
    # results agree with the library's evaluate on the saved lists
    from longrec.metrics.ranking import evaluate

    recs = pd.read_parquet(out / "runs" / "itemknn" / "seed3" / "recs.parquet")
    test = pd.read_csv(tmp_path / "data" / "test.csv")
    ev = evaluate(recs, test, ks=(10,))
    assert ev["NDCG@10"] == pytest.approx(main["itemknn"], abs=1e-12)
    # the lock records resolved configs, the grid search and the data
    lock = tomllib.loads((out / "experiment.lock.toml").read_text())
    assert lock["resolved"]["itemknn"]["config"]["k"] in (5, 20)
    assert len(lock["search"]["itemknn"]["trials"]) == 2
    assert lock["data"]["fingerprints"]["train"].startswith("sha256:")
    assert "numpy" in lock["versions"]
    fair = pd.read_parquet(out / "fairness.parquet")
    assert {"F", "M"} <= set(fair["group"])


def test_resume_skips_finished_runs(exp, tmp_path):
    out = tmp_path / "out"
    assert runner.invoke(app, ["experiment", str(exp), "--out", str(out)]).exit_code == 0
    stamp = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("run.json")}
    assert len(stamp) == 4
    r = runner.invoke(app, ["experiment", str(exp), "--out", str(out), "--resume"])
    assert r.exit_code == 0, r.output
    assert r.output.count("reused") >= 4
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("run.json")} == stamp
    # a changed model config reruns that model only
    exp.write_text(EXPERIMENT.replace("l2 = 10.0", "l2 = 20.0"))
    r = runner.invoke(app, ["experiment", str(exp), "--out", str(out), "--resume"])
    assert r.exit_code == 0, r.output
    after = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("run.json")}
    changed = {p.parent.parent.name for p in after if after[p] != stamp[p]}
    assert changed == {"ease"}


def test_stats_match_scipy():
    from scipy import stats as ss

    from longrec.experiment.stats import compare_to_baseline, holm, paired_tests

    rng = np.random.default_rng(0)
    n = 200
    base = rng.random(n)
    models = {"a": base + rng.normal(0.05, 0.2, n), "b": base + rng.normal(0.0, 0.2, n),
              "c": base + rng.normal(-0.02, 0.1, n)}
    rows = [pd.DataFrame({"model": "base", "user_id": np.arange(n), "metric": "NDCG", "k": 10, "value": base})]
    rows += [pd.DataFrame({"model": m, "user_id": np.arange(n), "metric": "NDCG", "k": 10, "value": v})
             for m, v in models.items()]
    st = compare_to_baseline(pd.concat(rows, ignore_index=True), "base").set_index("model")
    p_t = {m: ss.ttest_rel(v, base).pvalue for m, v in models.items()}
    p_w = {m: ss.wilcoxon(v, base).pvalue for m, v in models.items()}
    for m, v in models.items():
        assert abs(st.loc[m, "p_t"] - p_t[m]) < 1e-12
        assert abs(st.loc[m, "p_wilcoxon"] - p_w[m]) < 1e-12
        d = v - base
        assert abs(st.loc[m, "cohens_d"] - d.mean() / d.std(ddof=1)) < 1e-12
    # Holm by hand: sorted p times (m, m-1, ...), running maximum, capped at 1
    for col, ps in (("p_t_holm", p_t), ("p_wilcoxon_holm", p_w)):
        order = sorted(ps, key=ps.get)
        run = 0.0
        for i, m in enumerate(order):
            run = max(run, min(1.0, (3 - i) * ps[m]))
            assert abs(st.loc[m, col] - run) < 1e-12
    assert st.loc["a", "significant"] == (st.loc["a", "p_t_holm"] < 0.05 and st.loc["a", "p_wilcoxon_holm"] < 0.05)
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, np.nan]), [0.03, 0.06, 0.06, np.nan])
    same = paired_tests(base, base)
    assert same["p_t"] == 1.0 and same["p_wilcoxon"] == 1.0


@pytest.mark.parametrize("text, needle", [
    ("[data\nname = 'x'", "not valid TOML"),
    ("[data]\nname = 'ml-100k'\n[[models]]\nname = 'ease'\nfoo = 1\n", "models.0.foo: unknown key"),
    ("[data]\nname = 'ml-100k'\n[[models]]\nname = 'nosuchmodel'\n", "unknown model 'nosuchmodel'"),
    ("[data]\nname = 'ml-100k'\ndir = 'x'\n[[models]]\nname = 'ease'\n", "exactly one data source"),
    ("[data]\nname = 'ml-100k'\n[[models]]\nname = 'ease'\n[stats]\nbaseline = 'pop'\n", "not a model label"),
    ("[data]\nname = 'ml-100k'\n", "models: required key is missing"),
    ("[data]\nname = 'ml-100k'\n[[models]]\nname = 'ease'\n[metrics]\nk = [10]\n[stats]\nmetric = 'NDCG@20'\n",
     "stats.metric"),
])
def test_bad_toml_exits_2(tmp_path, text, needle):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    r = runner.invoke(app, ["experiment", str(p), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2, r.output
    assert needle in " ".join(r.output.split()), r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "out").exists()


def test_refuses_a_folder_it_did_not_write(exp, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    r = runner.invoke(app, ["experiment", str(exp), "--out", str(out)])
    assert r.exit_code == 2
    assert "not written by `longrec experiment`" in " ".join(r.output.split())
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_bad_fairness_column_fails_before_training(exp, tmp_path):
    exp.write_text(EXPERIMENT.replace('fairness = ["gender"]', 'fairness = ["income"]'))
    r = runner.invoke(app, ["experiment", str(exp), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2
    assert "'income' is not in the user table" in " ".join(r.output.split())
    assert not (tmp_path / "out").exists()


def test_missing_data_file_exits_2_and_writes_nothing(exp, tmp_path):
    exp.write_text(EXPERIMENT.replace('dir = "data"', 'dir = "nowhere"'))
    r = runner.invoke(app, ["experiment", str(exp), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2
    assert "is not a folder" in " ".join(r.output.split())
    assert not (tmp_path / "out").exists()


def test_example_files_parse():
    from longrec.experiment import load_experiment

    qs = (REPO / "examples" / "quickstart.toml").read_text()
    assert qs == (REPO / "src" / "longrec" / "experiment" / "quickstart.toml").read_text()
    for name in ("quickstart.toml", "p2_sequential.toml", "books_b1.toml"):
        cfg = load_experiment(REPO / "examples" / name)
        assert len(cfg.models) >= 3


@pytest.mark.parametrize("values, expected", [
    (["Action Comedy", "Drama"], [{"Action", "Comedy"}, {"Drama"}]),
    (["Action|Sci-Fi", "Drama"], [{"Action", "Sci-Fi"}, {"Drama"}]),
    (["Action, Sci-Fi", "Drama"], [{"Action", "Sci-Fi"}, {"Drama"}]),
])
def test_item_genres_are_split_into_sets(values, expected):
    from longrec.data.dataset import Dataset
    from longrec.experiment.runner import _item_features

    items = pd.DataFrame({"item_id": [1, 2], "genres": pd.Series(values, dtype="string")})
    ds = Dataset(pd.DataFrame({"user_id": [1, 1], "item_id": [1, 2]}), items)
    assert list(_item_features(ds, None)) == expected


def test_quickstart_config_options(tmp_path):
    from longrec.quickstart import quickstart_config

    cfg = quickstart_config()
    assert [m.name for m in cfg.models] == ["pop", "itemknn", "ease", "lm-linear"]
    assert cfg.data.name == "ml-100k" and cfg.data.protocol == "p1" and cfg.baseline == "ease"
    assert [m.name for m in quickstart_config(model="bpr").models][-1] == "bpr"
    assert len(quickstart_config(model="ease").models) == 4  # already in the line-up
    _write_data(tmp_path / "prepared")
    assert quickstart_config(dataset=str(tmp_path / "prepared")).data.dir == (tmp_path / "prepared").resolve()


@pytest.mark.realdata
def test_quickstart_on_ml100k(real_data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LONGREC_DATA_DIR", str(real_data_dir))
    out = tmp_path / "qs"
    r = runner.invoke(app, ["quickstart", "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = pd.read_parquet(out / "results.parquet")
    assert set(res["model"]) == {"pop", "itemknn", "ease", "lm-linear"}
    assert res["n_users"].iloc[0] == 943
    text = " ".join(r.output.split())
    assert "top-10 for user" in text and "We recommend" in text and "report.html" in text
    cells = _cells((out / "report.html").read_text())
    main = res[(res["metric"] == "NDCG") & (res["k"] == 10)].set_index("model")["value"]
    for model, v in main.items():
        assert cells[(model, "value")] == pytest.approx(v, abs=1e-12)
    # a second run reuses every finished run
    r2 = runner.invoke(app, ["quickstart", "--out", str(out)])
    assert r2.exit_code == 0 and r2.output.count("reused") == 4


def test_a_bad_model_config_names_the_model(exp, tmp_path):
    exp.write_text(EXPERIMENT.replace("l2 = 10.0 }", "l2 = -1.0 }"))
    r = runner.invoke(app, ["experiment", str(exp), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2, r.output
    text = " ".join(r.output.split())
    assert "model 'ease'" in text and "l2" in text
    assert "Traceback" not in r.output
    assert not (tmp_path / "out").exists()  # checked before anything is written
