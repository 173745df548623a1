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

    settings = ServeSettings(model_roots=[str(r) for r in model_root] or None)
    app = create_app(model, db_url=db, settings=settings)
    from rich.console import Console

    Console(stderr=True).print(f"[green]serving[/] {model} on http://{host}:{port}  (API docs: /docs)", highlight=False)
    run(app, host=host, port=port)  # uvicorn with the request-header limit (431)
