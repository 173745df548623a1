"""The recommender protocol every longrec model follows.

    model = EASE(EASEConfig(l2=300))          # constructors only store a validated config
    model.fit(train, valid=valid)             # learned state appears here (attributes ending in _)
    recs = model.recommend(users=[1, 2], k=10)          # caller IDs in, caller IDs out
    recs = model.recommend(histories={"new": [50, 181]}) # history-only user, no retraining
    model.save("runs/ease"); EASE.load("runs/ease")

A subclass implements `_fit(X, train, valid)` and `_score(users, hist)`, and lists its
learned arrays in `_state()`/`_set_state()`. Everything about IDs, histories, exclusion,
candidates, batching, tie-breaking and artifacts lives here, once.

Unknown users: a user the model never saw and who has no history gets the popularity
ranking of the training data (`on_unknown_user="popular"`, the default) or a clear
`UnknownIdError` (`on_unknown_user="error"`). History items the model does not know are
ignored with a warning.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from longrec.data.dataset import Dataset
from longrec.data.vocab import Vocabulary
from longrec.errors import ConfigError, LongrecError, ModelError
from longrec.models.config import ModelConfig, make_config  # noqa: F401  (re-exported)
from longrec.topk import topk

RECS_COLUMNS = ["user_id", "item_id", "rank", "score"]


class HistoryBatch:
    """Histories of a batch of users as CSR in item indices, in the order the items were
    consumed (training interactions first, then extra history); duplicates removed."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, n_items: int) -> None:
        self.indptr = indptr
        self.indices = indices
        self.n_items = n_items

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def row(self, r: int) -> np.ndarray:
        return self.indices[self.indptr[r]:self.indptr[r + 1]]

    def matrix(self) -> sp.csr_matrix:
        data = np.ones(len(self.indices), dtype=np.float32)
        return sp.csr_matrix((data, self.indices, self.indptr), shape=(len(self), self.n_items))


