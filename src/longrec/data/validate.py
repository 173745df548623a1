"""Checks that turn malformed tables into one-paragraph `DataError`s.

Every message says what is wrong, where (file, "line N" counting the header, or "row N"
for a Parquet file / DataFrame), which column, and how to fix it. Checks run on the
whole table before anything is returned, so a caller never sees a half-read table.

Duplicate policy (a duplicate is a repeated (user_id, item_id) pair):
  "keep-last" (reader default: a later row in the file corrects an earlier one),
  "keep-first", "drop" (remove every row of a repeated pair), "error", or
  "keep-all" (keep repeats, e.g. re-consumption in sequential data).
"""

from __future__ import annotations

import difflib
import re
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from longrec.data.ids import IDS_NORMALIZED, normalize_ids
from longrec.errors import DataError

DuplicatePolicy = Literal["keep-last", "keep-first", "drop", "error", "keep-all"]
DUPLICATE_POLICIES: tuple[str, ...] = ("keep-last", "keep-first", "drop", "error", "keep-all")
UnknownPolicy = Literal["error", "warn"]

# Well-known spellings of the canonical columns, compared after lowercasing and
# dropping non-alphanumerics, so "userId", "User-ID" and "user" all map to user_id.
ALIASES: dict[str, tuple[str, ...]] = {
    "user_id": ("userid", "user", "uid", "customerid", "visitorid", "reviewerid"),
    "item_id": ("itemid", "item", "iid", "movieid", "productid", "asin"),
    "rating": ("rating", "ratings", "score", "stars", "bookrating"),
    "timestamp": ("timestamp", "time", "ts", "datetime", "unixreviewtime", "date"),
}


class DataWarning(UserWarning):
    """Data was repaired (rows dropped, duplicates removed); the message gives the count."""


@dataclass(frozen=True)
class Source:
    """Where a table came from, to point error messages at the right line."""

    label: str = "the DataFrame"
    header_lines: int | None = None  # None: no text lines (Parquet, DataFrame)

    def where(self, pos: int) -> str:
        """Location of the 0-based positional row `pos`."""
        if self.header_lines is None:
            return f"row {pos + 1}"
        return f"line {pos + 1 + self.header_lines} (data row {pos + 1})"


def _key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def alias_for(column: str) -> str | None:
    """The canonical name a well-known column spelling stands for, if any."""
    k = _key(column)
    for canon, names in ALIASES.items():
        if k == _key(canon) or k in names:
            return canon
    return None


def apply_columns(df: pd.DataFrame, columns: dict[str, str] | None, wanted: tuple[str, ...],
                  source: Source) -> pd.DataFrame:
    """Rename caller columns to canonical ones.

    `columns` maps file column -> canonical name; the reverse direction is accepted when
    unambiguous. Without a mapping, well-known aliases (userId, movieId, ...) of the
    `wanted` canonical names are renamed when the canonical name itself is absent.
    """
    rename: dict[str, str] = {}
    for src, dst in (columns or {}).items():
        if src in df.columns:
            rename[src] = dst
        elif dst in df.columns and src not in df.columns:
            rename[dst] = src  # caller wrote canonical -> file
        else:
            raise DataError(
                f"{source.label}: the column mapping names '{src}', but there is no such column "
                f"(columns found: {_fmt_cols(df.columns)}){_suggest(src, df.columns)} "
                "Fix the `columns` mapping (file column -> canonical name)."
            )
    out = df.rename(columns=rename) if rename else df
    for canon in wanted:
        if canon in out.columns:
            continue
        hits = [c for c in out.columns if c not in rename.values() and alias_for(str(c)) == canon]
        if len(hits) == 1:
            out = out.rename(columns={hits[0]: canon})
    return out


def _fmt_cols(cols) -> str:
    cols = [str(c) for c in cols]
    return ", ".join(cols[:12]) + (", ..." if len(cols) > 12 else "") if cols else "none"


def _closest(name: str, cols) -> str | None:
    """The column most likely meant for canonical `name`; never a column that already is (or is a
    well-known spelling of) another canonical column: proposing user_id for a missing item_id
    would silently turn user ids into item ids."""
    cols = [str(c) for c in cols if alias_for(str(c)) in (None, name)]
    close = difflib.get_close_matches(name.lower(), [c.lower() for c in cols], n=1, cutoff=0.5)
    pick = [c for c in cols if alias_for(c) == name][:1] or [c for c in cols if c.lower() in close][:1]
    return pick[0] if pick else None


def _suggest(name: str, cols) -> str:
    near = _closest(name, cols)
    return f". Did you mean '{near}'?" if near else "."


def _show(v) -> str:
    """repr of a value without numpy's np.int64(...) wrapper."""
    return repr(v.item() if isinstance(v, np.generic) else v)


def require_columns(df: pd.DataFrame, required: tuple[str, ...], source: Source,
                    what: str = "interactions") -> None:
    for col in required:
        if col in df.columns:
            continue
        near = _closest(col, df.columns) or "your_column"
        raise DataError(
            f"{source.label}: the {what} table has no '{col}' column (columns found: "
            f"{_fmt_cols(df.columns)}){_suggest(col, df.columns)} Rename the column to '{col}' or pass "
            f"columns={{'{near}': '{col}'}} (command line: --columns {col}={near}); if the file has "
            "no header line, pass header=False."
        )


