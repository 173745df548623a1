"""`longrec experiment EXPERIMENT.toml --out DIR [--resume] [--ray] [--ray-address ADDRESS]`: run a
declarative experiment (longrec.experiment) and print its leaderboard; the report is DIR/report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def experiment(
    config: Path = typer.Argument(..., help="EXPERIMENT.toml (see docs/experiment.md, examples/*.toml)"),
    out: Path = typer.Option(..., "--out", help="folder for results.parquet, report.html, ... (new, empty, or "
                             "an earlier experiment's)"),
    resume: bool = typer.Option(False, "--resume", help="reuse the finished (model, seed) runs in --out whose "
                                "config and data are unchanged"),
    ray: bool = typer.Option(False, "--ray", help="fit the (model, seed) runs as Ray tasks, one CPU each, on a local "
                             "Ray runtime with this machine's CPUs (same results as without)"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="address of an existing Ray cluster "
                                              "(implies --ray)"),
) -> None:
    """Run every model of an experiment file on one dataset, test them against a baseline, write a report."""
    from longrec.cli._common import console
    from longrec.experiment import load_experiment, run_experiment
    from longrec.experiment.report import print_leaderboard

    cfg = load_experiment(config)
    res = run_experiment(cfg, out, resume=resume, log=lambda s: console.print(s, highlight=False),
                         use_ray=ray or ray_address is not None, ray_address=ray_address)
    from rich.console import Console

    print_leaderboard(res.leaderboard, cfg, Console())
    console.print(f"[green]report[/] {res.report}  (results.parquet, per_user.parquet, stats.parquet, "
                  f"experiment.lock.toml in {res.out})", highlight=False)
