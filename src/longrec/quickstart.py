"""`longrec quickstart`: the whole spine in one go on MovieLens-100K's P1 protocol."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table


def run_quickstart(dataset: str = "ml-100k", model: str = "ease", user=None, out: Path = Path("runs/quickstart"),
                   console: Console | None = None, k: int = 10) -> dict:
    from longrec.data.registry import load_split
    from longrec.errors import UnknownIdError
    from longrec.metrics.ranking import evaluate
    from longrec.models.registry import get_model_class

    console = console or Console(stderr=True)
    klass = get_model_class(model)
    with console.status(f"loading {dataset} (protocol P1) ..."):
        split = load_split(dataset, "p1")
    train, valid, test = split["train"], split["valid"], split["test"]
    console.print(f"[bold]{dataset}[/] P1: {len(train):,} train / {len(valid):,} valid / {len(test):,} test interactions")
    t0 = time.perf_counter()
    with console.status(f"training {model} (tuned on valid) ..."):
        m = klass().fit(train, valid)
    fit_s = time.perf_counter() - t0
    console.print(f"trained {model} in {fit_s:.1f} s {json.dumps(m.fit_info_, default=str)}", highlight=False)
    test_users = test.interactions["user_id"].unique()
    # train + valid are the history at test time, exactly as the protocol says
    recs = m.recommend(users=test_users, histories=valid.interactions, k=20)
    res = evaluate(recs, test.interactions, ks=(10, 20), catalog=m.vocab_.items.ids)
    table = Table("metric", "test", title=f"{model} on {dataset} P1 (test)")
    for name in ("NDCG@10", "Recall@10", "Hit@10", "MRR@10", "NDCG@20", "Recall@20", "ItemCoverage@10", "Gini@10"):
        if name in res:
            table.add_row(name, f"{res[name]:.4f}")
    console.print(table)
    m.save(Path(out) / model)
    who = test_users[0] if user is None else user
    try:
        mine = m.recommend(users=[who], histories=valid.interactions, k=k)
    except UnknownIdError:
        mine = pd.DataFrame(columns=["item_id", "rank", "score"])
    items = train.items
    title_col = next((c for c in ("movie_title", "title", "name") if items is not None and c in items.columns), None)
    t = Table("rank", "item_id", "title", "score", title=f"top-{k} for user {who}")
    titles = items.set_index("item_id")[title_col] if title_col else None
    from rich.markup import escape  # titles and ids are data, not markup ("[Live]")

    for row in mine.itertuples():
        t.add_row(str(row.rank), escape(str(row.item_id)),
                  escape(str(titles.get(row.item_id, ""))) if titles is not None else "", f"{row.score:.3f}")
    print_console = Console()
    print_console.print(t)
    console.print(f"model saved to {Path(out) / model}")
    return {"metrics": res, "fit_seconds": fit_s}
