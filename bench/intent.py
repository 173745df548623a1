"""Intent benchmark: does fusing a sentence with the history beat either alone?

Built from held-out data, with no hand-labelling: for every user, the attribute (genre on
MovieLens-100K P1, author or publisher on Book-Crossing B1) most common among their held-out
items is the intent; it is phrased by several templates; the truth is the user's held-out items
that have the attribute. Compared, by NDCG@10 against that truth:

  text-only    the query alone (`longrec ask`): the same ranking for everyone with that intent
  model-only   the model's ranking from the history (the query ignored)
  fused        longrec.models.intent.recommend_with_queries

The fusion weight is chosen on valid (history = train, truth = valid items) and reported on test
(history = train + valid). Also reported: the share of fused top-10 items that carry the intent's
attribute.

    LONGREC_DATA_DIR=../shared/datasets python bench/intent.py --dataset ml-100k --model lm-linear
    LONGREC_DATA_DIR=../shared/datasets python bench/intent.py --dataset b1 --model itemknn
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _provenance import md_line, provenance

RESULTS = Path(__file__).resolve().parent / "results"
GRID = [(g, w) for g in (0.3, 0.4, 0.5, 1.0) for w in (0.25, 0.5, 1.0)]  # (query_gate, query_weight)
GENRE_WORDS = {"Children's": "children's", "Sci-Fi": "science fiction", "Film-Noir": "film noir"}
TEMPLATES = {
    "ml-100k": {
        "want": "I want to watch a {a} movie",
        "mood": "in the mood for something {a}",
        "recommend": "recommend me some {a} films",
        "bare": "{a}",
    },
    "b1": {
        "want": "I want to read a book by {a}",
        "more": "more books from {a}",
        "recommend": "recommend me something {a} wrote",
        "bare": "{a}",
    },
}


def load(dataset: str):
    d = Path(os.environ.get("LONGREC_DATA_DIR", "../shared/datasets"))
    from longrec.data.dataset import Dataset

    if dataset == "ml-100k":
        from longrec.data.readers import read_items

        s = d / "ml-100k" / "splits" / "p1"
        items = read_items(d / "ml-100k" / "ml-100k.item")
        parts = {p: pd.read_csv(s / f"{p}.csv") for p in ("train", "valid", "test")}
        attrs = {i: [GENRE_WORDS.get(g, g.lower()) for g in str(c).split()] for i, c in zip(items["item_id"], items["class"])}
    else:
        s = d / "book-crossing" / "splits" / "b1"
        items = pd.read_csv(s / "items.csv", dtype=str, keep_default_na=False)
        parts = {p: pd.read_csv(s / f"{p}.csv", dtype={"user_id": str, "item_id": str}) for p in ("train", "valid", "test")}
        attrs = {i: [a] for i, a in zip(items["item_id"], items["author"]) if a}
    train = Dataset(parts["train"], items=items)
    return train, parts, attrs, items


def intents(truth: pd.DataFrame, attrs: dict) -> dict:
    """user -> (attribute, set of held-out items with it): the attribute most common among the
    user's held-out items (ties: alphabetical), kept when at least one item has it."""
    out = {}
    for u, g in truth.groupby("user_id"):
        counts: dict[str, int] = {}
        for i in g["item_id"]:
            for a in attrs.get(i, []):
                counts[a] = counts.get(a, 0) + 1
        if not counts:
            continue
        best = sorted(counts.items(), key=lambda x: (-x[1], x[0]))[0][0]
        out[u] = (best, {i for i in g["item_id"] if best in attrs.get(i, [])})
    return out


def ndcg(recs: pd.DataFrame, truth: dict) -> float:
    disc = 1.0 / np.log2(np.arange(2, 12))
    vals = []
    for u, g in recs.groupby("user_id"):
        if u not in truth:
            continue
        rel = truth[u][1]
        hits = np.array([i in rel for i in g.sort_values("rank")["item_id"].head(10)], dtype=float)
        ideal = disc[:min(len(rel), 10)].sum()
        vals.append(float((hits * disc[:len(hits)]).sum() / ideal) if ideal else 0.0)
    return float(np.mean(vals)) if vals else 0.0


def attr_share(recs: pd.DataFrame, truth: dict, attrs: dict) -> float:
    hits = [truth[u][0] in attrs.get(i, []) for u, i in zip(recs["user_id"], recs["item_id"]) if u in truth]
    return float(np.mean(hits)) if hits else 0.0


def _recs(model, ids, F, hist) -> pd.DataFrame:
    from longrec.topk import topk

    F = F.copy()
    F[np.repeat(np.arange(len(hist)), hist.lengths()), hist.indices] = -np.inf
    top, vals = topk(F, 10)
    ok = np.isfinite(vals)
    return pd.DataFrame({"user_id": np.repeat(np.asarray(ids, dtype=object), 10)[ok.ravel()],
                         "item_id": model.vocab_.items.ids[top[ok]],
                         "rank": np.tile(np.arange(1, 11), len(ids))[ok.ravel()]})


