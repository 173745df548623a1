"""Evaluation metrics: top-K ranking accuracy (``ranking``) and beyond-accuracy (``beyond``).

Definitions follow ``shared/metrics/METRICS.md``; see each function's docstring.
"""

from longrec.metrics.beyond import calibration_kl, intra_list_diversity, novelty
from longrec.metrics.ranking import (
    ACCURACY_METRICS,
    AGGREGATE_METRICS,
    ALL_METRICS,
    evaluate,
    per_user,
    top_k,
)

__all__ = [
    "evaluate",
    "per_user",
    "top_k",
    "novelty",
    "intra_list_diversity",
    "calibration_kl",
    "ALL_METRICS",
    "ACCURACY_METRICS",
    "AGGREGATE_METRICS",
]
