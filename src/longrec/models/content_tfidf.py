"""content-tfidf: content-based recommendation from the item table's text (TF-IDF + cosine).

    x_i       TF-IDF vector of item i's text columns (words, lower-cased; sublinear tf
              1 + ln(count); smooth idf ln((1 + N) / (1 + df)) + 1; L2-normalised)
    p_u       mean of x_i over the user's history
    score     cos(p_u, x_j) (+ prior_weight · π_j, see below)

With ``neighbours`` = k the score is a text item-kNN instead: score(u, j) = Σ_{i ∈ H_u ∩ N_k(j)}
cos(x_i, x_j), where N_k(j) holds the k training items most similar to j by text (j excluded):
only close matches (same author, same series, same publisher) count, not the sum of many weak
word overlaps.

Every item of the item table gets a vector from its text, so items nobody interacted with in
training (new books, new products) are scored like any other: pick it for cold-start items and
text-rich catalogues (books: title, author, publisher), or as the content member of a `blend`.
It needs an item table with at least one text column; items without text score 0.

Options: ``columns`` (default: every text column of the item table), ``column_weights``
(repeat a column's words, e.g. {"author": 2}), ``value_columns`` (columns whose whole value is
also one token, e.g. ["author"]: "same author" becomes a single, rare, heavily weighted feature
instead of two common first/last names). ``prior_weight`` > 0 adds a popularity prior learned
from text: π_j = the mean log-popularity of item j's `prior_neighbours` most similar training
items (by text), scaled to [0, 1]: a new book by a popular author inherits that author's
popularity. Choose the options on held-out *cold* items (see bench/cold.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field

from longrec.errors import ConfigError
from longrec.models.base import HistoryBatch, ModelConfig, Recommender

TOKEN = r"[^\W_]+"


class ContentTFIDFConfig(ModelConfig):
    columns: list[str] | None = Field(None, description="text columns of the item table (default: all text columns)")
    column_weights: dict[str, float] = Field(default_factory=dict, description="per-column word-count multiplier")
    value_columns: list[str] = Field(default_factory=list,
                                     description="columns whose whole (normalised) value is also one token")
    sublinear_tf: bool = True
    min_df: int = Field(1, ge=1, description="drop words in fewer items")
    neighbours: int | None = Field(None, ge=1, description="score an item from its k most text-similar training "
                                   "items only (text item-kNN) instead of the whole profile")
    prior_weight: float = Field(0.0, ge=0, description="weight of the text-predicted popularity prior")
    prior_neighbours: int = Field(20, ge=1)


def _text_columns(items: pd.DataFrame) -> list[str]:
    return [c for c in items.columns if c != "item_id" and (items[c].dtype == object or
                                                            pd.api.types.is_string_dtype(items[c]))]


def tfidf_matrix(items: pd.DataFrame | None, item_ids: np.ndarray, cfg: ContentTFIDFConfig) -> sp.csr_matrix:
    """L2-normalised TF-IDF rows aligned with `item_ids` (zero rows for items without text)."""
    n = len(item_ids)
    if items is None:
        raise ConfigError("content-tfidf needs an item table with text columns (e.g. --items items.csv).")
    cols = cfg.columns if cfg.columns is not None else _text_columns(items)
    missing = [c for c in list(cols) + list(cfg.value_columns) + list(cfg.column_weights) if c not in items.columns]
    if missing:
        raise ConfigError(f"content-tfidf: the item table has no column(s) {missing}; "
                          f"its columns are {[c for c in items.columns if c != 'item_id']}.")
    if not cols and not cfg.value_columns:
        raise ConfigError("content-tfidf: the item table has no text column; name them with columns=[...].")
    pos = pd.Series(np.arange(n), index=pd.Index(item_ids)).reindex(items["item_id"].to_numpy()).to_numpy()
    ok = ~np.isnan(pos)
    rows_pos = pos[ok].astype(np.int64)
    frames = []
    for c in cols:
        s = items[c][ok].fillna("").astype(str).str.lower().str.findall(TOKEN)
        s.index = rows_pos
        s = s.explode().dropna()
        e = pd.DataFrame({"row": s.index.to_numpy(dtype=np.int64), "tok": s.to_numpy(dtype=object)})
        e["w"] = float(cfg.column_weights.get(c, 1.0))
        frames.append(e)
    for c in cfg.value_columns:
        v = items[c][ok].fillna("").astype(str).str.lower().str.findall(TOKEN).str.join(" ")
        keep = (v != "").to_numpy()
        frames.append(pd.DataFrame({"row": rows_pos[keep], "tok": (f"{c}=" + v[keep]).to_numpy(),
                                    "w": float(cfg.column_weights.get(c, 1.0))}))
    e = pd.concat(frames, ignore_index=True)
    if len(e) == 0:
        return sp.csr_matrix((n, 0), dtype=np.float32)
    e = e.groupby(["row", "tok"], sort=False)["w"].sum().reset_index()
    tok_id, vocab = pd.factorize(e["tok"])
    df = np.bincount(tok_id, minlength=len(vocab))
    keep_tok = df >= cfg.min_df
    e = e[keep_tok[tok_id]]
    tok_id = tok_id[keep_tok[tok_id]]
    remap = np.cumsum(keep_tok) - 1
    tok_id = remap[tok_id]
    df = df[keep_tok]
    n_docs = len(np.unique(rows_pos))
    idf = np.log((1.0 + n_docs) / (1.0 + df)) + 1.0
    tf = e["w"].to_numpy(dtype=np.float64)
    if cfg.sublinear_tf:
        tf = 1.0 + np.log(np.maximum(tf, 1e-12))
        tf = np.maximum(tf, 1e-6)
    X = sp.csr_matrix((tf * idf[tok_id], (e["row"].to_numpy(), tok_id)), shape=(n, len(df)))
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ X
    return X.tocsr().astype(np.float32)


class ContentTFIDF(Recommender):
    name = "content-tfidf"
    Config = ContentTFIDFConfig
    uses_history = True

    def _fit(self, X, train, valid) -> None:
        self._prepare()
        self.fit_info_["vocabulary"] = int(self.X_.shape[1])
        self.fit_info_["items_with_text"] = int((self.X_.getnnz(axis=1) > 0).sum())

    def _prepare(self) -> None:
        self.X_ = tfidf_matrix(self.items_, self.vocab_.items.ids, self.config)
        self.XT_ = self.X_.T.tocsr()
        self.N_T_ = self._neighbours().T.tocsr() if self.config.neighbours else None
        self.prior_ = self._text_prior() if self.config.prior_weight > 0 else None

    def _blocks(self):
        """(rows, text similarity of those items to every training item, training item indices)."""
        warm = np.flatnonzero(self.popularity_ > 0)
        Xw = self.X_[warm].T.tocsc()
        for start in range(0, self.X_.shape[0], 2048):
            idx = np.arange(start, min(start + 2048, self.X_.shape[0]))
            sim = (self.X_[idx] @ Xw).toarray()
            self_pos = np.searchsorted(warm, idx)
            hit = (self_pos < len(warm)) & (warm[np.minimum(self_pos, len(warm) - 1)] == idx)
            sim[np.flatnonzero(hit), self_pos[hit]] = -np.inf  # an item is not its own neighbour
            yield idx, sim, warm

    def _neighbours(self) -> sp.csr_matrix:
        """Row j: cos(x_i, x_j) for j's `neighbours` most similar training items i (> 0 only)."""
        n = self.X_.shape[0]
        rows, cols, vals = [], [], []
        for idx, sim, warm in self._blocks():
            k = min(self.config.neighbours, sim.shape[1])
            if k == 0:
                break
            top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            v = np.take_along_axis(sim, top, 1)
            ok = v > 0
            rows.append(np.repeat(idx, k).reshape(-1, k)[ok])
            cols.append(warm[top[ok]])
            vals.append(v[ok])
        if not rows:
            return sp.csr_matrix((n, n), dtype=np.float32)
        return sp.csr_matrix((np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(n, n))

    def _text_prior(self) -> np.ndarray:
        """Mean log(1 + popularity) of each item's most text-similar training items, in [0, 1]."""
        out = np.zeros(self.X_.shape[0])
        for idx, sim, warm in self._blocks():
            k = min(self.config.prior_neighbours, sim.shape[1])
            if k == 0:
                break
            logp = np.log1p(self.popularity_[warm]).astype(np.float64)
            top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            w = np.maximum(np.take_along_axis(sim, top, 1), 0.0)
            num = (w * logp[top]).sum(axis=1)
            den = w.sum(axis=1)
            out[idx] = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
        hi = out.max()
        return (out / hi if hi > 0 else out).astype(np.float32)

    def _score(self, users: np.ndarray, hist: HistoryBatch) -> np.ndarray:
        H = hist.matrix()
        if self.N_T_ is not None:
            s = (H @ self.N_T_).toarray()
            if self.prior_ is not None:
                s = s + self.config.prior_weight * self.prior_[None, :]
            return s.astype(np.float32)
        lens = np.maximum(hist.lengths(), 1)
        P = sp.diags(1.0 / lens) @ H @ self.X_
        pn = np.sqrt(np.asarray(P.multiply(P).sum(axis=1)).ravel())
        P = sp.diags(1.0 / np.where(pn > 0, pn, 1.0)) @ P
        s = (P @ self.XT_).toarray()
        if self.prior_ is not None:
            s = s + self.config.prior_weight * self.prior_[None, :]
        return s.astype(np.float32)

    def _state(self):
        return {}

    def _set_state(self, t):
        self._prepare()