class Recommender:
    """Base class; see the module docstring for the protocol."""

    name: ClassVar[str] = "base"
    Config: ClassVar[type[ModelConfig]] = ModelConfig
    #: whether the model orders histories (sequential models) or treats them as sets
    uses_history: ClassVar[bool] = True
    #: whether `_score` returns a new array on every call (nothing else holds it), so that
    #: `recommend` may mask seen items in it in place instead of copying each batch
    fresh_scores: ClassVar[bool] = False

    def __init__(self, config: ModelConfig | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        if isinstance(config, ModelConfig):
            base = config.model_dump()
        else:
            base = dict(config or {})
        base.update(overrides)
        self.config = make_config(self.Config, base)

    def __repr__(self) -> str:
        fitted = "fitted" if self.is_fitted else "not fitted"
        return f"{type(self).__name__}({self.config!r}, {fitted})"

    # ------------------------------------------------------------------ fit
    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "vocab_")

    def fit(self, train: Dataset, valid: Dataset | None = None) -> Recommender:
        """Learn from `train`; `valid` (if given) drives early stopping / tuning only."""
        if len(train) == 0:
            raise LongrecError("the training data has no interactions; nothing to learn from.")
        t0 = time.perf_counter()
        self.vocab_ = train.vocabulary()
        order = ["user_id", "timestamp"] if train.has_timestamps else ["user_id"]
        inter = train.interactions.sort_values(order, kind="stable")
        self.seen_ = self._ordered_csr(inter["user_id"].to_numpy(), inter["item_id"].to_numpy())
        self.popularity_ = np.bincount(self.seen_.indices, minlength=len(self.vocab_.items)).astype(np.float32)
        self.items_ = train.items
        self.fit_info_: dict[str, Any] = {}
        self._fit(self._binary(self.seen_), train, valid)
        self.meta_ = {
            "data_fingerprint": train.fingerprint(),
            "train_interactions": len(train),
            "n_users": len(self.vocab_.users),
            "n_items": len(self.vocab_.items),
            "seed": self.config.seed,
            "fit_seconds": round(time.perf_counter() - t0, 3),
            "fit_info": self.fit_info_,
            **{k: v for k, v in train.meta.items() if k in ("protocol", "split_seed", "dataset")},
        }
        self.meta_.update(self._extra_meta())
        return self

    def _fit(self, X: sp.csr_matrix, train: Dataset, valid: Dataset | None) -> None:
        raise NotImplementedError

    def _score(self, users: np.ndarray, hist: HistoryBatch) -> np.ndarray:
        """Scores (len(users), n_items), float32. `users` holds vocabulary indices, -1 for
        users the model never saw (score them from `hist` alone)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _binary(m: sp.csr_matrix) -> sp.csr_matrix:
        out = m.copy()
        out.sort_indices()
        out.data = np.ones_like(out.data, dtype=np.float32)
        return out

    def _ordered_csr(self, user_ids: np.ndarray, item_ids: np.ndarray) -> sp.csr_matrix:
        """CSR of (user, item) in the given order per row, duplicates dropped (first kept)."""
        u = self.vocab_.users.lookup(user_ids)
        i = self.vocab_.items.lookup(item_ids)
        ok = (u >= 0) & (i >= 0)
        u, i = u[ok], i[ok]
        n_items = len(self.vocab_.items)
        _, first = np.unique(u * n_items + i, return_index=True)
        keep = np.sort(first)
        u, i = u[keep], i[keep]
        order = np.argsort(u, kind="stable")
        u, i = u[order], i[order]
        indptr = np.zeros(len(self.vocab_.users) + 1, dtype=np.int64)
        np.cumsum(np.bincount(u, minlength=len(self.vocab_.users)), out=indptr[1:])
        data = np.ones(len(i), dtype=np.float32)
        return sp.csr_matrix((data, i.astype(np.int32), indptr), shape=(len(self.vocab_.users), n_items))

    # ------------------------------------------------------------------ hooks for subclasses and mixins
    def _extra_meta(self) -> dict[str, Any]:
        """Entries a model adds to meta.json after fit (e.g. a privacy guarantee)."""
        return {}

    def _restore_meta(self, meta: dict[str, Any]) -> None:
        """Read back what `_extra_meta` wrote, when a model directory is loaded (before `_set_state`)."""

    def _cold_user_scores(self, own: np.ndarray) -> np.ndarray:
        """Scores for users with neither training interactions nor a history; `own` holds the
        model's own scores for them. Default: the training popularity."""
        return self.popularity_

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise ModelError(f"{type(self).__name__} is not fitted: call fit(train) or load(dir) first.")

    def _history_frame(self, histories) -> pd.DataFrame:
        """Accept {user: [items]} or a DataFrame with user_id,item_id[,timestamp]."""
        if histories is None:
            return pd.DataFrame({"user_id": [], "item_id": []})
        if isinstance(histories, Dataset):
            histories = histories.interactions
        if isinstance(histories, pd.DataFrame):
            missing = {"user_id", "item_id"} - set(histories.columns)
            if missing:
                raise LongrecError(f"history table lacks column(s) {sorted(missing)}; it needs user_id and item_id.")
            df = histories
            if "timestamp" in df.columns:
                df = df.sort_values(["user_id", "timestamp"], kind="stable")
            # read only, never changed: a frame of exactly these columns is used as it is (a column
            # selection costs ~0.2 ms, a lot on the serving path's one-user requests)
            return df if list(df.columns) == ["user_id", "item_id"] else df[["user_id", "item_id"]]
        if isinstance(histories, Mapping):
            rows = [(u, it) for u, items in histories.items() for it in (items if items is not None else [])]
            users_only = [u for u, items in histories.items() if not items]
            df = pd.DataFrame(rows, columns=["user_id", "item_id"], dtype=object)
            if users_only:  # users with an empty history still get a list
                df.attrs["empty_users"] = users_only
            return df
        raise LongrecError("histories must be a {user_id: [item_id, ...]} mapping or a DataFrame with user_id,item_id.")

    def _build_histories(self, user_ids: np.ndarray, extra: pd.DataFrame, use_seen: bool = True) -> tuple[np.ndarray, HistoryBatch]:
        """Vocabulary indices of `user_ids` and their histories (train first, then extra)."""
        n_items = len(self.vocab_.items)
        uidx = self.vocab_.users.lookup(user_ids)
        rows, items, keys = [], [], []
        if use_seen and (uidx >= 0).any():
            known = np.flatnonzero(uidx >= 0)
            sub = self.seen_[uidx[known]]
            lens = np.diff(sub.indptr)
            rows.append(np.repeat(known, lens))
            items.append(sub.indices.astype(np.int64))
            keys.append(np.arange(len(sub.indices)))
        if len(extra):
            slot = {str(u): r for r, u in enumerate(user_ids)}
            pos = np.fromiter((slot.get(str(u), -1) for u in extra["user_id"].to_numpy()), dtype=np.int64,
                              count=len(extra))
            iidx = self.vocab_.items.lookup(extra["item_id"].to_numpy())
            n_unknown = int(((iidx < 0) & (pos >= 0)).sum())
            if n_unknown:
                bad = extra["item_id"].to_numpy()[(iidx < 0) & (pos >= 0)][:5]
                warnings.warn(f"{n_unknown} history item(s) unknown to the model were ignored (e.g. {list(bad)}).",
                              stacklevel=3)
            ok = (pos >= 0) & (iidx >= 0)
            rows.append(pos[ok])
            items.append(iidx[ok])
            keys.append(np.arange(int(ok.sum())) + (len(keys[0]) if keys else 0))
        if rows:
            r = np.concatenate(rows)
            it = np.concatenate(items)
            k = np.concatenate(keys)
            _, first = np.unique(r * n_items + it, return_index=True)
            keep = first[np.lexsort((k[first], r[first]))]
            r, it = r[keep], it[keep]
        else:
            r = it = np.zeros(0, dtype=np.int64)
        indptr = np.zeros(len(user_ids) + 1, dtype=np.int64)
        np.cumsum(np.bincount(r, minlength=len(user_ids)), out=indptr[1:])
        return uidx, HistoryBatch(indptr, it.astype(np.int64), n_items)

    @staticmethod
    def _histories_by_batch(user_ids: np.ndarray, extra: pd.DataFrame, batch_size: int):
        """b -> the rows of `extra` that `_build_histories` would take for batch b (users
        user_ids[b * batch_size:(b + 1) * batch_size]), in their order: the history table is
        matched against the user list once, not scanned whole for every batch (at a million
        users and ten million history rows the scans, not the scoring, took the time)."""
        if len(extra) == 0 or len(user_ids) <= batch_size:
            return lambda b: extra
        col = extra["user_id"]
        if col.dtype.kind in "iu" and pd.api.types.infer_dtype(user_ids, skipna=False) == "integer":
            # integers match by their text form exactly when they are equal: no text built
            keys = pd.Index(np.asarray(user_ids, dtype=np.int64))
            values = col.to_numpy()
        else:
            keys = pd.Index(pd.Series(user_ids, dtype=object).map(str))
            values = col.map(str).to_numpy()
        if not keys.is_unique:  # two IDs with one text form (1 and "1"): keep the per-batch scan
            return lambda b: extra
        pos = keys.get_indexer(values)
        keep = np.flatnonzero(pos >= 0)
        which = pos[keep] // batch_size
        order = np.argsort(which, kind="stable")
        grouped = extra.iloc[keep[order]]
        n_batches = -(-len(user_ids) // batch_size)
        offsets = np.searchsorted(which[order], np.arange(n_batches + 1), side="left")
        return lambda b: grouped.iloc[offsets[b]:offsets[b + 1]]

    def _users_and_histories(self, users=None, histories=None) -> tuple[np.ndarray, HistoryBatch]:
        """(caller user IDs, their histories): every vocabulary user when neither is given."""
        self._require_fitted()
        extra = self._history_frame(histories)
        ids = self.vocab_.users.ids if users is None and histories is None else self._user_list(users, extra)
        ids = np.asarray(ids, dtype=object)
        return ids, self._build_histories(ids, extra)[1]

    def _user_list(self, users, extra: pd.DataFrame) -> np.ndarray:
        if users is None:
            ids = list(pd.unique(extra["user_id"])) + list(extra.attrs.get("empty_users", []))
            if not ids:
                raise LongrecError("recommend() needs users=[...] or histories=...; got neither.")
            return np.array(ids, dtype=object)
        if isinstance(users, (str, int, np.integer)):
            users = [users]
        return np.array(list(pd.unique(pd.Series(list(users), dtype=object))), dtype=object)

    # ------------------------------------------------------------------ the public extension surface
    # What serving, explanations, re-rankers and blends build on: histories in vocabulary
    # indices, raw score rows for them, and `longrec.topk.topk` to rank those rows.
    def histories(self, users=None, histories=None) -> tuple[np.ndarray, np.ndarray, HistoryBatch]:
        """(caller user IDs, their vocabulary indices (-1 = unknown to the model), their histories):
        training interactions first, then `histories` (a {user_id: [item_id, ...]} mapping or a
        DataFrame user_id,item_id[,timestamp]). Users default to those in `histories`."""
        self._require_fitted()
        extra = self._history_frame(histories)
        ids = self._user_list(users, extra)
        uidx, hist = self._build_histories(ids, extra)
        return ids, uidx, hist

    def score_batch(self, uidx: np.ndarray, hist: HistoryBatch, on_unknown_user: str = "popular") -> np.ndarray:
        """Raw scores (len(uidx), n_items) float32 for users as `histories` returns them; a user
        with neither training data nor history gets the model's cold-user scores (popularity by
        default) or, with on_unknown_user="error", a LongrecError."""
        self._require_fitted()
        return self._scores_with_fallback(np.asarray(uidx), hist, on_unknown_user)

    def training_matrix(self) -> sp.csr_matrix:
        """The binary users x items matrix of the training interactions (vocabulary order)."""
        self._require_fitted()
        return self._binary(self.seen_)

    # ------------------------------------------------------------------ inference
    def score(self, users=None, histories=None, items: Iterable | None = None) -> pd.DataFrame:
        """Raw scores as a (users x items) DataFrame indexed by caller IDs (for analysis,
        explanations, blending). `items` restricts the columns."""
        self._require_fitted()
        extra = self._history_frame(histories)
        user_ids = self._user_list(users, extra)
        uidx, hist = self._build_histories(user_ids, extra)
        s = self._scores_with_fallback(uidx, hist)
        cols = np.arange(len(self.vocab_.items)) if items is None else self.vocab_.items.index(list(items), "item")
        return pd.DataFrame(s[:, cols], index=pd.Index(user_ids, name="user_id"),
                            columns=pd.Index(self.vocab_.items.ids[cols], name="item_id"))

    def _score_into(self, users: np.ndarray, hist: HistoryBatch, out: np.ndarray) -> np.ndarray:
        """`_score`, which a model may write into `out` (len(users), n_items) float32, a buffer
        that `recommend` reuses across its batches; the default ignores it."""
        return self._score(users, hist)

    def _scores_with_fallback(self, uidx: np.ndarray, hist: HistoryBatch, on_unknown_user: str = "popular",
                              out: np.ndarray | None = None) -> np.ndarray:
        cold = (uidx < 0) & (hist.lengths() == 0)
        if cold.any() and on_unknown_user == "error":
            raise LongrecError(f"{int(cold.sum())} user(s) are unknown to the model and have no history; "
                               "pass their history, or use on_unknown_user='popular'.")
        s = np.asarray(self._score(uidx, hist) if out is None else self._score_into(uidx, hist, out),
                       dtype=np.float32)
        if cold.any():
            s = s if s.flags.writeable else s.copy()
            s[cold] = self._cold_user_scores(s[cold])
        return s

    def recommend(self, users=None, histories=None, k: int = 10, exclude_seen: bool = True,
                  candidates: Iterable | None = None, on_unknown_user: str = "popular",
                  batch_size: int = 1024, progress: bool = False, queries: Mapping | None = None,
                  refine=None) -> pd.DataFrame:
        """Top-k items per user as a DataFrame user_id,item_id,rank,score (rank 1 = best).

        queries: {user_id: text}: those users' lists fuse the scores with their free-text
        intent, and refine: follow-up sentences applied to the lists
        (`longrec.models.intent.recommend_with_queries`, which this then returns).

        users: caller IDs of users known from training (their training interactions are
        history) and/or users present in `histories`. histories: {user_id: [item_id, ...]}
        or a DataFrame user_id,item_id[,timestamp] of interactions known at inference time;
        used as model input without retraining. exclude_seen removes every history item.
        candidates: item IDs that may be ranked (unknown candidate IDs raise an error).
        Ties rank the lower item_id first.
        """
        self._require_fitted()
        if queries or refine is not None:
            from longrec.models.intent import recommend_with_queries

            return recommend_with_queries(self, users=users, histories=histories, queries=queries, k=k,
                                          exclude_seen=exclude_seen, candidates=candidates,
                                          on_unknown_user=on_unknown_user, refine=refine)
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise LongrecError(f"k must be a positive integer, got {k!r}.")
        if on_unknown_user not in ("popular", "error"):
            raise LongrecError("on_unknown_user must be 'popular' or 'error'.")
        extra = self._history_frame(histories)
        user_ids = self._user_list(users, extra)
        allowed = None
        if candidates is not None:
            cand = self.vocab_.items.lookup(list(candidates))
            if (cand < 0).any():
                n_bad = int((cand < 0).sum())
                warnings.warn(f"{n_bad} candidate item(s) unknown to the model were skipped.", stacklevel=2)
            allowed = np.zeros(len(self.vocab_.items), dtype=bool)
            allowed[cand[cand >= 0]] = True
        out = []
        batches = range(0, len(user_ids), batch_size)
        parts = self._histories_by_batch(user_ids, extra, batch_size)
        if progress and len(user_ids) > batch_size:
            from rich.progress import track
            batches = track(batches, description=f"recommending ({len(user_ids):,} users)")
        # models whose scores are a new matrix per batch write them into one buffer, reused by
        # every batch (at 100k items a fresh 400 MB matrix per 1,024 users cost its page faults)
        buf = None
        if self.fresh_scores and len(user_ids) > batch_size:
            buf = np.empty((batch_size, len(self.vocab_.items)), dtype=np.float32)
        for start in batches:
            ids = user_ids[start:start + batch_size]
            uidx, hist = self._build_histories(ids, parts(start // batch_size))
            s = self._scores_with_fallback(uidx, hist, on_unknown_user, out=None if buf is None else buf[:len(ids)])
            out.append(self._topk(ids, s, hist, k, exclude_seen, allowed))
        if not out:
            return pd.DataFrame(columns=RECS_COLUMNS)
        return pd.concat(out, ignore_index=True)

    def _topk(self, ids, s: np.ndarray, hist: HistoryBatch, k: int, exclude_seen: bool, allowed) -> pd.DataFrame:
        # ranked in the scores' own dtype (float32 -> float64 is exact and keeps every order and
        # tie), widened to float64 only for the k kept: no float64 copy of the whole matrix
        if not (self.fresh_scores and s.flags.writeable):
            s = np.array(s, copy=True)
        if allowed is not None:
            s[:, ~allowed] = -np.inf
        if exclude_seen and len(hist.indices):
            rows = np.repeat(np.arange(len(hist)), hist.lengths())
            s[rows, hist.indices] = -np.inf
        top, vals = topk(s, k)  # exact ties -> lower item index first
        kk = top.shape[1]
        valid = np.isfinite(vals)
        r = np.broadcast_to(np.arange(1, kk + 1), top.shape)
        return pd.DataFrame({
            "user_id": np.repeat(np.asarray(ids, dtype=object), kk)[valid.ravel()],
            "item_id": self.vocab_.items.ids[top[valid]],
            "rank": r[valid].astype(np.int64),
            "score": vals[valid].astype(np.float64),
        })

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, np.ndarray]:
        """Learned arrays beyond the shared ones (vocabulary, training history, popularity)."""
        return {}

    def _set_state(self, tensors: dict[str, np.ndarray]) -> None:
        pass

    def save(self, directory: str | Path, overwrite: bool = True) -> Path:
        """Write the model directory atomically (see longrec.models.artifacts). An existing
        model directory is replaced only with `overwrite`; any other file or folder there is
        never touched (ModelError)."""
        from longrec.models.artifacts import frame_to_parquet, write_model_dir

        self._require_fitted()
        tensors = {
            "_seen_indptr": self.seen_.indptr.astype(np.int64),
            "_seen_indices": self.seen_.indices.astype(np.int32),
            "_popularity": self.popularity_,
            **self._state(),
        }

        def extra(tmp: Path) -> None:
            self.vocab_.save(tmp)
            if self.items_ is not None:
                frame_to_parquet(self.items_, tmp / "items.parquet")

        meta = {**self.meta_, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        return write_model_dir(directory, name=self.name, config=self.config.model_dump(),
                               tensors=tensors, meta=meta, write_extra=extra, overwrite=overwrite)

    @classmethod
    def load(cls, directory: str | Path) -> Recommender:
        """Load any longrec model directory (the class is read from config.toml)."""
        from longrec.models.artifacts import check_csr, check_tensors, read_model_dir, tensor_message
        from longrec.models.registry import get_model_class

        name, config, tensors, meta = read_model_dir(directory)
        klass = get_model_class(name)
        if cls is not Recommender and not issubclass(klass, cls):
            raise ModelError(f"{directory} holds a {name!r} model, not a {cls.name!r} model.")
        try:
            model = klass(config)
        except ConfigError as e:
            raise ModelError(f"{directory}/config.toml is not a valid {name} config ({e}); re-train or re-save "
                             "the model.") from None
        d = Path(directory)
        model.vocab_ = Vocabulary.load(d)
        n_users, n_items = len(model.vocab_.users), len(model.vocab_.items)
        # metadata first: _set_state may read it (e.g. the privacy guarantee of a DP model)
        try:
            model.items_ = pd.read_parquet(d / "items.parquet") if (d / "items.parquet").is_file() else None
        except Exception as e:  # pyarrow raises several unrelated types for a bad file
            raise ModelError(f"{d}/items.parquet is corrupt ({type(e).__name__}: {e}); re-save the model.") from None
        model.meta_ = meta
        model.fit_info_ = meta.get("fit_info") if isinstance(meta.get("fit_info"), dict) else {}
        model._restore_meta(meta)
        shared = {"_seen_indptr": ("i", (n_users + 1,)), "_seen_indices": ("i", (None,)),
                  "_popularity": ("f", (n_items,))}
        check_tensors(d, tensors, shared, exact=False)
        check_csr(d, tensors["_seen_indptr"], tensors["_seen_indices"], n_users, n_items, "the training history")
        own = {k: v for k, v in tensors.items() if k not in shared}
        model._check_state(d, own, n_users, n_items)
        try:
            indptr, indices = tensors.pop("_seen_indptr"), tensors.pop("_seen_indices")
            model.seen_ = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=(n_users, n_items))
            model.popularity_ = tensors.pop("_popularity")
            model._set_state(tensors)
        except LongrecError:
            raise
        except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as e:
            raise ModelError(tensor_message(d, f"it does not fit the {name} model ({type(e).__name__}: {e})")) from e
        model._trial_score(d)
        return model

    def _check_state(self, d: Path, t: dict[str, np.ndarray], n_users: int, n_items: int) -> None:
        """Model-specific checks of the loaded tensors (beyond the shared history/popularity,
        already checked): names, dtypes, shapes against the config and vocabulary, index
        ranges. Raise ModelError (see longrec.models.artifacts.check_tensors / check_csr). The
        default accepts only models without tensors of their own."""
        from longrec.models.artifacts import check_tensors

        if type(self)._set_state is Recommender._set_state:
            check_tensors(d, t, {})

    def _trial_score(self, d: Path) -> None:
        """Score one known user and one history-only user: a model whose tensors passed every
        check but still cannot score (or scores NaN) is refused at load, not at recommend."""
        from longrec.models.artifacts import tensor_message

        n_users, n_items = len(self.vocab_.users), len(self.vocab_.items)
        if n_items == 0:
            raise ModelError(f"{d}: the model's item vocabulary is empty; re-train it.")
        users = np.array([0, -1] if n_users else [-1], dtype=np.int64)
        hist = self.seen_[0].indices.astype(np.int64) if n_users else np.zeros(0, np.int64)
        rows = [hist, hist[:1]] if n_users else [hist[:1]]
        indptr = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
        batch = HistoryBatch(indptr, np.concatenate(rows), n_items)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                s = np.asarray(self._scores_with_fallback(users, batch))
        except LongrecError:
            raise
        except Exception as e:  # whatever a mismatched tensor makes the model's code raise
            raise ModelError(tensor_message(d, f"the model cannot score with it ({type(e).__name__}: {e})")) from None
        if s.shape != (len(users), n_items):
            raise ModelError(tensor_message(d, f"scores have shape {s.shape}, expected {(len(users), n_items)}"))
        if not np.isfinite(s).all():
            raise ModelError(tensor_message(d, "the model scores NaN/inf with it"))


def validate_model_dir(directory: str | Path):
    """Load and fully validate a model directory; return the model, or raise ModelError (one
    clear paragraph). The same check runs on every load (CLI, library, service start-up and
    reload): files, meta.json vs config.toml, tensor names/dtypes/shapes against the config and
    vocabulary, index ranges, finite values, and a one-user trial scoring."""
    return Recommender.load(directory)
