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
attribute, and the fused list without the attribute prior (attribute_weight 0: the sentence only
through its embedding). text-only is the query's embedding alone (no attribute prior).

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
ATTRIBUTE_WEIGHTS = (0.0, 0.5, 1.0, 2.0)
# (query_gate, query_weight, attribute_weight)
GRID = [(g, w, a) for g in (0.3, 0.4, 0.5, 1.0) for w in (0.25, 0.5, 1.0) for a in ATTRIBUTE_WEIGHTS]
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


#: the generated family: completion prompts for the packaged Gemma 3 270M (a base model: a
#: numbered list to continue); its line 4 is the paraphrase
PARA_PROMPTS = {
    "ml-100k": ("Different ways to ask for a {a} movie:\n1. I want to watch a {a} movie.\n"
                "2. Can you recommend a good {a} film?\n3. Any {a} movies for tonight?\n4."),
    "b1": ("Different ways to ask for a book by an author:\n1. I want to read a book by {a}.\n"
           "2. Do you have any novels from {a}?\n3. Show me something {a} wrote.\n4."),
}
#: Book-Crossing: paraphrase templates are generated for these names, then the name becomes {a}
SEED_AUTHORS = ["Stephen King", "Agatha Christie", "John Grisham", "Nora Roberts", "Dean Koontz"]
N_GENERATED = 20


def _norm(t: str) -> str:
    return " ".join("".join(c for c in t.lower() if c.isalnum() or c.isspace()).split())


def acceptable(line: str, a: str, prompt: str) -> str | None:
    """None if `line` is a usable paraphrase of a request naming `a`, else why not."""
    words = line.split()
    if len(words) < 3 or len(words) > 25:
        return "length"
    if sum(c.isascii() for c in line) < 0.95 * len(line):
        return "not English text"
    if a.lower() not in line.lower():
        return "drops the attribute"
    examples = {_norm(x.split(". ", 1)[-1]) for x in prompt.splitlines()[1:]}
    if _norm(line) in examples:
        return "copies an example"
    return None


def generate_paraphrases(dataset: str, values: list[str], regenerate: bool = False) -> dict:
    """Paraphrases from the packaged generator, cached in bench/results/intent_paraphrases_<dataset>.json:
    MovieLens: one per genre (4 tries each); Book-Crossing: up to N_GENERATED templates (a request
    for a book by a seed author, the name then replaced by {a}). Rejected lines are kept with why."""
    path = RESULTS / f"intent_paraphrases_{dataset}.json"
    if path.exists() and not regenerate:
        cached = json.loads(path.read_text())
        if dataset == "b1" or set(values) <= set(cached["paraphrases"]):
            return cached
    from longrec.lm.generators import get_generator

    gen = get_generator("llama-cpp", temperature=0.8)
    t0 = time.perf_counter()
    out: dict = {"provenance": provenance(), "generator": "llama-cpp (packaged Gemma 3 270M), temperature 0.8",
                 "prompt": PARA_PROMPTS[dataset], "paraphrases": {}, "rejected": [], "calls": 0}

    def one(a: str, seed: int) -> tuple[str, str | None]:
        gen.settings = gen.settings.model_copy(update={"seed": seed})
        prompt = PARA_PROMPTS[dataset].format(a=a)
        line = gen.generate(prompt, max_tokens=28).strip()
        out["calls"] += 1
        return line, acceptable(line, a, prompt)

    if dataset == "ml-100k":
        for a in values:
            for seed in range(4):
                line, why = one(a, seed)
                if why is None:
                    out["paraphrases"][a] = line
                    break
                out["rejected"].append({"attribute": a, "text": line, "why": why})
    else:
        templates: list[str] = []
        for seed in range(3 * N_GENERATED):
            a = SEED_AUTHORS[seed % len(SEED_AUTHORS)]
            line, why = one(a, seed)
            if why is None:
                import re

                t = re.sub(re.escape(a), "{a}", line, flags=re.I).replace("{a}'s", "{a}'s")
                if t.replace("{a}", "").count("{") == 0 and t not in templates:
                    templates.append(t)
            else:
                out["rejected"].append({"attribute": a, "text": line, "why": why})
            if len(templates) >= N_GENERATED:
                break
        out["paraphrases"] = {str(j): t for j, t in enumerate(templates)}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    return out


