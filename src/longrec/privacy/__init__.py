"""Privacy: user-level differentially private training, privacy attacks, federated training.

    from longrec.privacy import DPTwoTower, membership_inference, attribute_inference_auc
    model = DPTwoTower(dp_epsilon=8).fit(train)          # meta_["privacy"]["epsilon_spent"]
    model = DPLinear(dp_epsilon=8).fit(train)            # closed form, one noisy release
    model = DPLMSeq(dp_epsilon=8).fit(train)             # the sequential transformer, DP-SGD

Names resolve lazily: importing this package loads neither torch, Opacus, Flower nor scikit-learn.
See docs/privacy.md for the guarantee and its caveats.
"""

from __future__ import annotations

from longrec._lazy import lazy_getattr

_EXPORTS = {
    "DPTwoTower": "twotower", "DPTwoTowerConfig": "twotower",
    "DPLinear": "linear", "DPLinearConfig": "linear", "gaussian_sigma": "linear",
    "DPLMSeq": "sequential", "DPLMSeqConfig": "sequential",
    "membership_inference": "attacks", "attribute_inference_auc": "attacks", "difference_vectors": "attacks",
    "FederatedConfig": "federated", "run_federated": "federated", "partition_users": "federated",
}
__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
