"""Intent-aware `/recommend`: a request with `text` plus `user_id` and/or `history` gets the
fused list of `longrec.models.intent` (the same fusion, defaults and encoder as the library and
`longrec recommend --query`), computed for one user without the batch machinery.

Per serving state (so a reload starts afresh): the model's item text vectors (built on the first
fused request, from the on-disk embedding cache) and an LRU of query vectors, so a repeated
query costs a dictionary look-up instead of an encoder call.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import pandas as pd

from longrec.topk import topk

#: query vectors kept per serving state
QUERY_CACHE_SIZE = 4096


class QueryCache:
    """A thread-safe LRU of query text -> L2-normalised vector."""

    def __init__(self, maxsize: int = QUERY_CACHE_SIZE) -> None:
        self.maxsize = maxsize
        self._d: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, text: str, compute) -> np.ndarray:
        with self._lock:
            v = self._d.get(text)
            if v is not None:
                self._d.move_to_end(text)
                self.hits += 1
                return v
        v = compute(text)  # outside the lock: an encoder call must not block cached look-ups
        with self._lock:
            self.misses += 1
            self._d[text] = v
            self._d.move_to_end(text)
            while len(self._d) > self.maxsize:
                self._d.popitem(last=False)
        return v

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, text: str) -> bool:
        with self._lock:
            return text in self._d


def library_encoder(serve_encoder, spec: str) -> str:
    """The `longrec.models.intent` encoder spec matching the server's encoder (made from the
    setting `spec`): "hash" for the built-in hashed bag of words, else the language-model spec
    ("default": the packaged MiniLM)."""
    from longrec.serve.encoding import HashEncoder

    if isinstance(serve_encoder, HashEncoder):
        return "hash"
    return "default" if spec in ("auto", "default") else spec


class IntentState:
    """What fused requests need from one serving state (built lazily, once)."""

    def __init__(self, model, encoder: str) -> None:
        self.model = model
        self.encoder = encoder
        self.queries = QueryCache()
        self.priors = QueryCache()  # text -> (attribute prior row, labels recognised)
        self._items: np.ndarray | None = None
        self._lock = threading.Lock()

    def item_vectors(self) -> np.ndarray:
        if self._items is None:
            with self._lock:
                if self._items is None:
                    from longrec.models.intent import item_text_vectors

                    self._items = np.ascontiguousarray(item_text_vectors(self.model, self.encoder), dtype=np.float32)
        return self._items

    def prior(self, text: str) -> tuple[np.ndarray, list[str]]:
        """The sentence's attribute prior over the model's items and the attributes it names."""
        from longrec.models.intent import attribute_prior

        def compute(t):
            P, labels = attribute_prior(self.model, [t])
            return P[0], labels[0]

        return self.priors.get(text, compute)

    def query_vector(self, text: str) -> np.ndarray:
        from longrec.models.intent import query_vectors

        return self.queries.get(text, lambda t: np.asarray(query_vectors([t], self.encoder)[0], np.float32))


_STATE_LOCK = threading.Lock()


def text_ready(st, text: str) -> bool:
    """Whether a fused request with `text` needs no encoder call on serving state `st` (its
    item text vectors are built and the query's vector is cached): the fast path's test."""
    it = getattr(st, "_intent", None)
    return it is not None and it._items is not None and text in it.queries


def intent_state(st, serve_encoder) -> IntentState:
    """The IntentState of a ServingState (made on first use)."""
    it = getattr(st, "_intent", None)
    if it is None:
        with _STATE_LOCK:
            it = getattr(st, "_intent", None)
            if it is None:
                it = IntentState(st.model, library_encoder(serve_encoder, st.settings.resolved_encoder()))
                st._intent = it
    return it


def signal_list(has_history: bool, has_text: bool) -> list[str]:
    """The response's `signals`: what the list was made from."""
    return (["history"] if has_history else ["popularity"]) if not has_text else (
        ["history", "text"] if has_history else ["text", "popularity"])


def fused_scores(st, serve_encoder, user_id, history: list, text: str | None, candidates: list | None,
                 exclude_seen: bool, query_weight: float | None = None, query_gate: float | None = None):
    """(fused score row over the model's items, has_history, the attributes recognised in `text`):
    `longrec.models.intent.fuse` of the model's row for the user (training record + `history`)
    and the query's similarities (the model's row alone when `text` is None); seen items (when
    `exclude_seen`) and non-candidates are -inf."""
    from longrec.models.intent import DEFAULT_ATTRIBUTE_WEIGHT, DEFAULT_QUERY_GATE, DEFAULT_QUERY_WEIGHT, fuse

    m = st.model
    it = intent_state(st, serve_encoder)
    uid = user_id if user_id is not None else "\x00anonymous"
    hist = st.known_to_model(history)
    ids = np.array([uid], dtype=object)
    extra = (pd.DataFrame({"user_id": np.array([uid] * len(hist), dtype=object), "item_id": np.array(hist, dtype=object)})
             if hist else _EMPTY)
    _, uidx, hb = m.histories(ids, extra)
    S = np.asarray(m.score_batch(uidx, hb), dtype=np.float64)
    allowed = np.ones(S.shape[1], dtype=bool)
    if candidates is not None:
        allowed[:] = False
        c = m.vocab_.items.lookup(np.asarray(candidates, dtype=object))
        allowed[c[c >= 0]] = True
    if text is not None:
        q = it.query_vector(text)
        R = (it.item_vectors() @ q).astype(np.float64)[None, :]
        P, labels = it.prior(text)
        F = fuse(S, R, allowed, DEFAULT_QUERY_WEIGHT if query_weight is None else query_weight,
                 DEFAULT_QUERY_GATE if query_gate is None else query_gate,
                 P[None, :] if DEFAULT_ATTRIBUTE_WEIGHT else None, DEFAULT_ATTRIBUTE_WEIGHT)[0]
    else:  # a refinement of the history-only list
        F, labels = S[0].copy(), []
    F[~allowed] = -np.inf
    if exclude_seen and len(hb.indices):
        F[hb.indices] = -np.inf
    has_history = bool(uidx[0] >= 0 or hb.lengths()[0] > 0)
    return F, has_history, list(labels)


def fused_recommend(st, serve_encoder, user_id, history: list, text: str | None, k: int, exclude_seen: bool,
                    candidates: list | None, refine=None) -> tuple[list[tuple], list[str], list[dict] | None, list[str]]:
    """([(item_id, score)] best first, signals, refinement, the catalogue attributes recognised in
    `text`) for one user: the list
    `recommend_with_queries(model, users=[user], histories={user: history}, queries={user: text},
    refine=refine)` gives. `refine`: a follow-up text or a list of them (None: no refinement)."""
    F, has_history, understood = fused_scores(st, serve_encoder, user_id, history, text, candidates, exclude_seen)
    said = None
    if refine:
        from longrec.models.refine import Catalog, refine_row

        it = intent_state(st, serve_encoder)
        F, said = refine_row(F, refine, Catalog.from_model(st.model), it.item_vectors, k)
    top, vals = topk(F[None, :], k)
    ok = np.isfinite(vals[0])
    pairs = list(zip(st.model_ids[top[0][ok]].tolist(), vals[0][ok].tolist()))
    return pairs, signal_list(has_history, text is not None), said, understood


def add_pitches(st, items: list[dict], text: str) -> None:
    """Set `pitch` on each response item the model knows (template lines: no generator on the
    request path)."""
    from longrec.explain.intent import intent_pitches

    known = [it for it in items if bool(st.in_model([st.coerce([it["item_id"]])[0]])[0])]
    if known:
        for it, p in zip(known, intent_pitches(st.model, st.coerce([it["item_id"] for it in known]), text)):
            it["pitch"] = p["text"]


_EMPTY = pd.DataFrame({"user_id": pd.Series([], dtype=object), "item_id": pd.Series([], dtype=object)})
