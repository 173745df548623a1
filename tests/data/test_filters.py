"""Filters: k-core to convergence, binarize, deduplicate."""

from __future__ import annotations

import pandas as pd
import pytest

from longrec.data import DataWarning, binarize, deduplicate, k_core
from longrec.errors import DataError


def test_k_core_iterates_to_convergence():
    # user 3 has 2 rows; one is item 30 (only 1 rating) -> item 30 goes, then user 3 has 1 -> goes,
    # then item 20 has 1 rating left -> goes
    df = pd.DataFrame({"user_id": [1, 1, 2, 2, 3, 3], "item_id": [10, 11, 10, 11, 20, 30]})
    out = k_core(df, user_k=2, item_k=2)
    assert out[["user_id", "item_id"]].values.tolist() == [[1, 10], [1, 11], [2, 10], [2, 11]]
    assert out.index.tolist() == [0, 1, 2, 3]
    assert len(k_core(df, 0, 0)) == 6
    assert len(k_core(df, 3, 0)) == 0


def test_k_core_result_satisfies_both():
    import numpy as np

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"user_id": rng.integers(0, 50, 600), "item_id": rng.zipf(1.5, 600) % 80})
    out = k_core(df, 5, 5)
    assert (out.groupby("user_id").size() >= 5).all() and (out.groupby("item_id").size() >= 5).all()


def test_binarize():
    df = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [1, 2, 1], "rating": [3.0, 4.0, 5.0]})
    out = binarize(df, 4)
    assert out.columns.tolist() == ["user_id", "item_id"] and len(out) == 2
    assert "rating" in binarize(df, 4, keep_rating=True).columns
    with pytest.raises(DataError, match="rating"):
        binarize(df.drop(columns="rating"), 4)


def test_deduplicate():
    df = pd.DataFrame({"user_id": [1, 1, 1], "item_id": [2, 3, 2], "rating": [1.0, 2.0, 5.0]})
    with pytest.warns(DataWarning):
        assert deduplicate(df)["rating"].tolist() == [2.0, 5.0]
    with pytest.warns(DataWarning):
        assert deduplicate(df, "keep_first")["rating"].tolist() == [1.0, 2.0]
    with pytest.raises(DataError):
        deduplicate(df, "error")
