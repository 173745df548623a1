"""Request counters and latency histograms in the Prometheus text format (no client library),
plus the ASGI middleware that records them and enforces the body-size limit."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict

log = logging.getLogger("longrec.serve")

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple, int] = defaultdict(int)          # (method, path, status) -> n
        self.hist: dict[tuple, list] = {}                           # (method, path) -> [bucket counts..., sum, count]
        self.counters: dict[str, float] = defaultdict(float)

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, path, status)] += 1
            h = self.hist.get((method, path))
            if h is None:
                h = self.hist[(method, path)] = [0] * len(BUCKETS) + [0.0, 0]
            for b, le in enumerate(BUCKETS):
                if seconds <= le:
                    h[b] += 1
            h[-2] += seconds
            h[-1] += 1

    def inc(self, name: str, value: float = 1) -> None:
        with self._lock:
            self.counters[name] += value

    def render(self, gauges: dict[str, float] | None = None) -> str:
        out = ["# HELP longrec_http_requests_total HTTP requests by method, route and status.",
               "# TYPE longrec_http_requests_total counter"]
        with self._lock:
            for (m, p, st), n in sorted(self.requests.items()):
                out.append(f'longrec_http_requests_total{{method="{m}",path="{_esc(p)}",status="{st}"}} {n}')
            out += ["# HELP longrec_http_request_duration_seconds Request latency by method and route.",
                    "# TYPE longrec_http_request_duration_seconds histogram"]
            for (m, p), h in sorted(self.hist.items()):
                lab = f'method="{m}",path="{_esc(p)}"'
                for le, c in zip(BUCKETS, h):
                    out.append(f'longrec_http_request_duration_seconds_bucket{{{lab},le="{le}"}} {c}')
                out.append(f'longrec_http_request_duration_seconds_bucket{{{lab},le="+Inf"}} {h[-1]}')
                out.append(f"longrec_http_request_duration_seconds_sum{{{lab}}} {h[-2]:.6f}")
                out.append(f"longrec_http_request_duration_seconds_count{{{lab}}} {h[-1]}")
            for name, v in sorted(self.counters.items()):
                out += [f"# TYPE {name} counter", f"{name} {v:g}"]
        for name, v in sorted((gauges or {}).items()):
            out += [f"# TYPE {name} gauge", f"{name} {v:g}"]
        return "\n".join(out) + "\n"


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


class _TooLarge(BaseException):  # BaseException: FastAPI turns Exceptions in body parsing into 400s
    pass


class Admission:
    """Requests of this process that are in flight: accepted (their headers read) and not yet
    answered. `longrec.serve.server`'s protocol counts a request as soon as its headers are
    parsed, so requests waiting for the event loop count too; under another ASGI server the
    middleware counts it when it starts. Event-loop thread only (no lock)."""

    in_flight = 0


#: paths never refused by admission control (liveness, readiness and metrics must answer under load)
_ALWAYS = frozenset({"/health", "/ready", "/metrics"})


class ServeMiddleware:
    """Pure ASGI (no per-request task overhead): header limit (431), body limit (413), admission
    control (503 + Retry-After past `max_in_flight`), the per-request catch-up with other
    workers (`before_request`), a JSON 500 for anything unexpected (logged without the
    request's data), metrics by route template."""

    def __init__(self, app, metrics: Metrics, max_body_bytes: int, max_header_bytes: int = 32_768,
                 max_in_flight: int = 0, before_request=None, inline: bool = True, max_queue_ms: float = 0,
                 deferred: frozenset = frozenset()) -> None:
        self.app = app
        self.metrics = metrics
        self.max = max_body_bytes
        self.max_header = max_header_bytes
        self.max_in_flight = max_in_flight
        self.max_queue = max_queue_ms / 1000
        self.before_request = before_request
        self.inline = inline
        #: (method, path) whose `before_request` an inner middleware runs (longrec.serve.fastpath)
        self.deferred = deferred

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if not scope.pop("longrec.counted", False):
            Admission.in_flight += 1
        try:
            return await self._handle(scope, receive, send)
        finally:
            Admission.in_flight -= 1

    async def _handle(self, scope, receive, send):
        t0 = time.perf_counter()
        status = {"code": 500, "started": False}
        limit = self.max

        async def send_wrap(msg):
            if msg["type"] == "http.response.start":
                status["code"] = msg["status"]
                status["started"] = True
            await send(msg)

        headers = scope.get("headers") or []
        # the server (longrec.serve.server) stops reading at the limit; this covers other ASGI servers
        size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        for name, value in headers:
            size += len(name) + len(value) + 4
        declared = None
        for name, value in headers:
            if name == b"content-length":
                declared = value
                break
        try:
            if size > self.max_header:
                await _send_error(send_wrap, 431, f"request headers larger than {self.max_header:,} bytes.",
                                  "headers too large")
                return
            if declared is not None and (not declared.isdigit() or int(declared) > limit):
                raise _TooLarge
            if scope["path"] not in _ALWAYS:
                busy = None
                if self.max_in_flight and Admission.in_flight > self.max_in_flight:
                    busy = f"{Admission.in_flight - 1} requests in flight, limit {self.max_in_flight}"
                elif self.max_queue and t0 - scope.get("longrec.accepted", t0) > self.max_queue:
                    # waited for the event loop longer than the bound: the worker is behind, and
                    # answering late only makes the queue longer
                    busy = f"waited {1000 * (t0 - scope['longrec.accepted']):.0f} ms, limit {1000 * self.max_queue:.0f} ms"
                if busy is not None:
                    self.metrics.inc("longrec_admission_refused_total")
                    await _send_error(send_wrap, 503, f"the server is busy ({busy}); retry after 1 s.", "overloaded",
                                      extra=[(b"retry-after", b"1")], close=False)
                    return
            if (self.before_request is not None and scope["path"] not in ("/health", "/metrics")
                    and (scope["method"], scope["path"]) not in self.deferred):
                try:
                    if self.inline:
                        self.before_request()
                    else:  # a networked store: keep its round trip off the event loop
                        import anyio

                        await anyio.to_thread.run_sync(self.before_request)
                except Exception as e:  # the store is unreachable: the request itself says so (or /ready)
                    log.warning("could not read the store's change counters: %s", _describe(e))
            seen = 0

            async def receive_wrap():
                nonlocal seen
                msg = await receive()
                if msg["type"] == "http.request":
                    seen += len(msg.get("body", b""))
                    if seen > limit:
                        raise _TooLarge
                return msg

            await self.app(scope, receive_wrap, send_wrap)
        except _TooLarge:
            if not status["started"]:
                await _send_413(send_wrap, limit)
        except Exception as e:  # never a plain-text 500, never the request's data in the log
            log.error("internal error on %s %s: %s", scope.get("method"), _route(scope), _describe(e))
            if not status["started"]:
                await _send_error(send_wrap, 500, "internal error; it was logged on the server.", "internal error")
        finally:
            self.metrics.observe(scope["method"], _route(scope), status["code"], time.perf_counter() - t0)


def _route(scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or ("/static" if scope["path"].startswith("/static") else "other")


def _describe(e: BaseException) -> str:
    """Exception class and where it was raised: never its message, which may quote the
    request's values (a database error quotes the SQL parameters)."""
    import traceback

    frames = traceback.extract_tb(e.__traceback__)
    where = " <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in frames[::-1][:8])
    name = e.__class__.__module__ + "." + e.__class__.__qualname__
    orig = getattr(e, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's error
    return f"{name}{f' ({orig.__class__.__name__})' if orig is not None else ''} at {where}"


async def _send_413(send, limit: int) -> None:
    await _send_error(send, 413, f"request body larger than {limit:,} bytes; send fewer items/events per request.",
                      "body too large")


async def _send_error(send, code: int, message: str, detail: str, extra: list | None = None,
                      close: bool = True) -> None:
    import json

    body = json.dumps({"message": message, "detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": code,
                "headers": headers + (extra or []) + ([(b"connection", b"close")] if close else [])})
    await send({"type": "http.response.body", "body": body})
