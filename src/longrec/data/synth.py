"""Synthetic interaction logs of any size, reproducible from a seed (`longrec synth`).

    synthesize("data/synth-1m", users=100_000, items=20_000, interactions=1_000_000, seed=0)

The world is a seeded low-rank (latent-class) model: items belong to `categories` genres; every
user has a taste over the genres (a sparse Dirichlet draw); each interaction picks a genre from
the user's taste — or, with probability `stickiness`, stays in the genre of the previous one
(sequential signal) — and then an item of that genre with a Zipf popularity skew (`skew`: the
exponent of the item's popularity rank). A user never consumes an item twice. Interactions per
user are heavy-tailed (log-normal weights, at least 3 each) and sum to exactly `interactions`;
timestamps increase strictly per user (seconds, gaps of about a day). Item text comes from
templates: a title ("The Silent River", plus a number where titles repeat) and a genre.

Users are generated in chunks of at most `CHUNK_ROWS` interactions, each from its own random
stream (seed, chunk number), and written as they are made, so memory stays bounded whatever
the size (10M interactions / 100k items peak at a few hundred MB).

The folder written::

    interactions.parquet   user_id,item_id,timestamp: the whole log (user, then time order)
    items.csv              item_id,title,genre
    train.csv valid.csv test.csv   the leave-last-two-out split (ml-100k's P2 rule): per user the
                           last interaction is test, the one before it valid, the rest train
    dataset.toml           the generator and its settings, counts
    DATA_CARD.md           counts and how the data was made

It is a dataset folder (`load_dataset(DIR)`, `load_split(NAME, "p2")` with DIR's parent in
$LONGREC_DATA_DIR) and a prepared folder (`--data DIR` on train / recommend / evaluate).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from longrec.data.prepare import replace_dir
from longrec.errors import ConfigError

MARKER = "longrec synth"
CHUNK_ROWS = 1_000_000  # interactions per generated chunk (fixed: the output depends only on the settings)
MIN_PER_USER = 3  # train, valid and test need one interaction each
GENRES = ("Drama", "Comedy", "Thriller", "Romance", "Sci-Fi", "Documentary", "Horror", "Animation", "Fantasy",
          "Crime", "Adventure", "Mystery", "Western", "Musical", "War", "History", "Biography", "Sport",
          "Family", "Noir")
ADJECTIVES = ("Silent", "Golden", "Broken", "Hidden", "Last", "Crimson", "Frozen", "Lost", "Secret", "Distant",
              "Burning", "Quiet", "Electric", "Wild", "Midnight", "Hollow", "Bright", "Endless", "Iron", "Paper")
NOUNS = ("River", "Garden", "Empire", "Promise", "Harbor", "Machine", "Letter", "Mountain", "Kingdom", "Voyage",
         "Mirror", "Station", "Orchard", "Signal", "Winter", "Lantern", "Frontier", "Archive", "Circus", "Tide")


@dataclass(frozen=True)
class SynthConfig:
    users: int
    items: int
    interactions: int
    seed: int = 0
    categories: int = 20
    skew: float = 1.0          # Zipf exponent of item popularity inside a genre (0: uniform)
    taste: float = 0.3         # Dirichlet concentration of a user's genre taste (small: few genres per user)
    stickiness: float = 0.5    # probability that an interaction stays in the previous one's genre
    length_sigma: float = 1.0  # log-normal spread of the interactions per user

    def check(self) -> None:
        if self.users < 1 or self.items < 1:
            raise ConfigError(f"--users and --items must be at least 1; got {self.users:,} and {self.items:,}.")
        if self.interactions < MIN_PER_USER * self.users:
            raise ConfigError(f"--interactions {self.interactions:,} is below {MIN_PER_USER} per user "
                              f"({MIN_PER_USER * self.users:,} for {self.users:,} users): every user needs a train, "
                              "a valid and a test interaction. Ask for more interactions or fewer users.")
        cap = self.items // 2
        if cap < MIN_PER_USER or self.interactions > cap * self.users:
            raise ConfigError(f"--interactions {self.interactions:,} cannot fit: a user consumes each item at most "
                              f"once and at most half the catalogue ({cap:,} of {self.items:,} items), so "
                              f"{self.users:,} users hold at most {max(cap, 0) * self.users:,}. Ask for more "
                              f"items (at least {2 * MIN_PER_USER}) or fewer interactions.")
        if not 1 <= self.categories <= self.items:
            raise ConfigError(f"--categories must be between 1 and the number of items; got {self.categories}.")
        if self.skew < 0 or self.taste <= 0 or not 0 <= self.stickiness < 1 or self.length_sigma < 0:
            raise ConfigError("skew >= 0, taste > 0, 0 <= stickiness < 1 and length_sigma >= 0 are required.")


def _genre_names(n: int) -> list[str]:
    return list(GENRES[:n]) if n <= len(GENRES) else [*GENRES, *(f"Genre {j + 1}" for j in range(len(GENRES), n))]


def item_table(cfg: SynthConfig) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(items.csv, the items of every genre ordered by popularity (concatenated), each genre's
    cumulative popularity (concatenated, genre g's values lie in (g, g + 1]))."""
    rng = np.random.default_rng([cfg.seed, 0])
    genre = rng.integers(0, cfg.categories, size=cfg.items)
    genre[rng.permutation(cfg.items)[:cfg.categories]] = np.arange(cfg.categories)  # no empty genre
    order = np.lexsort((rng.random(cfg.items), genre))  # items grouped by genre, random popularity order inside
    sizes = np.bincount(genre, minlength=cfg.categories)
    rank = np.arange(cfg.items) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    w = (rank + 1.0) ** -cfg.skew
    cdf = np.empty(cfg.items)
    start = 0
    for g, n in enumerate(sizes):
        c = np.cumsum(w[start:start + n])
        cdf[start:start + n] = g + c / c[-1]
        start += n
    adj, noun = rng.integers(0, len(ADJECTIVES), cfg.items), rng.integers(0, len(NOUNS), cfg.items)
    titles = pd.Series([f"The {ADJECTIVES[a]} {NOUNS[b]}" for a, b in zip(adj, noun)])
    nth = titles.groupby(titles).cumcount()
    titles = titles.where(nth == 0, titles + " " + (nth + 1).astype(str))
    names = np.array(_genre_names(cfg.categories), dtype=object)
    items = pd.DataFrame({"item_id": np.arange(1, cfg.items + 1, dtype=np.int64), "title": titles,
                          "genre": names[genre]})
    return items, order.astype(np.int64) + 1, cdf


