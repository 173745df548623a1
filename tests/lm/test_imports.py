import subprocess
import sys

HEAVY = ("torch", "sentence_transformers", "onnxruntime", "llama_cpp", "transformers", "tokenizers")


def test_import_longrec_lm_is_light():
    code = (
        "import sys, longrec, longrec.lm\n"
        "from longrec.lm import get_encoder, CachedEncoder, EmbeddingCache, item_text, item_texts, user_text, "
        "ItemIndex, recommend_text, get_generator, build_prompt, EncoderSettings, GeneratorSettings\n"
        "import longrec.lm.encoders, longrec.lm.cache, longrec.lm.generators, longrec.lm.query, longrec.cli.ask\n"
        "get_encoder(); get_encoder('onnx'); get_generator('openai'); get_generator()\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"heavy modules imported: {out.stdout.strip()}"


def test_lazy_attribute_errors():
    import longrec.lm

    try:
        longrec.lm.does_not_exist
    except AttributeError as e:
        assert "does_not_exist" in str(e)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")
    assert "get_encoder" in dir(longrec.lm)
