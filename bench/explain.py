"""Faithfulness of explanations (deletion / sufficiency tests) on ml-100k P1, and the LLM
grounding audit.

    LONGREC_DATA_DIR=../shared/datasets python bench/explain.py [--model ease] [--llm 500]

For every test user, the model (trained on train, λ tuned on valid) recommends a top-10 from
train + valid; every (user, item) of those lists is explained by `longrec.explain` and its
cited history items C (the "because" list, the m strongest positive contributors) are tested:

* PN (probability of necessity): remove C from the model's input; the item leaves the top-10.
* PS (probability of sufficiency): keep only C as the input; the item stays in the top-10.
* random baseline: the same with a random subset of the user's history of the same size.

Items of the full original history stay excluded from every re-ranked list (the user has
consumed them), so only the model input changes. Rescoring goes through the model's own
scoring function (`_scores_with_fallback` on modified histories), so any model can be run.

--llm N: explain N (user, item) pairs with the local Gemma 3 270M (llama.cpp) and count how
many of its texts the grounding check rejects (those are replaced by the template text).

Writes bench/results/explain.json and bench/results/explain.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from _provenance import md_line, provenance, stamp

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"


def load_protocol(protocol: str = "p1"):
    from longrec.data.registry import load_split

    return load_split("ml-100k", protocol, download=False)


def rescore_ranks(model, rows: list[np.ndarray], targets: np.ndarray, exclude: list[np.ndarray],
                  batch: int = 2048) -> np.ndarray:
    """0-based rank of targets[r] when the model's input is rows[r], among items not in exclude[r]
    (ties: lower item index first, as in recommend())."""
    from longrec.explain.attribution import _batch

    n_items = len(model.vocab_.items)
    out = np.empty(len(rows), dtype=np.int64)
    for s in range(0, len(rows), batch):
        e = min(len(rows), s + batch)
        sc = np.array(model._scores_with_fallback(np.full(e - s, -1), _batch(rows[s:e], n_items)), dtype=np.float64)
        ex_rows = np.repeat(np.arange(e - s), [len(x) for x in exclude[s:e]])
        sc[ex_rows, np.concatenate(exclude[s:e])] = -np.inf
        t = targets[s:e]
        ts = sc[np.arange(e - s), t][:, None]
        idx = np.arange(n_items)[None, :]
        out[s:e] = ((sc > ts) | ((sc == ts) & (idx < t[:, None]))).sum(axis=1)
    return out


def faithfulness(model, split, ms=(1, 3, 5), k=10, seed=0, max_users=None) -> dict:
    from longrec.explain.attribution import history_weights, user_history

    test_users = np.sort(split["test"].interactions["user_id"].unique())
    if max_users:
        test_users = test_users[:max_users]
    valid = split["valid"].interactions
    recs = model.recommend(users=test_users, histories=valid, k=k)
    rng = np.random.default_rng(seed)
    hists = {}
    cases = []   # (hist, target, order of positive weights)
    t0 = time.perf_counter()
    for u, item in recs[["user_id", "item_id"]].itertuples(index=False):
        if u not in hists:
            hists[u] = user_history(model, u, valid[valid.user_id == u])
        uidx, h = hists[u]
        t = int(model.vocab_.items.index([item], "item")[0])
        w, method = history_weights(model, uidx, h, t)
        order = np.argsort(-w, kind="stable")
        order = order[w[order] > 0]
        cases.append((h, t, order))
    t_attr = time.perf_counter() - t0
    res: dict = {"pairs": len(cases), "users": int(len(test_users)), "k": k, "attribution": method,
                 "attribution_seconds": round(t_attr, 2)}
    for m in ms:
        rows_pn, rows_ps, rows_rpn, rows_rps, tg, ex, ok = [], [], [], [], [], [], []
        for h, t, order in cases:
            if len(order) < 1:
                ok.append(False)
                continue
            ok.append(True)
            cited = order[:m]
            mask = np.ones(len(h), dtype=bool)
            mask[cited] = False
            rows_pn.append(h[mask])
            rows_ps.append(h[~mask])
            rnd = rng.choice(len(h), size=len(cited), replace=False)
            rmask = np.ones(len(h), dtype=bool)
            rmask[rnd] = False
            rows_rpn.append(h[rmask])
            rows_rps.append(h[~rmask])
            tg.append(t)
            ex.append(h)
        tg = np.array(tg)
        r_pn = rescore_ranks(model, rows_pn, tg, ex)
        r_ps = rescore_ranks(model, rows_ps, tg, ex)
        r_rpn = rescore_ranks(model, rows_rpn, tg, ex)
        r_rps = rescore_ranks(model, rows_rps, tg, ex)
        n_cited = np.array([min(m, len(o)) for (h, t, o), g in zip(cases, ok) if g])
        pn, rpn = float((r_pn >= k).mean()), float((r_rpn >= k).mean())
        res[f"m={m}"] = {"explained_pairs": int(len(tg)), "mean_cited": float(n_cited.mean()),
                         "PN": pn, "PN_random": rpn, "PN_ratio": pn / rpn if rpn > 0 else None,
                         "PS": float((r_ps < k).mean()), "PS_random": float((r_rps < k).mean())}
        print(json.dumps({f"m={m}": res[f"m={m}"]}), flush=True)
    return res


def llm_audit(model, split, n: int, seed: int = 0, out_path: Path | None = None) -> dict:
    from longrec.explain.core import (checker_of, explanation_facts, generate_line, get_explain_generator,
                                      grounded_text)
    from longrec.lm.prompts import build_prompt

    gen, name = get_explain_generator("local")
    valid = split["valid"].interactions
    users = np.sort(split["test"].interactions["user_id"].unique())
    rng = np.random.default_rng(seed)
    users = rng.choice(users, size=min(n, len(users)), replace=False)
    recs = model.recommend(users=users, histories=valid, k=10)
    pairs = recs.groupby("user_id").head(1)[["user_id", "item_id"]].to_numpy()
    extra = recs[recs["rank"] == 2][["user_id", "item_id"]].to_numpy()
    pairs = np.concatenate([pairs, extra])[:n]
    chk = checker_of(model)
    shown_bad = rejected = done = 0
    examples = {"accepted": [], "rejected": []}
    t0 = time.perf_counter()
    for u, i in pairs:
        f = explanation_facts(model, u, i, valid[valid.user_id == u])
        raw = generate_line(gen, build_prompt("explain", f["facts"]), max_tokens=40)
        text, ok, bad = grounded_text("explain", f["facts"], _Replay(raw), chk)
        rejected += not ok
        shown_bad += bool(chk.check(text, f["facts"]))   # must stay 0: what reaches the user
        key = "accepted" if ok else "rejected"
        if len(examples[key]) < 5:
            examples[key].append({"facts": f["facts"], "generated": raw, "violations": bad, "shown": text})
        done += 1
        res = {"generator": "llama-cpp (packaged Gemma 3 270M, greedy, 1 thread)", "planned": int(len(pairs)),
               "explanations": done, "rejected": int(rejected), "rejection_rate": rejected / done,
               "ungrounded_shown": int(shown_bad), "seconds": round(time.perf_counter() - t0, 1),
               "examples": examples}
        if out_path is not None and (done % 10 == 0 or done == len(pairs)):
            out_path.write_text(json.dumps(res, indent=2, default=str))   # partial results survive a stop
    return res


class _Replay:
    """Hands an already generated text to grounded_text (so the raw text can be logged)."""

    def __init__(self, text: str):
        self.text = text

    def generate(self, prompt, max_tokens=60, stop=None):
        return self.text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="ease")
    ap.add_argument("--ms", default="1,3,5")
    ap.add_argument("--max-users", type=int, default=None)
    ap.add_argument("--llm", type=int, default=0,
                    help="run only the grounding audit of N explanations by the local Gemma (0 = faithfulness)")
    ap.add_argument("--out", default=str(RESULTS / "explain"))
    ap.add_argument("--protocol", default="p1", choices=["p1", "p2"])
    ap.add_argument("--config", default="{}", help="JSON config overrides for the model")
    args = ap.parse_args()
    P = args.protocol.upper()
    if not os.environ.get("LONGREC_DATA_DIR"):
        sys.exit("set LONGREC_DATA_DIR to the shared datasets folder")
    from longrec.models.registry import get_model_class

    split = load_protocol(args.protocol)
    t0 = time.perf_counter()
    model = get_model_class(args.model)(json.loads(args.config)).fit(split["train"], split["valid"])
    fit_s = time.perf_counter() - t0
    print(f"fit {args.model} in {fit_s:.1f} s {model.fit_info_}", flush=True)
    out = {"dataset": "ml-100k", "protocol": P, "model": args.model, "fit_info": model.fit_info_,
           "fit_seconds": round(fit_s, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.llm:  # the LLM audit alone: bench/results/explain_llm.{json,md}
        g = llm_audit(model, split, args.llm, out_path=Path(args.out + "_llm.json"))
        g = {**out, **g}
        prov = provenance()
        Path(args.out + "_llm.json").write_text(json.dumps(stamp(g, prov), indent=2, default=str))
        md = (f"# Grounding audit of LLM explanations, ml-100k {P}, {args.model}\n\nProduced by `python bench/explain.py "
              f"--llm {args.llm}`. {g['generator']}: {g['explanations']} explanations, {g['rejected']} rejected by the "
              f"grounding check ({g['rejection_rate']:.1%}) and replaced by the template; ungrounded texts shown to "
              f"the user: {g['ungrounded_shown']}. Examples of both kinds are in explain_llm.json.\n\n{md_line(prov)}\n")
        Path(args.out + "_llm.md").write_text(md)
        print(md)
        return
    out["faithfulness"] = faithfulness(model, split, ms=[int(x) for x in args.ms.split(",")],
                                       max_users=args.max_users)
    prov = provenance()
    Path(args.out + ".json").write_text(json.dumps(stamp(out, prov), indent=2, default=str))
    lines = [f"# Explanation faithfulness, ml-100k {P}, {args.model}", "", md_line(prov), "",
             f"Produced by `python bench/explain.py --protocol {args.protocol} --model {args.model}"
             f"{' --max-users ' + str(args.max_users) if args.max_users else ''}`. Top-10 lists of every test user (history = train + valid); "
             "each (user, item) explained; cited = the m strongest positive history contributors. "
             "PN: removing them drops the item from the top-10; PS: they alone keep it in the top-10. "
             "Random: a random history subset of the same size.", "",
             "| m | pairs | PN | PN random | PN / random | PS | PS random |", "|---|---|---|---|---|---|---|"]
    for key, v in out["faithfulness"].items():
        if key.startswith("m="):
            ratio = f"{v['PN_ratio']:.1f}x" if v["PN_ratio"] else "n/a"
            lines.append(f"| {key[2:]} | {v['explained_pairs']} | {v['PN']:.3f} | {v['PN_random']:.3f} | {ratio} | "
                         f"{v['PS']:.3f} | {v['PS_random']:.3f} |")
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
