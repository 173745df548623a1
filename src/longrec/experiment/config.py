"""The experiment file: a TOML document read into typed pydantic models.

    [data]                      # one of: name (+ protocol) | train/valid/test files | dir
    name = "ml-100k"
    protocol = "p1"

    [[models]]
    name = "ease"

    [[models]]
    name = "lm-linear"
    config = { dim = 128 }
    seeds = [0, 1, 2]
    search = { l2 = [10.0, 20.0] }

    [metrics]
    k = [10, 20]
    fairness = ["gender"]

    [stats]
    baseline = "pop"

Every table rejects unknown keys (a typo is an error, never silently ignored); docs/experiment.md
lists every key with its default.
"""

from __future__ import annotations

import itertools
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from longrec.errors import ConfigError

ACCURACY = ("NDCG", "Recall", "Hit", "MRR", "Precision")
BEYOND = ("coverage", "gini", "novelty", "ild")
MAX_GRID = 64  # a "small" search: more combinations than this is refused


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class DataSpec(_Strict):
    name: str | None = Field(None, description="a registered dataset (e.g. ml-100k), loaded with longrec.data.load_split")
    protocol: str = Field("p1", description="split protocol of a registered dataset: p1, p2 or p3")
    dir: Path | None = Field(None, description="a prepared folder with train/valid/test(.csv|.parquet) "
                             "and optional items/users")
    train: Path | None = None
    valid: Path | None = None
    test: Path | None = None
    items: Path | None = None
    users: Path | None = None
    seed: int = Field(0, description="seed of the bootstrap CIs and of every model run without its own seeds")

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        sources = [s for s, on in (("name", self.name is not None), ("dir", self.dir is not None),
                                   ("train/test files", self.train is not None or self.test is not None)) if on]
        if len(sources) != 1:
            raise ValueError("give exactly one data source: `name` (a registered dataset, with `protocol`), "
                             "`dir` (a prepared folder), or `train` + `test` (+ optional `valid`, `items`, `users`) "
                             f"files; got {', '.join(sources) or 'none'}")
        if self.train is not None and self.test is None or self.test is not None and self.train is None:
            raise ValueError("split files need both `train` and `test`")
        if self.name is None and self.dir is None:
            return self
        extra = [k for k in ("train", "valid", "test", "items", "users") if getattr(self, k) is not None]
        if extra:
            raise ValueError(f"`{extra[0]}` cannot be combined with `name`/`dir`")
        return self

    def resolve_paths(self, base: Path) -> DataSpec:
        """$VARIABLES are expanded (a path built from one, e.g. "$LONGREC_DATA_DIR/x/train.csv",
        is relative to the working directory); other relative paths are relative to the
        experiment file's folder `base`."""
        upd = {}
        for k in ("dir", "train", "valid", "test", "items", "users"):
            v = getattr(self, k)
            if v is None:
                upd[k] = None
                continue
            raw = str(v)
            expanded = os.path.expandvars(raw)
            p = Path(expanded).expanduser()
            upd[k] = p if p.is_absolute() or expanded != raw else base / p
        return self.model_copy(update=upd)


class ModelSpec(_Strict):
    name: str = Field(..., description="a registered model (`longrec models`)")
    label: str | None = Field(None, description="name in the report (default: the model name; must be unique)")
    config: dict[str, Any] = Field(default_factory=dict, description="the model's settings (its typed Config)")
    seeds: list[int] | None = Field(None, description="one run per seed; the report shows mean ± std (default [data.seed])")
    max_seconds: float | None = Field(None, gt=0, description="training time budget (models with a max_seconds "
                                      "setting stop early; others are flagged in the report when over)")
    search: dict[str, list[Any]] = Field(default_factory=dict, description="grid of settings tuned on valid NDCG@10")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v):
        if v is not None and (not v or len(set(v)) != len(v)):
            raise ValueError("seeds must be a non-empty list of distinct integers")
        return v

    @field_validator("search")
    @classmethod
    def _search(cls, v):
        for k, vals in v.items():
            if not isinstance(vals, list) or not vals:
                raise ValueError(f"search.{k} must be a non-empty list of values")
        n = 1
        for vals in v.values():
            n *= len(vals)
        if n > MAX_GRID:
            raise ValueError(f"the search grid has {n} combinations; at most {MAX_GRID} are allowed")
        return v

    @property
    def key(self) -> str:
        return self.label or self.name

    def grid(self) -> list[dict[str, Any]]:
        if not self.search:
            return [{}]
        keys = list(self.search)
        return [dict(zip(keys, combo)) for combo in itertools.product(*(self.search[k] for k in keys))]


