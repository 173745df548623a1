"""Server CPU per /recommend request, and where it goes (py-spy), for an EASE model on ml-100k.

    LONGREC_DATA_DIR=/work/shared/datasets nice python bench/serve_profile.py --out bench/results/serve_profile_after.json

Starts `python -m longrec.serve` (one worker) in a subprocess, sends sequential requests from
this process, and reads the server's CPU time from /proc (user + system) before and after:
CPU ms per request, independent of how busy the machine is. With `--py-spy`, it samples the
server while the requests run and prints the top frames by self and total time.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _provenance import stamp
from serve_load import cpu_seconds, free_port, train_model, wait_ready

ROOT = Path(__file__).resolve().parents[1]


def measure(url: str, pid: int, users: list, body: dict, n: int) -> dict:
    """Sequential requests: the server's CPU ms per request (median of 5 blocks) and wall ms."""
    import httpx

    blocks = []
    walls = []
    with httpx.Client(base_url=url, timeout=30) as c:
        for u in users[:20]:
            c.post("/recommend", json={**body, "user_id": u})
        per = max(1, n // 5)
        for b in range(5):
            c0, t0 = cpu_seconds(pid), time.perf_counter()
            for i in range(per):
                r = c.post("/recommend", json={**body, "user_id": users[(b * per + i) % len(users)]})
                assert r.status_code == 200, r.text
            blocks.append((cpu_seconds(pid) - c0) / per * 1000)
            walls.append((time.perf_counter() - t0) / per * 1000)
    return {"requests": per * 5, "server_cpu_ms_per_request_median": round(float(np.median(blocks)), 3),
            "server_cpu_ms_per_request_blocks": [round(x, 3) for x in blocks],
            "sequential_wall_ms_per_request_median": round(float(np.median(walls)), 3)}


def summarise_raw(path: Path, top: int = 15) -> dict:
    """py-spy --format raw (one `frame;frame;... count` line per stack) -> top frames by self and total samples."""
    self_c: collections.Counter = collections.Counter()
    total_c: collections.Counter = collections.Counter()
    n = 0
    for line in path.read_text().splitlines():
        stack, _, cnt = line.rpartition(" ")
        if not stack or not cnt.isdigit():
            continue
        c = int(cnt)
        n += c
        frames = [_short(f) for f in stack.split(";")]
        self_c[frames[-1]] += c
        for f in set(frames):
            total_c[f] += c
    pct = lambda c: round(100 * c / n, 1) if n else 0.0  # noqa: E731
    return {"samples": n, "self": [(f, pct(c)) for f, c in self_c.most_common(top)],
            "total": [(f, pct(c)) for f, c in total_c.most_common(top * 2)]}


def _short(frame: str) -> str:
    """`func (path/to/module.py:123)` -> `func (module.py)` (line numbers merged)."""
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0]
    parts = file.split("/")
    if "site-packages" in parts:
        file = "/".join(parts[parts.index("site-packages") + 1:])
    elif "src" in parts:
        file = "/".join(parts[parts.index("src") + 1:])
    else:
        file = parts[-1]
    return f"{name} ({file})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model directory (default: train EASE on ml-100k P1 train)")
    ap.add_argument("--data-dir", default=os.environ.get("LONGREC_DATA_DIR", "/work/shared/datasets"))
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--encoder", default="auto")
    ap.add_argument("--db", default=None, help="event store URL (default: a fresh SQLite file)")
    ap.add_argument("--workers", type=int, default=1, help="server workers (0: do not pass the flag)")
    ap.add_argument("--src", default=str(ROOT / "src"),
                    help="source tree the server runs (another checkout's src for a before/after comparison)")
    ap.add_argument("--py-spy", action="store_true", help="also sample the server with py-spy (must be installed)")
    ap.add_argument("--py-spy-bin", default=str(Path(sys.executable).with_name("py-spy")))
    ap.add_argument("--out", default=None, help="JSON file for the figures (default: print only)")
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="longrec-profile-"))
    model = Path(a.model) if a.model else train_model(work / "ease", a.data_dir)
    from longrec.models.base import Recommender

    m = Recommender.load(model)
    users = [int(u) if isinstance(u, (np.integer, int)) else u for u in m.vocab_.users.ids]
    port = free_port()
    env = {**os.environ, "LONGREC_SERVE_ENCODER": a.encoder, "PYTHONPATH": a.src}
    log = open(work / "server.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "longrec.serve", "--model", str(model), "--db",
                             a.db or f"sqlite:///{work / 'events.sqlite'}", "--port", str(port)]
                            + (["--workers", str(a.workers)] if a.workers else []), env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    res: dict = {"model": str(model) if a.model else "EASE(l2=300) on ml-100k P1 train", "encoder": a.encoder}
    try:
        wait_ready(url, proc, work / "server.log")
        for name, body in (("plain", {"k": 10}), ("explain", {"k": 10, "explain": True})):
            spy = None
            if a.py_spy:
                raw = work / f"{name}.txt"
                spy = subprocess.Popen([a.py_spy_bin, "record", "--format", "raw", "--rate", "500", "--nonblocking", "--gil", "--subprocesses",
                                        "-o", str(raw), "--pid", str(proc.pid)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.0)
            res[name] = measure(url, proc.pid, users, body, a.requests)
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
                res[name]["profile"] = summarise_raw(raw) if raw.exists() else "py-spy wrote nothing"
            print(name, json.dumps(res[name], indent=1), flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    res["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if a.out:
        Path(a.out).write_text(json.dumps(stamp(res), indent=1))


if __name__ == "__main__":
    main()
