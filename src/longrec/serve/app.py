"""The FastAPI application: `create_app(model_dir, db_url=None, settings=ServeSettings())`.

Read endpoints: GET /health, /ready, /metrics, /users, /items/{id}/similar; POST /recommend, /explain.
Write endpoints (Bearer key from $LONGREC_API_KEY; disabled when unset): POST /items,
/events, /admin/reload; DELETE /users/{id} (erasure). See docs/serve.md for shapes, limits,
what the service refuses and the new-item policy.
"""


import datetime as _dt
import hmac
import logging
import math
import os
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, StrictInt, StringConstraints, model_validator

from longrec.errors import LongrecError, ModelError, UnknownIdError
from longrec.serve.fastpath import FastPath, FastPathMiddleware
from longrec.serve.metrics import Metrics, ServeMiddleware
from longrec.serve.settings import ServeSettings
from longrec.serve.state import Overlay, ServingState, check_model_dir, text_of, title_of
from longrec.serve.store import _redact
from longrec.topk import topk

log = logging.getLogger("longrec.serve")

#: ids and texts are stored as text: no NUL character (PostgreSQL text cannot hold one)
_NO_NUL = r"^[^\x00]*$"
IdStr = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=_NO_NUL)]


def _integral(v):
    """JSON Schema's integer includes 5.0: accept it as 5 (never a boolean, never 5.5)."""
    return int(v) if type(v) is float and v.is_integer() else v


JsonInt = Annotated[StrictInt, BeforeValidator(_integral)]
Id = Union[JsonInt, IdStr]
#: unix seconds: a finite number (not NaN/Infinity, not a boolean)
UnixSeconds = Annotated[float, Strict(), Field(allow_inf_nan=False)]


# ---------------------------------------------------------------------- response shapes
class RecItem(BaseModel):
    item_id: Id
    score: float
    title: Optional[str] = None
    source: Literal["model", "new", "text", "popular-fallback", "fused"] = "model"
    because: Optional[list[dict[str, Any]]] = None
    #: with `pitch: true` on a request with text: a one-line pitch grounded in the item's attributes
    pitch: Optional[str] = None


class RecommendResponse(BaseModel):
    items: list[RecItem]
    user_id: Optional[Id] = None
    history_used: int = 0
    model: str = ""
    #: history / candidate item ids that neither the model nor /items knows (not used)
    ignored_item_ids: Optional[list[Id]] = None
    #: what the list was made from: "history", "text", "popularity" (a user without history)
    signals: Optional[list[str]] = None
    #: per follow-up in `refine`: what was understood (`applied` false: not understood, list unchanged)
    refinement: Optional[list[dict[str, Any]]] = None
    #: with `text` and a user or history: the catalogue attributes the sentence was read as naming
    #: (e.g. "Comedy", "not Horror", "by Stephen King"); empty when it names none
    understood: Optional[list[str]] = None


class SimilarResponse(BaseModel):
    item_id: Id
    items: list[RecItem]


class EventsResponse(BaseModel):
    stored: int
    duplicates: int


class ItemsResponse(BaseModel):
    added: int
    updated: int
    seconds: float


class ErasureResponse(BaseModel):
    user_id: Id
    events_deleted: int
    erased_at: float


class ErrorResponse(BaseModel):
    """Every error: a readable `message` (and `detail`, the same text or a list of problems)."""
    message: str
    detail: Any = None


class ValidationProblem(BaseModel):
    loc: list[Union[str, int]]
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    message: str
    detail: list[ValidationProblem]


def _err(description: str) -> dict:
    return {"model": ErrorResponse, "description": description}


_E422 = {422: {"model": ValidationErrorResponse, "description": "invalid request (the fields named in `message`)"}}
_E413 = {413: _err("body larger than max_body_bytes")}
_E431 = {431: _err("request line + headers larger than max_header_bytes")}
_COMMON = {**_E413, **_E431, 500: _err("internal error (logged without the request's data)")}
_BODY = {**_COMMON, 400: _err("the body is not JSON encoded as UTF-8")}
_AUTH = {401: _err("missing or malformed Authorization header"),
         403: _err("wrong API key, or write endpoints disabled (no LONGREC_API_KEY)")}


class ReloadResponse(BaseModel):
    model_dir: str
    model: str
    n_items: int
    n_users: int
    load_seconds: float


