"""Baskets: how the repeat-consumption models (top-frequency, tifu-knn) group a user's rows.

A *basket* is one visit/order of one user. Rows are grouped into baskets by, in this order of
preference:

1. a ``basket`` (or ``order_id``) column of the interactions, when the Dataset has one
   (DataFrames built directly; the file readers keep only user_id, item_id, rating, timestamp);
2. the ``timestamp`` column: a user's rows with the same timestamp form one basket, so put the
   order time or the order number (1, 2, ...) there;
3. otherwise every row is its own basket (the row order is the time order).

Baskets are numbered 0, 1, ... per user in time order (timestamp, then row order). Repeat rows
must be kept when the data is read (``duplicates="keep-all"``; ``longrec train --duplicates
keep-all``), or every re-purchase is lost before the model sees it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from longrec.data.dataset import Dataset
from longrec.data.vocab import Vocabulary

BASKET_COLUMNS = ("basket", "order_id")


def basket_rows(train: Dataset, vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user index, item index, basket number within the user) of every training row, in
    vocabulary indices, sorted by user then basket. Rows with unknown ids are dropped."""
    df = train.interactions
    n = len(df)
    u = vocab.users.lookup(df["user_id"].to_numpy())
    i = vocab.items.lookup(df["item_id"].to_numpy())
    t = df["timestamp"].to_numpy(dtype=np.float64) if "timestamp" in df.columns else np.zeros(n)
    col = next((c for c in BASKET_COLUMNS if c in df.columns), None)
    if col is not None:
        key = pd.factorize(df[col])[0].astype(np.int64)
    elif "timestamp" in df.columns:
        key = pd.factorize(df["timestamp"])[0].astype(np.int64)
    else:
        key = np.arange(n, dtype=np.int64)
    ok = (u >= 0) & (i >= 0)
    u, i, t, key, pos = u[ok], i[ok], t[ok], key[ok], np.arange(n)[ok]
    order = np.lexsort((pos, t, u))
    u, i, t, key = u[order], i[order], t[order], key[order]
    # a basket starts where the user or the basket key changes (rows are in time order)
    if col is not None:
        # a basket's rows need not be adjacent: number the (user, key) pairs by their first row
        pair = u * (int(key.max()) + 1 if len(key) else 1) + key
        _, first, inv = np.unique(pair, return_index=True, return_inverse=True)
        rank_of_first = np.empty(len(first), dtype=np.int64)
        rank_of_first[np.argsort(first, kind="stable")] = np.arange(len(first))
        start_global = rank_of_first[inv]
        b_glob = start_global  # baskets numbered globally by their first row: consecutive per user
        user_start = np.r_[0, np.flatnonzero(u[1:] != u[:-1]) + 1] if len(u) else np.zeros(0, np.int64)
        first_in_user = np.repeat(b_glob[user_start], np.diff(np.r_[user_start, len(u)]))
        b = b_glob - first_in_user
        return u.astype(np.int64), i.astype(np.int64), b.astype(np.int64)
    new = np.ones(len(u), dtype=bool)
    new[1:] = (u[1:] != u[:-1]) | (key[1:] != key[:-1])
    cum = np.cumsum(new) - 1
    user_start = np.r_[0, np.flatnonzero(u[1:] != u[:-1]) + 1] if len(u) else np.zeros(0, np.int64)
    first = np.repeat(cum[user_start], np.diff(np.r_[user_start, len(u)]))
    return u.astype(np.int64), i.astype(np.int64), (cum - first).astype(np.int64)
