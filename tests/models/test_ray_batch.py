"""`recommend --ray`: batch recommendation on Ray Data writes exactly the rows of the
one-process path (several chunks, several workers, inference-time histories, candidates)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from longrec.errors import LongrecError
from tests.conftest import make_synthetic

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("raybatch")
    inter, items = make_synthetic(n_users=2300, n_items=60, per_user=6, str_ids=True)
    last = inter.groupby("user_id").tail(2)
    inter.drop(last.index).to_csv(d / "train.csv", index=False)
    # an inference-time history, in shuffled row order, with 40 users the model never saw
    extra = pd.concat([last, pd.DataFrame({"user_id": [f"new{j}" for j in range(40)],
                                           "item_id": [f"i{1 + j % 60}" for j in range(40)],
                                           "rating": 3.0, "timestamp": 2_000_000})])
    extra.sample(frac=1.0, random_state=0).to_csv(d / "hist.csv", index=False)
    items.to_csv(d / "items.csv", index=False)
    pd.DataFrame({"item_id": [f"i{j}" for j in range(1, 61, 3)]}).to_csv(d / "cand.csv", index=False)
    from longrec.pipeline import train_from_files

    train_from_files("ease", d / "train.csv", d / "ease", items=d / "items.csv")
    train_from_files("lm-seq", d / "train.csv", d / "seq", items=d / "items.csv",
                     config={"encoder": "hash", "epochs": 1, "dim": 16, "n_layers": 1, "n_heads": 1, "max_len": 8})
    return d


@pytest.mark.parametrize("model", ["ease", "seq"])
def test_ray_rows_equal_one_process_rows(files, ray_session, tmp_path, model):
    from longrec.pipeline import recommend_on_ray_to_path, recommend_to_file

    kw = dict(k=7, histories=[files / "hist.csv"], candidates=files / "cand.csv" if model == "ease" else None)
    one = recommend_to_file(files / model, output=tmp_path / "one.csv", **kw)
    res = recommend_on_ray_to_path(files / model, output=tmp_path / "ray.csv", workers=2, chunk=1024, **kw)
    assert res["chunks"] == 3 and res["workers"] == 2 and res["users"] == 2340  # 2,300 known + 40 new users
    assert res["rows"] == len(one) and one["user_id"].nunique() == 2340
    # the same bytes: same users in the same order, same items, ranks and scores
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    meta = json.loads((tmp_path / "ray.csv.meta.json").read_text())
    assert meta["n_users"] == 2340 and meta["ray"]["workers"] == 2

    # the Parquet dataset holds the same rows
    recommend_on_ray_to_path(files / model, output=tmp_path / "recs.parquet", workers=2, chunk=1024, **kw)
    from longrec.pipeline import read_recs

    parts = sorted(p.name for p in (tmp_path / "recs.parquet").iterdir())
    assert parts == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    back = read_recs(tmp_path / "recs.parquet")
    pd.testing.assert_frame_equal(back.astype({"user_id": object, "item_id": object}),
                                  pd.read_csv(tmp_path / "one.csv").astype({"user_id": object, "item_id": object}))


def test_cli_recommend_ray_and_its_errors(files, ray_session, tmp_path):
    from longrec.cli.main import app

    runner = CliRunner()
    r = runner.invoke(app, ["recommend", "--model", str(files / "ease"), "--k", "5", "--history", str(files / "hist.csv"),
                            "--out", str(tmp_path / "recs.csv"), "--ray", "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "rows for 2,340 users" in " ".join(r.output.split())
    recs = pd.read_csv(tmp_path / "recs.csv")
    assert len(recs) == 5 * 2340 and list(recs.columns) == ["user_id", "item_id", "rank", "score"]

    r = runner.invoke(app, ["recommend", "--model", str(files / "ease"), "--k", "5", "--out", str(tmp_path / "x.csv"),
                            "--ray", "--rerank", "mmr:0.3"])
    assert r.exit_code == 2 and "--rerank cannot be combined with --ray" in " ".join(r.output.split())
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    from longrec.pipeline import recommend_on_ray_to_path

    with pytest.raises(LongrecError, match="other files"):
        recommend_on_ray_to_path(files / "ease", k=5, output=tmp_path / "busy")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_chunks_must_align_with_the_scoring_batch(files):
    from longrec.errors import ConfigError
    from longrec.models._ray_batch import recommend_on_ray

    pytest.importorskip("ray.data")
    with pytest.raises(ConfigError, match="multiple of 1024"):
        recommend_on_ray(files / "ease", np.array(["u1"], dtype=object), None, 5, lambda part: None, chunk=1000)
