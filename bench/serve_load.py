"""Load test of `longrec serve` on loopback: 200 req/s on /recommend for 60 s against an
ml-100k EASE model, then the same rate with 10% /events writes and an exactly-once check.

    LONGREC_DATA_DIR=/work/shared/datasets nice python bench/serve_load.py   # -> bench/results/serve_load.json

Open-loop: requests are sent on a fixed schedule whatever the latency (a slow server does
not slow the load down). Latency is measured client-side (includes HTTP on loopback).
The server is a separate process (`python -m longrec.serve`, one uvicorn worker).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _provenance import stamp

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def train_model(out: Path, data_dir: str) -> Path:
    os.environ.setdefault("LONGREC_DATA_DIR", data_dir)
    from longrec.data.registry import load_split
    from longrec.models.ease import EASE

    split = load_split("ml-100k", "p1", download=False)
    EASE(l2=300).fit(split["train"]).save(out)
    return out


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants (Linux /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{t}/children").read_text().split()]
        except OSError:
            pass
    return out


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process and its live children (Linux /proc): the server's
    cost independent of contention (with --workers N, the supervisor plus its N workers)."""
    total = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def wait_ready(url: str, proc, log: Path, timeout: float = 300) -> float:
    """Seconds until GET /ready answers 200 (exits if the server dies or never gets ready)."""
    import httpx

    t0 = time.time()
    while True:
        if proc.poll() is not None:
            sys.exit(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return round(time.time() - t0, 1)
        except httpx.HTTPError:
            pass
        if time.time() - t0 > timeout:
            proc.kill()
            sys.exit(f"server not ready after {timeout:.0f} s")
        time.sleep(0.3)


def server_cpu_per_request(url: str, pid: int, users: list, n: int = 400) -> dict:
    """Sequential requests: the server's CPU ms per /recommend (its capacity on one free core is ~1000/that)."""
    import httpx

    with httpx.Client(base_url=url, timeout=30) as c:
        for u in users[:20]:
            c.post("/recommend", json={"user_id": u, "k": 10})
        c0, t0 = cpu_seconds(pid), time.perf_counter()
        for i in range(n):
            c.post("/recommend", json={"user_id": users[i % len(users)], "k": 10})
        cpu, wall = cpu_seconds(pid) - c0, time.perf_counter() - t0
    return {"requests": n, "server_cpu_ms_per_request": round(cpu / n * 1000, 2),
            "sequential_wall_ms_per_request": round(wall / n * 1000, 2),
            "capacity_estimate_rps_per_free_core": round(n / cpu, 0) if cpu > 0 else None}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run_phase(url: str, key: str, rate: float, seconds: float, users: list, items: list, write_frac: float,
                    rng: np.random.Generator) -> dict:
    import httpx

    n = int(rate * seconds)
    kinds = rng.random(n) < write_frac
    lat: dict[str, list] = {"recommend": [], "events": []}
    start = time.perf_counter() + 0.05
    errors: dict[str, int] = {}
    acked: list[str] = []
    sent: list[str] = []
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    gate = asyncio.Semaphore(64)  # httpx's pool gets quadratic with thousands of queued requests

    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:
        async def one(i: int):
            async with gate:
                await one_request(i)

        async def one_request(i: int):
            u = users[rng.integers(len(users))]
            t = start + i / rate  # latency from the scheduled send time: queueing counts (no coordinated omission)
            try:
                if kinds[i]:
                    eid = f"load-{uuid.uuid4().hex}"
                    sent.append(eid)
                    body = {"events": [{"event_id": eid, "user_id": u, "item_id": items[rng.integers(len(items))],
                                        "type": "click"}]}
                    r = await client.post("/events", json=body, headers={"Authorization": f"Bearer {key}"})
                    lat["events"].append(time.perf_counter() - t)
                    if r.status_code == 200:
                        acked.append(eid)
                else:
                    r = await client.post("/recommend", json={"user_id": u, "k": 10})
                    lat["recommend"].append(time.perf_counter() - t)
                if r.status_code != 200:
                    errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
            except Exception as e:  # timeouts, refused connections
                errors[e.__class__.__name__] = errors.get(e.__class__.__name__, 0) + 1

        tasks = []
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        # bounded: whatever has not finished 15 s after the last send counts as an error
        done, pending = await asyncio.wait(tasks, timeout=max(0.0, start + seconds + 15 - time.perf_counter()))
        for t in pending:
            t.cancel()
        if pending:
            errors["unfinished"] = len(pending)
        wall = time.perf_counter() - start

    def summary(xs):
        if not xs:
            return None
        a = np.array(xs) * 1000
        return {"n": len(a), "p50_ms": round(float(np.percentile(a, 50)), 2), "p90_ms": round(float(np.percentile(a, 90)), 2),
                "p99_ms": round(float(np.percentile(a, 99)), 2), "max_ms": round(float(a.max()), 2)}

    completed = len(lat["recommend"]) + len(lat["events"])
    return {"target_rps": rate, "seconds": seconds, "requests": n, "completed": completed,
            "completed_per_s": round(completed / wall, 1),
            "recommend": summary(lat["recommend"]), "events": summary(lat["events"]), "errors": errors,
            "_acked": acked, "_sent": sent}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model directory (default: train EASE on ml-100k P1 train)")
    ap.add_argument("--data-dir", default=os.environ.get("LONGREC_DATA_DIR", "/work/shared/datasets"))
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--write-frac", type=float, default=0.10)
    ap.add_argument("--encoder", default="auto", help="server text encoder (auto = MiniLM; hash = no model)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "serve_load.json"))
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="longrec-load-"))
    model = Path(a.model) if a.model else train_model(work / "ease", a.data_dir)
    from longrec.models.base import Recommender

    m = Recommender.load(model)
    users = [int(u) if isinstance(u, (np.integer, int)) else u for u in m.vocab_.users.ids]
    items = [int(i) if isinstance(i, (np.integer, int)) else i for i in m.vocab_.items.ids]
    db = work / "events.sqlite"
    port = free_port()
    key = uuid.uuid4().hex
    env = {**os.environ, "LONGREC_API_KEY": key, "LONGREC_SERVE_ENCODER": a.encoder}
    log = open(work / "server.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "longrec.serve", "--model", str(model), "--db", f"sqlite:///{db}",
                             "--port", str(port)], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    import httpx

    t0 = time.time()
    while True:
        if proc.poll() is not None:
            sys.exit(f"server exited: {(work / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.time() - t0 > 300:
            proc.kill()
            sys.exit("server not ready after 300 s")
        time.sleep(0.5)
    startup = round(time.time() - t0, 1)
    ready = httpx.get(url + "/ready").json()
    load_before = os.getloadavg()
    rng = np.random.default_rng(0)
    try:
        # warm-up (first-request costs: imports, caches) is not measured
        asyncio.run(run_phase(url, key, 50, 2, users, items, 0.0, rng))
        cost = server_cpu_per_request(url, proc.pid, users)
        print("cost:", json.dumps(cost), flush=True)
        read = asyncio.run(run_phase(url, key, a.rate, a.seconds, users, items, 0.0, rng))
        print("read-only:", json.dumps({k: v for k, v in read.items() if not k.startswith("_")}), flush=True)
        mixed = asyncio.run(run_phase(url, key, a.rate, a.seconds, users, items, a.write_frac, rng))
        print("mixed:", json.dumps({k: v for k, v in mixed.items() if not k.startswith("_")}), flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    from longrec.serve.store import EventStore

    store = EventStore(f"sqlite:///{db}")
    stored = store.event_ids()
    acked, sent = set(mixed.pop("_acked")), set(mixed.pop("_sent"))
    read.pop("_acked"), read.pop("_sent")
    check = {"sent": len(sent), "acknowledged": len(acked), "stored": len(stored),
             "lost_acknowledged": len(acked - set(stored)), "duplicated": len(stored) - len(set(stored)),
             "stored_but_not_acknowledged": len(set(stored) - acked)}
    store.close()
    res = {"model": str(model) if a.model else "EASE(l2=300) on ml-100k P1 train", "encoder": ready.get("encoder"),
           "server": "python -m longrec.serve (uvicorn, 1 worker), SQLite WAL synchronous=FULL",
           "cpus": os.cpu_count(), "startup_seconds": startup, "load_average_before": [round(x, 2) for x in load_before],
           "load_average_after": [round(x, 2) for x in os.getloadavg()], "cost": cost, "read_only": read, "mixed": mixed, "exactly_once": check,
           "target": "p99 < 20 ms, 0 errors"}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(stamp(res), indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
