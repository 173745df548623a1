"""Prompts (completion style, for base models) and deterministic templates, English and Chinese.

The packaged Gemma 3 270M is a base model: it continues text, it does not follow
instructions and has no chat template. So every prompt ends where the wanted text begins,
and generation stops at a newline. Every fact the text may mention is in the prompt.

A `Prompt` is a `str` that remembers its task, facts and language, so the deterministic
`TemplateGenerator` can answer it without a model.

>>> p = build_prompt("explain", {"title": "Toy Story (1995)", "genres": "Animation, Comedy",
...                              "because": "Aladdin (1992)"})
>>> print(p)
Recommendation: Toy Story (1995) (Animation, Comedy).
The user recently enjoyed Aladdin (1992).
Why the user will like it:
>>> render_template("explain", p.facts)
'We recommend Toy Story (1995) (Animation, Comedy) because you enjoyed Aladdin (1992).'
>>> render_template("explain", {"title": "玩具总动员", "because": "阿拉丁"}, language="zh")
'推荐《玩具总动员》，因为你喜欢阿拉丁。'
"""

from __future__ import annotations

import string
from typing import Any, Literal, Mapping

from longrec.errors import ConfigError

Language = Literal["en", "zh"]
LANGUAGES = ("en", "zh")

#: task -> language -> list of (required fact keys, completion prompt); the first variant
#: whose keys are all present is used.
PROMPTS: dict[str, dict[str, list[tuple[tuple[str, ...], str]]]] = {
    "explain": {
        "en": [
            (("title", "genres", "because", "shared"),
             "Recommendation: {title} ({genres}; same {shared} as the user's history).\n"
             "The user recently enjoyed {because}.\nWhy the user will like it:"),
            (("title", "because", "shared"),
             "Recommendation: {title} (same {shared} as the user's history).\n"
             "The user recently enjoyed {because}.\nWhy the user will like it:"),
            (("title", "genres", "because"),
             "Recommendation: {title} ({genres}).\nThe user recently enjoyed {because}.\nWhy the user will like it:"),
            (("title", "because"),
             "Recommendation: {title}.\nThe user recently enjoyed {because}.\nWhy the user will like it:"),
            (("title", "genres"), "Recommendation: {title} ({genres}).\nWhy the user will like it:"),
            (("title",), "Recommendation: {title}.\nWhy the user will like it:"),
        ],
        "zh": [
            (("title", "genres", "because", "shared"),
             "推荐：《{title}》（{genres}；与用户历史相同的{shared}）。\n用户最近喜欢：{because}。\n用户会喜欢它的原因："),
            (("title", "because", "shared"),
             "推荐：《{title}》（与用户历史相同的{shared}）。\n用户最近喜欢：{because}。\n用户会喜欢它的原因："),
            (("title", "genres", "because"),
             "推荐：《{title}》（{genres}）。\n用户最近喜欢：{because}。\n用户会喜欢它的原因："),
            (("title", "because"), "推荐：《{title}》。\n用户最近喜欢：{because}。\n用户会喜欢它的原因："),
            (("title", "genres"), "推荐：《{title}》（{genres}）。\n用户会喜欢它的原因："),
            (("title",), "推荐：《{title}》。\n用户会喜欢它的原因："),
        ],
    },
    "describe_item": {
        "en": [(("title", "genres"), "Movie: {title}\nGenres: {genres}\nOne-sentence description:"),
               (("title",), "Item: {title}\nOne-sentence description:")],
        "zh": [(("title", "genres"), "电影：《{title}》\n类型：{genres}\n一句话简介："),
               (("title",), "物品：《{title}》\n一句话简介：")],
    },
    "summarize_user": {
        "en": [(("history",), "Recently watched: {history}.\nIn one sentence, this viewer enjoys"),],
        "zh": [(("history",), "最近看过：{history}。\n一句话概括，这位观众喜欢"),],
    },
}

#: Deterministic outputs of the template generator (same selection rule as PROMPTS).
TEMPLATES: dict[str, dict[str, list[tuple[tuple[str, ...], str]]]] = {
    "explain": {
        "en": [
            (("title", "genres", "because", "shared"),
             "We recommend {title} ({genres}) because you enjoyed {because} (same {shared})."),
            (("title", "because", "shared"), "We recommend {title} because you enjoyed {because} (same {shared})."),
            (("title", "genres", "because"), "We recommend {title} ({genres}) because you enjoyed {because}."),
            (("title", "because"), "We recommend {title} because you enjoyed {because}."),
            (("title", "genres"), "We recommend {title}, a {genres} title."),
            (("title",), "We recommend {title}."),
        ],
        "zh": [
            (("title", "genres", "because", "shared"), "推荐《{title}》（{genres}），因为你喜欢{because}（相同的{shared}）。"),
            (("title", "because", "shared"), "推荐《{title}》，因为你喜欢{because}（相同的{shared}）。"),
            (("title", "genres", "because"), "推荐《{title}》（{genres}），因为你喜欢{because}。"),
            (("title", "because"), "推荐《{title}》，因为你喜欢{because}。"),
            (("title", "genres"), "推荐《{title}》，类型：{genres}。"),
            (("title",), "推荐《{title}》。"),
        ],
    },
    "describe_item": {
        "en": [(("title", "genres"), "{title}: {genres}."), (("title",), "{title}.")],
        "zh": [(("title", "genres"), "《{title}》：{genres}。"), (("title",), "《{title}》。")],
    },
    "summarize_user": {
        "en": [(("history",), "Recently watched: {history}.")],
        "zh": [(("history",), "最近看过：{history}。")],
    },
}


class Prompt(str):
    """A prompt string that also carries ``task``, ``facts`` and ``language``."""

    task: str
    facts: dict[str, Any]
    language: str

    def __new__(cls, text: str, task: str = "", facts: Mapping[str, Any] | None = None, language: str = "en"):
        obj = super().__new__(cls, text)
        obj.task, obj.facts, obj.language = task, dict(facts or {}), language
        return obj


def _check(task: str, language: str, table: dict) -> list:
    if language not in LANGUAGES:
        raise ConfigError(f"unknown language {language!r}; choose one of {', '.join(LANGUAGES)}")
    if task not in table:
        raise ConfigError(f"unknown prompt task {task!r}; choose one of {', '.join(table)}")
    return table[task][language]


def _fact_str(v: Any, language: str) -> str:
    if isinstance(v, (list, tuple)):
        return ("、" if language == "zh" else ", ").join(str(x) for x in v)
    return str(v)


def _pick(variants, facts: Mapping[str, Any], language: str, task: str) -> str:
    have = {k for k, v in facts.items() if v not in (None, "", [], ())}
    for keys, tmpl in variants:
        if set(keys) <= have:
            vals = {k: _fact_str(v, language) for k, v in facts.items()}
            return string.Formatter().vformat(tmpl, (), vals)
    need = sorted({k for keys, _ in variants for k in keys[:1]})
    raise ConfigError(f"facts for task {task!r} need at least {need}; got {sorted(have)}")


def build_prompt(task: str, facts: Mapping[str, Any], language: str = "en") -> Prompt:
    """The completion prompt for `task` filled from `facts` (keys: title, genres, because, history)."""
    return Prompt(_pick(_check(task, language, PROMPTS), facts, language, task), task, facts, language)


def render_template(task: str, facts: Mapping[str, Any], language: str = "en") -> str:
    """The deterministic text for `task` filled from `facts`."""
    return _pick(_check(task, language, TEMPLATES), facts, language, task)
