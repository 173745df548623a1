"""DP accounting shared by the private trainers (lm-twotower-dp, lm-seq-dp, federated): the noise
multiplier that reaches a target (ε, δ) for a number of Poisson-sampled DP-SGD steps, composed
with an optional Gaussian popularity release, through Opacus's accountants.
"""

from __future__ import annotations

from longrec.errors import ConfigError


def require_opacus() -> None:
    """A clear error, before any work, when DP training is asked for without Opacus."""
    try:
        import opacus  # noqa: F401
    except ImportError:
        raise ConfigError("dp_epsilon needs Opacus: pip install opacus (the longrec[privacy] extra).") from None


def calibrate_noise(target_eps: float, delta: float, sample_rate: float, steps: int,
                    prior_noise: float | None = None, accountant: str = "rdp") -> float:
    """The DP-SGD noise multiplier whose `steps` steps at `sample_rate`, composed with the
    popularity release (one Gaussian mechanism with noise `prior_noise`, if any), spend at
    most `target_eps` at `delta` (bisection on the accountant, like Opacus's own
    get_noise_multiplier, with the release in the history)."""
    from opacus.accountants import PRVAccountant, RDPAccountant

    def eps(sigma: float) -> float:
        acc = RDPAccountant() if accountant == "rdp" else PRVAccountant()
        acc.history = ([(prior_noise, 1.0, 1)] if prior_noise else []) + [(sigma, sample_rate, steps)]
        return float(acc.get_epsilon(delta))

    if prior_noise and eps(1e4) > target_eps:
        raise ConfigError(f"the popularity release alone (prior_noise={prior_noise}) spends more than "
                          f"dp_epsilon={target_eps}; raise prior_noise or set popularity_prior=false.")
    lo, hi = 0.0, 10.0
    while eps(hi) > target_eps:
        lo, hi = hi, 2 * hi
        if hi > 1e4:
            raise ConfigError(f"dp_epsilon={target_eps} is too small for {steps} steps; train fewer epochs.")
    while hi - lo > 0.005 * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if eps(mid) > target_eps else (lo, mid)
    return hi
