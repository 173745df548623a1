"""Evaluation protocols: reproducible train/valid/test splits.

Every split function takes an interactions DataFrame (``user_id, item_id, [rating],
[timestamp]``; a :class:`~longrec.data.dataset.Dataset` is accepted too) and returns a
dict of DataFrames ``{"train", "valid", "test"}`` (P3 adds ``"cold_items"``). Each part
keeps the input's columns, with ID columns normalised by
:func:`longrec.data.ids.normalize_ids`, rows sorted by ``(user_id, timestamp, item_id)``
(``(user_id, item_id)`` without timestamps) and a fresh RangeIndex.

The fixed public protocols (see ``shared/datasets/ml-100k/README.md``):

* **P1** :func:`split_p1` - per-user random 80/10/10 (:func:`split_per_user_random`).
* **P2** :func:`split_p2` - per-user leave-one-out by time (last -> test, second-last -> valid).
* **P3** :func:`split_p3` - 15 % of the items with >= 5 ratings are cold (all their ratings are
  test); the warm ratings are split per user 90/10 into train/valid.

and a general global-time split, :func:`split_temporal`.

Record where a result came from with :func:`split_provenance` (protocol, seed and the data's
fingerprint).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from longrec.data.ids import normalize_ids
from longrec.errors import ConfigError, DataError

PARTS = ("train", "valid", "test")

__all__ = [
    "SplitInfo",
    "split_provenance",
    "split_counts",
    "split_per_user_random",
    "split_p1",
    "split_p2",
    "split_p3",
    "split_temporal",
]


# --------------------------------------------------------------------------- provenance
@dataclass(frozen=True)
class SplitInfo:
    """Where a split came from: enough to say which numbers are comparable."""

    name: str
    protocol: str
    seed: int | None
    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_provenance(name: str, protocol: str, seed: int | None, fingerprint) -> dict[str, Any]:
    """A small dict ``{"name", "protocol", "seed", "fingerprint"}`` to store with every result.

    ``fingerprint`` is a string (e.g. ``Dataset.fingerprint()``); a Dataset or an interactions
    DataFrame is also accepted and fingerprinted here (the DataFrame is not modified).
    """
    if not isinstance(fingerprint, str):
        from longrec.data.dataset import Dataset

        if isinstance(fingerprint, Dataset):
            fingerprint = fingerprint.fingerprint()
        elif isinstance(fingerprint, pd.DataFrame):
            fingerprint = Dataset(fingerprint.copy()).fingerprint()
        else:
            raise TypeError("fingerprint must be a string, a Dataset or an interactions DataFrame")
    return SplitInfo(str(name), str(protocol), None if seed is None else int(seed), fingerprint).to_dict()


# --------------------------------------------------------------------------- helpers
def _frame(interactions) -> pd.DataFrame:
    df = getattr(interactions, "interactions", interactions)
    if not isinstance(df, pd.DataFrame):
        raise TypeError("interactions must be a pandas DataFrame or a longrec Dataset")
    missing = [c for c in ("user_id", "item_id") if c not in df.columns]
    if missing:
        raise DataError(f"interactions lack column(s) {missing}; expected user_id, item_id, "
                        "[rating], [timestamp]. Rename your columns to these names.")
    df = df.copy()
    df["user_id"] = normalize_ids(df["user_id"]).to_numpy()
    df["item_id"] = normalize_ids(df["item_id"]).to_numpy()
    return df.reset_index(drop=True)


def _check_ratios(ratios: Sequence[float], n_parts: int | None = None) -> list[float]:
    r = [float(x) for x in ratios]
    if len(r) < 2 or (n_parts is not None and len(r) != n_parts):
        raise ConfigError(f"ratios {tuple(ratios)} must have {n_parts or 'at least 2'} entries")
    if any(x < 0 for x in r) or abs(sum(r) - 1.0) > 1e-9:
        raise ConfigError(f"ratios {tuple(ratios)} must be non-negative and sum to 1")
    return r


def _sort_key(df: pd.DataFrame) -> list[str]:
    return ["user_id", "timestamp", "item_id"] if "timestamp" in df.columns else ["user_id", "item_id"]


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    """Stable sort by (user_id, timestamp, item_id), fresh index."""
    return df.sort_values(_sort_key(df), kind="stable").reset_index(drop=True)


def _need_timestamp(df: pd.DataFrame, what: str) -> None:
    if "timestamp" not in df.columns:
        raise DataError(f"{what} needs a timestamp column; these interactions have none "
                        f"(columns: {list(df.columns)}). Use split_p1 / split_per_user_random instead.")


def _parts(df: pd.DataFrame, part: np.ndarray, names: Sequence[str] = PARTS) -> dict[str, pd.DataFrame]:
    """Rows of the (already sorted) df by part label, each sorted with a fresh index."""
    return {name: df[part == j].reset_index(drop=True) for j, name in enumerate(names)}


def split_counts(n: np.ndarray | int, ratios: Sequence[float]) -> np.ndarray:
    """Part sizes for groups of ``n`` rows, RecBole 1.2.1 ``_calcu_split_ids`` arithmetic.

    For each n::

        cnt = [int(ratios[i] * n) for i in range(len(ratios))]
        cnt[0] = n - sum(cnt[1:])
        for i in range(1, len(ratios)):
            if cnt[0] <= 1: break
            if 0 < ratios[-i] * n < 1:
                cnt[-i] += 1; cnt[0] -= 1

    Vectorised over ``n``; returns an int64 array of shape ``(len(n), len(ratios))`` (or
    ``(len(ratios),)`` for a scalar n). Float products are the same IEEE doubles as Python's.
    """
    r = [float(x) for x in ratios]
    scalar = np.ndim(n) == 0
    tot = np.atleast_1d(np.asarray(n, dtype=np.int64))
    totf = tot.astype(np.float64)
    cnt = np.stack([np.floor(ri * totf).astype(np.int64) for ri in r], axis=1)
    cnt[:, 0] = tot - cnt[:, 1:].sum(axis=1)
    alive = np.ones(len(tot), dtype=bool)
    for i in range(1, len(r)):
        alive &= cnt[:, 0] > 1
        prod = r[-i] * totf
        move = alive & (prod > 0) & (prod < 1)
        cnt[move, len(r) - i] += 1
        cnt[move, 0] -= 1
    return cnt[0] if scalar else cnt


# --------------------------------------------------------------------------- per-user random
def _per_user_random_labels(df: pd.DataFrame, ratios: list[float], seed: int | np.random.Generator) -> np.ndarray:
    """Part label per row of a df already sorted by (user_id, timestamp, item_id)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    users = df["user_id"].to_numpy()
    n_rows = len(users)
    labels = np.empty(n_rows, dtype=np.int8)
    if n_rows == 0:
        return labels
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    sizes = np.diff(np.r_[starts, n_rows])
    # one rng, users in ascending id order (df is sorted by user): exactness needs this loop
    perm = np.concatenate([rng.permutation(int(s)) for s in sizes]) + np.repeat(starts, sizes)
    cnt = split_counts(sizes, ratios)                       # (n_users, n_parts)
    pos = np.arange(n_rows) - np.repeat(starts, sizes)      # position in the permuted order
    bounds = np.cumsum(cnt, axis=1)                         # part j holds pos < bounds[:, j]
    lab_perm = (pos[:, None] >= np.repeat(bounds, sizes, axis=0)).sum(axis=1).astype(np.int8)
    labels[perm] = lab_perm
    return labels


