"""Request counters and latency histograms in the Prometheus text format (no client library),
plus the ASGI middleware that records them and enforces the body-size limit."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

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


class ServeMiddleware:
    """Pure ASGI (no per-request task overhead): body limit (413) + metrics by route template."""

    def __init__(self, app, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = {"code": 500, "started": False}
        limit = self.max

        async def send_wrap(msg):
            if msg["type"] == "http.response.start":
                status["code"] = msg["status"]
                status["started"] = True
            await send(msg)

        declared = dict(scope.get("headers") or []).get(b"content-length")
        try:
            if declared is not None and int(declared) > limit:
                raise _TooLarge
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
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or ("/static" if scope["path"].startswith("/static") else "other")
            self.metrics.observe(scope["method"], path, status["code"], time.perf_counter() - t0)


async def _send_413(send, limit: int) -> None:
    import json

    body = json.dumps({"message": f"request body larger than {limit:,} bytes; send fewer items/events per request.",
                       "detail": "body too large"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
