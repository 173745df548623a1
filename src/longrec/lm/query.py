"""Natural-language queries: embed a sentence into the item-text space and rank items.

>>> recs = recommend_text("an animated movie for children", items, k=10)   # doctest: +SKIP
>>> list(recs.columns)                                                      # doctest: +SKIP
['user_id', 'item_id', 'rank', 'score']
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from longrec.errors import DataError, UnknownIdError
from longrec.lm.errors import LMError
from longrec.lm.index import ItemIndex, _item_id_column, _resolve_encoder

#: Queries longer than this are rejected (a query is a sentence or a short profile).
MAX_QUERY_CHARS = 20_000


class QueryError(LMError):
    """The natural-language query is empty, not a string, or too long."""


def check_query(text) -> str:
    if text is None:
        raise QueryError("the query text is None; pass a sentence such as 'a funny space adventure'")
    if not isinstance(text, str):
        raise QueryError(f"the query must be a string, got {type(text).__name__}")
    t = text.strip()
    if not t:
        raise QueryError("the query text is empty; pass a sentence such as 'a funny space adventure'")
    if len(t) > MAX_QUERY_CHARS:
        raise QueryError(f"the query has {len(t):,} characters (limit {MAX_QUERY_CHARS:,}); "
                         f"shorten it (the encoder reads only about the first 200 words anyway)")
    return t


def recommend_text(text: str, items: pd.DataFrame | None = None, k: int = 10, encoder=None,
                   candidates: Iterable | None = None, exclude: Iterable | None = None,
                   item_vectors: np.ndarray | ItemIndex | None = None, user_id=None,
                   template: str | None = None, text_columns: list[str] | None = None) -> pd.DataFrame:
    """Rank items for a free-text request.

    text: the request ("an animated movie for children", a `user_text` profile, ...).
    items: item table (item_id + attribute columns); its rows are turned into text with
        `item_texts` and encoded (through the on-disk cache by default). May be None when
        `item_vectors` is an `ItemIndex`.
    encoder: an `Encoder`, a `get_encoder` spec, or None (default encoder + disk cache).
        The query must be encoded by the same model as the items.
    candidates / exclude: item ids to restrict to / to leave out.
    item_vectors: precomputed item vectors aligned with `items` rows, or an `ItemIndex`.
    user_id: put in the user_id column (None = anonymous).
    text_columns: the item columns that make an item's text, in order (None = every text
        column; see `longrec.lm.text.item_text`).

    Returns a DataFrame with columns user_id, item_id, rank (1..k), score (cosine), best first.
    """
    q = check_query(text)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise QueryError(f"k must be a positive integer, got {k!r}")
    enc = _resolve_encoder(encoder)
    if isinstance(item_vectors, ItemIndex):
        index = item_vectors
    else:
        if items is None:
            raise DataError("recommend_text() needs an item table (items=) or an ItemIndex (item_vectors=)")
        if len(items) == 0:
            raise DataError("the item table is empty")
        ids = _item_id_column(items)
        if item_vectors is None:
            index = ItemIndex.from_items(items, encoder=enc, template=template, columns=text_columns)
        else:
            vecs = np.asarray(item_vectors, dtype=np.float32)
            if vecs.shape[0] != len(items):
                raise DataError(f"item_vectors has {vecs.shape[0]} rows but the item table {len(items)}")
            index = ItemIndex(ids, vecs, identity=enc.identity)
    if candidates is not None:
        cand = list(candidates)
        if cand and (index.positions(cand) < 0).all():
            raise UnknownIdError(f"none of the {len(cand)} candidate item ids is in the item table "
                                 f"(e.g. {cand[0]!r})")
    if index.identity and index.identity != enc.identity:
        raise LMError("the item vectors were made by another encoder "
                      f"({index.identity[:80]!r}) than the query encoder ({enc.identity[:80]!r}); "
                      "rebuild the index or pass the same encoder")
    qv = enc.encode([q], show_progress=False)
    if qv.shape[1] != index.dim:
        raise LMError(f"query vectors have {qv.shape[1]} dims, item vectors {index.dim}")
    return index.search_df(qv, k=int(k), candidates=candidates, exclude=exclude, user_ids=[user_id])