def phrasers(dataset: str, values: list[str], generated: bool, regenerate: bool = False) -> tuple[dict, dict, dict]:
    """({family: f(user, attribute) -> query}, {family: label}, generation record)."""
    fams = {f: (lambda u, a, t=t: t.format(a=a)) for f, t in TEMPLATES[dataset].items()}
    labels = {f: f"`{t}`" for f, t in TEMPLATES[dataset].items()}
    rec: dict = {}
    if generated:
        rec = generate_paraphrases(dataset, values, regenerate)
        para = rec["paraphrases"]
        if dataset == "ml-100k":
            fallback = TEMPLATES[dataset]["want"]
            fams["generated"] = lambda u, a: para.get(a) or fallback.format(a=a)
            labels["generated"] = (f"Gemma 3 270M, one per genre ({sum(a in para for a in values)} of {len(values)} "
                                   f"generated, the rest fall back to `want`)")
        elif para:
            tl = [para[k] for k in sorted(para, key=int)]
            fams["generated"] = lambda u, a: tl[hash_user(u) % len(tl)].format(a=a)
            labels["generated"] = f"Gemma 3 270M, {len(tl)} generated templates, one per user"
    return fams, labels, rec


def hash_user(u) -> int:
    import zlib

    return zlib.crc32(str(u).encode())


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


class _Scorer:
    """NDCG@10 and attribute share straight from score rows (the valid grid: no DataFrames);
    the same figures `ndcg(_recs(...))` and `attr_share(_recs(...))` give."""

    def __init__(self, model, ids, hist, truth: dict, attrs: dict):
        n_items = len(model.vocab_.items.ids)
        self.seen = (np.repeat(np.arange(len(hist)), hist.lengths()), hist.indices)
        self.rel = np.zeros((len(ids), n_items), dtype=bool)
        self.has = np.zeros((len(ids), n_items), dtype=bool)
        by_attr: dict[str, np.ndarray] = {}
        item_ids = model.vocab_.items.ids
        for r, u in enumerate(ids):
            a, items = truth[u]
            j = model.vocab_.items.lookup(list(items))
            self.rel[r, j[j >= 0]] = True
            if a not in by_attr:
                by_attr[a] = np.array([a in attrs.get(i, []) for i in item_ids], dtype=bool)
            self.has[r] = by_attr[a]
        disc = 1.0 / np.log2(np.arange(2, 12))
        self.disc = disc
        self.ideal = np.array([disc[:min(len(truth[u][1]), 10)].sum() for u in ids])

    def __call__(self, F: np.ndarray) -> tuple[float, float]:
        from longrec.topk import topk

        F = F.copy()
        F[self.seen] = -np.inf
        top, vals = topk(F, 10)
        ok = np.isfinite(vals)
        rows = np.arange(len(F))[:, None]
        hits = self.rel[rows, top] & ok
        nd = (hits * self.disc[:top.shape[1]]).sum(1) / np.where(self.ideal > 0, self.ideal, 1.0)
        share = float(self.has[rows, top][ok].mean()) if ok.any() else 0.0
        return float(nd.mean()), share


def run_grid(model, hist, truth_df, attrs, fams, grid, encoder) -> dict:
    """Valid-stage grid search: the model's scores and the query similarities once per phrasing,
    then `longrec.models.intent.fuse` (the library's own fusion) for every (gate, weight,
    attribute weight)."""
    from longrec.models.intent import attribute_prior, fuse, item_text_vectors, query_vectors

    truth = intents(truth_df, attrs)
    ids, uidx, h = model.histories(list(truth), hist)
    S = model.score_batch(uidx, h).astype(np.float64)
    T = item_text_vectors(model, encoder)
    allowed = np.ones(S.shape[1], dtype=bool)
    score = _Scorer(model, ids, h, truth, attrs)
    out = {"n_users": len(ids), "model-only": score(S)[0], "families": {}}
    for fam, phrase in fams.items():
        texts = [phrase(u, truth[u][0]) for u in ids]
        R = (query_vectors(texts, encoder) @ T.T).astype(np.float64)
        P, _ = attribute_prior(model, texts)
        row = {"text-only": score(R)[0]}
        for g, w, a in grid:
            row[f"fused@{g},{w},{a}"], row[f"share@{g},{w},{a}"] = score(fuse(S, R, allowed, w, g, P, a))
        out["families"][fam] = row
    return out


