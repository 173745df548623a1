"""Explanations: attribution equals exact leave-one-out, the JSON contract, the grounding check
(with injected fake titles and names), the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from longrec.errors import LongrecError
from longrec.explain import EXPLAIN_KEYS, GroundingChecker, explain, explanation_facts, pitch
from longrec.lm.generators import Generator, GeneratorSettings


class FixedGenerator(Generator):
    """A stand-in LLM that returns a fixed text (to inject hallucinations)."""

    def __init__(self, text: str):
        super().__init__(GeneratorSettings(backend="openai"))
        self.text = text
        self.prompts: list[str] = []

    def _generate(self, prompt, max_tokens, stop):
        self.prompts.append(prompt)
        return self.text


@pytest.fixture
def movies(synthetic):
    """The synthetic data with movie-like titles, years and genres."""
    train, _ = synthetic
    n = len(train.items)
    names = ["Star Wars", "Heat", "Alien", "Usual Suspects, The", "Fargo", "Toy Story", "Casino", "Ran"]
    train.items = pd.DataFrame({
        "item_id": train.items["item_id"],
        "movie_title": [names[i % len(names)] + ("" if i < len(names) else f" {i}") for i in range(n)],
        "release_year": [1970 + (i % 30) for i in range(n)],
        "class": ["Drama Thriller" if i % 2 else "Comedy Sci-Fi" for i in range(n)],
    })
    return train


def _model(name, train):
    from longrec.models.registry import get_model_class

    cfg = {"ease": {"l2": 10.0, "tune_l2": False}, "itemknn": {"k": 20}, "bpr": {"epochs": 3},
           "pop": {}}[name]
    return get_model_class(name)(cfg).fit(train)


@pytest.mark.parametrize("name", ["ease", "itemknn"])
def test_matrix_weights_equal_exact_leave_one_out(movies, name):
    m = _model(name, movies)
    item = int(m.recommend(users=[3], k=1)["item_id"][0])
    fast = explanation_facts(m, 3, item, max_because=50)
    slow = explanation_facts(m, 3, item, max_because=50, method="loo")
    assert fast["method"] in ("ease-B", "itemknn-S") and slow["method"] == "leave-one-out"
    assert [b["item_id"] for b in fast["because"]] == [b["item_id"] for b in slow["because"]]
    np.testing.assert_allclose([b["weight"] for b in fast["because"]], [b["weight"] for b in slow["because"]],
                               atol=1e-5)


def test_contract_and_history_only(movies):
    m = _model("ease", movies)
    item = int(m.recommend(users=[3], k=1)["item_id"][0])
    out = explain(m, 3, item)
    assert tuple(out) == EXPLAIN_KEYS
    json.dumps(out)
    hist = set(movies.interactions.loc[movies.interactions.user_id == 3, "item_id"])
    assert out["because"] and all(b["item_id"] in hist for b in out["because"])
    w = [b["weight"] for b in out["because"]]
    assert w == sorted(w, reverse=True) and all(x > 0 for x in w)
    assert out["generator"] == "template" and out["grounded"] is True
    assert out["because"][0]["title"] in out["text"]
    # the top "because" item really supports the item: removing it lowers its score
    h = sorted(hist)
    s_all = m.score(histories={"x": h}, items=[item]).iloc[0, 0]
    s_wo = m.score(histories={"x": [i for i in h if i != out["because"][0]["item_id"]]}, items=[item]).iloc[0, 0]
    assert s_all - s_wo == pytest.approx(out["because"][0]["weight"], abs=1e-5)
    # a user the model never saw, explained from a given history
    new = explain(m, "newbie", item, history=[2, 4, 6, 8])
    assert {b["item_id"] for b in new["because"]} <= {2, 4, 6, 8}
    for a in out["attributes"]:
        assert a["type"] in ("genre", "era") and 0 < a["share"] <= 1


@pytest.mark.parametrize("name", ["bpr", "pop"])
def test_every_model_explains(movies, name):
    m = _model(name, movies)
    item = int(m.recommend(users=[5], k=1)["item_id"][0])
    out = explain(m, 5, item)
    assert tuple(out) == EXPLAIN_KEYS and out["grounded"]
    if name == "pop":
        assert out["because"] == []     # popularity does not depend on the history


def test_bad_inputs(movies):
    m = _model("ease", movies)
    with pytest.raises(LongrecError, match="unknown item"):
        explain(m, 3, 99999)
    with pytest.raises(LongrecError, match="no history"):
        explain(m, "stranger", 1)
    with pytest.raises(LongrecError, match="generator"):
        explain(m, 3, 1, generator="gpt-17")


CAT_TITLES = ["Star Wars (1977)", "Star Wars", "Heat (1995)", "Heat", "Alien (1979)", "Alien",
              "The Usual Suspects (1995)", "Usual Suspects, The", "Fargo (1996)", "Fargo"]
FACTS = {"title": "Heat (1995)", "genres": ["Action", "Crime"], "because": "Alien (1979)",
         "because_titles": ["Alien (1979)"]}


@pytest.mark.parametrize("text", [
    "We recommend Heat (1995) because you enjoyed Star Wars.",                 # catalogue title not in facts
    "Heat (1995) is a must for fans of The Usual Suspects (1995).",            # another form of one
    "Like Alien (1979), Heat (1995) is as gripping as \"Midnight Harbor\".",   # invented, quoted
    "Heat (1995) is the new Crimson Harbor Nights for Alien (1979) fans.",     # invented, unquoted
    "Heat (1995) stars Robert De Niro, like Alien (1979).",                    # a person
    "Heat (1995) is a romantic Crime story.",                                  # attribute not in facts
    "Heat (1995), a 1982 classic.",                                            # year not in facts
])
def test_grounding_rejects_injections(text):
    chk = GroundingChecker(CAT_TITLES, ["Action", "Crime", "Romance", "Drama", "Sci-Fi"])
    assert chk.check(text, FACTS), text


@pytest.mark.parametrize("text", [
    "We recommend Heat (1995) (Action, Crime) because you enjoyed Alien (1979).",
    "A tense crime story for fans of Alien (1979).",
    "Heat (1995): action and crime, for fans of Alien.",
    "If you liked Alien (1979), try Heat (1995).",
    "Great pick! Heat is a gripping action film.",
])
def test_grounding_accepts_fact_only_text(text):
    chk = GroundingChecker(CAT_TITLES, ["Action", "Crime", "Romance", "Drama", "Sci-Fi"])
    assert chk.check(text, FACTS) == [], text


def test_fake_llm_text_falls_back_to_template(movies):
    m = _model("ease", movies)
    item = int(m.recommend(users=[3], k=1)["item_id"][0])
    good = explain(m, 3, item)
    fake = FixedGenerator('A gem in the spirit of "The Crimson Harbor" and Star Wars, starring Tom Hanks.')
    out = explain(m, 3, item, generator=fake)
    assert out["grounded"] is False and out["text"] == good["text"]
    assert fake.prompts and good["because"][0]["title"] in fake.prompts[0]   # the LLM saw the facts
    # a grounded LLM text is shown as is
    title = good["text"].split(" because")[0].replace("We recommend ", "").split(" (")[0]
    ok = FixedGenerator(f"You will like {title} for the same reasons as {good['because'][0]['title']}.")
    out2 = explain(m, 3, item, generator=ok)
    assert out2["grounded"] is True and out2["text"].startswith("You will like")
    # pitch copy follows the same rule
    p = pitch(m, 3, item, generator=FixedGenerator("The best Tom Hanks movie since Star Wars!"))
    assert p["grounded"] is False and p["text"].startswith(good["text"].split("We recommend ")[1].split(" (")[0])
    assert pitch(m, 3, item)["grounded"] is True


def test_cli_prints_json(movies, tmp_path):
    import typer
    from typer.testing import CliRunner

    from longrec.cli._common import handle_errors
    from longrec.cli.explain import explain as cli_explain

    m = _model("ease", movies)
    m.save(tmp_path / "m")
    item = int(m.recommend(users=[3], k=1)["item_id"][0])
    app = typer.Typer()
    app.command("explain")(handle_errors(cli_explain))
    app.command("noop")(lambda: None)
    r = CliRunner().invoke(app, ["explain", "--model", str(tmp_path / "m"), "--user", "3", "--item", str(item)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out == explain(m, 3, item)
    hist = tmp_path / "h.csv"
    pd.DataFrame({"user_id": ["zed"] * 3, "item_id": [2, 4, 6]}).to_csv(hist, index=False)
    r = CliRunner().invoke(app, ["explain", "--model", str(tmp_path / "m"), "--user", "zed", "--item", str(item),
                                 "--history", str(hist)])
    assert r.exit_code == 0, r.output
    assert {b["item_id"] for b in json.loads(r.stdout)["because"]} <= {2, 4, 6}
    r = CliRunner().invoke(app, ["explain", "--model", str(tmp_path / "nope"), "--user", "3", "--item", "1"])
    assert r.exit_code == 2
