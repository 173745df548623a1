"""Synthetic worlds for the simulator tests: users with genre tastes, Zipf item popularity,
written as RecBole atomic files so the whole path (config -> load_split -> world) runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "ray: needs the `ray` package (deselect with -m 'not ray')")


def make_sim_data(n_users: int = 150, n_items: int = 120, n_genres: int = 6, per_user: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    g1 = np.arange(n_items) % n_genres
    g2 = rng.integers(0, n_genres, n_items)
    taste = rng.dirichlet(np.full(n_genres, 0.3), n_users)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    logit = np.log(pop)[None, :] + 4.0 * (taste[:, g1] + 0.5 * taste[:, g2])
    rows = []
    for u in range(n_users):
        p = np.exp(logit[u] - logit[u].max())
        items = rng.choice(n_items, size=per_user, replace=False, p=p / p.sum())
        for t, i in enumerate(items):
            rows.append((u + 1, i + 1, float(rng.integers(1, 6)), 1_000_000 + 1000 * u + t))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    names = [f"G{k}" for k in range(n_genres)]
    items = pd.DataFrame({"item_id": np.arange(1, n_items + 1),
                          "movie_title": [f"Item {i}" for i in range(1, n_items + 1)],
                          "class": [names[a] if a == b else f"{names[a]} {names[b]}" for a, b in zip(g1, g2)]})
    users = pd.DataFrame({"user_id": np.arange(1, n_users + 1), "age": rng.integers(15, 65, n_users),
                          "gender": rng.choice(["F", "M"], n_users)})
    return inter, items, users


def write_atomic(folder: Path, name: str = "syn", **kw) -> Path:
    inter, items, users = make_sim_data(**kw)
    d = folder / name
    d.mkdir(parents=True, exist_ok=True)
    inter.to_csv(d / f"{name}.inter", sep="\t", index=False,
                 header=["user_id:token", "item_id:token", "rating:float", "timestamp:float"])
    items.to_csv(d / f"{name}.item", sep="\t", index=False,
                 header=["item_id:token", "movie_title:token_seq", "class:token_seq"])
    users.to_csv(d / f"{name}.user", sep="\t", index=False, header=["user_id:token", "age:token", "gender:token"])
    return d


@pytest.fixture(scope="session")
def syn_dir(tmp_path_factory) -> Path:
    return write_atomic(tmp_path_factory.mktemp("simdata"))


@pytest.fixture(scope="session")
def syn_world(syn_dir):
    from longrec.simulate.config import parse_config
    from longrec.simulate.loop import build_world

    cfg = parse_config({"simulation": {"dataset": str(syn_dir), "steps": 5},
                        "world": {"latent_dim": 16, "utility_l2": 50.0},
                        "policies": [{"name": "random", "model": "random"}]})
    return build_world(cfg)


def sim_config(syn_dir, policies, **sim):
    from longrec.simulate.config import parse_config

    base = {"dataset": str(syn_dir), "steps": 30, "retrain_every": 5, "slate_size": 5, "seeds": [0]}
    base.update(sim)
    # a 120-item world has a smaller utility range than MovieLens: a lower no-choice utility
    world = {"latent_dim": 16, "utility_l2": 50.0, "no_choice_utility": 2.0}
    return parse_config({"simulation": base, "world": world,
                         "metrics": {"pairs": 300}, "policies": policies})