class MetricsSpec(_Strict):
    k: list[int] = Field([10, 20], description="cut-offs")
    accuracy: list[str] = Field(["NDCG", "Recall", "Hit", "MRR"], description="per-user accuracy metrics (METRICS.md)")
    beyond: list[str] = Field(["coverage", "gini", "novelty", "ild"],
                              description="catalogue-level metrics; ild needs an item feature column")
    item_features: str | None = Field(None, description="item-table column of genres/categories for ILD "
                                      "(default: the first of genres, genre, class, category, categories)")
    fairness: list[str] = Field(default_factory=list, description="user-table columns (or 'activity') to compare "
                                "accuracy across, with bootstrap CIs")
    n_boot: int = Field(1000, ge=10, description="bootstrap resamples of the CIs")

    @field_validator("k")
    @classmethod
    def _ks(cls, v):
        if not v or any(k < 1 for k in v):
            raise ValueError("k must be a non-empty list of positive integers, e.g. [10, 20]")
        return sorted(set(v))

    @field_validator("accuracy")
    @classmethod
    def _acc(cls, v):
        canon = {m.lower(): m for m in ACCURACY}
        out = []
        for m in v:
            if m.lower() not in canon:
                raise ValueError(f"unknown accuracy metric {m!r}; choose from {', '.join(ACCURACY)}")
            out.append(canon[m.lower()])
        if not out:
            raise ValueError("at least one accuracy metric is needed")
        return list(dict.fromkeys(out))

    @field_validator("beyond")
    @classmethod
    def _beyond(cls, v):
        alias = {"itemcoverage": "coverage", "diversity": "ild"}
        out = []
        for m in v:
            m2 = alias.get(m.lower(), m.lower())
            if m2 not in BEYOND:
                raise ValueError(f"unknown beyond-accuracy metric {m!r}; choose from {', '.join(BEYOND)}")
            out.append(m2)
        return list(dict.fromkeys(out))

    @field_validator("fairness", mode="before")
    @classmethod
    def _fair(cls, v):
        return [v] if isinstance(v, str) else v


class StatsSpec(_Strict):
    baseline: str | None = Field(None, description="label of the model every other is tested against "
                                 "(default: the first model)")
    metric: str = Field("NDCG@10", description="the leaderboard's metric (must be an accuracy metric at a listed k)")
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level after Holm's correction")


class OutputSpec(_Strict):
    save_models: bool = Field(False, description="save each fitted model under runs/<label>/seed<seed>/model")
    recs_k: int | None = Field(None, ge=1, description="length of the saved lists (default: the largest k)")


class ExperimentConfig(_Strict):
    name: str = Field("experiment", description="a title for the report")
    description: str = ""
    data: DataSpec
    models: list[ModelSpec] = Field(..., min_length=1)
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    stats: StatsSpec = Field(default_factory=StatsSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        from longrec.models.registry import available_models

        known = set(available_models())
        labels = [m.key for m in self.models]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"model label(s) {dup} appear twice; give each [[models]] entry a distinct `label`")
        for m in self.models:
            if m.name.lower() not in known:
                raise ValueError(f"unknown model {m.name!r}; choose one of: {', '.join(sorted(known))}")
            if "/" in m.key or m.key.startswith("."):
                raise ValueError(f"label {m.key!r} cannot contain '/' or start with '.'")
        if self.stats.baseline is not None and self.stats.baseline not in labels:
            raise ValueError(f"stats.baseline {self.stats.baseline!r} is not a model label; labels: {', '.join(labels)}")
        metric, _, k = self.stats.metric.partition("@")
        canon = {m.lower(): m for m in ACCURACY}
        if metric.lower() not in canon or not k.isdigit() or int(k) not in self.metrics.k:
            raise ValueError(f"stats.metric {self.stats.metric!r} must be an accuracy metric at one of the cut-offs "
                             f"k = {self.metrics.k}, e.g. 'NDCG@{self.metrics.k[0]}'")
        self.stats.metric = f"{canon[metric.lower()]}@{int(k)}"
        if canon[metric.lower()] not in self.metrics.accuracy:
            self.metrics.accuracy = [*self.metrics.accuracy, canon[metric.lower()]]
        return self

    @property
    def baseline(self) -> str:
        return self.stats.baseline or self.models[0].key

    def seeds_of(self, m: ModelSpec) -> list[int]:
        return m.seeds if m.seeds is not None else [self.data.seed]


def _explain(e: ValidationError, where: str) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (a typo?); docs/experiment.md lists the keys"
        elif err["type"] == "missing":
            msg = "required key is missing"
        parts.append(f"{loc}: {msg}")
    return f"{where}: " + "; ".join(parts) + "."


def parse_experiment(doc: dict, where: str = "experiment", base: Path | None = None) -> ExperimentConfig:
    """An ExperimentConfig from a parsed TOML document (a ConfigError explains what is wrong)."""
    try:
        cfg = ExperimentConfig.model_validate(doc)
    except ValidationError as e:
        raise ConfigError(_explain(e, where)) from None
    if base is not None:
        cfg.data = cfg.data.resolve_paths(base)
    return cfg


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read EXPERIMENT.toml; relative data paths are relative to the file's folder."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"experiment file {p} does not exist; see examples/quickstart.toml for one.")
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p} is not valid TOML: {e}. Fix the line it names (strings need quotes, "
                          "tables look like [data], lists like [10, 20]).") from None
    return parse_experiment(doc, where=str(p), base=p.resolve().parent)

