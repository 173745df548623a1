"""Fixtures for the privacy tests: synthetic data with a user table (gender, occupation, zip)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_synthetic


@pytest.fixture
def split3():
    """train/valid/test Datasets over 80 synthetic users with a user table; taste depends on gender."""
    from longrec.data.dataset import Dataset

    inter, items = make_synthetic(n_users=80, n_items=40, per_user=10)
    rng = np.random.default_rng(0)
    users = pd.DataFrame({"user_id": np.arange(1, 81),
                          "gender": ["M" if u % 2 == 0 else "F" for u in range(80)],
                          "occupation": rng.choice(["a", "b", "c"], 80),
                          "zip_code": rng.choice(["12345", "55455", "T8H1N"], 80)})
    inter = inter.sort_values(["user_id", "timestamp"])
    test = inter.groupby("user_id").tail(1)
    rest = inter.drop(test.index)
    valid = rest.groupby("user_id").tail(1)
    train = rest.drop(valid.index)
    mk = lambda df, n: Dataset(df.reset_index(drop=True), items, users, name=n)  # noqa: E731
    return {"train": mk(train, "syn-train"), "valid": mk(valid, "syn-valid"), "test": mk(test, "syn-test")}


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    """Model directories are loaded through the registry; register the model here in case the
    lead has not (yet) added it to longrec.models.registry.MODELS."""
    from longrec.models import registry

    monkeypatch.setitem(registry.MODELS, "lm-twotower-dp", "longrec.privacy.twotower:DPTwoTower")
