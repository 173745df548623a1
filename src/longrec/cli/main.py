"""`longrec` commands. Each is a few lines over `longrec.pipeline` and friends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from rich.markup import escape

from longrec.cli._common import console, handle_errors, parse_ks
from longrec.errors import LongrecError

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich",
                  pretty_exceptions_show_locals=False,  # locals can hold passwords and user data
                  help="longrec: recommenders for the language-model era, judged on the long term.")


@app.command()
@handle_errors
def train(
    model: str = typer.Option(..., "--model", help="pop, itemknn, ease, bpr, ... (see `longrec models`)"),
    train: Optional[Path] = typer.Option(None, "--train", help="training interactions: CSV/Parquet/.inter"),
    out: Path = typer.Option(..., "--out", help="model directory to write"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML overriding the model's defaults"),
    valid: Optional[Path] = typer.Option(None, "--valid", help="validation interactions (early stopping / tuning)"),
    items: Optional[Path] = typer.Option(None, "--items", help="item table (.item or CSV/Parquet with item_id)"),
    users: Optional[Path] = typer.Option(None, "--users", help="user table (.user or CSV/Parquet with user_id)"),
    seed: Optional[int] = typer.Option(None, "--seed", help="random seed (overrides the config)"),
    dp_epsilon: Optional[float] = typer.Option(None, "--dp-epsilon",
                                               help="user-level differential privacy at this ε (lm-twotower, lm-linear-dp, lm-seq)"),
    workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                          help="data-parallel training processes on Ray Train (lm-seq)"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address",
                                              help="Ray cluster to train on (default: a local Ray)"),
    text_columns: Optional[str] = typer.Option(None, "--text-columns",
                                               help="item columns that make an item's text, in order, e.g. title,author,publisher"),
    duplicates: str = typer.Option("keep-last", "--duplicates",
                                   help="repeated (user, item) rows: keep-last, keep-first, drop, error, or keep-all "
                                        "(repeat consumption, for top-frequency / tifu-knn)"),
    data: Optional[Path] = typer.Option(None, "--data", help="a `longrec prepare` folder: train.csv, valid.csv, items.csv, users.csv"),
    sep: Optional[str] = typer.Option(None, "--sep", help="field separator of the interaction files (default: sniffed)"),
    encoding: Optional[str] = typer.Option(None, "--encoding", help="text encoding of the files, e.g. latin-1"),
    columns: Optional[str] = typer.Option(None, "--columns", help="interaction columns NAME=FILE_COLUMN,..., e.g. user_id=User-ID,item_id=ISBN"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace --out if it already holds a longrec model"),
) -> None:
    """Train a model on interaction files and save it to a directory."""
    from longrec.data.prepare import data_paths, reader_kwargs
    from longrec.models._progress import console as fit_console  # models' progress lines print above the spinner
    from longrec.pipeline import train_from_files

    if data is not None:
        if train is not None:
            raise LongrecError("pass either --data DIR or --train FILE, not both.")
        d = data_paths(data, "train")
        train, valid, items, users = d["train"], valid or d["valid"], items or d["items"], users or d["users"]
    if train is None:
        raise LongrecError("pass the training interactions: --train FILE, or --data DIR (a `longrec prepare` folder).")
    reader = reader_kwargs(sep, encoding, columns)
    if data is not None and data_paths(data, "recommend")["repeat_consumption"]:
        duplicates = "keep-all"  # repeat purchases count

    with fit_console.status(f"training {model} ..."):
        m = train_from_files(model, train=train, out=out, valid=valid, items=items, users=users,
                             config=config, seed=seed, dp_epsilon=dp_epsilon, workers=workers,
                             ray_address=ray_address, text_columns=text_columns,
                             duplicates=duplicates, reader=reader,
                             overwrite=overwrite)
    info = m.meta_.get("fit_info") or {}
    console.print(f"[green]saved[/] {m.name} to {escape(str(out))} ({m.meta_['n_users']:,} users, {m.meta_['n_items']:,} items, "
                  f"{m.meta_['fit_seconds']} s){' ' + escape(json.dumps(info, default=str)) if info else ''}", highlight=False)


@app.command()
@handle_errors
def recommend(
    model: Path = typer.Option(..., "--model", help="model directory"),
    k: int = typer.Option(..., "--k", help="list length"),
    output: Path = typer.Option(..., "--output", "--out",
                                help="RECS.csv to write (user_id,item_id,rank,score); with --ray, a .csv file "
                                     "or a Parquet dataset folder (any other path)"),
    history: list[Path] = typer.Option([], "--history", help="interactions known at inference time (repeatable)"),
    users: Optional[Path] = typer.Option(None, "--users", help="file with a user_id column"),
    all_users: bool = typer.Option(False, "--all-users", help="every user seen in training or history (default)"),
    candidates: Optional[Path] = typer.Option(None, "--candidates", help="file with an item_id column"),
    rerank: Optional[str] = typer.Option(None, "--rerank",
                                         help="re-ranker NAME:λ (mmr, calibrated, exposure, longtail, fair), e.g. mmr:0.3"),
    with_titles: bool = typer.Option(False, "--with-titles", help="add title (and author, ...) columns to RECS.csv"),
    keep_seen: bool = typer.Option(False, "--keep-seen",
                                   help="keep consumed items eligible (repeat consumption: groceries, re-orders)"),
    query: Optional[str] = typer.Option(None, "--query",
                                        help="a free-text intent for every listed user, fused with their history"),
    queries: Optional[Path] = typer.Option(None, "--queries", help="CSV user_id,query: one intent per user"),
    data: Optional[Path] = typer.Option(None, "--data", help="a `longrec prepare` folder: history = train (+ valid at --stage test), users = the stage's users"),
    stage: str = typer.Option("test", "--stage", help="with --data: test (history train+valid, users of test.csv) or valid"),
    sep: Optional[str] = typer.Option(None, "--sep", help="field separator of the interaction files (default: sniffed)"),
    encoding: Optional[str] = typer.Option(None, "--encoding", help="text encoding of the files, e.g. latin-1"),
    columns: Optional[str] = typer.Option(None, "--columns", help="interaction columns NAME=FILE_COLUMN,..., e.g. user_id=User-ID,item_id=ISBN"),
    ray: bool = typer.Option(False, "--ray", help="score the users in parallel on Ray Data (the same rows as without it)"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="with --ray: a Ray cluster (default: a local Ray)"),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="with --ray: scoring processes (default: one per CPU)"),
) -> None:
    """Write top-K recommendations; training interactions and --history items are excluded (unless --keep-seen)."""
    from longrec.data.prepare import data_paths, reader_kwargs
    from longrec.pipeline import recommend_to_file

    if data is not None:
        d = data_paths(data, "recommend", stage)
        history = [*d["histories"], *history]
        if users is None and not all_users:
            users = d["users"]
        keep_seen = keep_seen or d["repeat_consumption"]  # the dataset says consumed items stay eligible
    reader = reader_kwargs(sep, encoding, columns)
    if data is not None and d["repeat_consumption"]:
        reader["duplicates"] = "keep-all"

    if ray or ray_address is not None or workers is not None:
        _recommend_on_ray(model, k, output, history, users, all_users, candidates, keep_seen, reader,
                          ray_address, workers, rerank=rerank, with_titles=with_titles, query=query, queries=queries)
        return
    recs = recommend_to_file(model, k=k, output=output, histories=history, users=users, all_users=all_users,
                             candidates=candidates, progress=True, rerank=rerank,
                             with_titles=with_titles, keep_seen=keep_seen, reader=reader, query=query,
                             queries=queries)
    console.print(f"[green]wrote[/] {len(recs):,} rows for {recs['user_id'].nunique():,} users to {escape(str(output))}")


def _recommend_on_ray(model, k, output, history, users, all_users, candidates, keep_seen, reader, address, workers,
                      **unsupported) -> None:
    from longrec.pipeline import recommend_on_ray_to_path

    flags = {"rerank": "--rerank", "with_titles": "--with-titles", "query": "--query", "queries": "--queries"}
    used = [flags[name] for name, v in unsupported.items() if v]
    if used:
        raise LongrecError(f"{', '.join(used)} cannot be combined with --ray yet; leave out --ray (one process) "
                           "or the option.")
    with console.status("recommending on Ray ..."):
        res = recommend_on_ray_to_path(model, k=k, output=output, histories=history, users=users,
                                       all_users=all_users, candidates=candidates, keep_seen=keep_seen,
                                       reader=reader, address=address, workers=workers)
    console.print(f"[green]wrote[/] {res['rows']:,} rows for {res['users']:,} users to {escape(str(output))} "
                  f"({res['workers']} Ray workers, {res['chunks']} chunks)", highlight=False)


@app.command()
@handle_errors
def evaluate(
    recs: Path = typer.Option(..., "--recs", help="RECS.csv from `longrec recommend` (or anyone's)"),
    truth: Optional[Path] = typer.Option(None, "--truth", help="held-out interactions"),
    output: Path = typer.Option(..., "--output", help="METRICS.json to write"),
    k: str = typer.Option("10", "--k", help="comma-separated cut-offs, e.g. 10,20"),
    catalog: Optional[Path] = typer.Option(None, "--catalog", help="candidate items for coverage/Gini (item_id column)"),
    users: Optional[Path] = typer.Option(None, "--users", help="user attributes (for --fairness)"),
    fairness: bool = typer.Option(False, "--fairness", help="add user-group and item-exposure fairness metrics"),
    train: Optional[Path] = typer.Option(None, "--train", help="training interactions for popularity/merit "
                                         "(default: the model directory named in RECS.csv.meta.json)"),
    data: Optional[Path] = typer.Option(None, "--data", help="a `longrec prepare` folder: truth = test.csv (valid.csv at --stage valid), catalog = items.csv"),
    stage: str = typer.Option("test", "--stage", help="with --data: test or valid"),
    sep: Optional[str] = typer.Option(None, "--sep", help="field separator of the interaction files (default: sniffed)"),
    encoding: Optional[str] = typer.Option(None, "--encoding", help="text encoding of the files, e.g. latin-1"),
    columns: Optional[str] = typer.Option(None, "--columns", help="interaction columns NAME=FILE_COLUMN,..., e.g. user_id=User-ID,item_id=ISBN"),
) -> None:
    """Score saved recommendations against held-out truth (exact METRICS.md definitions)."""
    from longrec.data.prepare import data_paths, reader_kwargs
    from longrec.pipeline import evaluate_files

    if data is not None:
        if truth is not None:
            raise LongrecError("pass either --data DIR or --truth FILE, not both.")
        d = data_paths(data, "evaluate", stage)
        truth, catalog = d["truth"], catalog or d["catalog"]
    if truth is None:
        raise LongrecError("pass the held-out interactions: --truth FILE, or --data DIR (a `longrec prepare` folder).")

    res = evaluate_files(recs, truth, ks=parse_ks(k), catalog=catalog, output=output, users=users,
                         fairness=fairness, train=train, reader=reader_kwargs(sep, encoding, columns))
    _print_metrics(res["metrics"])
    console.print(f"[green]wrote[/] {escape(str(output))}")


@app.command()
@handle_errors
def quickstart(
    dataset: str = typer.Option("ml-100k", "--dataset", help="registered name or folder with the P1 split files"),
    model: Optional[str] = typer.Option(None, "--model", help="add this model to the line-up (default settings)"),
    user: Optional[str] = typer.Option(None, "--user", help="whose recommendations to print (default: the first test user)"),
    out: Path = typer.Option(Path("runs/quickstart"), "--out", help="experiment folder: models, results, report.html"),
    fresh: bool = typer.Option(False, "--fresh", help="refit everything (default: reuse finished runs in --out)"),
) -> None:
    """A quick experiment on MovieLens-100K (P1): MostPopular, ItemKNN, EASE and a language-model
    recommender, tested against EASE; one user's list with explanations; an HTML report."""
    from longrec.quickstart import run_quickstart

    run_quickstart(dataset=dataset, model=model, user=user, out=out, console=console, fresh=fresh)


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
        t.add_row(escape(name), f"{v:.4f}" if isinstance(v, float) else escape(str(v)))
    console.print(t)


OPTIONAL_COMMANDS = (
    ("longrec.cli.ask", "ask", "ask"),
    ("longrec.cli.explain", "explain", "explain"),
    ("longrec.cli.simulate", "simulate", "simulate"),
    ("longrec.cli.serve", "serve", "serve"),
    ("longrec.cli.forget", "forget", "forget"),
    ("longrec.cli.federated", "federated", "federated"),
    ("longrec.cli.experiment", "experiment", "experiment"),
    ("longrec.cli.show", "show", "show"),
    ("longrec.cli.prepare", "prepare", "prepare"),
    ("longrec.cli.synth", "synth", "synth"),
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
