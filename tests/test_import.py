"""`import longrec` stays light: no torch, sentence-transformers, onnxruntime or llama_cpp."""

import subprocess
import sys

HEAVY = ("torch", "sentence_transformers", "transformers", "onnxruntime", "llama_cpp", "fastapi", "ray", "opacus", "flwr")


def test_core_import_pulls_no_heavy_dependency():
    code = ("import sys, longrec, longrec.data, longrec.models, longrec.metrics, longrec.cli.main; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"heavy modules imported at import time: {out}"


def test_bare_import_is_tiny():
    code = "import sys, longrec; print(len([m for m in sys.modules if m.startswith(('pandas', 'numpy', 'scipy'))]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "0"
