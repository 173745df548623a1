"""Re-rankers over any model's scores: MMR diversity, calibration (Steck 2018), popularity-aware
exposure, long-tail target share and FA*IR-style constraints. See `longrec.rerank.core`."""

from longrec.rerank.core import (
    RERANKERS,
    RerankContext,
    RerankSpec,
    apply_rerank,
    parse_rerank,
    recommend_reranked,
    rerank,
    rerank_arrays,
)

__all__ = ["RERANKERS", "RerankContext", "RerankSpec", "apply_rerank", "parse_rerank", "recommend_reranked",
           "rerank", "rerank_arrays"]
