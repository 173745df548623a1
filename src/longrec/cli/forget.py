"""`longrec forget`: erase one user's behaviour from a service's event store (registered by longrec.cli.main)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def forget(
    user: str = typer.Option(..., "--user", help="the user id to erase (as sent to the service)"),
    db: Optional[str] = typer.Option(None, "--db", help="event store URL: sqlite:///path.db or postgresql://user:pw@host/db"),
    model: Optional[Path] = typer.Option(None, "--model", help="instead of --db: the served model directory "
                                                               "(its default SQLite store next to it)"),
) -> None:
    """Erase a user: delete their stored events and record the erasure (who, when, how many events).

    A running `longrec serve` on the same store stops using the model's training record of the
    user after /admin/reload or a restart (DELETE /users/{id} on the server does it at once).
    A model trained on the user's interactions still holds them: retrain it without them.
    """
    import getpass

    from longrec.cli._common import console
    from longrec.errors import ConfigError
    from longrec.serve.store import EventStore, _redact, default_db_url

    if (db is None) == (model is None):
        raise ConfigError("give the event store: --db URL (sqlite:///path.db or postgresql://...) or --model DIR "
                          "(the default SQLite store next to a served model), not both.")
    url = db or default_db_url(model)
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if not path.is_file():  # never create an empty store for a mistyped path
            raise ConfigError(f"there is no event store at {path}; check --db / --model "
                              f"(`longrec serve` creates it next to the model directory).")
    try:
        who = getpass.getuser()
    except Exception:  # no login name (some containers)
        who = "unknown"
    store = EventStore(url)
    try:
        n = store.forget_user(user, requested_by=f"cli:{who}")
    finally:
        store.close()
    console.print(f"[green]erased[/] user {user!r}: {n:,} event(s) deleted from {_redact(url)}; erasure recorded.",
                  highlight=False)
