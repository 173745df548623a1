"""Local generator throughput (llama.cpp + packaged Gemma 3 270M), 1 thread.

    nice .venv/bin/python bench/generate.py [--max-tokens 40] [--repeats 5]

Reports load time, tokens/s end to end (completion tokens / wall time of the call) and peak
RSS; prints JSON and writes bench/results/generate.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from pathlib import Path

from _provenance import stamp

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [
    ("explain", {"title": "Toy Story (1995)", "genres": "Animation, Children's, Comedy", "because": "Aladdin (1992)"}),
    ("explain", {"title": "Heat (1995)", "genres": "Action, Crime, Thriller", "because": "Ronin (1998)"}),
    ("describe_item", {"title": "Star Wars (1977)", "genres": "Action, Adventure, Sci-Fi"}),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-tokens", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--output", default=str(ROOT / "bench" / "results" / "generate.json"))
    a = ap.parse_args()
    from longrec.lm.generators import get_generator, packaged_gguf_path
    from longrec.lm.prompts import build_prompt

    t0 = time.perf_counter()
    path = packaged_gguf_path()
    assemble_s = time.perf_counter() - t0
    # stop=[] so every call decodes max_tokens tokens (a fair tokens/s figure)
    g = get_generator(str(path))
    t0 = time.perf_counter()
    g.load()
    load_s = time.perf_counter() - t0
    rates, samples = [], []
    for lang in ("en", "zh"):
        for task, facts in PROMPTS:
            p = build_prompt(task, facts, lang)
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                text = g.generate(p, max_tokens=a.max_tokens, stop=[])
                dt = time.perf_counter() - t0
                n = g.last_usage.get("completion_tokens", 0)
                rates.append(n / dt)
            samples.append({"lang": lang, "task": task, "text": text[:160], "tokens": n, "s": round(dt, 2)})
    report = {"benchmark": "generate", "backend": "llama-cpp", "model": path.name, "n_threads": 1,
              "max_tokens": a.max_tokens, "assemble_or_check_s": round(assemble_s, 2), "load_s": round(load_s, 2),
              "tokens_per_s_median": round(statistics.median(rates), 1),
              "tokens_per_s_min": round(min(rates), 1), "tokens_per_s_max": round(max(rates), 1),
              "calls": len(rates), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "load_avg_at_end": os.getloadavg(), "samples": samples}
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(stamp(report), indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