def _schemas(s: ServeSettings):
    """Request models carrying this app's limits (so they appear in the OpenAPI schema)."""
    Text = Annotated[str, StringConstraints(min_length=1, max_length=s.max_text_chars, pattern=_NO_NUL)]

    def not_null(name: str) -> dict:
        return {"required": [name], "properties": {name: {"not": {"type": "null"}}}}

    # the cross-field rules, in the schema too (JSON Schema anyOf): one input at least, and the
    # cost ceiling on k for the expensive options
    one_input = {"anyOf": [not_null("user_id"), not_null("history"), not_null("text")]}
    refine_for_a_user = {"anyOf": [{"not": not_null("refine")}, not_null("user_id"), not_null("history")]}
    cheap_or_small = {"anyOf": [
        {"properties": {"rerank": {"enum": ["none", None]}, "explain": {"const": False}}},
        {"properties": {"k": {"maximum": s.max_k_costly}}}]}

    class RecommendRequest(BaseModel):
        """Give `user_id`, `history` or `text` (at least one). `k` is at most `max_k_costly`
        when `rerank` is "mmr" or `explain` is true."""
        model_config = ConfigDict(extra="forbid", json_schema_extra={
            "allOf": [one_input, cheap_or_small, refine_for_a_user]})
        user_id: Optional[Id] = None
        history: Optional[list[Id]] = Field(None, max_length=s.max_history)
        text: Optional[Text] = None
        k: JsonInt = Field(10, ge=1, le=s.max_k, description=(
            f"list length; at most {s.max_k_costly} with rerank='mmr' or explain=true"))
        exclude_seen: Annotated[bool, Strict()] = True
        candidates: Optional[list[Id]] = Field(None, min_length=1, max_length=100_000)
        rerank: Optional[Literal["none", "mmr"]] = None
        explain: Annotated[bool, Strict()] = False
        refine: Optional[Union[Text, Annotated[list[Text], Field(min_length=1, max_length=10)]]] = Field(None, description=(
            "follow-up sentence(s) applied in order to the list the rest of the request gives, e.g. "
            "'more recent', 'no horror', 'like the second one but funnier' (needs user_id or history)"))
        pitch: Annotated[bool, Strict()] = Field(False, description=(
            "with text: a one-line pitch per item from its attributes that match the text (template)"))

        @model_validator(mode="after")
        def _one_input(self):
            if self.user_id is None and self.history is None and self.text is None:
                raise ValueError("give user_id, history or text (at least one)")
            if self.refine is not None and self.user_id is None and self.history is None:
                raise ValueError("refine needs user_id or history (it refines that user's list)")
            if (self.rerank == "mmr" or self.explain) and self.k > s.max_k_costly:
                raise ValueError(f"k: at most {s.max_k_costly} with rerank='mmr' or explain=true "
                                 f"(got {self.k}); ask for fewer items or drop the option")
            return self

    class ExplainRequest(BaseModel):
        """Give `user_id` or `history` (at least one)."""
        model_config = ConfigDict(extra="forbid", json_schema_extra={
            "anyOf": [not_null("user_id"), not_null("history")]})
        user_id: Optional[Id] = None
        history: Optional[list[Id]] = Field(None, max_length=s.max_history)
        item_id: Id

        @model_validator(mode="after")
        def _one_input(self):
            if self.user_id is None and self.history is None:
                raise ValueError("give user_id or history")
            return self

    column = {"anyOf": [{"type": "string", "minLength": 1, "maxLength": s.max_text_chars, "pattern": _NO_NUL},
                        {"type": "number"}, {"type": "boolean"}]}

    class ItemIn(BaseModel):
        """item_id plus `text`, or item columns (title, genre, description, ...: non-empty
        strings, numbers or booleans) turned into text; at least one of the two."""
        model_config = ConfigDict(extra="allow", json_schema_extra={
            "additionalProperties": column,
            "anyOf": [not_null("text"), {"minProperties": 2, "not": {"required": ["text"]}}, {"minProperties": 3}]})
        item_id: Id
        text: Optional[Text] = None

        @model_validator(mode="after")
        def _has_text(self):
            extra = self.model_extra or {}
            for key, v in extra.items():
                if isinstance(v, float) and not math.isfinite(v):
                    raise ValueError(f"item column {key!r} must be a finite number")
                if v == "" or not isinstance(v, (str, int, float, bool)):
                    raise ValueError(f"item column {key!r} must be a non-empty string, a number or a boolean")
                if isinstance(v, str) and (len(v) > s.max_text_chars or "\x00" in v):
                    raise ValueError(f"item column {key!r} is longer than {s.max_text_chars} characters "
                                     "or holds a NUL character")
            if self.text is None and not extra:
                raise ValueError("an item needs `text` or at least one column such as `title`")
            return self

    class ItemsRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        items: list[ItemIn] = Field(..., min_length=1, max_length=s.max_batch)

    class EventIn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        event_id: Id
        user_id: Id
        item_id: Id
        type: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "interaction"
        timestamp: Optional[Union[UnixSeconds, _dt.datetime]] = Field(
            None, description="unix seconds (a finite number) or ISO 8601; default: now")

    class EventsRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        events: list[EventIn] = Field(..., min_length=1, max_length=s.max_batch)

    class ReloadRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        model_dir: Optional[str] = Field(None, description="default: the directory being served")

    return RecommendRequest, ExplainRequest, ItemsRequest, EventsRequest, ReloadRequest


