"""RecTools' SASRec under a wall-clock budget, for bench/scale.py's budget comparison.

Runs in its own virtual environment (RecTools is not a longrec dependency):

    python3 -m venv bench/.venv-rectools
    bench/.venv-rectools/bin/pip install torch==2.13.0 'rectools[torch]==0.19.0' pyarrow
    bench/.venv-rectools/bin/python bench/sasrec_budget.py --split DIR --budget 3600 --out DIR/sasrec

DIR holds train.csv / valid.csv / test.csv (user_id, item_id, timestamp; written by
`bench/scale.py budget`). The model is RecTools' SASRecModel with its defaults except
`session_max_len = 200` (softmax loss, 2 blocks, 4 heads, 256 factors, dropout 0.2, lr 1e-3,
batch 128). It trains two epochs at a time (`fit_partial`); after each pair the valid users
are scored (train history, seen items filtered) and NDCG@10 of the held-out valid item is
taken. Everything up to here counts against the budget. When valid improves, the test users
are scored as well (train + valid history) and written out; that scoring is timed and taken
off the clock (it is reporting, not training). The next pair of epochs starts only when the
last pair's time still fits in the budget.

Writes OUT/curve.json (epochs, valid NDCG@10, seconds on the budget clock, per check) and
OUT/test_recs.csv (user_id, item_id, rank) of the best valid check; bench/scale.py scores
those recs with longrec's evaluator.

No longrec import: this file runs where only RecTools is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd


def ndcg_at_10(recs: pd.DataFrame, held: pd.DataFrame) -> float:
    """Mean NDCG@10 of one held-out item per user (users without a hit count 0)."""
    m = recs.merge(held[["user_id", "item_id"]], on=["user_id", "item_id"])
    gains = (1.0 / np.log2(m["rank"].to_numpy() + 1.0)).sum()
    return float(gains / held["user_id"].nunique())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget", type=float, default=3600.0, help="wall-clock budget in seconds")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eval-every", type=int, default=2)
    ap.add_argument("--session-max-len", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-epochs", type=int, default=10_000, help="for a smoke run")
    ap.add_argument("--users", type=int, default=0, help="for a smoke run: keep only the first N users")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    off_clock = 0.0  # test scoring, not counted

    def clock() -> float:
        return time.perf_counter() - t_start - off_clock

    from pytorch_lightning import seed_everything
    from rectools import Columns
    from rectools.dataset import Dataset
    from rectools.models import SASRecModel

    seed_everything(args.seed, workers=True)
    split = Path(args.split)
    parts = {p: pd.read_csv(split / f"{p}.csv", dtype={"user_id": str, "item_id": str}) for p in ("train", "valid", "test")}
    if args.users:
        keep = set(parts["train"]["user_id"].drop_duplicates().head(args.users))
        parts = {p: d[d["user_id"].isin(keep)] for p, d in parts.items()}
    # the files are in split order (per user by timestamp, item_id); a running index is the time,
    # so RecTools sees exactly that order (ml-1m has many equal timestamps)
    full = pd.concat([parts["train"].assign(_p=0), parts["valid"].assign(_p=1)], ignore_index=True)
    full = full.sort_values(["user_id", "_p"], kind="stable").reset_index(drop=True)
    full[Columns.Datetime] = pd.to_datetime(np.arange(len(full)), unit="s")
    full[Columns.Weight] = 1.0
    full = full.rename(columns={"user_id": Columns.User, "item_id": Columns.Item})
    cols = [Columns.User, Columns.Item, Columns.Weight, Columns.Datetime]
    train_ds = Dataset.construct(full[full["_p"] == 0][cols])
    full_ds = Dataset.construct(full[cols])
    valid_users = parts["valid"]["user_id"].unique()
    test_users = parts["test"]["user_id"].unique()
    test_users = test_users[np.isin(test_users, full[Columns.User].unique())]

    model = SASRecModel(session_max_len=args.session_max_len, epochs=args.eval_every, deterministic=False,
                        recommend_n_threads=args.threads, verbose=0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    curve, best, best_epochs, epochs, last_chunk = [], -1.0, 0, 0, 0.0
    while epochs < args.max_epochs:
        if last_chunk and clock() + last_chunk > args.budget:
            break
        c0 = clock()
        model.fit_partial(train_ds, min_epochs=args.eval_every, max_epochs=args.eval_every)
        epochs += args.eval_every
        vr = model.recommend(users=valid_users, dataset=train_ds, k=10, filter_viewed=True)
        vr = vr.rename(columns={Columns.User: "user_id", Columns.Item: "item_id", Columns.Rank: "rank"})
        v = ndcg_at_10(vr, parts["valid"])
        last_chunk = clock() - c0
        curve.append([epochs, round(v, 6), round(clock(), 1)])
        print(json.dumps({"epochs": epochs, "valid_ndcg@10": round(v, 6), "seconds": round(clock(), 1)}), flush=True)
        if v > best:
            best, best_epochs = v, epochs
            t0 = time.perf_counter()
            tr = model.recommend(users=test_users, dataset=full_ds, k=10, filter_viewed=True)
            tr = tr.rename(columns={Columns.User: "user_id", Columns.Item: "item_id", Columns.Rank: "rank"})
            tr[["user_id", "item_id", "rank", "score"]].to_csv(out / "test_recs.csv", index=False)
            off_clock += time.perf_counter() - t0
    info = {"model": "rectools SASRec", "params": {"session_max_len": args.session_max_len, "loss": "softmax",
                                                   "n_blocks": 2, "n_heads": 4, "n_factors": 256, "dropout": 0.2,
                                                   "lr": 1e-3, "batch_size": 128},
            "threads": args.threads, "budget_s": args.budget, "epochs_run": epochs, "best_epoch": best_epochs,
            "valid_ndcg@10": round(best, 6), "valid_curve": curve, "clock_s": round(clock(), 1),
            "test_scoring_s_off_clock": round(off_clock, 1), "wall_s": round(time.perf_counter() - t_start, 1),
            "cpu_s": round(time.process_time(), 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "load_avg_1m_end": os.getloadavg()[0]}
    (out / "curve.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info), flush=True)


if __name__ == "__main__":
    main()
