"""The event store against SQLite (always) and PostgreSQL (when LONGREC_TEST_PG_URL is set)."""

from __future__ import annotations

import threading
import uuid

import pytest

from tests.serve.conftest import pg_url

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    pg_url() is None, reason="set LONGREC_TEST_PG_URL (scripts/start_postgres.sh prints one) to test PostgreSQL"))]


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    from longrec.serve.store import EventStore

    if request.param == "sqlite":
        s = EventStore(f"sqlite:///{tmp_path / 'ev.db'}")
    else:
        s = EventStore(pg_url())
        with s.engine.begin() as con:  # a clean slate per test (tables are shared by the database)
            con.execute(s.events.delete())
            con.execute(s.items.delete())
    yield s
    s.close()


def ev(i, user="u", item=1, ts=None):
    return {"event_id": f"e{i}", "user_id": user, "item_id": item, "type": "click", "ts": float(i if ts is None else ts)}


def test_idempotent_insert_and_history_order(store):
    assert store.add_events([ev(1, item=10), ev(2, item=20), ev(3, item=30, ts=0)]) == (3, 0)
    assert store.add_events([ev(1, item=99), ev(4, item=40)]) == (1, 1)  # e1 kept as first written
    assert store.add_events([ev(5, item=50), ev(5, item=50)]) == (1, 1)  # duplicate inside one batch
    assert store.count_events() == 5
    assert store.history("u", 10) == ["30", "10", "20", "40", "50"]  # by timestamp
    assert store.history("u", 2) == ["40", "50"]  # the most recent, oldest first
    assert store.history("nobody", 5) == []


def test_items_upsert(store):
    store.upsert_items([{"item_id": "a", "text": "one", "attrs": {"title": "A"}}, {"item_id": 2, "text": "two"}])
    store.upsert_items([{"item_id": "a", "text": "uno", "attrs": {"title": "A2"}}])
    got = {r["item_id"]: r for r in store.all_items()}
    assert set(got) == {"a", "2"} and got["a"]["text"] == "uno" and got["a"]["attrs"] == {"title": "A2"}


def test_concurrent_writers_no_loss_no_duplicates(store):
    ids = [f"c{uuid.uuid4().hex}" for _ in range(200)]

    def write(part):
        for j in range(0, len(part), 10):  # overlapping retries of the same batches
            batch = [{"event_id": e, "user_id": "w", "item_id": 1, "type": "t", "ts": 1.0} for e in part[j:j + 10]]
            store.add_events(batch)
            store.add_events(batch)

    threads = [threading.Thread(target=write, args=(ids[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = [e for e in store.event_ids() if e.startswith("c")]
    assert sorted(got) == sorted(ids)


def test_sqlite_is_wal(tmp_path):
    from longrec.serve.store import EventStore

    s = EventStore(f"sqlite:///{tmp_path / 'w.db'}")
    with s.engine.connect() as con:
        assert con.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert con.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    s.close()


def test_bad_urls():
    from longrec.errors import ConfigError
    from longrec.serve.store import EventStore, default_db_url, normalize_url

    with pytest.raises(ConfigError, match="unsupported database URL"):
        EventStore("mysql://x/y")
    with pytest.raises(ConfigError, match="cannot open the event store"):
        EventStore("postgresql://nobody:pw@127.0.0.1:1/none")
    assert normalize_url("postgres://a@b/c") == "postgresql+psycopg://a@b/c"
    assert default_db_url("/x/runs/ease") == "sqlite:////x/runs/ease.events.sqlite"


@pytest.mark.skipif(pg_url() is None, reason="set LONGREC_TEST_PG_URL to test PostgreSQL")
def test_app_on_postgres(model_dir):
    from fastapi.testclient import TestClient

    from longrec.serve import ServeSettings, create_app
    from tests.serve.conftest import AUTH

    app = create_app(model_dir, db_url=pg_url(), settings=ServeSettings(encoder="hash", api_key="test-key"))
    c = TestClient(app)
    user = f"pg-{uuid.uuid4().hex[:8]}"
    evs = [{"event_id": f"{user}-{i}", "user_id": user, "item_id": it, "timestamp": i} for i, it in enumerate([2, 4])]
    assert c.post("/events", json={"events": evs}, headers=AUTH).json() == {"stored": 2, "duplicates": 0}
    assert c.post("/events", json={"events": evs}, headers=AUTH).json() == {"stored": 0, "duplicates": 2}
    assert c.get("/ready").json()["store"] == "postgresql"
    assert c.post("/recommend", json={"user_id": user, "k": 3}).json()["history_used"] == 2
    app.state.service.store.close()
