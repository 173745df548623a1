"""Accuracy benchmark: every baseline on ml-100k P1/P2/P3 from the shared split files,
through the CLI's code path (longrec.pipeline: train -> recommend -> evaluate on files).

    LONGREC_DATA_DIR=../shared/datasets python bench/accuracy.py [--models pop,ease] [--protocols p1]

Prints one JSON object per run (machine-readable) and writes bench/results/accuracy.json
and bench/results/accuracy.md (beside the peers' figures). Hyper-parameters are each
model's defaults, tuned on valid only (EASE's λ grid, BPR's early stopping).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from _provenance import md_line, provenance, stamp

import pandas as pd

PEERS = {  # NDCG@10 on test, measured by peers on these exact split files with one evaluator
    "p1": {"MostPopular": 0.1416, "ItemKNN(k=200)": 0.2897, "implicit ALS": 0.3104, "LightFM WARP+features": 0.3080,
           "RecBole BPR": 0.2492, "RecBole MultiVAE": 0.2704},
    "p2": {"MostPopular": 0.0254, "ItemKNN": 0.0362, "implicit BPR": 0.0440, "LightFM+features": 0.0438,
           "SASRec (RecTools)": 0.0716},
    "p3": {"LightFM features-only": 0.3656, "TF-IDF content": 0.3299, "random": 0.0843},
}
OURS = {"pop": "MostPopular", "itemknn": "ItemKNN (k=200)", "ease": "EASE", "bpr": "BPR-MF",
        "ease-refit": "EASE, λ from valid, refit on train+valid"}
VARIANTS = {"ease-refit": ("ease", {"refit_on_valid": True})}  # bench name -> (model, config)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(model: str, protocol: str, data: Path, work: Path, ks=(10, 20), config: dict | None = None) -> dict:
    from longrec.pipeline import evaluate_files, recommend_to_file, train_from_files

    split = data / "ml-100k" / "splits" / protocol
    items, users = data / "ml-100k" / "ml-100k.item", data / "ml-100k" / "ml-100k.user"
    out = work / f"{model}-{protocol}"
    label = model
    model, variant_cfg = VARIANTS.get(model, (model, {}))
    config = {**variant_cfg, **(config or {})} or None
    t0 = time.perf_counter()
    m = train_from_files(model, train=split / "train.csv", valid=split / "valid.csv", items=items, users=users,
                         out=out / "model", config=config,
                         meta={"protocol": protocol.upper(), "split_seed": 2026, "dataset": "ml-100k"})
    t1 = time.perf_counter()
    test_users = out / "test_users.csv"
    pd.read_csv(split / "test.csv")[["user_id"]].drop_duplicates().to_csv(test_users, index=False)
    cold = split / "cold_items.csv" if protocol == "p3" else None
    recommend_to_file(out / "model", k=max(ks), output=out / "recs.csv", histories=[split / "valid.csv"],
                      users=test_users, candidates=cold)
    t2 = time.perf_counter()
    res = evaluate_files(out / "recs.csv", split / "test.csv", ks=ks, catalog=cold or items)
    t3 = time.perf_counter()
    return {"model": label, "protocol": protocol.upper(), "dataset": "ml-100k", "split_seed": 2026,
            "seed": m.config.seed, "metrics": res["metrics"], "fit_info": m.fit_info_,
            "seconds": {"train": round(t1 - t0, 2), "recommend": round(t2 - t1, 2), "evaluate": round(t3 - t2, 2),
                        "total": round(t3 - t0, 2)},
            "train_fingerprint": res["train_fingerprint"], "peak_rss_mb": round(peak_rss_mb(), 1)}


def markdown(results: list[dict], prov: dict | None = None) -> str:
    lines = ["# Accuracy on MovieLens-100K (fixed splits, NDCG@10 on test)", "", md_line(prov), "",
             "Produced by `python bench/accuracy.py`; tuned on valid only. P3 ranks the cold items only.",
             "The collaborative baselines cannot score cold items (no interactions): on P3 they give every",
             "cold item the same score, so their P3 row is the tie-break order (lower item_id first), not skill.",
             "Timings are wall seconds on a shared 2-core machine (see accuracy.json for the load).", ""]
    for proto in ("p1", "p2", "p3"):
        rows = [r for r in results if r["protocol"] == proto.upper()]
        if not rows:
            continue
        lines += [f"## {proto.upper()}", "", "| model | NDCG@10 | Recall@10 | HR@10 | train s | total s |", "|---|---|---|---|---|---|"]
        for r in rows:
            m = r["metrics"]
            lines.append(f"| longrec {OURS.get(r['model'], r['model'])} | {m['NDCG@10']:.4f} | {m['Recall@10']:.4f} | "
                         f"{m['Hit@10']:.4f} | {r['seconds']['train']} | {r['seconds']['total']} |")
        for name, v in PEERS[proto].items():
            lines.append(f"| peer: {name} | {v:.4f} | | | | |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="pop,itemknn,ease,bpr,ease-refit")
    ap.add_argument("--protocols", default="p1,p2,p3")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    data = Path(os.environ.get("LONGREC_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    if not (data / "ml-100k" / "splits").is_dir():
        print(f"no ml-100k splits under {data}; set LONGREC_DATA_DIR", file=sys.stderr)
        return 2
    results = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for proto in args.protocols.split(","):
            for model in args.models.split(","):
                r = run_one(model, proto, data, Path(tmp))
                print(json.dumps(r, default=str), flush=True)
                results.append(r)
    wall = round(time.perf_counter() - t0, 2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"results": results, "wall_seconds": wall, "peak_rss_mb": round(peak_rss_mb(), 1),
               "load_average": os.getloadavg(),
               "peers_ndcg@10": PEERS, "cpu_count": os.cpu_count()}
    prov = provenance()
    (out / "accuracy.json").write_text(json.dumps(stamp(summary, prov), indent=2, default=str))
    (out / "accuracy.md").write_text(markdown(results, prov))
    print(json.dumps({"wall_seconds": wall, "peak_rss_mb": summary["peak_rss_mb"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
