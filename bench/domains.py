"""Book-Crossing B1 through the command line only: train on train.csv (valid.csv for tuning),
recommend for the test users with train + valid as history, evaluate on test.csv.

    LONGREC_DATA_DIR=../shared/datasets nice python bench/domains.py [--rows pop,itemknn,ease]

Each row records its three commands, the fit's wall seconds and peak RSS (GNU time), and test
NDCG@10 / Recall@10. Rows are appended to bench/results/domains_runs.jsonl as they finish;
bench/results/domains.{json,md} are rewritten from all rows run at this commit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _provenance import provenance

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PEERS = {"MostPopular": 0.0169, "ItemKNN cosine (k=20 from 10..100)": 0.0771,
         "EASE (λ=50 from 5..100)": 0.0745, "implicit ALS": 0.0468, "LightFM WARP+features": 0.0431}

# row name -> (model, config TOML text or None)
ROWS = {
    "pop": ("pop", None),
    "itemknn": ("itemknn", None),
    "ease": ("ease", None),
    "bpr": ("bpr", "epochs = 30\n"),
    "lm-linear-dp": ("lm-linear-dp", None),
    "lm-linear-dp:iw4": ("lm-linear-dp", "dim = 256\nl2 = 20.0\nclip = 2.0\nbias = 2.0\nitem_weight = 4.0\n"),
    "blend:itemknn+lm-linear-dp": ("blend", 'normalize = "zscore"\nweight_step = 0.05\n[[models]]\nname = "itemknn"\n'
                                   '[[models]]\nname = "lm-linear-dp"\nconfig = { dim = 256, l2 = 20.0, clip = 2.0, '
                                   'bias = 2.0, item_weight = 4.0 }\n'),
    # members fixed at the values the single-model rows chose on valid (λ 66.8335, k 20); weights tuned on valid
    "blend:ease+itemknn": ("blend", 'normalize = "zscore"\nweight_step = 0.05\n[[models]]\nname = "ease"\n'
                           'config = { l2 = 66.8335, tune_l2 = false }\n[[models]]\nname = "itemknn"\n'
                           'config = { k = 20, tune_k = false }\n'),
    "blend:ease+itemknn+lm-linear-dp": ("blend", 'normalize = "zscore"\nweight_step = 0.1\n[[models]]\nname = "ease"\n'
                                        'config = { l2 = 66.8335, tune_l2 = false }\n[[models]]\nname = "itemknn"\n'
                                        'config = { k = 20, tune_k = false }\n[[models]]\nname = "lm-linear-dp"\n'
                                        'config = { dim = 256, l2 = 20.0, clip = 2.0, bias = 2.0, item_weight = 4.0 }\n'),
}


def _run(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """(wall s, peak RSS MB, stderr) of a command under GNU time."""
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-3000:]}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    return wall, (int(m.group(1)) / 1024 if m else float("nan")), p.stderr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--data", default=os.environ.get("LONGREC_DATA_DIR", str(HERE.parents[1] / "shared" / "datasets")))
    ap.add_argument("--work", default=None, help="folder for models and recommendation files")
    args = ap.parse_args()
    split = Path(args.data) / "book-crossing" / "splits" / "b1"
    work = Path(args.work or tempfile.mkdtemp(prefix="domains-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src"), "HF_HUB_OFFLINE": "1"}
    cli = [sys.executable, "-m", "longrec.cli.main"]
    commit = provenance()["commit"]
    log = RESULTS / "domains_runs.jsonl"
    for name in args.rows.split(","):
        model, toml = ROWS[name]
        tag = name.replace(":", "_").replace("+", "_")
        out, recs, metrics = work / tag, work / f"{tag}.recs.csv", work / f"{tag}.metrics.json"
        train = [*cli, "train", "--model", model, "--train", str(split / "train.csv"), "--valid",
                 str(split / "valid.csv"), "--items", str(split / "items.csv"), "--out", str(out)]
        if toml:
            cfg = work / f"{tag}.toml"
            cfg.write_text(toml)
            train += ["--config", str(cfg)]
        rec = [*cli, "recommend", "--model", str(out), "--k", "10", "--users", str(split / "test.csv"),
               "--history", str(split / "valid.csv"), "--output", str(recs)]
        ev = [*cli, "evaluate", "--recs", str(recs), "--truth", str(split / "test.csv"), "--k", "10",
              "--output", str(metrics)]
        fit_s, rss, _ = _run(train, env)
        rec_s, _, _ = _run(rec, env)
        ev_s, _, _ = _run(ev, env)
        res = json.loads(metrics.read_text())
        met = res.get("metrics", res)
        meta = json.loads((out / "meta.json").read_text())
        row = {"row": name, "model": model, "config": toml, "commit": commit,
               "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "ndcg@10": met["NDCG@10"], "recall@10": met["Recall@10"], "fit_wall_s": round(fit_s, 1),
               "fit_peak_rss_mb": round(rss), "recommend_s": round(rec_s, 1), "evaluate_s": round(ev_s, 1),
               "total_s": round(fit_s + rec_s + ev_s, 1), "fit_info": meta.get("fit_info"),
               "load_average": os.getloadavg(),
               "commands": [" ".join(c[2:]) for c in (train, rec, ev)]}
        with log.open("a") as f:
            f.write(json.dumps(row, default=str) + "\n")
        print(f"{name}: NDCG@10 {row['ndcg@10']:.4f}  fit {row['fit_wall_s']} s  {row['fit_peak_rss_mb']} MB", flush=True)
    write_tables(log)


def write_tables(log: Path) -> None:
    rows = {}
    for line in log.read_text().splitlines():
        r = json.loads(line)
        rows[r["row"]] = r  # the latest run of each row
    (RESULTS / "domains.json").write_text(json.dumps({"rows": list(rows.values()), "peers_ndcg@10": PEERS}, indent=1))
    lines = ["# Book-Crossing B1 (test NDCG@10; tuned on valid; test history = train + valid)", "",
             "Produced by `python bench/domains.py` (CLI only: train, recommend, evaluate per row; commands in "
             "domains.json). Wall seconds are on a shared, heavily loaded 2-core machine (load average in "
             "domains.json); peak RSS is the `longrec train` process.", "",
             "| model | NDCG@10 | Recall@10 | fit s | fit peak RSS MB | total s | load avg at end | chosen on valid |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows.values():
        fi = r.get("fit_info") or {}
        chosen = ", ".join(f"{k}={fi[k]}" for k in ("l2", "k", "weights") if k in fi)
        lines.append(f"| longrec {r['row']} | {r['ndcg@10']:.4f} | {r['recall@10']:.4f} | {r['fit_wall_s']} | "
                     f"{r['fit_peak_rss_mb']} | {r['total_s']} | {r['load_average'][0]:.1f} | {chosen} |")
    for k, v in PEERS.items():
        lines.append(f"| peer: {k} | {v:.4f} | | | | | | |")
    first = next(iter(rows.values()))
    lines += ["", f"Commit {first['commit'][:10]}, {first['date'][:10]}. Per-row commands: domains.json."]
    (RESULTS / "domains.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
