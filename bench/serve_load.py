"""Load test of `longrec serve` on loopback against an ml-100k EASE model: open-loop stages of
200 req/s read-only, 200 req/s mixed (10% /events writes, with an exactly-once check) and
400 req/s read-only, `--runs` times (each run a fresh server and event store); the report
gives every run and the worst one per stage.

    LONGREC_DATA_DIR=/work/shared/datasets nice python bench/serve_load.py --runs 3 --seconds 60
    # -> bench/results/serve_load.json and .md

The server is a separate process (`python -m longrec.serve --workers N`, default: the number
of cores). The load generator is another process, pinned to one core (the last one, see
--generator-core) and kept cheap: plain asyncio streams over keep-alive connections, requests
pre-built as bytes (about 30 µs of CPU a request, against ~0.5 ms for an httpx client).
Requests are sent on a fixed schedule whatever the latency (a slow server does not slow the
load down); a request's latency runs from its scheduled send time, so queueing counts (no
coordinated omission). Server CPU per request is measured separately with sequential
requests (/proc user + system time of the server and its workers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _provenance import md_line, provenance, stamp

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

STAGES = (("read_200", 200, 0.0), ("mixed_200", 200, 0.10), ("read_400", 400, 0.0))
# uvicorn closes a keep-alive connection idle for 5 s; reusing one near that edge races the close
# (the request is lost in flight), as every HTTP client pool knows: retire idle ones well before
STALE_AFTER_S = 2.0


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
    return {"requests": n, "server_cpu_ms_per_request": round(cpu / n * 1000, 3),
            "sequential_wall_ms_per_request": round(wall / n * 1000, 3),
            "capacity_estimate_rps_per_free_core": round(n / cpu, 0) if cpu > 0 else None}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> dict:
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    mem = None
    try:
        mem = round(int(Path("/proc/meminfo").read_text().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu_model": model, "cpus": os.cpu_count(), "cpus_usable": usable, "memory_gib": mem,
            "python": platform.python_version(), "platform": platform.platform()}


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------------- the load generator (own process)
def generate(cfg: dict) -> dict:
    """One open-loop stage (runs in the generator process)."""
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_stage(cfg))


async def _stage(cfg: dict) -> dict:
    host, port, rate, seconds = "127.0.0.1", cfg["port"], cfg["rate"], cfg["seconds"]
    rng = np.random.default_rng(cfg["seed"])
    n = int(rate * seconds)
    writes = rng.random(n) < cfg["write_frac"]
    users = cfg["users"]
    items = cfg["items"]
    uix = rng.integers(len(users), size=n)
    iix = rng.integers(len(items), size=n)
    head = f"Host: {host}\r\nContent-Type: application/json\r\n"
    auth = f"Authorization: Bearer {cfg['key']}\r\n"

    def request(i: int) -> tuple[bytes, str | None]:
        if writes[i]:
            eid = f"load-{cfg['tag']}-{i}"
            body = json.dumps({"events": [{"event_id": eid, "user_id": users[uix[i]], "item_id": items[iix[i]],
                                           "type": "click"}]}).encode()
            return (f"POST /events HTTP/1.1\r\n{head}{auth}Content-Length: {len(body)}\r\n\r\n".encode() + body), eid
        body = json.dumps({"user_id": users[uix[i]], "k": 10}).encode()
        return f"POST /recommend HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body, None

    reqs = [request(i) for i in range(n)]  # built before the clock starts
    idle: list = []
    gate = asyncio.Semaphore(cfg["max_connections"])
    lat: dict[str, list] = {"recommend": [], "events": []}
    rejected: list[float] = []
    lag: list[float] = []
    errors: dict[str, int] = {}
    acked: list[str] = []
    sent: list[str] = []
    clock = time.perf_counter  # the loop's clock may tick in whole milliseconds (uvloop)
    start = clock() + 0.1

    async def read_response(reader) -> tuple[int, bool]:
        head_bytes = await reader.readuntil(b"\r\n\r\n")
        status = int(head_bytes[9:12])
        length, close = 0, False
        for line in head_bytes.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            k = k.strip().lower()
            if k == b"content-length":
                length = int(v)
            elif k == b"connection" and v.strip().lower() == b"close":
                close = True
        await reader.readexactly(length)
        return status, close

    async def one(i: int) -> None:
        t = start + i / rate
        data, eid = reqs[i]
        async with gate:
            conn = None
            while idle:  # reuse the most recent keep-alive connection the server has not timed out
                reader, writer, used = idle.pop()
                if clock() - used < STALE_AFTER_S:
                    conn = (reader, writer)
                    break
                writer.close()  # idle past the server's keep-alive timeout: it may be closing it
            try:
                if conn is None:
                    conn = await asyncio.wait_for(asyncio.open_connection(host, port), cfg["timeout"])
                reader, writer = conn
                if eid is not None:
                    sent.append(eid)
                lag.append(clock() - t)  # the client's own delay (schedule, connection limit, CPU)
                writer.write(data)
                status, close = await asyncio.wait_for(read_response(reader), cfg["timeout"])
            except Exception as e:  # timeouts, refused or reset connections
                errors[e.__class__.__name__] = errors.get(e.__class__.__name__, 0) + 1
                if conn is not None:
                    conn[1].close()
                return
            took = clock() - t
            if close:
                writer.close()
            else:
                idle.append((reader, writer, clock()))
        if status == 503:
            rejected.append(took)
            return
        if status != 200:
            errors[str(status)] = errors.get(str(status), 0) + 1
            return
        if eid is not None:
            acked.append(eid)
            lat["events"].append(took)
        else:
            lat["recommend"].append(took)

    tasks = []
    for i in range(n):
        delay = start + i / rate - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    # bounded: whatever has not finished 15 s after the last send counts as an error
    done, pending = await asyncio.wait(tasks, timeout=max(0.0, start + seconds + 15 - clock()))
    for t in pending:
        t.cancel()
    if pending:
        errors["unfinished"] = len(pending)
    wall = clock() - start
    for _, w, _ in idle:
        w.close()

    def summary(xs):
        if not xs:
            return None
        a = np.array(xs) * 1000
        return {"n": len(a), "p50_ms": round(float(np.percentile(a, 50)), 2),
                "p90_ms": round(float(np.percentile(a, 90)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2),
                "max_ms": round(float(a.max()), 2)}

    answered = lat["recommend"] + lat["events"] + rejected
    return {"target_rps": rate, "seconds": seconds, "requests": n, "ok": len(lat["recommend"]) + len(lat["events"]),
            "ok_per_s": round((len(lat["recommend"]) + len(lat["events"])) / wall, 1),
            "recommend": summary(lat["recommend"]), "events": summary(lat["events"]),
            "rejected_503": summary(rejected), "slower_than_1s": int(sum(x > 1.0 for x in answered)),
            "client_send_lag": summary(lag),
            "errors": errors, "_acked": acked, "_sent": sent,
            "generator_cpu_ms_per_request": round(time.process_time() / max(1, n) * 1000, 3)}


def run_generator(cfg: dict, core: int | None) -> dict:
    """A stage in a separate process (pinned to `core`), so the client's cost is its own."""
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "cfg.json").write_text(json.dumps(cfg))
        cmd = [sys.executable, __file__, "--generate", str(Path(d) / "cfg.json")]
        if core is not None:
            cmd += ["--pin", str(core)]
        subprocess.run(cmd, check=True)
        return json.loads((Path(d) / "cfg.json.out").read_text())


