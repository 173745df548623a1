"""`longrec show --user U --model DIR [--history FILE ...] [--k 10]`: print a user's history
(titles) and their top-k recommendations with titles and scores, as tables.

Titles come from the item table saved with the model (`longrec train --items ...`); without
one, item ids are shown. Everything printed from the data is escaped, so a title such as
"[Live]" is shown as written, never read as rich markup.
"""

from __future__ import annotations

from pathlib import Path

import typer


def show(
    user: str = typer.Option(..., "--user", help="user id"),
    model: Path = typer.Option(..., "--model", help="model directory (from `longrec train`)"),
    history: list[Path] = typer.Option([], "--history", help="the user's interactions known at inference time (repeatable)"),
    k: int = typer.Option(10, "--k", help="how many recommendations to show"),
    n_history: int = typer.Option(20, "--n-history", help="how many of the most recent history items to show"),
) -> None:
    """Show a user's history and top-k recommendations with titles and scores."""
    import pandas as pd
    from rich.markup import escape
    from rich.table import Table

    from longrec.cli._common import console
    from longrec.data.readers import read_interactions
    from longrec.errors import ConfigError, ModelError
    from longrec.lm.catalog import display_table
    from longrec.models.base import Recommender

    if k < 1:
        raise ConfigError(f"--k must be a positive integer, got {k}.")
    if n_history < 0:
        raise ConfigError(f"--n-history must be 0 or more, got {n_history}.")
    if not Path(model).is_dir():
        raise ModelError(f"--model {str(model)!r} is not a model directory; train one with `longrec train`.")
    m = Recommender.load(model)
    hist_df = pd.concat([read_interactions(h) for h in history], ignore_index=True) if history else None
    user_key = _user_id(m, user, hist_df)
    hist_ids = user_history_ids(m, user_key, hist_df)
    if not hist_ids:
        raise ConfigError(f"user {user!r} is not in the model's training data and has no --history rows; pass "
                          f"their interactions with --history FILE (user_id,item_id[,timestamp]).")
    recs = m.recommend(users=[user_key], histories=hist_df, k=k, exclude_seen=True)
    items = m.items_
    names = display_table(items.drop_duplicates("item_id", keep="last")) if items is not None else None
    cols = [c for c in (names.columns if names is not None else []) if c != "item_id"]

    def rows(ids):
        if names is None:
            return [[] for _ in ids]
        pos = pd.Index(names["item_id"].astype(str)).get_indexer(pd.Series(ids, dtype=object).astype(str))
        return [[str(names[c].iloc[p]) if p >= 0 else "" for c in cols] for p in pos]

    recent = hist_ids[::-1][:n_history]
    t = Table(title=escape(f"history of user {user} ({len(hist_ids)} items, most recent first)"))
    for c in ("#", "item_id", *cols):
        t.add_column(escape(c))
    for j, (i, extra) in enumerate(zip(recent, rows(recent)), 1):
        t.add_row(str(j), escape(str(i)), *(escape(x) for x in extra))
    console.print(t)
    t = Table(title=escape(f"top {k} for user {user} ({m.name})"))
    for c in ("rank", "item_id", *cols, "score"):
        t.add_column(escape(c))
    for r, extra in zip(recs.itertuples(index=False), rows(list(recs["item_id"]))):
        t.add_row(str(r.rank), escape(str(r.item_id)), *(escape(x) for x in extra), f"{r.score:.4f}")
    console.print(t)


def _user_id(model, user: str, hist_df):
    """The user id as the model (or the history file) spells it: "7" -> 7 for integer ids."""
    from longrec.data.ids import coerce_like

    ids = model.vocab_.users.ids
    kind = "int" if getattr(ids, "dtype", None) is not None and ids.dtype.kind in "iu" else "str"
    try:
        return coerce_like([user], kind)[0]
    except Exception:  # a non-integer id for an integer vocabulary: a new user from --history
        return user


def user_history_ids(model, user, hist_df) -> list:
    """The user's history item ids in order: training interactions, then --history rows."""
    from longrec.explain.attribution import user_history

    _, hist = user_history(model, user, hist_df)
    ids = model.vocab_.items.ids
    return [ids[i].item() if hasattr(ids[i], "item") else ids[i] for i in hist]
