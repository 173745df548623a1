"""`longrec federated CONFIG.toml [--out DIR] [--report FILE] [--local]`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def federated(
    config: Path = typer.Argument(..., help="federated TOML (see examples/federated_ml100k.toml, docs/privacy.md)"),
    out: Optional[Path] = typer.Option(None, "--out", help="save the final global model here (overrides `output`)"),
    report: Optional[Path] = typer.Option(None, "--report", help="write the run report (JSON) here"),
    local: bool = typer.Option(False, "--local", help="plain in-process FedAvg loop instead of Flower's simulation engine"),
) -> None:
    """Train the two-tower model across silos with FedAvg (Flower simulation); raw data stays with each party."""
    import json

    from longrec.cli._common import console
    from longrec.privacy.federated import FederatedConfig, run_federated

    cfg = FederatedConfig.from_toml(config)  # config errors surface before any work
    if out is not None:
        cfg.output = str(out)
    if local:
        cfg.engine = "local"
    console.print(f"federated {cfg.dataset}/{cfg.protocol}: partition={cfg.partition}, {cfg.rounds} rounds, "
                  f"engine={cfg.engine} ...", highlight=False)
    res = run_federated(cfg, verbose=True)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(res, indent=2))
    console.print(f"{res['n_parties']} parties, best round {res['best_round']}, valid NDCG@10 "
                  f"{res['final_valid_ndcg@10']}, test NDCG@10 {res['test_ndcg@10']}, {res['wall_seconds']} s"
                  + (f"; model saved to {res['output']}" if res.get("output") else ""), highlight=False)
