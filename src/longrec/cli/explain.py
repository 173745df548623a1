"""`longrec explain --model DIR --user U --item I [--history FILE ...] [--generator template|local|http]`:
print one JSON object explaining why the model recommends the item to the user (the contract
of `longrec.explain.explain`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def explain(
    model: Path = typer.Option(..., "--model", help="model directory (from `longrec train`)"),
    user: str = typer.Option(..., "--user", help="user id"),
    item: str = typer.Option(..., "--item", help="recommended item id to explain"),
    history: list[Path] = typer.Option([], "--history", help="the user's interactions known at inference time (repeatable)"),
    generator: str = typer.Option("template", "--generator", help="template (default), local (llama.cpp Gemma) or http "
                                  "(OpenAI-compatible server at $LONGREC_GENERATOR_URL)"),
) -> None:
    """Explain a recommendation: supporting history items, shared attributes, a grounded sentence."""
    import pandas as pd

    from longrec.data.readers import read_interactions
    from longrec.errors import ModelError
    from longrec.explain import explain as run_explain
    from longrec.models.base import Recommender

    if not Path(model).is_dir():
        raise ModelError(f"--model {str(model)!r} is not a model directory; train one with `longrec train`.")
    m = Recommender.load(model)
    hist = pd.concat([read_interactions(h) for h in history], ignore_index=True) if history else None
    out = run_explain(m, user, item, history=hist, generator=generator)
    typer.echo(json.dumps(out, ensure_ascii=False))

