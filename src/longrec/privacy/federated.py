"""Federated training of the two-tower model across silos with Flower (FedAvg).

Each party ("platform", a Flower client) holds a partition of the users and their training
histories: N random clients, one silo per occupation, or one per zip-code prefix. Raw
interactions never leave a party. What is exchanged each round is only the shared, dense
parameters of `longrec.privacy.twotower` (user-tower MLP, item projection, item biases) and,
once before the first round, each party's item-count sums for the popularity prior (both
through SecAgg+ with `secure_aggregation`, so the server sees only sums); the
model has no per-user parameters at all, and a user's representation is computed from their
history on the party that holds it. The server averages the parties' parameters weighted by
their number of users (FedAvg, McMahan et al. 2017) through Flower's simulation engine.

    cfg = FederatedConfig.from_toml("examples/federated_ml100k.toml")
    report = run_federated(cfg)            # dict; the model is saved to cfg.output if set

Evaluation (NDCG@10 of the global model on valid each round, test at the end) is done
centrally by the simulation driver for reporting; a real deployment would evaluate on the
parties. engine="local" runs the identical FedAvg arithmetic in a plain loop (no Flower, no
Ray): for machines without the extra and for quick sweeps.
"""

from __future__ import annotations

import os
import time
import tomllib
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from longrec.errors import ConfigError, LongrecError
from longrec.privacy.noise import noise_record, noise_seed
from longrec.privacy.guarantee import privacy_record


class FederatedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = Field("ml-100k", description="registered dataset name (longrec.data.registry)")
    protocol: Literal["p1", "p2", "p3"] = "p1"
    partition: Literal["random", "occupation", "zip"] = Field(
        "random", description="how users are split into parties: N random clients, by occupation, by zip prefix")
    n_clients: int = Field(4, ge=1, description="number of parties for partition='random'")
    zip_digits: int = Field(1, ge=1, le=5, description="zip-code prefix length for partition='zip'")
    rounds: int = Field(20, ge=1)
    local_epochs: int = Field(1, ge=1, description="passes over its own users per party per round")
    fraction_train: float = Field(1.0, gt=0, le=1, description="share of parties sampled per round")
    engine: Literal["flower", "local"] = "flower"
    model: dict[str, Any] = Field(default_factory=dict, description="DPTwoTowerConfig fields (epochs is ignored)")
    secure_aggregation: bool = Field(False, description="engine='flower' only: aggregate the parties' "
                                     "parameters with Flower's SecAgg+ protocol (the server sees only the sum)")
    secagg_num_shares: int | float = Field(3, description="SecAgg+: parties each secret is shared with "
                                           "(int > 2, or a share of the selected parties)")
    secagg_threshold: int | float = Field(2, description="SecAgg+: shares needed to reconstruct a secret")
    secagg_clip: float = Field(8.0, gt=0, description="SecAgg+: parameters are clipped to [-clip, clip] "
                               "before quantisation (the report records the largest magnitude seen)")
    reproducible_noise: bool = Field(False, description="with dp_epsilon in [model]: False (default) = each party "
                                     "seeds its DP sampling and noise from OS entropy, so nobody (the server included) "
                                     "can regenerate them; True = from `seed`, for reproducible experiments (the noise "
                                     "is then only as secret as the seed)")
    client_cpus: float = Field(1.0, gt=0, description="Ray CPUs reserved per simulated client")
    eval_every: int = Field(1, ge=1, description="rounds between validation NDCG@10 checks")
    output: str | None = Field(None, description="directory to save the final global model to")
    seed: int = 0

    @classmethod
    def from_toml(cls, path: str | Path) -> FederatedConfig:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"federated config {p} does not exist; see examples/federated_ml100k.toml.")
        try:
            raw = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p} is not valid TOML ({e}).") from None
        return cls.parse(raw, where=str(p))

    @classmethod
    def parse(cls, raw: dict, where: str = "the federated config") -> FederatedConfig:
        try:
            return cls(**raw)
        except ValidationError as e:
            lines = "; ".join(f"{'.'.join(map(str, err['loc'])) or '(config)'}: {err['msg']}" for err in e.errors())
            raise ConfigError(f"invalid {where}: {lines}. Valid fields: {', '.join(cls.model_fields)}.") from None


