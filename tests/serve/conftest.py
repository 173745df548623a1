"""Fixtures: a tiny EASE model saved to tmp_path and TestClients over it (hash encoder: no LM load)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def save_model(path, str_ids: bool = False, seed: int = 0, name: str = "ease"):
    from longrec.data.dataset import Dataset
    from longrec.models.registry import create_model
    from tests.conftest import make_synthetic

    inter, items = make_synthetic(str_ids=str_ids, seed=seed)
    create_model(name).fit(Dataset(inter, items)).save(path)
    return path


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("serve") / "model")


@pytest.fixture
def make_client(tmp_path, model_dir):
    from fastapi.testclient import TestClient

    from longrec.serve import ServeSettings, create_app

    made = []

    def make(api_key: str | None = KEY, model=None, db_url=None, **kw):
        kw.setdefault("encoder", "hash")
        settings = ServeSettings(api_key=api_key if api_key is not None else "", **kw)
        app = create_app(model or model_dir, db_url=db_url or f"sqlite:///{tmp_path / 'events.db'}", settings=settings)
        c = TestClient(app)
        made.append(app)
        return c

    yield make
    for app in made:
        app.state.service.store.close()


@pytest.fixture
def client(make_client):
    return make_client()


def pg_url() -> str | None:
    return os.environ.get("LONGREC_TEST_PG_URL") or None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir, db_path, port):
    """`python -m longrec.serve` in a subprocess (a real uvicorn); waits for /health."""
    from pathlib import Path

    env = {**os.environ, "LONGREC_API_KEY": KEY, "LONGREC_SERVE_ENCODER": "hash"}
    url = str(db_path) if "://" in str(db_path) else f"sqlite:///{db_path}"  # a path, or a database URL
    log = Path(model_dir).parent / f"server-{port}.log" if "://" in str(db_path) else Path(db_path).with_suffix(".log")
    proc = subprocess.Popen([sys.executable, "-m", "longrec.serve", "--model", str(model_dir), "--db",
                             url, "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(log, "ab"))
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if _httpx().get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except _httpx().HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start within 60 s")


def _httpx():
    import httpx

    return httpx
