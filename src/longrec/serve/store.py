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
import math
import re
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from longrec.errors import ConfigError, DataError

DEFAULT_DB_NAME = "events.sqlite"
_ROWS_PER_STATEMENT = 500  # 6 parameters a row: far below SQLite's 32,766 and PostgreSQL's 65,535


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
            raise ConfigError(f"unsupported database URL {_redact(url)!r}: use sqlite:///path.db or postgresql://user@host/db.")
        self.dialect = "sqlite" if self.url.startswith("sqlite") else "postgresql"
        netloc = self.url.split("://", 1)[1].split("/", 1)[0]
        if netloc.count("@") > 1:  # the driver would read part of the password as the host name
            raise ConfigError(f"the database URL {_redact(url)!r} has an unescaped '@' in its password: "
                              "percent-encode it as %40 (e.g. postgresql://user:p%40ss@host/db).")
        kw: dict[str, Any] = {"hide_parameters": True}  # errors and logs never carry event payloads
        if self.dialect == "sqlite":
            kw["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kw.update(pool_size=8, max_overflow=8, pool_pre_ping=True)
        try:
            self.engine = sa.create_engine(self.url, **kw)
        except Exception as e:  # bad URL syntax, missing driver
            raise ConfigError(f"cannot use database {_redact(url)!r}: {_redact(str(e))}") from None
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
        #: one row per erasure (who, when, how many events), never the events themselves
        self.erasures = sa.Table(
            "longrec_erasures", md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("user_id", sa.String(256), nullable=False),
            sa.Column("requested_by", sa.String(256), nullable=False),
            sa.Column("erased_at", sa.Float, nullable=False),
            sa.Column("n_events", sa.Integer, nullable=False),
        )
        #: change counters ("generations") that every worker of a multi-process server reads on
        #: each request: `erasures`, `items` (POST /items) and `model:<hash of --model>`
        #: (/admin/reload; `text` is the model directory now served)
        self.generations_table = sa.Table(
            "longrec_generations", md,
            sa.Column("name", sa.String(32), primary_key=True),
            sa.Column("value", sa.Integer, nullable=False),
            sa.Column("text", sa.Text, nullable=True),
        )
        self._sa = sa
        self._local = threading.local()
        self._raw_cons = []  # SQLite: one raw connection per thread for the hot reads
        self._history_sql = ("SELECT item_id FROM longrec_events WHERE user_id = {p} "
                             "ORDER BY ts DESC, received_at DESC, event_id DESC LIMIT {p}")
        self._history_sql = self._history_sql.format(p="?" if self.dialect == "sqlite" else "%s")
        # SQLite has one writer; serialising writes here avoids "database is locked" retries.
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else _NullLock()
        try:
            md.create_all(self.engine)
        except Exception as e:
            raise ConfigError(f"cannot open the event store at {_redact(self.url)}: {e.__class__.__name__}: "
                              f"{_redact(str(e).splitlines()[0] if str(e) else '')}. Check the --db URL and that the database is running.") from None

    def _insert(self, table):
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        return insert(table)

    # ------------------------------------------------------------------ events
    def add_events(self, events: Iterable[dict]) -> tuple[int, int]:
        """Insert events (dicts with event_id,user_id,item_id,type,ts); returns (stored, duplicates).
        One transaction; events whose event_id already exists are skipped. `stored` is what the
        INSERT itself reports (ON CONFLICT DO NOTHING RETURNING), so concurrent writers of the
        same event ids on PostgreSQL never both count it."""
        now = time.time()
        rows, seen, total = [], set(), 0
        for e in events:
            total += 1
            eid = str(e["event_id"])
            if eid in seen:
                continue
            seen.add(eid)
            ts = float(e["ts"])
            if not math.isfinite(ts):
                raise DataError(f"event {eid!r}: timestamp must be a finite number of unix seconds.")
            rows.append({"event_id": eid, "user_id": str(e["user_id"]), "item_id": str(e["item_id"]),
                         "type": str(e.get("type") or "interaction"), "ts": ts, "received_at": now})
        if not rows:
            return 0, total
        stored = 0
        with self._write_lock, self.engine.begin() as con:
            for j in range(0, len(rows), _ROWS_PER_STATEMENT):  # the ids the INSERT itself wrote
                stmt = (self._insert(self.events).values(rows[j:j + _ROWS_PER_STATEMENT])
                        .on_conflict_do_nothing(index_elements=["event_id"]).returning(self.events.c.event_id))
                stored += len(con.execute(stmt).all())
        return stored, total - stored

    def _raw(self):
        """SQLite: this thread's own connection (autocommit: every read sees the latest commit)."""
        con = getattr(self._local, "con", None)
        if con is None:
            import sqlite3

            con = sqlite3.connect(self.engine.url.database, timeout=30, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA busy_timeout=30000")
            self._local.con = con
            with self._write_lock:
                self._raw_cons.append(con)
        return con

    def _read(self, sql: str, params: tuple) -> list:
        """Rows of one plain SQL read (no statement compilation: the serving hot path)."""
        if self.dialect == "sqlite" and self.engine.url.database not in (None, "", ":memory:"):
            return self._raw().execute(sql, params).fetchall()
        with self.engine.connect() as con:
            return con.exec_driver_sql(sql, params).all()

    def history(self, user_id, limit: int) -> list[str]:
        """The user's most recent `limit` item ids, oldest first."""
        rows = self._read(self._history_sql, (str(user_id), int(limit)))
        return [r[0] for r in reversed(rows)]

    # ------------------------------------------------------------------ generations
    def generations(self) -> dict[str, tuple[int, str | None]]:
        """{name: (counter, text)}: one small read, made by every worker on every request."""
        return {r[0]: (r[1], r[2]) for r in self._read("SELECT name, value, text FROM longrec_generations", ())}

    def _bump(self, con, name: str, text: str | None = None) -> None:
        """Increment a generation counter inside the caller's write transaction."""
        g = self.generations_table
        ins = self._insert(g).values(name=name, value=1, text=text)
        con.execute(ins.on_conflict_do_update(index_elements=["name"],
                                              set_={"value": g.c.value + 1, "text": ins.excluded.text}))

    def bump(self, name: str, text: str | None = None) -> None:
        with self._write_lock, self.engine.begin() as con:
            self._bump(con, name, text)

    def event_ids(self) -> list[str]:
        with self.engine.connect() as con:
            return [r[0] for r in con.execute(self._sa.select(self.events.c.event_id))]

    def count_events(self) -> int:
        with self.engine.connect() as con:
            return int(con.execute(self._sa.select(self._sa.func.count()).select_from(self.events)).scalar_one())

    # ------------------------------------------------------------------ erasure
    def forget_user(self, user_id, requested_by: str) -> int:
        """Delete every event of `user_id` and record the erasure in the same transaction;
        returns the number of events deleted (0 is recorded too: the request was honoured)."""
        uid = str(user_id)
        with self._write_lock, self.engine.begin() as con:
            n = con.execute(self.events.delete().where(self.events.c.user_id == uid)).rowcount
            con.execute(self.erasures.insert().values(user_id=uid, requested_by=str(requested_by)[:256],
                                                      erased_at=time.time(), n_events=int(n)))
            self._bump(con, "erasures")
        return int(n)

    def erased_users(self) -> set[str]:
        with self.engine.connect() as con:
            return {r[0] for r in con.execute(self._sa.select(self.erasures.c.user_id).distinct())}

    def erasure_log(self, user_id=None) -> list[dict]:
        q = self._sa.select(self.erasures).order_by(self.erasures.c.id)
        if user_id is not None:
            q = q.where(self.erasures.c.user_id == str(user_id))
        with self.engine.connect() as con:
            return [dict(r._mapping) for r in con.execute(q)]

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
            self._bump(con, "items")

    def all_items(self, since: float | None = None) -> list[dict]:
        """Stored items, oldest update first (`since`: only those updated after it);
        each with item_id, text, attrs and updated_at."""
        q = self._sa.select(self.items).order_by(self.items.c.updated_at, self.items.c.item_id)
        if since is not None:
            q = q.where(self.items.c.updated_at > since)
        with self.engine.connect() as con:
            rows = con.execute(q).all()
        return [{"item_id": r.item_id, "text": r.text, "attrs": json.loads(r.attrs), "updated_at": r.updated_at}
                for r in rows]

    def ping(self) -> bool:
        try:
            with self.engine.connect() as con:
                con.execute(self._sa.text("SELECT 1"))
            return True
        except Exception:
            return False

    def close(self) -> None:
        with self._write_lock:
            cons, self._raw_cons = self._raw_cons, []
        for con in cons:
            try:
                con.close()
            except Exception:  # a connection of another thread: sqlite3 refuses; it closes with its thread
                pass
        self.engine.dispose()


class _NullLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_URL_PW = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):\S*@")  # greedy: a password with an @ is masked whole
_KV_PW = re.compile(r"(\bpassword\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def _redact(text: str) -> str:
    """`text` with database passwords masked: `scheme://user:***@host` and `password=***`."""
    return _KV_PW.sub(r"\1***", _URL_PW.sub(r"\1:***@", str(text)))
