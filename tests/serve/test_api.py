"""Every endpoint and its errors, through FastAPI's TestClient."""

from __future__ import annotations

import time

import pytest

from tests.serve.conftest import AUTH


def recs(resp):
    assert resp.status_code == 200, resp.text
    return [it["item_id"] for it in resp.json()["items"]]


# ---------------------------------------------------------------------- ops
def test_health_ready_openapi(client):
    assert client.get("/health").json() == {"status": "ok"}
    r = client.get("/ready").json()
    assert r["ready"] and r["model"] == "ease" and r["n_items"] == 40 and r["retrieval"] == "exact"
    schema = client.get("/openapi.json").json()
    for path in ("/recommend", "/explain", "/items", "/events", "/admin/reload", "/items/{item_id}/similar"):
        assert path in schema["paths"]
    # the limits are part of the schema
    k = schema["components"]["schemas"]["RecommendRequest"]["properties"]["k"]
    assert k["maximum"] == 1000 and k["minimum"] == 1


def test_metrics_prometheus_text(client):
    client.post("/recommend", json={"user_id": 1, "k": 3})
    client.post("/recommend", json={"k": 3})  # 422
    text = client.get("/metrics").text
    assert 'longrec_http_requests_total{method="POST",path="/recommend",status="200"} 1' in text
    assert 'longrec_http_requests_total{method="POST",path="/recommend",status="422"} 1' in text
    assert 'longrec_http_request_duration_seconds_bucket{method="POST",path="/recommend",le="+Inf"} 2' in text
    assert "# TYPE longrec_http_request_duration_seconds histogram" in text
    assert "longrec_model_items 40" in text


# ---------------------------------------------------------------------- /recommend
def test_recommend_shape_matches_model(client, model_dir):
    from longrec.models.base import Recommender

    r = client.post("/recommend", json={"user_id": "1", "k": 5})
    body = r.json()
    assert set(body["items"][0]) >= {"item_id", "score", "title"}
    assert body["items"][0]["title"].startswith("Item ")
    expected = Recommender.load(model_dir).recommend(users=[1], k=5)["item_id"].tolist()
    assert recs(r) == expected
    assert recs(client.post("/recommend", json={"user_id": 1, "k": 5})) == expected  # int or str ids


def test_recommend_history_and_unknown_user(client):
    a = recs(client.post("/recommend", json={"history": [2, 4, 6], "k": 5}))
    assert len(a) == 5 and not {2, 4, 6} & set(a)
    assert sum(i % 2 == 0 for i in a) >= 4  # even-item taste cluster
    cold = recs(client.post("/recommend", json={"user_id": "nobody", "k": 5}))
    assert len(cold) == 5  # popularity fallback


def test_recommend_candidates_and_exclude_seen(client):
    got = recs(client.post("/recommend", json={"history": [2], "k": 3, "candidates": [2, 3, 4, 5]}))
    assert set(got) <= {3, 4, 5} and 2 not in got
    got = recs(client.post("/recommend", json={"history": [2], "k": 4, "candidates": [2, 3, 4, 5], "exclude_seen": False}))
    assert set(got) == {2, 3, 4, 5}
    r = client.post("/recommend", json={"history": [2], "candidates": ["zz", "yy"]})
    assert r.status_code == 404 and "none of the 2 candidate items" in r.json()["message"]


def test_recommend_text_query_and_explanations(client):
    r = client.post("/recommend", json={"text": "Item 7", "k": 3})
    assert r.status_code == 200
    items = r.json()["items"]
    assert items[0]["item_id"] == 7 and items[0]["source"] == "text"
    r = client.post("/recommend", json={"user_id": 1, "k": 3, "explain": True}).json()
    assert all(it["because"] and "similarity" in it["because"][0] for it in r["items"])
    r = client.post("/recommend", json={"user_id": 1, "k": 5, "rerank": "mmr"})
    assert r.status_code == 200 and len(r.json()["items"]) == 5


