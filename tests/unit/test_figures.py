"""Benchmark figures come from recorded results files: the READMEs' blocks match `benchmarks/results/` (a stale block
fails here), a quick check never lands where a recorded figure lives, and a missed target says MISS."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from benchmarks import figures
from benchmarks.measure import Figure, Run, Target, add_trial


def test_readme_blocks_match_the_results_files() -> None:
    assert figures.main(["--check"]) == 0, "run `python -m benchmarks.figures` and commit the READMEs"


def test_every_readme_names_its_benchmarks_in_blocks() -> None:
    names = {m.group("name") for doc in figures.documents() for m in figures.BLOCK.finditer(doc.read_text())}
    assert {
        "generate_load",
        "features_build",
        "train_score",
        "audit",
        "spark_scale",
        "daily_refresh",
        "ledger_append",
        "governance_overhead",
        "serve_load",
        "busy_training",
    } <= names


def _parser() -> argparse.ArgumentParser:
    parser = add_trial(argparse.ArgumentParser())
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, default=None)
    return parser


@pytest.mark.parametrize(
    ("argv", "trial"), [([], False), (["--keep", "/tmp/x"], False), (["--trial"], True), (["--persons", "5000"], True)]
)
def test_a_trial_or_a_small_size_goes_to_the_trial_folder(tmp_path: Path, argv: list[str], trial: bool) -> None:
    parser = _parser()
    run = Run("demo", parser.parse_args(argv), parser, neutral=("keep",), results_dir=tmp_path)
    body = run.write_results({"n": 1}, [Target("t", 1.0, 2.0, "s")])
    where = tmp_path / "trial" / "demo.json" if trial else tmp_path / "demo.json"
    assert run.trial is trial and where.exists() and json.loads(where.read_text()) == json.loads(json.dumps(body))
    assert not (tmp_path / ("demo.json" if trial else "trial")).exists()


def test_the_record_carries_machine_facts_targets_and_floors(tmp_path: Path) -> None:
    parser = _parser()
    run = Run("demo", parser.parse_args([]), parser, results_dir=tmp_path)
    body = run.write_results(
        {"n": 1},
        [Target("fast", 3.0, 2.0, "s"), Target("errors", 0, 0, "", "==")],
        [Figure("stage", 2.0, "s", 0.5, "plain copy"), Figure("odd", 1.0, "s", 1.5, "slower")],
    )
    f = body["facts"]
    assert f["cores"] >= 1 and f["memory_gib"] > 0 and f["python"] and "duckdb" in f["packages"]
    assert len(body["load_average"]["start"]) == 3 and len(body["load_average"]["end"]) == 3
    assert [t["verdict"] for t in body["targets"]] == ["MISS", "PASS"] and body["verdict"] == "MISS"
    assert body["targets"][0]["target"] == "< 2 s" and body["command"] == "python -m benchmarks.demo"
    assert body["figures"][0] == {
        "what": "stage",
        "value": 2.0,
        "unit": "s",
        "floor": 0.5,
        "floor_what": "plain copy",
        "ratio": 4.0,
        "floor_bounds": True,
    }
    assert body["figures"][1]["floor_bounds"] is False


def test_a_block_renders_each_target_and_the_file_it_comes_from(tmp_path: Path) -> None:
    parser = _parser()
    Run("demo", parser.parse_args([]), parser, results_dir=tmp_path).write_results(
        {}, [Target("fast", 3.0, 2.0, "s")], [Figure("odd", 1.0, "s", 1.5, "slower")]
    )
    text = figures.render("demo", tmp_path)
    assert "| fast | 3 s | | | < 2 s | **MISS** |" in text
    assert "not a floor" in text and "`benchmarks/results/demo.json`" in text
    assert figures.render("absent", tmp_path).startswith("*Not yet recorded: run `python -m benchmarks.absent`")
    doc = "a\n<!-- figures:absent -->\nold 1.2 s\n<!-- /figures -->\nb\n"
    new = figures.rendered(doc, tmp_path)
    assert (
        "old" not in new
        and new.startswith("a\n<!-- figures:absent -->\n*Not yet")
        and new.endswith("<!-- /figures -->\nb\n")
    )
    assert figures.rendered(new, tmp_path) == new


def _step(seconds: float, rows: int = 100, peak: int = 2**30) -> dict:
    return {"seconds": seconds, "rows": rows, "peak_bytes": peak, "wall": seconds + 1}


def test_the_feature_builds_own_ratio_target_says_miss() -> None:
    from benchmarks import features_build

    targets, figures_ = features_build.record(
        1_000_000, {"build": _step(2.4), "floor": _step(0.15), "groupby": _step(0.7), "write": _step(0.4)}
    )
    assert [(t.what, t.verdict) for t in targets] == [
        ("feature build, 1,000,000 persons", "PASS"),
        ("feature build / scan floor", "MISS"),
    ]
    assert all(f.floor is None or f.floor <= f.value for f in figures_)


def test_service_errors_are_a_miss_and_the_floor_is_checked() -> None:
    from benchmarks import serve_load

    level = {"n": 10, "errors": 0, "p50": 2.0, "p95": 3.0, "p99": 4.0, "rps": 100.0}
    http = {f"{k}@{c}": dict(level) for k in ("score_one", "worklist_10000") for c in (1, 8, 32)}
    http["score_one@32"]["errors"] = 1
    floor = {"score_one": dict(level, p50=1.0), "worklist_10000": dict(level, p50=300.0)}
    targets, figures_ = serve_load.record(floor, http)
    assert [t.verdict for t in targets] == ["PASS", "PASS", "MISS"]
    assert not Figure("x", 2.0, "ms", 300.0).record()["floor_bounds"]
    assert [f.record()["floor_bounds"] for f in figures_ if f.floor == 300.0] == [False] * 3
