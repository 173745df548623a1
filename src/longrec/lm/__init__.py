"""The language-model layer: encoders, an embedding cache, text builders, natural-language
queries and text generators.

Importing this package is cheap: torch, sentence-transformers, onnxruntime and llama_cpp
are imported only when a model is loaded. Names are resolved lazily.

>>> from longrec.lm import item_text, get_encoder, CachedEncoder, recommend_text   # doctest: +SKIP
"""

from __future__ import annotations

from longrec._lazy import lazy_getattr

_EXPORTS = {
    # encoders
    "Encoder": "encoders", "EncoderSettings": "encoders", "SentenceTransformerEncoder": "encoders",
    "OnnxEncoder": "encoders", "get_encoder": "encoders", "default_encoder": "encoders",
    "packaged_minilm_path": "encoders", "packaged_onnx_path": "encoders",
    # cache
    "EmbeddingCache": "cache", "CachedEncoder": "cache",
    # text
    "item_text": "text", "item_texts": "text", "user_text": "text",
    # queries
    "ItemIndex": "index", "recommend_text": "query", "QueryError": "query",
    # generators
    "Generator": "generators", "GeneratorSettings": "generators", "TemplateGenerator": "generators",
    "OpenAIGenerator": "generators", "LlamaCppGenerator": "generators", "get_generator": "generators",
    "packaged_gguf_path": "generators",
    "Prompt": "prompts", "build_prompt": "prompts", "render_template": "prompts",
    # errors / paths
    "LMError": "errors", "EncoderError": "errors", "GeneratorError": "errors",
    "MissingDependencyError": "errors", "cache_dir": "paths",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())


def __dir__():
    return sorted(list(globals()) + __all__)
