"""With the real MiniLM encoder (longrec.lm): semantic text queries and new items in < 1 s."""

from __future__ import annotations

import time

import pytest

from tests.serve.conftest import AUTH

pytestmark = [pytest.mark.lm, pytest.mark.slow]


def test_minilm_new_item_and_text_query(make_client):
    pytest.importorskip("sentence_transformers")
    c = make_client(encoder="auto")
    assert "MiniLM" in c.get("/ready").json()["encoder"] or "minilm" in c.get("/ready").json()["encoder"].lower()
    c.post("/recommend", json={"text": "warm up", "k": 1})
    t0 = time.perf_counter()
    r = c.post("/items", json={"items": [{"item_id": "space-1", "text": "An astronaut stranded on Mars grows potatoes."}]},
               headers=AUTH)
    got = c.post("/recommend", json={"text": "a film about surviving alone on another planet", "k": 1}).json()
    elapsed = time.perf_counter() - t0
    assert r.status_code == 200 and elapsed < 1.0, elapsed
    assert got["items"][0]["item_id"] == "space-1"
