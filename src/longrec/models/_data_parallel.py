"""Data-parallel training of a torch model on Ray Train (lm-seq, lm-twotower, bpr).

`fit_data_parallel` runs the model's own training loop (`model._train(X, valid, text, comm)`)
in N Ray Train workers (torch.distributed over gloo on CPU; Ray Train sets up the process
group). Every worker starts from the same weights, takes its share of every batch, and the
gradients are averaged across workers after each backward pass (one all-reduce of the
flattened gradients), so all workers hold the same weights at every step. Validation is
exact: the first worker scores the whole validation set and its score — and its clock, for
`max_seconds` — decide for everyone. The first worker's learned state (`model._state()`, the
arrays a saved model holds: its best weights) comes back as a safetensors checkpoint and is put
into the driver's model with `model._set_state`; the saved model is the same as a one-process fit's.

A model takes part by (1) a `_train(X, valid, text, comm=None)` that is its one-process fit when
`comm` is None and, given a `Communicator`, takes its rank's share of every batch, calls
`comm.average_gradients(...)` after each backward pass, lets only the worker with `valid` score
(`comm.score_on_first`) and passes `agree=comm.agree` to the epoch loop; (2) config fields
`workers`, `ray_address` and `num_threads`.

Ray is an optional dependency (the `sim` extra), imported only here.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from longrec.errors import ConfigError


@dataclass
class Communicator:
    """What a worker's training loop needs from its peers."""

    rank: int
    world: int
    threads: int
    has_valid: bool

    def average_gradients(self, net) -> None:
        """Average the gradients of `net` (a torch module, or an iterable of its parameters)."""
        import torch
        import torch.distributed as dist

        params = [p for p in (net.parameters() if hasattr(net, "parameters") else net) if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        start = 0
        for p in params:
            n = p.numel()
            p.grad = flat[start:start + n].view_as(p).clone()
            start += n

    def from_first(self, value: float) -> float:
        import torch
        import torch.distributed as dist

        t = torch.tensor([float(value)], dtype=torch.float64)
        dist.broadcast(t, 0)
        return float(t.item())

    def agree(self, flag: bool) -> bool:
        return self.from_first(1.0 if flag else 0.0) > 0.5

    def score_on_first(self, score) -> float:
        """`score()` on the first worker (the one with the validation data), its value sent to
        every worker. Scoring sets the model's own torch thread count (`num_threads`, the whole
        fit's); this worker's share is put back after, or the first worker would train on more
        threads than its CPUs from then on (oversubscribed: several times slower, all waiting)."""
        import torch

        value = 0.0
        if self.rank == 0:
            value = score()
            torch.set_num_threads(self.threads)
        return self.from_first(value)


def _worker(config: dict) -> None:
    import resource

    import numpy as np
    import ray.train
    import torch
    import torch.distributed
    from safetensors.numpy import save_file

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    model = config["model"]
    comm = Communicator(rank, world, config["threads"], config["valid"] is not None)
    info = model._train(config["X"], config["valid"] if rank == 0 else None, config["text"], comm)
    use = resource.getrusage(resource.RUSAGE_SELF)
    peaks: list = [None] * world  # every worker's peak resident memory, CPU time and threads, for fit_info
    torch.distributed.all_gather_object(peaks, (use.ru_maxrss / 1024, use.ru_utime + use.ru_stime,
                                                torch.get_num_threads()))
    info["worker_peak_rss_mb"] = [round(float(p[0]), 1) for p in peaks]
    info["worker_cpu_seconds"] = [round(float(p[1]), 1) for p in peaks]
    info["worker_threads"] = [int(p[2]) for p in peaks]
    if rank == 0:
        out = Path(tempfile.mkdtemp(prefix="longrec-dp-"))
        save_file({k: np.ascontiguousarray(v) for k, v in model._state().items()}, str(out / "state.safetensors"))
        (out / "fit_info.json").write_text(json.dumps(info, default=float))
        ray.train.report({"done": 1}, checkpoint=ray.train.Checkpoint.from_directory(str(out)))
    else:
        ray.train.report({"done": 1})


def fit_data_parallel(model, X, valid, text, workers: int, address: str | None, threads: int) -> dict:
    """Train `model` (fitted up to its training loop: vocabulary, histories, popularity, item
    text) with `workers` Ray Train workers; its learned state (the first worker's best weights)
    is set with `model._set_state`. Returns the fit_info entries. `text` is passed to `_train`."""
    try:
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer
    except ImportError:
        raise ConfigError("workers > 1 trains on Ray Train: install it with pip install 'longrec[sim]' "
                          "(or 'ray[train]'), or set workers = 1.") from None
    import torch
    from safetensors.numpy import load_file

    per_worker = max(1, threads // workers)
    started = False
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        started = True
    store = Path(tempfile.mkdtemp(prefix="longrec-ray-"))
    try:
        free = ray.cluster_resources().get("CPU", 0)
        if free < workers * per_worker:
            raise ConfigError(f"workers = {workers} with {per_worker} thread(s) each needs {workers * per_worker} "
                              f"CPUs; the Ray cluster has {free:g}. Use fewer workers or threads.")
        trainer = TorchTrainer(
            _worker,
            train_loop_config={"model": model, "X": X, "valid": valid, "text": text, "threads": per_worker},
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=torch.cuda.is_available(),
                                         resources_per_worker={"CPU": per_worker}),
            run_config=RunConfig(storage_path=str(store), name="fit"),
        )
        result = trainer.fit()
        if result.error is not None or result.checkpoint is None:
            raise ConfigError(f"data-parallel training failed: {result.error}")
        with result.checkpoint.as_directory() as d:
            state = load_file(str(Path(d) / "state.safetensors"))
            info = json.loads((Path(d) / "fit_info.json").read_text())
    finally:
        shutil.rmtree(store, ignore_errors=True)
        if started:
            ray.shutdown()
    model._set_state(state)
    if "valid_curve" in info:
        info["valid_curve"] = [tuple(c) for c in info["valid_curve"]]
    info["workers"] = workers
    return info


def refuse_workers(values, name: str, reason: str):
    """For the config of a model that trains in one process (the differentially private ones): a
    ConfigError when it is asked for workers > 1, instead of pydantic's "unknown field".
    Call from a `model_validator(mode="before")`; returns `values` unchanged."""
    if isinstance(values, dict) and isinstance(values.get("workers"), int) and values["workers"] > 1:
        raise ConfigError(f"{name} trains in one process ({reason}), so workers = {values['workers']} is not "
                          "supported. Drop workers (--workers / --ray-address); data-parallel training on Ray is "
                          "available for lm-seq, lm-twotower and bpr, without differential privacy.")
    return values
