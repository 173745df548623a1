"""Recommenders. Every model follows `longrec.models.base.Recommender`."""

from longrec._lazy import lazy_getattr
from longrec.models.base import HistoryBatch, ModelConfig, Recommender
from longrec.models.registry import available_models, create_model, get_model_class

__all__ = ["HistoryBatch", "ModelConfig", "Recommender", "available_models", "create_model", "get_model_class"]


__getattr__ = lazy_getattr(__name__, {"MostPopular": "pop", "ItemKNN": "itemknn", "EASE": "ease", "BPRMF": "bpr"},
                           globals())
