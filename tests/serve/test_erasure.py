"""Erasure: DELETE /users/{id} and `longrec forget` remove a user's events, stop using the
model's record of them, and record who/when/how many (never the events), on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest

from tests.serve.conftest import AUTH, pg_url

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    pg_url() is None, reason="set LONGREC_TEST_PG_URL (scripts/start_postgres.sh prints one) to test PostgreSQL"))]


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    return f"sqlite:///{tmp_path / 'erase.db'}" if request.param == "sqlite" else pg_url()


def _events(user, items):
    return {"events": [{"event_id": f"{user}-{n}", "user_id": user, "item_id": it, "timestamp": 100 + n}
                       for n, it in enumerate(items)]}


def test_delete_user_erases_events_and_fold_in(make_client, db_url):
    c = make_client(db_url=db_url)
    store = c.app.state.service.store
    user, other = f"u-{uuid.uuid4().hex[:8]}", f"o-{uuid.uuid4().hex[:8]}"
    assert c.post("/events", json=_events(user, [2, 4, 6]), headers=AUTH).json()["stored"] == 3
    c.post("/events", json=_events(other, [3, 5]), headers=AUTH)
    assert c.post("/recommend", json={"user_id": user, "k": 5}).json()["history_used"] == 3

    assert c.delete(f"/users/{user}").status_code == 401  # admin key required
    r = c.delete(f"/users/{user}", headers=AUTH)
    assert r.status_code == 200 and r.json()["events_deleted"] == 3 and r.json()["user_id"] == user
    assert store.history(user, 10) == [] and store.history(other, 10) == ["3", "5"]
    after = c.post("/recommend", json={"user_id": user, "k": 5}).json()
    assert after["history_used"] == 0 and {it["source"] for it in after["items"]} == {"popular-fallback"}
    log = store.erasure_log(user)
    assert len(log) == 1 and log[0]["n_events"] == 3 and log[0]["requested_by"] == "api" and log[0]["erased_at"] > 0
    assert set(log[0]) == {"id", "user_id", "requested_by", "erased_at", "n_events"}  # never the events
    assert c.delete(f"/users/{user}", headers=AUTH).json()["events_deleted"] == 0  # idempotent, recorded again


def test_erased_training_user_no_longer_personalised(make_client, db_url):
    c = make_client(db_url=db_url)
    known = c.post("/recommend", json={"user_id": 1, "k": 5}).json()
    assert known["history_used"] > 0 and {it["source"] for it in known["items"]} == {"model"}
    before = c.get("/ready").json()["erased_users_in_training"]
    try:
        assert c.delete("/users/1", headers=AUTH).status_code == 200
        assert c.get("/ready").json()["erased_users_in_training"] == before + 1  # the model card says so
        r = c.post("/recommend", json={"user_id": 1, "k": 5}).json()
        assert r["history_used"] == 0 and {it["source"] for it in r["items"]} == {"popular-fallback"}
        assert 1 not in c.get("/users", params={"limit": 1000}).json()["users"]
        ex = c.post("/explain", json={"user_id": 1, "item_id": 3}).json()
        assert ex["history_used"] == 0 and ex["because"] == []
        c2 = make_client(db_url=db_url)  # a restart remembers the erasure
        assert c2.post("/recommend", json={"user_id": 1, "k": 5}).json()["history_used"] == 0
    finally:
        if db_url.startswith("postgresql"):  # the PostgreSQL database is shared by the tests
            store = c.app.state.service.store
            with store.engine.begin() as con:
                con.execute(store.erasures.delete().where(store.erasures.c.user_id == "1"))


def test_forget_cli(make_client, db_url, tmp_path):
    from typer.testing import CliRunner

    from longrec.cli.main import app

    c = make_client(db_url=db_url)
    user = f"cli-{uuid.uuid4().hex[:8]}"
    c.post("/events", json=_events(user, [2, 4]), headers=AUTH)
    r = CliRunner().invoke(app, ["forget", "--user", user, "--db", db_url])
    assert r.exit_code == 0, r.output
    assert "2 event(s) deleted" in r.output and ":longrec@" not in r.output  # password masked
    store = c.app.state.service.store
    assert store.history(user, 10) == []
    log = store.erasure_log(user)
    assert len(log) == 1 and log[0]["n_events"] == 2 and log[0]["requested_by"].startswith("cli:")
    # a running server picks the erasure up at its next reload
    c.post("/admin/reload", json={}, headers=AUTH)
    assert user in c.app.state.service.erased


def test_forget_cli_refuses_missing_store(tmp_path):
    from typer.testing import CliRunner

    from longrec.cli.main import app

    r = CliRunner().invoke(app, ["forget", "--user", "x", "--db", f"sqlite:///{tmp_path / 'typo.db'}"])
    assert r.exit_code == 2 and "no event store" in r.output and not (tmp_path / "typo.db").exists()
    r = CliRunner().invoke(app, ["forget", "--user", "x"])
    assert r.exit_code == 2 and "--db" in r.output
