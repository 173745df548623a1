"""How well does the language-model user (longrec.simulate.llm_users) agree with real choices?

For N test users of MovieLens-100K P2 (next item; the held-out item is each user's last rating):
the slate is the held-out item + 9 candidates the user never rated (uniform over the catalogue,
or --candidates popularity: sampled in proportion to training popularity, a harder slate), in a
random order. The LLM user sees the user's profile and 10 most recent train+valid items, and
must answer one option number (no "none"); we count how often it picks the held-out item.
References on the same slates:

* chance: 1 / 10;
* the EASE world (`family = "ease"`, fitted on train + valid as in `validate_world`): its MNL
  choice probability of the held-out item (beta = 1, forced choice: the expected hit rate of a
  simulated MNL user), and its argmax;
* the lowrank world, likewise; popularity argmax (the most-rated candidate).

    LONGREC_DATA_DIR=/work/shared/datasets python bench/llm_users.py --users 100
    python bench/llm_users.py --generator openai --base-url http://127.0.0.1:8000 --model gemma3-270m

Writes bench/results/llm_users.{json,md} (command, commit, date; per-condition hit rates with
95 % Wilson intervals, the parse outcome counts, the answer position histogram, seconds/call).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from _provenance import md_line, provenance, stamp


def wilson(k: float, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (round(c - h, 3), round(c + h, 3))


def world_scores(split, family: str, latent_dim: int) -> tuple[np.ndarray, object, object]:
    """(n_users, n_items) true-utility matrix of a world family fitted on train + valid."""
    from longrec.simulate.config import WorldSettings
    from longrec.simulate.world import _quality, world_factors

    seen = pd.concat([split["train"].interactions, split["valid"].interactions], ignore_index=True)
    ds = split["train"].with_interactions(seen)
    vocab = ds.vocabulary()
    s = WorldSettings(family=family, latent_dim=latent_dim)
    U, V = world_factors(ds.matrix(vocab), s)
    A = U @ V.T
    z = (A - A.mean(1, keepdims=True)) / (A.std(1, keepdims=True) + 1e-6)
    return z + s.quality_weight * _quality(seen, vocab.items.ids)[None, :], vocab, ds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--split", default="p2")
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--slate", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--candidates", choices=["uniform", "popularity"], default="uniform")
    ap.add_argument("--history", type=int, default=10)
    ap.add_argument("--answer", choices=["number", "title"], default="number")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--generator", default="llama-cpp", help="llama-cpp (packaged Gemma 3 270M) | openai | template")
    ap.add_argument("--base-url", default="http://127.0.0.1:8000")
    ap.add_argument("--model", default=None)
    ap.add_argument("--endpoint", default="completions")
    ap.add_argument("--out", default="llm_users")
    args = ap.parse_args()
    prov = provenance()
    from longrec.data.registry import load_split
    from longrec.lm.generators import GeneratorSettings, get_generator
    from longrec.models._lm_items import item_texts_for
    from longrec.simulate.llm_users import build_prompt, parse_choice, user_profiles, _short_title

    split = load_split(args.dataset, args.split, download=False)
    S_ease, vocab, ds = world_scores(split, "ease", 64)
    S_low, _, _ = world_scores(split, "lowrank", 24)
    item_ids = vocab.items.ids
    texts = [t[:120] for t in item_texts_for(item_ids, ds.items)]
    titles = [_short_title(t) for t in texts]
    seen = ds.interactions.sort_values("timestamp", kind="stable")
    test = split["test"].interactions.drop_duplicates("user_id")
    rng = np.random.default_rng(args.seed)
    uids = test["user_id"].to_numpy()
    pick_users = np.sort(rng.choice(len(uids), size=min(args.users, len(uids)), replace=False))
    pop = np.bincount(vocab.items.lookup(seen["item_id"].to_numpy()), minlength=len(item_ids)).astype(float)
    profiles = dict(zip(vocab.users.ids, user_profiles(ds.users, vocab.users.ids)))
    hist_by_user = seen.groupby("user_id")["item_id"].agg(list)
    kw = {"backend": "openai", "base_url": args.base_url, "model": args.model, "endpoint": args.endpoint} \
        if args.generator in ("openai", "http") else {"backend": args.generator}
    gen = get_generator(GeneratorSettings(**kw))
    counts, positions = Counter(), Counter()
    rows = []
    t_gen = 0.0
    for k, r in enumerate(pick_users):
        u, target = uids[r], test["item_id"].to_numpy()[r]
        ui = int(vocab.users.lookup(np.array([u]))[0])
        ti = int(vocab.items.lookup(np.array([target]))[0])
        if ui < 0 or ti < 0:
            continue
        rated = set(vocab.items.lookup(np.array(hist_by_user.get(u, [])))) | {ti}
        allowed = np.array([j for j in range(len(item_ids)) if j not in rated])
        p = None if args.candidates == "uniform" else pop[allowed] / pop[allowed].sum()
        cands = rng.choice(allowed, size=args.slate - 1, replace=False, p=p)
        slate = rng.permutation(np.concatenate([[ti], cands]))
        tpos = int(np.flatnonzero(slate == ti)[0])
        hist = [texts[j] for j in vocab.items.lookup(np.array(hist_by_user.get(u, [])[-args.history:]))[::-1] if j >= 0]
        prompt = build_prompt(profiles.get(u, ""), hist, [texts[j] for j in slate], allow_none=False,
                              answer=args.answer)
        g0 = time.perf_counter()
        try:
            raw = gen.generate(prompt, max_tokens=args.max_tokens, stop=["\n\n"])
            res = parse_choice(raw, len(slate), allow_none=False, titles=[titles[j] for j in slate])
        except Exception as e:  # GeneratorError: counted, a miss
            raw, res = f"error: {e}", None
        t_gen += time.perf_counter() - g0
        status = res.status if res is not None else "error"
        counts[status] += 1
        if res is not None and res.index is not None:
            positions[res.index + 1] += 1
        rows_e = {}
        for name, S in (("ease", S_ease), ("lowrank", S_low)):
            s = S[ui, slate].astype(float)
            e = np.exp(s - s.max())
            rows_e[f"{name}_mnl_p"] = float(e[tpos] / e.sum())
            rows_e[f"{name}_argmax_hit"] = bool(np.argmax(s) == tpos)
        rows.append({"user_id": str(u), "target_pos": tpos + 1, "answer": str(raw)[:80], "status": status,
                     "llm_hit": bool(res is not None and res.index == tpos),
                     "pop_argmax_hit": bool(np.argmax(pop[slate]) == tpos), **rows_e})
        if k % 10 == 0:
            print(k, status, repr(str(raw)[:40]), f"{t_gen / (k + 1):.2f} s/call", file=sys.stderr, flush=True)
    df = pd.DataFrame(rows)
    n = len(df)
    valid = df["status"] == "ok"

    def rate(col, mask=None):
        x = df[col] if mask is None else df.loc[mask, col]
        k = float(x.sum())
        return {"rate": round(k / max(len(x), 1), 4), "ci95": wilson(k, len(x)), "n": int(len(x))}

    res = {"dataset": args.dataset, "split": args.split, "users": n, "slate": args.slate, "seed": args.seed,
           "candidates": args.candidates, "history": args.history, "answer": args.answer, "generator": gen.identity,
           "chance": round(1 / args.slate, 4),
           "llm_hit_rate": rate("llm_hit"), "llm_hit_rate_valid_answers": rate("llm_hit", valid),
           "ease_world_mnl_expected_hit_rate": round(float(df["ease_mnl_p"].mean()), 4),
           "ease_world_argmax_hit_rate": rate("ease_argmax_hit"),
           "lowrank_world_mnl_expected_hit_rate": round(float(df["lowrank_mnl_p"].mean()), 4),
           "lowrank_world_argmax_hit_rate": rate("lowrank_argmax_hit"),
           "popularity_argmax_hit_rate": rate("pop_argmax_hit"),
           "parse_counts": dict(counts), "valid_share": round(float(valid.mean()), 4),
           "answer_positions": {str(k): positions[k] for k in sorted(positions)},
           "target_positions": {str(k): int(v) for k, v in sorted(Counter(df["target_pos"]).items())},
           "seconds_per_call": round(t_gen / max(n, 1), 2),
           "examples": df[["user_id", "target_pos", "answer", "status", "llm_hit"]].head(10).to_dict("records")}
    out = Path(__file__).resolve().parent / "results"
    (out / f"{args.out}.json").write_text(json.dumps(stamp(res, prov), indent=2, default=str), encoding="utf-8")
    h = res["llm_hit_rate"]
    lines = [f"# Language-model users vs real held-out choices ({args.dataset} {args.split}, {n} users)", "",
             md_line(prov), "",
             f"Slate: the user's held-out (last) item + {args.slate - 1} {args.candidates} candidates the user never "
             f"rated, shuffled; forced choice (no 'none'); the model answers with the option's {args.answer}. Generator: `{gen.identity}`; "
             f"{res['seconds_per_call']} s per call.", "",
             "| chooser | hit rate of the held-out item | 95 % CI |", "|---|---|---|",
             f"| chance | {res['chance']:.3f} | |",
             f"| LLM user (invalid answers count as misses) | {h['rate']:.3f} | {h['ci95']} |",
             f"| LLM user, valid answers only (n = {res['llm_hit_rate_valid_answers']['n']}) | "
             f"{res['llm_hit_rate_valid_answers']['rate']:.3f} | {res['llm_hit_rate_valid_answers']['ci95']} |",
             f"| EASE world, MNL choice (expected) | {res['ease_world_mnl_expected_hit_rate']:.3f} | |",
             f"| EASE world, argmax | {res['ease_world_argmax_hit_rate']['rate']:.3f} | "
             f"{res['ease_world_argmax_hit_rate']['ci95']} |",
             f"| lowrank world, MNL choice (expected) | {res['lowrank_world_mnl_expected_hit_rate']:.3f} | |",
             f"| lowrank world, argmax | {res['lowrank_world_argmax_hit_rate']['rate']:.3f} | "
             f"{res['lowrank_world_argmax_hit_rate']['ci95']} |",
             f"| most popular candidate | {res['popularity_argmax_hit_rate']['rate']:.3f} | "
             f"{res['popularity_argmax_hit_rate']['ci95']} |", "",
             f"Parse outcomes: {dict(counts)} (valid share {res['valid_share']:.2f}). "
             f"Answered positions: {res['answer_positions']}; the held-out item's positions: "
             f"{res['target_positions']}.", ""]
    (out / f"{args.out}.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