@pytest.mark.parametrize("body,needle", [
    ({"k": 3}, "give user_id, history or text"),
    ({"user_id": 1, "k": 0}, "k: Input should be greater than or equal to 1"),
    ({"user_id": 1, "k": 1001}, "k: Input should be less than or equal to 1000"),
    ({"user_id": 1, "k": "ten"}, "k: Input should be a valid integer"),
    ({"user_id": 1, "kk": 3}, "kk: Extra inputs are not permitted"),
    ({"user_id": [1]}, "user_id"),
    ({"history": list(range(6000))}, "history: List should have at most 5000 items"),
    ({"text": ""}, "text: String should have at least 1 character"),
    ({"user_id": 1, "rerank": "magic"}, "rerank: Input should be 'none' or 'mmr'"),
])
def test_recommend_validation_422(client, body, needle):
    r = client.post("/recommend", json=body)
    assert r.status_code == 422
    assert needle in r.json()["message"], r.json()["message"]


def test_malformed_json_and_body_limit(make_client):
    c = make_client(max_body_bytes=2048)
    r = c.post("/recommend", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["message"]
    r = c.post("/recommend", json={"history": list(range(1000))})
    assert r.status_code == 413 and "larger than 2,048 bytes" in r.json()["message"]

    def chunks():  # no Content-Length: the streaming limit applies
        for _ in range(10):
            yield b" " * 500

    r = c.post("/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


# ---------------------------------------------------------------------- /explain, /similar
def test_explain(client):
    r = client.post("/explain", json={"user_id": 1, "item_id": 3}).json()
    assert r["item_id"] == 3 and r["model_rank"] >= 1 and isinstance(r["model_score"], float)
    assert len(r["because"]) == 3 and r["because"][0]["similarity"] >= r["because"][1]["similarity"]
    assert client.post("/explain", json={"user_id": 1, "item_id": 999}).status_code == 404
    assert client.post("/explain", json={"item_id": 3}).status_code == 422


def test_similar(client):
    r = client.get("/items/7/similar", params={"k": 4}).json()
    ids = [it["item_id"] for it in r["items"]]
    assert r["item_id"] == 7 and len(ids) == 4 and 7 not in ids
    scores = [it["score"] for it in r["items"]]
    assert scores == sorted(scores, reverse=True)
    assert client.get("/items/999/similar").status_code == 404
    assert client.get("/items/7/similar", params={"k": 0}).status_code == 422
    assert client.get("/items/7/similar", params={"k": "x"}).status_code == 422


# ---------------------------------------------------------------------- auth
@pytest.mark.parametrize("path,body", [
    ("/events", {"events": [{"event_id": "a", "user_id": 1, "item_id": 2, "type": "click", "timestamp": 1}]}),
    ("/items", {"items": [{"item_id": "n1", "text": "hello"}]}),
    ("/admin/reload", {}),
])
def test_write_auth(make_client, path, body):
    c = make_client()
    r = c.post(path, json=body)
    assert r.status_code == 401 and "Bearer" in r.json()["message"]
    assert c.post(path, json=body, headers={"Authorization": "Basic abc"}).status_code == 401
    r = c.post(path, json=body, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 403 and "wrong API key" in r.json()["message"]
    assert c.post(path, json=body, headers=AUTH).status_code == 200
    off = make_client(api_key="")  # no key configured: disabled, not open
    r = off.post(path, json=body, headers=AUTH)
    assert r.status_code == 403 and "LONGREC_API_KEY" in r.json()["message"]
    assert off.post(path, json=body).status_code == 403


def test_api_key_from_environment(monkeypatch, tmp_path, model_dir):
    from fastapi.testclient import TestClient

    from longrec.serve import ServeSettings, create_app

    monkeypatch.setenv("LONGREC_API_KEY", "env-key")
    app = create_app(model_dir, db_url=f"sqlite:///{tmp_path / 'e.db'}", settings=ServeSettings(encoder="hash"))
    c = TestClient(app)
    ev = {"events": [{"event_id": "x", "user_id": 1, "item_id": 2}]}
    assert c.post("/events", json=ev, headers={"Authorization": "Bearer env-key"}).status_code == 200
    assert c.post("/events", json=ev, headers=AUTH).status_code == 403


# ---------------------------------------------------------------------- /events
def test_events_idempotent_and_used_as_history(client):
    before = recs(client.post("/recommend", json={"user_id": "fresh-user", "k": 5}))
    evs = [{"event_id": f"e{i}", "user_id": "fresh-user", "item_id": it, "type": "click", "timestamp": 100 + i}
           for i, it in enumerate([2, 4, 6, 8])]
    r = client.post("/events", json={"events": evs}, headers=AUTH)
    assert r.json() == {"stored": 4, "duplicates": 0}
    r = client.post("/events", json={"events": evs + evs[:1]}, headers=AUTH)
    assert r.json() == {"stored": 0, "duplicates": 5}
    body = client.post("/recommend", json={"user_id": "fresh-user", "k": 5}).json()
    after = [it["item_id"] for it in body["items"]]
    assert body["history_used"] == 4
    assert after != before and not {2, 4, 6, 8} & set(after)
    assert after == recs(client.post("/recommend", json={"history": [2, 4, 6, 8], "k": 5}))
    store = client.app.state.service.store
    assert store.count_events() == 4
    assert store.history("fresh-user", 10) == ["2", "4", "6", "8"]


def test_events_timestamps_and_validation(client):
    ok = {"events": [{"event_id": 1, "user_id": 5, "item_id": 3, "timestamp": "2024-05-01T10:00:00Z"},
                     {"event_id": 2, "user_id": 5, "item_id": 9}]}
    assert client.post("/events", json=ok, headers=AUTH).json()["stored"] == 2
    for bad, needle in [({"events": []}, "events: List should have at least 1 item"),
                        ({"events": [{"user_id": 1, "item_id": 2}]}, "events.0.event_id: Field required"),
                        ({"events": [{"event_id": "a", "user_id": 1, "item_id": 2, "timestamp": "yesterday"}]},
                         "events.0.timestamp"),
                        ({"events": [{"event_id": "a", "user_id": 1, "item_id": None}]}, "events.0.item_id")]:
        r = client.post("/events", json=bad, headers=AUTH)
        assert r.status_code == 422 and needle in r.json()["message"], r.json()
    too_many = {"events": [{"event_id": i, "user_id": 1, "item_id": 2} for i in range(1001)]}
    r = client.post("/events", json=too_many, headers=AUTH)
    assert r.status_code in (413, 422)


# ---------------------------------------------------------------------- /items
def test_new_item_recommendable_without_retraining(client):
    hist = {"history": [2, 4, 6], "k": 5}
    assert "brand-new" not in recs(client.post("/recommend", json=hist))
    t0 = time.perf_counter()
    r = client.post("/items", json={"items": [{"item_id": "brand-new", "text": "Item 2 Item 4 Item 6 Even"}]}, headers=AUTH)
    got = client.post("/recommend", json=hist).json()["items"]
    elapsed = time.perf_counter() - t0
    assert r.json()["added"] == 1 and elapsed < 1.0
    new = [it for it in got if it["item_id"] == "brand-new"]
    assert new and new[0]["source"] == "new" and len(got) == 5
    scores = [it["score"] for it in got]
    assert scores == sorted(scores, reverse=True)
    # found by text and by similarity, and excluded once consumed
    assert recs(client.post("/recommend", json={"text": "Item 2 Item 4 Item 6 Even", "k": 1})) == ["brand-new"]
    sim = client.get("/items/2/similar", params={"k": 41}).json()["items"]
    assert "brand-new" in [it["item_id"] for it in sim]
    assert "brand-new" not in recs(client.post("/recommend", json={"history": [2, 4, 6, "brand-new"], "k": 5}))
    # an unrelated new item is not pushed to this user
    client.post("/items", json={"items": [{"item_id": "other", "text": "quantum chromodynamics lecture notes"}]}, headers=AUTH)
    assert "other" not in recs(client.post("/recommend", json=hist))


def test_items_update_columns_and_persistence(make_client, tmp_path):
    c = make_client()
    r = c.post("/items", json={"items": [{"item_id": 7, "title": "Renamed seven", "genre": "Odd"}]}, headers=AUTH)
    assert r.json()["updated"] == 1 and r.json()["added"] == 0
    got = c.post("/recommend", json={"text": "Renamed seven", "k": 1}).json()["items"][0]
    assert got["item_id"] == 7 and got["title"] == "Renamed seven"
    c.post("/items", json={"items": [{"item_id": "n9", "text": "space opera"}]}, headers=AUTH)
    c2 = make_client()  # a restart reads the added items back from the store
    assert c2.get("/ready").json()["new_items"] == 2
    assert recs(c2.post("/recommend", json={"text": "space opera", "k": 1})) == ["n9"]
    for bad, needle in [({"items": [{"item_id": "x"}]}, "needs `text` or at least one column"),
                        ({"items": [{"text": "x"}]}, "items.0.item_id: Field required"),
                        ({"items": [{"item_id": "x", "tags": ["a"]}]}, "must be a non-empty string, a number"),
                        ({"items": [{"item_id": "x", "title": ""}]}, "must be a non-empty string, a number"),
                        ({"items": []}, "at least 1 item")]:
        r = c.post("/items", json=bad, headers=AUTH)
        assert r.status_code == 422 and needle in r.json()["message"], r.json()


# ---------------------------------------------------------------------- /admin/reload
def test_reload_refuses_bad_dirs_and_keeps_serving(make_client, tmp_path, model_dir):
    import json
    import shutil

    client = make_client(model_roots=[str(tmp_path)])

    before = recs(client.post("/recommend", json={"user_id": 1, "k": 5}))
    missing = client.post("/admin/reload", json={"model_dir": str(tmp_path / "nope")}, headers=AUTH)
    assert missing.status_code == 409 and "does not exist" in missing.json()["message"]
    assert "still serving" in missing.json()["message"]
    corrupt = tmp_path / "corrupt"
    shutil.copytree(model_dir, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"garbage")
    r = client.post("/admin/reload", json={"model_dir": str(corrupt)}, headers=AUTH)
    assert r.status_code == 409 and "corrupt" in r.json()["message"]
    old = tmp_path / "old"
    shutil.copytree(model_dir, old)
    meta = json.loads((old / "meta.json").read_text())
    meta["format_version"] = 99
    (old / "meta.json").write_text(json.dumps(meta))
    r = client.post("/admin/reload", json={"model_dir": str(old)}, headers=AUTH)
    assert r.status_code == 409 and "format" in r.json()["message"]
    assert recs(client.post("/recommend", json={"user_id": 1, "k": 5})) == before


def test_reload_swaps_model(make_client, tmp_path):
    from tests.serve.conftest import save_model

    client = make_client(model_roots=[str(tmp_path)])

    other = save_model(tmp_path / "pop", name="pop")
    r = client.post("/admin/reload", json={"model_dir": str(other)}, headers=AUTH)
    assert r.status_code == 200 and r.json()["model"] == "pop"
    assert client.post("/recommend", json={"user_id": 1, "k": 3}).json()["model"] == "pop"
    assert client.get("/ready").json()["model_dir"] == str(other)


def test_reload_under_load_no_failed_request(make_client, tmp_path):
    import threading

    from tests.serve.conftest import save_model

    client = make_client(model_roots=[str(tmp_path)])

    dirs = [save_model(tmp_path / "a", seed=1), save_model(tmp_path / "b", seed=2, name="itemknn")]
    stop = threading.Event()
    codes: list[int] = []

    def hammer():
        while not stop.is_set():
            codes.append(client.post("/recommend", json={"user_id": 3, "k": 5}).status_code)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(6):
        assert client.post("/admin/reload", json={"model_dir": str(dirs[i % 2])}, headers=AUTH).status_code == 200
    stop.set()
    for t in threads:
        t.join()
    assert len(codes) > 10 and set(codes) == {200}


# ---------------------------------------------------------------------- web page
def test_index_page_and_static(client):
    r = client.get("/")
    assert r.status_code == 200 and "<title>longrec</title>" in r.text and "/static/app.js" in r.text
    assert "http" not in r.text.replace("http-equiv", "")  # no CDN
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/users", params={"limit": 3}).json() == {"users": [1, 2, 3]}


def test_string_id_model(make_client, tmp_path):
    from tests.serve.conftest import save_model

    d = save_model(tmp_path / "str", str_ids=True)
    c = make_client(model=d, db_url=f"sqlite:///{tmp_path / 's.db'}")
    got = recs(c.post("/recommend", json={"user_id": "u1", "k": 3}))
    assert all(isinstance(i, str) and i.startswith("i") for i in got)
    assert c.post("/events", json={"events": [{"event_id": 1, "user_id": "u1", "item_id": got[0]}]},
                  headers=AUTH).json()["stored"] == 1
    assert got[0] not in recs(c.post("/recommend", json={"user_id": "u1", "k": 3}))
