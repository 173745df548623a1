"""Federated two-tower (FedAvg through Flower's simulation engine) vs centralised training on
MovieLens-100K P1 (or ml-1m with --dataset).

    LONGREC_DATA_DIR=../shared/datasets python bench/federated.py [--rounds 30] [--engine flower]

Settings: 4 and 100 random clients, and 21 silos = one party per occupation. Centralised =
the same model and optimiser trained on all users (one epoch per "round", so the number of
passes over the data matches). Reports test NDCG@10 of the final global model, the ratio to
centralised, the round with the best validation NDCG@10 (rounds to converge) and wall time.
With --secagg every party setting runs twice, plain and with SecAgg+ secure aggregation,
to measure its overhead. With --dp-epsilon E every party runs DP-SGD on its own users (the
private config of bench/privacy.py, user-level, noise calibrated per party for all rounds)
and the centralised reference is the same private model trained on all users at the same E.
Writes bench/results/<out>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

from _provenance import md_line, provenance, stamp

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = {"encoder": "default", "dim": 32, "batch_size": 128, "lr": 0.01}
# the private config of bench/privacy.py (chosen on ml-100k P1 valid at epsilon 8, centralised)
DP_MODEL = {"encoder": "default", "dim": 16, "batch_size": 256, "lr": 0.03, "max_grad_norm": 0.2, "init": "pca",
            "epochs": 30}  # epochs: the centralised reference only (the parties train --rounds rounds)


# the centralised private reference on ml-1m: bench/privacy.py's ml-1m private config (chosen
# on ml-1m valid); the parties keep DP_MODEL's batch and --party-lr
DP_CENTRAL_BY_DATASET = {"ml-1m": {"batch_size": 2048, "epochs": 100}}


SETTINGS = {"4": ("4 random clients", {"partition": "random", "n_clients": 4}),
            "21": ("21 occupation silos", {"partition": "occupation"}),
            "100": ("100 random clients", {"partition": "random", "n_clients": 100})}


def tune(configs: list[dict], model: dict, settings: str, dataset: str = "ml-100k") -> None:
    from longrec.data.registry import load_split
    from longrec.privacy.federated import FederatedConfig, run_federated

    split = load_split(dataset, "p1", download=False)
    for key in settings.split(","):
        for c in configs:
            m = {**model, "batch_size": DP_MODEL["batch_size"], **c.get("model", {})}  # party batch 256, as the published runs (--client-batch 256)
            cfg = FederatedConfig(dataset=dataset, engine="local", eval_every=5, rounds=c.get("rounds", 30), model=m,
                                  reproducible_noise=True, **SETTINGS[key][1])
            rep = run_federated(cfg, split=split)
            row = {"dataset": dataset, "setting": SETTINGS[key][0], "rounds": cfg.rounds, "model": m,
                   "valid_curve": [v[1] for v in rep["valid_curve"]], "best_valid": max(v[1] for v in rep["valid_curve"])}
            with open(RESULTS / "tuning" / "federated_dp_tuning.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


def main() -> None:
    warnings.simplefilter("ignore")
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--engine", default="flower", choices=["flower", "local"])
    ap.add_argument("--local-epochs", type=int, default=1)
    ap.add_argument("--client-batch", type=int, default=MODEL["batch_size"], help="batch size on the parties")
    ap.add_argument("--settings", default="4,21,100", help="which of 4 / 21 / 100 parties to run")
    ap.add_argument("--secagg", action="store_true",
                    help="after each plain Flower run, the same run with SecAgg+ secure aggregation (overhead)")
    ap.add_argument("--dp-epsilon", type=float, default=None, help="user-level DP-SGD on every party at this epsilon")
    ap.add_argument("--party-lr", default=None, help="learning rate on the parties (default: the model's): one "
                    "number, or per setting as 4:0.03,21:0.1")
    ap.add_argument("--tune", default=None, help='valid-only runs: a JSON list of {"rounds": R, "model": {...}} '
                    "overrides, each trained on the --settings with engine local and the --dp-epsilon model; "
                    "appends the valid curves to bench/results/tuning/federated_dp_tuning.jsonl")
    ap.add_argument("--dataset", default="ml-100k", help="ml-100k (published P1 split) or ml-1m (P1 computed)")
    ap.add_argument("--out", default="federated")
    a = ap.parse_args()
    model = MODEL if a.dp_epsilon is None else {**DP_MODEL, **DP_CENTRAL_BY_DATASET.get(a.dataset, {}),
                                                "dp_epsilon": a.dp_epsilon}
    if a.tune:
        tune(json.loads(a.tune), model, a.settings, a.dataset)
        return

    from longrec.data.registry import load_split
    from longrec.metrics.ranking import evaluate
    from longrec.privacy.federated import FederatedConfig, run_federated
    from longrec.privacy.twotower import DPTwoTower

    split = load_split(a.dataset, "p1", download=False)
    tr, va, te = split["train"], split["valid"], split["test"]
    t0 = time.perf_counter()
    central = DPTwoTower({"epochs": a.rounds, **model, "reproducible_noise": True}).fit(tr, va)  # re-runnable figure
    recs = central.recommend(users=te.interactions["user_id"].unique(), histories=va.interactions, k=10)
    c_ndcg = float(evaluate(recs, te.interactions[["user_id", "item_id"]], ks=(10,))["NDCG@10"])
    rows = [{"setting": "centralised", "parties": 1, "test_ndcg@10": round(c_ndcg, 5), "ratio": 1.0,
             "rounds": model.get("epochs", a.rounds), "best_round": None,
             "wall_seconds": round(time.perf_counter() - t0, 1)}]  # centralised: rounds = epochs
    print(rows[-1], flush=True)
    if a.secagg and a.engine != "flower":
        raise SystemExit("--secagg needs --engine flower")
    if a.secagg:  # warm-up (not recorded): the first simulation in a process pays Ray's start-up and imports
        run_federated(FederatedConfig(rounds=1, engine="flower", n_clients=4, model={**MODEL, "batch_size": a.client_batch}),
                      split=split)
    lrs: dict[str, float] = {}  # setting -> party lr ("0.1" = every setting; "4:0.03,21:0.1" = per setting)
    for part in filter(None, (a.party_lr or "").split(",")):
        key, _, v = part.rpartition(":")
        lrs.update({key: float(v)} if key else dict.fromkeys(a.settings.split(","), float(v)))
    for key in a.settings.split(","):
        name, kw = SETTINGS[key]
        for secure in ([False, True] if a.secagg else [False]):
            cfg = FederatedConfig(dataset=a.dataset, rounds=a.rounds, eval_every=a.eval_every, engine=a.engine,
                                  local_epochs=a.local_epochs, secure_aggregation=secure,
                                  reproducible_noise=True,  # published figures: noise seeded from `seed`
                                  model={**model, "batch_size": a.client_batch,
                                         **({"lr": lrs[key]} if key in lrs else {})}, **kw)
            rep = run_federated(cfg, split=split)
            rows.append({"setting": name + (", SecAgg+" if secure else ""), "parties": rep["n_parties"],
                         "test_ndcg@10": rep["test_ndcg@10"], "ratio": round(rep["test_ndcg@10"] / c_ndcg, 4),
                         "rounds": a.rounds, "best_round": rep["best_round"], "wall_seconds": rep["wall_seconds"],
                         "valid_curve": rep["valid_curve"], "engine": rep["engine"], "secure_aggregation": secure,
                         "max_abs_parameter": rep["max_abs_parameter"], "privacy": rep["privacy"]})
            if secure:
                rows[-1]["overhead_vs_plain"] = round(rep["wall_seconds"] / rows[-2]["wall_seconds"], 2)
            print({k: v for k, v in rows[-1].items() if k != "valid_curve"}, flush=True)
    RESULTS.mkdir(exist_ok=True)
    prov = provenance()
    (RESULTS / f"{a.out}.json").write_text(json.dumps(stamp(rows, prov), indent=2))
    lines = [f"# Federated two-tower on {a.dataset} P1", "", md_line(prov), "",
             f"Produced by `python bench/federated.py --dataset {a.dataset} --rounds {a.rounds} --engine {a.engine} --local-epochs "
             f"{a.local_epochs} --client-batch {a.client_batch} --settings {a.settings}{' --secagg' if a.secagg else ''}"
             f"{'' if a.dp_epsilon is None else f' --dp-epsilon {a.dp_epsilon:g}'}"
             f"{'' if a.party_lr is None else f' --party-lr {a.party_lr}'}`. "
             f"FedAvg (weighted by "
             f"users) over the shared dense parameters; {a.local_epochs} local epoch(s) per round, party batch "
             f"{a.client_batch}; centralised = same model (batch {model['batch_size']}), "
             f"{model.get('epochs', a.rounds)} epochs. Best round = best validation NDCG@10 (checked every {a.eval_every} rounds).", "",
             *([] if a.dp_epsilon is None else [
                 f"User-level DP at epsilon {a.dp_epsilon:g} (delta 1/#users) everywhere: centralised = DP-SGD "
                 f"on all users; federated = DP-SGD on each party's users, noise calibrated per party for "
                 f"{a.rounds} rounds (config {json.dumps(model)}).", ""]),
             "SecAgg+ rows: Flower's secaggplus_mod + SecAggPlusWorkflow (3 shares, threshold 2, parameters "
             "clipped to ±8 and quantised to 2^22 levels); overhead = wall time over the plain run just before.", "",
             "| setting | parties | test NDCG@10 | vs centralised | rounds | best round | wall s | overhead |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['parties']} | {r['test_ndcg@10']:.4f} | {100 * r['ratio']:.1f}% | "
                     f"{r['rounds']} | {r['best_round'] or ''} | {r['wall_seconds']} | "
                     f"{str(r['overhead_vs_plain']) + 'x' if 'overhead_vs_plain' in r else ''} |")
    (RESULTS / f"{a.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
