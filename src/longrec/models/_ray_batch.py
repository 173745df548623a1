"""Batch recommendation on Ray Data: the users of a big run scored by parallel workers.

The user list is cut into chunks of `chunk` users, a multiple of the scoring batch of
`Recommender.recommend`, so every worker scores exactly the batches a one-process `recommend`
would score and the rows come out the same, bit for bit. A Ray Dataset of chunk numbers
(`ray.data.from_items`) is mapped by a pool of actors (`map_batches`): each actor loads the
model once from its directory (`Recommender.load`; on a cluster the directory must be readable
from every node) and recommends for its chunks through the public `recommend`. The user list
and the inference-time histories travel once through Ray's object store; each chunk takes its
own slice of the histories (rows grouped by chunk in the driver, their order kept). The rows
come back to the caller chunk by chunk, in user order, so a file of any size is written
without holding it all in memory.

Ray is an optional dependency (the `sim` extra), imported only here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from longrec.errors import ConfigError

SCORING_BATCH = 1024  # Recommender.recommend's default batch_size: chunks are multiples of it


class _ChunkRecommender:
    """A Ray Data actor: one loaded model, recommendations for whole chunks of users."""

    def __init__(self, model_dir: str, users, histories, offsets, chunk: int, k: int, exclude_seen: bool,
                 candidates, threads: int) -> None:
        import ray

        from longrec.models.base import Recommender

        self.users = ray.get(users) if isinstance(users, ray.ObjectRef) else users
        self.histories = ray.get(histories) if isinstance(histories, ray.ObjectRef) else histories
        self.offsets, self.chunk, self.k = offsets, chunk, k
        self.exclude_seen, self.candidates = exclude_seen, candidates
        self.model = Recommender.load(model_dir)
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:  # pragma: no cover - torch is a core dependency
            pass

    def __call__(self, batch: dict) -> pd.DataFrame:
        out = []
        for j in np.asarray(batch["chunk"], dtype=np.int64):
            ids = self.users[j * self.chunk:(j + 1) * self.chunk]
            hist = None
            if self.histories is not None:
                hist = self.histories.iloc[self.offsets[j]:self.offsets[j + 1]]
            recs = self.model.recommend(users=ids, histories=hist, k=self.k, exclude_seen=self.exclude_seen,
                                        candidates=self.candidates, batch_size=SCORING_BATCH)
            if not len(recs):  # a marker row, so that the driver knows the chunk is done
                recs = pd.DataFrame({"user_id": [None], "item_id": [None], "rank": [0], "score": [np.nan]})
            recs.insert(0, "_chunk", j)
            out.append(recs)
        return pd.concat(out, ignore_index=True)


def _group_histories(user_ids: np.ndarray, histories: pd.DataFrame | None, chunk: int):
    """History rows of the listed users, grouped by chunk (stable: each user's rows keep their
    order), and the row offsets of every chunk. Users are matched as the model matches them
    (by their text form)."""
    n_chunks = -(-len(user_ids) // chunk)
    if histories is None or len(histories) == 0:
        return None, np.zeros(n_chunks + 1, dtype=np.int64)
    pos = pd.Index(pd.Series(user_ids, dtype=object).astype(str)).get_indexer(
        histories["user_id"].astype(str).to_numpy())
    keep = np.flatnonzero(pos >= 0)
    which = pos[keep] // chunk
    order = keep[np.argsort(which, kind="stable")]
    grouped = histories.iloc[order].reset_index(drop=True)
    offsets = np.searchsorted(np.sort(which, kind="stable"), np.arange(n_chunks + 1), side="left").astype(np.int64)
    return grouped, offsets


def recommend_on_ray(model_dir, user_ids: np.ndarray, histories: pd.DataFrame | None, k: int,
                     sink: Callable[[pd.DataFrame], None], exclude_seen: bool = True,
                     candidates: Iterable | None = None, address: str | None = None,
                     workers: int | None = None, chunk: int = 16 * SCORING_BATCH,
                     threads: int = 1) -> dict:
    """Recommend `k` items for every user in `user_ids` (unique caller IDs, in output order)
    with the model saved in `model_dir`, on Ray Data; `sink` receives the rows
    (user_id,item_id,rank,score) chunk by chunk, in user order. The rows are those of
    `Recommender.load(model_dir).recommend(users=user_ids, histories=histories, k=k, ...)`.

    workers: scoring actors (default: one per CPU of the Ray cluster, at most one per chunk);
    address: an existing Ray cluster (default: a local Ray, started and stopped here).
    Returns {"rows", "users", "chunks", "workers"}."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise ConfigError("recommend --ray runs on Ray Data: install it with pip install 'longrec[sim]' "
                          "(or 'ray[data]'), or leave out --ray.") from None
    if chunk < 1 or chunk % SCORING_BATCH:
        raise ConfigError(f"chunk must be a positive multiple of {SCORING_BATCH}, got {chunk}.")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}.")
    user_ids = np.asarray(user_ids, dtype=object)
    n_chunks = -(-len(user_ids) // chunk)
    if n_chunks == 0:
        return {"rows": 0, "users": 0, "chunks": 0, "workers": 0}
    grouped, offsets = _group_histories(user_ids, histories, chunk)
    cand = None if candidates is None else list(candidates)

    quiet = logging.getLogger("ray.data")
    level = quiet.level
    started = False
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        started = True
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n_workers = max(1, min(workers or cpus, n_chunks))
        if n_workers * threads > cpus:
            raise ConfigError(f"{n_workers} scoring workers with {threads} thread(s) each need "
                              f"{n_workers * threads} CPUs; the Ray cluster has {cpus}. Use fewer --workers.")
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False  # the caller reports progress; Ray's bars and logs would bury it
        quiet.setLevel(logging.WARNING)
        ds = ray.data.from_items([{"chunk": j} for j in range(n_chunks)], override_num_blocks=n_chunks)
        ds = ds.map_batches(
            _ChunkRecommender, batch_size=1, batch_format="numpy", concurrency=n_workers, num_cpus=threads,
            fn_constructor_kwargs={"model_dir": str(model_dir), "users": ray.put(user_ids),
                                   "histories": None if grouped is None else ray.put(grouped),
                                   "offsets": offsets, "chunk": chunk, "k": k, "exclude_seen": exclude_seen,
                                   "candidates": cand, "threads": threads})
        rows, pending, nxt = 0, {}, 0
        for block in ds.iter_batches(batch_size=None, batch_format="pandas"):
            for j, part in block.groupby("_chunk", sort=False):
                part = part[part["rank"] > 0] if (part["rank"] == 0).any() else part
                pending[int(j)] = part.drop(columns="_chunk").reset_index(drop=True)
            while nxt in pending:  # write in user order whatever order the chunks finish in
                part = pending.pop(nxt)
                sink(part)
                rows += len(part)
                nxt += 1
        if nxt != n_chunks:
            raise ConfigError(f"batch recommendation lost chunks: {n_chunks - nxt} of {n_chunks} did not come back.")
    finally:
        quiet.setLevel(level)
        if started:
            ray.shutdown()
    return {"rows": rows, "users": int(len(user_ids)), "chunks": n_chunks, "workers": n_workers}
