"""Fairness interventions on learned representations (measuring fairness is longrec.metrics.fairness)."""

from longrec.fair.erasure import leace_eraser, linear_probe, nullspace_projection

__all__ = ["leace_eraser", "linear_probe", "nullspace_projection"]
