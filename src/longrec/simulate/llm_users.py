"""Users whose choice among the slate is made by a language model (opt-in: ``[users] choice = "llm"``).

After Agent4Rec / RecAgent (Zhang et al. 2024; Wang et al. 2023): the generator reads a prompt
with the user's profile (opt-in attributes such as age, gender, occupation), the user's recent
history (item texts, most recent first) and the slate (numbered item texts), and answers with the
number of the option the user picks (or 0, "none of these", when no-choice is allowed). Everything
else in the world stays as in `longrec.simulate.users`: the chosen item's true utility is the
welfare, boredom, drift and patience follow the choice.

The answer is parsed and validated by `parse_choice`. An answer that is empty, has no option in
it (garbage), names a number outside the options, or names several different options is
**invalid**; so is a generator error (server down, prompt too long). An invalid answer is
replaced by the configured fallback and counted in `LLMChooser.counts` (written to the run's
``world.json`` as ``llm_users``):

* ``fallback = "mnl"`` (default): the world's multinomial-logit choice for that user and slate
  (what the user would have done without a language model);
* ``"first"``: the first valid slate item (a position-biased user);
* ``"none"``: no choice (costs patience).

The generator is any `longrec.lm` generator: the packaged Gemma 3 270M base model through
llama.cpp (``backend = "llama-cpp"``, offline, slow: one call per active user and step), or an
OpenAI-compatible server (``backend = "openai"``, ``base_url``, ``model``, ``endpoint``).
"""

from __future__ import annotations

import re
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

STATUSES = ("ok", "none", "empty", "garbage", "out_of_range", "several", "error")
INVALID = ("empty", "garbage", "out_of_range", "several", "error")
_NONE_RE = re.compile(r"\b(none|nothing|neither|no option|skip)\b", re.I)
_LEAD_RE = re.compile(r"^[\s\"'*(\[#:>-]*(?:(?:option|number|choice|answer|no\.)\s*[:#]?\s*)?\[?(\d{1,3})\]?(?!\d)(?![.,]\d)",
                      re.I)
_MORE_RE = re.compile(r"(?:option|number|choice|#|,|;|/|&|\bor\b|\band\b|\bthen\b)\s*\[?(\d{1,3})\b", re.I)
_NUM_RE = re.compile(r"(?<![\d.])\d{1,3}(?![\d])")


@dataclass(frozen=True)
class ParsedChoice:
    """``index``: 0-based option position, or None (no choice or invalid); ``status`` one of STATUSES."""
    index: int | None
    status: str

    @property
    def valid(self) -> bool:
        return self.status in ("ok", "none")


def parse_choice(text: str | None, n_options: int, allow_none: bool = True,
                 titles: list[str] | None = None) -> ParsedChoice:
    """Parse a generator's answer to "which option (1..n_options) does the user pick?".

    Rules, on the first non-empty line: a leading number ("3", "Option 3", "[3]", "3. Heat (1995)")
    is the answer unless the line goes on to name another option ("3 or 5", "1, 2, 3", or
    "1. <the title of option 4>": several);
    otherwise the line's 1-3 digit numbers outside parentheses (years are ignored) must be one
    value; with no number, a line naming exactly one option title picks it; "0" or a word such as
    "none" is no choice when ``allow_none`` (else out of range / garbage).

    >>> parse_choice("Option 3", 10)
    ParsedChoice(index=2, status='ok')
    >>> parse_choice("3. Toy Story 2 (1999)", 10).index
    2
    >>> [parse_choice(t, 10).status for t in ("", "blah", "12", "2 or 5", "none")]
    ['empty', 'garbage', 'out_of_range', 'several', 'none']
    """
    if text is None or not str(text).strip():
        return ParsedChoice(None, "empty")
    line = next(ln for ln in str(text).splitlines() if ln.strip()).strip()
    value: int | None = None
    m = _LEAD_RE.match(line)
    if m:
        value = int(m.group(1))
        rest = re.sub(r"\([^)]*\)", " ", line[m.end():])
        others = {int(x) for x in _MORE_RE.findall(rest)} - {value}
        if others:
            return ParsedChoice(None, "several")
        if titles and 1 <= value <= n_options:  # "1. <title of option 4>": a number and a title that disagree
            low = line[m.end():].lower()
            named = {j for j, t in enumerate(titles) if t and t.lower() in low}
            if named and value - 1 not in named:
                return ParsedChoice(None, "several")
    else:
        bare = re.sub(r"\([^)]*\)", " ", line)
        nums = {int(x) for x in _NUM_RE.findall(bare)}
        if len(nums) > 1:
            return ParsedChoice(None, "several")
        if nums:
            value = nums.pop()
    if value is None:
        if titles:
            low = line.lower()
            hits = [j for j, t in enumerate(titles) if t and t.lower() in low]
            if len(hits) == 1:
                return ParsedChoice(hits[0], "ok")
            if len(hits) > 1:
                return ParsedChoice(None, "several")
        if _NONE_RE.search(line):
            return ParsedChoice(None, "none") if allow_none else ParsedChoice(None, "garbage")
        return ParsedChoice(None, "garbage")
    if value == 0 and allow_none:
        return ParsedChoice(None, "none")
    if 1 <= value <= n_options:
        return ParsedChoice(value - 1, "ok")
    return ParsedChoice(None, "out_of_range")


def _short_title(text: str) -> str:
    # "Toy Story (1995). Genres: ..." -> "Toy Story" (for title matching in answers)
    t = text.split(". ")[0]
    return re.sub(r"\s*\(\d{4}\)\s*$", "", t).strip()


