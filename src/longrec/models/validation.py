"""Model selection on the validation split, through the same code path as evaluation."""

from __future__ import annotations

from longrec.data.dataset import Dataset


def valid_ndcg(model, valid: Dataset, k: int = 10, metric: str | None = None) -> float:
    """NDCG@k (or `metric`) of `model` on `valid`; training items are excluded, as in the protocols."""
    from longrec.metrics.ranking import evaluate

    users = valid.interactions["user_id"].unique()
    recs = model.recommend(users=users, k=k, exclude_seen=True)
    res = evaluate(recs, valid.interactions[["user_id", "item_id"]], ks=(k,))
    return float(res[metric or f"NDCG@{k}"])
