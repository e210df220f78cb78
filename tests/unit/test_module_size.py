"""Modules stay small enough to read in one sitting (issue 20: no module over about 400 lines, as `ruff format`
lays it out). Covers the product's packages, the benchmarks and the tests."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("phm", "features", "models", "evaluation", "training", "serving", "benchmarks", "tests")
LIMIT = 400


def test_no_module_is_over_the_limit() -> None:
    sizes = {
        path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for folder in FOLDERS
        for path in (ROOT / folder).rglob("*.py")
        if ".cache" not in path.parts
    }
    assert len(sizes) > 100, "the walk found too few modules: is ROOT right?"
    over = {name: lines for name, lines in sizes.items() if lines > LIMIT}
    assert not over, f"modules over {LIMIT} lines (split them by meaning): {over}"
