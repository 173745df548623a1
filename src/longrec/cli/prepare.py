"""`longrec prepare`: raw files -> a prepared dataset folder (filters, split, dataset.toml, data card).

The work is `longrec.data.prepare.prepare_dataset`; this module parses flags and prints the card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def prepare(
    out: Path = typer.Option(..., "--out", help="folder to write (must be new, empty, or a previous prepare output with --overwrite)"),
    interactions: Optional[Path] = typer.Option(None, "--interactions", help="interactions file: CSV/TSV/Parquet/JSON lines, .gz ok"),
    items: Optional[Path] = typer.Option(None, "--items", help="item table"),
    users: Optional[Path] = typer.Option(None, "--users", help="user table"),
    sep: Optional[str] = typer.Option(None, "--sep", help="field separator (default: sniffed from the header); \\t for tab"),
    encoding: Optional[str] = typer.Option(None, "--encoding", help="text encoding, e.g. latin-1 (default utf-8)"),
    escapechar: Optional[str] = typer.Option(None, "--escapechar", help="escape character inside quoted fields, e.g. \\\\"),
    quotechar: Optional[str] = typer.Option(None, "--quotechar", help="quote character (default \")"),
    columns: Optional[str] = typer.Option(None, "--columns", help="interaction columns, NAME=FILE_COLUMN,...: e.g. user_id=User-ID,item_id=ISBN,rating=Book-Rating"),
    item_columns: Optional[str] = typer.Option(None, "--item-columns", help="item table columns, e.g. item_id=ISBN,title=Book-Title (naming more than item_id keeps only those)"),
    user_columns: Optional[str] = typer.Option(None, "--user-columns", help="user table columns, e.g. user_id=User-ID,age=Age"),
    min_rating: Optional[float] = typer.Option(None, "--min-rating", help="keep rows rated >= this (explicit feedback)"),
    implicit_value: Optional[float] = typer.Option(None, "--implicit-value", help="with --min-rating: also keep rows rated exactly this (implicit feedback, e.g. 0)"),
    drop_unknown_items: bool = typer.Option(False, "--drop-unknown-items", help="drop interactions whose item is not in --items"),
    drop_users: Optional[str] = typer.Option(None, "--drop-users", help="comma-separated user ids to remove first (e.g. a truncated user)"),
    k_core: int = typer.Option(0, "--k-core", help="iterative k-core: every user and item keeps >= N interactions (0: off)"),
    dedupe: str = typer.Option("keep-last", "--dedupe", help="repeated (user, item) pairs: keep-last, keep-first, drop, error, keep-all"),
    keep_repeats: bool = typer.Option(False, "--keep-repeats", help="repeat consumption: keep repeat rows, consumed items stay eligible"),
    split: str = typer.Option("random", "--split", help="random (per user 80/10/10), loo (leave-one-out by time), temporal (global time), cold-items, basket, none"),
    ratios: str = typer.Option("0.8,0.1,0.1", "--ratios", help="random/temporal split ratios"),
    seed: int = typer.Option(2026, "--seed", help="random seed (random and cold-items splits)"),
    id_order: str = typer.Option("numeric", "--id-order", help="random split: visit ids as numbers (numeric, as ml-100k P1) or as text (text, as Book-Crossing B1)"),
    group_by: Optional[str] = typer.Option(None, "--group-by", help="basket split: the basket/order id column"),
    order_by: Optional[str] = typer.Option(None, "--order-by", help="basket split: the column ordering a user's baskets"),
    reviews: Optional[Path] = typer.Option(None, "--reviews", help="reviews file: texts are joined per item into items.csv's description"),
    review_text: Optional[str] = typer.Option(None, "--review-text", help="the reviews' text column"),
    review_rating: Optional[str] = typer.Option(None, "--review-rating", help="the reviews' rating column"),
    min_review_rating: Optional[float] = typer.Option(None, "--min-review-rating", help="use only reviews rated >= this"),
    helpful: Optional[str] = typer.Option(None, "--helpful", help="helpfulness column: most helpful reviews first"),
    max_chars: Optional[int] = typer.Option(None, "--max-chars", help="longest description (whole reviews are kept while they fit)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace a previous prepare output in --out"),
    name: Optional[str] = typer.Option(None, "--name", help="dataset name in the card (default: the folder name)"),
) -> None:
    """Read raw files, filter, split, and write a dataset folder (train/valid/test.csv, items.csv, dataset.toml, DATA_CARD.md)."""
    from rich.table import Table

    from longrec.cli._common import console
    from longrec.data.prepare import PrepareOptions, ReaderOptions, parse_columns, prepare_dataset
    from longrec.errors import ConfigError

    try:
        ratio_t = tuple(float(x) for x in ratios.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"--ratios must be comma-separated numbers such as 0.8,0.1,0.1; got {ratios!r}.") from None
    sep = "\t" if sep in ("\\t", "tab", "TAB") else sep
    rd = ReaderOptions(sep, encoding, escapechar, quotechar, parse_columns(columns))
    opt = PrepareOptions(min_rating=min_rating, implicit_value=implicit_value, drop_unknown_items=drop_unknown_items,
                         drop_users=tuple(u.strip() for u in (drop_users or "").split(",") if u.strip()),
                         k_core=k_core, dedupe=dedupe, keep_repeats=keep_repeats, split=split, ratios=ratio_t,
                         seed=seed, id_order=id_order, group_by=group_by, order_by=order_by,
                         review_text=review_text, review_rating=review_rating, min_review_rating=min_review_rating,
                         helpful=helpful, max_chars=max_chars)
    with console.status("preparing ..."):
        res = prepare_dataset(interactions, out, items=items, users=users, reviews=reviews, reader=rd,
                              item_reader=ReaderOptions(columns=parse_columns(item_columns)),
                              user_reader=ReaderOptions(columns=parse_columns(user_columns)),
                              options=opt, overwrite=overwrite, name=name)
    card = res.card
    if card.steps:
        t = Table("step", "rows", "users", "items", "dropped", "reason", title=f"data card: {card.name}")
        for s in card.steps:
            t.add_row(s.name, f"{s.rows:,}", f"{s.users:,}", f"{s.items:,}", f"{s.dropped:,}", s.reason)
        console.print(t)
    if card.parts:
        t = Table("part", "rows", "users", "items")
        for p, c in card.parts.items():
            t.add_row(p, f"{c['rows']:,}", f"{c['users']:,}", f"{c['items']:,}")
        console.print(t)
    t = Table("", "")
    from longrec.data.prepare import _fmt

    for k, v in card.summary.items():
        t.add_row(k, _fmt(v))
    console.print(t)
    console.print(f"[green]wrote[/] {res.out} (dataset.toml, DATA_CARD.md)", highlight=False)
