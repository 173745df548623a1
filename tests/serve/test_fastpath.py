"""The /recommend fast path answers exactly as the full FastAPI path, and admission control
answers 503 + Retry-After past the in-flight bound."""

from __future__ import annotations

import asyncio
import time

from tests.serve.conftest import AUTH


def _pair(make_client, tmp_path, **kw):
    fast = make_client(db_url=f"sqlite:///{tmp_path / 'fast.db'}", **kw)
    slow = make_client(db_url=f"sqlite:///{tmp_path / 'slow.db'}", fast_path=False, **kw)
    return fast, slow


BODIES = [
    {"user_id": 1, "k": 5}, {"user_id": "1", "k": 5}, {"user_id": 7}, {"user_id": 3, "k": 40},
    {"user_id": 2, "k": 5, "explain": True}, {"user_id": 4, "k": 10, "exclude_seen": False},
    {"user_id": "nobody", "k": 5}, {"user_id": "nobody", "k": 5, "explain": True}, {"user_id": 5, "rerank": "none"},
    {"user_id": 9, "k": 3, "explain": False, "exclude_seen": True},
    # not the fast path's shape or invalid: FastAPI answers them, the same way in both apps
    {"user_id": 1, "k": 5.0}, {"user_id": 1, "k": 0}, {"user_id": True}, {"user_id": ""},
    {"user_id": 1, "k": 200, "explain": True},
    {"user_id": 1, "history": [2, 4]}, {"user_id": 1, "rerank": "mmr", "k": 5}, {"user_id": 1, "extra": 1}, [1, 2],
]


def test_fast_path_answers_as_the_full_path(make_client, tmp_path):
    fast, slow = _pair(make_client, tmp_path)
    events = {"events": [{"event_id": "e1", "user_id": 1, "item_id": 3, "timestamp": 5.0},
                         {"event_id": "e2", "user_id": 1, "item_id": 999, "timestamp": 6.0},  # unknown item
                         {"event_id": "e3", "user_id": "nobody", "item_id": 2, "timestamp": 7.0}]}
    for c in (fast, slow):
        assert c.post("/events", json=events, headers=AUTH).status_code == 200
    for body in BODIES:
        a, b = fast.post("/recommend", json=body), slow.post("/recommend", json=body)
        assert a.status_code == b.status_code, (body, a.text, b.text)
        assert a.json() == b.json(), body
        if a.status_code == 200:
            assert a.content == b.content and a.headers["content-type"] == b.headers["content-type"]
    # the fast path did answer the common requests (its counter), and not the others
    mw = fast.app.middleware_stack
    while mw is not None and type(mw).__name__ != "FastPathMiddleware":
        mw = getattr(mw, "app", None)
    assert mw is not None and mw.fast.served >= 10
    ans = fast.post("/recommend", json={"user_id": 1, "k": 5}).json()
    assert ans["ignored_item_ids"] == [999] and ans["history_used"] >= 2


def test_fast_path_with_added_items_and_erasure(make_client, tmp_path):
    fast, slow = _pair(make_client, tmp_path)
    items = {"items": [{"item_id": 500, "title": "Brand new even thing", "genre": "Even"},
                       {"item_id": 2, "title": "Item 2 renamed"}]}
    for c in (fast, slow):
        assert c.post("/items", json=items, headers=AUTH).status_code == 200
        assert c.delete("/users/3", headers=AUTH).status_code == 200
    for body in ({"user_id": 2, "k": 10}, {"user_id": 2, "k": 10, "explain": True}, {"user_id": 3, "k": 5},
                 {"user_id": 1, "k": 40, "exclude_seen": False}):
        a, b = fast.post("/recommend", json=body), slow.post("/recommend", json=body)
        assert a.status_code == b.status_code == 200 and a.content == b.content, body


def test_fast_path_refuses_other_content_types(make_client, tmp_path):
    fast, slow = _pair(make_client, tmp_path)
    for c in (fast, slow):
        r = c.post("/recommend", content=b'{"user_id": 1}', headers={"content-type": "text/plain"})
        assert r.status_code == 422


