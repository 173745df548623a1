"""kill -9 the server while events are being posted: every acknowledged event survives, none
twice — on SQLite, and on PostgreSQL when LONGREC_TEST_PG_URL is set."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import pytest

from tests.serve.conftest import KEY, free_port, start_server

httpx = pytest.importorskip("httpx")


def _stored(db_url: str, prefix: str) -> list[str]:
    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as con:
            return [r[0] for r in con.execute(sa.text("select event_id from longrec_events where event_id like :p"),
                                              {"p": f"{prefix}%"})]
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill9_keeps_every_acknowledged_event(model_dir, tmp_path, backend):
    if backend == "postgresql":
        db = os.environ.get("LONGREC_TEST_PG_URL")
        if not db:
            pytest.skip("set LONGREC_TEST_PG_URL (scripts/start_postgres.sh prints one) to test PostgreSQL")
        db_url = db
    else:
        db = tmp_path / "events.sqlite"
        db_url = f"sqlite:///{db}"
    prefix = f"k9-{uuid.uuid4().hex[:8]}-"  # the PostgreSQL database is shared by the tests
    port = free_port()
    proc = start_server(model_dir, db, port)
    url = f"http://127.0.0.1:{port}"
    acked: list[str] = []
    sent: list[str] = []
    stop = threading.Event()

    def post(worker: int):
        n = 0
        with httpx.Client(timeout=5, headers={"Authorization": f"Bearer {KEY}"}) as c:
            while not stop.is_set():
                batch = [f"{prefix}w{worker}-{n + j}" for j in range(5)]
                n += 5
                sent.extend(batch)
                body = {"events": [{"event_id": e, "user_id": f"u{worker}", "item_id": 2, "type": "click"} for e in batch]}
                try:
                    r = c.post(f"{url}/events", json=body)
                except httpx.HTTPError:
                    return  # the server died mid-request: this batch is not acknowledged
                if r.status_code == 200:
                    acked.extend(batch)

    threads = [threading.Thread(target=post, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    deadline = time.time() + 30
    while len(acked) < 300 and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # no shutdown hooks, no flush
    proc.wait()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= 300

    rows = _stored(db_url, prefix)
    assert set(acked) <= set(rows), f"{len(set(acked) - set(rows))} acknowledged events lost"
    assert len(rows) == len(set(rows))

    # restart; clients retry everything they sent (acknowledged or not): nothing is stored twice
    proc = start_server(model_dir, db, port)
    try:
        with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {KEY}"}) as c:
            dup = stored = 0
            for j in range(0, len(sent), 500):
                chunk = sent[j:j + 500]
                body = {"events": [{"event_id": e, "user_id": "u" + e[len(prefix) + 1], "item_id": 2} for e in chunk]}
                r = c.post(f"{url}/events", json=body).json()
                dup += r["duplicates"]
                stored += r["stored"]
        assert dup == len(rows) and stored == len(sent) - len(rows)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    final = _stored(db_url, prefix)
    assert len(final) == len(set(final)) == len(set(sent))
    print(f"{backend}: {len(acked)} acknowledged before kill -9, {len(set(acked) - set(rows))} lost, "
          f"{len(rows) - len(set(rows))} duplicated; {len(sent)} sent")
