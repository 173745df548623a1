"""Durable event and item store (SQLAlchemy Core): SQLite in WAL mode by default, PostgreSQL by URL.

Events are idempotent on `event_id` (primary key + INSERT ... ON CONFLICT DO NOTHING): a
client that retries after a timeout can never create a duplicate. A batch is one
transaction; the HTTP answer is sent only after the commit, so an acknowledged event is on
disk (SQLite `synchronous=FULL` fsyncs the WAL on every commit).

IDs are stored as text (the caller's spelling); the service converts them back to the
model's ID kind when it reads them.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from longrec.errors import ConfigError

DEFAULT_DB_NAME = "events.sqlite"


def default_db_url(model_dir: str | Path) -> str:
    """A SQLite file next to the model directory (never inside it: reloads replace the directory)."""
    d = Path(model_dir).resolve()
    return f"sqlite:///{d.parent / (d.name + '.' + DEFAULT_DB_NAME)}"


def normalize_url(url: str) -> str:
    """Accept plain `postgresql://` URLs (psql style) and use the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


class EventStore:
    """events(event_id PK, user_id, item_id, type, ts, seq) and items(item_id PK, text, attrs)."""

    def __init__(self, url: str, synchronous: str = "FULL") -> None:
        import sqlalchemy as sa

        self.url = normalize_url(url)
        if not (self.url.startswith("sqlite") or self.url.startswith("postgresql")):
            raise ConfigError(f"unsupported database URL {url!r}: use sqlite:///path.db or postgresql://user@host/db.")
        self.dialect = "sqlite" if self.url.startswith("sqlite") else "postgresql"
        kw: dict[str, Any] = {}
        if self.dialect == "sqlite":
            kw["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kw.update(pool_size=8, max_overflow=8, pool_pre_ping=True)
        try:
            self.engine = sa.create_engine(self.url, **kw)
        except Exception as e:  # bad URL syntax, missing driver
            raise ConfigError(f"cannot use database {url!r}: {e}") from None
        if self.dialect == "sqlite":
            @sa.event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_con, _rec):  # every pooled connection gets the same guarantees
                cur = dbapi_con.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA synchronous={synchronous}")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()
        md = sa.MetaData()
        self.events = sa.Table(
            "longrec_events", md,
            sa.Column("event_id", sa.String(256), primary_key=True),
            sa.Column("user_id", sa.String(256), nullable=False),
            sa.Column("item_id", sa.String(256), nullable=False),
            sa.Column("type", sa.String(64), nullable=False),
            sa.Column("ts", sa.Float, nullable=False),
            sa.Column("received_at", sa.Float, nullable=False),
            sa.Index("ix_longrec_events_user", "user_id", "ts"),
        )
        self.items = sa.Table(
            "longrec_items", md,
            sa.Column("item_id", sa.String(256), primary_key=True),
            sa.Column("text", sa.Text, nullable=False),
            sa.Column("attrs", sa.Text, nullable=False),
            sa.Column("updated_at", sa.Float, nullable=False),
        )
        self._sa = sa
        # SQLite has one writer; serialising writes here avoids "database is locked" retries.
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else _NullLock()
        try:
            md.create_all(self.engine)
        except Exception as e:
            raise ConfigError(f"cannot open the event store at {_redact(self.url)}: {e.__class__.__name__}: "
                              f"{str(e).splitlines()[0]}. Check the --db URL and that the database is running.") from None

    def _insert(self, table):
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        return insert(table)

    # ------------------------------------------------------------------ events
    def add_events(self, events: Iterable[dict]) -> tuple[int, int]:
        """Insert events (dicts with event_id,user_id,item_id,type,ts); returns (stored, duplicates).
        One transaction; events whose event_id already exists are skipped."""
        now = time.time()
        rows, seen, total = [], set(), 0
        for e in events:
            total += 1
            eid = str(e["event_id"])
            if eid in seen:
                continue
            seen.add(eid)
            rows.append({"event_id": eid, "user_id": str(e["user_id"]), "item_id": str(e["item_id"]),
                         "type": str(e.get("type") or "interaction"), "ts": float(e["ts"]), "received_at": now})
        n_in = len(rows)
        if not rows:
            return 0, 0
        stmt = self._insert(self.events).on_conflict_do_nothing(index_elements=["event_id"])
        with self._write_lock, self.engine.begin() as con:
            before = con.execute(self._sa.select(self._sa.func.count()).select_from(self.events).where(
                self.events.c.event_id.in_([r["event_id"] for r in rows]))).scalar_one()
            con.execute(stmt, rows)
        return n_in - before, total - (n_in - before)

    def history(self, user_id, limit: int) -> list[str]:
        """The user's most recent `limit` item ids, oldest first."""
        e = self.events
        q = (self._sa.select(e.c.item_id).where(e.c.user_id == str(user_id))
             .order_by(e.c.ts.desc(), e.c.received_at.desc(), e.c.event_id.desc()).limit(limit))
        with self.engine.connect() as con:
            rows = [r[0] for r in con.execute(q)]
        return rows[::-1]

    def event_ids(self) -> list[str]:
        with self.engine.connect() as con:
            return [r[0] for r in con.execute(self._sa.select(self.events.c.event_id))]

    def count_events(self) -> int:
        with self.engine.connect() as con:
            return int(con.execute(self._sa.select(self._sa.func.count()).select_from(self.events)).scalar_one())

    # ------------------------------------------------------------------ items
    def upsert_items(self, items: list[dict]) -> None:
        """items: dicts with item_id, text, attrs (dict)."""
        if not items:
            return
        now = time.time()
        rows = [{"item_id": str(i["item_id"]), "text": i["text"], "attrs": json.dumps(i.get("attrs") or {}, default=str),
                 "updated_at": now} for i in items]
        ins = self._insert(self.items)
        stmt = ins.on_conflict_do_update(index_elements=["item_id"],
                                         set_={"text": ins.excluded.text, "attrs": ins.excluded.attrs,
                                               "updated_at": ins.excluded.updated_at})
        with self._write_lock, self.engine.begin() as con:
            con.execute(stmt, rows)

    def all_items(self) -> list[dict]:
        with self.engine.connect() as con:
            rows = con.execute(self._sa.select(self.items).order_by(self.items.c.updated_at, self.items.c.item_id)).all()
        return [{"item_id": r.item_id, "text": r.text, "attrs": json.loads(r.attrs)} for r in rows]

    def ping(self) -> bool:
        try:
            with self.engine.connect() as con:
                con.execute(self._sa.text("SELECT 1"))
            return True
        except Exception:
            return False

    def close(self) -> None:
        self.engine.dispose()


class _NullLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _redact(url: str) -> str:
    import re

    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
