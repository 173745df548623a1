"""The documentation site (mkdocs.yml: the guides in docs/ and the API reference generated from
the docstrings) builds with `mkdocs build --strict`: no broken link, no unresolved
cross-reference, no docstring warning."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NEEDED = ("mkdocs", "mkdocstrings", "mkdocstrings_handlers.python", "material")


def _missing() -> list[str]:
    out = []
    for name in NEEDED:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            out.append(name)
    return out


@pytest.mark.skipif(bool(_missing()), reason="the docs extra is not installed (pip install -e '.[docs]')")
def test_mkdocs_build_strict(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    p = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                        "-d", str(site)], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, f"mkdocs build --strict failed:\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}"
    # the API reference was generated from the docstrings, not left as ::: directives
    api = (site / "api" / "models" / "index.html").read_text(encoding="utf-8")
    assert "::: longrec" not in api
    assert "Recommender" in api and "recommend" in api
    for page in ("models", "privacy", "simulate", "trust", "lm", "serve"):
        assert (site / page / "index.html").is_file(), page


def test_guides_in_nav_exist():
    """Every page named in mkdocs.yml's nav exists under docs/ (checked without mkdocs)."""
    import re

    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = re.findall(r":\s*([\w/.-]+\.md)\s*$", text, flags=re.M)
    assert pages, "no pages in mkdocs.yml nav"
    missing = [p for p in pages if not (ROOT / "docs" / p).is_file()]
    assert not missing, f"pages in the nav but not in docs/: {missing}"


def test_docs_link_targets_exist():
    """Relative Markdown links in README.md and docs/*.md point at files that exist."""
    import re

    bad = []
    for md in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", md.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (md.parent / target).exists():
                bad.append(f"{md.relative_to(ROOT)} -> {target}")
    assert not bad, "broken links: " + "; ".join(bad)
