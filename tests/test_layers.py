"""Data flows one way: features -> models/training -> evaluation -> serving. Lower layers never
import higher ones; `phm.settings` and `phm.logs` are the foundation, `phm.cli` the top."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RANK = {"phm.settings": 0, "phm.ledger": 0, "phm.logs": 0, "phm.stats": 0, "phm.timing": 0, "features": 1, "models": 2, "training": 2, "evaluation": 3,
        "serving": 4, "phm.cli": 5}


def _layer(module: str) -> str | None:
    for name in sorted(RANK, key=len, reverse=True):
        if module == name or module.startswith(name + "."):
            return name
    return "phm.settings" if module == "phm" else None


def test_lower_layers_never_import_higher_ones() -> None:
    problems = []
    files = [p for pkg in ("features", "models", "training", "evaluation", "serving", "phm")
             for p in (ROOT / pkg).rglob("*.py")]
    assert len(files) > 10
    for path in files:
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        own = _layer(module)
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
            for name in names:
                target = _layer(name)
                if own and target and RANK[target] > RANK[own]:
                    problems.append(f"{module} imports {name}")
    assert not problems, problems
