"""What a model with a differential-privacy mode adds to the Recommender protocol, as a mixin
over the base class's hooks (the base class knows nothing about privacy).

`privacy_` (set by fit, restored by load) is the guarantee of the fitted parameters: {"private":
False} or the DP record (mechanism, ε, δ, noise, ...); it is written to meta.json as "privacy".
A private model serves users without any history from its own released parameters: the exact
training popularity that the base class falls back to is not covered by the guarantee.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class PrivacyGuarantee:
    """Mix in before Recommender: `class DPLinear(PrivacyGuarantee, Recommender)`."""

    @property
    def is_private(self) -> bool:
        """Whether this fitted model's learned parameters carry a differential-privacy guarantee."""
        return bool(getattr(self, "privacy_", {}).get("private"))

    def _extra_meta(self) -> dict[str, Any]:
        meta = super()._extra_meta()
        if hasattr(self, "privacy_"):
            meta["privacy"] = self.privacy_
        return meta

    def _restore_meta(self, meta: dict[str, Any]) -> None:
        super()._restore_meta(meta)
        if "privacy" in meta:
            if not isinstance(meta["privacy"], dict):
                from longrec.errors import ModelError

                raise ModelError("meta.json: `privacy` must be an object; re-save the model.")
            self.privacy_ = meta["privacy"]

    def _cold_user_scores(self, own: np.ndarray) -> np.ndarray:
        return own if self.is_private else super()._cold_user_scores(own)


def privacy_record(mechanism: str, *, epsilon_target: float, delta: float, reproducible_noise: bool,
                   epsilon_spent: float | None = None, noise_multiplier: float | None = None,
                   **details: Any) -> dict[str, Any]:
    """The meta.json "privacy" entry of a user-level DP fit: the same keys for every private
    model and federated run (mechanism, ε target and spent, δ, noise, where the noise came from)
    plus its own details (which may refine `noise_seed`). ε spent and the noise multiplier are
    left out where there is no single one (federated parties each calibrate their own)."""
    from longrec.privacy.noise import noise_record

    out = {"private": True, "level": "user", "mechanism": mechanism, "epsilon_target": epsilon_target,
           "epsilon_spent": epsilon_spent, "delta": delta, "noise_multiplier": noise_multiplier,
           "noise_seed": noise_record(reproducible_noise)}
    return {k: v for k, v in {**out, **details}.items()
            if v is not None or k not in ("epsilon_spent", "noise_multiplier")}