def _first(mask: np.ndarray | pd.Series) -> int:
    return int(np.flatnonzero(np.asarray(mask))[0])


def check_ids(df: pd.DataFrame, col: str, source: Source) -> pd.Series:
    """Reject missing/empty IDs; return the IDs normalised (int64 or str)."""
    s = df[col]
    bad = s.isna().to_numpy().copy()  # pandas may hand out a read-only view
    if s.dtype.kind not in "iuf":
        bad |= (s.astype(str).str.strip() == "").to_numpy(dtype=bool, na_value=True)
    if bad.any():
        pos = _first(bad)
        raise DataError(
            f"{source.label}, {source.where(pos)}, column '{col}': the id is empty or missing "
            f"({int(bad.sum())} such rows). Every interaction needs a {col}; remove or fill "
            "these rows (a blank line or a trailing separator also causes this)."
        )
    return normalize_ids(s.reset_index(drop=True))


def check_numeric(df: pd.DataFrame, col: str, source: Source, allow_dates: bool = False) -> pd.Series:
    """Return `col` as float64; non-numbers and gaps are a DataError naming the first row.

    With allow_dates, a column of date/time strings becomes Unix seconds.
    """
    s = df[col].reset_index(drop=True)
    if s.dtype.kind in "iuf" and not s.isna().any():
        return _finite(s.astype("float64"), col, source)
    if s.dtype.kind == "M":
        return _datetimes_to_seconds(s, col, source)
    num = pd.to_numeric(s, errors="coerce")
    missing = s.isna().to_numpy() | (s.astype(str).str.strip() == "").to_numpy(dtype=bool, na_value=True)
    wrong = num.isna().to_numpy() & ~missing
    if wrong.any() and allow_dates and wrong.all():
        return _datetimes_to_seconds(s, col, source)
    if wrong.any():
        pos = _first(wrong)
        raise DataError(
            f"{source.label}, {source.where(pos)}, column '{col}': expected a number, got "
            f"{str(s.iloc[pos])!r} ({int(wrong.sum())} non-numeric rows). Fix the value, or map "
            f"another column to '{col}' with columns={{...}}; if the columns are shifted, check "
            "the separator (sep=)."
        )
    if missing.any():
        pos = _first(missing)
        raise DataError(
            f"{source.label}, {source.where(pos)}, column '{col}': the value is missing "
            f"({int(missing.sum())} such rows). Fill or remove these rows, or drop the '{col}' "
            "column if it is not meaningful."
        )
    return _finite(num.astype("float64"), col, source)


def _finite(values: pd.Series, col: str, source: Source) -> pd.Series:
    """Refuse inf/-inf/NaN (a NaN in a float column, or 'inf' in a text file)."""
    bad = ~np.isfinite(values.to_numpy())
    if bad.any():
        pos = _first(bad)
        raise DataError(
            f"{source.label}, {source.where(pos)}, column '{col}': {values.iloc[pos]!r} is not a finite "
            f"number ({int(bad.sum())} such rows). Replace infinite or NaN values with real numbers, "
            "or remove these rows."
        )
    return values