# ---------------------------------------------------------------------- one run
def one_run(a, run: int, model: Path, users: list, items: list, work: Path, core: int | None) -> dict:
    db = work / f"events-{run}.sqlite"
    port = free_port()
    key = uuid.uuid4().hex
    env = {**os.environ, "LONGREC_API_KEY": key, "LONGREC_SERVE_ENCODER": a.encoder,
           "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log_path = work / f"server-{run}.log"
    log = open(log_path, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "longrec.serve", "--model", str(model), "--db", f"sqlite:///{db}",
                             "--port", str(port), "--workers", str(a.workers), "--max-in-flight", str(a.max_in_flight),
                             "--max-queue-ms", str(a.max_queue_ms)],
                            env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    out: dict = {"run": run + 1}
    try:
        out["startup_seconds"] = wait_ready(url, proc, log_path)
        base = {"port": port, "key": key, "users": users, "items": items, "timeout": 10.0,
                "max_connections": a.max_connections}
        # warm-up (first-request costs: imports, caches) is not measured
        run_generator({**base, "rate": 50, "seconds": 2, "write_frac": 0.0, "seed": 1000 + run, "tag": f"w{run}"}, core)
        out["cost"] = server_cpu_per_request(url, proc.pid, users)
        print(f"run {run + 1} cost:", json.dumps(out["cost"]), flush=True)
        for s, (name, rate, wf) in enumerate(STAGES):
            before = load_avg()
            res = run_generator({**base, "rate": rate * a.scale, "seconds": a.seconds, "write_frac": wf,
                                 "seed": 10 * run + s, "tag": f"{run}-{name}"}, core)
            res["load_average_before"], res["load_average_after"] = before, load_avg()
            out[name] = res
            print(f"run {run + 1} {name}:", json.dumps({k: v for k, v in res.items() if not k.startswith("_")}),
                  flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    from longrec.serve.store import EventStore

    store = EventStore(f"sqlite:///{db}")
    stored = [e for e in store.event_ids() if e.startswith("load-") and not e.startswith(f"load-w{run}")]
    store.close()
    acked, sent = set(), set()
    for name, _, _ in STAGES:
        if name in out:
            acked |= set(out[name].pop("_acked"))
            sent |= set(out[name].pop("_sent"))
    out["exactly_once"] = {"sent": len(sent), "acknowledged": len(acked), "stored": len(stored),
                           "lost_acknowledged": len(acked - set(stored)), "duplicated": len(stored) - len(set(stored)),
                           "stored_but_not_acknowledged": len(set(stored) - acked)}
    return out


def worst(runs: list[dict]) -> dict:
    """Per stage, the run with the highest recommend p99 (errors first)."""
    out = {}
    for name, _, _ in STAGES:
        have = [r for r in runs if r.get(name)]
        if not have:
            continue

        def badness(r):
            st = r[name]
            return (sum(st["errors"].values()), (st["recommend"] or {}).get("p99_ms", 0.0))

        w = max(have, key=badness)
        out[name] = {"run": w["run"], **w[name]}
    out["cost"] = max((r["cost"] for r in runs if "cost" in r), key=lambda c: c["server_cpu_ms_per_request"],
                      default=None)
    out["exactly_once"] = {k: max(r["exactly_once"][k] for r in runs)
                           for k in ("lost_acknowledged", "duplicated", "stored_but_not_acknowledged")}
    return out


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = ["# `longrec serve` under load (EASE on ml-100k)", "", md_line(res["provenance"]), "",
             f"Machine: {m['cpu_model']}, {m['cpus']} CPUs ({m['cpus_usable']} usable), {m['memory_gib']} GiB. "
             f"Server: {res['server']}. Load generator: {res['generator']}.", "",
             "Targets: 200 req/s p99 ≤ 20 ms and 0 errors (read-only and mixed), 0 lost / 0 duplicated events; "
             "400 req/s p99 ≤ 50 ms or fast 503s (no request slower than 1 s); server CPU ≤ 1.0 ms per request.", "",
             "Latency runs from each request's scheduled send time; *client lag* is the part spent in the "
             "load generator before the request was written (its own schedule, connection limit or CPU).", "",
             "| run | stage | ok req/s | p50 / p99 / max ms | 503s (p99 ms) | errors | > 1 s | client lag p99 ms "
             "| load before → after |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in res["runs"]:
        for name, _, _ in STAGES:
            st = r.get(name)
            if not st:
                continue
            rec = st["recommend"] or {}
            rej = st["rejected_503"]
            rejected = f"{rej['n']} ({rej['p99_ms']})" if rej else "0"
            lines.append(f"| {r['run']} | {name} | {st['ok_per_s']} | {rec.get('p50_ms')} / {rec.get('p99_ms')} / "
                         f"{rec.get('max_ms')} | {rejected} | {sum(st['errors'].values())} | {st['slower_than_1s']} | "
                         f"{(st.get('client_send_lag') or {}).get('p99_ms')} | "
                         f"{st['load_average_before'][0]} → {st['load_average_after'][0]} |")
    lines += ["", "| run | server CPU / request (sequential) | sequential wall / request | events lost / duplicated |",
              "|---|---|---|---|"]
    for r in res["runs"]:
        c, e = r.get("cost", {}), r["exactly_once"]
        lines.append(f"| {r['run']} | {c.get('server_cpu_ms_per_request')} ms | {c.get('sequential_wall_ms_per_request')} ms"
                     f" | {e['lost_acknowledged']} / {e['duplicated']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model directory (default: train EASE on ml-100k P1 train)")
    ap.add_argument("--data-dir", default=os.environ.get("LONGREC_DATA_DIR", "/work/shared/datasets"))
    ap.add_argument("--seconds", type=float, default=60, help="seconds per stage")
    ap.add_argument("--runs", type=int, default=3, help="runs (fresh server and store each); the report gives the worst")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every stage's rate (e.g. 0.5 for a smoke test)")
    ap.add_argument("--workers", type=int, default=None, help="server workers (default: the number of cores)")
    ap.add_argument("--max-in-flight", type=int, default=64, help="server admission bound per worker")
    ap.add_argument("--max-queue-ms", type=float, default=500, help="server bound on a request's wait")
    ap.add_argument("--max-connections", type=int, default=256, help="client connections at most")
    ap.add_argument("--generator-core", type=int, default=None,
                    help="core the load generator is pinned to (default: the last one; -1: not pinned)")
    ap.add_argument("--encoder", default="auto", help="server text encoder (auto = MiniLM; hash = no model)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "serve_load.json"))
    ap.add_argument("--generate", help=argparse.SUPPRESS)  # internal: run one stage in this process
    ap.add_argument("--pin", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.generate:
        if a.pin is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {a.pin})
        res = generate(json.loads(Path(a.generate).read_text()))
        Path(a.generate + ".out").write_text(json.dumps(res))
        return

    prov = provenance()
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    a.workers = a.workers or len(cores)
    core = cores[-1] if a.generator_core is None else (None if a.generator_core < 0 else a.generator_core)
    work = Path(tempfile.mkdtemp(prefix="longrec-load-"))
    model = Path(a.model) if a.model else train_model(work / "ease", a.data_dir)
    from longrec.models.base import Recommender

    m = Recommender.load(model)
    users = [int(u) if isinstance(u, (np.integer, int)) else u for u in m.vocab_.users.ids]
    items = [int(i) if isinstance(i, (np.integer, int)) else i for i in m.vocab_.items.ids]
    runs = [one_run(a, r, model, users, items, work, core) for r in range(a.runs)]
    res = {"model": str(model) if a.model else "EASE(l2=300) on ml-100k P1 train", "encoder": a.encoder,
           "machine": machine(),
           "server": f"python -m longrec.serve --workers {a.workers} --max-in-flight {a.max_in_flight} "
                     f"--max-queue-ms {a.max_queue_ms:g} "
                     "(uvicorn), SQLite WAL synchronous=FULL",
           "generator": (f"separate process pinned to core {core}" if core is not None else "separate process")
           + f", asyncio streams, at most {a.max_connections} connections",
           "stages": [{"name": n, "rate": r * a.scale, "write_frac": w, "seconds": a.seconds} for n, r, w in STAGES],
           "runs": runs, "worst": worst(runs), "provenance": prov}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(stamp(res, prov), indent=1))
    out.with_suffix(".md").write_text(markdown(res))
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