def split_per_user_random(df: pd.DataFrame, ratios: Sequence[float] = (0.8, 0.1, 0.1),
                          seed: int | np.random.Generator = 2026,
                          names: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """Per-user random ratio split (RecBole 1.2.1 ``split_by_ratio`` with ``group_by=user``).

    Rows are sorted stably by (user_id, timestamp, item_id); ONE
    ``numpy.random.default_rng(seed)`` (or the given Generator) draws ``rng.permutation(n)`` for
    each user in ascending user_id order, over that user's n rows in sorted order; the permuted
    rows are cut into consecutive parts with sizes :func:`split_counts` (first part first).
    ``names`` defaults to train/valid/test for 3 ratios and train/valid for 2.
    """
    r = _check_ratios(ratios)
    if names is None:
        names = PARTS[: len(r)] if len(r) <= 3 else [f"part{j}" for j in range(len(r))]
    if len(names) != len(r):
        raise ConfigError(f"{len(names)} part names for {len(r)} ratios")
    d = _sorted(_frame(df))
    return _parts(d, _per_user_random_labels(d, r, seed), names)


# --------------------------------------------------------------------------- protocols
def split_p1(interactions: pd.DataFrame, seed: int = 2026,
             ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> dict[str, pd.DataFrame]:
    """P1, general top-K: per-user random 80/10/10 (see :func:`split_per_user_random`)."""
    return split_per_user_random(interactions, _check_ratios(ratios, 3), seed)


def split_p2(interactions: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """P2, next item: per user, sorted by (timestamp, item_id) (stable), the last row is test,
    the second-last valid, the rest train. Users with one row: test only; two rows: valid +
    test. No randomness."""
    d = _frame(interactions)
    _need_timestamp(d, "split_p2")
    d = _sorted(d)
    users = d["user_id"].to_numpy()
    n = len(users)
    last = np.r_[users[1:] != users[:-1], True] if n else np.zeros(0, bool)
    second = np.r_[last[1:] & ~last[:-1], False] if n else np.zeros(0, bool)
    part = np.zeros(n, dtype=np.int8)
    part[second] = 1
    part[last] = 2
    return _parts(d, part)


def split_p3(interactions: pd.DataFrame, seed: int = 2026, cold_fraction: float = 0.15,
             min_ratings: int = 5, ratios: Sequence[float] = (0.9, 0.1)) -> dict[str, Any]:
    """P3, cold-start items.

    Eligible items: those with >= ``min_ratings`` rows, sorted ascending. With
    ``rng = numpy.random.default_rng(seed)``:
    ``cold = sorted(rng.choice(eligible, size=round(cold_fraction * len(eligible)), replace=False))``.
    Every row of a cold item is test. The warm rows are split per user by
    :func:`split_per_user_random` with a fresh ``default_rng(seed)`` and ``ratios`` into
    train/valid. Returns train/valid/test DataFrames and ``"cold_items"`` (sorted ndarray).
    """
    r = _check_ratios(ratios, 2)
    d = _sorted(_frame(interactions))
    counts = d["item_id"].value_counts()
    eligible = np.sort(counts.index[counts.to_numpy() >= min_ratings].to_numpy())
    rng = np.random.default_rng(seed)
    size = round(cold_fraction * len(eligible))
    cold = np.sort(rng.choice(eligible, size=size, replace=False)) if size else eligible[:0]
    is_cold = d["item_id"].isin(cold).to_numpy()
    warm = d[~is_cold].reset_index(drop=True)
    lab = _per_user_random_labels(warm, r, np.random.default_rng(seed))
    out: dict[str, Any] = _parts(warm, lab, ("train", "valid"))
    out["test"] = d[is_cold].reset_index(drop=True)
    out["cold_items"] = cold
    return out


def split_temporal(interactions: pd.DataFrame,
                   ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> dict[str, pd.DataFrame]:
    """Global time split: all rows sorted stably by (timestamp, user_id, item_id); with N rows
    the first ``floor(r0 * N)`` are train, the next ``floor((r0 + r1) * N) - floor(r0 * N)``
    valid, the rest test (with 2 ratios the parts are train and valid). Equal timestamps are
    ordered by user then item, so a cut may fall inside a timestamp. Parts are then sorted by
    (user_id, timestamp, item_id). Users/items may appear only in later parts (that is the point).
    """
    r = _check_ratios(ratios)
    if len(r) > 3:
        raise ConfigError("split_temporal takes 2 or 3 ratios")
    d = _frame(interactions)
    _need_timestamp(d, "split_temporal")
    order = d.sort_values(["timestamp", "user_id", "item_id"], kind="stable").index.to_numpy()
    n = len(d)
    cuts = np.floor(np.cumsum(r)[:-1] * n).astype(np.int64)
    lab_sorted = np.searchsorted(cuts, np.arange(n), side="right").astype(np.int8)
    part = np.empty(n, dtype=np.int8)
    part[order] = lab_sorted
    d["_part"] = part
    d = _sorted(d)
    part = d.pop("_part").to_numpy()
    return _parts(d, part, PARTS[: len(r)])
