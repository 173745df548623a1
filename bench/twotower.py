"""The two two-tower nets side by side on ml-100k P1 (all items) and P3 (cold items): model
selection on valid only (P1: the valid split; P3: the cold-item fold carved from train, as
P3's own valid split holds warm items only, see lm_accuracy.cold_fold), test reported.

    python bench/twotower.py --protocol p1 --model lm-twotower-dp --configs '{}' '{"epochs": 60}'

Each config appends one JSON line to bench/results/tuning/twotower_tuning.jsonl (valid and
test, seconds, provenance); the choice is made on the `valid` column.
Set LONGREC_DATA_DIR to the shared datasets folder.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from _provenance import stamp
from lm_accuracy import _split, cold_fold

LOG = Path(__file__).resolve().parent / "results" / "tuning" / "twotower_tuning.jsonl"


def _ndcg(model, users, truth, histories=None, candidates=None) -> float:
    from longrec.metrics.ranking import evaluate

    recs = model.recommend(users=users, histories=histories, k=10, candidates=candidates)
    return round(float(evaluate(recs, truth[["user_id", "item_id"]], ks=(10,))["NDCG@10"]), 4)


def run(protocol: str, model_name: str, cfg: dict, seed: int = 0) -> dict:
    from longrec.models import get_model_class

    klass = get_model_class(model_name)
    s = _split(protocol)
    test = s["test"].interactions
    t0 = time.perf_counter()
    row: dict = {"protocol": protocol, "model": model_name, "seed": seed, "cfg": cfg}
    if protocol == "p3":
        fold_train, fold_valid = cold_fold(s["train"])
        cold = sorted(set(fold_valid.interactions["item_id"]))
        extra = {"valid_items": "cold"} if model_name == "lm-twotower" else {}
        sel = klass({**cfg, **extra, "seed": seed}).fit(fold_train, fold_valid if extra else None)
        row["valid"] = _ndcg(sel, fold_valid.interactions["user_id"].unique(), fold_valid.interactions,
                             candidates=cold)
        epochs = sel.fit_info_.get("best_epoch") if extra else None
        row["best_epoch"] = epochs
        model = klass({**cfg, "seed": seed, **({"epochs": epochs} if epochs else {})}).fit(s["train"], None)
        row["test"] = _ndcg(model, test["user_id"].unique(), test, s["valid"].interactions, s.get("cold_items"))
    else:
        model = klass({**cfg, "seed": seed}).fit(s["train"], s["valid"])
        row["valid"] = round(float(model.fit_info_.get("valid_ndcg@10")), 4)
        row["best_epoch"] = model.fit_info_.get("best_epoch")
        row["test"] = _ndcg(model, test["user_id"].unique(), test, s["valid"].interactions)
    row["seconds"] = round(time.perf_counter() - t0, 1)
    row["load_avg_1m"] = os.getloadavg()[0]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocol", choices=["p1", "p3"], required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--configs", nargs="+", required=True, help="one JSON config per candidate")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.environ.setdefault("LONGREC_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    LOG.parent.mkdir(parents=True, exist_ok=True)
    for c in a.configs:
        row = run(a.protocol, a.model, json.loads(c), a.seed)
        print(json.dumps(row), flush=True)
        with open(LOG, "a") as f:
            f.write(json.dumps(stamp(row)) + "\n")


if __name__ == "__main__":
    main()
