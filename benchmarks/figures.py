"""Render the benchmark figures in the READMEs from the recorded results files.

Every block `<!-- figures:NAME -->` ... `<!-- /figures -->` in README.md, benchmarks/README.md and docs/**/*.md is
replaced by a table of `benchmarks/results/NAME.json`: each target with its value and PASS or MISS, each figure
beside the floor measured in the same run, and the file, command, date and machine it comes from. A benchmark not
yet recorded renders as such, with the command that records it. Trials (`benchmarks/results/trial/`) are never
rendered.

Usage::

    python -m benchmarks.figures            # rewrite the blocks
    python -m benchmarks.figures --check    # exit 1 naming each block that differs from its results file
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from benchmarks.measure import RESULTS, ROOT, _fmt

BLOCK = re.compile(r"(<!-- figures:(?P<name>[a-z0-9_]+) -->\n)(?P<body>.*?)(<!-- /figures -->)", re.DOTALL)


def documents(root: Path = ROOT) -> list[Path]:
    """The files whose blocks are rendered."""
    found = [root / "README.md", root / "benchmarks" / "README.md", *sorted((root / "docs").rglob("*.md"))]
    return [p for p in found if p.exists()]


def _value(x: float, unit: str) -> str:
    return f"{_fmt(x)} {unit}".strip()


def render(name: str, results: Path = RESULTS) -> str:
    """The markdown for one block (ending in a newline)."""
    path = results / f"{name}.json"
    if not path.exists():
        return (
            f"*Not yet recorded: run `python -m benchmarks.{name}` (results go to `benchmarks/results/{name}.json`).*\n"
        )
    body = json.loads(path.read_text())
    if body.get("schema") != 1:
        raise SystemExit(f"{path}: not a results file of benchmarks.measure.Run (no 'schema': 1)")
    lines = ["| figure | value | floor (same run) | ratio | target | verdict |", "|---|---|---|---|---|---|"]
    for t in body["targets"]:
        lines.append(f"| {t['what']} | {_value(t['value'], t['unit'])} | | | {t['target']} | **{t['verdict']}** |")
    for g in body["figures"]:
        floor = ratio = ""
        if "floor" in g:
            floor = f"{_value(g['floor'], g['unit'])} ({g['floor_what']})"
            ratio = f"{_fmt(g['ratio'])}x" if g["ratio"] is not None else ""
            if not g["floor_bounds"]:
                ratio += " (floor above the figure: not a floor)"
        lines.append(f"| {g['what']} | {_value(g['value'], g['unit'])} | {floor} | {ratio} | | |")
    f, load = body["facts"], body["load_average"]
    commit = (f.get("git_commit") or "unknown")[:7] + (" with local changes" if f.get("git_dirty") else "")
    source = (
        f"From `benchmarks/results/{name}.json`: `{body['command']}`, {body['finished'][:10]}, {f['cores']} cores "
        f"({f.get('cpu_model') or 'CPU model not recorded'}), {f['memory_gib']} GiB, load average "
        f"{load['start'][0] if load.get('start') else '?'} at the start and "
        f"{load['end'][0] if load.get('end') else '?'} at the end, commit {commit}."
    )
    note = f" {body['note']}" if body.get("note") else ""
    return "\n".join(lines) + f"\n\n*{source}{note}*\n"


def rendered(text: str, results: Path = RESULTS) -> str:
    """`text` with every block rendered."""
    return BLOCK.sub(lambda m: m.group(1) + render(m.group("name"), results) + m.group(4), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.figures", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; fail if any block is stale")
    args = parser.parse_args(argv)
    stale = []
    for doc in documents():
        text = doc.read_text()
        new = rendered(text)
        if new == text:
            continue
        if args.check:
            names = [m.group("name") for m in BLOCK.finditer(text) if m.group("body") != render(m.group("name"))]
            stale.append(f"{doc.relative_to(ROOT)}: {', '.join(names)}")
        else:
            doc.write_text(new)
            print(f"rendered {doc.relative_to(ROOT)}")
    if stale:
        print("stale benchmark figures (run `python -m benchmarks.figures`):\n  " + "\n  ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
