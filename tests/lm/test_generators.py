import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from longrec.errors import ConfigError, LongrecError
from longrec.lm.errors import GeneratorError, LMModelNotFoundError
from longrec.lm.generators import GeneratorSettings, OpenAIGenerator, TemplateGenerator, get_generator
from longrec.lm.prompts import Prompt, build_prompt, render_template

FACTS = {"title": "Toy Story (1995)", "genres": ["Animation", "Comedy"], "because": "Aladdin (1992)"}


def test_template_generator_default_and_languages():
    g = get_generator()
    assert isinstance(g, TemplateGenerator)
    assert g.phrase("explain", FACTS) == \
        "We recommend Toy Story (1995) (Animation, Comedy) because you enjoyed Aladdin (1992)."
    zh = get_generator("template", language="zh")
    assert zh.phrase("explain", FACTS) == "推荐《Toy Story (1995)》（Animation、Comedy），因为你喜欢Aladdin (1992)。"
    assert g.generate_batch([build_prompt("describe_item", {"title": "Heat"})]) == ["Heat."]
    assert g.generate("{title}!", facts={"title": "Heat"}) == "Heat!"
    assert get_generator("template", facts={"title": "X"}).generate("{title}?") == "X?"
    with pytest.raises(GeneratorError, match="needs fact 'title'"):
        g.generate("{title}")


def test_prompts():
    p = build_prompt("explain", FACTS, "zh")
    assert isinstance(p, Prompt) and p.task == "explain" and p.language == "zh"
    assert p.endswith("用户会喜欢它的原因：")
    en = build_prompt("summarize_user", {"history": ["A", "B"]})
    assert en == "Recently watched: A, B.\nIn one sentence, this viewer enjoys"
    with pytest.raises(ConfigError, match="language"):
        build_prompt("explain", FACTS, "fr")
    with pytest.raises(ConfigError, match="task"):
        render_template("nope", FACTS)
    with pytest.raises(ConfigError, match="need at least"):
        build_prompt("explain", {"genres": "x"})


@pytest.mark.parametrize("bad,msg", [(None, "None"), ("", "empty"), ("  \n", "empty"), (3, "string"),
                                     ("x" * 100_000, "over the limit")])
def test_bad_prompts(bad, msg):
    for g in (get_generator(), get_generator("openai", base_url="http://127.0.0.1:9")):
        with pytest.raises(GeneratorError, match=msg):
            g.generate(bad)


def test_bad_specs(tmp_path):
    with pytest.raises(GeneratorError, match="unknown generator"):
        get_generator("gpt-9")
    with pytest.raises(LMModelNotFoundError, match="does not exist"):
        get_generator(str(tmp_path / "nope.gguf"))
    with pytest.raises(GeneratorError, match="invalid"):
        get_generator("openai", timeout=-1)
    with pytest.raises(GeneratorError, match="max_tokens"):
        get_generator().generate("x", max_tokens=0)
    assert issubclass(GeneratorError, LongrecError)


# ------------------------------------------------------------------ stub server
class Stub:
    def __init__(self):
        self.script = []  # list of (status, body, delay)
        self.requests = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _reply(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"null")
                outer.requests.append((self.command, self.path, dict(self.headers), body))
                status, payload, delay = outer.script.pop(0) if outer.script else (200, {"choices": [{"text": " ok"}]}, 0)
                time.sleep(delay)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_POST = do_GET = _reply

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    s = Stub()
    yield s
    s.close()


def client(url, **kw):
    sleeps = []
    g = OpenAIGenerator(GeneratorSettings(backend="openai", base_url=url, model="m", **kw), sleep=sleeps.append)
    return g, sleeps


def test_completions_and_chat(stub, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sekret")
    g, _ = client(stub.url, api_key_env="MY_KEY", extra_body={"repeat_penalty": 1.2})
    stub.script = [(200, {"choices": [{"text": " Funny toys.\nMore text"}]}, 0)]
    assert g.generate("Why:", max_tokens=5) == "Funny toys."
    method, path, headers, body = stub.requests[-1]
    assert (method, path) == ("POST", "/v1/completions")
    assert headers["Authorization"] == "Bearer sekret"
    assert body["prompt"] == "Why:" and body["max_tokens"] == 5 and body["stop"] == ["\n"]
    assert body["repeat_penalty"] == 1.2 and body["model"] == "m"
    gc, _ = client(stub.url + "/v1/", endpoint="chat")
    stub.script = [(200, {"choices": [{"message": {"role": "assistant", "content": "Hi there"}}]}, 0)]
    assert gc.generate("hello", stop=[]) == "Hi there"
    assert stub.requests[-1][1] == "/v1/chat/completions"
    assert "stop" not in stub.requests[-1][3]
    stub.script = [(200, {"object": "list", "data": [{"id": "m"}]}, 0)]
    assert g.models() == ["m"]
    assert g.generate_batch(["a", "b"]) == ["ok", "ok"]


def test_retries_then_success(stub):
    g, sleeps = client(stub.url, max_retries=3, backoff=0.5)
    stub.script = [(500, {"error": "boom"}, 0), (429, {"error": "slow down"}, 0),
                   (200, {"choices": [{"text": "fine"}]}, 0)]
    assert g.generate("x") == "fine"
    assert g.attempts == 3 and len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 0.56 and 1.0 <= sleeps[1] <= 1.11  # exponential backoff


def test_5xx_gives_up(stub):
    g, sleeps = client(stub.url, max_retries=2)
    stub.script = [(503, {"error": "down"}, 0)] * 3
    with pytest.raises(GeneratorError, match=r"after 3 attempt\(s\): HTTP 503"):
        g.generate("x")
    assert len(sleeps) == 2


def test_4xx_is_not_retried(stub):
    g, sleeps = client(stub.url, max_retries=3)
    stub.script = [(401, {"error": "bad key"}, 0)]
    with pytest.raises(GeneratorError, match="HTTP 401.*OPENAI_API_KEY"):
        g.generate("x")
    stub.script = [(404, {"error": "no"}, 0)]
    with pytest.raises(GeneratorError, match="HTTP 404"):
        g.generate("x")
    assert sleeps == [] and len(stub.requests) == 2


def test_bad_json_and_bad_shape(stub):
    g, sleeps = client(stub.url)
    stub.script = [(200, b"<html>not json", 0)]
    with pytest.raises(GeneratorError, match="not JSON"):
        g.generate("x")
    stub.script = [(200, {"error": {"message": "model not loaded"}}, 0)]
    with pytest.raises(GeneratorError, match="model not loaded"):
        g.generate("x")
    stub.script = [(200, {"choices": []}, 0)]
    with pytest.raises(GeneratorError, match="unexpected response"):
        g.generate("x")
    assert sleeps == []


def test_timeout(stub):
    g, sleeps = client(stub.url, timeout=0.2, max_retries=1)
    stub.script = [(200, {"choices": [{"text": "late"}]}, 1.0)] * 2
    with pytest.raises(GeneratorError, match="timed out"):
        g.generate("x")
    assert len(sleeps) == 1


def test_server_down():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    g, sleeps = client(f"http://127.0.0.1:{port}", max_retries=2)
    with pytest.raises(GeneratorError, match="cannot connect.*is the server running"):
        g.generate("x")
    assert len(sleeps) == 2 and g.attempts == 3
