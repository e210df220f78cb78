"""`phm audit scores` on another tool's table that carries identifiers beside its scores (as vendors' exports do):
rows that cannot be audited are recorded by line, reason and the offending values, never with the identifying
columns, in the quarantine file the command writes to disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from support.cli import run as phm


def test_quarantine_file_keeps_no_identifying_columns(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    n = 3_000
    nhs = [f"{9_000_000_000 + 7 * i:010d}" for i in range(n)]
    names = [f"Patient Surname{i:05d}" for i in range(n)]
    p = rng.uniform(0.01, 0.3, n)
    frame = pd.DataFrame(
        {
            "nhs_number": nhs,
            "patient_name": names,
            "date_of_birth": "1950-01-01",
            "tool_score": np.round(p, 4),
            "admitted": (rng.random(n) < p).astype(int),
            "ethnic_group": rng.choice(["Group A", "Group B"], n),
        }
    )
    frame.loc[4, "tool_score"] = np.nan
    frame.loc[8, "admitted"] = 3
    path = tmp_path / "vendor.csv"
    frame.to_csv(path, index=False)
    home = tmp_path / "home"
    out = phm(
        "audit", "scores", str(path), "--score", "tool_score", "--outcome", "admitted", "--group", "ethnic_group",
        "--person", "nhs_number", "--name", "vendor", "--draws", "50", home=home,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "2 row(s) could not be audited" in out.stdout
    quarantine = home / "reports" / "audits" / "vendor" / "quarantine.csv"
    kept = pd.read_csv(quarantine)
    assert kept.source_row.tolist() == [6, 10]  # the file's lines, counting the header: enough to find them
    assert kept.quarantine_reason.tolist() == ["tool_score: missing or not a number", "admitted: not 0 or 1"]
    assert kept.admitted.tolist()[1] == 3 and np.isnan(kept.tool_score.tolist()[0])
    assert set(kept.columns) == {"source_row", "tool_score", "admitted", "quarantine_reason"}
    text = quarantine.read_text()
    for i in (4, 8):
        assert nhs[i] not in text and names[i] not in text
    written = "".join(f.read_text(errors="ignore") for f in home.rglob("*") if f.is_file())
    assert not any(nhs[i] in written or names[i] in written for i in range(n))
    assert not any(nhs[i] in out.stdout + out.stderr for i in range(n))
