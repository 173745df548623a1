"""Caller IDs: one normalisation rule used everywhere.

IDs keep the caller's values. A column whose every value is an integer written without
leading zeros ("196", 196) becomes int64, so files in different formats (RecBole tokens,
CSV, Parquet) agree on the same IDs; anything else stays a string ("1m_1", "007",
"Toy Story (1995)"). Integer IDs sort numerically, which is the tie-break order the
reference figures use (lower item_id first).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: DataFrame.attrs flag: the ID columns already went through normalize_ids (set by the readers)
IDS_NORMALIZED = "longrec_ids_normalized"


def normalize_ids(values: pd.Series | np.ndarray | list) -> pd.Series:
    """Return IDs as an int64 Series when all are canonical integers, else as strings."""
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    if s.dtype.kind in "iu":
        return s.astype("int64")
    if s.dtype.kind == "f":
        finite = s.dropna()
        if len(finite) == len(s) and (finite == np.floor(finite)).all():
            return s.astype("int64")
        return s.astype(str)
    as_str = s.astype(str)
    if len(as_str) == 0:
        return as_str
    # canonical integers only: "-0", "007", "+3", " 4" stay strings
    if as_str.str.fullmatch(r"-?(0|[1-9][0-9]{0,17})").all():
        return as_str.astype("int64")
    return as_str


def coerce_like(values, kind: str) -> np.ndarray:
    """Convert externally supplied IDs (e.g. from a request) to a vocabulary's ID kind.

    kind is "int" or "str". Values that cannot be converted to int become strings that
    will simply not be found.
    """
    arr = np.asarray(list(values) if not isinstance(values, (np.ndarray, pd.Series)) else values, dtype=object)
    if kind == "int":
        out = np.empty(len(arr), dtype=object)
        for i, v in enumerate(arr):
            try:
                if isinstance(v, (bool, np.bool_)):
                    raise ValueError
                iv = int(v)
                out[i] = iv if str(iv) == str(v).strip() or isinstance(v, (int, np.integer)) else str(v)
            except (TypeError, ValueError):
                out[i] = str(v)
        return out
    return np.array([str(v) for v in arr], dtype=object)
