"""Latency of fused `/recommend` (a user plus a sentence), sequential, in-process (FastAPI's
TestClient: the whole request path minus the socket) on an ml-100k P1 model.

Twenty intents are cycled over test users; each query's embedding is computed on its first use
and served from the serving state's LRU afterwards (the first-use latency is reported apart).
The plain history-only `/recommend` is measured in the same run as the baseline.

    LONGREC_DATA_DIR=/work/shared/datasets nice python bench/intent_serve.py --model lm-linear
    # -> bench/results/intent_serve_ml-100k_lm-linear.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _provenance import md_line, provenance

RESULTS = Path(__file__).resolve().parent / "results"
INTENTS = ["a funny comedy", "something scary", "a romantic film for tonight", "science fiction in space",
           "a gripping thriller", "an animated movie for children", "a war drama", "a classic western",
           "a musical", "a crime story with gangsters", "a documentary", "film noir", "an action adventure",
           "a mystery to solve", "a light romantic comedy", "a sad drama", "horror with monsters",
           "a fantasy adventure", "an old black and white classic", "a movie about friendship"]


def pct(xs, q) -> float:
    return float(np.percentile(np.asarray(xs) * 1000.0, q))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="lm-linear")
    ap.add_argument("--n", type=int, default=1000, help="timed requests per kind")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from intent import load

    from fastapi.testclient import TestClient

    from longrec.models import get_model_class
    from longrec.serve import ServeSettings, create_app

    train, parts, _, _ = load("ml-100k")
    tmp = Path(tempfile.mkdtemp())
    get_model_class(args.model)({}).fit(train).save(tmp / "m")
    app = create_app(tmp / "m", db_url=f"sqlite:///{tmp / 'events.db'}", settings=ServeSettings(api_key=""))
    c = TestClient(app)
    users = [int(u) for u in parts["test"]["user_id"].unique()]
    rng = np.random.default_rng(0)

    def post(body):
        t0 = time.perf_counter()
        r = c.post("/recommend", json=body)
        dt = time.perf_counter() - t0
        assert r.status_code == 200, r.text
        return dt, r.json()

    first, sig = [], None
    for q in INTENTS:  # first use of each query: encoder call (+ item vectors on the very first)
        dt, body = post({"user_id": users[0], "text": q, "k": 10})
        first.append(dt)
        sig = body["signals"]
    for _ in range(100):  # warm-up
        post({"user_id": int(rng.choice(users)), "text": INTENTS[int(rng.integers(len(INTENTS)))], "k": 10})
    fused, plain = [], []
    for j in range(args.n):  # interleaved, so both see the same machine load
        u = int(rng.choice(users))
        fused.append(post({"user_id": u, "text": INTENTS[j % len(INTENTS)], "k": 10})[0])
        plain.append(post({"user_id": u, "k": 10})[0])
    res = {"provenance": provenance(), "model": args.model, "n": args.n, "signals": sig,
           "fused_ms": {"p50": pct(fused, 50), "p95": pct(fused, 95), "p99": pct(fused, 99)},
           "plain_ms": {"p50": pct(plain, 50), "p95": pct(plain, 95), "p99": pct(plain, 99)},
           "first_use_ms": {"first request (item vectors + query)": first[0] * 1000,
                            "median over the 20 first uses": pct(first, 50)},
           "cpu_count": os.cpu_count()}
    RESULTS.mkdir(exist_ok=True)
    stem = f"intent_serve_ml-100k_{args.model}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(res, indent=2))
    f, p = res["fused_ms"], res["plain_ms"]
    md = [f"# Fused /recommend latency: ml-100k P1, {args.model}", "", md_line(res["provenance"]), "",
          f"Sequential, in-process (TestClient), {args.n} requests per kind interleaved, 20 intents cycled over "
          f"test users (query embeddings from the serving state's LRU after first use), k = 10.", "",
          "| request | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|",
          f"| fused (`user_id` + `text`) | {f['p50']:.2f} | {f['p95']:.2f} | {f['p99']:.2f} |",
          f"| history only (`user_id`) | {p['p50']:.2f} | {p['p95']:.2f} | {p['p99']:.2f} |", "",
          f"First use of a query (encoder call): median {res['first_use_ms']['median over the 20 first uses']:.1f} ms; "
          f"the very first fused request (item text vectors from the embedding cache too): "
          f"{res['first_use_ms']['first request (item vectors + query)']:.0f} ms."]
    (RESULTS / f"{stem}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
