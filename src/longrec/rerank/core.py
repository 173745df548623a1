"""Re-ranking any model's candidates for diversity, calibration and exposure.

Every re-ranker is greedy: it fills positions 1..k one at a time, each step for all users at
once (arrays of shape users x candidates), picking the candidate with the best objective.
Relevance is each model's score min-max scaled to [0, 1] over the user's candidates, so one λ
means the same for every model. λ = 0 always returns the original order.

    mmr:λ         Maximal Marginal Relevance (Carbonell & Goldstein 1998):
                  (1-λ)·rel - λ·max_{s in list} sim(i, s); sim = cosine of item features
                  (genre multi-hot if the item table has genres, else co-occurrence embeddings).
    calibrated:λ  Calibrated recommendations (Steck 2018): (1-λ)·rel - λ·KL(p_u || q~),
                  p_u the genre mix of the user's history, q the list's with i added,
                  q~ = (1-α)q + α p_u (option alpha, default 0.01).
    exposure:λ    popularity-aware exposure: (1-λ)·rel - λ·log(1+pop_i)/log(1+max pop).
    longtail:p    target share: every prefix of length t holds >= floor(p·t) long-tail items
                  (items outside the top 20% by training popularity; option head_share).
    fair:p        FA*IR-style (Zehlike et al. 2017): every prefix of length t holds >= m(t)
                  long-tail items, m(t) = binomial inverse CDF(alpha; t, p) (option alpha=0.1),
                  so the list cannot be told apart from one drawn with tail share p at level alpha.

mmr, calibrated and exposure choose the set greedily and then show it in the model's order
(the candidates' order; option ``resort=0`` keeps the greedy order). longtail and fair keep
their order, which their prefix constraints depend on.

Specs are strings ``NAME:λ[,key=value...]`` such as ``"mmr:0.3"`` or ``"fair:0.5,alpha=0.05"``.

    ctx = RerankContext.from_model(model)
    recs = rerank(candidates_df, "calibrated:0.5", k=10, context=ctx, profiles=history_df)
    recs = recommend_reranked(model, users=[1, 2], k=10, spec="mmr:0.3")   # what the CLI calls
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from longrec.errors import ConfigError, DataError
from longrec.topk import topk

RERANKERS = ("mmr", "calibrated", "exposure", "longtail", "fair")
_OPTIONS = {"mmr": {"resort"}, "calibrated": {"alpha", "resort"}, "exposure": {"resort"},
            "longtail": {"head_share"}, "fair": {"alpha", "head_share"}}
_USER_BATCH = 2048


# --------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class RerankSpec:
    name: str
    lam: float
    options: dict = field(default_factory=dict)

    def __str__(self) -> str:
        opts = "".join(f",{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.name}:{self.lam:g}{opts}"


def parse_rerank(spec: str | RerankSpec) -> RerankSpec:
    """Parse ``NAME:λ[,key=value...]`` (e.g. ``"mmr:0.3"``, ``"fair:0.5,alpha=0.05"``)."""
    if isinstance(spec, RerankSpec):
        return spec
    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigError(f"re-ranking spec {spec!r} must look like NAME:λ, e.g. 'mmr:0.3'; "
                          f"names: {', '.join(RERANKERS)}.")
    name, _, rest = spec.strip().partition(":")
    name = name.strip().lower()
    if name not in RERANKERS:
        raise ConfigError(f"unknown re-ranker {name!r} in {spec!r}; choose one of {', '.join(RERANKERS)}.")
    parts = [p.strip() for p in rest.split(",") if p.strip()]
    try:
        lam = float(parts[0]) if parts else float("nan")
    except ValueError:
        lam = float("nan")
    if not 0.0 <= lam <= 1.0:
        raise ConfigError(f"re-ranking spec {spec!r}: λ must be a number in [0, 1], e.g. '{name}:0.3'.")
    options: dict = {}
    for p in parts[1:]:
        key, eq, val = p.partition("=")
        key = key.strip()
        if not eq or key not in _OPTIONS[name]:
            allowed = ", ".join(sorted(_OPTIONS[name])) or "none"
            raise ConfigError(f"re-ranking spec {spec!r}: bad option {p!r}; options of {name}: {allowed}.")
        try:
            options[key] = float(val)
        except ValueError:
            raise ConfigError(f"re-ranking spec {spec!r}: option {key} needs a number, got {val!r}.") from None
    if not 0 < options.get("alpha", 0.5) < 1:
        raise ConfigError(f"re-ranking spec {spec!r}: alpha must be in (0, 1).")
    if options.get("resort", 1) not in (0, 1):
        raise ConfigError(f"re-ranking spec {spec!r}: resort must be 0 or 1.")
    if not 0 < options.get("head_share", 0.2) < 1:
        raise ConfigError(f"re-ranking spec {spec!r}: head_share must be in (0, 1).")
    return RerankSpec(name, lam, options)


# --------------------------------------------------------------------------- context
def _genre_lists(items: pd.DataFrame | None) -> pd.Series | None:
    """item_id -> list of genres from the first genre-like column of an item table."""
    if items is None or "item_id" not in items.columns:
        return None
    from longrec.lm.text import item_lists  # light module (re, string); the one category parser

    vals, col = item_lists(items)
    if col is None:
        return None
    return pd.Series(vals, index=items["item_id"].to_numpy(), dtype=object)


@dataclass
class RerankContext:
    """What the re-rankers know about items, indexed 0..n_items-1.

    item_ids: caller ID of each index. popularity: training interactions per item.
    genres: (n_items, G) CSR, each row a distribution over genres (sums to 1, or 0 for items
    without genres). features: (n_items, d) unit-norm rows for MMR similarity (None: built
    from genres, or from ``interactions`` by a truncated SVD, on first use).
    """

    item_ids: np.ndarray
    popularity: np.ndarray
    genres: sp.csr_matrix | None = None
    genre_names: list = field(default_factory=list)
    features: np.ndarray | None = None
    interactions: sp.csr_matrix | None = None   # users x items, for co-occurrence features

    def __post_init__(self) -> None:
        self._index = pd.Index(self.item_ids)

    @classmethod
    def from_model(cls, model) -> RerankContext:
        """Context of a fitted longrec model: its vocabulary, training popularity, item table."""
        model._require_fitted()
        ids = model.vocab_.items.ids
        ctx = cls(item_ids=ids, popularity=np.asarray(model.popularity_, dtype=np.float64),
                  interactions=model.seen_)
        ctx.set_genres(_genre_lists(getattr(model, "items_", None)))
        return ctx

    @classmethod
    def from_tables(cls, train_interactions: pd.DataFrame, items: pd.DataFrame | None = None) -> RerankContext:
        """Context from a training interaction table (and an item table with genres)."""
        from longrec.data.dataset import Dataset

        ds = Dataset(train_interactions[["user_id", "item_id"]].copy(), items.copy() if items is not None else None)
        vocab = ds.vocabulary()
        X = ds.matrix(vocab).tocsr()
        X.data[:] = 1.0
        X.sum_duplicates()
        X.data[:] = 1.0
        ctx = cls(item_ids=vocab.items.ids, popularity=np.asarray(X.sum(axis=0)).ravel().astype(np.float64),
                  interactions=X)
        ctx.set_genres(_genre_lists(ds.items))
        return ctx

    def set_genres(self, lists: pd.Series | Mapping | None) -> None:
        if lists is None:
            return
        lists = pd.Series(lists) if isinstance(lists, Mapping) else lists
        idx = self.lookup(lists.index.to_numpy())
        names: dict = {}
        rows, cols = [], []
        for r, gs in zip(idx, lists.to_numpy()):
            if r < 0:
                continue
            for g in dict.fromkeys(gs or []):
                rows.append(r)
                cols.append(names.setdefault(g, len(names)))
        if not names:
            return
        m = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(self.item_ids), len(names)))
        cnt = np.asarray(m.sum(axis=1)).ravel()
        self.genres = sp.csr_matrix(sp.diags(1.0 / np.where(cnt > 0, cnt, 1.0)) @ m)
        self.genre_names = list(names)

    def lookup(self, ids) -> np.ndarray:
        from longrec.data.ids import normalize_ids

        arr = normalize_ids(pd.Series(np.asarray(ids, dtype=object) if not isinstance(ids, pd.Series) else ids))
        if self._index.dtype.kind in "iu" and arr.dtype.kind not in "iu":
            out = np.full(len(arr), -1, dtype=np.int64)
            num = pd.to_numeric(arr, errors="coerce")
            ok = num.notna().to_numpy()
            out[ok] = self._index.get_indexer(num[ok].astype(np.int64).to_numpy())
            return out
        if self._index.dtype.kind not in "iu" and arr.dtype.kind in "iu":
            arr = arr.astype(str)
        return self._index.get_indexer(arr.to_numpy()).astype(np.int64)

    def item_features(self) -> np.ndarray:
        if self.features is None:
            if self.genres is not None:
                f = (self.genres > 0).astype(np.float64).toarray()
            elif self.interactions is not None and min(self.interactions.shape) > 2:
                from scipy.sparse.linalg import svds

                X = sp.csr_matrix(self.interactions, dtype=np.float64)
                d = max(1, min(32, min(X.shape) - 1))
                _, s, vt = svds(X, k=d, random_state=0)
                f = (vt.T * s)
            else:
                raise ConfigError("mmr needs item features: give the model an item table with genres, "
                                  "or training interactions for co-occurrence features.")
            n = np.linalg.norm(f, axis=1, keepdims=True)
            self.features = f / np.where(n > 0, n, 1.0)
        return self.features

    def head_mask(self, head_share: float = 0.2) -> np.ndarray:
        """True for the top ``head_share`` of items by popularity (ties: lower index)."""
        n = len(self.popularity)
        order = np.lexsort((np.arange(n), -self.popularity))
        head = np.zeros(n, dtype=bool)
        head[order[:int(math.ceil(head_share * n))]] = True
        return head

    def profiles(self, hist: sp.csr_matrix) -> np.ndarray:
        """Genre distribution p(g|u) of each row of a users x items history matrix."""
        if self.genres is None:
            raise ConfigError("calibrated re-ranking needs item genres: the model's item table has no genre "
                              "column (class/genre/genres/categories...). Train with --items FILE.")
        h = sp.csr_matrix(hist, dtype=np.float64)
        h.data[:] = 1.0
        p = np.asarray((h @ self.genres).todense())
        tot = p.sum(axis=1, keepdims=True)
        return p / np.where(tot > 0, tot, 1.0)


# --------------------------------------------------------------------------- core
def _scale(rel: np.ndarray, valid: np.ndarray) -> np.ndarray:
    lo = np.where(valid, rel, np.inf).min(axis=1, keepdims=True)
    hi = np.where(valid, rel, -np.inf).max(axis=1, keepdims=True)
    span = np.where(np.isfinite(hi - lo) & (hi > lo), hi - lo, 1.0)
    return np.where(valid, (rel - np.where(np.isfinite(lo), lo, 0.0)) / span, 0.0)


def _min_protected(name: str, p: float, k: int, alpha: float) -> np.ndarray:
    t = np.arange(1, k + 1)
    if name == "longtail":
        return np.floor(p * t + 1e-9).astype(np.int64)
    from scipy.stats import binom

    return np.maximum(binom.ppf(alpha, t, p), 0).astype(np.int64)


def rerank_arrays(cand: np.ndarray, rel: np.ndarray, spec: str | RerankSpec, k: int, context: RerankContext,
                  profiles: np.ndarray | None = None) -> np.ndarray:
    """The core: ``cand`` (users x C) item indices (-1 = empty), ``rel`` their scores (higher
    = better); returns (users x k) positions into ``cand`` (-1 where a user has < k)."""
    spec = parse_rerank(spec)
    if cand.shape != rel.shape:
        raise DataError(f"cand {cand.shape} and rel {rel.shape} must have the same shape")
    if k < 1:
        raise ConfigError(f"k must be a positive integer, got {k}")
    out = np.full((cand.shape[0], k), -1, dtype=np.int64)
    for s in range(0, cand.shape[0], _USER_BATCH):
        sl = slice(s, s + _USER_BATCH)
        prof = profiles[sl] if profiles is not None else None
        out[sl] = _rerank_block(cand[sl], np.asarray(rel[sl], dtype=np.float64), spec, k, context, prof)
    return out


def _rerank_block(cand, rel, spec: RerankSpec, k, ctx: RerankContext, prof) -> np.ndarray:
    n_u, n_c = cand.shape
    valid = (cand >= 0) & np.isfinite(rel)
    r = _scale(rel, valid)
    lam = spec.lam
    rows = np.arange(n_u)
    ci = np.maximum(cand, 0)
    sel = np.full((n_u, k), -1, dtype=np.int64)
    avail = valid.copy()

    static = None
    if spec.name == "exposure":
        lp = np.log1p(np.maximum(ctx.popularity, 0.0))
        pen = lp / lp.max() if lp.max() > 0 else lp
        static = (1 - lam) * r - lam * pen[ci]
    elif spec.name == "mmr":
        F = ctx.item_features()
        Fc = F[ci]                                            # (U, C, d)
        maxsim = np.zeros((n_u, n_c))
    elif spec.name == "calibrated":
        if prof is None:
            raise ConfigError("calibrated re-ranking needs the users' histories (profiles).")
        alpha = spec.options.get("alpha", 0.01)
        Gc = np.asarray(ctx.genres[ci.ravel()].todense()).reshape(n_u, n_c, -1)   # (U, C, G)
        qsum = np.zeros((n_u, Gc.shape[2]))
        logp = np.log(np.where(prof > 0, prof, 1.0))
    else:  # longtail / fair
        tail = ~ctx.head_mask(spec.options.get("head_share", 0.2))[ci] & valid
        need = _min_protected(spec.name, lam, k, spec.options.get("alpha", 0.1))
        n_tail = np.zeros(n_u, dtype=np.int64)

    for t in range(k):
        if spec.name in ("exposure",):
            obj = static
        elif spec.name == "mmr":
            obj = (1 - lam) * r - lam * maxsim
        elif spec.name == "calibrated":
            q = qsum[:, None, :] + Gc                          # list's genre mass with each candidate
            tot = q.sum(axis=2, keepdims=True)
            q = q / np.where(tot > 0, tot, 1.0)
            qt = (1 - alpha) * q + alpha * prof[:, None, :]
            with np.errstate(divide="ignore"):
                kl = (prof[:, None, :] * (logp[:, None, :] - np.log(np.where(qt > 0, qt, 1.0)))).sum(axis=2)
            obj = (1 - lam) * r - lam * kl
        else:
            must = n_tail < need[t]                             # constraint binds: a tail item next
            has_tail = (avail & tail).any(axis=1)
            force = must & has_tail
            obj = np.where(force[:, None] & ~tail, -np.inf, r)
        obj = np.where(avail, obj, -np.inf)
        j = np.argmax(obj, axis=1)                              # ties: the earlier (better-ranked) candidate
        ok = avail[rows, j]
        sel[ok, t] = j[ok]
        avail[rows[ok], j[ok]] = False
        if spec.name == "mmr":
            chosen = Fc[rows, j]                                # (U, d)
            sim = np.matmul(Fc, chosen[:, :, None])[:, :, 0]     # (U, C): BLAS, not einsum's loops
            maxsim = np.where(ok[:, None], np.maximum(maxsim, sim), maxsim)
        elif spec.name == "calibrated":
            qsum += np.where(ok[:, None], Gc[rows, j], 0.0)
        elif spec.name in ("longtail", "fair"):
            n_tail += (ok & tail[rows, j]).astype(np.int64)
    if spec.name in ("mmr", "calibrated", "exposure") and spec.options.get("resort", 1):
        # the objective picks the set; showing it in relevance order keeps every set-based
        # figure (diversity, calibration, Gini@k, APLT@k) and gains accuracy
        sel = np.sort(np.where(sel >= 0, sel, n_c), axis=1)
        sel[sel == n_c] = -1
    return sel


def mmr_order(features: np.ndarray, k: int, lam: float = 0.3, relevance: np.ndarray | None = None) -> np.ndarray:
    """MMR over one ranked list: positions (into the list) of the ``k`` items picked greedily by
    (1-λ)·rel - λ·max sim to the items already picked, in picking order. ``features``: (C, d)
    rows (zero rows = no feature, never redundant), best-ranked first; ``relevance`` defaults
    to the rank (1 for the first, down to 0). Vectorised: O(k·C·d), one matrix-vector product
    per pick, against the O(k²·C·d) of recomputing every similarity at each step."""
    f = np.asarray(features, dtype=np.float32)
    n_c = f.shape[0]
    k = min(int(k), n_c)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    norm = np.linalg.norm(f, axis=1, keepdims=True)
    f = f / np.where(norm > 0, norm, 1.0)
    rel = np.asarray(relevance, np.float64) if relevance is not None else -np.arange(n_c, dtype=np.float64)
    valid = np.isfinite(rel)
    r = _scale(rel[None, :], valid[None, :])[0]                 # the same [0, 1] scaling as rerank()
    base = np.where(valid, (1 - lam) * r, -np.inf)
    maxsim = np.zeros(n_c, dtype=np.float32)
    out = np.empty(k, dtype=np.int64)
    n = 0
    for _ in range(k):
        obj = base - lam * maxsim
        j = int(np.argmax(obj))                                  # ties: the better-ranked one
        if not np.isfinite(obj[j]):
            break
        out[n] = j
        n += 1
        base[j] = -np.inf
        np.maximum(maxsim, f @ f[j], out=maxsim)
    return out[:n]


# --------------------------------------------------------------------------- frames
def _candidate_arrays(cands: pd.DataFrame, ctx: RerankContext) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(user ids, cand item indices (U x C), scores (U x C), original row per slot) from a frame."""
    missing = {"user_id", "item_id"} - set(cands.columns)
    if missing or not ({"score", "rank"} & set(cands.columns)):
        raise DataError(f"candidates need columns user_id, item_id and score (or rank); got {list(cands.columns)}.")
    df = cands.reset_index(drop=True)
    if "score" in df.columns:
        rel = pd.to_numeric(df["score"], errors="coerce").to_numpy(dtype=np.float64)
    else:  # ranks only: a decreasing pseudo-score keeps the order
        rel = -pd.to_numeric(df["rank"], errors="coerce").to_numpy(dtype=np.float64)
    idx = ctx.lookup(df["item_id"])
    bad = idx < 0
    if bad.any():
        warnings.warn(f"{int(bad.sum())} candidate row(s) with items unknown to the re-ranker were dropped "
                      f"(e.g. {list(df['item_id'][bad][:3])}).", stacklevel=3)
    order_key = df["rank"].to_numpy(dtype=np.float64) if "rank" in df.columns else -rel
    ucode, users = pd.factorize(df["user_id"])
    keep = np.flatnonzero(~bad)
    keep = keep[np.lexsort((idx[keep], order_key[keep], ucode[keep]))]
    uc = ucode[keep]
    pos = np.arange(len(keep)) - np.searchsorted(uc, uc, side="left")
    n_c = int(pos.max()) + 1 if len(pos) else 0
    cand = np.full((len(users), n_c), -1, dtype=np.int64)
    scores = np.full((len(users), n_c), -np.inf)
    rowmap = np.full((len(users), n_c), -1, dtype=np.int64)
    cand[uc, pos] = idx[keep]
    scores[uc, pos] = rel[keep]
    rowmap[uc, pos] = keep
    return np.asarray(users, dtype=object), cand, scores, rowmap


