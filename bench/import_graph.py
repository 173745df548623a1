"""The shape of the code, for architecture reviews: the package-level import graph (every import
counts, lazy ones inside functions included, as in tests/test_layers.py, whose helpers this
reuses), its cycles and upward imports, the largest source files, and the public model protocol.

    python bench/import_graph.py --before REV [--duplicates]   # -> bench/results/architecture.md

`--before REV` adds the same figures for the source tree at commit REV (read with git archive),
judged by today's layer contract. `--duplicates` adds what the `duplicates` tool (a code-copy
finder, where it is installed) prints for src/.

The protocol section lists the methods of longrec.models.base.Recommender (and longrec.topk) that
the other packages build on, each with the first line of its docstring.
"""

from __future__ import annotations

import argparse
import inspect
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from _provenance import md_line, provenance

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

import tests.test_layers as layers  # noqa: E402
from tests.test_layers import LAYERS, LEVEL, SKIP, _cycles, _graph, _package, _upward_imports  # noqa: E402

#: what serving, explanations, re-rankers, blends, pipelines and the CLI call on a model
PROTOCOL = ["fit", "recommend", "score", "histories", "score_batch", "training_matrix", "save", "load",
            "is_fitted"]


def package_edges(entry_points: bool = False) -> Counter:
    """(importing package, imported package) -> number of module-level import edges, from the
    library modules (or, with `entry_points`, from the `__main__` modules only)."""
    edges: Counter = Counter()
    for mod, targets in _graph().items():
        if mod in SKIP or mod.endswith("__main__") != entry_points:
            continue
        for target, _ in targets:
            a, b = _package(mod), _package(target)
            if target not in SKIP and a != b:
                edges[(a, b)] += 1
    return edges


def largest_files(n: int = 10) -> list[tuple[int, str]]:
    src = layers.SRC
    sizes = [(len(p.read_text(encoding="utf-8").splitlines()), "src/" + p.relative_to(src.parent).as_posix())
             for p in src.rglob("*.py")]
    return sorted(sizes, reverse=True)[:n]


def _first_sentence(obj) -> str:
    doc = " ".join((inspect.getdoc(obj) or "").split("\n\n")[0].split())
    return doc.split(". ")[0].rstrip(".") + "." if doc else ""


def _params(fn) -> str:
    names = [p.name for p in inspect.signature(fn).parameters.values() if p.name not in ("self", "cls")]
    return "(" + ", ".join(names) + ")"


def protocol_lines() -> list[str]:
    from longrec.models.base import Recommender
    from longrec.topk import topk

    out = []
    for name in PROTOCOL:
        attr = inspect.getattr_static(Recommender, name)
        if isinstance(attr, property):
            out.append(f"| `.{name}` | {_first_sentence(attr.fget) or 'Whether fit (or load) has run.'} |")
        else:
            fn = getattr(Recommender, name)
            out.append(f"| `.{name}{_params(fn)}` | {_first_sentence(fn)} |")
    out.append(f"| `longrec.topk.topk{_params(topk)}` | {_first_sentence(topk)} |")
    return out


def graph_section(title: str) -> list[str]:
    """Cycles, upward imports and the package-level edges of the tree at layers.SRC."""
    edges, entry = package_edges(), package_edges(entry_points=True)
    cycles, upward = _cycles(), _upward_imports()
    lines = [f"### {title}", "",
             f"- module-level import cycles: **{len(cycles)}**" + "".join(f"\n  - {' -> '.join(c)}" for c in cycles),
             f"- imports against the layer order: **{len(upward)}**" + "".join(f"\n  - {u}" for u in upward),
             f"- package-level edges: {len(edges)}; from `__main__` entry points (exempt): "
             + (", ".join(f"{a} -> {b}" for a, b in sorted(entry)) or "none"), "",
             "| package (layer) | imports (number of module edges) |", "|---|---|"]
    for pkg in sorted({a for a, _ in edges}, key=lambda p: (LEVEL.get(p, -1), p)):
        outs = sorted(((b, c) for (a, b), c in edges.items() if a == pkg), key=lambda bc: (LEVEL.get(bc[0], -1), bc[0]))
        lines.append(f"| {pkg} ({LEVEL.get(pkg, '?')}) | " + ", ".join(f"{b} ({c})" for b, c in outs) + " |")
    return lines + [""]


def duplicates(src: Path) -> str:
    """What the `duplicates` tool prints for the tree `src` (paths relative to it)."""
    return subprocess.run(["duplicates", "--repo", str(src), "--most", "60", "--seconds", "120"], cwd=src,
                          capture_output=True, text=True).stdout.rstrip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", help="a commit to compare with (its src/ tree)")
    ap.add_argument("--duplicates", action="store_true", help="run `duplicates --repo src --most 60` too")
    a = ap.parse_args()
    prov = provenance()
    order = " < ".join(", ".join(sorted(layer)) for layer in LAYERS)
    lines = ["# Architecture: import graph, largest files, public model protocol", "", md_line(prov), "",
             "## Import graph", "",
             f"Layers, lowest first: {order}. Every `import` of a longrec module counts, lazy ones inside "
             "functions included; a `__main__.py` (what `python -m` runs) is an entry point and may import "
             "the CLI. Both trees are judged by this contract (tests/test_layers.py).", ""]
    lines += graph_section(f"After (commit {prov['commit'][:7]})")
    largest = largest_files()
    if a.before:
        rev = subprocess.run(["git", "rev-parse", a.before], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        with tempfile.TemporaryDirectory() as tmp:
            tar = subprocess.run(["git", "archive", rev, "src"], cwd=ROOT, capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=tar, check=True)
            now, layers.SRC = layers.SRC, Path(tmp) / "src" / "longrec"
            try:
                lines += graph_section(f"Before (commit {rev[:7]})")
                largest_before = largest_files()
                dup_before = duplicates(Path(tmp) / "src") if a.duplicates else ""
            finally:
                layers.SRC = now
    lines += ["## The 10 largest source files", ""]
    if a.before:
        lines += ["| after: lines | file | before: lines | file |", "|---|---|---|---|"]
        lines += [f"| {n} | `{p}` | {m} | `{q}` |" for (n, p), (m, q) in zip(largest, largest_before)]
    else:
        lines += ["| lines | file |", "|---|---|"] + [f"| {n} | `{p}` |" for n, p in largest]
    lines += ["", "## The public model protocol", "",
              "What the packages above `models` (serve, explain, rerank, blend, privacy, pipeline, cli) call on a "
              "fitted `longrec.models.base.Recommender`. A model implements `_fit` and `_score` (and `_state` / "
              "`_set_state` to be saved) and may override the hooks `_cold_user_scores`, `_extra_meta`, "
              "`_restore_meta`.", "", "| method | meaning |", "|---|---|", *protocol_lines(), ""]
    if a.duplicates:
        lines += ["## Code copies (`duplicates --repo src --most 60`)", "",
                  "Pairs of places sharing 6 or more lines of the same shape; a row is a place to look, not a "
                  "verdict.", "", "After:", "", "```", duplicates(ROOT / "src"), "```", ""]
        if a.before:
            lines += [f"Before (commit {rev[:7]}):", "", "```", dup_before, "```", ""]
    out = ROOT / "bench" / "results" / "architecture.md"
    out.write_text("\n".join(lines))
    print(out.read_text())


if __name__ == "__main__":
    main()
