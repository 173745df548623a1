"""lm-linear-dp's cold-item map on a cold-book draw of Book-Crossing: text embedding only vs text +
the item table's TF-IDF features (`cold_metadata`), the check that the metadata path chosen on
movies does not make books worse.

The draw and its train-only cold fold are bench/cold.py's (split_p3 seed 0 of B1 pooled;
cold_fold default_rng(7)). Prints the fold and test NDCG@10 of each configuration given as JSON and
appends them to bench/results/cold_books_map.jsonl:

    LONGREC_DATA_DIR=/path/to/datasets python bench/cold_books_map.py '{}' '{"cold_metadata": 1, "cold_l2": 10}'

The dual ridge over ~10.5k warm books solves a dense 10.5k² system per fit.
"""

from __future__ import annotations

import json
import sys
import time

from _provenance import provenance
from cold import RESULTS, books_full, cold_fold, p3_draw, run


def main() -> None:
    p = provenance()
    s = p3_draw(books_full(), 0)
    fold = cold_fold(s["train"])
    for cfg in [json.loads(a) for a in sys.argv[1:]]:
        t = time.time()
        f = run("lm-linear-dp", cfg, fold)["NDCG@10"]
        r = run("lm-linear-dp", cfg, s)["NDCG@10"]
        row = {"model": "lm-linear-dp", "config": cfg, "fold_NDCG@10": f, "test_NDCG@10": r,
               "seconds": round(time.time() - t), **p}
        print(json.dumps(row), flush=True)
        with open(RESULTS / "cold_books_map.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