# ============================================================================ partitions
def partition_users(user_ids: np.ndarray, users: pd.DataFrame | None, how: str, n_clients: int = 4,
                    zip_digits: int = 1, seed: int = 0) -> list[np.ndarray]:
    """Split `user_ids` into parties; returns one array of user IDs per party (none empty)."""
    ids = np.asarray(user_ids, dtype=object)
    if how == "random":
        if n_clients > len(ids):
            raise ConfigError(f"n_clients={n_clients} exceeds the {len(ids)} users; use fewer clients.")
        perm = np.random.default_rng(seed).permutation(len(ids))
        return [ids[np.sort(p)] for p in np.array_split(perm, n_clients)]
    col = {"occupation": "occupation", "zip": "zip_code"}[how]
    if users is None or col not in users.columns:
        raise ConfigError(f"partition={how!r} needs a user table with a {col!r} column; use partition='random'.")
    tab = users.drop_duplicates("user_id").set_index(users.drop_duplicates("user_id")["user_id"].astype(str))[col]
    key = tab.reindex(pd.Series(ids, dtype=object).astype(str)).fillna("unknown").astype(str).to_numpy()
    if how == "zip":  # non-numeric (e.g. Canadian) codes share one party
        key = np.array([k[:zip_digits] if k[:zip_digits].isdigit() else "other" for k in key], dtype=object)
    return [ids[key == g] for g in sorted(set(key))]


# ============================================================================ training
def _local_train(arrays: dict[str, np.ndarray], X, text: np.ndarray, cfg, local_epochs: int, seed: int,
                 noise: float | None = None, noise_seed: int | None = None) -> dict:
    """One party's round: load the global arrays, train on its users, return new arrays. With
    `noise` (a DP-SGD noise multiplier) the party trains with Opacus: Poisson sampling of its
    users, per-user clipping to cfg.max_grad_norm, Gaussian noise (from its own generator seeded
    `noise_seed` if given, else torch's global one)."""
    import torch

    from longrec.privacy.twotower_train import build_net, train_epochs, user_loader

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    net = build_net(text, cfg)
    state = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in arrays.items()}
    state["text"] = net.text
    net.load_state_dict(state)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=cfg.lr)
    loader = user_loader(X.shape[0], cfg.batch_size, seed)
    module = net
    with warnings.catch_warnings():
        if noise is not None:
            from opacus import PrivacyEngine

            warnings.simplefilter("ignore")  # Opacus warns about secure RNG and full backward hooks
            module, opt, loader = PrivacyEngine(accountant="rdp").make_private(
                module=net, optimizer=opt, data_loader=loader, noise_multiplier=noise,
                max_grad_norm=cfg.max_grad_norm, poisson_sampling=True,
                noise_generator=None if noise_seed is None else torch.Generator().manual_seed(noise_seed))
        losses = train_epochs(module, X, text, loader, opt, local_epochs, cfg.keep_prob, np.random.default_rng(seed))
    state = {k.removeprefix("_module."): v for k, v in module.state_dict().items()}
    return {k: v.detach().numpy().copy() for k, v in state.items() if k != "text"}, losses[-1]


