"""Model names -> classes, imported lazily so `import longrec` stays light."""

from __future__ import annotations

import importlib

from longrec.errors import ConfigError

MODELS: dict[str, str] = {
    "pop": "longrec.models.pop:MostPopular",
    "itemknn": "longrec.models.itemknn:ItemKNN",
    "ease": "longrec.models.ease:EASE",
    "bpr": "longrec.models.bpr:BPRMF",
    "lm-seq": "longrec.models.lm_seq:LMSeq",
    "lm-twotower": "longrec.models.lm_twotower:LMTwoTower",
    "blend": "longrec.models.blend:Blend",
    "lm-twotower-dp": "longrec.privacy.twotower:DPTwoTower",
    "lm-linear": "longrec.privacy.linear:LMLinear",
    "lm-linear-dp": "longrec.privacy.linear:DPLinear",
    "lm-seq-dp": "longrec.privacy.sequential:DPLMSeq",
    "top-frequency": "longrec.models.top_frequency:TopFrequency",
    "tifu-knn": "longrec.models.tifu_knn:TIFUKNN",
    "content-tfidf": "longrec.models.content_tfidf:ContentTFIDF",
}

#: `longrec train --model NAME --dp-epsilon E` trains NAME's private variant
DP_VARIANTS: dict[str, str] = {"lm-twotower": "lm-twotower-dp", "lm-twotower-dp": "lm-twotower-dp",
                               "lm-linear": "lm-linear-dp", "lm-linear-dp": "lm-linear-dp",
                               "lm-seq": "lm-seq-dp", "lm-seq-dp": "lm-seq-dp"}


def available_models() -> list[str]:
    return sorted(MODELS)


def get_model_class(name: str):
    key = name.strip().lower()
    if key not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(available_models())}.")
    module, attr = MODELS[key].split(":")
    return getattr(importlib.import_module(module), attr)


def create_model(name: str, config: dict | None = None):
    return get_model_class(name)(config or {})
