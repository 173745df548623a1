from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from longrec.lm.encoders import Encoder, EncoderSettings

DATA = Path(os.environ.get("LONGREC_DATA_DIR", Path(__file__).resolve().parents[3] / "shared" / "datasets"))
ML100K_ITEMS = DATA / "ml-100k" / "ml-100k.item"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache_dir(tmp_path_factory):
    """Never write to the user's ~/.cache during tests."""
    old = os.environ.get("LONGREC_CACHE_DIR")
    os.environ["LONGREC_CACHE_DIR"] = str(tmp_path_factory.mktemp("longrec-cache"))
    yield
    if old is None:
        os.environ.pop("LONGREC_CACHE_DIR", None)
    else:
        os.environ["LONGREC_CACHE_DIR"] = old


class FakeEncoder(Encoder):
    """Bag-of-words hashing encoder: fast, deterministic, word overlap -> similarity."""

    def __init__(self, dim: int = 64, name: str = "fake-v1"):
        super().__init__(EncoderSettings(batch_size=8))
        self._dim = dim
        self.name = name
        self.calls = 0
        self.texts_encoded = 0

    @property
    def identity(self) -> str:
        return f"fake|{self.name}|{self._dim}"

    def _load(self):
        pass

    def _encode_batch(self, texts):
        self.calls += 1
        self.texts_encoded += len(texts)
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for r, t in enumerate(texts):
            out[r, 0] = 1e-3  # never a zero vector
            for w in re.findall(r"\w+", t.lower()):
                h = int.from_bytes(hashlib.md5((self.name + w).encode()).digest()[:4], "little")
                out[r, h % self._dim] += 1.0
        return out


@pytest.fixture
def fake_encoder():
    return FakeEncoder()


def read_ml100k_items() -> pd.DataFrame:
    if not ML100K_ITEMS.exists():
        pytest.skip(f"MovieLens-100K not found at {ML100K_ITEMS} (set LONGREC_DATA_DIR)")
    try:
        from longrec.data import read_items

        return read_items(ML100K_ITEMS)
    except ImportError:  # readers not there yet
        df = pd.read_csv(ML100K_ITEMS, sep="\t")
        df.columns = [c.split(":", 1)[0] for c in df.columns]
        return df


@pytest.fixture(scope="session")
def ml100k_items() -> pd.DataFrame:
    return read_ml100k_items()


@pytest.fixture
def small_items() -> pd.DataFrame:
    return pd.DataFrame({
        "item_id": [1, 2, 3, 4, 5],
        "movie_title": ["Toy Story", "Star Wars", "Aladdin", "Heat", "Alien"],
        "release_year": [1995, 1977, 1992, 1995, 1979],
        "class": ["Animation Children's Comedy", "Action Sci-Fi", "Animation Children's Musical",
                  "Action Crime Thriller", "Horror Sci-Fi"],
    })
