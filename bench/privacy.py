"""Privacy/utility trade-off of the user-level DP two-tower on MovieLens-100K P1.

    LONGREC_DATA_DIR=../shared/datasets python bench/privacy.py [--eps 1,3,8,inf] [--quick]
    LONGREC_DATA_DIR=../shared/datasets python bench/privacy.py --dataset ml-1m   # P1 computed
    ... python bench/privacy.py --model lm-linear-dp [--dataset ml-1m] [--tune]     # the closed-form model
    ... python bench/privacy.py --model lm-seq-dp [--tune]      # the sequential transformer, on P2 (next item)

For each epsilon (inf = no DP, same model and optimiser): test NDCG@10 (valid items are
history, train+valid excluded), spent epsilon (RDP accountant, delta = 1/#users), noise
multiplier, fit time and peak process memory (each epsilon runs in its own process, so the
peak RSS is that run's own); then the attacks: Zhang et al. (CCS 2021) membership inference
AUC (shadow/target models trained the same way on disjoint user quarters) and gender
inference AUC from the model's user vectors (5-fold logistic regression). EASE is attacked
too as a memorising, non-private reference. Hyper-parameters were chosen on valid
(sweeps in the closing note). Writes bench/results/privacy.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

from _provenance import md_line, provenance, stamp

RESULTS = Path(__file__).resolve().parent / "results"
# chosen on valid NDCG@10 (ml-100k P1; the sweeps are in the closing note of issue #8), each
# setting on its own; every epsilon uses the same private config, only the noise changes
NONPRIVATE = {"encoder": "default", "dim": 32, "batch_size": 128, "lr": 0.01, "epochs": 60, "init": "pca"}
PRIVATE = {"encoder": "default", "dim": 16, "batch_size": 256, "lr": 0.03, "epochs": 30, "max_grad_norm": 0.2,
           "init": "pca"}


# ml-1m has 6.4x the users: both configs re-chosen on ml-1m valid the same way
NONPRIVATE_BY_DATASET = {"ml-1m": {**NONPRIVATE, "dim": 64}}
PRIVATE_BY_DATASET = {"ml-1m": {**PRIVATE, "batch_size": 2048, "epochs": 100}}


# lm-linear-dp (sufficient-statistics perturbation): each setting chosen by `--tune` on valid
# NDCG@10, the private ones by the mean over 3 noise seeds at that epsilon (its ridge penalty
# has to grow with the noise); bench/results/tuning/privacy_linear_tuning.jsonl holds every grid point
LINEAR = {
    "ml-100k": {"inf": {"dim": 256, "l2": 10.0, "clip": 2.0, "bias": 0.5},
                8.0: {"dim": 16, "l2": 10.0, "clip": 0.5, "bias": 0.5},
                3.0: {"dim": 32, "l2": 10.0, "clip": 0.25, "bias": 0.5},
                1.0: {"dim": 32, "l2": 1000.0, "clip": 0.25, "bias": 0.5}},
    "ml-1m": {"inf": {"dim": 384, "l2": 3.0, "clip": 0.5, "bias": 0.5},
              8.0: {"dim": 256, "l2": 3.0, "clip": 0.25, "bias": 0.5},
              3.0: {"dim": 64, "l2": 30.0, "clip": 0.5, "bias": 0.5},
              1.0: {"dim": 64, "l2": 30.0, "clip": 0.25, "bias": 0.5}},
}


# lm-seq-dp (DP-SGD on the sequential transformer, ml-100k P2): the private config chosen by
# `--tune` on P2 valid at epsilon 8 (bench/results/tuning/privacy_seq_tuning.jsonl); inf is plain lm-seq
SEQ = {"inf": {"encoder": "default", "num_threads": 1},
       8.0: {"encoder": "default", "num_threads": 1, "dp_lr": 0.01}}


# benchmarks draw the DP noise from the model seed so that every figure can be re-run exactly;
# a model meant for release keeps the default (OS-entropy noise, see longrec.privacy.noise)
FIXED_NOISE = {"reproducible_noise": True}


def protocol_of(model: str) -> str:
    return "p2" if model == "lm-seq-dp" else "p1"


def config_for(eps: float | None, dataset: str = "ml-100k", model: str = "lm-twotower-dp") -> dict:
    if model == "lm-seq-dp":
        return dict(SEQ["inf"]) if eps is None else {**SEQ.get(eps, SEQ[8.0]), "dp_epsilon": eps, **FIXED_NOISE}
    if model == "lm-linear-dp":
        by_eps = LINEAR[dataset]
        if eps is None:
            return {"encoder": "default", **by_eps["inf"]}
        return {"encoder": "default", **by_eps.get(eps, by_eps[8.0]), "dp_epsilon": eps, **FIXED_NOISE}
    if eps is None:
        return dict(NONPRIVATE_BY_DATASET.get(dataset, NONPRIVATE))
    return {**PRIVATE_BY_DATASET.get(dataset, PRIVATE), "dp_epsilon": eps, **FIXED_NOISE}


def tune_linear(dataset: str, eps_list: list[float], grid_override: dict | None = None) -> None:
    """Valid-only grid for lm-linear-dp: every config non-private, and at each epsilon in
    `eps_list` with noise seeds 0, 1, 2 (the choice uses their mean, so it does not ride one
    noise draw). Resumable: grid points already in the jsonl are skipped."""
    import itertools

    from longrec.data.registry import load_split
    from longrec.models.validation import valid_ndcg
    from longrec.privacy.linear import DPLinear

    s = load_split(dataset, "p1", download=False)
    tr, va = s["train"], s["valid"]
    big = dataset != "ml-100k"
    # ml-100k: the first grid's best private config sat on its edge (l2 10, clip 0.5), so it was widened
    dims, clips = ((32, 64, 128), (0.25, 0.5, 1.0, 100.0)) if big else ((16, 32, 64, 128, 256), (0.25, 0.5, 1.0, 2.0, 100.0))
    if 8.0 not in eps_list:  # smaller epsilons: only the region that won at epsilon = 8 (small dim, clip <= 1)
        dims, clips = dims[:3] if not big else dims[:2], tuple(c for c in clips if c <= 1.0)
    l2s = (3.0, 10.0, 30.0, 100.0) if big else (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
    g = grid_override or {}  # to widen a grid whose best point sits on its edge
    grid = itertools.product(g.get("dim", dims), g.get("l2", l2s), g.get("clip", clips), (0.5,))
    out = RESULTS / "tuning" / "privacy_linear_tuning.jsonl"
    rows = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    done = {(json.dumps(r["config"], sort_keys=True), k) for r in rows if r["dataset"] == dataset
            for k in r if k.startswith("valid_eps") and k.endswith("_mean")}
    for dim, l2, clip, bias in grid:
        cfg = {"encoder": "default", "dim": dim, "l2": l2, "clip": clip, "bias": bias}
        key = json.dumps(cfg, sort_keys=True)
        todo = [e for e in eps_list if clip < 100 and (key, f"valid_eps{e:g}_mean") not in done]
        if not todo and any(json.dumps(r["config"], sort_keys=True) == key for r in rows if r["dataset"] == dataset):
            continue  # resumable
        row = {"dataset": dataset, "config": cfg, "valid_nonprivate": round(valid_ndcg(DPLinear(cfg).fit(tr), va), 5)}
        for e in todo:  # an unclipped profile (clip 100) makes the sensitivity, and the noise, huge
            v = [valid_ndcg(DPLinear({**cfg, "dp_epsilon": e, "seed": k, **FIXED_NOISE}).fit(tr), va) for k in range(3)]
            row[f"valid_eps{e:g}_mean"] = round(sum(v) / 3, 5)
            row[f"valid_eps{e:g}"] = [round(x, 5) for x in v]
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


def tune_seq(eps_list: list[float], configs: list[dict]) -> None:
    """Valid-only runs of lm-seq-dp on ml-100k P2 (seed 0; one config is minutes of DP-SGD):
    appends {config, epsilon, valid NDCG@10, seconds} to bench/results/tuning/privacy_seq_tuning.jsonl."""
    from longrec.data.registry import load_split
    from longrec.privacy.sequential import DPLMSeq

    s = load_split("ml-100k", "p2", download=False)
    for e in eps_list:
        for c in configs:
            cfg = {"encoder": "default", "num_threads": 1, **c, "dp_epsilon": e, **FIXED_NOISE}
            t0 = time.perf_counter()
            m = DPLMSeq(cfg).fit(s["train"], s["valid"])
            row = {"dataset": "ml-100k", "protocol": "p2", "config": cfg, "valid": m.fit_info_["valid_ndcg@10"],
                   "epsilon_spent": m.privacy_["epsilon_spent"], "noise_multiplier": m.privacy_["noise_multiplier"],
                   "seconds": round(time.perf_counter() - t0, 1), "load_avg_1m": os.getloadavg()[0]}
            with open(RESULTS / "tuning" / "privacy_seq_tuning.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


def one(eps: float | None, quick: bool, dataset: str = "ml-100k", model: str = "lm-twotower-dp") -> dict:
    """Everything for one epsilon, in this (child) process."""
    warnings.simplefilter("ignore")
    import numpy as np

    from longrec.data.registry import load_split
    from longrec.metrics.ranking import evaluate
    from longrec.privacy.attacks import attribute_inference_auc, membership_inference
    from longrec.models import get_model_class

    s = load_split(dataset, protocol_of(model), download=False)
    tr, va, te = s["train"], s["valid"], s["test"]
    cfg = config_for(eps, dataset, model)
    klass = get_model_class(model)
    if quick and model == "lm-twotower-dp":
        cfg["epochs"] = 3
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    m = klass(cfg).fit(tr, va)
    fit_s = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    recs = m.recommend(users=te.interactions["user_id"].unique(), histories=va.interactions, k=10)
    ndcg = evaluate(recs, te.interactions[["user_id", "item_id"]], ks=(10,))["NDCG@10"]
    n_params = sum(v.size for v in m._state().values()) if model == "lm-linear-dp" else \
        sum(p.numel() for p in m.net_.parameters()) if model == "lm-seq-dp" else \
        sum(v.size for v in m.get_arrays().values())
    ids, U = m.user_embeddings()
    gender = tr.users.drop_duplicates("user_id").set_index(tr.users.drop_duplicates("user_id")["user_id"].astype(str))["gender"]
    attr = attribute_inference_auc(U, gender.reindex([str(i) for i in ids]).to_numpy())
    mia = membership_inference(lambda: klass(cfg), tr, k=10, seed=0)
    out = {"dataset": dataset, "epsilon": "inf" if eps is None else eps, "config": cfg, "test_ndcg@10": round(float(ndcg), 5),
           "valid_ndcg@10": m.fit_info_.get("valid_ndcg@10"), "privacy": m.meta_["privacy"],
           "fit_seconds": round(fit_s, 1), "rss_before_fit_mb": round(rss0, 1), "peak_rss_mb": round(peak, 1),
           "trained_params": int(n_params),
           "per_sample_grad_mb": round(n_params * cfg.get("dp_batch_size", 256) * 4 / 2**20, 2)
           if eps is not None and model == "lm-seq-dp" else round(n_params * cfg["batch_size"] * 4 / 2**20, 2)
           if eps is not None and "batch_size" in cfg else 0.0,
           "gender_auc": round(attr["auc"], 4), "membership_auc": round(mia["auc"], 4),
           "membership_shadow_auc": round(mia["shadow_auc"], 4),
           "membership_target_epsilon_spent": (mia["target_privacy"] or {}).get("epsilon_spent")}
    if eps is None:  # references: a memorising model, and what the raw history reveals
        from longrec.models.ease import EASE
        from longrec.privacy.twotower_train import history_features

        out["ease_membership_auc"] = round(membership_inference(lambda: EASE(), tr, k=10, seed=0)["auc"], 4)
        _, hist = m._build_histories(np.asarray(ids, dtype=object), m._history_frame(None))
        from longrec.models._lm_items import item_text_matrix
        text = item_text_matrix(m.vocab_.items.ids, m.items_, "default", None)
        raw = history_features(hist.matrix(), text)
        out["gender_auc_raw_history_text"] = round(attribute_inference_auc(raw, gender.reindex([str(i) for i in ids]).to_numpy())["auc"], 4)
    return out


def plot(rows: list[dict], path: Path, dataset: str = "ml-100k", model: str = "lm-twotower-dp") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    priv = [r for r in rows if r["epsilon"] != "inf"]
    base = next((r for r in rows if r["epsilon"] == "inf"), None)
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    xs = [r["epsilon"] for r in priv]
    ax[0].plot(xs, [r["test_ndcg@10"] for r in priv], "o-", label=f"{model} (user-level DP)")
    if base:
        ax[0].axhline(base["test_ndcg@10"], ls="--", c="k", label="non-private")
        ax[0].axhline(0.9 * base["test_ndcg@10"], ls=":", c="g", label="-10%")
    ax[0].set(xscale="log", xlabel="epsilon (delta = 1/#users)", ylabel="test NDCG@10",
              title=f"{dataset} {protocol_of(model).upper()}")
    ax[0].legend(fontsize=7)
    ax[1].plot(xs, [r["membership_auc"] for r in priv], "o-", label="membership (DP)")
    ax[1].plot(xs, [r["gender_auc"] for r in priv], "s-", label="gender (DP)")
    if base:
        ax[1].axhline(base["membership_auc"], ls="--", c="C0", label="membership, non-private")
        ax[1].axhline(base["gender_auc"], ls="--", c="C1", label="gender, non-private")
    ax[1].axhline(0.5, c="grey", lw=0.8)
    ax[1].set(xscale="log", xlabel="epsilon", ylabel="attack AUC", title="attacks")
    ax[1].legend(fontsize=7)
    for a in ax:
        a.set_xticks(xs)
        a.set_xticklabels([f"{x:g}" for x in xs])
        a.minorticks_off()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def table(rows: list[dict], dataset: str = "ml-100k", model: str = "lm-twotower-dp", prov: dict | None = None) -> str:
    base = next((r for r in rows if r["epsilon"] == "inf"), None)
    how = {"lm-twotower-dp": "User-level DP-SGD (Opacus, Poisson sampling, RDP accountant, delta = 1/#users)",
           "lm-seq-dp": "User-level DP-SGD (one window per user, per-user gradients by torch.func, Poisson "
                        "sampling, Opacus RDP accountant, delta = 1/#users); epsilon = inf is plain lm-seq",
           "lm-linear-dp": "User-level sufficient-statistics perturbation (one Gaussian release, "
                           "analytic Gaussian mechanism, delta = 1/#users)"}[model]
    lines = [f"# Differential privacy on {dataset} {protocol_of(model).upper()} ({model})", "", md_line(prov), "",
             f"Produced by `python bench/privacy.py --dataset {dataset} --model {model}`. {how}. "
             "Test NDCG@10; attacks: membership inference (Zhang et al. 2021, shadow model, "
             "AUC) and gender inference from user vectors (5-fold logistic regression, AUC).", "",
             "| epsilon (target / spent) | noise σ | test NDCG@10 | rel. loss | membership AUC | gender AUC | fit s | peak RSS MB | per-sample grads MB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = r["privacy"]
        eps = "∞ (no DP)" if r["epsilon"] == "inf" else f"{r['epsilon']} / {p['epsilon_spent']}"
        loss = "" if base is None or r is base else f"{100 * (1 - r['test_ndcg@10'] / base['test_ndcg@10']):.1f}%"
        lines.append(f"| {eps} | {p.get('noise_multiplier', 0)} | {r['test_ndcg@10']:.4f} | {loss} | "
                     f"{r['membership_auc']:.3f} | {r['gender_auc']:.3f} | {r['fit_seconds']} | {r['peak_rss_mb']} | "
                     f"{r['per_sample_grad_mb']} |")
    if base:
        lines += ["", f"References: EASE (non-private, memorising) membership AUC {base.get('ease_membership_auc')}; "
                  f"gender AUC from the raw mean history text embedding {base.get('gender_auc_raw_history_text')}.",
                  f"Trained parameters: {base['trained_params']:,} (no user table).",
                  f"Non-private config: `{json.dumps(base['config'])}`; private: `{json.dumps(next((r['config'] for r in rows if r is not base), {}))}` "
                  + ("(both chosen on valid NDCG@10; every epsilon uses the same private config, only the noise changes)."
                     if model != "lm-linear-dp" else "(chosen on valid NDCG@10; each epsilon has its own config, "
                     "see the JSON).")]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--eps", default="inf,8,3,1")
    ap.add_argument("--quick", action="store_true", help="3 epochs (smoke test)")
    ap.add_argument("--dataset", default="ml-100k", help="ml-100k (published P1 split) or ml-1m (P1 computed)")
    ap.add_argument("--model", default="lm-twotower-dp", choices=["lm-twotower-dp", "lm-linear-dp", "lm-seq-dp"])
    ap.add_argument("--tune", action="store_true", help="lm-linear-dp: the valid-only grid at the --eps values "
                    "(appends to bench/results/tuning/privacy_linear_tuning.jsonl)")
    ap.add_argument("--grid", default="{}", help='with --tune: JSON lists replacing the default grid, '
                    'e.g. {"dim": [128, 256], "l2": [1, 3]}; lm-seq-dp: a JSON list of configs')
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--replot", action="store_true", help="redraw the PNG/table from privacy.json")
    a = ap.parse_args()
    stem = {"lm-twotower-dp": "privacy", "lm-linear-dp": "privacy_linear", "lm-seq-dp": "privacy_seq"}[a.model]
    if a.tune and a.model == "lm-seq-dp":
        tune_seq([float(e) for e in a.eps.split(",") if e != "inf"], json.loads(a.grid))
        return
    if a.tune:
        tune_linear(a.dataset, [float(e) for e in a.eps.split(",") if e != "inf"], json.loads(a.grid))
        return
    if a.replot:
        name = stem if a.dataset == "ml-100k" else f"{stem}_{a.dataset}"
        rows = json.loads((RESULTS / f"{name}.json").read_text())
        plot(rows, RESULTS / f"{name}.png", a.dataset, a.model)
        (RESULTS / f"{name}.md").write_text(table(rows, a.dataset, a.model))
        return
    if a.one is not None:
        print("RESULT " + json.dumps(one(None if a.one == "inf" else float(a.one), a.quick, a.dataset, a.model)),
              flush=True)
        return
    rows = []
    suffix = ("" if a.dataset == "ml-100k" else f"_{a.dataset}") + ("_quick" if a.quick else "")
    for e in a.eps.split(","):
        t = time.perf_counter()
        cmd = [sys.executable, __file__, "--one", e, "--dataset", a.dataset, "--model", a.model] + \
            (["--quick"] if a.quick else [])
        res = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
        line = [x for x in res.stdout.splitlines() if x.startswith("RESULT ")]
        if not line:
            sys.exit(f"epsilon {e} failed:\n{res.stderr[-3000:]}")
        rows.append(json.loads(line[0][7:]))
        RESULTS.mkdir(exist_ok=True)  # each finished epsilon is kept, so a stopped run loses only the one running
        (RESULTS / f"{stem}{suffix}.partial.json").write_text(json.dumps(rows, indent=2))
        print(f"eps={e}: NDCG@10 {rows[-1]['test_ndcg@10']}, MIA {rows[-1]['membership_auc']}, "
              f"gender {rows[-1]['gender_auc']} ({time.perf_counter() - t:.0f}s)", flush=True)
    prov = provenance()
    (RESULTS / f"{stem}{suffix}.json").write_text(json.dumps(stamp(rows, prov), indent=2))
    (RESULTS / f"{stem}{suffix}.partial.json").unlink()
    (RESULTS / f"{stem}{suffix}.md").write_text(table(rows, a.dataset, a.model, prov))
    plot(rows, RESULTS / f"{stem}{suffix}.png", a.dataset, a.model)
    print(table(rows, a.dataset, a.model))


if __name__ == "__main__":
    main()
