"""Batch recommendation at 100k items: users/s of `model.recommend` (lm-seq, k = 10) before and
after the float32 ranking + torch.topk change, on the same users in the same process.

    longrec synth --users 100000 --items 100000 --interactions 1000000 --seed 0 --out /tmp/synth-s25
    PYTHONPATH=src python bench/recommend_topk.py --data /tmp/synth-s25 --users 5000 --reps 2

"before" is the code as it was, kept here: a float64 copy of each (1,024 x 100,000) score batch
ranked by numpy's argpartition (`longrec.topk` with its torch path off) and lm-seq's scores
written into a zero matrix; "after" is the library as it is. Runs alternate (before, after,
before, after, ...) so both see the same machine load; the rows of both must be byte-identical
(same users, items, ranks and float64 scores). The model: lm-seq (hash item encoder, 1 thread,
one epoch capped at 45 s, seed 0) on the synthetic train split, trained once into --model.
Writes bench/results/recommend_topk.{json,md}.

`--compare batch` measures the scoring path of batch recommendation at 1M users instead:

    python bench/scale_synthetic.py gen --users 1000000 --items 100000 --interactions 10000000 --out /tmp/synth-10m
    PYTHONPATH=src python bench/recommend_topk.py --compare batch --data /tmp/synth-10m \
        --model /tmp/synth-10m-lmseq --users 5000 --reps 2 --threads 1 [--histories]

"before" is the library as the torch.topk change left it (kept here: the inference-time history
table scanned whole for every batch of 1,024 users, a fresh score matrix per batch, every
history run at max_len positions, torch.topk, object arrays of int user IDs looked up as objects);
"after" is the library as it is (the table matched once and grouped by batch, scores written
into one buffer per call, histories run in length buckets of 16/32/max_len positions, the
segment-maximum top-k, int user IDs looked up as int64 keys; the first two rows, of
2026-12-03T19:07, predate the lookup change and have it on neither side). --histories passes the
train + valid interactions as inference-time history (as `bench/scale_synthetic.py recommend`
and `longrec recommend --history` do). The rows of both must be byte-identical. Each run adds a
row to "batch_runs" in bench/results/recommend_topk.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import md_line, provenance, stamp  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def legacy_topk(self, ids, s, hist, k, exclude_seen, allowed):
    """Recommender._topk before this change (float64 copy; numpy top-k)."""
    from longrec.topk import topk

    s = s.astype(np.float64, copy=True)
    if allowed is not None:
        s[:, ~allowed] = -np.inf
    if exclude_seen and len(hist.indices):
        rows = np.repeat(np.arange(len(hist)), hist.lengths())
        s[rows, hist.indices] = -np.inf
    top, vals = topk(s, k)
    kk = top.shape[1]
    valid = np.isfinite(vals)
    r = np.broadcast_to(np.arange(1, kk + 1), top.shape)
    return pd.DataFrame({
        "user_id": np.repeat(np.asarray(ids, dtype=object), kk)[valid.ravel()],
        "item_id": self.vocab_.items.ids[top[valid]],
        "rank": r[valid].astype(np.int64),
        "score": vals[valid],
    })


def legacy_score(self, users, hist):
    """LMSeq._score before this change (scores written into a zero matrix)."""
    import torch

    rows, h_last = self._last_hidden(hist)
    out = np.zeros((len(users), hist.n_items), dtype=np.float32)
    if len(rows):
        with torch.no_grad():
            out[rows] = (h_last @ self._table[1:].T).numpy()
    return out


def s25_score(self, users, hist):
    """LMSeq._score after the torch.topk change: a fresh product matrix per batch."""
    import torch

    rows, h_last = self._last_hidden(hist)
    with torch.no_grad():
        if len(rows) == len(users):
            return (h_last @ self._table[1:].T).numpy()
        out = np.zeros((len(users), hist.n_items), dtype=np.float32)
        if len(rows):
            out[rows] = (h_last @ self._table[1:].T).numpy()
    return out


def s25_lookup(self, ids):
    """IdMap.lookup before the int64 keys: an object array stays object (and pandas casts the
    whole int64 index to object to match it)."""
    from longrec.data.ids import coerce_like

    if isinstance(ids, (str, int, np.integer)):
        ids = [ids]
    arr = ids.to_numpy() if isinstance(ids, pd.Series) else np.asarray(ids)
    if len(arr) == 0:
        return np.zeros(0, dtype=np.int64)
    if len(arr) <= 32:
        return self._small_lookup(arr)
    if self.kind == "int" and arr.dtype.kind not in "iu":
        arr = coerce_like(arr, "int")
    elif self.kind == "str" and arr.dtype.kind != "O":
        arr = coerce_like(arr, "str")
    return self._index.get_indexer(arr).astype(np.int64)


def run_batch(model, users, k, histories, legacy: bool):
    """model.recommend as the library is ("after") or as the torch.topk change left it."""
    import longrec.models.lm_seq as lm_seq_mod
    import longrec.topk as topk_mod
    from longrec.models.base import Recommender
    from longrec.models.lm_seq import LMSeq

    from longrec.data.vocab import IdMap

    saved = (Recommender.__dict__["_histories_by_batch"], LMSeq.__dict__["_score"], LMSeq.__dict__["_score_into"],
             lm_seq_mod.LAST_HIDDEN_BUCKETS, topk_mod.SEGMENT_MIN_SEGMENTS, IdMap.lookup)
    if legacy:
        IdMap.lookup = s25_lookup
        Recommender._histories_by_batch = staticmethod(lambda ids, extra, bs: (lambda b: extra))
        LMSeq._score = s25_score
        LMSeq._score_into = lambda self, u, h, out: self._score(u, h)
        lm_seq_mod.LAST_HIDDEN_BUCKETS = ()
        topk_mod.SEGMENT_MIN_SEGMENTS = 1 << 40
    try:
        t0 = time.perf_counter()
        recs = model.recommend(users=users, histories=histories, k=k)
        return time.perf_counter() - t0, recs
    finally:
        (Recommender._histories_by_batch, LMSeq._score, LMSeq._score_into, lm_seq_mod.LAST_HIDDEN_BUCKETS,
         topk_mod.SEGMENT_MIN_SEGMENTS, IdMap.lookup) = saved


def run(model, users, k, legacy: bool):
    import longrec.topk as topk_mod
    from longrec.models.base import Recommender
    from longrec.models.lm_seq import LMSeq

    saved = (topk_mod.TORCH_MIN_ENTRIES, Recommender._topk, LMSeq._score)
    if legacy:
        topk_mod.TORCH_MIN_ENTRIES = 1 << 62
        Recommender._topk, LMSeq._score = legacy_topk, legacy_score
    try:
        t0 = time.perf_counter()
        recs = model.recommend(users=users, k=k)
        return time.perf_counter() - t0, recs
    finally:
        topk_mod.TORCH_MIN_ENTRIES, Recommender._topk, LMSeq._score = saved


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/tmp/synth-s25")
    ap.add_argument("--model", default="/tmp/synth-s25-lmseq")
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2, help="torch threads for scoring and torch.topk")
    ap.add_argument("--no-write", action="store_true", help="print only (a smoke run)")
    ap.add_argument("--compare", choices=["topk", "batch"], default="topk",
                    help="topk: the torch.topk change (default); batch: the batch-recommendation scoring path")
    ap.add_argument("--histories", action="store_true", help="--compare batch: train + valid as history")
    a = ap.parse_args()
    prov = provenance()
    if a.compare == "batch":
        return main_batch(a, prov)
    from longrec.models.base import Recommender

    if not Path(a.model).exists():
        from longrec.data.dataset import Dataset
        from longrec.data.readers import read_interactions, read_items
        from longrec.models.lm_seq import LMSeq

        tr = Dataset(read_interactions(Path(a.data) / "train.csv"), read_items(Path(a.data) / "items.csv"))
        LMSeq({"encoder": "hash", "num_threads": 1, "epochs": 1, "max_seconds": 45, "seed": 0}).fit(tr).save(a.model)
    model = Recommender.load(a.model)
    model.config = model.config.model_copy(update={"num_threads": a.threads})
    users = np.random.default_rng(0).choice(model.vocab_.users.ids, a.users, replace=False)
    for legacy in (True, False):  # warm-up (first torch calls, page cache), untimed
        run(model, users[:64], a.k, legacy)
    times = {"before": [], "after": []}
    ref = None
    for _ in range(a.reps):
        for label in ("before", "after"):
            sec, recs = run(model, users, a.k, legacy=label == "before")
            times[label].append(sec)
            if ref is None:
                ref = recs
            same = recs.equals(ref) and recs.to_csv(index=False) == ref.to_csv(index=False)
            if not same:
                raise SystemExit(f"{label}: rows differ from the first run")
            print(f"{label}: {sec:.1f} s, {a.users / sec:.0f} users/s, rows identical", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    res = {"users": a.users, "items": len(model.vocab_.items), "k": a.k, "model": "lm-seq (hash encoder)",
           "batch_size": 1024, "torch_threads": model.config.num_threads, "seconds": times,
           "median_seconds": {k: round(v, 2) for k, v in med.items()},
           "users_per_s": {k: round(a.users / v, 1) for k, v in med.items()},
           "speedup": round(med["before"] / med["after"], 2), "rows_identical": True, "rows": len(ref),
           "load_average": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(res, indent=1))
    if a.no_write:
        return
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "recommend_topk.json"
    batch_runs = json.loads(path.read_text()).get("batch_runs", []) if path.is_file() else []
    doc = {**stamp(res, prov), **({"batch_runs": batch_runs} if batch_runs else {})}
    path.write_text(json.dumps(doc, indent=1) + "\n")
    md = ["# Batch recommendation at 100k items: float32 ranking + torch.topk", "", md_line(prov), "",
          f"lm-seq (hash item encoder) on `longrec synth --users 100000 --items 100000 --interactions 1000000 "
          f"--seed 0`; `model.recommend` for the same {a.users:,} random users, k = {a.k}, batches of 1,024 users, "
          f"{model.config.num_threads} torch thread(s); before and after alternate in one process, {a.reps} runs each "
          f"(medians). Load average at the end: {res['load_average']}.", "",
          "| code | median s | users/s |", "|---|---:|---:|",
          f"| before (float64 copy, numpy argpartition) | {med['before']:.1f} | {res['users_per_s']['before']:,.0f} |",
          f"| after (float32, torch.topk + exact tie repair) | {med['after']:.1f} | {res['users_per_s']['after']:,.0f} |",
          "", f"Speed-up {res['speedup']}x. The {len(ref):,} rows of every run are byte-identical (user, item, rank, "
          "float64 score, same order)."]
    (RESULTS / "recommend_topk.md").write_text("\n".join(md) + "\n")
    if batch_runs:  # the batch-path rows (--compare batch) stay
        write_md(doc)


def train_model(a) -> None:
    from longrec.data.dataset import Dataset
    from longrec.data.readers import read_interactions, read_items
    from longrec.models.lm_seq import LMSeq

    tr = Dataset(read_interactions(Path(a.data) / "train.csv"), read_items(Path(a.data) / "items.csv"))
    LMSeq({"encoder": "hash", "num_threads": 1, "epochs": 1, "max_seconds": 45, "seed": 0}).fit(tr).save(a.model)


def main_batch(a, prov) -> None:
    from longrec.data.readers import read_interactions
    from longrec.models.base import Recommender

    if not Path(a.model).exists():
        train_model(a)
    model = Recommender.load(a.model)
    model.config = model.config.model_copy(update={"num_threads": a.threads})
    users = np.random.default_rng(0).choice(model.vocab_.users.ids, a.users, replace=False)
    hist = None
    if a.histories:
        hist = pd.concat([read_interactions(Path(a.data) / f) for f in ("train.csv", "valid.csv")], ignore_index=True)
    for legacy in (True, False):  # warm-up, untimed
        run_batch(model, users[:64], a.k, None, legacy)
    times = {"before": [], "after": []}
    ref = None
    for _ in range(a.reps):
        for label in ("before", "after"):
            sec, recs = run_batch(model, users, a.k, hist, legacy=label == "before")
            times[label].append(round(sec, 3))
            if ref is None:
                ref = recs
            if not (recs.equals(ref) and recs.to_csv(index=False) == ref.to_csv(index=False)):
                raise SystemExit(f"{label}: rows differ from the first run")
            print(f"{label}: {sec:.1f} s, {a.users / sec:.0f} users/s, rows identical", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    res = {"data": Path(a.data).name, "users": a.users, "items": len(model.vocab_.items),
           "histories": "train + valid" if a.histories else "none (training interactions only)",
           "history_rows": 0 if hist is None else len(hist), "k": a.k, "model": "lm-seq (hash encoder, max_len 50)",
           "batch_size": 1024, "torch_threads": a.threads, "seconds": times,
           "median_seconds": {k: round(v, 2) for k, v in med.items()},
           "users_per_s": {k: round(a.users / v, 1) for k, v in med.items()},
           "speedup": round(med["before"] / med["after"], 2), "rows_identical": True, "rows": len(ref),
           "load_average": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(res, indent=1))
    if a.no_write:
        return
    path = RESULTS / "recommend_topk.json"
    doc = json.loads(path.read_text())
    doc.setdefault("batch_runs", []).append(stamp(res, prov))
    path.write_text(json.dumps(doc, indent=1) + "\n")
    write_md(doc)


def write_md(doc: dict) -> None:
    """recommend_topk.md: the torch.topk table (top-level fields), then the batch-path rows."""
    md_path = RESULTS / "recommend_topk.md"
    text = md_path.read_text()
    head = text.split("\n## Batch recommendation", 1)[0].rstrip("\n")
    lines = [head, "", "## Batch recommendation: the scoring path at 1M users", "",
             "lm-seq (hash item encoder, max_len 50, one epoch capped at 45 s, seed 0) on "
             "`python bench/scale_synthetic.py gen --users 1000000 --items 100000 --interactions 10000000` "
             "(1M users, 100k items); `model.recommend` "
             "for the same random users, k = 10, batches of 1,024 users. \"before\": the library as the torch.topk "
             "change above left it (the inference-time history table scanned whole for every batch, a fresh score "
             "matrix per batch, every history run at max_len positions, torch.topk); \"after\": the history table "
             "matched once and grouped by batch, scores written into one buffer per call, histories run in length "
             "buckets of 16 / 32 / 50 positions, the exact segment-maximum top-k, and (rows after the first two, "
             "which have it on neither side) integer user IDs looked up as int64 keys. Before and after alternate "
             "in one process (medians); the rows of every run are byte-identical (user, item, rank, float64 score, order).",
             "", "| history | users | torch threads | before s | after s | before users/s | after users/s | "
             "speed-up | load average | command, commit, date |", "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in doc.get("batch_runs", []):
        p = r["provenance"]
        lines.append(f"| {r['histories']} ({r['history_rows']:,} rows) | {r['users']:,} | {r['torch_threads']} | "
                     f"{r['median_seconds']['before']} | {r['median_seconds']['after']} | "
                     f"{r['users_per_s']['before']:,.0f} | {r['users_per_s']['after']:,.0f} | {r['speedup']}x | "
                     f"{r['load_average']} | `{p['command']}`; `{p['commit'][:12]}`"
                     f"{' (with uncommitted changes)' if p.get('dirty') else ''}; {p['date']} |")
    notes = [f"- {r['provenance']['date']}: {r['note']}" for r in doc.get("batch_runs", []) if r.get("note")]
    if notes:
        lines += ["", "Notes:", "", *notes]
    md_path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
