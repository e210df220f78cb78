"""The packages are layered by meaning, and data flows one way (ARCHITECTURE.md):

foundation (`phm.core`, and the operational database `phm.operational`) < data (`features.sources`, `features.synthetic`) < `features` < `models` < `evaluation`
< `training` < governance (`serving.governance`) < batch scoring (`serving.batch`) < `serving` (API, pages)
< the command line (`phm.cli`).

No module imports a higher layer (at the top of a file or inside a function), and no modules import each
other in a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("phm", "features", "models", "evaluation", "training", "serving")
RANK = {
    "phm": 0,
    "phm.core": 0,
    "phm.operational": 0,
    "features.sources": 1,
    "features.synthetic": 1,
    "features": 2,
    "models": 3,
    "evaluation": 4,
    "training": 5,
    "serving.governance": 6,
    "serving.batch": 7,
    "serving": 8,
    "phm.cli": 9,
}


def _layer(module: str) -> str | None:
    for name in sorted(RANK, key=len, reverse=True):
        if module == name or module.startswith(name + "."):
            return name
    return None


def _graph() -> dict[str, set[str]]:
    """Each module of ours and the modules of ours it imports anywhere in its file."""
    files = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
        for pkg in PACKAGES
        for p in (ROOT / pkg).rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                submodules = {f"{node.module}.{a.name}" for a in node.names} & set(files)
                found |= submodules
                if len(submodules) < len(node.names):  # names defined in the module itself
                    found.add(node.module)
        graph[module] = {m for m in found if m in files and m != module}
    return graph


def test_lower_layers_never_import_higher_ones() -> None:
    graph = _graph()
    assert len(graph) > 50
    problems = [
        f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)})"
        for m, targets in graph.items()
        for t in targets
        if RANK[_layer(t)] > RANK[_layer(m)]
    ]
    assert not problems, problems


def test_the_foundation_imports_nothing_of_ours() -> None:
    graph = _graph()
    assert {m for m in graph if _layer(m) == "phm.core"} >= {"phm.core.settings", "phm.core.ledger"}
    foundation = ("phm", "phm.core", "phm.operational")
    assert not {
        m: t
        for m, t in graph.items()
        if _layer(m) in foundation and t - {x for x in t if _layer(x) in ("phm.core", "phm.operational")}
    }


def test_no_import_cycles() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, cycles