def user_lengths(cfg: SynthConfig) -> np.ndarray:
    """Interactions per user: at least 3, at most half the catalogue, summing to exactly cfg.interactions."""
    rng = np.random.default_rng([cfg.seed, 1])
    cap = cfg.items // 2
    n = np.full(cfg.users, MIN_PER_USER, dtype=np.int64)
    left = cfg.interactions - int(n.sum())
    w = rng.lognormal(0.0, cfg.length_sigma, cfg.users)
    while left > 0:
        room = cap - n
        p = np.where(room > 0, w, 0.0)
        add = rng.multinomial(left, p / p.sum())
        add = np.minimum(add, room)
        n += add
        left -= int(add.sum())
    return n


def _chunk_rows(lengths: np.ndarray) -> list[tuple[int, int]]:
    """User ranges [a, b) of at most CHUNK_ROWS interactions (one user more if a user alone is larger)."""
    ends = np.cumsum(lengths)
    out, a = [], 0
    while a < len(lengths):
        base = ends[a - 1] if a else 0
        b = int(np.searchsorted(ends, base + CHUNK_ROWS, side="right"))
        b = max(b, a + 1)
        out.append((a, b))
        a = b
    return out


def generate_chunk(cfg: SynthConfig, k: int, users: tuple[int, int], lengths: np.ndarray, items_by_genre: np.ndarray,
                   cdf: np.ndarray) -> pd.DataFrame:
    """The interactions of users [a, b) (0-based; ids are a + 1 ...), in user then time order."""
    a, b = users
    rng = np.random.default_rng([cfg.seed, 2, k])
    n_users = b - a
    lens = lengths[a:b]
    total = int(lens.sum())
    row_user = np.repeat(np.arange(n_users), lens)
    first = np.zeros(total, dtype=bool)
    first[np.cumsum(lens) - lens] = True
    # genre: a fresh draw from the user's taste, or (stickiness) the previous interaction's genre
    taste = rng.dirichlet(np.full(cfg.categories, cfg.taste), size=n_users)
    cum = np.cumsum(taste, axis=1)
    fresh = first | (rng.random(total) >= cfg.stickiness)
    genre = np.empty(total, dtype=np.int64)
    idx = np.flatnonzero(fresh)
    u = rng.random(len(idx))
    genre[idx] = np.minimum((cum[row_user[idx]] < u[:, None]).sum(axis=1), cfg.categories - 1)
    last_fresh = np.maximum.accumulate(np.where(fresh, np.arange(total), 0))
    genre = genre[last_fresh]
    # item: popularity-skewed inside the genre; repeats of a (user, item) pair are drawn again
    pos = np.minimum(np.searchsorted(cdf, genre + rng.random(total), side="left"), cfg.items - 1)
    item = items_by_genre[pos]
    for attempt in range(50):
        key = row_user.astype(np.int64) * (cfg.items + 1) + item
        _, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
        order = np.argsort(inv, kind="stable")
        dup = np.zeros(total, dtype=bool)
        dup[order] = np.concatenate([[False], inv[order][1:] == inv[order][:-1]])
        if not dup.any():
            break
        d = np.flatnonzero(dup)
        if attempt < 10:  # the same genre first, then anywhere in the catalogue
            p = np.searchsorted(cdf, genre[d] + rng.random(len(d)), side="left")
            item[d] = items_by_genre[np.minimum(p, cfg.items - 1)]
        else:
            item[d] = rng.integers(1, cfg.items + 1, size=len(d))
    else:  # pragma: no cover - at most half the catalogue per user makes this practically impossible
        raise ConfigError("could not draw distinct items for every user; ask for more items.")
    # timestamps: a start in 2020-2023, then gaps of about a day (at least one second)
    start = rng.integers(1_577_836_800, 1_672_531_200, size=n_users)
    gaps = 1 + np.floor(rng.exponential(86_400.0, size=total)).astype(np.int64)
    gaps[first] = 0
    csum = np.cumsum(gaps)
    ts = start[row_user] + csum - np.repeat(csum[first], lens)
    return pd.DataFrame({"user_id": (row_user + a + 1).astype(np.int64), "item_id": item.astype(np.int64),
                         "timestamp": ts.astype(np.int64)})


