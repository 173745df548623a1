"""The one place where caller IDs become row/column indices and back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from longrec.data.ids import coerce_like, normalize_ids
from longrec.errors import LongrecError, ModelError, UnknownIdError


class IdMap:
    """A sorted, unique set of IDs of one kind (users or items) with O(1) lookups."""

    def __init__(self, ids) -> None:
        s = normalize_ids(pd.Series(ids)).drop_duplicates()
        s = s.sort_values(kind="stable").reset_index(drop=True)
        self.kind = "int" if s.dtype.kind in "iu" else "str"
        self.ids: np.ndarray = s.to_numpy(dtype=np.int64 if self.kind == "int" else object)
        self._index = pd.Index(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, key) -> bool:
        return bool((self.lookup([key]) >= 0)[0])

    def lookup(self, ids) -> np.ndarray:
        """Indices of ids; -1 where an id is unknown. Accepts ints or strings for int vocabularies."""
        if isinstance(ids, (str, int, np.integer)):
            ids = [ids]
        arr = ids.to_numpy() if isinstance(ids, pd.Series) else np.asarray(ids)
        if len(arr) == 0:
            return np.zeros(0, dtype=np.int64)
        if len(arr) <= 32:  # online requests: a dict beats building a pandas indexer
            return self._small_lookup(arr)
        if self.kind == "int" and arr.dtype.kind not in "iu":
            arr = coerce_like(arr, "int")
            if pd.api.types.infer_dtype(arr, skipna=False) == "integer":
                try:  # int64 keys: an object array would cast the whole int64 index to object per call
                    arr = arr.astype(np.int64)
                except OverflowError:
                    pass
        elif self.kind == "str" and arr.dtype.kind != "O":
            arr = coerce_like(arr, "str")
        return self._index.get_indexer(arr).astype(np.int64)

    def _small_lookup(self, arr: np.ndarray) -> np.ndarray:
        table = self.__dict__.get("_table")
        if table is None:
            table = self._table = {v: i for i, v in enumerate(self.ids.tolist())}
        keys = coerce_like(arr, self.kind)
        return np.fromiter((table.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))

    def index(self, ids, what: str = "id") -> np.ndarray:
        """Like lookup, but raise UnknownIdError naming the first unknown id."""
        idx = self.lookup(ids)
        bad = np.flatnonzero(idx < 0)
        if len(bad):
            first = np.asarray(ids, dtype=object)[bad[0]] if not isinstance(ids, (str, int)) else ids
            raise UnknownIdError(
                f"unknown {what} {first!r} ({len(bad)} unknown in total); the model knows {len(self)} "
                f"{what}s. Pass it as history instead, or retrain with data that contains it."
            )
        return idx

    def to_frame(self, name: str) -> pd.DataFrame:
        return pd.DataFrame({name: self.ids})

    @classmethod
    def from_frame(cls, df: pd.DataFrame, name: str) -> IdMap:
        out = cls.__new__(cls)
        s = normalize_ids(df[name])
        out.kind = "int" if s.dtype.kind in "iu" else "str"
        out.ids = s.to_numpy(dtype=np.int64 if out.kind == "int" else object)
        out._index = pd.Index(out.ids)
        return out


class Vocabulary:
    """User and item ID maps of a fitted model."""

    def __init__(self, users: IdMap, items: IdMap) -> None:
        self.users = users
        self.items = items

    @classmethod
    def from_ids(cls, user_ids, item_ids) -> Vocabulary:
        return cls(IdMap(user_ids), IdMap(item_ids))

    def save(self, directory: str | Path) -> None:
        d = Path(directory)
        self.users.to_frame("user_id").to_parquet(d / "vocab_users.parquet", index=False)
        self.items.to_frame("item_id").to_parquet(d / "vocab_items.parquet", index=False)

    @classmethod
    def load(cls, directory: str | Path) -> Vocabulary:
        d = Path(directory)
        try:
            users = pd.read_parquet(d / "vocab_users.parquet")
            items = pd.read_parquet(d / "vocab_items.parquet")
        except Exception as e:  # pyarrow raises several unrelated types for a bad file
            raise ModelError(f"cannot read the vocabulary in {d}: {e}. The model directory is incomplete or corrupt; re-save the model.") from e
        maps = []
        for df, col in ((users, "user_id"), (items, "item_id")):
            if col not in df.columns:
                raise ModelError(f"{d}/vocab_{col[:-3]}s.parquet has no {col} column; the model directory is corrupt. "
                                 "Re-save the model.")
            try:
                m = IdMap.from_frame(df, col)
            except LongrecError as e:
                raise ModelError(f"{d}/vocab_{col[:-3]}s.parquet: {e} The model directory is corrupt; re-save the model.") from None
            if not m._index.is_unique:
                raise ModelError(f"{d}/vocab_{col[:-3]}s.parquet lists some {col} twice; the model directory is "
                                 "corrupt. Re-save the model.")
            maps.append(m)
        return cls(*maps)