class Service:
    """Holds the current `ServingState` (swapped atomically) and the event store."""

    def __init__(self, model_dir: Path, db_url: str | None, settings: ServeSettings) -> None:
        from longrec.serve.encoding import make_encoder
        from longrec.serve.store import EventStore, default_db_url

        check_model_dir(model_dir)
        self.settings = settings
        self.encoder = make_encoder(settings.resolved_encoder())
        self.store = EventStore(db_url or default_db_url(model_dir), synchronous=settings.sqlite_synchronous)
        self._lock = threading.Lock()  # serialises reloads and item writes (reads never wait)
        roots = settings.model_roots if settings.model_roots is not None else [Path(model_dir).resolve().parent]
        self.model_roots = [Path(r).resolve() for r in roots]
        #: users erased by DELETE /users/{id} or `longrec forget`: the model's training record of
        #: them is no longer used (until a retrained model no longer has it)
        self.erased: set[str] = self.store.erased_users()
        self._erase_lock = threading.Lock()
        try:
            self.state = self._build(Path(model_dir))
        except LongrecError:
            raise
        except Exception as e:  # a crafted or damaged directory: one clear message, no traceback
            raise ModelError(f"{model_dir} cannot be served ({e.__class__.__name__}: {_redact(str(e))[:300]}); "
                             "re-train or re-save the model.") from None
        self.reloads = 0
        # what this process has applied of the store's change counters (see `sync`)
        self._sync_lock = threading.Lock()
        # reloads are shared by the workers started with the same --model (not by other
        # services that happen to use the same database)
        import hashlib

        self._model_key = "model:" + hashlib.sha1(str(Path(model_dir).resolve()).encode()).hexdigest()[:20]
        self._seen = self.store.generations()
        self._model_gen = self._seen.get(self._model_key, (0, None))[0]
        self._catching_up = False

    def sync(self) -> None:
        """Catch up with writes made through other worker processes (one small read of the
        store's change counters per request): an erasure applies before this request runs; a
        model reload or added items are loaded in a background thread (requests keep the
        current state meanwhile)."""
        g = self.store.generations()
        if g == self._seen:
            return
        with self._sync_lock:
            old, self._seen = self._seen, {**self._seen, **g}
            if g.get("erasures") != old.get("erasures"):
                self.erased = self.store.erased_users()
            changed = g.get(self._model_key) != old.get(self._model_key) or g.get("items") != old.get("items")
            if changed and not self._catching_up:
                self._catching_up = True
                threading.Thread(target=self._catch_up, name="longrec-sync", daemon=True).start()

    def _catch_up(self) -> None:
        try:
            while True:
                with self._sync_lock:
                    model = self._seen.get(self._model_key, (0, None))
                    items = self._seen.get("items")
                if model[0] != self._model_gen and model[1]:
                    self.reload(Path(model[1]), check_roots=False, publish=False)
                    self._model_gen = model[0]
                else:
                    with self._lock:
                        self.state.overlay = self._stored_overlay(self.state, base=self.state.overlay)
                with self._sync_lock:
                    if self._seen.get(self._model_key, (0, None)) == model and self._seen.get("items") == items:
                        self._catching_up = False
                        return
        except Exception as e:  # keep serving the current state; the next change retries
            log.error("could not apply a change made by another worker: %s: %s", e.__class__.__name__,
                      _redact(str(e))[:300])
            with self._sync_lock:
                self._catching_up = False

    def _mark(self, name: str, before: dict) -> None:
        """After this process's own write: counted as applied when nobody else wrote meanwhile."""
        g = self.store.generations()
        with self._sync_lock:
            prev = before.get(name, (0, None))[0]
            if g.get(name, (0, None))[0] == prev + 1 and self._seen.get(name) == before.get(name):
                self._seen = {**self._seen, name: g[name]}

    def allowed_model_dir(self, model_dir: Path) -> Path:
        """`model_dir` resolved (symlinks followed) if it lies under a configured model root,
        else ModelDirRefused (nothing about the path is looked up on disk before this check)."""
        target = Path(model_dir).expanduser()
        target = target if target.is_absolute() else Path.cwd() / target
        target = Path(os.path.realpath(target))
        if not any(target == r or r in target.parents for r in self.model_roots):
            raise ModelDirRefused(
                "model_dir is outside the model roots of this server "
                f"({', '.join(str(r) for r in self.model_roots)}); put the model under one of them or "
                "start the server with --model-root.")
        return target

    #: a write stamped before another one may commit after it: re-read this many seconds back
    _ITEMS_MARGIN = 10.0

    def _stored_overlay(self, st: ServingState, base: Overlay | None = None) -> Overlay:
        """`base` plus the items added through POST /items (by any worker) since it was read
        (all of them without `base`); only those are embedded."""
        since = None if base is None else getattr(self, "_items_read_at", None)
        stored = self.store.all_items(since=None if since is None else since - self._ITEMS_MARGIN)
        out = base if base is not None and since is not None else Overlay()
        if stored:
            self._items_read_at = max(r["updated_at"] for r in stored)
            ids = st.coerce([r["item_id"] for r in stored])
            vecs = np.asarray(self.encoder.encode([r["text"] for r in stored], show_progress=False), np.float32)
            titles = {i: title_of(r["attrs"], i) for i, r in zip(ids, stored)}
            out = out.with_items(ids, vecs, titles)
        return out

    def _build(self, model_dir: Path) -> ServingState:
        st = ServingState(model_dir, self.settings, self.encoder)
        st.overlay = self._stored_overlay(st)
        if st.dim is None and len(st.overlay):
            st.dim = int(st.overlay.vectors.shape[1])
        return st

    def reload(self, model_dir: Path, check_roots: bool = True, publish: bool = True) -> ServingState:
        """Load `model_dir` and serve it; `publish`: tell the other workers (they load it too)."""
        with self._lock:
            if check_roots:
                model_dir = self.allowed_model_dir(model_dir)
            check_model_dir(model_dir)
            new = self._build(model_dir)
            self.erased = self.store.erased_users()  # erasures made by `longrec forget` meanwhile
            self.state = new  # one reference assignment: in-flight requests keep `old`
            self.reloads += 1
            if publish:
                before = self.store.generations()
                self.store.bump(self._model_key, str(Path(model_dir).resolve()))
                self._mark(self._model_key, before)
                self._model_gen = self._seen.get(self._model_key, (0, None))[0]
            return new

    def add_items(self, items: list[dict]) -> tuple[int, int, float]:
        t0 = time.perf_counter()
        with self._lock:
            st = self.state
            ids = st.coerce([i["item_id"] for i in items])
            texts = [text_of(i) for i in items]
            attrs = [{k: v for k, v in i.items() if k not in ("item_id",)} for i in items]
            vecs = np.asarray(self.encoder.encode(texts, show_progress=False), np.float32)
            if st.dim is not None and vecs.shape[1] != st.dim:
                raise LongrecError(f"the encoder gives {vecs.shape[1]}-d vectors but the catalogue has {st.dim}-d ones.")
            before = self.store.generations()
            self.store.upsert_items([{"item_id": i, "text": t, "attrs": a} for i, t, a in zip(ids, texts, attrs)])
            self._mark("items", before)
            known = sum(1 for i in ids if st.known_item(i))
            titles = {i: title_of(a, i) if any(k in a for k in ("title", "movie_title", "name")) else t[:80]
                      for i, a, t in zip(ids, attrs, texts)}
            st.overlay = st.overlay.with_items(ids, vecs, titles)  # a new snapshot (amortised append)
            if st.dim is None:
                st.dim = int(vecs.shape[1])
        return len(ids) - known, known, time.perf_counter() - t0

    def forget_user(self, user_id, requested_by: str) -> int:
        """Erase a user: their stored events go, the erasure is recorded, and the model's
        training record of them is no longer used by this process."""
        before = self.store.generations()
        n = self.store.forget_user(user_id, requested_by)
        with self._erase_lock:
            self.erased = self.erased | {str(user_id)}  # a new set: readers keep theirs
        self._mark("erasures", before)
        return n


