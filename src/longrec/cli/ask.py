"""`longrec ask "TEXT" --items ITEMS --output RECS.csv`: rank items for a free-text request.

The request and every item's text (`longrec.lm.item_texts`) are embedded with the default
encoder (the packaged all-MiniLM-L6-v2; `$LONGREC_ENCODER` picks another, e.g. `onnx`), item
vectors come from the on-disk embedding cache after the first run, and the k items with the
highest cosine similarity are written as RECS.csv (user_id empty, item_id, rank, score).

`--model DIR` is used only when DIR holds a saved `ItemIndex` (item_vectors.safetensors +
item_ids.parquet, made by `ItemIndex.save`); the index must come from the same encoder.
Other model directories are ignored for now (with a warning).

`--user U` and/or `--history ITEMS` (item ids, comma-separated, or a file with an item_id
column) with `--model DIR` (a model saved by `longrec train`): the sentence is fused with that
user's history (`longrec.models.intent.ask`: the list `longrec recommend --query` and the API's
`/recommend` give); a user the model does not know, without history, gets text relevance plus
popularity. `--refine "TEXT"` (repeatable, applied in order) narrows or shifts that list
("more recent", "no horror", "like the second one but funnier"); what was understood is
printed, and a follow-up that is not understood leaves the list unchanged. The item table is
the model's own (--items is not needed).

`--text-columns title,author,publisher` chooses the item columns that make an item's text (in
that order). `--dedupe` (the default when the item table has title and author columns) keeps
one row of each group of near-duplicate items (two editions of a book). `--with-titles` adds
the item's title (and author, publisher, category when present) to RECS.csv.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import typer


def ask(
    text: str = typer.Argument(..., help="What the user wants, e.g. 'an animated movie for children'."),
    items: Optional[Path] = typer.Option(None, "--items", help="Item table (RecBole .item, CSV or Parquet) with item_id + text columns "
                                         "(not needed with --user/--history: the model's own table is used)."),
    model: Optional[Path] = typer.Option(None, "--model", help="A directory holding a saved ItemIndex, or (with "
                                         "--user/--history) a model saved by `longrec train`."),
    k: int = typer.Option(10, "--k", help="How many items to return."),
    candidates: Optional[Path] = typer.Option(None, "--candidates", help="File of item ids to choose from."),
    output: Path = typer.Option(..., "--output", help="Where to write RECS.csv (user_id,item_id,rank,score)."),
    text_columns: Optional[str] = typer.Option(None, "--text-columns",
                                               help="Item columns that make an item's text, in order, e.g. title,author,publisher."),
    dedupe: Optional[bool] = typer.Option(None, "--dedupe/--no-dedupe",
                                          help="Merge near-duplicate items (same title and author); default: on when "
                                          "the item table has both columns."),
    with_titles: bool = typer.Option(False, "--with-titles", help="Add title (and author, ...) columns to RECS.csv."),
    user: Optional[str] = typer.Option(None, "--user", help="Fuse the request with this user's history (needs --model)."),
    history: Optional[str] = typer.Option(None, "--history", help="Item ids the user consumed (comma-separated, or a "
                                          "file with an item_id column), fused with the request (needs --model)."),
    refine: list[str] = typer.Option([], "--refine", help="A follow-up that narrows or shifts the list, e.g. 'more "
                                     "recent', 'no horror', 'like the second one' (repeatable; needs --user/--history)."),
    pitch: bool = typer.Option(False, "--pitch", help="Add a one-line pitch per item (its attributes that match the "
                               "request; needs --user/--history)."),
    generator: str = typer.Option("template", "--generator", help="Who writes the pitch: template, local (the "
                                  "packaged Gemma via llama.cpp) or http; a line that fails the grounding check "
                                  "is replaced by the template's."),
    encode_workers: int = typer.Option(1, "--encode-workers", help="Encode the item texts not yet in the embedding "
                                       "cache on this many Ray Data workers (large catalogues; needs longrec[sim])."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="With --encode-workers: an existing Ray "
                                              "cluster (default: a local Ray for this command)."),
) -> None:
    """Recommend items for a natural-language request (text embeddings, exact search), or with
    --user/--history and --model, fused with that user's history."""
    if user is not None or history is not None:
        return _ask_fused(text, model, user, history, k, candidates, output, with_titles, refine, pitch, generator)
    if refine or pitch:
        from longrec.errors import ConfigError

        raise ConfigError(f"{'--refine' if refine else '--pitch'} works on a user's list: add --user U or --history "
                          "ITEMS and --model DIR.")
    if items is None:
        from longrec.errors import ConfigError

        raise ConfigError("--items ITEMS is needed (the item table to rank), unless --user/--history and --model "
                          "are given.")
    from longrec.data import read_id_list, read_items
    from longrec.errors import ConfigError
    from longrec.lm.index import ItemIndex
    from longrec.lm.catalog import add_display_columns, can_dedupe, dedupe_items
    from longrec.lm.query import check_query, recommend_text
    from longrec.lm.text import _resolve_columns, parse_text_columns

    check_query(text)
    if k < 1:
        raise ConfigError(f"--k must be a positive integer, got {k}")
    item_df = read_items(items)
    cols = parse_text_columns(text_columns)
    if cols is not None:
        cols = _resolve_columns(cols, item_df.columns)
    table = item_df
    mapping: dict = {}
    if dedupe is None:
        dedupe = can_dedupe(item_df)
    if dedupe:
        if not can_dedupe(item_df):
            raise ConfigError("--dedupe needs an item table with a title column and an author (or artist, brand) "
                              "column; this one has neither pair. Drop --dedupe.")
        table, mapping = dedupe_items(item_df)
    index = None
    if model is not None:
        if not model.exists():
            raise ConfigError(f"--model {str(model)!r} does not exist")
        if ItemIndex.exists(model):
            index = ItemIndex.load(model)
        else:
            warnings.warn(f"--model {str(model)!r} holds no ItemIndex; it is ignored and the item texts "
                          f"are encoded instead")
    cand = None if candidates is None else read_id_list(candidates, "item_id")
    if index is not None:
        table = item_df   # a saved index covers its own items
        if dedupe and mapping:
            keep = set(map(str, table["item_id"])) - set(map(str, mapping))
            cand = [c for c in (cand if cand is not None else index.item_ids) if str(c) in keep]
    elif cand is not None and mapping:
        cand = list(dict.fromkeys(mapping.get(c, c) for c in cand))   # a dropped edition -> the kept one
    if encode_workers < 1:
        raise ConfigError(f"--encode-workers must be at least 1, got {encode_workers}")
    encoder = None
    if encode_workers > 1 and index is None:
        from longrec.lm import CachedEncoder, default_encoder
        from longrec.lm.ray_encode import RayEncoder

        # the one-text query stays in this process (min_texts); the catalogue goes to Ray
        encoder = CachedEncoder(RayEncoder(default_encoder(), workers=encode_workers, address=ray_address, min_texts=2))
    recs = recommend_text(text, table, k=k, candidates=cand, item_vectors=index, text_columns=cols, encoder=encoder)
    if with_titles:
        recs = add_display_columns(recs, item_df)
    output.parent.mkdir(parents=True, exist_ok=True)
    recs.to_csv(output, index=False)
    from longrec.cli._common import console

    console.print(f"wrote {len(recs)} recommendations to {output}", highlight=False)


