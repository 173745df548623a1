"""kill -9 the server while events are being posted: every acknowledged event survives, none twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time

import pytest

from tests.serve.conftest import KEY, free_port, start_server

httpx = pytest.importorskip("httpx")


def test_kill9_keeps_every_acknowledged_event(model_dir, tmp_path):
    db = tmp_path / "events.sqlite"
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
                batch = [f"w{worker}-{n + j}" for j in range(5)]
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

    con = sqlite3.connect(db)
    rows = [r[0] for r in con.execute("select event_id from longrec_events")]
    con.close()
    assert set(acked) <= set(rows), f"{len(set(acked) - set(rows))} acknowledged events lost"
    assert len(rows) == len(set(rows))

    # restart; clients retry everything they sent (acknowledged or not): nothing is stored twice
    proc = start_server(model_dir, db, port)
    try:
        with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {KEY}"}) as c:
            dup = stored = 0
            for j in range(0, len(sent), 500):
                chunk = sent[j:j + 500]
                body = {"events": [{"event_id": e, "user_id": "u" + e[1], "item_id": 2} for e in chunk]}
                r = c.post(f"{url}/events", json=body).json()
                dup += r["duplicates"]
                stored += r["stored"]
        assert dup == len(rows) and stored == len(sent) - len(rows)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    con = sqlite3.connect(db)
    n, distinct = con.execute("select count(*), count(distinct event_id) from longrec_events").fetchone()
    con.close()
    assert n == distinct == len(set(sent))