def run_stage(model, hist: pd.DataFrame, truth_df: pd.DataFrame, attrs: dict, fams: dict, grid,
              encoder: str) -> dict:
    """Test stage, through the library call users make (recommend_with_queries)."""
    from longrec.models.intent import recommend_with_queries

    truth = intents(truth_df, attrs)
    users = list(truth)
    model_only = model.recommend(users=users, histories=hist, k=10)
    out = {"n_users": len(users), "model-only": ndcg(model_only, truth),
           "model-only share": attr_share(model_only, truth, attrs), "families": {}}
    for fam, phrase in fams.items():
        q = {u: phrase(u, truth[u][0]) for u in users}
        # text-only: the query's ranking (the model only breaks exact ties)
        text_only = recommend_with_queries(model, users=users, histories=hist, queries=q, k=10, query_weight=1e6,
                                           query_gate=1.0, encoder=encoder, attribute_weight=0.0)
        row = {"text-only": ndcg(text_only, truth), "text-only share": attr_share(text_only, truth, attrs)}
        for g, w, a in grid:
            fused = recommend_with_queries(model, users=users, histories=hist, queries=q, k=10, query_weight=w,
                                           query_gate=g, encoder=encoder, attribute_weight=a)
            row[f"fused@{g},{w},{a}"] = ndcg(fused, truth)
            row[f"share@{g},{w},{a}"] = attr_share(fused, truth, attrs)
            named = fused.attrs.get("query_attributes", {})
            row[f"named@{g},{w},{a}"] = float(np.mean([bool(named.get(u)) for u in users])) if users else 0.0
        out["families"][fam] = row
    return out


GRIDS = {"ml-100k": GRID,
         # author intents pick far fewer items than a genre: smaller gates and larger weights too
         "wide": [(g, w, a) for g in (0.02, 0.05, 0.1, 0.2, 0.4, 1.0) for w in (0.5, 1.0, 2.0, 4.0)
                  for a in ATTRIBUTE_WEIGHTS]}


