"""Item-text encoding of a large catalogue on Ray Data.

`RayEncoder` wraps an encoder: its `encode` cuts the texts into chunks, maps them over a pool of
Ray actors (`ray.data` `map_batches`; each actor loads the encoder once) and puts the vectors
back in input order. It has the inner encoder's `identity`, so `CachedEncoder(RayEncoder(...))`
shares the embedding cache with one-process encoding: texts already in the cache are not sent
to Ray, and what Ray encodes is there for every later fit, `ask` or serving process.

The texts are ordered by length and cut into chunks of whole encoder batches in that order, as
`Encoder.encode` batches them, so each actor encodes exactly the batches one process would and
the vectors equal one process's (up to the last float bits of a different BLAS thread split).

    enc = CachedEncoder(RayEncoder(default_encoder(), workers=8, address="ray://head:10001"))
    vecs = enc.encode(texts)

Models take it through their config: `encode_workers = N` (ItemTextConfig). Ray is an optional
dependency (the `sim` extra), imported only when `encode` runs.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from longrec.errors import ConfigError
from longrec.lm.encoders import MAX_TEXT_CHARS, Encoder, EncoderSettings, check_texts, get_encoder


class _ChunkEncoder:
    """A Ray Data actor: one loaded encoder; encodes whole chunks of texts."""

    def __init__(self, settings: dict, texts, chunks, threads: int) -> None:
        import ray

        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:  # pragma: no cover - the onnx backend without torch
            pass
        self.texts = ray.get(texts) if isinstance(texts, ray.ObjectRef) else texts
        self.chunks = ray.get(chunks) if isinstance(chunks, ray.ObjectRef) else chunks
        self.encoder = get_encoder(EncoderSettings(**{**settings, "show_progress": False}))

    def __call__(self, batch: dict) -> dict:
        idx_out, vec_out = [], []
        for j in np.asarray(batch["chunk"], dtype=np.int64):
            idx = self.chunks[j]
            # already longest first: Encoder.encode's stable length sort keeps this order, so its
            # batches are the one-process batches
            vec_out.append(self.encoder.encode([self.texts[i] for i in idx], show_progress=False))
            idx_out.append(idx)
        return {"i": np.concatenate(idx_out), "vec": np.concatenate(vec_out, axis=0)}


class RayEncoder(Encoder):
    """`encoder` (an Encoder or a `get_encoder` spec) run on `workers` Ray actors with `threads`
    torch threads each; `address`: an existing Ray cluster (default: a local Ray started and
    stopped for each `encode`). Fewer than `min_texts` texts are encoded in this process (Ray's
    start-up costs more than it saves)."""

    def __init__(self, encoder: Encoder | str | None = None, workers: int = 2, address: str | None = None,
                 threads: int = 1, chunk_batches: int = 8, min_texts: int = 1):
        self.inner = encoder if isinstance(encoder, Encoder) else get_encoder(encoder)
        super().__init__(self.inner.settings)
        if workers < 1 or threads < 1 or chunk_batches < 1:
            raise ConfigError(f"RayEncoder needs workers, threads and chunk_batches >= 1 "
                              f"(got {workers}, {threads}, {chunk_batches}).")
        self.workers, self.address, self.threads = workers, address, threads
        self.chunk_batches, self.min_texts = chunk_batches, min_texts
        self.last_run: dict = {}

    @property
    def identity(self) -> str:
        return self.inner.identity

    def load(self) -> "RayEncoder":
        return self  # the actors load the model

    def _dim_hint(self) -> int:
        return self.inner._dim_hint()

    def encode(self, texts: Sequence[str] | str, show_progress: bool | None = None) -> np.ndarray:
        texts = check_texts(texts)
        if len(texts) < max(1, self.min_texts):
            return self.inner.encode(texts, show_progress=show_progress)
        try:
            import ray
            import ray.data
        except ImportError:
            raise ConfigError("encoding on Ray needs Ray Data: install it with pip install 'longrec[sim]' "
                              "(or 'ray[data]'), or set encode_workers = 1.") from None
        n = len(texts)
        order = np.argsort([-len(t[:MAX_TEXT_CHARS]) for t in texts], kind="stable")
        size = self.settings.batch_size * self.chunk_batches
        chunks = [order[s:s + size] for s in range(0, n, size)]
        quiet = logging.getLogger("ray.data")
        level = quiet.level
        started = False
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
            started = True
        try:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            n_workers = max(1, min(self.workers, len(chunks)))
            if n_workers * self.threads > cpus:
                raise ConfigError(f"{n_workers} encoding workers with {self.threads} thread(s) each need "
                                  f"{n_workers * self.threads} CPUs; the Ray cluster has {cpus}. "
                                  "Use fewer encode_workers.")
            ctx = ray.data.DataContext.get_current()
            ctx.enable_progress_bars = False
            quiet.setLevel(logging.WARNING)
            ds = ray.data.from_items([{"chunk": j} for j in range(len(chunks))], override_num_blocks=len(chunks))
            ds = ds.map_batches(
                _ChunkEncoder, batch_size=1, batch_format="numpy", concurrency=n_workers, num_cpus=self.threads,
                fn_constructor_kwargs={"settings": {**self.settings.model_dump(mode="json"), "num_threads": self.threads},
                                       "texts": ray.put(texts),
                                       "chunks": ray.put(chunks), "threads": self.threads})
            out: np.ndarray | None = None
            done = np.zeros(n, dtype=bool)
            for block in ds.iter_batches(batch_size=None, batch_format="numpy"):
                i, v = np.asarray(block["i"], dtype=np.int64), np.asarray(block["vec"], dtype=np.float32)
                if out is None:
                    out = np.empty((n, v.shape[1]), dtype=np.float32)
                out[i] = v
                done[i] = True
            if out is None or not done.all():
                raise ConfigError(f"encoding on Ray lost texts: {int((~done).sum())} of {n} did not come back.")
        finally:
            quiet.setLevel(level)
            if started:
                ray.shutdown()
        self.last_run = {"texts": n, "chunks": len(chunks), "workers": n_workers}
        return out

    def __repr__(self) -> str:
        return f"RayEncoder({self.inner!r}, workers={self.workers}, address={self.address!r})"
