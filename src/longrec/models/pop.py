"""MostPopular: items ranked by their number of training interactions (ties: lower item_id)."""

from __future__ import annotations

import numpy as np

from longrec.models.base import ModelConfig, Recommender


class PopConfig(ModelConfig):
    pass


class MostPopular(Recommender):
    name = "pop"
    Config = PopConfig

    def _fit(self, X, train, valid) -> None:
        pass  # popularity_ is computed by the base class for every model

    def _score(self, users, hist) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (len(users), len(self.popularity_)))