def chunked_stage(model, hist, truth_df, attrs, fams, grid, encoder, chunk: int = 1000) -> dict:
    """run_stage over users in chunks (memory: users x items rows), averaged by user count."""
    users = sorted(intents(truth_df, attrs), key=str)
    if len(users) <= chunk:
        return run_stage(model, hist, truth_df, attrs, fams, grid, encoder)
    parts = []
    for i in range(0, len(users), chunk):
        part = truth_df[truth_df["user_id"].isin(set(users[i:i + chunk]))]
        parts.append(run_stage(model, hist, part, attrs, fams, grid, encoder))
    n = np.array([p["n_users"] for p in parts], dtype=float)
    avg = lambda vals: float(np.dot(vals, n) / n.sum())  # noqa: E731
    out = {"n_users": int(n.sum()), "model-only": avg([p["model-only"] for p in parts]),
           "model-only share": avg([p["model-only share"] for p in parts]), "families": {}}
    for fam in parts[0]["families"]:
        out["families"][fam] = {k: avg([p["families"][fam][k] for p in parts]) for k in parts[0]["families"][fam]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="ml-100k", choices=["ml-100k", "b1"])
    ap.add_argument("--model", default="lm-linear")
    ap.add_argument("--config", default="{}", help="JSON model config")
    ap.add_argument("--encoder", default="default")
    ap.add_argument("--grid", default="ml-100k", choices=sorted(GRIDS), help="the (gate, weight) grid searched on valid")
    ap.add_argument("--valid-users", type=int, default=2000, help="valid users sampled for the grid (seed 0)")
    ap.add_argument("--test-users", type=int, default=None, help="test users sampled (seed 0); default: all")
    ap.add_argument("--generated", action="store_true", help="add the generated-paraphrase family (packaged Gemma)")
    ap.add_argument("--regenerate", action="store_true", help="generate the paraphrases again (else the cached JSON)")
    args = ap.parse_args()
    from longrec.models import get_model_class

    t0 = time.perf_counter()
    grid = GRIDS[args.grid]
    train, parts, attrs, items = load(args.dataset)
    values = sorted({a for p in ("valid", "test") for a, _ in intents(parts[p], attrs).values()})
    fams, labels, gen_rec = phrasers(args.dataset, values, args.generated, args.regenerate)
    model = get_model_class(args.model)(json.loads(args.config)).fit(train)
    vusers = sorted(intents(parts["valid"], attrs), key=str)
    if len(vusers) > args.valid_users:
        keep = set(np.random.default_rng(0).choice(np.array(vusers, dtype=object), args.valid_users, replace=False))
        vtruth = parts["valid"][parts["valid"]["user_id"].isin(keep)]
    else:
        vtruth = parts["valid"]
    valid = run_grid(model, None, vtruth, attrs, fams, grid, args.encoder)
    mean_valid = {gw: np.mean([r["fused@{},{},{}".format(*gw)] for r in valid["families"].values()]) for gw in grid}
    best = max(grid, key=lambda gw: mean_valid[gw])
    best0 = max((gw for gw in grid if gw[2] == 0.0), key=lambda gw: mean_valid[gw])  # without the prior
    key, key0 = "{},{},{}".format(*best), "{},{},{}".format(*best0)
    ttruth = parts["test"]
    tusers = sorted(intents(ttruth, attrs), key=str)
    if args.test_users is not None and len(tusers) > args.test_users:
        keep = set(np.random.default_rng(0).choice(np.array(tusers, dtype=object), args.test_users, replace=False))
        ttruth = ttruth[ttruth["user_id"].isin(keep)]
    test = chunked_stage(model, parts["valid"], ttruth, attrs, fams, list(dict.fromkeys([best, best0])), args.encoder)
    rec = {"provenance": provenance(), "dataset": args.dataset, "model": args.model, "config": json.loads(args.config),
           "encoder": args.encoder, "grid_on_valid": {f"gate {g}, weight {w}, attribute {a}": round(v, 4) for (g, w, a), v in mean_valid.items()},
           "chosen": {"query_gate": best[0], "query_weight": best[1], "attribute_weight": best[2]},
           "chosen_without_prior": {"query_gate": best0[0], "query_weight": best0[1]}, "valid": valid, "test": test,
           "phrasings": labels, "generated": gen_rec.get("paraphrases"),
           "generation": {k: gen_rec.get(k) for k in ("generator", "calls", "seconds")} if gen_rec else None,
           "rejected_generations": len(gen_rec.get("rejected", [])) if gen_rec else None,
           "seconds": round(time.perf_counter() - t0, 1)}
    RESULTS.mkdir(exist_ok=True)
    stem = f"intent_{args.dataset}_{args.model}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(rec, indent=2, default=float))
    attr = {"ml-100k": "genre", "b1": "author"}[args.dataset]
    md = [f"# Intent benchmark: {args.dataset}, {args.model}", "", md_line(rec["provenance"]), "",
          f"Intent: the {attr} most common among each user's held-out items; truth: those items with it. "
          f"Gate, weight and attribute weight chosen on valid ({valid['n_users']} users) by mean NDCG@10 over "
          f"phrasings: query_gate = {best[0]}, query_weight = {best[1]}, attribute_weight = {best[2]} (best valid "
          f"means: " + ", ".join(f"{g}/{w}/{a}: {v:.4f}" for (g, w, a), v in
                                 sorted(mean_valid.items(), key=lambda t: -t[1])[:6])
          + f"; without the attribute prior the best is {best0[0]}/{best0[1]}: {mean_valid[best0]:.4f}; all "
          f"{len(grid)} in the JSON). Test, {test['n_users']} users (model-only top-10 with the attribute: "
          f"{test['model-only share']:.0%}). text-only: the query's embedding alone; fused, no prior: "
          f"attribute_weight 0 at its own best gate/weight on valid; named: users whose sentence named a "
          f"catalogue attribute:", "",
          "| phrasing | text-only | model-only | fused, no prior | fused | fused / best single | "
          "fused top-10 with the attribute | named |",
          "|---|---|---|---|---|---|---|---|"]
    for fam, r in test["families"].items():
        f = r[f"fused@{key}"]
        single = max(r["text-only"], test["model-only"])
        md.append(f"| {fam} ({labels[fam]}) | {r['text-only']:.4f} | {test['model-only']:.4f} | "
                  f"{r[f'fused@{key0}']:.4f} | **{f:.4f}** | {f / single:.2f}x | {r[f'share@{key}']:.0%} | "
                  f"{r[f'named@{key}']:.0%} |")
    if gen_rec:
        md += ["", f"Generated paraphrases: {gen_rec.get('generator')}, {gen_rec.get('calls')} calls "
               f"({gen_rec.get('seconds')} s), {len(gen_rec.get('rejected', []))} lines rejected (too short/long, "
               f"dropping the attribute, copying an example); kept lines and rejects are in "
               f"`bench/results/intent_paraphrases_{args.dataset}.json`. Examples: "
               + "; ".join(f"\"{v}\"" for v in list(gen_rec["paraphrases"].values())[:4]) + "."]
    (RESULTS / f"{stem}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    sys.exit(main())
