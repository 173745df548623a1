"""`longrec serve`: the HTTP API over a saved model (registered by longrec.cli.main)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def serve(
    model: Path = typer.Option(..., "--model", help="model directory written by `longrec train`"),
    db: Optional[str] = typer.Option(None, "--db", help="event store URL (default: SQLite file next to the model; "
                                                         "postgresql://user:pw@host/db for PostgreSQL)"),
    host: str = typer.Option("127.0.0.1", "--host", help="interface to bind (127.0.0.1 = this machine only)"),
    port: int = typer.Option(8000, "--port"),
    model_root: list[Path] = typer.Option([], "--model-root", help="directory under which /admin/reload may load "
                                          "models (repeatable; default: the parent of --model)"),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="worker processes, each with the model "
                                          "loaded (default: the number of CPU cores)"),
    max_in_flight: int = typer.Option(64, "--max-in-flight", min=0, help="requests in flight per worker past "
                                      "which new ones get 503 + Retry-After at once (0: no bound)"),
    max_queue_ms: float = typer.Option(500, "--max-queue-ms", min=0, help="a request that waited longer for its "
                                       "worker gets 503 + Retry-After (0: no bound)"),
) -> None:
    """Serve recommendations over HTTP (FastAPI; OpenAPI at /docs, web page at /).

    Write endpoints (/events, /items, /admin/reload) need LONGREC_API_KEY in the environment.
    """
    from longrec.serve.app import create_app
    from longrec.serve.state import check_model_dir

    check_model_dir(model)  # refuse a bad directory before importing the web stack
    try:
        import uvicorn
    except ImportError:
        from longrec.errors import LongrecError

        raise LongrecError("`longrec serve` needs the serve extra: pip install 'longrec[serve]'.") from None
    from longrec.serve.server import run
    from longrec.serve.settings import ServeSettings

    from rich.console import Console

    settings = ServeSettings(model_roots=[str(r) for r in model_root] or None, max_in_flight=max_in_flight,
                             max_queue_ms=max_queue_ms)
    n = workers or _cores()
    if n > 1:
        import gc

        from longrec.serve.server import run_workers

        # built once here so that a model or store that cannot be served is refused with one
        # message (exit 2), not by every worker in a restart loop
        app = create_app(model, db_url=db, settings=settings)
        app.state.service.store.close()
        del app
        gc.collect()

        Console(stderr=True).print(f"[green]serving[/] {model} on http://{host}:{port} with {n} workers  "
                                   "(API docs: /docs)", highlight=False)
        run_workers(model, db, settings, n, host=host, port=port)
        return
    app = create_app(model, db_url=db, settings=settings)
    Console(stderr=True).print(f"[green]serving[/] {model} on http://{host}:{port}  (API docs: /docs)", highlight=False)
    run(app, host=host, port=port)  # uvicorn with the request-header limit (431)


def _cores() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
