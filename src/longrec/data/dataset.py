"""The Dataset: interactions plus optional item and user tables, in the caller's IDs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from longrec.data.ids import IDS_NORMALIZED, normalize_ids
from longrec.data.vocab import IdMap, Vocabulary

INTERACTION_COLUMNS = ("user_id", "item_id", "rating", "timestamp")


@dataclass
class Dataset:
    """Interactions (user_id, item_id, optional rating, optional timestamp), an optional
    item table (item_id + any attribute/text columns) and an optional user table
    (user_id + attributes).

    Build one with the readers in `longrec.data` (which validate) or directly from
    DataFrames; the constructor normalises ID columns (see `longrec.data.ids`) and
    nothing else. No dense user x item matrix is ever built.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    name: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for df, cols in ((self.interactions, ("user_id", "item_id")), (self.items, ("item_id",)),
                         (self.users, ("user_id",))):
            if df is None or df.attrs.get(IDS_NORMALIZED):
                continue  # the readers already normalised (and validated) these IDs
            for c in cols:
                if c in df.columns:
                    df[c] = normalize_ids(df[c].reset_index(drop=True)).set_axis(df.index)

    # ------------------------------------------------------------------ facts
    def __len__(self) -> int:
        return len(self.interactions)

    @property
    def has_ratings(self) -> bool:
        return "rating" in self.interactions.columns

    @property
    def has_timestamps(self) -> bool:
        return "timestamp" in self.interactions.columns

    @property
    def user_ids(self) -> np.ndarray:
        return self.interactions["user_id"].unique()

    @property
    def item_ids(self) -> np.ndarray:
        """Items in interactions or in the item table."""
        ids = self.interactions["item_id"]
        if self.items is not None:
            ids = pd.concat([ids, self.items["item_id"]], ignore_index=True)
        return ids.unique()

    def fingerprint(self) -> str:
        """A stable hash of the interactions (order-insensitive), for result provenance."""
        cols = [c for c in INTERACTION_COLUMNS if c in self.interactions.columns]
        df = self.interactions[cols].sort_values(cols[:2] + cols[3:], kind="stable")
        h = pd.util.hash_pandas_object(df.astype(str), index=False).to_numpy()
        return "sha256:" + hashlib.sha256(h.tobytes()).hexdigest()[:16]

    def summary(self) -> dict:
        return {
            "name": self.name,
            "interactions": len(self),
            "users": int(self.interactions["user_id"].nunique()),
            "items": int(len(self.item_ids)),
            "has_ratings": self.has_ratings,
            "has_timestamps": self.has_timestamps,
            "item_columns": [] if self.items is None else [c for c in self.items.columns if c != "item_id"],
            "user_columns": [] if self.users is None else [c for c in self.users.columns if c != "user_id"],
        }

    # ------------------------------------------------------------------ derived
    def vocabulary(self) -> Vocabulary:
        """Users of the interactions and user table; items of the interactions and item table."""
        users = self.interactions["user_id"]
        if self.users is not None:
            users = pd.concat([users, self.users["user_id"]], ignore_index=True)
        return Vocabulary(IdMap(users), IdMap(self.item_ids))

    def matrix(self, vocab: Vocabulary, values: str | None = None, drop_unknown: bool = True) -> sp.csr_matrix:
        """Sparse (n_users x n_items) matrix in `vocab`'s indices; 1.0 per pair unless
        `values` names a column. Pairs with an unknown user/item are dropped."""
        u = vocab.users.lookup(self.interactions["user_id"].to_numpy())
        i = vocab.items.lookup(self.interactions["item_id"].to_numpy())
        ok = (u >= 0) & (i >= 0)
        if not drop_unknown and not ok.all():
            raise ValueError("interactions name users/items outside the vocabulary")
        data = np.ones(int(ok.sum()), dtype=np.float32) if values is None else (
            self.interactions[values].to_numpy(dtype=np.float32)[ok])
        m = sp.csr_matrix((data, (u[ok], i[ok])), shape=(len(vocab.users), len(vocab.items)), dtype=np.float32)
        if values is None:
            m.data[:] = 1.0  # duplicates summed by the constructor count once
        m.sort_indices()
        return m

    def with_interactions(self, interactions: pd.DataFrame, name: str | None = None) -> Dataset:
        """Same item/user tables, other interactions (e.g. a split part)."""
        return Dataset(interactions.reset_index(drop=True), self.items, self.users,
                       name=self.name if name is None else name, meta=dict(self.meta))

    def __repr__(self) -> str:
        s = self.summary()
        return (f"Dataset({s['name']!r}: {s['interactions']:,} interactions, {s['users']:,} users, "
                f"{s['items']:,} items; item columns {s['item_columns']})")
