"""lm-seq training time and valid NDCG@10 with precision fp32 vs bf16 (P2 split, 1 torch thread,
a fixed number of epochs, no early stopping), one fit after the other:

    LONGREC_DATA_DIR=../shared/datasets python bench/bf16_seq.py ml-1m 2 '{"dim": 128, "max_len": 200, "eval_every": 1}' bf16,fp32
    LONGREC_DATA_DIR=../shared/datasets python bench/bf16_seq.py ml-100k 6

Prints one line per fit (precision, training seconds, valid NDCG@10 per epoch) and a JSON summary
with the command, commit, date and the load average before each fit.
"""

import json
import os
import sys

from _provenance import provenance

from longrec.data.registry import load_split
from longrec.models.registry import get_model_class


def main() -> None:
    ds, epochs = sys.argv[1], int(sys.argv[2])
    extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    order = sys.argv[4].split(",") if len(sys.argv) > 4 else ["fp32", "bf16", "fp32", "bf16"]
    split = load_split(ds, "p2", download=False)
    rows = []
    for prec in order:
        load = round(os.getloadavg()[0], 2)
        cfg = {"epochs": epochs, "patience": 1000, "num_threads": 1, "precision": prec, "seed": 0, **extra}
        m = get_model_class("lm-seq")(cfg).fit(split["train"], split["valid"])
        fi = m.fit_info_
        curve = [round(e[1], 4) for e in fi["valid_curve"]]
        rows.append({"precision": prec, "train_seconds": fi["train_seconds"], "valid_ndcg@10": curve,
                     "load_before": load})
        print(prec, fi["train_seconds"], curve, flush=True)
    print(json.dumps({**provenance(), "dataset": ds, "epochs": epochs, "config": extra, "fits": rows}, indent=2))


if __name__ == "__main__":
    main()
