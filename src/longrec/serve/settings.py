"""Typed settings of the HTTP service (one pydantic model, validated at app creation)."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RetrievalSettings(BaseModel):
    """Nearest-neighbour search over item text vectors.

    Exact top-K (one matrix product) below `exact_threshold` items; a FAISS index above it.
    hnsw: graph index (no training, fast queries, slow-ish build). ivf: inverted lists
    over k-means cells (fast build, `nprobe` cells scanned per query).
    """

    model_config = ConfigDict(extra="forbid")

    exact_threshold: int = Field(100_000, ge=0)
    #: ivf by default: on bench/retrieval.py (1M x 384, 2 cores) IVF reached recall@10 1.0 at
    #: 2.5 ms/query where HNSW (M=16) peaked at 0.91 and took 7x longer to build
    kind: Literal["hnsw", "ivf"] = "ivf"
    hnsw_m: int = Field(32, ge=4, le=256)
    hnsw_ef_construction: int = Field(80, ge=8)
    hnsw_ef_search: int = Field(96, ge=8)
    ivf_nlist: int | None = Field(None, ge=1, description="None: about sqrt(n)")
    ivf_nprobe: int = Field(16, ge=1)
    ivf_train_size: int = Field(50_000, ge=1000)
    threads: int | None = Field(None, ge=1, description="FAISS threads (None: library default)")


class ServeSettings(BaseModel):
    """How the service behaves. Every limit is checked per request (422 / 413 when exceeded)."""

    model_config = ConfigDict(extra="forbid")

    #: API key for write endpoints; None = read from $LONGREC_API_KEY at app creation.
    #: An empty/unset key disables the write endpoints (they never run open).
    api_key: str | None = None
    max_k: int = Field(1000, ge=1)
    #: cost ceiling: the largest `k` for the expensive options of /recommend (`rerank: "mmr"`,
    #: `explain: true`), whose cost grows with k² (MMR) or k·history (explanations)
    max_k_costly: int = Field(100, ge=1)
    #: largest request line + headers in bytes; larger requests get 431 before their headers are read
    max_header_bytes: int = Field(32_768, ge=1024)
    #: directories under which /admin/reload may load a model (None: the served model's parent)
    model_roots: list[str] | None = None
    blas_threads: int = Field(1, ge=1, description="BLAS threads for scoring (1 keeps tail latency low)")
    max_history: int = Field(5000, ge=1, description="items in a request's history / events used per user")
    max_batch: int = Field(1000, ge=1, description="events or items per write request")
    max_body_bytes: int = Field(1_000_000, ge=1024)
    max_text_chars: int = Field(5000, ge=10)
    #: text encoder: "auto" = longrec.lm default encoder (MiniLM) with its disk cache, falling
    #: back to "hash" when the lm extra is missing; "hash" = built-in hashed bag of words
    #: (no model, instant, for tests and tiny deployments); else a longrec.lm.get_encoder spec.
    encoder: str = "auto"
    #: new items (added by POST /items, unknown to the model): at most this many per list, and
    #: only when their text similarity to the user's profile / query reaches `new_item_min_similarity`.
    new_item_slots: int = Field(3, ge=0)
    new_item_min_similarity: float = Field(0.3, ge=-1.0, le=1.0)
    #: how many recent history items form the user's text profile
    profile_items: int = Field(50, ge=1)
    retrieval: RetrievalSettings = RetrievalSettings()
    #: admission control: requests in flight per worker process (accepted, not yet answered)
    #: past which new ones get 503 + Retry-After at once instead of queueing; 0 = no bound
    max_in_flight: int = Field(64, ge=0)
    #: admission control: a request that waited longer than this for its worker's event loop
    #: (from the moment its headers were read) gets 503 + Retry-After instead of an answer that
    #: comes too late; 0 = no bound (counted only under longrec.serve.server's uvicorn protocol)
    max_queue_ms: float = Field(500, ge=0)
    #: answer the common /recommend request (user_id, k, exclude_seen, explain) without
    #: FastAPI's per-request validation and serialisation (same answers; longrec.serve.fastpath)
    fast_path: bool = True
    #: SQLite: "FULL" fsyncs every commit (survives power loss); "NORMAL" survives a process kill.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"

    def resolved_api_key(self) -> str | None:
        key = self.api_key if self.api_key is not None else os.environ.get("LONGREC_API_KEY")
        return key or None

    def resolved_encoder(self) -> str:
        return os.environ.get("LONGREC_SERVE_ENCODER") or self.encoder