class ModelDirRefused(LongrecError):
    """/admin/reload was asked for a directory outside the configured model roots."""


def _now() -> float:
    return time.time()


def create_app(model_dir: str | Path, db_url: str | None = None, settings: ServeSettings | None = None):
    """Build the app. Raises ModelError (clear message) when `model_dir` cannot be served."""
    from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
    from fastapi import Path as PathParam
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
    from fastapi.staticfiles import StaticFiles

    s = settings or ServeSettings()
    # one request = one small matrix product: multi-threaded BLAS only adds tail latency
    # (its threads stall whenever another process holds a core), so serve single-threaded
    from threadpoolctl import threadpool_limits

    threadpool_limits(s.blas_threads)
    svc = Service(Path(model_dir), db_url, s)
    api_key = s.resolved_api_key()
    metrics = Metrics()
    RecommendRequest, ExplainRequest, ItemsRequest, EventsRequest, ReloadRequest = _schemas(s)

    app = FastAPI(title="longrec", version=_version(), description=(
        "Recommendations from a saved longrec model, with a durable event store and new items without retraining."))
    app.state.service = svc
    app.state.metrics = metrics
    fast = FastPath(s.max_k, s.max_k_costly, s.max_text_chars) if s.fast_path and _has_orjson() else None
    if fast is not None:  # added first: it runs inside ServeMiddleware (limits, metrics, admission)
        app.add_middleware(FastPathMiddleware, fast=fast)
    app.add_middleware(ServeMiddleware, metrics=metrics, max_body_bytes=s.max_body_bytes,
                       max_header_bytes=s.max_header_bytes, max_in_flight=s.max_in_flight, max_queue_ms=s.max_queue_ms,
                       before_request=svc.sync, inline=svc.store.dialect == "sqlite",
                       # networked store: the fast path runs the catch-up in its own thread hop
                       deferred=frozenset({("POST", "/recommend")}) if fast and svc.store.dialect != "sqlite" else frozenset())

    # ------------------------------------------------------------------ errors
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errs = exc.errors()
        parts = []
        for e in errs:
            loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
            parts.append(f"{loc}: {e.get('msg', 'invalid')}")
        clean = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg")), "type": str(e.get("type"))} for e in errs]
        return JSONResponse(status_code=422, content={"message": "invalid request: " + "; ".join(parts), "detail": clean})

    @app.exception_handler(LongrecError)
    async def _longrec(request: Request, exc: LongrecError):
        code = 404 if isinstance(exc, UnknownIdError) else 400
        msg = _redact(str(exc))
        return JSONResponse(status_code=code, content={"message": msg, "detail": msg})

    def require_key(authorization: Optional[str] = Header(None, description="Bearer <LONGREC_API_KEY>")) -> None:
        if api_key is None:
            raise HTTPException(403, "write endpoints are disabled: the server was started without LONGREC_API_KEY. "
                                     "Set it and restart to enable /items, /events and /admin/reload.")
        if not authorization:
            raise HTTPException(401, "missing Authorization header; send `Authorization: Bearer <key>`.",
                                headers={"WWW-Authenticate": "Bearer"})
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, "malformed Authorization header; send `Authorization: Bearer <key>`.",
                                headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise HTTPException(403, "wrong API key.")

    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)  # FastAPI's own (e.g. a body that is not UTF-8) too
    async def _http(request: Request, exc: StarletteHTTPException):
        msg = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 400 and msg == "There was an error parsing the body":
            msg = "the request body could not be read: send JSON encoded as UTF-8."
        return JSONResponse(status_code=exc.status_code, content={"message": _redact(msg), "detail": _redact(msg)},
                            headers=getattr(exc, "headers", None))

    # ------------------------------------------------------------------ helpers
    def user_history(st: ServingState, user_id, extra: list | None) -> tuple[list, list]:
        """(training history, new history): the model's own record of a known user, then the
        user's stored events and the request's `history`, oldest first."""
        trained: list = []
        hist: list = []
        if user_id is not None:
            uidx = st.model.vocab_.users.lookup([_user_id(st, user_id)])[0]
            if uidx >= 0 and str(user_id) not in svc.erased:
                seen = st.model.seen_
                trained = st.model_ids[seen.indices[seen.indptr[uidx]:seen.indptr[uidx + 1]]].tolist()
            hist = st.coerce(svc.store.history(user_id, s.max_history))
        if extra:
            hist += st.coerce(extra)
        return trained, hist[-s.max_history:]

    def rec_items(st: ServingState, pairs: list[tuple], source_of, hist: list, explain: bool) -> list[dict]:
        sources = source_of([i for i, _ in pairs])
        out = [{"item_id": _jsonable(i), "score": round(float(sc), 6), "title": st.title(i), "source": src}
               for (i, sc), src in zip(pairs, sources)]
        if explain and out and hist:
            hv, hf = st.vectors_for(hist[-s.profile_items:])
            hids = [h for h, f in zip(hist[-s.profile_items:], hf) if f]
            rv, rf = st.vectors_for([i for i, _ in pairs])
            if hids:
                sims = rv @ hv[hf].T
                best = sims.argmax(axis=1)
                for r, o in enumerate(out):
                    if rf[r]:
                        h = hids[int(best[r])]
                        o["because"] = [{"item_id": _jsonable(h), "title": st.title(h),
                                         "similarity": round(float(sims[r, best[r]]), 4)}]
        return out

    def _erased_in_training(model, erased) -> int:
        if not erased:
            return 0
        return int((model.vocab_.users.lookup(list(erased)) >= 0).sum())

    # ------------------------------------------------------------------ read endpoints
    @app.get("/health", tags=["ops"])
    def health():
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"])
    def ready():
        st = svc.state
        ok = svc.store.ping()
        body = {"ready": ok, "model": st.model.name, "model_dir": str(st.model_dir), "n_items": len(st.model_ids),
                "n_users": len(st.model.vocab_.users), "new_items": len(st.overlay),
                "retrieval": st.index.kind if st.index is not None else "none",
                "encoder": getattr(svc.encoder, "identity", "?")[:120], "store": svc.store.dialect,
                "write_enabled": api_key is not None, "worker_pid": os.getpid(),
                # the model card's erasure line: users erased since the model was trained are still in
                # its weights until it is retrained on the store's (erased) data
                "erased_users_in_training": _erased_in_training(st.model, svc.erased)}
        return JSONResponse(status_code=200 if ok else 503, content=body)

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    def prometheus():
        st = svc.state
        gauges = {"longrec_model_items": len(st.model_ids), "longrec_new_items": len(st.overlay),
                  "longrec_model_reloads_total": svc.reloads, "longrec_model_loaded_timestamp_seconds": st.loaded_at}
        return PlainTextResponse(metrics.render(gauges), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/users", tags=["read"])
    def users(limit: int = 50):
        st = svc.state
        n = max(1, min(limit, 1000))
        erased = svc.erased
        ids = st.model.vocab_.users.ids[: n + len(erased)]
        return {"users": [_jsonable(u) for u in ids if str(u) not in erased][:n]}

    @app.post("/recommend", response_model=RecommendResponse, response_model_exclude_none=True, tags=["read"],
              responses={**_E422, **_BODY, 400: _err("a text query without item texts; a body that is not UTF-8 JSON"),
                         404: _err("none of the candidates is known")})
    def recommend(req: RecommendRequest):
        st = svc.state  # one snapshot for the whole request (reloads swap the reference)
        erased = req.user_id is not None and str(req.user_id) in svc.erased
        user = None if erased else _user_id(st, req.user_id)
        trained, hist = user_history(st, req.user_id, req.history)
        everything = trained + hist
        cands = st.coerce(req.candidates) if req.candidates is not None else None
        exclude = set(everything) if req.exclude_seen else set()
        if cands is not None and not any(st.known_item(c) for c in cands):
            raise UnknownIdError(f"none of the {len(cands)} candidate items is known (e.g. {cands[0]!r}).")
        fetch = req.k * 3 if req.rerank == "mmr" else req.k
        ignored = [i for i in hist if not st.known_item(i)] if hist else []
        signals = None
        refined = understood = None
        if (req.text is not None or req.refine is not None) and (req.user_id is not None or req.history is not None):
            # a sentence and a user, or a follow-up: longrec.models.intent / refine (serve/intent.py)
            from longrec.serve.intent import fused_recommend

            pairs, signals, refined, understood = fused_recommend(st, svc.encoder, user, hist, req.text, fetch,
                                                                  req.exclude_seen, cands, req.refine)
            source_of = _source(st, default="fused" if req.text is not None else "model")
        elif req.text is not None:
            if st.dim is None:
                raise LongrecError("text queries need item texts: the model has no item table and no items were added.")
            q = svc.encoder.encode([req.text], show_progress=False)[0]
            pairs = st.text_search(q, fetch, exclude, cands)
            source_of = _source(st, default="text")
            signals = ["text"]
        else:
            pairs = st.model_recommend(user, hist, fetch, req.exclude_seen, cands)
            # an unknown user whose history the model cannot use gets the popularity ranking
            cold = (st.popularity_fallback and not st.known_to_model(hist)
                    and (user is None or st.model.vocab_.users.lookup([user])[0] < 0))
            pairs = merge_new_items(st, pairs, everything, exclude, cands, fetch)
            source_of = _source(st, default="popular-fallback" if cold else "model")
            signals = ["popularity"] if cold else ["history"]
        if req.rerank == "mmr":
            pairs = _mmr(st, pairs, req.k)
        pairs = pairs[: req.k]
        out = {"items": rec_items(st, pairs, source_of, everything, req.explain), "user_id": req.user_id,
               "history_used": len(everything) - len(ignored), "model": st.model.name}
        if req.pitch and req.text is not None and out["items"]:
            from longrec.serve.intent import add_pitches

            add_pitches(st, out["items"], req.text)
        if ignored:
            out["ignored_item_ids"] = [_jsonable(i) for i in ignored]
        if signals:
            out["signals"] = signals
        if refined is not None:
            out["refinement"] = refined
        if req.text is not None and understood is not None:
            out["understood"] = understood
        return out

    if fast is not None:  # the common request's fast path calls this same handler (longrec.serve.fastpath)
        fast.bind(recommend, RecommendRequest, next(r for r in app.routes if getattr(r, "path", "") == "/recommend"),
                  before=None if svc.store.dialect == "sqlite" else svc.sync, inline=svc.store.dialect == "sqlite")
        from longrec.serve.intent import text_ready

        fast.text_ready = lambda text: text_ready(svc.state, text)

    def merge_new_items(st: ServingState, pairs: list[tuple], hist: list, exclude: set, cands, k: int) -> list[tuple]:
        """Insert API-added items unknown to the model (policy in docs/serve.md)."""
        if not len(st.overlay) or s.new_item_slots == 0:
            return pairs
        cset = set(cands) if cands is not None else None
        new_ids = [i for i in st.overlay.ids if i not in exclude and (cset is None or i in cset)]
        new_ids = [i for i, ok in zip(new_ids, st.in_model(new_ids)) if not ok] if new_ids else []
        p = st.profile(hist)
        if not new_ids or p is None:
            return pairs
        nv, _ = st.vectors_for(new_ids)
        ns = nv @ p
        order = topk(ns, min(s.new_item_slots, k))[0]
        chosen = [(new_ids[j], float(ns[j])) for j in order if ns[j] >= s.new_item_min_similarity]
        if not chosen:
            return pairs
        mv, mf = st.vectors_for([i for i, _ in pairs])
        msim = np.where(mf, mv @ p, -np.inf) if len(pairs) else np.zeros(0)
        out = list(pairs)
        # each new item goes right after the model items that are more similar to the profile,
        # but never below the list's last len(chosen) slots: a fresh item that passed the
        # similarity bar gets seen (exploration), while the model's order is kept
        for j, (nid, sim) in enumerate(sorted(chosen, key=lambda t: -t[1])):
            pos = min(int((msim > sim).sum()), k - len(chosen) + j, len(out))
            # its score sits between its neighbours so that the list stays sorted by score
            gap = (out[0][1] - out[-1][1]) / len(out) if len(out) > 1 else 0.0
            gap = gap if gap > 0 else 1e-6
            above = out[pos - 1][1] if pos > 0 else (out[0][1] + 2 * gap if out else sim)
            below = out[pos][1] if pos < len(out) else above - 2 * gap
            out.insert(pos, (nid, (above + below) / 2))
            msim = np.insert(msim, pos, np.inf)  # later (less similar) new items go below it
        return out[:k]

    @app.post("/explain", tags=["read"], responses={**_E422, 404: _err("unknown item"), **_BODY})
    def explain(req: ExplainRequest):
        st = svc.state
        item = st.coerce([req.item_id])[0]
        if not st.known_item(item):
            raise UnknownIdError(f"unknown item {req.item_id!r}; add it with POST /items first.")
        trained, hist = user_history(st, req.user_id, req.history)
        user = None if req.user_id is not None and str(req.user_id) in svc.erased else _user_id(st, req.user_id)
        out: dict[str, Any] = {"item_id": _jsonable(item), "title": st.title(item), "user_id": req.user_id,
                               "history_used": len(trained) + len(hist),
                               "method": "text-similarity + model score"}
        if bool(st.in_model([item])[0]):
            uid = user if user is not None else "\x00anonymous"
            sc = st.model.score(users=[uid], histories={uid: st.known_to_model(hist)})
            row = sc.iloc[0].to_numpy()
            col = int(st.model.vocab_.items.lookup([item])[0])
            out["model_score"] = round(float(row[col]), 6)
            out["model_rank"] = int((row > row[col]).sum()) + 1
        iv, found = st.vectors_for([item])
        because = []
        recent = (trained + hist)[-s.profile_items:]
        if found[0] and recent:
            hv, hf = st.vectors_for(recent)
            hids = [h for h, f in zip(recent, hf) if f]
            if hids:
                sims = hv[hf] @ iv[0]
                for j in np.argsort(-sims, kind="stable")[:3]:
                    because.append({"item_id": _jsonable(hids[j]), "title": st.title(hids[j]),
                                    "similarity": round(float(sims[j]), 4)})
        out["because"] = because
        plug = _explain_plugin()
        if plug is not None:
            try:
                out["explanation"] = plug(st.model, user_id=user, history=hist, item_id=item)
            except Exception as e:  # an optional add-on must not break the endpoint
                out["explanation_error"] = f"{e.__class__.__name__}: {e}"
        return out

    @app.get("/items/{item_id}/similar", response_model=SimilarResponse, response_model_exclude_none=True, tags=["read"],
             responses={**_E422, 400: _err("the item has no text"), 404: _err("unknown item"), **_COMMON})
    def similar(item_id: str, k: int = Query(10, ge=1, le=s.max_k, description="list length")):
        st = svc.state
        item = st.coerce([item_id])[0]
        v, found = st.vectors_for([item])
        if not found[0]:
            if st.known_item(item):
                raise LongrecError(f"item {item_id!r} has no text (the model has no item table); add it with POST /items.")
            raise UnknownIdError(f"unknown item {item_id!r}.")
        pairs = st.text_search(v[0], k, exclude={item})
        return {"item_id": _jsonable(item), "items": rec_items(st, pairs, _source(st, "text"), [], False)}

    # ------------------------------------------------------------------ write endpoints
    @app.post("/events", response_model=EventsResponse, tags=["write"], dependencies=[Depends(require_key)],
              responses={**_E422, **_AUTH, **_BODY})
    def events(req: EventsRequest):
        rows = []
        for e in req.events:
            ts = e.timestamp.timestamp() if isinstance(e.timestamp, _dt.datetime) else (e.timestamp if e.timestamp is not None else _now())
            rows.append({"event_id": e.event_id, "user_id": e.user_id, "item_id": e.item_id, "type": e.type, "ts": ts})
        stored, dup = svc.store.add_events(rows)
        metrics.inc("longrec_events_stored_total", stored)
        metrics.inc("longrec_events_duplicate_total", dup)
        return {"stored": stored, "duplicates": dup}

    @app.post("/items", response_model=ItemsResponse, tags=["write"], dependencies=[Depends(require_key)],
              responses={**_E422, **_AUTH, **_BODY,
                         400: _err("the encoder's vectors do not fit the catalogue; a body that is not UTF-8 JSON")})
    def add_items(req: ItemsRequest):
        items = [{"item_id": it.item_id, **({"text": it.text} if it.text else {}), **(it.model_extra or {})}
                 for it in req.items]
        added, updated, secs = svc.add_items(items)
        return {"added": added, "updated": updated, "seconds": round(secs, 4)}

    @app.post("/admin/reload", response_model=ReloadResponse, tags=["write"], dependencies=[Depends(require_key)],
              responses={**_E422, **_AUTH, 409: _err("the directory cannot be served (the old model keeps serving); "
                                                     "or it is outside the model roots"), **_BODY})
    def reload(req: ReloadRequest | None = None):
        given = req is not None and bool(req.model_dir)
        old = svc.state
        try:
            new = svc.reload(Path(req.model_dir) if given else old.model_dir, check_roots=given)
        except LongrecError as e:
            raise HTTPException(409, f"reload refused, still serving {old.model_dir} ({old.model.name}): {e}") from None
        except Exception as e:  # a foreign or damaged directory must never take the server down
            raise HTTPException(409, f"reload refused, still serving {old.model_dir} ({old.model.name}): "
                                     f"{e.__class__.__name__}: {e}") from None
        return {"model_dir": str(new.model_dir), "model": new.model.name, "n_items": len(new.model_ids),
                "n_users": len(new.model.vocab_.users), "load_seconds": new.load_seconds}

    @app.delete("/users/{user_id}", response_model=ErasureResponse, tags=["write"], dependencies=[Depends(require_key)],
                responses={**_E422, **_AUTH, **_BODY})
    def forget(user_id: Annotated[str, PathParam(min_length=1, max_length=256, pattern=_NO_NUL)]):
        """Erase a user: delete their stored events, stop using the model's training record of
        them, and record the erasure (who, when, how many events; never the events)."""
        n = svc.forget_user(user_id, requested_by="api")
        metrics.inc("longrec_erasures_total")
        return {"user_id": user_id, "events_deleted": n, "erased_at": round(_now(), 3)}

    # ------------------------------------------------------------------ web page
    static = resources.files("longrec.serve") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index():
        return HTMLResponse((static / "index.html").read_text(encoding="utf-8"))

    return app


def _user_id(st: ServingState, user_id):
    """A request's user id in the model's user-id kind (None stays None)."""
    if user_id is None:
        return None
    from longrec.data.ids import coerce_like

    return coerce_like([user_id], st.model.vocab_.users.kind)[0]


def _source(st: ServingState, default: str):
    """Labels for a list of item ids: model items vs API-added ("new") ones, or `default`."""
    def f(ids: list) -> list[str]:
        if default in ("model", "popular-fallback") and not len(st.overlay):
            return [default] * len(ids)  # no API-added items: every listed item is the model's
        if default in ("model", "popular-fallback"):
            return [default if ok else "new" for ok in st.in_model(ids)]
        return [default] * len(ids)
    return f


def _mmr(st: ServingState, pairs: list[tuple], k: int, lam: float = 0.3) -> list[tuple]:
    """Maximal marginal relevance over text vectors: trade relevance (rank) for diversity
    (weight `lam` on the redundancy; longrec.rerank's vectorised greedy, kept in picking order)."""
    if len(pairs) <= 1:
        return pairs
    from longrec.rerank.core import mmr_order

    v, _ = st.vectors_for([i for i, _ in pairs])
    return [pairs[j] for j in mmr_order(v, k, lam)]


def _explain_plugin():
    """`longrec.explain.explain(model, user_id=, history=, item_id=)` when that package provides it."""
    try:
        import longrec.explain as ex
    except ImportError:
        return None
    return getattr(ex, "explain", None)


def _jsonable(v):
    if isinstance(v, np.integer):
        return int(v)
    return v


def _has_orjson() -> bool:
    try:
        import orjson  # noqa: F401
    except ImportError:  # the serve extra brings it; without it every request takes the full path
        return False
    return True


def _version() -> str:
    from longrec._version import __version__

    return __version__
