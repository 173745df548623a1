"""The epoch loop shared by the gradient-trained models (bpr, lm-seq, lm-twotower): early
stopping on a validation score, an optional wall-clock cap, keeping the best epoch."""

from __future__ import annotations

import time
from typing import Any, Callable


class Budget:
    """The wall-clock cap (`max_seconds`) of one fit, started when it is made. The epoch loop
    checks it after each epoch; a batch loop checks `spent()` between batches to stop inside an
    epoch (then the partial epoch is scored and the best state so far is kept as usual)."""

    def __init__(self, max_seconds: float | None):
        self.max_seconds = max_seconds
        self.t0 = time.perf_counter()

    def spent(self) -> bool:
        return self.max_seconds is not None and time.perf_counter() - self.t0 > self.max_seconds


def train_with_early_stopping(run_epoch: Callable[[int], None], score: Callable[[], float] | None,
                              snapshot: Callable[[], Any], restore: Callable[[Any], None], *,
                              epochs: int, eval_every: int = 1, patience: int = 10,
                              max_seconds: float | None = None, progress: str | None = None,
                              agree: Callable[[bool], bool] | None = None, budget: Budget | None = None,
                              estimate: str | None = None) -> dict:
    """Run `run_epoch(epoch)` up to `epochs` times. Every `eval_every` epochs (and after the last
    one, or when `max_seconds` has passed) `score()` is taken; `snapshot()` keeps the best state
    and training stops after `patience` checks without improvement. The best state is put back
    with `restore`. `score=None` trains all epochs without checks. Returns the fit_info entries:
    train_seconds, and with checks best_epoch, valid_ndcg@10 (6 decimals), seconds_to_best and
    valid_curve [(epoch, score, seconds)].

    agree: data-parallel workers must stop together; `agree(out_of_time)` returns the first
    worker's value to every worker (score() must likewise return the same value everywhere).

    budget: the fit's `Budget` when `run_epoch` also checks it between batches (it then replaces
    `max_seconds`), so a fit stops at the cap even inside a long epoch.

    estimate: a model name; after the first epoch, when the whole fit may take over 30 s, one
    line on stderr (when progress is on or stderr is a terminal) says how long an epoch took and
    the most the fit can take (epochs x that, capped by max_seconds; early stopping may end it sooner)."""
    best, best_state, bad, curve = -1.0, None, 0, []
    budget = budget or Budget(max_seconds)
    t0 = budget.t0
    it = range(epochs)
    if progress:
        from rich.progress import track
        it = track(it, description=progress)
    for epoch in it:
        e0 = time.perf_counter()
        run_epoch(epoch)
        if epoch == 0 and estimate is not None:
            _say_estimate(estimate, time.perf_counter() - e0, epochs, budget.max_seconds, bool(progress))
        last = epoch + 1 == epochs
        out_of_time = budget.spent()
        if agree is not None:
            out_of_time = agree(out_of_time)
        if score is not None and ((epoch + 1) % eval_every == 0 or last or out_of_time):
            s = score()
            curve.append((epoch + 1, round(s, 6), round(time.perf_counter() - t0, 1)))
            if s > best:
                best, bad = s, 0
                best_state = (snapshot(), epoch + 1, time.perf_counter() - t0)
            else:
                bad += 1
                if bad >= patience:
                    break
        if out_of_time:
            break
    info: dict = {}
    if best_state is not None:
        restore(best_state[0])
        info = {"best_epoch": best_state[1], "valid_ndcg@10": round(best, 6), "seconds_to_best": round(best_state[2], 1),
                "valid_curve": curve}
    info["train_seconds"] = round(time.perf_counter() - t0, 1)
    return info


def fit_estimate(epoch_seconds: float, epochs: int, max_seconds: float | None) -> float:
    """The most a fit of `epochs` epochs can take when one takes `epoch_seconds` (capped by
    `max_seconds`, plus the epoch that runs past it)."""
    total = epoch_seconds * epochs
    if max_seconds is not None:
        total = min(total, max_seconds + epoch_seconds)
    return total


def _say_estimate(name: str, epoch_seconds: float, epochs: int, max_seconds: float | None,
                  progress: bool) -> None:
    from longrec.models._progress import progress_enabled, report

    total = fit_estimate(epoch_seconds, epochs, max_seconds)
    if epochs > 1 and total > 30:
        cap = f", capped by max_seconds = {max_seconds:g}" if max_seconds is not None else ""
        report(progress or progress_enabled(None),
               f"{name}: the first epoch took {epoch_seconds:.1f} s; the fit takes at most ~{total / 60:.1f} min "
               f"({epochs} epochs{cap}; early stopping may end it sooner)")


def module_checkpoints(net) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    """(snapshot, restore) for a torch module's weights, for train_with_early_stopping."""
    return (lambda: {k: v.clone() for k, v in net.state_dict().items()}), net.load_state_dict


def run_training(model, X, valid, text=None) -> dict:
    """A torch model's training: its own loop `model._train(X, valid, text)` in this process, or
    with `config.workers > 1` the same loop in data-parallel Ray Train workers. Returns the
    fit_info entries."""
    cfg = model.config
    if cfg.workers > 1:
        from longrec.models._data_parallel import fit_data_parallel

        return fit_data_parallel(model, X, valid, text, cfg.workers, cfg.ray_address, cfg.num_threads)
    return model._train(X, valid, text)
