"""Cold-start items: content-tfidf against lm-linear-dp and popularity on P3-rule draws.

Splits (longrec.data.splits.split_p3: 15% of the items with >= 5 interactions held out
entirely, their rows = test; the warm rows split per user 90/10 into train/valid):
  * book-crossing B1 (train + valid + test of splits/b1 pooled), seed 0; items.csv text;
  * ml-100k (the full ml-100k.inter), seeds 0-4.
Test ranks the cold items only, with train + valid as each user's history.

Model selection: content-tfidf options are chosen on a cold-item fold carved from train
(`cold_fold`: 15% of the train items with >= 5 rows, default_rng(7), lose all their rows, which
become the fold's truth; ranking over the fold's cold items), never on test. On ml-100k the
choice is made on seed 0's fold and reused for seeds 1-4.

    LONGREC_DATA_DIR=/work/shared/datasets python bench/cold.py            # -> bench/results/cold.md/.json
    python bench/cold.py --quick                                           # without lm-linear-dp

Cold movies over five draws against LightFM features-only (run in its own environment, see
bench/lightfm_cold.py; it reads the draws this script writes to bench/.cold_draws/):

    python bench/cold.py --write-draws
    bench/.venv-lightfm/bin/python bench/lightfm_cold.py     # -> bench/results/lightfm_cold_ml-100k.json
    python bench/cold.py --movies5                           # -> bench/results/cold_movies_5draws.md/.json

There every longrec candidate's configuration is chosen by its mean NDCG@10 over the five draws'
train-only cold folds (MOVIE_CANDIDATES), then scored on each draw's test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from _provenance import provenance
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"

_AP = {"value_columns": ["author", "publisher"]}
TFIDF_GRID: list[dict] = [
    {},
    {"value_columns": ["author"]},
    _AP,
    {"prior_weight": 0.1},
    {"neighbours": 10},
    {"neighbours": 20},
    {"neighbours": 50},
    {**_AP, "neighbours": 10},
    {**_AP, "neighbours": 20},
    {**_AP, "neighbours": 50},
]


def data_dir() -> Path:
    return Path(os.environ.get("LONGREC_DATA_DIR", "/work/shared/datasets"))


def books_full():
    from longrec.data.dataset import Dataset

    d = data_dir() / "book-crossing" / "splits" / "b1"
    parts = [pd.read_csv(d / f"{p}.csv", dtype={"user_id": str, "item_id": str}) for p in ("train", "valid", "test")]
    items = pd.read_csv(d / "items.csv", dtype={"item_id": str}, keep_default_na=False)
    items["year"] = pd.to_numeric(items["year"], errors="coerce").fillna(0).astype(int)
    return Dataset(pd.concat(parts, ignore_index=True), items, name="book-crossing-b1")


def movies_full():
    from longrec.data.registry import load_registered

    return load_registered("ml-100k", download=False)


def p3_draw(full, seed: int) -> dict:
    from longrec.data.splits import split_p3

    s = split_p3(full.interactions, seed=seed)
    return {"train": full.with_interactions(s["train"]), "valid": full.with_interactions(s["valid"]),
            "test": s["test"], "cold": np.asarray(s["cold_items"])}


def cold_fold(train, share: float = 0.15, min_ratings: int = 5, seed: int = 7) -> dict:
    inter = train.interactions
    counts = inter["item_id"].value_counts()
    eligible = np.sort(counts.index[counts >= min_ratings].to_numpy())
    cold = np.sort(np.random.default_rng(seed).choice(eligible, size=round(share * len(eligible)), replace=False))
    out = inter["item_id"].isin(cold).to_numpy()
    return {"train": train.with_interactions(inter[~out]), "valid": None, "test": inter[out], "cold": cold}


DRAWS = Path(__file__).resolve().parent / ".cold_draws"


def write_draw(s: dict, fold: dict, out: Path) -> None:
    """A draw and its train-only cold fold as CSV files, for runners outside longrec (bench/lightfm_cold.py):
    train/valid/test.csv, cold_items.csv, fold_train.csv, fold_test.csv, fold_cold_items.csv, items.csv."""
    out.mkdir(parents=True, exist_ok=True)
    cols = ["user_id", "item_id"]
    s["train"].interactions[cols].to_csv(out / "train.csv", index=False)
    s["valid"].interactions[cols].to_csv(out / "valid.csv", index=False)
    s["test"][cols].to_csv(out / "test.csv", index=False)
    pd.DataFrame({"item_id": s["cold"]}).to_csv(out / "cold_items.csv", index=False)
    fold["train"].interactions[cols].to_csv(out / "fold_train.csv", index=False)
    fold["test"][cols].to_csv(out / "fold_test.csv", index=False)
    pd.DataFrame({"item_id": fold["cold"]}).to_csv(out / "fold_cold_items.csv", index=False)
    s["train"].items.to_csv(out / "items.csv", index=False)


def run(model_name: str, cfg: dict, s: dict) -> dict:
    from longrec.metrics.ranking import evaluate
    from longrec.models import get_model_class

    t0 = time.perf_counter()
    m = get_model_class(model_name)(cfg).fit(s["train"], s["valid"])
    fit_s = time.perf_counter() - t0
    test = s["test"]
    hist = s["valid"].interactions if s["valid"] is not None else None
    recs = m.recommend(users=test["user_id"].unique(), histories=hist, k=10, candidates=s["cold"])
    res = evaluate(recs, test[["user_id", "item_id"]], ks=(10,), metrics=["NDCG", "Recall"])
    return {"NDCG@10": res["NDCG@10"], "Recall@10": res["Recall@10"], "n_users": res["n_users"],
            "fit_seconds": round(fit_s, 1)}


def oracle(s: dict) -> dict:
    """Cold items ranked by their test popularity (an upper reference, not a model)."""
    from longrec.metrics.ranking import evaluate

    test = s["test"]
    top = test["item_id"].value_counts()
    top = top[top.index.isin(s["cold"])]
    order = sorted(top.index, key=lambda i: (-top[i], str(i)))[:10]
    users = test["user_id"].unique()
    recs = pd.DataFrame({"user_id": np.repeat(users, len(order)), "item_id": np.tile(order, len(users)),
                         "rank": np.tile(np.arange(1, len(order) + 1), len(users))})
    res = evaluate(recs, test[["user_id", "item_id"]], ks=(10,), metrics=["NDCG", "Recall"])
    return {"NDCG@10": res["NDCG@10"], "Recall@10": res["Recall@10"], "n_users": res["n_users"]}


def select_tfidf(s: dict, grid: list[dict], log: list) -> dict:
    fold = cold_fold(s["train"])
    best, best_v = {}, -1.0
    for cfg in grid:
        try:
            v = run("content-tfidf", cfg, fold)["NDCG@10"]
        except Exception as e:  # e.g. a column the item table lacks
            log.append({"config": cfg, "error": str(e)})
            continue
        log.append({"config": cfg, "cold_fold_NDCG@10": v})
        print("  fold", cfg, round(v, 4), flush=True)
        if v > best_v:
            best, best_v = cfg, v
    return best



# ----------------------------------------------------------------------------- cold movies, five draws
#: longrec candidates on the five ml-100k draws: (label, model, grid). Each grid is searched on the five
#: draws' train-only cold folds (the config with the best mean fold NDCG@10 wins); the first entry of
#: a grid is the model's defaults.
MOVIE_CANDIDATES: list[tuple[str, str, list[dict]]] = [
    ("content-tfidf", "content-tfidf", [{}, {"neighbours": 20}, {"neighbours": 50}]),
    ("lm-linear-dp (text profile only)", "lm-linear-dp", [{}]),
    ("lm-linear", "lm-linear", [{}, {"cold_metadata": 0.0, "cold_l2": 100.0}, {"cold_metadata": 0.0, "cold_l2": 10.0},
                                {"cold_metadata": 1.0, "cold_l2": 100.0}, {"cold_metadata": 1.0, "cold_l2": 10.0},
                                {"cold_metadata": 1.0, "cold_l2": 3.0}, {"cold_metadata": 0.5, "cold_l2": 10.0},
                                {"cold_metadata": 2.0, "cold_l2": 10.0}]),
]


#: run only with --only LABEL (added to an existing cold_movies_5draws.json): slower models
EXTRA_MOVIE_CANDIDATES: list[tuple[str, str, list[dict]]] = [
    ("lm-twotower", "lm-twotower", [{"num_threads": 1}]),
]


def movies_five(seeds: list[int], quick: bool, lightfm_json: Path, only: list[str] | None = None) -> None:
    """Cold movies over five P3 draws: longrec candidates (chosen on train-only cold folds) against
    LightFM features-only (bench/lightfm_cold.py, run in its own environment on the same draws).
    `only`: run just these candidate labels and add their rows to the existing JSON."""
    p = provenance()
    full = movies_full()
    draws = {}
    for seed in seeds:
        s = p3_draw(full, seed)
        draws[seed] = (s, cold_fold(s["train"]))
        write_draw(s, draws[seed][1], DRAWS / "ml-100k" / f"seed{seed}")
    if only:
        out = json.loads((RESULTS / "cold_movies_5draws.json").read_text())
        assert out["seeds"] == seeds, "--only adds rows for the seeds of the existing run"
        cands = [c for c in MOVIE_CANDIDATES + EXTRA_MOVIE_CANDIDATES if c[0] in only]
        out.setdefault("added", []).append({"labels": only, **p})
    else:
        out = {**p, "seeds": seeds, "rows": {}, "selection": {}, "chosen": {}}
        out["rows"]["popularity oracle (test counts; a reference, not a model)"] = [
            {"seed": seed, **oracle(draws[seed][0])} for seed in seeds]
        cands = MOVIE_CANDIDATES[:1] if quick else MOVIE_CANDIDATES
    for label, name, grid in cands:
        log = []
        for cfg in grid:
            vals = [run(name, cfg, draws[seed][1])["NDCG@10"] for seed in seeds] if len(grid) > 1 else []
            log.append({"config": cfg, "fold_NDCG@10": [round(v, 6) for v in vals]})
            if vals:
                print(f"  fold {name} {json.dumps(cfg)} {statistics.mean(vals):.4f}", flush=True)
        best = max(log, key=lambda e: statistics.mean(e["fold_NDCG@10"]) if e["fold_NDCG@10"] else 0.0)
        out["selection"][label] = log
        out["chosen"][label] = best["config"]
        tried = [("defaults", grid[0])] + ([("chosen on cold folds of train", best["config"])]
                                           if best["config"] != grid[0] else [])
        for how, cfg in tried:
            row_label = f"{label} {how}" + (f" {json.dumps(cfg)}" if how != "defaults" else "")
            out["rows"][row_label] = [{"seed": seed, **run(name, cfg, draws[seed][0])} for seed in seeds]
            print(" ", row_label, round(statistics.mean(r["NDCG@10"] for r in out["rows"][row_label]), 4), flush=True)
        (RESULTS / "cold_movies_5draws.json").write_text(json.dumps(out, indent=2, default=str))
    add_lightfm(out, lightfm_json)
    (RESULTS / "cold_movies_5draws.json").write_text(json.dumps(out, indent=2, default=str))
    write_movies_md(out)


def add_lightfm(out: dict, lightfm_json: Path) -> None:
    if lightfm_json.is_file():
        lf = json.loads(lightfm_json.read_text())
        out["lightfm"] = {k: lf[k] for k in ("command", "commit", "date", "model", "chosen",
                                              "chosen_fold_NDCG@10", "fit_on_test_stage", "rows")}
        out["rows"]["LightFM features-only (genres + year; WARP; bench/lightfm_cold.py)"] = lf["rows"]


def write_movies_md(out: dict) -> None:
    seeds = out["seeds"]
    lf_key = next((k for k in out["rows"] if k.startswith("LightFM")), None)
    lf_mean = statistics.mean(r["NDCG@10"] for r in out["rows"][lf_key]) if lf_key else None
    lines = ["# Cold movies: five P3 draws of ml-100k", "",
             f"Command: `{out['command']}`; commit `{out['commit']}`"
             + (" (with uncommitted changes)" if out.get("dirty") else "") + f"; date {out['date']}.", "",
             "Draws: `longrec.data.splits.split_p3(ml-100k.inter, seed)` for seeds "
             f"{', '.join(map(str, seeds))} (15% of the items with >= 5 ratings held out entirely; all their "
             "rows are test; warm rows 90/10 train/valid per user). Test ranks the draw's cold items only, "
             "history = train + valid. NDCG@10 as ../shared/metrics/METRICS.md; mean ± std over the draws.", "",
             "Configurations are chosen on cold folds of *train* (per draw: 15% of the train items with >= 5 "
             "rows lose all their rows, which become the fold's truth; `default_rng(7)`), by the mean fold "
             "NDCG@10 over the five draws; the test items are never used to choose.", ""]
    if lf_key:
        lf = out["lightfm"]
        lines += [f"LightFM: {lf['model']}; chosen on the same folds: `{json.dumps(lf['chosen'])}` (mean fold "
                  f"NDCG@10 {lf['chosen_fold_NDCG@10']:.4f}); test fit on {lf['fit_on_test_stage']}. "
                  f"Command `{lf['command']}`, commit `{lf['commit']}`, date {lf['date']}.", ""]
    head = "| model | mean ± std | " + " | ".join(f"seed {s}" for s in seeds) + (" | × LightFM |" if lf_key else " |")
    lines += [head, "|" + "---|" * (len(seeds) + 2 + (1 if lf_key else 0))]
    for label, rs in out["rows"].items():
        v = [r["NDCG@10"] for r in rs]
        cells = [_fmt(v)] + [f"{x:.4f}" for x in v]
        if lf_key:
            cells.append(f"{statistics.mean(v) / lf_mean:.3f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    for add in out.get("added", []):
        lines += [f"Rows {', '.join(add['labels'])} added by `{add['command']}`; commit `{add['commit']}`; "
                  f"date {add['date']}.", ""]
    for n in out.get("notes", []):
        lines += [f"Note: {n}", ""]
    lines += ["", "Selection (mean NDCG@10 over the five train-only cold folds):", ""]
    for label, log in out["selection"].items():
        for e in log:
            if e["fold_NDCG@10"]:
                lines.append(f"- {label} `{json.dumps(e['config'])}`: {statistics.mean(e['fold_NDCG@10']):.4f}")
    (RESULTS / "cold_movies_5draws.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--movies5", action="store_true", help="cold movies over five draws vs LightFM "
                    "(-> bench/results/cold_movies_5draws.md/.json; writes the draws for bench/lightfm_cold.py)")
    ap.add_argument("--only", nargs="*", help="with --movies5: only these candidate labels, added to the "
                    "existing JSON (e.g. --only lm-twotower)")
    ap.add_argument("--render", action="store_true", help="rewrite cold_movies_5draws.md from its JSON and "
                    "the LightFM JSON (no fitting)")
    ap.add_argument("--note", action="append", default=[], help="with --render: a note line to add")
    ap.add_argument("--write-draws", action="store_true", help="only write the ml-100k draws and folds as CSV")
    ap.add_argument("--lightfm-json", type=Path, default=RESULTS / "lightfm_cold_ml-100k.json")
    ap.add_argument("--quick", action="store_true", help="skip lm-linear-dp")
    ap.add_argument("--datasets", nargs="*", default=["book-crossing", "ml-100k"])
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    a = ap.parse_args()
    if a.write_draws:
        full = movies_full()
        for seed in a.seeds:
            s = p3_draw(full, seed)
            write_draw(s, cold_fold(s["train"]), DRAWS / "ml-100k" / f"seed{seed}")
        return
    if a.render:  # the Markdown again from the JSON (e.g. after bench/lightfm_cold.py finished later)
        out = json.loads((RESULTS / "cold_movies_5draws.json").read_text())
        add_lightfm(out, a.lightfm_json)
        if a.note:
            out["notes"] = a.note
        (RESULTS / "cold_movies_5draws.json").write_text(json.dumps(out, indent=2, default=str))
        write_movies_md(out)
        return
    if a.movies5:
        movies_five(a.seeds, a.quick, a.lightfm_json, a.only)
        return
    out: dict = {**provenance(), "results": {}}
    for ds in a.datasets:
        full = books_full() if ds == "book-crossing" else movies_full()
        seeds = [0] if ds == "book-crossing" else a.seeds
        rows: dict[str, list] = {}
        sel_log: list = []
        chosen = None
        for seed in seeds:
            s = p3_draw(full, seed)
            print(ds, seed, {"train": len(s["train"]), "test": len(s["test"]), "cold": len(s["cold"])}, flush=True)
            grid = TFIDF_GRID if ds == "book-crossing" else [
                {k: v for k, v in g.items() if k != "value_columns"} for g in TFIDF_GRID if "value_columns" not in g]
            if chosen is None:
                chosen = select_tfidf(s, grid, sel_log)
            models = [("popularity oracle (test counts)", None, None), ("pop", "pop", {}),
                      ("content-tfidf", "content-tfidf", {}),
                      (f"content-tfidf {json.dumps(chosen)} (chosen on a cold fold of train)", "content-tfidf", chosen)]
            if not a.quick:
                models.append(("lm-linear-dp (defaults)", "lm-linear-dp", {}))
            for label, name, cfg in models:
                r = oracle(s) if name is None else run(name, cfg, s)
                rows.setdefault(label, []).append({"seed": seed, **r})
                print(" ", label, round(r["NDCG@10"], 4), flush=True)
        out["results"][ds] = {"rows": rows, "selection": sel_log, "chosen": chosen, "seeds": seeds}
        (RESULTS / "cold.json").write_text(json.dumps(out, indent=2, default=str))
    write_md(out)


def _fmt(vals: list[float]) -> str:
    if len(vals) == 1:
        return f"{vals[0]:.4f}"
    return f"{statistics.mean(vals):.4f} ± {statistics.stdev(vals):.4f}"


def write_md(out: dict) -> None:
    lines = ["# Cold-start items: P3-rule draws", "", f"Command: `{out['command']}`  ", f"Commit: `{out['commit']}`  ",
             f"Date: {out['date']}", "",
             "split_p3 (15% of items with >= 5 interactions held out entirely; their rows are test). Test ranks "
             "the cold items only, history = train + valid. content-tfidf options chosen on a cold-item fold of "
             "train (never test). NDCG@10 / Recall@10 on test; ml-100k: mean ± std over seeds 0-4.", ""]
    for ds, res in out["results"].items():
        lines += [f"## {ds} (seeds {', '.join(map(str, res['seeds']))})", "",
                  "| model | test NDCG@10 | test Recall@10 |", "|---|---|---|"]
        for label, rs in res["rows"].items():
            lines.append(f"| {label} | {_fmt([r['NDCG@10'] for r in rs])} | {_fmt([r['Recall@10'] for r in rs])} |")
        lines += ["", "Selection on the cold fold of train (seed 0 draw):", ""]
        for e in res["selection"]:
            lines.append(f"- `{json.dumps(e['config'])}`: " + (f"{e['cold_fold_NDCG@10']:.4f}" if "cold_fold_NDCG@10" in e
                                                               else f"error: {e['error']}"))
        lines.append("")
    (RESULTS / "cold.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