def _party_noise(cfg, tcfg, sizes: list[int], delta: float) -> list[float | None]:
    """Each party's DP-SGD noise multiplier: a user lives on one party, so their privacy loss
    is the composition of that party's steps only (parallel composition across parties),
    counted as if the party trained in every round: rounds x local_epochs x its number of
    batches, at sample rate 1 / #batches (as Opacus's Poisson loader), together with the
    party's noisy popularity release. None without dp_epsilon."""
    if tcfg.dp_epsilon is None:
        return [None] * len(sizes)
    from longrec.privacy.accounting import calibrate_noise

    prior = tcfg.prior_noise if tcfg.popularity_prior else None
    by_batches: dict[int, float] = {}  # parties with as many batches share a calibration (seconds each)
    out = []
    for n in sizes:
        b = max(1, -(-n // min(tcfg.batch_size, n)))  # DataLoader's len: ceil(n / batch)
        if b not in by_batches:
            by_batches[b] = calibrate_noise(tcfg.dp_epsilon, delta, 1.0 / b, cfg.rounds * cfg.local_epochs * b,
                                            prior, tcfg.accountant)
        out.append(by_batches[b])
    return out


def _parties_per_round(fraction: float, n: int) -> int:
    return max(1, int(round(fraction * n)))


def _party_seed(cfg, rnd: int, party: int) -> int:
    """The seed of one party's local training in one round (the same on every engine)."""
    return cfg.seed * 100_003 + rnd * 1009 + int(party)


def _flower_env() -> None:
    """Set before Flower is imported: no telemetry, Ray's duplicate-log folding off."""
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def _simulate(server_app, client_app, n_parties: int, cfg, verbose: bool) -> None:
    """Run a Flower simulation (Ray backend) with one CPU share per party and quiet logs."""
    import logging

    from flwr.simulation import run_simulation

    if not verbose:
        logging.getLogger("flwr").setLevel(logging.WARNING)
    backend = {"client_resources": {"num_cpus": cfg.client_cpus, "num_gpus": 0.0},
               "init_args": {"logging_level": "ERROR", "log_to_driver": False, "include_dashboard": False}}
    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=n_parties,
                   backend_config=backend, verbose_logging=False)


def _fedavg(results: list[tuple[dict, int]]) -> dict[str, np.ndarray]:
    total = sum(n for _, n in results)
    return {k: sum(a[k] * (n / total) for a, n in results).astype(np.float32) for k in results[0][0]}


def run_federated(cfg: FederatedConfig, data_dir: str | None = None, verbose: bool = False,
                  split: dict | None = None) -> dict[str, Any]:
    """Train the two-tower model federatedly; returns a report (curve, NDCG@10, wall time).

    split: {"train", "valid", "test"} Datasets to use instead of loading cfg.dataset."""
    from longrec.data.registry import load_split
    from longrec.metrics.ranking import evaluate
    from longrec.models.validation import valid_ndcg
    from longrec.privacy.twotower import DPTwoTower

    if data_dir:
        os.environ["LONGREC_DATA_DIR"] = data_dir
    split = split or load_split(cfg.dataset, cfg.protocol)
    train, valid, test = split["train"], split["valid"], split["test"]
    mcfg = {**cfg.model, "seed": cfg.seed}
    if mcfg.get("dp_epsilon") is not None:
        from longrec.privacy.accounting import require_opacus
        require_opacus()
    model = DPTwoTower(mcfg).fit_untrained(train)  # vocabulary, text, initial net; the rounds below train
    X = model.training_matrix()
    parts = partition_users(model.vocab_.users.ids, train.users, cfg.partition, cfg.n_clients, cfg.zip_digits, cfg.seed)
    rows = [model.vocab_.users.lookup(p) for p in parts]
    client_X = [X[r] for r in rows]
    sizes = [len(r) for r in rows]
    text, tcfg = model.text_, model.config
    if cfg.secure_aggregation and cfg.engine != "flower":
        raise ConfigError("secure_aggregation needs engine = \"flower\" (SecAgg+ is Flower's protocol).")
    if tcfg.reproducible_noise:
        raise ConfigError("reproducible_noise goes at the top level of a federated config (it decides every party's "
                          "noise), not in [model]; move it up.")
    per_round = _parties_per_round(cfg.fraction_train, len(parts))
    if cfg.secure_aggregation and per_round < 2:
        raise ConfigError(f"secure aggregation needs at least 2 parties per round; this config selects {per_round} "
                          f"of {len(parts)}. Raise fraction_train or the number of parties, or turn "
                          "secure_aggregation off.")
    if tcfg.popularity_prior:
        # each party sends the sum of its users' normalised rows once; the server adds them up.
        # With secure_aggregation the sum goes through one SecAgg+ round (the server sees only
        # the total); otherwise in the clear, each party's sums visible to the server
        import torch

        from longrec.privacy.twotower_train import popularity_counts, prior_from_counts
        counts = [popularity_counts(Xk) for Xk in client_X]
        if tcfg.dp_epsilon is not None:  # each party releases its sums with Gaussian noise (sensitivity 1 per user)
            rng = np.random.default_rng([cfg.seed, 7] if cfg.reproducible_noise else None)
            counts = [c + rng.normal(0.0, tcfg.prior_noise, c.shape) for c in counts]
        c = secure_sum(counts, sizes, cfg, verbose) if cfg.secure_aggregation else np.sum(counts, axis=0)
        model.net_.prior.copy_(torch.from_numpy(prior_from_counts(c)))
    curve: list[tuple[int, float, float]] = []
    t0 = time.perf_counter()

    def evaluate_round(rnd: int, arrays: dict[str, np.ndarray]) -> float | None:
        if rnd == 0 or (rnd % cfg.eval_every and rnd != cfg.rounds):
            return None
        model.set_arrays(arrays)
        v = valid_ndcg(model, valid)
        curve.append((rnd, round(v, 6), round(time.perf_counter() - t0, 2)))
        if verbose:
            print(f"round {rnd}: valid NDCG@10 {v:.4f} ({time.perf_counter() - t0:.1f}s)", flush=True)
        return v

    initial = model.get_arrays()
    delta = tcfg.dp_delta if tcfg.dp_delta is not None else 1.0 / sum(sizes)
    noises = _party_noise(cfg, tcfg, sizes, delta)
    model.privacy_ = {"private": tcfg.dp_epsilon is not None}  # evaluation serves users as the saved model will

    def local(arrays: dict[str, np.ndarray], pid: int, rnd: int) -> dict[str, np.ndarray]:
        """Party `pid`'s update in round `rnd` (the same seeds on every engine). A private party's
        sampling and noise come from OS entropy unless reproducible_noise: a seed the server knows
        would let it regenerate the noise, and the sample (privacy amplification needs it secret)."""
        public = noises[pid] is None or cfg.reproducible_noise
        seed = noise_seed(_party_seed(cfg, rnd, pid), public)
        # a secret noise stream apart from the sampler's: one seed for both would tie the noise to who was sampled
        nseed = None if public else noise_seed(0, False)
        return _local_train(arrays, client_X[pid], text, tcfg, cfg.local_epochs, seed, noises[pid], nseed)[0]

    if cfg.engine == "local":
        final = _run_local(cfg, initial, local, sizes, evaluate_round)
    elif cfg.secure_aggregation:
        final = _run_flower_secagg(cfg, initial, local, sizes, evaluate_round, verbose)
    else:
        final = _run_flower(cfg, initial, local, sizes, evaluate_round, verbose)
    wall = time.perf_counter() - t0
    model.set_arrays(final)
    best = max(curve, key=lambda c: c[1]) if curve else None
    hist = valid.interactions
    recs = model.recommend(users=test.interactions["user_id"].unique(), histories=hist, k=10)
    test_ndcg = evaluate(recs, test.interactions[["user_id", "item_id"]], ks=(10,))["NDCG@10"]
    report = {
        "dataset": cfg.dataset, "protocol": cfg.protocol, "partition": cfg.partition, "n_parties": len(parts),
        "party_sizes": sizes, "rounds": cfg.rounds, "local_epochs": cfg.local_epochs, "engine": cfg.engine,
        "secure_aggregation": cfg.secure_aggregation,
        "privacy": {"private": False} if tcfg.dp_epsilon is None else privacy_record(
            "DP-SGD on each party (Opacus, Poisson sampling); users are disjoint across parties (parallel "
            "composition)", epsilon_target=tcfg.dp_epsilon, delta=delta, reproducible_noise=cfg.reproducible_noise,
            noise_multipliers=[round(float(x), 5) for x in noises], max_grad_norm=tcfg.max_grad_norm,
            noise_seed=noise_record(cfg.reproducible_noise) + ("" if cfg.reproducible_noise else ", per party and round"),
            popularity_prior=None if not tcfg.popularity_prior else {
                "mechanism": "Gaussian per party, per-user L2 norm 1", "noise_multiplier": tcfg.prior_noise}),
        "max_abs_parameter": round(float(max(np.abs(v).max() for v in final.values())), 4),
        "valid_curve": curve, "best_round": best[0] if best else None,
        "final_valid_ndcg@10": curve[-1][1] if curve else None, "test_ndcg@10": round(float(test_ndcg), 6),
        "wall_seconds": round(wall, 2), "model": tcfg.model_dump(),
    }
    model.privacy_ = report["privacy"]
    model.meta_["privacy"] = report["privacy"]
    model.meta_["federated"] = {k: v for k, v in report.items() if k != "model"}
    model.fit_info_.pop("loss_curve", None)
    if cfg.output:
        model.save(cfg.output)
        report["output"] = str(cfg.output)
    return report


def _run_local(cfg, initial, local, sizes, evaluate_round) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(cfg.seed)
    arrays = initial
    n = len(sizes)
    for rnd in range(1, cfg.rounds + 1):
        chosen = np.sort(rng.choice(n, size=_parties_per_round(cfg.fraction_train, n), replace=False))
        results = []
        for c in chosen:
            results.append((local(arrays, int(c), rnd), sizes[c]))
        arrays = _fedavg(results)
        evaluate_round(rnd, arrays)
    return arrays


def _run_flower(cfg, initial, local, sizes, evaluate_round, verbose) -> dict[str, np.ndarray]:
    _flower_env()
    try:
        import torch
        from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
        from flwr.clientapp import ClientApp
        from flwr.serverapp import Grid, ServerApp
        from flwr.serverapp.strategy import FedAvg
        import flwr.simulation  # noqa: F401  (the simulation extra)
    except ImportError as e:
        raise LongrecError(f"engine='flower' needs Flower: pip install 'flwr[simulation]' ({e}); "
                           "or set engine = \"local\" in the config.") from None
    def to_record(arrays: dict[str, np.ndarray]):
        return ArrayRecord(torch_state_dict={k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()})

    def from_record(rec) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in rec.to_torch_state_dict().items()}

    client_app = ClientApp()

    @client_app.train()
    def train(msg: Message, context: Context) -> Message:
        pid = int(context.node_config["partition-id"])
        rnd = int(msg.content["config"]["server-round"])
        new = local(from_record(msg.content["arrays"]), pid, rnd)
        metrics = MetricRecord({"num-examples": int(sizes[pid])})
        return Message(content=RecordDict({"arrays": to_record(new), "metrics": metrics}), reply_to=msg)

    out: dict[str, Any] = {}
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        n = len(sizes)
        strategy = FedAvg(fraction_train=cfg.fraction_train, fraction_evaluate=0.0,
                          min_train_nodes=_parties_per_round(cfg.fraction_train, n), min_available_nodes=n)

        def central_eval(rnd: int, rec) -> MetricRecord | None:
            v = evaluate_round(rnd, from_record(rec))
            return None if v is None else MetricRecord({"valid_ndcg@10": v})

        result = strategy.start(grid=grid, initial_arrays=to_record(initial), num_rounds=cfg.rounds,
                                train_config=ConfigRecord({}), evaluate_fn=central_eval)
        out["arrays"] = from_record(result.arrays)

    _simulate(server_app, client_app, len(sizes), cfg, verbose)
    if "arrays" not in out:
        raise LongrecError("the Flower simulation ended without a result (see the log above); "
                           "try engine = \"local\" to check the training itself.")
    return out["arrays"]


