"""Accuracy and speed of the language-model recommenders on the fixed ml-100k splits.

Every run trains on train (early stopping / tuning on valid only) and reports test:
P1 and P2 rank all items, with the valid interactions passed as history (so they are
excluded, as the protocols say); P3 ranks the cold items only.

    python bench/lm_accuracy.py run --protocol p2 --variant lm-seq --seeds 0 1 2
    python bench/lm_accuracy.py run --protocol p3 --variant lm-twotower --variant lm-twotower:additive
    python bench/lm_accuracy.py tune --protocol p2 --model lm-seq --configs '{}' '{"mode": "id-only"}'
    python bench/lm_accuracy.py foldin --cold-cache   # lm-seq speed on P2: fit, recommend, fold-in
    python bench/lm_accuracy.py report                # runs.jsonl -> lm_accuracy.json + .md

Each run appends one JSON line to bench/results/lm_accuracy_runs.jsonl (so runs can be
done in pieces, in parallel); `report` aggregates them (mean ± std over seeds).
Set LONGREC_DATA_DIR to the shared datasets folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from _provenance import md_line, provenance, stamp

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = RESULTS / "lm_accuracy_runs.jsonl"

# name -> (registered model, config). Ablations are configs of the same model.
VARIANTS: dict[str, tuple[str, dict]] = {
    "pop": ("pop", {}),
    "itemknn": ("itemknn", {}),
    "ease": ("ease", {}),
    "bpr": ("bpr", {}),
    "lm-seq": ("lm-seq", {}),
    "lm-seq:id-only": ("lm-seq", {"mode": "id-only"}),
    "lm-seq:text-only": ("lm-seq", {"mode": "text-only"}),
    # feed-forward width 2 x dim (SASRec: 1): better on P2 valid in the seed-0 search; 3 seeds decide
    "lm-seq:ff2": ("lm-seq", {"ff_mult": 2}),
    "lm-seq:id-only:ff2": ("lm-seq", {"mode": "id-only", "ff_mult": 2}),
    "lm-twotower": ("lm-twotower", {}),
    "lm-twotower:no-id": ("lm-twotower", {"use_id": False}),
    "lm-twotower:additive": ("lm-twotower", {"interaction": "additive"}),
    "lm-twotower:bpr": ("lm-twotower", {"loss": "bpr"}),
    "blend": ("blend", {}),
    "blend:ease+lm-twotower": ("blend", {"models": [{"name": "ease"}, {"name": "lm-twotower"}]}),
    "blend:ease+itemknn+lm-twotower": ("blend", {"models": [
        {"name": "ease"}, {"name": "itemknn"}, {"name": "lm-twotower", "config": {"num_threads": 1}}]}),
    # the text two-tower of longrec.privacy (non-private, PCA-initialised towers) as the content member
    "lm-twotower-dp:nonprivate": ("lm-twotower-dp", _TT := {"dim": 32, "batch_size": 128, "lr": 0.01, "epochs": 60,
                                                           "init": "pca", "num_threads": 1}),
    "blend:ease+lm-twotower-dp": ("blend", {"models": [{"name": "ease"}, {"name": "lm-twotower-dp", "config": _TT}],
                                            "weight_step": 0.05}),
    "blend:ease+itemknn+lm-twotower-dp": ("blend", {"models": [
        {"name": "ease"}, {"name": "itemknn"}, {"name": "lm-twotower-dp", "config": _TT}], "normalize": "rank"}),
    # the closed-form text model of longrec.privacy, non-private (config chosen on P1 valid, bench/privacy.py --tune)
    "lm-linear-dp:nonprivate": ("lm-linear-dp", _LIN := {"dim": 256, "l2": 10.0, "clip": 2.0, "bias": 0.5}),
    "blend:ease+lm-linear-dp": ("blend", {"models": [{"name": "ease"}, {"name": "lm-linear-dp", "config": _LIN}],
                                          "weight_step": 0.05}),
    "blend:ease+lm-linear-dp+bpr": ("blend", {"models": [
        {"name": "ease"}, {"name": "lm-linear-dp", "config": _LIN}, {"name": "bpr", "config": {"num_threads": 1}}],
        "weight_step": 0.05}),
    # with the history as extra profile coordinates (item_weight): a joint item-item + text ridge model;
    # config chosen on P1 valid (`tune --model lm-linear-dp`, bench/results/tuning/lm_accuracy_tuning.jsonl)
    "lm-linear-dp:items": ("lm-linear-dp", _LINI := {"dim": 256, "l2": 20.0, "clip": 2.0, "bias": 2.0,
                                                     "item_weight": 4.0}),
    "blend:ease+lm-linear-dp:items+lm-linear-dp+bpr": ("blend", {"models": [
        {"name": "ease"}, {"name": "lm-linear-dp", "config": _LINI}, {"name": "lm-linear-dp", "config": _LIN},
        {"name": "bpr", "config": {"num_threads": 1}}], "weight_step": 0.05}),
}
SEEDED = ("lm-seq", "lm-twotower")


def _register() -> None:
    """Until the lead registers them, make the LM models known to the registry."""
    from longrec.models import registry

    registry.MODELS.setdefault("lm-seq", "longrec.models.lm_seq:LMSeq")
    registry.MODELS.setdefault("lm-twotower", "longrec.models.lm_twotower:LMTwoTower")
    registry.MODELS.setdefault("blend", "longrec.models.blend:Blend")


def _split(protocol: str) -> dict:
    from longrec.data.registry import load_split

    return load_split("ml-100k", protocol, download=False)


def cold_fold(train, share: float = 0.15, min_ratings: int = 5, seed: int = 7):
    """A P3-style cold-item fold carved from a training split, for model selection on cold
    items (P3's own valid split holds warm items only): `share` of the items with at least
    `min_ratings` training interactions (drawn with default_rng(seed)) lose all their
    interactions, which become the fold's validation set. Returns (fold_train, fold_valid)."""
    import numpy as np

    inter = train.interactions
    counts = inter["item_id"].value_counts()
    eligible = np.sort(counts.index[counts >= min_ratings].to_numpy())
    rng = np.random.default_rng(seed)
    cold = rng.choice(eligible, size=round(share * len(eligible)), replace=False)
    out = inter["item_id"].isin(cold)
    return train.with_interactions(inter[~out]), train.with_interactions(inter[out])


def run_one(protocol: str, variant: str, seed: int, extra: dict | None = None) -> dict:
    from longrec.metrics.ranking import evaluate
    from longrec.models import get_model_class

    _register()
    model_name, cfg = VARIANTS[variant]
    cfg = {**cfg, **(extra or {})}
    s = _split(protocol)
    t0 = time.perf_counter()
    klass = get_model_class(model_name)
    fold_info = None
    if protocol == "p3" and model_name == "lm-twotower":
        # P3 ranks cold items, but its valid split holds warm items only: the number of
        # epochs is chosen on a cold-item fold carved from train (early stopping ranks the
        # fold's cold items only), then the model is refitted on all of train for that long
        fold_train, fold_valid = cold_fold(s["train"])
        sel = klass({**cfg, "seed": seed, "valid_items": "cold"}).fit(fold_train, fold_valid)
        fold_info = {"cold_fold_valid_ndcg@10": sel.fit_info_.get("valid_ndcg@10"),
                     "cold_fold_best_epoch": sel.fit_info_.get("best_epoch")}
        model = klass({**cfg, "seed": seed, "epochs": sel.fit_info_.get("best_epoch") or cfg.get("epochs", 100)})
        model.fit(s["train"], None)
        model.fit_info_.update(fold_info)
    else:
        model = klass({**cfg, "seed": seed}).fit(s["train"], s["valid"])
    fit_s = time.perf_counter() - t0
    test = s["test"].interactions
    users = test["user_id"].unique()
    cands = s.get("cold_items") if protocol == "p3" else None
    t0 = time.perf_counter()
    recs = model.recommend(users=users, histories=s["valid"].interactions, k=10, candidates=cands)
    rec_s = time.perf_counter() - t0
    res = evaluate(recs, test[["user_id", "item_id"]], ks=(10,), metrics=["NDCG", "Hit", "Recall"])
    info = {k: v for k, v in model.fit_info_.items() if k not in ("valid_curve", "members")}
    return {"protocol": protocol, "variant": variant, "seed": seed, "config": cfg,
            "NDCG@10": res["NDCG@10"], "HR@10": res["Hit@10"], "Recall@10": res["Recall@10"],
            "n_users": res["n_users"], "fit_seconds": round(fit_s, 1), "recommend_seconds": round(rec_s, 2),
            "fit_info": info, "threads": cfg.get("num_threads"), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
            "load_avg_1m": os.getloadavg()[0]}


def foldin(n_new: int = 5, reps: int = 30, config: dict | None = None, cold_cache: bool = False) -> dict:
    """The speed figures of lm-seq on P2: training to the best valid epoch (the default
    config: 2 threads, early stopping), with the item texts encoded from scratch when
    `cold_cache` (an empty LONGREC_CACHE_DIR, so the encoder loads and embeds every item);
    recommend() for all 943 users; and the latency of recommend() for one user after
    `n_new` new interactions (no retraining)."""
    import tempfile

    import numpy as np

    from longrec.models import get_model_class

    _register()
    s = _split("p2")
    cfg = {"seed": 0, **(config or {})}
    tmp = tempfile.TemporaryDirectory() if cold_cache else None
    if tmp is not None:
        os.environ["LONGREC_CACHE_DIR"] = tmp.name
    t0 = time.perf_counter()
    m = get_model_class("lm-seq")(cfg).fit(s["train"], s["valid"])
    fit_s = time.perf_counter() - t0
    if tmp is not None:
        tmp.cleanup()
    fi = m.fit_info_
    u = s["train"].user_ids[0]
    before = m.recommend(users=[u], k=10)
    new = list(before["item_id"][:n_new])  # the user clicks the first five recommendations
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        after = m.recommend(users=[u], histories={u: new}, k=10)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    m.recommend(users=s["train"].user_ids, k=10)
    all_s = time.perf_counter() - t0
    changed = set(after["item_id"]) != set(before["item_id"])
    return {"config": cfg, "cold_text_cache": cold_cache, "text_seconds": fi.get("text_seconds"),
            "seconds_to_best": fi.get("seconds_to_best"), "best_epoch": fi.get("best_epoch"),
            "valid_ndcg@10": fi.get("valid_ndcg@10"), "fit_seconds": round(fit_s, 1),
            "n_new": n_new, "median_ms": round(1000 * float(np.median(times)), 2),
            "p95_ms": round(1000 * float(np.percentile(times, 95)), 2), "recommendations_changed": bool(changed),
            "recommend_all_943_users_s": round(all_s, 3), "load_avg_1m": os.getloadavg()[0]}


def tune(protocol: str, model_name: str, configs: list[dict], seed: int = 0) -> list[dict]:
    """Model selection runs: each config is fitted with early stopping on valid and its best
    valid NDCG@10 recorded (the choice is made on that column; test is logged alongside for
    the record, never used to choose). On P3 the lm-twotower configs are scored on the
    cold-item fold of train instead (see `cold_fold`), as P3's valid split is warm."""
    from longrec.metrics.ranking import evaluate
    from longrec.models import get_model_class

    _register()
    s = _split(protocol)
    klass = get_model_class(model_name)
    out = []
    for cfg in configs:
        t0 = time.perf_counter()
        row = {"protocol": protocol, "model": model_name, "seed": seed, "cfg": cfg}
        if protocol == "p3" and model_name == "lm-twotower":
            fold_train, fold_valid = cold_fold(s["train"])
            m = klass({**cfg, "seed": seed, "valid_items": "cold"}).fit(fold_train, fold_valid)
            row["valid_is"] = "cold fold of train"
        else:
            m = klass({**cfg, "seed": seed}).fit(s["train"], s["valid"])
            test = s["test"].interactions
            recs = m.recommend(users=test["user_id"].unique(), histories=s["valid"].interactions, k=10)
            row["test"] = round(evaluate(recs, test[["user_id", "item_id"]], ks=(10,))["NDCG@10"], 4)
        row.update({"valid": m.fit_info_.get("valid_ndcg@10"), "best_epoch": m.fit_info_.get("best_epoch"),
                    "s": round(time.perf_counter() - t0, 1), "seconds_to_best": m.fit_info_.get("seconds_to_best"),
                    "text_seconds": m.fit_info_.get("text_seconds"), "load_avg_1m": os.getloadavg()[0],
                    "curve": [c[1] for c in m.fit_info_.get("valid_curve", [])]})
        with open(RESULTS / "tuning" / "lm_accuracy_tuning.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps({k: v for k, v in row.items() if k != "curve"}), flush=True)
        out.append(row)
    return out


def _best_valid(info: dict):
    """The selected model's validation NDCG@10 (EASE logs its whole λ grid)."""
    v = info.get("valid_ndcg@10", info.get("weights_valid_ndcg@10", info.get("cold_fold_valid_ndcg@10")))
    return round(max(v.values()), 6) if isinstance(v, dict) else v


def report() -> dict:
    rows = [json.loads(line) for line in RUNS.read_text().splitlines() if line.strip()] if RUNS.exists() else []
    # runs stopped by a wall-clock cap (max_seconds) trained a load-dependent number of
    # epochs: they stay in the jsonl for the record but are left out of the comparison
    capped = [r for r in rows if "max_seconds" in json.dumps(r["config"])]
    rows = [r for r in rows if r not in capped]
    # a re-run of the same (protocol, variant, seed, config) replaces the earlier row in the table
    # (the jsonl keeps both)
    latest: dict[tuple, dict] = {}
    for r in rows:
        latest[(r["protocol"], r["variant"], r["seed"], json.dumps(r["config"], sort_keys=True))] = r
    replaced = len(rows) - len(latest)
    rows = list(latest.values())
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["protocol"], r["variant"]), []).append(r)
    table = []
    for (proto, var), rs in sorted(groups.items()):
        nd = [r["NDCG@10"] for r in rs]
        hr = [r["HR@10"] for r in rs]
        table.append({"protocol": proto, "variant": var, "seeds": [r["seed"] for r in rs],
                      "NDCG@10_mean": statistics.mean(nd), "NDCG@10_std": statistics.stdev(nd) if len(nd) > 1 else 0.0,
                      "HR@10_mean": statistics.mean(hr), "fit_seconds_mean": statistics.mean(r["fit_seconds"] for r in rs),
                      "seconds_to_best": [r["fit_info"].get("seconds_to_best") for r in rs],
                      "valid_ndcg@10": [_best_valid(r["fit_info"]) for r in rs]})
    fold = RESULTS / "lm_foldin.json"
    out = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count()}, "results": table,
           "excluded_capped_runs": len(capped), "replaced_reruns": replaced,
           "foldin": json.loads(fold.read_text()) if fold.exists() else None, "runs": rows}
    prov = provenance()
    (RESULTS / "lm_accuracy.json").write_text(json.dumps(stamp(out, prov), indent=2))
    lines = ["# LM recommenders on ml-100k (test NDCG@10 / HR@10; tuned on valid)", "", md_line(prov), "",
             "Produced by `bench/lm_accuracy.py`; mean ± std over the listed seeds. fit = wall seconds "
             "on the shared 2-core machine, 1 torch thread, `nice -n 19` (other jobs were running: see "
             "load_avg_1m per run in the JSON). Every learned model uses the same rule: at most `epochs` "
             "epochs, early stopping on valid NDCG@10 with its `patience`, no wall-clock cap (earlier "
             f"wall-clock-capped runs, {len(capped)}, are kept in the jsonl but left out of this table; a re-run "
             f"of the same protocol, variant, seed and config replaces the earlier run here: {replaced} replaced). "
             "P3 lm-twotower: the epoch count is chosen on a cold-item fold carved from train "
             "(`cold_fold`: 15% of train items with >= 5 ratings, default_rng(7); early stopping ranks "
             "the fold's cold items only), then the model is refitted on all of train for that many "
             "epochs; the `valid NDCG@10` column shows the fold's cold-item score for those runs.", "",
             "| protocol | model | seeds | NDCG@10 | HR@10 | fit s | valid NDCG@10 |", "|---|---|---|---|---|---|---|"]
    for t in table:
        lines.append(f"| {t['protocol']} | {t['variant']} | {len(t['seeds'])} | {t['NDCG@10_mean']:.4f} ± "
                     f"{t['NDCG@10_std']:.4f} | {t['HR@10_mean']:.4f} | {t['fit_seconds_mean']:.0f} | "
                     f"{', '.join('-' if v is None else str(v) for v in t['valid_ndcg@10'])} |")
    if out["foldin"]:
        f = out["foldin"]
        lines += ["", f"Fold-in (lm-seq, P2): {f['n_new']} new interactions -> new top-10 in median "
                      f"{f['median_ms']} ms (p95 {f['p95_ms']} ms); recommendations changed: "
                      f"{f['recommendations_changed']}; recommend for all 943 users: {f['recommend_all_943_users_s']} s."]
        if f.get("seconds_to_best") is not None:
            lines += ["", f"Training speed (lm-seq default config, P2, {f['config'].get('num_threads', 2)} threads, "
                          f"load {f['load_avg_1m']:.1f}): best valid NDCG@10 {f['valid_ndcg@10']} at epoch "
                          f"{f['best_epoch']}, reached after {f['seconds_to_best']} s of training; item-text "
                          f"encoding ({'cold cache' if f['cold_text_cache'] else 'cached'}) {f['text_seconds']} s; "
                          f"whole fit with early stopping {f['fit_seconds']} s."]
    (RESULTS / "lm_accuracy.md").write_text("\n".join(lines) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--protocol", action="append", choices=["p1", "p2", "p3"], required=True)
    r.add_argument("--variant", action="append", choices=list(VARIANTS), required=True)
    r.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 0 1 2 for lm-seq/lm-twotower, else 0")
    r.add_argument("--config", default="{}", help="JSON config overrides for every run")
    f = sub.add_parser("foldin")
    f.add_argument("--config", default="{}", help="JSON config overrides for the lm-seq model")
    f.add_argument("--cold-cache", action="store_true", help="encode the item texts from scratch (empty cache)")
    t = sub.add_parser("tune")
    t.add_argument("--protocol", choices=["p1", "p2", "p3"], required=True)
    t.add_argument("--model", required=True)
    t.add_argument("--configs", nargs="+", required=True, help="one JSON config per candidate")
    t.add_argument("--seed", type=int, default=0)
    sub.add_parser("report")
    a = ap.parse_args()
    os.environ.setdefault("LONGREC_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    if a.cmd == "run":
        for proto in a.protocol:
            for var in a.variant:
                seeds = a.seeds if a.seeds is not None else ([0, 1, 2] if VARIANTS[var][0] in SEEDED else [0])
                for seed in seeds:
                    row = run_one(proto, var, seed, json.loads(a.config))
                    print(json.dumps({k: row[k] for k in ("protocol", "variant", "seed", "NDCG@10", "HR@10",
                                                          "fit_seconds")}), flush=True)
                    with open(RUNS, "a") as f:
                        f.write(json.dumps(stamp(row)) + "\n")
    elif a.cmd == "tune":
        tune(a.protocol, a.model, [json.loads(c) for c in a.configs], a.seed)
    elif a.cmd == "foldin":
        res = foldin(config=json.loads(a.config), cold_cache=a.cold_cache)
        (RESULTS / "lm_foldin.json").write_text(json.dumps(stamp(res), indent=2))
        print(json.dumps(res))
    else:
        out = report()
        print((RESULTS / "lm_accuracy.md").read_text())
        print(f"{len(out['runs'])} runs")


if __name__ == "__main__":
    main()