def run_grid(model, hist, truth_df, attrs, templates, grid, encoder) -> dict:
    """Valid-stage grid search: the model's scores and the query similarities once per phrasing,
    then `longrec.models.intent.fuse` (the library's own fusion) for every (gate, weight)."""
    from longrec.models.intent import fuse, item_text_vectors, query_vectors

    truth = intents(truth_df, attrs)
    ids, uidx, h = model.histories(list(truth), hist)
    S = model.score_batch(uidx, h).astype(np.float64)
    T = item_text_vectors(model, encoder)
    allowed = np.ones(S.shape[1], dtype=bool)
    out = {"n_users": len(ids), "model-only": ndcg(_recs(model, ids, S, h), truth), "families": {}}
    for fam, tpl in templates.items():
        R = (query_vectors([tpl.format(a=truth[u][0]) for u in ids], encoder) @ T.T).astype(np.float64)
        row = {"text-only": ndcg(_recs(model, ids, R, h), truth)}
        for g, w in grid:
            recs = _recs(model, ids, fuse(S, R, allowed, w, g), h)
            row[f"fused@{g},{w}"] = ndcg(recs, truth)
            row[f"share@{g},{w}"] = attr_share(recs, truth, attrs)
        out["families"][fam] = row
    return out


def run_stage(model, hist: pd.DataFrame, truth_df: pd.DataFrame, attrs: dict, templates: dict, grid,
              encoder: str) -> dict:
    """Test stage, through the library call users make (recommend_with_queries)."""
    from longrec.models.intent import recommend_with_queries

    truth = intents(truth_df, attrs)
    users = list(truth)
    model_only = model.recommend(users=users, histories=hist, k=10)
    out = {"n_users": len(users), "model-only": ndcg(model_only, truth),
           "model-only share": attr_share(model_only, truth, attrs), "families": {}}
    for fam, tpl in templates.items():
        q = {u: tpl.format(a=truth[u][0]) for u in users}
        # text-only: the query's ranking (the model only breaks exact ties)
        text_only = recommend_with_queries(model, users=users, histories=hist, queries=q, k=10, query_weight=1e6,
                                           query_gate=1.0, encoder=encoder)
        row = {"text-only": ndcg(text_only, truth), "text-only share": attr_share(text_only, truth, attrs)}
        for g, w in grid:
            fused = recommend_with_queries(model, users=users, histories=hist, queries=q, k=10, query_weight=w,
                                           query_gate=g, encoder=encoder)
            row[f"fused@{g},{w}"] = ndcg(fused, truth)
            row[f"share@{g},{w}"] = attr_share(fused, truth, attrs)
        out["families"][fam] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="ml-100k", choices=["ml-100k", "b1"])
    ap.add_argument("--model", default="lm-linear")
    ap.add_argument("--config", default="{}", help="JSON model config")
    ap.add_argument("--encoder", default="default")
    args = ap.parse_args()
    from longrec.models import get_model_class

    t0 = time.perf_counter()
    train, parts, attrs, items = load(args.dataset)
    model = get_model_class(args.model)(json.loads(args.config)).fit(train)
    tpl = TEMPLATES[args.dataset]
    valid = run_grid(model, None, parts["valid"], attrs, tpl, GRID, args.encoder)
    mean_valid = {gw: np.mean([r[f"fused@{gw[0]},{gw[1]}"] for r in valid["families"].values()]) for gw in GRID}
    best = max(GRID, key=lambda gw: mean_valid[gw])
    key = f"{best[0]},{best[1]}"
    test = run_stage(model, parts["valid"], parts["test"], attrs, tpl, [best], args.encoder)
    rec = {"provenance": provenance(), "dataset": args.dataset, "model": args.model, "config": json.loads(args.config),
           "encoder": args.encoder, "grid_on_valid": {f"gate {g}, weight {w}": round(v, 4) for (g, w), v in mean_valid.items()},
           "chosen": {"query_gate": best[0], "query_weight": best[1]}, "valid": valid, "test": test,
           "seconds": round(time.perf_counter() - t0, 1)}
    RESULTS.mkdir(exist_ok=True)
    stem = f"intent_{args.dataset}_{args.model}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(rec, indent=2, default=float))
    md = [f"# Intent benchmark: {args.dataset}, {args.model}", "", md_line(rec["provenance"]), "",
          f"Gate and weight chosen on valid by mean NDCG@10 over phrasings: query_gate = {best[0]}, "
          f"query_weight = {best[1]} (valid means: "
          f"{', '.join(f'{g}/{w}: {v:.4f}' for (g, w), v in mean_valid.items())}). Test, {test['n_users']} users "
          f"(model-only top-10 with the attribute: {test['model-only share']:.0%}):", "",
          "| phrasing | text-only | model-only | fused | fused / best single | fused top-10 with the attribute |",
          "|---|---|---|---|---|---|"]
    for fam, r in test["families"].items():
        f = r[f"fused@{key}"]
        single = max(r["text-only"], test["model-only"])
        md.append(f"| {fam} (`{tpl[fam]}`) | {r['text-only']:.4f} | {test['model-only']:.4f} | **{f:.4f}** | "
                  f"{f / single:.2f}x | {r[f'share@{key}']:.0%} |")
    (RESULTS / f"{stem}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    sys.exit(main())
