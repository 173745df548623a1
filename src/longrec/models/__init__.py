"""Recommenders. Every model follows `longrec.models.base.Recommender`."""

from longrec.models.base import HistoryBatch, ModelConfig, Recommender
from longrec.models.registry import available_models, create_model, get_model_class

__all__ = ["HistoryBatch", "ModelConfig", "Recommender", "available_models", "create_model", "get_model_class"]


def __getattr__(name: str):
    lazy = {"MostPopular": "pop", "ItemKNN": "itemknn", "EASE": "ease", "BPRMF": "bpr"}
    if name in lazy:
        import importlib
        return getattr(importlib.import_module(f"longrec.models.{lazy[name]}"), name)
    raise AttributeError(name)
