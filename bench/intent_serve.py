"""Latency of fused `/recommend` (a user plus a sentence), sequential, in-process (FastAPI's
TestClient: the whole request path minus the socket) on an ml-100k P1 model.

Twenty intents are cycled over test users; each query's embedding is computed on its first use
and served from the serving state's LRU afterwards (the first-use latency is reported apart).
The plain history-only `/recommend` is measured in the same run as the baseline.

    LONGREC_DATA_DIR=/work/shared/datasets nice python bench/intent_serve.py --model lm-linear
    # -> bench/results/intent_serve_ml-100k_lm-linear.{json,md}

With --server the same requests go over loopback to `python -m longrec.serve` (one worker, its
own process) through one keep-alive connection with a minimal client (http.client), which is
what a caller of the service sees; the in-process figures include TestClient's own per-request
machinery (a fresh event-loop portal and thread per request).
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


class _Server:
    """`python -m longrec.serve` on loopback (one worker) and one keep-alive http.client connection."""

    def __init__(self, model_dir: Path, work: Path) -> None:
        import http.client
        import socket
        import subprocess

        with socket.socket() as sk:
            sk.bind(("127.0.0.1", 0))
            self.port = sk.getsockname()[1]
        root = Path(__file__).resolve().parents[1]
        env = {**os.environ, "LONGREC_API_KEY": "", "PYTHONPATH": str(root / "src") + os.pathsep +
               os.environ.get("PYTHONPATH", "")}
        self.log = work / "server.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "longrec.serve", "--model", str(model_dir),
                                      "--db", f"sqlite:///{work / 'server-events.db'}", "--port", str(self.port),
                                      "--workers", "1"], env=env, stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT)
        t0 = time.time()
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/ready")
                if c.getresponse().status == 200:
                    c.close()
                    break
            except OSError:
                pass
            if time.time() - t0 > 300:
                self.proc.kill()
                sys.exit("server not ready after 300 s")
            time.sleep(0.3)
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def post(self, body: dict) -> tuple[int, dict]:
        self.conn.request("POST", "/recommend", body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = self.conn.getresponse()
        return r.status, json.loads(r.read())

    def close(self) -> None:
        import signal

        self.conn.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()


def measure(post, users: list, n: int) -> dict:
    """First uses, warm-up, then n fused and n history-only requests interleaved."""
    rng = np.random.default_rng(0)

    def timed(body):
        t0 = time.perf_counter()
        status, out = post(body)
        dt = time.perf_counter() - t0
        assert status == 200, out
        return dt, out

    first, sig = [], None
    for q in INTENTS:  # first use of each query: encoder call (+ item vectors on the very first)
        dt, body = timed({"user_id": users[0], "text": q, "k": 10})
        first.append(dt)
        sig = body["signals"]
    for _ in range(100):  # warm-up
        timed({"user_id": int(rng.choice(users)), "text": INTENTS[int(rng.integers(len(INTENTS)))], "k": 10})
    fused, plain = [], []
    for j in range(n):  # interleaved, so both see the same machine load
        u = int(rng.choice(users))
        fused.append(timed({"user_id": u, "text": INTENTS[j % len(INTENTS)], "k": 10})[0])
        plain.append(timed({"user_id": u, "k": 10})[0])
    return {"signals": sig,
            "fused_ms": {"p50": pct(fused, 50), "p95": pct(fused, 95), "p99": pct(fused, 99)},
            "plain_ms": {"p50": pct(plain, 50), "p95": pct(plain, 95), "p99": pct(plain, 99)},
            "first_use_ms": {"first request (item vectors + query)": first[0] * 1000,
                             "median over the 20 first uses": pct(first, 50)}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="lm-linear")
    ap.add_argument("--n", type=int, default=1000, help="timed requests per kind")
    ap.add_argument("--server", action="store_true",
                    help="also measure over loopback against `python -m longrec.serve` (one worker)")
    ap.add_argument("--compare-full-path", action="store_true",
                    help="also measure in-process with the fast path off (every request through FastAPI)")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from intent import load

    from fastapi.testclient import TestClient

    from longrec.models import get_model_class
    from longrec.serve import ServeSettings, create_app

    train, parts, _, _ = load("ml-100k")
    tmp = Path(tempfile.mkdtemp())
    get_model_class(args.model)({}).fit(train).save(tmp / "m")
    users = [int(u) for u in parts["test"]["user_id"].unique()]
    runs = {}
    load_before = [round(x, 2) for x in os.getloadavg()]

    def in_process(db: str, **settings):
        """post(body) -> (status, json) through TestClient on a fresh app."""
        c = TestClient(create_app(tmp / "m", db_url=f"sqlite:///{tmp / db}",
                                  settings=ServeSettings(api_key="", **settings)))

        def post(body):
            r = c.post("/recommend", json=body)
            return r.status_code, r.json()

        return post

    runs["in-process (TestClient)"] = measure(in_process("events.db"), users, args.n)
    if args.compare_full_path:
        runs["in-process, fast path off"] = measure(in_process("events2.db", fast_path=False), users, args.n)
    if args.server:
        srv = _Server(tmp / "m", tmp)
        try:
            runs["loopback HTTP (`python -m longrec.serve`, 1 worker)"] = measure(srv.post, users, args.n)
        finally:
            srv.close()
    first_key = next(iter(runs))
    res = {"provenance": provenance(), "model": args.model, "n": args.n, "signals": runs[first_key]["signals"],
           **{k: runs[first_key][k] for k in ("fused_ms", "plain_ms", "first_use_ms")}, "runs": runs,
           "load_average_before": load_before, "load_average_after": [round(x, 2) for x in os.getloadavg()],
           "cpu_count": os.cpu_count()}
    RESULTS.mkdir(exist_ok=True)
    stem = f"intent_serve_ml-100k_{args.model}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(res, indent=2))
    md = [f"# Fused /recommend latency: ml-100k P1, {args.model}", "", md_line(res["provenance"]), "",
          f"Sequential, {args.n} requests per kind interleaved, 20 intents cycled over test users (query embeddings "
          f"from the serving state's LRU after first use), k = 10. Load average before/after: "
          f"{res['load_average_before']} / {res['load_average_after']} on {os.cpu_count()} cores.", "",
          "| path | request | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|---|"]
    for name, r in runs.items():
        f, p = r["fused_ms"], r["plain_ms"]
        md += [f"| {name} | fused (`user_id` + `text`) | {f['p50']:.2f} | {f['p95']:.2f} | {f['p99']:.2f} |",
               f"| {name} | history only (`user_id`) | {p['p50']:.2f} | {p['p95']:.2f} | {p['p99']:.2f} |"]
    md.append("")
    for name, r in runs.items():
        md.append(f"{name} — first use of a query (encoder call): median "
                  f"{r['first_use_ms']['median over the 20 first uses']:.1f} ms; the very first fused request: "
                  f"{r['first_use_ms']['first request (item vectors + query)']:.0f} ms.")
    (RESULTS / f"{stem}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