def rerank(candidates, spec: str | RerankSpec, k: int = 10, context: RerankContext | None = None,
           profiles=None, n_candidates: int = 100):
    """Re-rank candidates for ``k`` slots.

    candidates: a DataFrame ``user_id, item_id, score`` (or rank), e.g. a model's top-100 from
    ``recommend(k=100)`` -> a DataFrame ``user_id, item_id, rank, score`` (the original scores);
    or a (users x n_items) score matrix in the context's item indices (-inf = excluded) -> a
    (users x k) array of item indices (-1 = empty), from the top ``n_candidates`` per row.
    profiles (calibrated only): a history DataFrame ``user_id, item_id``, or a (users x G)
    array of genre distributions aligned with the candidates' users.
    """
    if context is None:
        raise ConfigError("rerank() needs a context: RerankContext.from_model(model) or .from_tables(train, items).")
    spec = parse_rerank(spec)
    if isinstance(candidates, pd.DataFrame):
        users, cand, rel, rowmap = _candidate_arrays(candidates, context)
        prof = _profiles_for(profiles, users, context) if spec.name == "calibrated" else None
        sel = rerank_arrays(cand, rel, spec, k, context, prof)
        u_rows = np.repeat(np.arange(len(users)), k)
        slots = sel.ravel()
        ok = slots >= 0
        src = rowmap[u_rows[ok], slots[ok]]
        out = candidates.reset_index(drop=True).iloc[src][["user_id", "item_id"]].reset_index(drop=True)
        out["rank"] = np.tile(np.arange(1, k + 1), len(users))[ok]
        out["score"] = rel[u_rows[ok], slots[ok]]
        return out
    s = np.asarray(candidates, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != len(context.item_ids):
        raise DataError(f"a score matrix must be users x {len(context.item_ids)} items; got shape {s.shape}.")
    c = min(max(n_candidates, k), s.shape[1])
    cand, vals = topk(s, c)  # best first, ties toward the lower item position
    cand = np.where(np.isfinite(vals), cand, -1)
    prof = None
    if spec.name == "calibrated":
        if profiles is None or isinstance(profiles, pd.DataFrame):
            raise ConfigError("with a score matrix, pass profiles as a (users x genres) array "
                              "(RerankContext.profiles(history_matrix)).")
        prof = np.asarray(profiles, dtype=np.float64)
    sel = rerank_arrays(cand, vals, spec, k, context, prof)
    return np.where(sel >= 0, np.take_along_axis(cand, np.maximum(sel, 0), 1), -1)


def _profiles_for(profiles, users: np.ndarray, ctx: RerankContext) -> np.ndarray:
    if profiles is None:
        raise ConfigError("calibrated re-ranking needs the users' histories: pass profiles=history DataFrame.")
    if not isinstance(profiles, pd.DataFrame):
        p = np.asarray(profiles, dtype=np.float64)
        if p.shape[0] != len(users):
            raise DataError(f"profiles has {p.shape[0]} rows for {len(users)} users.")
        return p
    from longrec.metrics.ranking import _align_ids

    a, b = _align_ids(pd.Series(users), profiles["user_id"])
    r = pd.Index(a.to_numpy()).get_indexer(b.to_numpy())
    i = ctx.lookup(profiles["item_id"])
    ok = (r >= 0) & (i >= 0)
    h = sp.csr_matrix((np.ones(int(ok.sum())), (r[ok], i[ok])), shape=(len(users), len(ctx.item_ids)))
    return ctx.profiles(h)


# --------------------------------------------------------------------------- models
def apply_rerank(model, recs_candidates: pd.DataFrame, spec: str | RerankSpec, k: int = 10,
                 histories=None, context: RerankContext | None = None) -> pd.DataFrame:
    """Re-rank a fitted longrec model's candidate lists (``model.recommend(k=100)`` output).
    Users' profiles (for calibrated) are their training items plus ``histories``."""
    spec = parse_rerank(spec)
    ctx = context or RerankContext.from_model(model)
    prof = None
    if spec.name == "calibrated" and len(recs_candidates):
        users = pd.unique(recs_candidates["user_id"])
        _, _, hist = model.histories(users, histories)
        prof = ctx.profiles(hist.matrix())
        # rerank() factorizes user ids in order of appearance, which is pd.unique's order
    return rerank(recs_candidates, spec, k=k, context=ctx, profiles=prof)


def recommend_reranked(model, users=None, histories=None, k: int = 10, spec: str | RerankSpec = "mmr:0.3",
                       n_candidates: int = 100, context: RerankContext | None = None, **recommend_kw) -> pd.DataFrame:
    """``model.recommend`` for ``n_candidates`` items, re-ranked to ``k`` by ``spec``."""
    spec = parse_rerank(spec)
    if n_candidates < k:
        raise ConfigError(f"n_candidates ({n_candidates}) must be at least k ({k}).")
    cands = model.recommend(users=users, histories=histories, k=n_candidates, **recommend_kw)
    return apply_rerank(model, cands, spec, k=k, histories=histories, context=context)
