"""`longrec simulate CONFIG.toml --out DIR [--ray] [--ray-address ADDRESS]`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def simulate(
    config: Path = typer.Argument(..., help="simulation TOML (see examples/simulate_ml100k.toml, docs/simulate.md)"),
    out: Path = typer.Option(..., "--out", help="folder for metrics.parquet, report.html and the PNGs"),
    ray: bool = typer.Option(False, "--ray", help="run policies x seeds as Ray tasks (local ray.init() unless --ray-address)"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="address of an existing Ray cluster (implies --ray)"),
) -> None:
    """Simulate policies on a world fitted to real data over many steps; write metrics and an offline HTML report."""
    from longrec.cli._common import console
    from longrec.simulate.config import load_config
    from longrec.simulate.loop import simulate as run

    cfg = load_config(config)  # every config / dataset error surfaces here, before any work
    use_ray = ray or ray_address is not None
    n_worlds = max(1, len(cfg.worlds))
    n = len(cfg.policies) * len(cfg.simulation.seeds) * n_worlds
    worlds = f" x {n_worlds} worlds" if cfg.worlds else ""
    console.print(f"simulating {len(cfg.policies)} policies x {len(cfg.simulation.seeds)} seeds{worlds} = {n} runs"
                  f"{' on Ray' if use_ray else ''} ...", highlight=False)
    run(cfg, out, use_ray=use_ray, address=ray_address, log=lambda m: console.print(f"  {m}", highlight=False))
    if cfg.worlds:
        console.print(f"[green]wrote[/] {out}/<world>/ (metrics.parquet, report.html) and {out}/study.md, "
                      f"{out}/study.json", highlight=False)
    else:
        console.print(f"[green]wrote[/] {out}/metrics.parquet, {out}/report.html and PNGs", highlight=False)