def _ask_fused(text: str, model: Optional[Path], user, history, k: int, candidates, output: Path, with_titles: bool,
               refine: list[str], pitch: bool = False, generator: str = "template") -> None:
    from longrec.data import read_id_list
    from longrec.errors import ConfigError
    from longrec.lm.query import check_query
    from longrec.models.base import Recommender
    from longrec.models.intent import ask as ask_fused

    check_query(text)
    if model is None:
        raise ConfigError("--user/--history fuse the request with a model: add --model DIR (a model saved by "
                          "`longrec train`).")
    if not model.exists():
        raise ConfigError(f"--model {str(model)!r} does not exist")
    if k < 1:
        raise ConfigError(f"--k must be a positive integer, got {k}")
    hist = None
    if history is not None:
        p = Path(history)
        hist = (list(read_id_list(p, "item_id")) if p.is_file()
                else [h.strip() for h in history.split(",") if h.strip()])
    m = Recommender.load(model)
    cand = None if candidates is None else read_id_list(candidates, "item_id")
    recs = ask_fused(m, text, user=user, history=hist, k=k, candidates=cand, refine=refine or None)
    said = recs.attrs.get("refinement") or []
    unknown = recs.attrs.get("unknown_history_items") or []
    signals = recs.attrs["signals"]
    if pitch:
        from longrec.explain.intent import intent_pitches

        lines = intent_pitches(m, recs["item_id"].tolist(), text, generator=generator)
        recs["pitch"] = [p["text"] for p in lines]
    if with_titles:
        from longrec.lm.catalog import add_display_columns

        recs = add_display_columns(recs, m.items_)
    output.parent.mkdir(parents=True, exist_ok=True)
    recs.to_csv(output, index=False)
    from rich.markup import escape

    from longrec.cli._common import console

    console.print(f"wrote {len(recs)} recommendations to {escape(str(output))} (signals: {', '.join(signals)})",
                  highlight=False)
    named = recs.attrs.get("query_attributes") or []
    if named:
        console.print(f"read from the sentence: {escape(', '.join(named))} (those items moved up)", highlight=False)
    if unknown:
        console.print(f"[yellow]{len(unknown)} history item(s) unknown to the model were not used[/] "
                      f"(e.g. {escape(str(unknown[0]))})", highlight=False)
    for r in said:
        console.print(("[green]refine[/] " if r["applied"] else "[yellow]refine[/] ") + escape(r["message"]),
                      highlight=False)