def synthesize(out, users: int, items: int, interactions: int, seed: int = 0, overwrite: bool = False,
               progress=None, **settings) -> dict:
    """Write a synthetic dataset folder (see the module docstring); returns its counts.
    settings: SynthConfig fields (categories, skew, taste, stickiness, length_sigma).
    progress: called with (interactions written, total) after every chunk."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import tomli_w

    from longrec._version import __version__

    unknown = set(settings) - set(SynthConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown synth setting(s) {sorted(unknown)}; valid: categories, skew, taste, "
                          "stickiness, length_sigma.")
    if settings.get("categories") is None:  # 20 genres, or one per item in a smaller catalogue
        settings["categories"] = min(20, max(1, int(items)))
    cfg = SynthConfig(users=int(users), items=int(items), interactions=int(interactions), seed=int(seed), **settings)
    cfg.check()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        made = out / "dataset.toml"
        if not (overwrite and made.is_file() and f'made_by = "{MARKER}"' in made.read_text(encoding="utf-8")):
            raise ConfigError(f"{out} exists and is not empty; pass a new folder"
                              + (" (--overwrite replaces only a previous `longrec synth` output)." if overwrite
                                 else ", or --overwrite to replace a previous `longrec synth` output."))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        item_df, items_by_genre, cdf = item_table(cfg)
        item_df.to_csv(tmp / "items.csv", index=False)
        lengths = user_lengths(cfg)
        schema = pa.schema([("user_id", pa.int64()), ("item_id", pa.int64()), ("timestamp", pa.int64())])
        writer = pq.ParquetWriter(tmp / "interactions.parquet", schema)
        files = {p: open(tmp / f"{p}.csv", "w", newline="") for p in ("train", "valid", "test")}
        counts = dict.fromkeys(files, 0)
        written, item_count = 0, np.zeros(cfg.items + 1, dtype=np.int64)
        try:
            for k, rng_users in enumerate(_chunk_rows(lengths)):
                df = generate_chunk(cfg, k, rng_users, lengths, items_by_genre, cdf)
                writer.write_table(pa.Table.from_pandas(df, schema=schema, preserve_index=False))
                from_end = df.groupby("user_id", sort=False).cumcount(ascending=False).to_numpy()
                for part, mask in (("train", from_end >= 2), ("valid", from_end == 1), ("test", from_end == 0)):
                    df[mask].to_csv(files[part], header=k == 0, index=False)
                    counts[part] += int(mask.sum())
                item_count += np.bincount(df["item_id"].to_numpy(), minlength=cfg.items + 1)
                written += len(df)
                if progress is not None:
                    progress(written, cfg.interactions)
        finally:
            writer.close()
            for f in files.values():
                f.close()
        assert written == cfg.interactions and counts["test"] == cfg.users  # sizes are exact by construction
        seen = item_count[1:]
        top = np.sort(seen)[::-1]
        summary = {"users": cfg.users, "items": cfg.items, "interactions": cfg.interactions,
                   "items with interactions": int((seen > 0).sum()),
                   "share of the top 1% items": float(top[:max(1, cfg.items // 100)].sum() / cfg.interactions),
                   "train": counts["train"], "valid": counts["valid"], "test": counts["test"],
                   "mean per user": cfg.interactions / cfg.users,
                   "max per user": int(lengths.max())}
        meta = {"made_by": MARKER, "longrec_version": __version__, "name": out.name,
                "created_at": pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
                "repeat_consumption": False, "split": "p2 (per user: last -> test, second-last -> valid)",
                "seed": cfg.seed, "synth": asdict(cfg), "counts": summary}
        (tmp / "dataset.toml").write_text(tomli_w.dumps(meta), encoding="utf-8")
        (tmp / "DATA_CARD.md").write_text(_card(cfg, summary), encoding="utf-8")
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def _card(cfg: SynthConfig, summary: dict) -> str:
    rows = "\n".join(f"| {k} | {v:,.4g} |" if isinstance(v, float) else f"| {k} | {v:,} |" for k, v in summary.items())
    return (f"# Synthetic dataset (longrec synth, seed {cfg.seed})\n\n"
            "Generated, not observed: a latent-class world (genres, sparse user tastes, Zipf popularity inside a "
            "genre, genre stickiness between consecutive interactions). Use it for scale tests and benchmarks, not "
            "for accuracy claims about real users.\n\n"
            f"Settings: {', '.join(f'{k} = {v}' for k, v in asdict(cfg).items())}.\n\n"
            f"| count | value |\n|---|---|\n{rows}\n\n"
            "Split: per user the last interaction is test, the one before it valid, the rest train (ml-100k's P2 rule).\n")
