"""Running the app under uvicorn with a request-header limit.

uvicorn's default HTTP parser (httptools) reads request headers of any size: a 100 MB header
is read in full before the app sees the request. `run()` uses a protocol that counts the
bytes of a request's head (request line + headers) as they arrive and answers 431 (then
closes the connection) as soon as they pass `max_header_bytes`, without reading the rest. With the
pure-Python h11 parser, uvicorn's own `h11_max_incomplete_event_size` is set to the same
limit (uvicorn answers that with a 400).

`run_workers()` starts N worker processes (uvicorn's supervisor): each builds the app from
the import-string factory `app_from_env` (the model loaded read-only in every worker, the
event store shared through the database; see docs/serve.md).
"""

from __future__ import annotations

import json
import os
import time

#: the environment variable that hands the app's arguments to worker processes
APP_ENV = "LONGREC_SERVE_APP"


def limited_protocol(max_header_bytes: int):
    """An httptools protocol class refusing larger request headers with 431 (None without httptools)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # uvicorn without httptools: h11 limits the headers itself
        return None
    from longrec.serve.metrics import Admission

    body = json.dumps({"message": f"request headers larger than {max_header_bytes:,} bytes.",
                       "detail": "headers too large"}).encode()
    response = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)

    class HeaderLimitedProtocol(HttpToolsProtocol):
        # httptools hands a header over only once its value is complete, so the bytes are
        # counted as they arrive: every chunk received while a request's head is incomplete
        limit = max_header_bytes
        _in_head = False
        _head_bytes = 0
        _refused = False

        def on_message_begin(self) -> None:
            self._in_head = True
            self._head_bytes = 0
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def _start_asgi_task(self, cycle, app) -> None:
            # in flight from now on, even while its task waits for the event loop (admission
            # control; the app's middleware un-counts it when it ends). Pipelined requests count
            # once started, so a client closing on queued ones leaves no count behind.
            if app is self.app and cycle.scope.get("type") == "http" and "longrec.counted" not in cycle.scope:
                cycle.scope["longrec.counted"] = True
                cycle.scope["longrec.accepted"] = time.perf_counter()
                Admission.in_flight += 1
            super()._start_asgi_task(cycle, app)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            super().data_received(data)
            if self._in_head and self.transport is not None and not self.transport.is_closing():
                self._head_bytes += len(data)
                if self._head_bytes > self.limit:
                    self._refused = True
                    self.transport.write(response)
                    self.transport.close()

    return HeaderLimitedProtocol


def run(app, host: str = "127.0.0.1", port: int = 8000, max_header_bytes: int | None = None, **kw) -> None:
    """uvicorn.run(app) with the header limit of the app's settings (or `max_header_bytes`)."""
    import uvicorn

    if max_header_bytes is None:
        max_header_bytes = app.state.service.settings.max_header_bytes
    proto = limited_protocol(max_header_bytes)
    kw.setdefault("log_level", "warning")
    kw.setdefault("access_log", False)
    uvicorn.run(app, host=host, port=port, http=proto or "h11", h11_max_incomplete_event_size=max_header_bytes, **kw)


def app_from_env():
    """The app of a worker process (uvicorn factory): arguments from $LONGREC_SERVE_APP."""
    from longrec.serve.app import create_app
    from longrec.serve.settings import ServeSettings

    cfg = json.loads(os.environ[APP_ENV])
    _die_with_parent()
    return create_app(cfg["model_dir"], db_url=cfg["db_url"], settings=ServeSettings(**cfg["settings"]))


def _die_with_parent() -> None:
    """Linux: a worker ends with its supervisor, even one killed with SIGKILL (no orphan keeps
    the port or the model's memory); elsewhere a no-op."""
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        parent = os.getppid()
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the supervisor died before the call
            os._exit(1)
    except (OSError, AttributeError):
        pass


def __getattr__(name: str):
    if name == "EnvLimitedProtocol":  # by import string: worker processes cannot receive a class
        cfg = json.loads(os.environ.get(APP_ENV, "{}"))
        limit = int(cfg.get("settings", {}).get("max_header_bytes", 32_768))
        proto = limited_protocol(limit)
        if proto is None:
            raise AttributeError(name)
        return proto
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_workers(model_dir, db_url: str | None, settings, workers: int, host: str = "127.0.0.1",
                port: int = 8000, **kw) -> None:
    """Serve with `workers` processes on one socket (uvicorn's multiprocess supervisor)."""
    import uvicorn

    from longrec.serve.store import EventStore, default_db_url

    url = db_url or default_db_url(model_dir)
    EventStore(url, synchronous=settings.sqlite_synchronous).close()  # tables made once, bad URLs refused here
    os.environ[APP_ENV] = json.dumps({"model_dir": str(model_dir), "db_url": url,
                                      "settings": settings.model_dump(mode="json")})
    try:
        import httptools  # noqa: F401

        http = f"{__name__}:EnvLimitedProtocol"
    except ImportError:
        http = "h11"
    kw.setdefault("log_level", "warning")
    kw.setdefault("access_log", False)
    uvicorn.run(f"{__name__}:app_from_env", factory=True, workers=workers, host=host, port=port, http=http,
                h11_max_incomplete_event_size=settings.max_header_bytes, **kw)
