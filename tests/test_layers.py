"""The layer contract: packages import one way, and no module imports itself through others.

    errors < data < lm, metrics < models, fair < rerank < explain, privacy, simulate, experiment < pipeline, quickstart < serve < cli

(rerank sits below simulate: the simulator wraps re-rankers as policies.)

Every import counts, lazy ones inside functions included: a lazy import hides a dependency from
start-up time, not from the design. `__main__.py` files are entry points (what `python -m` runs),
not library code, and may import the CLI.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "longrec"

LAYERS: list[set[str]] = [
    {"errors", "_version", "_lazy", "_threads", "topk"},
    {"data"},
    {"lm", "metrics"},
    {"models", "fair"},
    {"rerank"},
    {"explain", "privacy", "simulate", "experiment"},
    {"pipeline", "quickstart"},
    {"serve"},
    {"cli"},
]
LEVEL = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}
# the top package's own __init__ re-exports lazily (longrec._lazy); it is not a layer
SKIP = {"longrec", "longrec.__init__"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module
                base = _module_name(path).split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((mod, node.lineno))
            # `from longrec.data import readers` imports a module too
            out += [(f"{mod}.{a.name}", node.lineno) for a in node.names]
    return [(m, ln) for m, ln in out if m == "longrec" or m.startswith("longrec.")]


def _graph() -> dict[str, list[tuple[str, int]]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for name, path in modules.items():
        for target, line in _imports(path):
            # keep only targets that are modules (drop `module.function` names)
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in modules and target != name:
                if target not in {t for t, _ in graph[name]}:
                    graph[name].append((target, line))
    return graph


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_package_has_a_layer():
    packages = {p.stem if p.is_file() else p.name for p in SRC.iterdir()
                if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.stem != "__init__")}
    assert packages <= set(LEVEL), f"add these to LAYERS in {__file__}: {sorted(packages - set(LEVEL))}"


def _upward_imports() -> list[str]:
    """Imports that break the layer contract, one line each."""
    bad = []
    for mod, targets in _graph().items():
        if mod in SKIP or mod.endswith("__main__"):
            continue
        src = _package(mod)
        for target, line in targets:
            dst = _package(target)
            if target in SKIP or dst == src:
                continue
            if LEVEL[dst] >= LEVEL[src]:
                bad.append(f"{mod}:{line} imports {target} ({src} is layer {LEVEL[src]}, {dst} is layer {LEVEL[dst]})")
    return sorted(bad)


def test_layers_import_one_way():
    bad = _upward_imports()
    assert not bad, "layer contract broken:\n" + "\n".join(bad)


def _cycles() -> list[list[str]]:
    """Module-level import cycles (each as a path that ends where it starts)."""
    def inside(a: str, b: str) -> bool:  # a package's __init__ and its own modules re-export each other
        return (_is_init(a) and b.startswith(a + ".")) or (_is_init(b) and a.startswith(b + "."))

    graph = {m: [t for t, _ in ts if t not in SKIP and not inside(m, t)]
             for m, ts in _graph().items() if m not in SKIP}
    cycles, state, stack = [], {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in graph.get(m, []):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return cycles


def test_no_import_cycles():
    cycles = _cycles()
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _is_init(module: str) -> bool:
    return (SRC.parent / Path(*module.split(".")) / "__init__.py").exists()
