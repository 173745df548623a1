import sqlite3
import subprocess
import sys
import threading

import numpy as np
import pytest

from longrec.lm.cache import CachedEncoder, EmbeddingCache
from longrec.lm.errors import EncoderError
from longrec.lm.paths import default_embedding_cache_path

from .conftest import FakeEncoder


def test_hits_and_misses(tmp_path):
    inner = FakeEncoder()
    enc = CachedEncoder(inner, tmp_path / "c.sqlite")
    texts = ["a b", "c d", "a b", "e"]
    v1 = enc.encode(texts)
    assert v1.dtype == np.float32 and v1.shape == (4, 64)
    assert np.allclose(np.linalg.norm(v1, axis=1), 1, atol=1e-5)
    assert inner.texts_encoded == 3  # duplicates encoded once
    v2 = enc.encode(texts)
    assert inner.texts_encoded == 3 and enc.last_hits == 3 and enc.last_misses == 0
    assert np.array_equal(v1, v2)
    enc.encode(["a b", "new text"])
    assert inner.texts_encoded == 4
    # a fresh process-level object over the same file sees the vectors
    enc2 = CachedEncoder(FakeEncoder(), tmp_path / "c.sqlite")
    assert np.array_equal(enc2.encode(texts), v1) and enc2.inner.texts_encoded == 0
    assert enc.encode([]).shape[0] == 0


def test_exact_text_keys(tmp_path):
    enc = CachedEncoder(FakeEncoder(), tmp_path / "c.sqlite")
    enc.encode(["Heat"])
    enc.encode(["Heat ", "heat", "Héat"])
    assert enc.last_misses == 3


def test_changed_model_never_returns_stale_vectors(tmp_path):
    path = tmp_path / "c.sqlite"
    a = CachedEncoder(FakeEncoder(name="v1"), path)
    b = CachedEncoder(FakeEncoder(name="v2"), path)
    va = a.encode(["same text", "other"])
    vb = b.encode(["same text", "other"])
    assert b.inner.texts_encoded == 2  # nothing from v1 reused
    assert not np.allclose(va, vb)
    wide = CachedEncoder(FakeEncoder(dim=32, name="v1"), path)  # different identity (dim)
    assert wide.encode(["same text"]).shape == (1, 32)
    stats = a.cache.stats()["models"]
    assert len(stats) == 3


def test_blobs_are_raw_float32_and_damage_is_a_miss(tmp_path):
    path = tmp_path / "c.sqlite"
    enc = CachedEncoder(FakeEncoder(), path)
    v = enc.encode(["x y"])
    con = sqlite3.connect(path)
    (blob,) = con.execute("SELECT vec FROM vectors").fetchone()
    assert len(blob) == 64 * 4 and np.array_equal(np.frombuffer(blob, "<f4"), v[0])
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.execute("UPDATE vectors SET vec = x'00'")
    con.commit()
    con.close()
    enc2 = CachedEncoder(FakeEncoder(), path)
    assert np.array_equal(enc2.encode(["x y"]), v) and enc2.inner.texts_encoded == 1


def test_clear(tmp_path):
    enc = CachedEncoder(FakeEncoder(), tmp_path / "c.sqlite")
    enc.encode(["a"])
    enc.cache.clear(enc.identity)
    enc.encode(["a"])
    assert enc.last_misses == 1
    enc.cache.clear()
    assert enc.cache.stats()["models"] == {}


def test_concurrent_readers_and_writer(tmp_path):
    path = tmp_path / "c.sqlite"
    texts = [f"text {i}" for i in range(300)]
    ref = CachedEncoder(FakeEncoder(), path).encode(texts)
    shared = CachedEncoder(FakeEncoder(), path)
    errors = []

    def reader():
        try:
            for _ in range(5):
                assert np.array_equal(shared.encode(texts), ref)
        except Exception as e:  # pragma: no cover
            errors.append(e)

    def writer():
        try:
            w = CachedEncoder(FakeEncoder(), path)
            for j in range(5):
                w.encode([f"new {j} {i}" for i in range(50)])
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(4)] + [threading.Thread(target=writer)]
    code = ("import sys, numpy as np; sys.path.insert(0, sys.argv[2])\n"
            "from tests.lm.conftest import FakeEncoder\nfrom longrec.lm.cache import CachedEncoder\n"
            "e = CachedEncoder(FakeEncoder(), sys.argv[1])\n"
            "for _ in range(5): v = e.encode([f'text {i}' for i in range(300)])\n"
            "print(e.inner.texts_encoded, float(v.sum()))")
    import pathlib

    root = str(pathlib.Path(__file__).resolve().parents[2])
    proc = subprocess.Popen([sys.executable, "-c", code, str(path), root], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out, err = proc.communicate(timeout=120)
    assert not errors
    assert proc.returncode == 0, err
    n, total = out.split()
    assert n == "0" and abs(float(total) - float(ref.sum())) < 1e-2


def test_default_location(monkeypatch, tmp_path):
    monkeypatch.setenv("LONGREC_CACHE_DIR", str(tmp_path / "cc"))
    assert default_embedding_cache_path() == tmp_path / "cc" / "embeddings.sqlite"
    c = EmbeddingCache()
    assert c.path.exists()
    monkeypatch.delenv("LONGREC_CACHE_DIR")
    assert str(default_embedding_cache_path()).endswith(".cache/longrec/embeddings.sqlite")


def test_bad_inputs(tmp_path):
    enc = CachedEncoder(FakeEncoder(), tmp_path / "c.sqlite")
    with pytest.raises(EncoderError, match="None"):
        enc.encode(None)
    with pytest.raises(EncoderError, match="not a string"):
        enc.encode(["ok", None])
    with pytest.raises(EncoderError, match="list of strings"):
        enc.encode(5)
    v = enc.encode("single string")
    assert v.shape == (1, 64)
    long = enc.encode(["word " * 100_000])
    assert long.shape == (1, 64)


def test_unwritable_location(tmp_path):
    from longrec.lm.errors import LMError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LMError, match="LONGREC_CACHE_DIR"):
        EmbeddingCache(blocker / "sub" / "c.sqlite")
