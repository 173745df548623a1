"""Encoder throughput: items/s cold and cached, per backend, 1 intra-op thread.

    nice .venv/bin/python bench/encode.py            # both backends, ml-100k + ml-1m
    nice .venv/bin/python bench/encode.py --backends onnx --datasets ml-100k

Each backend runs in its own subprocess so peak RSS (resource.getrusage ru_maxrss) is its
own. Prints JSON to stdout and writes bench/results/encode.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _provenance import stamp

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LONGREC_DATA_DIR", ROOT.parent / "shared" / "datasets"))
FILES = {"ml-100k": DATA / "ml-100k" / "ml-100k.item", "ml-1m": DATA / "ml-1m" / "ml-1m.item.gz"}


def load_items(name):
    try:
        from longrec.data import read_items

        return read_items(FILES[name])
    except ImportError:
        import pandas as pd

        df = pd.read_csv(FILES[name], sep="\t")
        df.columns = [c.split(":", 1)[0] for c in df.columns]
        return df


def worker(backend: str, datasets: list[str], threads: int) -> dict:
    from longrec.lm.cache import CachedEncoder
    from longrec.lm.encoders import get_encoder
    from longrec.lm.text import item_texts

    t0 = time.perf_counter()
    enc = get_encoder(backend, num_threads=threads)
    enc.load()
    load_s = time.perf_counter() - t0
    out = {"backend": backend, "num_threads": threads, "batch_size": enc.settings.batch_size,
           "load_s": round(load_s, 2), "datasets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in datasets:
            texts = item_texts(load_items(name))
            cached = CachedEncoder(enc, Path(tmp) / f"{name}.sqlite")
            t0 = time.perf_counter()
            cached.encode(texts, show_progress=False)
            cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            cached.encode(texts, show_progress=False)
            warm = time.perf_counter() - t0
            assert cached.last_misses == 0
            out["datasets"][name] = {
                "items": len(texts), "cold_s": round(cold, 3), "cached_s": round(warm, 4),
                "cold_items_per_s": round(len(texts) / cold, 1),
                "cached_items_per_s": round(len(texts) / warm, 1),
                "cached_speedup": round(cold / warm, 1),
            }
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", default="sentence-transformers,onnx")
    ap.add_argument("--datasets", default="ml-100k,ml-1m")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--output", default=str(ROOT / "bench" / "results" / "encode.json"))
    a = ap.parse_args()
    datasets = a.datasets.split(",")
    if a.worker:
        print(json.dumps(worker(a.worker, datasets, a.threads)))
        return
    results = []
    for b in a.backends.split(","):
        p = subprocess.run([sys.executable, __file__, "--worker", b, "--datasets", a.datasets,
                            "--threads", str(a.threads)], capture_output=True, text=True)
        if p.returncode != 0:
            results.append({"backend": b, "error": p.stderr[-2000:]})
        else:
            results.append(json.loads(p.stdout.strip().splitlines()[-1]))
    report = {"benchmark": "encode", "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                                 "load_avg_at_end": os.getloadavg()},
              "targets": {"cold_items_per_s": ">= 100", "cached_speedup": ">= 20", "peak_rss_mb": "< 1200"},
              "results": results}
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(stamp(report), indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
