"""`longrec synth`: a synthetic dataset folder of any size, reproducible from a seed.

The work is `longrec.data.synth.synthesize`; this module parses flags and prints the counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def synth(
    out: Path = typer.Option(..., "--out", help="folder to write (new or empty; --overwrite replaces a previous synth output)"),
    users: int = typer.Option(..., "--users", help="number of users"),
    items: int = typer.Option(..., "--items", help="number of items"),
    interactions: int = typer.Option(..., "--interactions", help="number of interactions (exact; at least 3 per user)"),
    seed: int = typer.Option(0, "--seed", help="random seed: the same settings and seed give the same files"),
    categories: Optional[int] = typer.Option(None, "--categories", help="genres, the rank of the latent world (default: 20, at most one per item)"),
    skew: float = typer.Option(1.0, "--skew", help="Zipf exponent of item popularity inside a genre (0: uniform)"),
    stickiness: float = typer.Option(0.5, "--stickiness", help="probability that an interaction stays in the previous one's genre"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace a previous `longrec synth` output in --out"),
) -> None:
    """Generate a synthetic dataset (interactions.parquet, items.csv, train/valid/test.csv, dataset.toml) that --data accepts."""
    from rich.markup import escape
    from rich.progress import Progress

    from longrec.cli._common import console
    from longrec.data.synth import synthesize

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("generating", total=interactions)
        summary = synthesize(out, users=users, items=items, interactions=interactions, seed=seed,
                             overwrite=overwrite, categories=categories, skew=skew, stickiness=stickiness,
                             progress=lambda done, total: bar.update(task, completed=done))
    console.print(f"[green]wrote[/] {escape(str(out))}: {summary['interactions']:,} interactions, "
                  f"{summary['users']:,} users, {summary['items']:,} items (train {summary['train']:,} / valid "
                  f"{summary['valid']:,} / test {summary['test']:,})", highlight=False)
