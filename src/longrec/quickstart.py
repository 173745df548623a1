"""`longrec quickstart`: a quick experiment on MovieLens-100K's P1 protocol.

It runs the experiment file shipped with the package (`longrec/experiment/quickstart.toml`,
the same as examples/quickstart.toml): MostPopular, ItemKNN, EASE and a language-model
recommender (lm-linear), each fitted on train (valid for tuning), scored on
test with paired tests against EASE; then it prints the leaderboard, one user's list from the
best model with a sentence explaining each of the first items, and where the report is.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table


def quickstart_config(dataset: str = "ml-100k", model: str | None = None):
    """The quickstart's ExperimentConfig; `dataset` a registered name or a folder with train/valid/test
    files; `model` adds a registered model (default settings) to the line-up."""
    from longrec.experiment.config import parse_experiment

    doc = tomllib.loads(resources.files("longrec.experiment").joinpath("quickstart.toml").read_text(encoding="utf-8"))
    p = Path(dataset).expanduser()
    if p.is_dir() and any((p / f"train{ext}").is_file() for ext in (".csv", ".parquet")):
        doc["data"] = {"dir": str(p.resolve())}
        doc["name"] = f"longrec quickstart: {p.name}"
    elif dataset != "ml-100k":
        doc["data"]["name"] = dataset
        doc["name"] = f"longrec quickstart: {dataset}, protocol P1"
    if model is not None and model.lower() not in {m["name"] for m in doc["models"]} | \
            {m.get("label") for m in doc["models"]}:
        doc["models"].append({"name": model.lower()})
    return parse_experiment(doc, where="quickstart")


def run_quickstart(dataset: str = "ml-100k", model: str | None = None, user=None,
                   out: Path = Path("runs/quickstart"), console: Console | None = None, k: int = 10,
                   fresh: bool = False, n_explain: int = 3) -> dict:
    from longrec.experiment.report import print_leaderboard
    from longrec.experiment.runner import load_data, run_experiment

    console = console or Console(stderr=True)
    stdout = Console()
    cfg = quickstart_config(dataset, model)
    console.print(f"[bold]{cfg.name}[/]: {', '.join(m.key for m in cfg.models)}; baseline {cfg.baseline}",
                  highlight=False)
    res = run_experiment(cfg, out, resume=not fresh, log=lambda s: console.print(s, highlight=False))
    print_leaderboard(res.leaderboard, cfg, stdout)
    best = str(res.leaderboard["model"].iloc[0])
    shown = _show_user(cfg, res, best, user, k, n_explain, stdout, console, load_data)
    mdir = Path(out) / "runs" / best / f"seed{cfg.seeds_of(next(m for m in cfg.models if m.key == best))[0]}" / "model"
    if mdir.is_dir():
        console.print(f"[green]model[/] {mdir}  (try: longrec explain --model {mdir} --user USER --item ITEM)",
                      highlight=False)
    console.print(f"[green]report[/] {res.report}  (open it in a browser; the numbers are in "
                  f"{Path(out) / 'results.parquet'})", highlight=False)
    console.print(f"run your own: [bold]longrec experiment EXPERIMENT.toml --out DIR[/] "
                  f"(this one: examples/quickstart.toml; keys: docs/experiment.md)", highlight=False)
    return {"leaderboard": res.leaderboard, "report": res.report, "best": best, "user": shown}


def _show_user(cfg, res, label: str, user, k: int, n_explain: int, stdout: Console, console: Console,
               load_data) -> dict | None:
    from longrec.errors import LongrecError, UnknownIdError
    from longrec.explain import explain
    from longrec.models.base import Recommender

    spec = next(m for m in cfg.models if m.key == label)
    mdir = Path(res.out) / "runs" / label / f"seed{cfg.seeds_of(spec)[0]}" / "model"
    if not mdir.is_dir():
        console.print(f"[yellow]no saved model in {mdir}; skipping the example list[/]")
        return None
    data = load_data(cfg.data)
    m = Recommender.load(mdir)
    test_users = pd.unique(data.test["user_id"])
    who = test_users[0] if user is None else user
    vint = data.valid.interactions if data.valid is not None else None
    hist = vint[vint["user_id"].astype(str) == str(who)] if vint is not None else None
    try:
        mine = m.recommend(users=[who], histories=hist, k=k)
    except UnknownIdError:
        console.print(f"[yellow]user {who} is not in the data; pass --user with a test user id[/]")
        return None
    items = data.train.items
    title_col = next((c for c in ("movie_title", "title", "name") if items is not None and c in items.columns), None)
    titles = items.set_index("item_id")[title_col] if title_col else None
    truth = set(data.test.loc[data.test["user_id"].astype(str) == str(who), "item_id"].astype(str))
    t = Table("rank", "item_id", "title", "score", "in test?", title=f"{label}: top-{k} for user {who}")
    from rich.markup import escape  # titles and ids are data, not markup ("[Live]")

    for row in mine.itertuples():
        t.add_row(str(row.rank), escape(str(row.item_id)),
                  escape(str(titles.get(row.item_id, ""))) if titles is not None else "",
                  f"{row.score:.3f}", "[green]yes[/]" if str(row.item_id) in truth else "")
    stdout.print(t)
    reasons = []
    for row in list(mine.itertuples())[:n_explain]:
        try:
            e = explain(m, who, row.item_id, history=hist, generator="template")
        except LongrecError as err:
            console.print(f"[yellow]no explanation for item {row.item_id}: {err}[/]", highlight=False)
            continue
        reasons.append(e)
        name = str(titles.get(row.item_id, row.item_id)) if titles is not None else str(row.item_id)
        stdout.print(f"  [bold]{row.rank}. {escape(name)}[/]: {escape(e['text'])}", highlight=False)
    return {"user": str(who), "recs": mine, "explanations": reasons}
