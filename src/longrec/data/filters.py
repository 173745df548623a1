"""Interaction filters: k-core, binarisation, de-duplication. All keep row order."""

from __future__ import annotations

import pandas as pd

from longrec.data.validate import Source, apply_duplicates, require_columns
from longrec.errors import DataError


def k_core(df: pd.DataFrame, user_k: int = 0, item_k: int = 0, max_rounds: int = 1000) -> pd.DataFrame:
    """Keep interactions whose user has >= user_k and item has >= item_k interactions,
    repeating until both hold at once (dropping items can push users under user_k)."""
    require_columns(df, ("user_id", "item_id"), Source())
    if user_k < 0 or item_k < 0:
        raise DataError(f"k_core needs non-negative thresholds, got user_k={user_k}, item_k={item_k}.")
    out = df
    for _ in range(max_rounds):
        keep = pd.Series(True, index=out.index)
        if user_k > 1:
            keep &= out.groupby("user_id", sort=False)["user_id"].transform("size") >= user_k
        if item_k > 1:
            keep &= out.groupby("item_id", sort=False)["item_id"].transform("size") >= item_k
        if keep.all():
            return out.reset_index(drop=True)
        out = out.loc[keep]
    raise DataError(f"k_core did not converge in {max_rounds} rounds")  # pragma: no cover


def binarize(df: pd.DataFrame, threshold: float, keep_rating: bool = False) -> pd.DataFrame:
    """Keep rows with rating >= threshold as implicit positives (rating column dropped
    unless keep_rating, so downstream code sees an implicit-feedback table)."""
    if "rating" not in df.columns:
        raise DataError("binarize needs a 'rating' column, but the interactions have none "
                        f"(columns: {', '.join(map(str, df.columns))}). Leave out the threshold for implicit data.")
    out = df.loc[df["rating"] >= threshold].reset_index(drop=True)
    return out if keep_rating else out.drop(columns="rating")


def deduplicate(df: pd.DataFrame, policy: str = "keep-last") -> pd.DataFrame:
    """Apply a duplicate policy (see `longrec.data.validate`) to repeated (user, item) pairs."""
    require_columns(df, ("user_id", "item_id"), Source())
    return apply_duplicates(df.reset_index(drop=True), policy, Source())