def test_admission_control_503_with_retry_after(make_client, monkeypatch):
    import httpx

    c = make_client(max_in_flight=1)
    app = c.app
    store = app.state.service.store
    real = store.history

    def slow_history(user_id, limit):
        time.sleep(0.5)
        return real(user_id, limit)

    monkeypatch.setattr(store, "history", slow_history)

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as ac:
            slow = asyncio.create_task(ac.post("/recommend", json={"user_id": 1, "history": [2]}))  # thread pool
            await asyncio.sleep(0.1)
            t0 = time.perf_counter()
            busy = await ac.post("/recommend", json={"user_id": 2, "history": [4]})
            took = time.perf_counter() - t0
            health = await ac.get("/health")
            return await slow, busy, took, health

    first, busy, took, health = asyncio.run(go())
    assert first.status_code == 200
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1" and "busy" in busy.json()["message"]
    assert took < 0.3  # refused at once, not after the slow request
    assert health.status_code == 200  # liveness is never refused
    assert c.post("/recommend", json={"user_id": 2, "k": 3}).status_code == 200  # the bound frees up
    assert "longrec_admission_refused_total 1" in c.get("/metrics").text


def test_queue_wait_bound_503():
    """A request that waited past max_queue_ms for the event loop is refused at once."""
    from longrec.serve.metrics import Metrics, ServeMiddleware

    async def inner(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    mw = ServeMiddleware(inner, Metrics(), max_body_bytes=10_000, max_queue_ms=200)

    def call(waited: float, path: str = "/recommend"):
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(msg):
            sent.append(msg)

        scope = {"type": "http", "method": "POST", "path": path, "headers": [], "longrec.counted": True,
                 "longrec.accepted": time.perf_counter() - waited}
        from longrec.serve.metrics import Admission

        Admission.in_flight += 1  # as the server's protocol does
        asyncio.run(mw(scope, receive, send))
        return sent[0]["status"], dict(sent[0]["headers"])

    assert call(0.01)[0] == 200
    status, headers = call(1.0)
    assert status == 503 and headers[b"retry-after"] == b"1"
    assert call(1.0, "/health")[0] == 200  # never refused
    from longrec.serve.metrics import Admission

    assert Admission.in_flight == 0  # every request was un-counted


def test_fast_path_on_postgresql(make_client):
    """With PostgreSQL the fast path runs in the thread pool (one hop with the catch-up): same answers."""
    import uuid

    from tests.serve.conftest import pg_url

    url = pg_url()
    if not url:
        import pytest

        pytest.skip("set LONGREC_TEST_PG_URL (scripts/start_postgres.sh prints one) to test PostgreSQL")
    fast = make_client(db_url=url)
    slow = make_client(db_url=url, fast_path=False)
    user = f"u-{uuid.uuid4().hex[:8]}"
    ev = {"events": [{"event_id": f"{user}-{n}", "user_id": user, "item_id": i, "timestamp": 10 + n}
                     for n, i in enumerate([2, 4, 6])]}
    assert fast.post("/events", json=ev, headers=AUTH).json()["stored"] == 3
    for body in ({"user_id": user, "k": 5}, {"user_id": user, "k": 5, "explain": True}, {"user_id": 1, "k": 5},
                 {"user_id": 1, "history": [3]}, {"user_id": 1, "k": 0}):
        a, b = fast.post("/recommend", json=body), slow.post("/recommend", json=body)
        assert a.status_code == b.status_code and a.content == b.content, body
    assert fast.post("/recommend", json={"user_id": user}).json()["history_used"] == 3
    # a content type the fast path leaves alone goes the full path, after an erasure made by the other app
    assert slow.delete(f"/users/{user}", headers=AUTH).status_code == 200
    r = fast.post("/recommend", content=f'{{"user_id": "{user}"}}'.encode(),
                  headers={"content-type": "application/vnd.x+json"})
    assert r.status_code == 200 and r.json()["history_used"] == 0