def _run_flower_secagg(cfg, initial, local, sizes, evaluate_round, verbose) -> dict[str, np.ndarray]:
    """FedAvg with Flower's SecAgg+ (Bell et al., CCS 2020): each party masks its update with
    pairwise masks secret-shared among `secagg_num_shares` peers, so the server learns only
    the weighted sum. The local training, seeds and weights are those of `_run_flower`, so the
    result equals plain FedAvg up to SecAgg+'s quantisation."""
    keys = list(initial)

    def party_fit(pid: int, rnd: int, params: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
        new = local(dict(zip(keys, params)), pid, rnd)
        return [new[k] for k in keys], int(sizes[pid])

    final = _secagg_rounds([initial[k] for k in keys], party_fit, cfg, len(sizes), cfg.rounds, cfg.fraction_train,
                           float(max(sizes)), lambda rnd, arrs: evaluate_round(rnd, dict(zip(keys, arrs))), verbose)
    return dict(zip(keys, final))


def secure_sum(vectors: list[np.ndarray], bounds: list[int], cfg, verbose: bool = False) -> np.ndarray:
    """Σ_k vectors[k] through one SecAgg+ round, the server learning only the sum. Party k
    sends vectors[k] / bounds[k] (in [-1, 1] when |vectors[k]| <= bounds[k], inside SecAgg+'s
    clipping range) with weight bounds[k]; the weighted mean times Σ bounds is the sum."""
    def party_fit(pid: int, rnd: int, params: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
        return [np.asarray(vectors[pid] / max(bounds[pid], 1), dtype=np.float32)], int(max(bounds[pid], 1))

    one = _secagg_rounds([np.zeros_like(vectors[0], dtype=np.float32)], party_fit, cfg, len(vectors), 1, 1.0,
                         float(max(max(bounds), 1)), None, verbose)
    return one[0].astype(np.float64) * sum(max(b, 1) for b in bounds)


def _secagg_rounds(initial: list[np.ndarray], party_fit, cfg, n: int, rounds: int, fraction: float,
                   max_weight: float, evaluate, verbose: bool) -> list[np.ndarray]:
    """`rounds` rounds of weighted averaging over `n` parties under SecAgg+, Flower's implementation for its
    strategy/NumPyClient API (a fit workflow plus a client mod). party_fit(pid, round,
    params) -> (arrays, weight) is a party's update; evaluate(round, arrays) sees each
    aggregate. Returns the last aggregate."""
    _flower_env()
    try:
        from flwr.client import ClientApp, NumPyClient
        from flwr.client.mod import secaggplus_mod
        from flwr.common import ndarrays_to_parameters
        from flwr.server import LegacyContext, ServerApp, ServerConfig
        from flwr.server.strategy import FedAvg
        from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
        import flwr.simulation  # noqa: F401  (the simulation extra)
    except ImportError as e:
        raise LongrecError(f"secure_aggregation needs Flower: pip install 'flwr[simulation]' ({e}).") from None

    class Party(NumPyClient):
        def __init__(self, pid: int) -> None:
            self.pid = pid

        def fit(self, parameters, config):
            arrays, weight = party_fit(self.pid, int(config["server-round"]), list(parameters))
            return arrays, weight, {}

    client_app = ClientApp(client_fn=lambda context: Party(int(context.node_config["partition-id"])).to_client(),
                           mods=[secaggplus_mod])
    out: dict[str, Any] = {}

    def central_eval(rnd: int, ndarrays, config):
        arrays = [np.asarray(v, dtype=np.float32) for v in ndarrays]
        out["arrays"] = arrays
        v = evaluate(rnd, arrays) if evaluate is not None else None
        return 0.0, ({} if v is None else {"valid_ndcg@10": v})

    server_app = ServerApp()

    @server_app.main()
    def main(grid, context) -> None:
        strategy = FedAvg(fraction_fit=fraction, fraction_evaluate=0.0, min_fit_clients=_parties_per_round(fraction, n),
                          min_available_clients=n, initial_parameters=ndarrays_to_parameters(initial),
                          evaluate_fn=central_eval, on_fit_config_fn=lambda rnd: {"server-round": rnd})
        ctx = LegacyContext(context=context, config=ServerConfig(num_rounds=rounds), strategy=strategy)
        workflow = SecAggPlusWorkflow(num_shares=cfg.secagg_num_shares, reconstruction_threshold=cfg.secagg_threshold,
                                      max_weight=max_weight, clipping_range=cfg.secagg_clip)
        DefaultWorkflow(fit_workflow=workflow)(grid, ctx)

    _simulate(server_app, client_app, n, cfg, verbose)
    # evaluate_fn also sees the initial arrays (round 0) and keeps being called when SecAgg+ halts,
    # so "no aggregate" shows as arrays that never moved
    final = out.get("arrays")
    if final is None or all(np.array_equal(f, i) for f, i in zip(final, initial)):
        raise LongrecError("the SecAgg+ rounds produced no aggregate (see the log above); check that "
                           "secagg_num_shares and secagg_threshold suit the parties selected per round.")
    return final
