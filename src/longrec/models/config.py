"""The base of every model's typed configuration (re-exported by `longrec.models.base`).

It lives apart from the `Recommender` base class so that helpers the base class calls
(item-text settings, intent fusion) can build on it without importing the base class back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from longrec.errors import ConfigError


class ModelConfig(BaseModel):
    """Base of every model's typed configuration."""

    # NaN/inf in a config is always a mistake (l2 = inf trains a model that recommends nothing):
    # every float field of every model's config must be finite
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
    seed: int = 0


def make_config(cls: type[ModelConfig], values: Mapping[str, Any] | None) -> ModelConfig:
    try:
        return cls(**dict(values or {}))
    except ValidationError as e:
        lines = "; ".join(f"{'.'.join(map(str, err['loc'])) or '(config)'}: {err['msg']}" for err in e.errors())
        fields = ", ".join(cls.model_fields)
        raise ConfigError(f"invalid {cls.__name__}: {lines}. Valid fields: {fields}.") from None
