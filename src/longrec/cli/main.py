"""`longrec` commands. Each is a few lines over `longrec.pipeline` and friends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from longrec.cli._common import console, handle_errors, parse_ks

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich",
                  help="longrec: recommenders for the language-model era, judged on the long term.")


@app.command()
@handle_errors
def train(
    model: str = typer.Option(..., "--model", help="pop, itemknn, ease, bpr, ... (see `longrec models`)"),
    train: Path = typer.Option(..., "--train", help="training interactions: CSV/Parquet/.inter"),
    out: Path = typer.Option(..., "--out", help="model directory to write"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML overriding the model's defaults"),
    valid: Optional[Path] = typer.Option(None, "--valid", help="validation interactions (early stopping / tuning)"),
    items: Optional[Path] = typer.Option(None, "--items", help="item table (.item or CSV/Parquet with item_id)"),
    users: Optional[Path] = typer.Option(None, "--users", help="user table (.user or CSV/Parquet with user_id)"),
    seed: Optional[int] = typer.Option(None, "--seed", help="random seed (overrides the config)"),
    dp_epsilon: Optional[float] = typer.Option(None, "--dp-epsilon",
                                               help="user-level differential privacy at this ε (lm-twotower, lm-linear-dp, lm-seq)"),
) -> None:
    """Train a model on interaction files and save it to a directory."""
    from longrec.models._progress import console as fit_console  # models' progress lines print above the spinner
    from longrec.pipeline import train_from_files

    with fit_console.status(f"training {model} ..."):
        m = train_from_files(model, train=train, out=out, valid=valid, items=items, users=users,
                             config=config, seed=seed, dp_epsilon=dp_epsilon)
    info = m.meta_.get("fit_info") or {}
    console.print(f"[green]saved[/] {m.name} to {out} ({m.meta_['n_users']:,} users, {m.meta_['n_items']:,} items, "
                  f"{m.meta_['fit_seconds']} s){' ' + json.dumps(info, default=str) if info else ''}", highlight=False)


@app.command()
@handle_errors
def recommend(
    model: Path = typer.Option(..., "--model", help="model directory"),
    k: int = typer.Option(..., "--k", help="list length"),
    output: Path = typer.Option(..., "--output", help="RECS.csv to write (user_id,item_id,rank,score)"),
    history: list[Path] = typer.Option([], "--history", help="interactions known at inference time (repeatable)"),
    users: Optional[Path] = typer.Option(None, "--users", help="file with a user_id column"),
    all_users: bool = typer.Option(False, "--all-users", help="every user seen in training or history (default)"),
    candidates: Optional[Path] = typer.Option(None, "--candidates", help="file with an item_id column"),
    rerank: Optional[str] = typer.Option(None, "--rerank",
                                         help="re-ranker NAME:λ (mmr, calibrated, exposure, longtail, fair), e.g. mmr:0.3"),
) -> None:
    """Write top-K recommendations; training interactions and --history items are excluded."""
    from longrec.pipeline import recommend_to_file

    recs = recommend_to_file(model, k=k, output=output, histories=history, users=users, all_users=all_users,
                             candidates=candidates, progress=True, rerank=rerank)
    console.print(f"[green]wrote[/] {len(recs):,} rows for {recs['user_id'].nunique():,} users to {output}")


@app.command()
@handle_errors
def evaluate(
    recs: Path = typer.Option(..., "--recs", help="RECS.csv from `longrec recommend` (or anyone's)"),
    truth: Path = typer.Option(..., "--truth", help="held-out interactions"),
    output: Path = typer.Option(..., "--output", help="METRICS.json to write"),
    k: str = typer.Option("10", "--k", help="comma-separated cut-offs, e.g. 10,20"),
    catalog: Optional[Path] = typer.Option(None, "--catalog", help="candidate items for coverage/Gini (item_id column)"),
    users: Optional[Path] = typer.Option(None, "--users", help="user attributes (for --fairness)"),
    fairness: bool = typer.Option(False, "--fairness", help="add user-group and item-exposure fairness metrics"),
    train: Optional[Path] = typer.Option(None, "--train", help="training interactions for popularity/merit "
                                         "(default: the model directory named in RECS.csv.meta.json)"),
) -> None:
    """Score saved recommendations against held-out truth (exact METRICS.md definitions)."""
    from longrec.pipeline import evaluate_files

    res = evaluate_files(recs, truth, ks=parse_ks(k), catalog=catalog, output=output, users=users,
                         fairness=fairness, train=train)
    _print_metrics(res["metrics"])
    console.print(f"[green]wrote[/] {output}")


@app.command()
@handle_errors
def quickstart(
    dataset: str = typer.Option("ml-100k", "--dataset", help="registered name or folder with the P1 split files"),
    model: str = typer.Option("ease", "--model"),
    user: Optional[str] = typer.Option(None, "--user", help="whose recommendations to print (default: the first test user)"),
    out: Path = typer.Option(Path("runs/quickstart"), "--out", help="where to save the model and files"),
) -> None:
    """Load MovieLens-100K (P1 split), train EASE (λ tuned on valid), evaluate on test, show a user's list."""
    from longrec.quickstart import run_quickstart

    run_quickstart(dataset=dataset, model=model, user=user, out=out, console=console)


@app.command("models")
def list_models() -> None:
    """List the available model names."""
    from longrec.models.registry import available_models

    for name in available_models():
        typer.echo(name)


def _print_metrics(metrics: dict) -> None:
    from rich.table import Table

    t = Table("metric", "value")
    for name, v in metrics.items():
        t.add_row(name, f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(t)


OPTIONAL_COMMANDS = (
    ("longrec.cli.ask", "ask", "ask"),
    ("longrec.cli.explain", "explain", "explain"),
    ("longrec.cli.simulate", "simulate", "simulate"),
    ("longrec.cli.serve", "serve", "serve"),
    ("longrec.cli.federated", "federated", "federated"),
)


def _register_optional() -> None:
    """Commands contributed by other subpackages (each module defines one function and
    imports its heavy dependencies inside it). A module that fails to import still gets a
    command, which explains the failure instead of breaking the whole CLI."""
    import importlib

    for module, attr, name in OPTIONAL_COMMANDS:
        try:
            fn = getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as e:
            if e.name == module:
                continue
            fn = _broken(name, e)
        except (ImportError, AttributeError) as e:
            fn = _broken(name, e)
        app.command(name)(handle_errors(fn))


def _broken(name: str, err: Exception):
    def command() -> None:
        from longrec.errors import LongrecError

        raise LongrecError(f"`longrec {name}` is unavailable: {err}. Install the extra it needs "
                           "(e.g. `pip install -e '.[all]'`).")

    command.__doc__ = f"(unavailable: {err})"
    return command


_register_optional()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
