"""The simulation's declarative configuration (TOML), validated before any work starts.

    [simulation]            dataset, split, steps, slate size, retraining period, seeds
    [world]                 true-utility fit and user-behaviour parameters (see docs/simulate.md)
    [[worlds]]              optional: a study over several worlds, each [world] with overrides
    [metrics]               pair sample size, user groups
    [users]                 optional: who chooses from the slate ("mnl", or "llm": a language model)
    [[policies]]            one table per policy: name, model, params, exploration

Every field has a default except the policy list. `load_config(path)` raises a
`ConfigError` naming the file and the field on the first problem: unknown keys, negative
steps, unknown models, bad model parameters, a dataset that cannot be found.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from longrec.errors import ConfigError

BUILTIN_POLICIES = ("random", "oracle")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SimulationSettings(_Strict):
    name: str = "simulation"
    dataset: str = Field("ml-100k", description="registered dataset name (LONGREC_DATA_DIR), a dataset folder, "
                         "or a split folder holding train/valid/test.csv (+ items.csv, users.csv), e.g. "
                         "$LONGREC_DATA_DIR/book-crossing/splits/b1")
    split: Literal["p1", "p2", "p3"] = Field("p1", description="the loop starts from this split's train part "
                                             "(ignored for a split folder)")
    download: bool = Field(False, description="download a known MovieLens dataset when it is not found locally")
    steps: int = Field(200, ge=1, description="simulated steps T")
    slate_size: int = Field(10, ge=1, le=100, description="items per slate K")
    retrain_every: int = Field(20, ge=1, description="retrain the policy every R steps")
    seeds: list[int] = Field([0], min_length=1)
    max_users: int = Field(0, ge=0, description="simulate only the first N users (0 = all)")
    log_all_users: bool = Field(False, description="with max_users: policies train on every user's training "
                                "interactions plus the simulated log (false: the simulated users' only)")
    epochs: int | None = Field(None, ge=1, description="epoch budget of every trained policy model that has an "
                               "`epochs` field and does not set it in its params (None = the model's default)")


class WorldSettings(_Strict):
    # true-utility model family: "ease" (rank-d SVD of EASE scores, Steck 2019), "lowrank" (rank-d
    # truncated SVD of the interaction matrix itself, PureSVD), "text" (lowrank collaborative part
    # mixed with LM text affinity, share text_weight, 0.3 when unset)
    family: Literal["ease", "lowrank", "text"] = Field("ease", description="true-utility model family")
    text_encoder: str = Field("default", description="text world: longrec.lm encoder spec for item texts, or 'hash'")
    latent_dim: int = Field(64, ge=2, le=1024)
    utility_l2: float = Field(300.0, gt=0, description="EASE ridge λ of the true-utility fit")
    quality_weight: float = Field(0.3, ge=0, description="weight of item quality (shrunk mean rating, z-scored)")
    text_weight: float = Field(0.0, ge=0, le=1, description="share of LM text affinity in the affinity (needs longrec[lm])")
    # choice (multinomial logit over slate + no-choice)
    choice_beta: float = Field(1.0, gt=0, description="MNL inverse temperature")
    no_choice_utility: float = Field(5.0, description="utility of choosing nothing")
    # boredom / satiation (SARDINE-style, per genre)
    boredom_weight: float = Field(1.0, ge=0, description="utility lost per unit of genre satiation")
    boredom_recovery: float = Field(0.1, ge=0, le=1, description="share of satiation that decays each step")
    # interest drift toward consumed items (RecSim NG interest evolution)
    drift_rate: float = Field(0.05, ge=0, le=1)
    # patience, leaving and returning (KuaiSim-style)
    patience_drop: float = Field(0.25, ge=0, le=1, description="patience lost after a slate with no choice")
    patience_gain: float = Field(0.1, ge=0, le=1, description="patience regained after a choice")
    return_prob: float = Field(0.05, ge=0, le=1, description="per-step chance that a user who left comes back")

    @model_validator(mode="after")
    def _text_share(self) -> WorldSettings:
        if self.family == "text" and self.text_weight == 0:
            self.text_weight = 0.3
        return self


class MetricSettings(_Strict):
    pairs: int = Field(2000, ge=10, description="user pairs sampled per group for Jaccard / inter-user diversity")
    groups: list[Literal["gender", "age"]] = ["gender", "age"]
    age_buckets: list[int] = Field([25, 35, 50], description="upper bounds of age buckets (last bucket open)")


class Exploration(_Strict):
    kind: Literal["epsilon", "softmax"]
    epsilon: float = Field(0.1, ge=0, le=1, description="ε-greedy: chance each slot holds a random item")
    temperature: float = Field(0.5, gt=0, description="softmax: temperature over per-user z-scored scores")
    pool: int = Field(100, ge=1, description="softmax: sample the slate from the top-`pool` items")


class Satiation(_Strict):
    """Long-term-aware re-scoring from the policy's own logs: each user's genre counts of the
    clicks it observed, decayed each step; candidates lose ``weight`` x (their genre mix . counts)
    in z units of the model score, so the slate leaves recently over-consumed genres to rest."""
    weight: float = Field(0.5, ge=0, description="penalty per unit of estimated genre satiation (z units)")
    decay: float = Field(0.1, ge=0, le=1, description="share of the estimated satiation forgotten each step")
    impression_weight: float = Field(0.0, ge=0, description="penalty per (decayed) time the user was shown "
                                     "the item and chose something else or nothing (z units)")
    impression_decay: float = Field(0.0, ge=0, le=1, description="share of the skip counts forgotten each step")
    crowd_weight: float = Field(0.0, ge=0, description="penalty x log(1 + percent of active users who chose "
                                "the item during the run) (z units)")


class Bandit(_Strict):
    """A contextual bandit trained in the simulator, on the clicks the policy observes
    (Thompson sampling over a Bayesian linear click model, after Chapelle & Li 2011 / LinTS).
    Every step each user's top-``pool`` base candidates are scored by ``theta_u . x``, x = (1,
    z-scored base score, genre satiation of the user's recent clicks (fast and slow decay),
    the user's skipped impressions of the item, the share of users who chose it during the run,
    its popularity in the logged data); theta_u is drawn from the posterior of a global ridge
    regression of click (1/0 per shown slot) on x, plus a per-user deviation shrunk toward it.
    ``crowd_weight`` subtracts a fixed penalty on the crowd feature from the score (in units of
    the score's per-user std): a homogenisation lever that clicks alone would never learn."""
    prior: float = Field(1.0, gt=0, description="ridge precision of the global weights (prior mean: the base score)")
    user_prior: float = Field(50.0, gt=0, description="precision shrinking each user's weights toward the global ones")
    noise: float = Field(0.3, ge=0, description="Thompson posterior scale (0: greedy on the posterior mean)")
    decay: float = Field(0.3, ge=0, le=1, description="fast forgetting of the genre-satiation feature")
    slow_decay: float = Field(0.05, ge=0, le=1, description="slow forgetting of the second satiation feature")
    skip_decay: float = Field(0.1, ge=0, le=1, description="forgetting of the skipped-impression feature")
    crowd_weight: float = Field(0.0, ge=0, description="fixed penalty x log(1 + percent of users who chose the "
                                "item during the run), in per-user score std units")
    pool: int = Field(100, ge=1, le=1000, description="base candidates scored per user")
    features: list[Literal["satiation_fast", "satiation_slow", "skipped", "crowd", "log_popularity"]] = Field(
        ["satiation_fast", "satiation_slow", "skipped", "crowd", "log_popularity"],
        description="context features besides the bias and the base score (drop one to keep it out of the model)")


class PolicySettings(_Strict):
    name: str = Field(..., min_length=1)
    model: str = Field(..., description="a registered longrec model name, 'random' or 'oracle'")
    params: dict[str, Any] = Field(default_factory=dict, description="the model's config fields")
    exploration: Exploration | None = None
    rerank: str | None = Field(None, description="re-rank the model's top-`candidates` with a longrec.rerank "
                               "spec, e.g. 'calibrated:0.4' or 'mmr:0.3'")
    candidates: int = Field(100, ge=1, le=2000, description="candidate pool the re-ranker chooses from")
    fold_in: bool = Field(True, description="between retrainings pass the clicks since the last fit as "
                          "histories (as serving does); false: the model only sees them at the next retrain")
    satiation: Satiation | None = None
    bandit: Bandit | None = Field(None, description="a contextual bandit over the model's candidates, "
                                  "trained online on the simulated clicks (see Bandit)")

    @field_validator("rerank")
    @classmethod
    def _valid_rerank(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from longrec.rerank import parse_rerank

        try:
            return str(parse_rerank(v))
        except ConfigError as e:
            raise ValueError(str(e)) from None

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        from longrec.models.registry import MODELS

        key = v.strip().lower()
        if key not in MODELS and key not in BUILTIN_POLICIES:
            raise ValueError(f"unknown model {v!r}; choose one of: {', '.join(sorted(MODELS) + list(BUILTIN_POLICIES))} "
                             f"(a policy given by name may also be a preset: {', '.join(POLICY_PRESETS)})")
        return key

    @model_validator(mode="after")
    def _check_params(self) -> PolicySettings:
        if self.model in BUILTIN_POLICIES:
            if self.params:
                raise ValueError(f"the {self.model!r} policy takes no params")
            if self.model == "random" and (self.exploration is not None or self.rerank or self.satiation
                                           or self.bandit):
                raise ValueError("exploration, rerank, satiation or bandit on the random policy changes nothing; "
                                 "remove it")
            if self.model == "oracle" and (self.rerank or self.satiation or self.bandit):
                raise ValueError("rerank, satiation and bandit need a trained model policy, not the oracle")
            return self
        if self.bandit is not None and self.satiation is not None:
            raise ValueError("bandit already learns a genre-satiation weight; use bandit or satiation, not both")
        if self.rerank:
            pool = max(100 if self.satiation else 0, self.bandit.pool if self.bandit else 0,
                       self.exploration.pool if self.exploration and self.exploration.kind == "softmax" else 0)
            if pool and self.candidates <= pool:
                raise ValueError(f"rerank with satiation, bandit or softmax exploration re-ranks the top-{self.candidates} "
                                 f"into a pool of {pool}: it would keep every candidate and change nothing; set "
                                 f"candidates above {pool} (e.g. {2 * pool})")
        from longrec.models.base import make_config
        from longrec.models.registry import get_model_class

        try:
            make_config(get_model_class(self.model).Config, self.params)
        except ConfigError as e:
            raise ValueError(str(e)) from None
        return self


def _llm_generator_default():
    from longrec.lm.generators import GeneratorSettings

    return GeneratorSettings(backend="llama-cpp")


class LLMUsers(_Strict):
    """The language-model user model (longrec.simulate.llm_users): one generator call per active
    user and step; answers are parsed and validated, invalid ones take ``fallback``."""
    generator: Any = Field(default_factory=_llm_generator_default,
                           description="longrec.lm GeneratorSettings: backend 'llama-cpp' (packaged Gemma 3 "
                           "270M, offline) or 'openai' (base_url, model, endpoint) or 'template'")
    history: int = Field(10, ge=0, le=50, description="recent items shown in the prompt, most recent first")
    profile: bool = Field(True, description="put the user's attributes (age, gender, ...) in the prompt")
    allow_none: bool = Field(True, description="offer '0. None of these' (no choice costs patience)")
    fallback: Literal["mnl", "first", "none"] = Field("mnl", description="choice when the answer is invalid: "
                                                       "the world's MNL choice, the first item, or none")
    answer: Literal["number", "title"] = Field("number", description="ask for the option's number, or let the "
                                               "model write the chosen item (matched to the option titles)")
    max_tokens: int = Field(16, ge=1, le=256)
    max_item_chars: int = Field(120, ge=10, description="item texts are cut to this many characters")

    @field_validator("generator", mode="before")
    @classmethod
    def _generator(cls, v: Any) -> Any:
        from longrec.lm.generators import GeneratorSettings

        if isinstance(v, GeneratorSettings):
            return v
        if not isinstance(v, dict):
            raise ValueError("generator must be a table of longrec.lm GeneratorSettings fields")
        return GeneratorSettings(**{"backend": "llama-cpp", **v})


class UserModel(_Strict):
    choice: Literal["mnl", "llm"] = Field("mnl", description="'mnl': multinomial logit over true utility; "
                                          "'llm': a language model picks (opt-in, slow)")
    llm: LLMUsers = LLMUsers()


# named policies a config may list by name (`policies = ["itemknn", "long-term-bandit"]`) instead of a
# [[policies]] table; any registered model name, "random" or "oracle" works the same way. The long-term
# presets are the tuned settings of docs/long-term.md (ease world, seeds 100-101, 250 users x 60 steps).
POLICY_PRESETS: dict[str, dict[str, Any]] = {
    "long-term": {"model": "itemknn", "satiation": {"weight": 4.0, "decay": 0.3}},
    "long-term-crowd": {"model": "itemknn", "satiation": {"weight": 4.0, "decay": 0.3, "crowd_weight": 0.3},
                        "exploration": {"kind": "softmax", "temperature": 0.3, "pool": 100}},
    "long-term-bandit": {"model": "itemknn", "bandit": {
        "crowd_weight": 0.4, "features": ["satiation_fast", "satiation_slow", "skipped", "crowd"]}},
    "long-term-bandit-welfare": {"model": "itemknn", "bandit": {"crowd_weight": 0.0}},
    # every feature with a crowd penalty of 0.4: tuned at full size (943 users x 200 steps, ease world,
    # seed 100), where popularity is the best myopic policy (bench/long_term_tune_full_*.toml)
    "long-term-bandit-balanced": {"model": "itemknn", "bandit": {"crowd_weight": 0.4}},
}


def _policy_entry(entry: Any) -> Any:
    """A policy given by name: a preset, or a model (registered, random, oracle) with its defaults."""
    if not isinstance(entry, str):
        return entry
    key = entry.strip().lower()
    if key in POLICY_PRESETS:
        return {"name": key, **POLICY_PRESETS[key]}
    return {"name": key, "model": key}  # the model validator names the choices when it is unknown


class StudyWorld(WorldSettings):
    """One world of a study: `[world]`'s fields overridden by this `[[worlds]]` table."""
    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="folder name of its results")


class SimConfig(_Strict):
    simulation: SimulationSettings = SimulationSettings()
    world: WorldSettings = WorldSettings()
    worlds: list[StudyWorld] = Field(default_factory=list, description="a study: run every policy in every world")
    metrics: MetricSettings = MetricSettings()
    users: UserModel = UserModel()
    policies: list[PolicySettings] = Field(..., min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _inherit_world(cls, data: Any) -> Any:
        # policies may be listed by name (strings) as well as tables
        if isinstance(data, dict) and isinstance(data.get("policies"), list):
            data = {**data, "policies": [_policy_entry(p) for p in data["policies"]]}
        # each [[worlds]] table starts from [world] (behaviour parameters are shared)
        if isinstance(data, dict) and isinstance(data.get("worlds"), list):
            base = data.get("world") or {}
            if isinstance(base, BaseModel):
                base = base.model_dump(exclude_unset=True)
            data = {**data, "worlds": [({**base, **w} if isinstance(w, dict) else w) for w in data["worlds"]]}
        return data

    def for_world(self, name: str) -> SimConfig:
        """The single-world config of one `[[worlds]]` entry."""
        w = next(x for x in self.worlds if x.name == name)
        return self.model_copy(update={"world": WorldSettings(**w.model_dump(exclude={"name"})), "worlds": []})

    @model_validator(mode="after")
    def _unique(self) -> SimConfig:
        names = [p.name for p in self.policies]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"policy names must be unique; repeated: {', '.join(dup)}")
        wn = [w.name for w in self.worlds]
        if len(set(wn)) != len(wn):
            raise ValueError("[[worlds]] names must be unique")
        if len(set(self.simulation.seeds)) != len(self.simulation.seeds):
            raise ValueError("simulation.seeds has repeated values")
        return self

    def policy(self, name: str) -> PolicySettings:
        return next(p for p in self.policies if p.name == name)


def parse_config(data: dict[str, Any], source: str = "config") -> SimConfig:
    """Validate a config dict (as read from TOML); ConfigError on the first problems."""
    try:
        return SimConfig(**data)
    except ValidationError as e:
        lines = []
        for err in e.errors()[:6]:
            loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
            loc = _toml_loc(loc, data)
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{loc}: {msg}")
        raise ConfigError(f"{source} is not a valid simulation config: " + "; ".join(lines)
                          + ". See docs/simulate.md and examples/simulate_ml100k.toml.") from None


def _toml_loc(loc: str, data: dict) -> str:
    # "policies.2.model" -> "[[policies]] #3 (name 'x') .model", easier to find in the file
    parts = loc.split(".")
    if parts[0] == "policies" and len(parts) > 1 and parts[1].isdigit():
        i = int(parts[1])
        pol = (data.get("policies") or [{}])
        name = pol[i].get("name") if i < len(pol) and isinstance(pol[i], dict) else None
        rest = ".".join(parts[2:])
        return f"[[policies]] #{i + 1}{f' ({name!r})' if name else ''}{'.' + rest if rest else ''}"
    return loc


def load_config(path: str | Path, check_dataset: bool = True) -> SimConfig:
    """Read and validate a TOML config; with `check_dataset`, also that the dataset exists."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist; pass a TOML file such as examples/simulate_ml100k.toml.")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p} is not valid TOML ({e}).") from None
    cfg = parse_config(data, source=str(p))
    if check_dataset:
        check_dataset_available(cfg, source=str(p))
    return cfg


def check_dataset_available(cfg: SimConfig, source: str = "config") -> None:
    from longrec.data.download import URLS
    from longrec.data.readers import dataset_files
    from longrec.data.registry import canonical_name, data_dirs, find_dataset

    name = cfg.simulation.dataset
    if split_folder(name) is not None:
        return
    if Path(name).expanduser().is_dir() and dataset_files(Path(name).expanduser()) is not None:
        return
    if find_dataset(name) is not None:
        return
    if cfg.simulation.download and canonical_name(name) in URLS:
        return
    dirs = ", ".join(str(d) for d in data_dirs()) or "not set"
    hint = " or set simulation.download = true" if canonical_name(name) in URLS else ""
    raise ConfigError(f"{source}: simulation.dataset {name!r} was not found (LONGREC_DATA_DIR: {dirs}); "
                      f"set LONGREC_DATA_DIR to the folder that contains {name}/, give a folder path{hint}.")


def split_folder(name: str) -> Path | None:
    """The folder when `name` (``$VARS`` expanded) is a published split folder: train, valid and
    test as .csv or .parquet, optionally items and users tables next to them."""
    import os

    d = Path(os.path.expandvars(name)).expanduser()
    if not d.is_dir():
        return None
    if all(any((d / f"{part}.{ext}").is_file() for ext in ("csv", "parquet")) for part in ("train", "valid", "test")):
        return d
    return None
