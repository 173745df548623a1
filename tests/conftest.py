"""Shared fixtures: tiny synthetic data (unit tests) and the shared real data (realdata tests)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LONGREC_SHARED_DIR", REPO.parent / "shared"))


def data_dir() -> Path | None:
    d = os.environ.get("LONGREC_DATA_DIR")
    return Path(d) if d and Path(d).is_dir() else None


@pytest.fixture
def real_data_dir() -> Path:
    d = data_dir()
    if d is None:
        pytest.skip("set LONGREC_DATA_DIR to the shared datasets folder to run real-data tests")
    return d


def make_synthetic(n_users: int = 30, n_items: int = 40, per_user: int = 8, seed: int = 0,
                   str_ids: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two taste clusters (even/odd items) so that models have something to learn."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        pool = np.arange(u % 2, n_items, 2)
        p = np.linspace(2.0, 1.0, len(pool))
        chosen = rng.choice(pool, size=per_user, replace=False, p=p / p.sum())
        for t, i in enumerate(chosen):
            rows.append((u + 1, i + 1, float(rng.integers(1, 6)), 1_000_000 + 100 * u + t))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    items = pd.DataFrame({"item_id": np.arange(1, n_items + 1),
                          "title": [f"Item {i}" for i in range(1, n_items + 1)],
                          "genre": ["Even" if i % 2 == 0 else "Odd" for i in range(1, n_items + 1)]})
    if str_ids:
        inter["user_id"] = "u" + inter["user_id"].astype(str)
        inter["item_id"] = "i" + inter["item_id"].astype(str)
        items["item_id"] = "i" + items["item_id"].astype(str)
    return inter, items


@pytest.fixture
def synthetic():
    from longrec.data.dataset import Dataset

    inter, items = make_synthetic()
    last = inter.groupby("user_id").tail(1)
    train = inter.drop(last.index).reset_index(drop=True)
    return Dataset(train, items, name="synthetic"), Dataset(last.reset_index(drop=True), items, name="synthetic-valid")