def _value(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def user_profiles(users, user_ids: np.ndarray) -> list[str]:
    """One profile line per user from the user table's non-id columns ("age 24, gender M, ...")."""
    import pandas as pd

    out = [""] * len(user_ids)
    if users is None or "user_id" not in getattr(users, "columns", []):
        return out
    tab = users.drop_duplicates("user_id").set_index("user_id")
    tab.index = tab.index.astype(str)
    tab = tab.reindex(pd.Index(user_ids).astype(str))
    cols = [c for c in tab.columns if not re.search(r"(^|_)(id|zip|zip_code|postcode)$", str(c).split(":")[0], re.I)]
    for r, row in enumerate(tab[cols].itertuples(index=False, name=None)):
        parts = [f"{str(c).split(':')[0].replace('_', ' ')} {_value(v)}" for c, v in zip(cols, row)
                 if v is not None and str(v).strip() not in ("", "nan", "None", "<NA>")]
        out[r] = ", ".join(parts)
    return out


def build_prompt(profile: str, history: list[str], options: list[str], allow_none: bool = True,
                 answer: str = "number") -> str:
    """A completion-style prompt (works with base models): profile, recent history, numbered
    options; the last line asks for the option's number (``answer="number"``) or lets the model
    write the chosen item (``"title"``: parsed by title match)."""
    lines = ["A recommender shows a user a list of options. The user picks the one they most want next.", ""]
    if profile:
        lines.append(f"User: {profile}.")
    if history:
        lines.append("Recently enjoyed: " + "; ".join(history) + ".")
    lines += ["", "Options:"]
    lines += [f"{j + 1}. {t}" for j, t in enumerate(options)]
    if allow_none:
        lines.append("0. None of these.")
    if answer == "title":
        lines += ["", "The user picks:"]
    else:
        lines += ["", f"Answer with one number{' (0 for none)' if allow_none else ''}.",
                  "The user picks option number:"]
    return "\n".join(lines)


class LLMChooser:
    """The language-model user model for one run; `counts` holds the parse outcome of every call."""

    def __init__(self, settings, world, generator=None) -> None:
        from longrec.lm.generators import get_generator
        from longrec.models._lm_items import item_texts_for

        self.s = settings
        self.gen = generator if generator is not None else get_generator(settings.generator)
        texts = item_texts_for(world.item_ids, world.items)
        self.texts = [t[: settings.max_item_chars] for t in texts]
        self.titles = [_short_title(t) for t in texts]
        self.profiles = user_profiles(world.users, world.user_ids) if settings.profile else [""] * world.n_users
        self.recent: list[deque] = [deque(maxlen=settings.history) for _ in range(world.n_users)]
        f = world.initial_frame.sort_values("timestamp", kind="stable")
        uidx = {u: k for k, u in enumerate(world.user_ids)}
        iidx = {i: k for k, i in enumerate(world.item_ids)}
        for u, i in zip(f["user_id"].to_numpy(), f["item_id"].to_numpy()):
            if u in uidx and i in iidx:
                self.recent[uidx[u]].append(iidx[i])
        self.counts: Counter = Counter()
        self.examples: list[dict] = []  # the first few invalid answers, for the run's world.json

    def observe(self, users: np.ndarray, chosen: np.ndarray) -> None:
        for u, c in zip(users, chosen):
            if c >= 0:
                self.recent[u].append(int(c))

    def prompt(self, user: int, options: np.ndarray) -> str:
        hist = [self.texts[i] for i in reversed(self.recent[user])]
        return build_prompt(self.profiles[user], hist, [self.texts[i] for i in options], self.s.allow_none,
                            self.s.answer)

    def ask(self, user: int, options: np.ndarray) -> ParsedChoice:
        """One generator call; the parsed answer (index into `options`)."""
        from longrec.lm.errors import GeneratorError

        try:
            raw = self.gen.generate(self.prompt(user, options), max_tokens=self.s.max_tokens, stop=["\n\n"])
        except GeneratorError as e:
            raw, res = str(e), ParsedChoice(None, "error")
        else:
            res = parse_choice(raw, len(options), self.s.allow_none, [self.titles[i] for i in options])
        self.counts[res.status] += 1
        if not res.valid and len(self.examples) < 5:
            self.examples.append({"status": res.status, "answer": str(raw)[:200]})
        return res

    def choose(self, users: np.ndarray, slates: np.ndarray, slate_util: np.ndarray, mnl_pos: np.ndarray) -> np.ndarray:
        """Slate position per user (-1: no choice). Only offerable items (not consumed, not padding)
        are shown; invalid answers take the fallback."""
        pos = np.full(len(users), -1, dtype=np.int64)
        for r, u in enumerate(users):
            ok = np.flatnonzero((slates[r] >= 0) & np.isfinite(slate_util[r]))
            if not len(ok):
                continue
            res = self.ask(int(u), slates[r, ok])
            if res.status == "ok":
                pos[r] = ok[res.index]
            elif res.status == "none":
                pos[r] = -1
            elif self.s.fallback == "mnl":
                pos[r] = mnl_pos[r]
            elif self.s.fallback == "first":
                pos[r] = ok[0]
        return pos

    def summary(self) -> dict:
        n = sum(self.counts.values())
        bad = sum(self.counts[k] for k in INVALID)
        return {"calls": n, "counts": {k: int(self.counts[k]) for k in STATUSES},
                "invalid_share": round(bad / n, 4) if n else 0.0, "fallback": self.s.fallback,
                "generator": getattr(self.gen, "identity", type(self.gen).__name__),
                "invalid_examples": self.examples}