def _datetimes_to_seconds(s: pd.Series, col: str, source: Source) -> pd.Series:
    dt = s if s.dtype.kind == "M" else pd.to_datetime(s, errors="coerce", utc=True, format="mixed")
    if dt.isna().any():
        pos = _first(dt.isna())
        raise DataError(
            f"{source.label}, {source.where(pos)}, column '{col}': expected a number or a "
            f"date/time, got {str(s.iloc[pos])!r}. Use Unix seconds or ISO dates (2024-01-31 12:00:00)."
        )
    if dt.dt.tz is None:
        dt = dt.dt.tz_localize("UTC")
    secs = (dt - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return secs.astype("float64")


def _as_int_if_integral(s: pd.Series) -> pd.Series:
    v = s.to_numpy()
    if len(v) and np.all(v == np.floor(v)) and np.abs(v).max() < 2**62:
        return s.astype("int64")
    return s


def check_range(values: pd.Series, col: str, lo: float, hi: float, source: Source) -> None:
    bad = ((values < lo) | (values > hi)).to_numpy()
    if bad.any():
        pos = _first(bad)
        raise DataError(
            f"{source.label}, {source.where(pos)}, column '{col}': {values.iloc[pos]:g} is outside "
            f"the allowed range [{lo:g}, {hi:g}] ({int(bad.sum())} such rows). Fix the values or "
            f"pass rating_range=({values.min():g}, {values.max():g}) / rating_range=None."
        )


def apply_duplicates(df: pd.DataFrame, policy: str, source: Source) -> pd.DataFrame:
    """Apply a duplicate policy to repeated (user_id, item_id) pairs, keeping row order."""
    policy = policy.replace("_", "-")
    if policy not in DUPLICATE_POLICIES:
        raise DataError(f"unknown duplicate policy {policy!r}; choose one of {', '.join(DUPLICATE_POLICIES)}.")
    if policy == "keep-all" or len(df) == 0:
        return df
    dup = df.duplicated(["user_id", "item_id"], keep=False).to_numpy()
    if not dup.any():
        return df
    if policy == "error":
        first = df.duplicated(["user_id", "item_id"], keep="first").to_numpy()
        pos = _first(first)
        u, i = df["user_id"].iloc[pos], df["item_id"].iloc[pos]
        earlier = _first((df["user_id"] == u).to_numpy() & (df["item_id"] == i).to_numpy())
        raise DataError(
            f"{source.label}, {source.where(pos)}: user {_show(u)} and item {_show(i)} already appear at "
            f"{source.where(earlier)} ({int(first.sum())} repeated pairs in total). Remove the repeats "
            "or choose a duplicate policy: duplicates='keep-last', 'keep-first', 'drop' or 'keep-all'."
        )
    if policy == "drop":
        keep = ~dup
    else:
        keep = ~df.duplicated(["user_id", "item_id"], keep="last" if policy == "keep-last" else "first").to_numpy()
    n = int((~keep).sum())
    warnings.warn(f"{source.label}: removed {n:,} rows with a repeated (user_id, item_id) pair "
                  f"(duplicates={policy!r}).", DataWarning, stacklevel=3)
    return df.loc[keep].reset_index(drop=True)


def validate_interactions(df: pd.DataFrame, source: Source = Source(), *,
                          duplicates: str = "keep-last",
                          rating_range: tuple[float, float] | None = None) -> pd.DataFrame:
    """Return a clean interactions table: user_id, item_id[, rating][, timestamp]."""
    require_columns(df, ("user_id", "item_id"), source)
    if len(df) == 0:
        raise DataError(f"{source.label}: there are no interactions (no data rows). "
                        "Check the file is the right one and not truncated.")
    # Series, not arrays: a round trip through numpy re-encodes every string id (slow on pandas 3)
    out = {"user_id": check_ids(df, "user_id", source).reset_index(drop=True),
           "item_id": check_ids(df, "item_id", source).reset_index(drop=True)}
    if "rating" in df.columns:
        r = check_numeric(df, "rating", source)
        if rating_range is not None:
            check_range(r, "rating", rating_range[0], rating_range[1], source)
        out["rating"] = r.to_numpy()
    if "timestamp" in df.columns:
        out["timestamp"] = _as_int_if_integral(check_numeric(df, "timestamp", source, allow_dates=True)).to_numpy()
    clean = apply_duplicates(pd.DataFrame(out), duplicates, source)
    clean.attrs[IDS_NORMALIZED] = True
    return clean


def validate_entities(df: pd.DataFrame, key: str, source: Source, what: str) -> pd.DataFrame:
    """Validate an item (key=item_id) or user (key=user_id) table: ids present and unique."""
    require_columns(df, (key,), source, what=what)
    if len(df) == 0:
        raise DataError(f"{source.label}: the {what} table has no data rows. Pass a table with at "
                        f"least one row, or leave the {what} table out.")
    ids = check_ids(df, key, source)
    dup = ids.duplicated().to_numpy()
    if dup.any():
        pos = _first(dup)
        earlier = _first((ids == ids.iloc[pos]).to_numpy())
        raise DataError(
            f"{source.label}, {source.where(pos)}, column '{key}': {_show(ids.iloc[pos])} already appears "
            f"at {source.where(earlier)} ({int(dup.sum())} repeated ids). Each {key} must appear "
            f"once in the {what} table; merge or remove the repeated rows."
        )
    out = df.reset_index(drop=True).copy()
    out[key] = ids.to_numpy()
    out = out[[key] + [c for c in out.columns if c != key]]
    out.attrs[IDS_NORMALIZED] = True
    return out


def check_unknown_items(inter: pd.DataFrame, items: pd.DataFrame, policy: str,
                        source: Source = Source()) -> pd.DataFrame:
    """Interactions whose item is not in the item table: DataError, or warn and drop."""
    if policy not in ("error", "warn"):
        raise DataError(f"unknown_items must be 'error' or 'warn', not {policy!r}.")
    known = inter["item_id"].isin(items["item_id"]).to_numpy()
    if known.all():
        return inter
    n, pos = int((~known).sum()), _first(~known)
    n_items = int(inter["item_id"][~known].nunique())
    if policy == "error":
        raise DataError(
            f"{source.label}, {source.where(pos)}: item {_show(inter['item_id'].iloc[pos])} is not in the "
            f"item table ({n:,} interactions name {n_items:,} unknown items). Add the items to the "
            "item table, check both files use the same item ids, or pass unknown_items='warn' to "
            "drop these interactions."
        )
    warnings.warn(f"{source.label}: dropped {n:,} interactions naming {n_items:,} items absent "
                  "from the item table (unknown_items='warn').", DataWarning, stacklevel=3)
    return inter.loc[known].reset_index(drop=True)
