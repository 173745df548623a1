"""The fast path for the common `/recommend` request: `{"user_id": ..., "k": ..., "explain": ...}`.

FastAPI spends most of a small request's CPU on its own machinery: a hop to the thread pool,
building the pydantic request model, then validating and re-serialising the response model.
`FastPathMiddleware` answers a request of the common shape itself, in the event loop:

- the body is parsed with orjson and checked against the same limits the request model holds
  (`user_id` an integer or a 1-256 character string without NUL, `k` an integer in
  1..max_k (..max_k_costly with explain), booleans for `exclude_seen`/`explain`, `rerank`
  absent or "none", and no other field);
- a `text` (an intent sentence: the fused list of longrec.serve.intent) is taken too when its
  query vector is already in the serving state's cache (`text_ready`): a sentence's first use,
  which calls the encoder, stays on the full path and its thread pool, off the event loop;
- the request object is made with `RecommendRequest.model_construct` (no re-validation) and
  handed to the ordinary `/recommend` handler, so both paths compute the same list;
- the handler's dict is written with orjson (same keys, same order, no None fields).

Anything else (history, an uncached text, candidates, MMR, floats for k, other content types, an error
raised by the handler) goes through FastAPI unchanged: the fast path never answers a request
differently from the full path, it only answers some of them sooner.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

log = logging.getLogger("longrec.serve")

_FIELDS = frozenset({"user_id", "k", "exclude_seen", "explain", "rerank", "text"})


class FastPath:
    """Filled in by `create_app` once the handler exists (`bind`)."""

    def __init__(self, max_k: int, max_k_costly: int, max_text_chars: int = 0) -> None:
        import orjson

        self._loads, self._dumps = orjson.loads, orjson.dumps
        self._opts = orjson.OPT_SERIALIZE_NUMPY
        self.max_k = max_k
        self.max_k_costly = max_k_costly
        self.max_text_chars = max_text_chars
        #: text -> whether its query vector is cached (set by `create_app`; None: no text requests)
        self.text_ready: Callable[[str], bool] | None = None
        self.handler: Callable | None = None
        self.request_model: Any = None
        self.route: Any = None
        self.before: Callable[[], None] | None = None
        self.inline = True
        self.served = 0

    def bind(self, handler: Callable, request_model, route, before: Callable[[], None] | None, inline: bool) -> None:
        self.handler, self.request_model, self.route, self.before, self.inline = (
            handler, request_model, route, before, inline)

    def parse(self, body: bytes) -> dict | None:
        """The request's fields when it has the common shape and is valid; else None."""
        try:
            d = self._loads(body)
        except Exception:
            return None
        if type(d) is not dict or not d.keys() <= _FIELDS:
            return None
        u = d.get("user_id")
        if type(u) is str:
            if not 1 <= len(u) <= 256 or "\x00" in u:
                return None
        elif type(u) is not int:
            return None
        k = d.get("k", 10)
        explain = d.get("explain", False)
        if type(k) is not int or not 1 <= k <= self.max_k or type(explain) is not bool:
            return None
        if type(d.get("exclude_seen", True)) is not bool or d.get("rerank") not in (None, "none"):
            return None
        if explain and k > self.max_k_costly:
            return None
        if "text" in d:
            t = d["text"]
            if (type(t) is not str or not 1 <= len(t) <= self.max_text_chars or "\x00" in t
                    or self.text_ready is None or not self.text_ready(t)):
                return None
        return d

    def answer(self, fields: dict) -> bytes | None:
        """The response body, or None to let FastAPI answer (it will give the same error)."""
        if self.handler is None:
            return None
        if self.before is not None:
            try:
                self.before()
            except Exception as e:  # the store is unreachable: the handler's own read says so
                log.warning("could not read the store's change counters: %s", e.__class__.__name__)
        try:
            out = self.handler(self.request_model.model_construct(**fields))
            return self._dumps(out, option=self._opts)
        except Exception:  # the full path answers (and words the error) the same way
            return None


def _json_content(scope) -> bool:
    """FastAPI reads a body as JSON when there is no content type or an application/(*+)json one."""
    for name, value in scope.get("headers") or ():
        if name == b"content-type":
            main = value.split(b";", 1)[0].strip().lower()
            return main == b"application/json" or (main.startswith(b"application/") and main.endswith(b"+json"))
    return True


class FastPathMiddleware:
    """Pure ASGI: POST /recommend of the common shape answered by `FastPath`, the rest passed on."""

    def __init__(self, app, fast: FastPath) -> None:
        self.app = app
        self.fast = fast

    async def _catch_up(self) -> None:
        """With a networked store ServeMiddleware leaves /recommend's per-request catch-up with
        other workers to this middleware (so that the fast path needs one thread hop, not two)."""
        if self.fast.inline or self.fast.before is None:
            return
        import anyio

        try:
            await anyio.to_thread.run_sync(self.fast.before)
        except Exception as e:
            log.warning("could not read the store's change counters: %s", e.__class__.__name__)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/recommend" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        if self.fast.handler is None or not _json_content(scope):
            await self._catch_up()
            return await self.app(scope, receive, send)
        chunks, more, first = [], True, None
        while more:
            msg = await receive()
            if msg["type"] != "http.request":  # the client went away: let the app see it as usual
                first = msg
                break
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False)
        body = b"".join(chunks)
        out = fields = None
        if first is None:
            fields = self.fast.parse(body)
            if fields is not None:
                if self.fast.inline:
                    out = self.fast.answer(fields)
                else:  # a networked store (PostgreSQL): keep its round trips off the event loop
                    import anyio

                    out = await anyio.to_thread.run_sync(self.fast.answer, fields)
        if out is None and (first is not None or fields is None):  # declined before `answer` caught up
            await self._catch_up()
        if out is None:
            replayed = False

            async def replay():
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return first if first is not None else {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            return await self.app(scope, replay, send)
        self.fast.served += 1
        scope["route"] = self.fast.route  # the metrics' route label
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(out)).encode()), (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": out})
