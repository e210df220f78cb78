"""The ground truth shipped with a synthetic ICS, loaded into the warehouse keyed by pseudonym like everything
else (people who opted out removed)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from features.sources.checks import lit as _lit
from features.sources.formats.common import SYNTHETIC_MARKER
from features.sources.opt_outs import NOT_OPTED_OUT
from features.sources.pseudonymise import Pseudonymiser


def load_truth(
    con: duckdb.DuckDBPyConnection, src: Path, synthetic: bool, pseudo: Pseudonymiser, opting_out: bool
) -> list[str]:
    """Ground truth shipped with synthetic data, keyed by pseudonym like everything else: the tables the folder's
    marker lists under `warehouse_truth` (every table of `truth/` when it lists none)."""
    folder = src / "truth"
    if not (synthetic and folder.is_dir()):
        return []
    marker = json.loads((src / SYNTHETIC_MARKER).read_text() or "{}")
    wanted = marker.get("warehouse_truth") if isinstance(marker, dict) else None
    loaded = []
    for path in sorted(folder.glob("*.parquet")):
        name = path.stem
        if wanted is not None and name not in wanted:
            continue
        con.execute(f"CREATE OR REPLACE TEMP TABLE raw AS SELECT * FROM read_parquet({_lit(str(path))})")
        has_nhs = "nhs_number" in [r[0] for r in con.execute("SELECT column_name FROM (DESCRIBE raw)").fetchall()]
        if has_nhs:
            nums = [r[0] for r in con.execute("SELECT DISTINCT nhs_number FROM raw ORDER BY 1").fetchall()]
            con.register("pseudonyms", pseudo.mapping(nums))
            kept = f"WHERE m.{NOT_OPTED_OUT}" if opting_out else ""
            con.execute(f"""CREATE TABLE truth_{name} AS SELECT m.person_id, r.* EXCLUDE (nhs_number)
                            FROM raw r JOIN pseudonyms m USING (nhs_number) {kept} ORDER BY ALL""")
            con.unregister("pseudonyms")
        else:
            con.execute(f"CREATE TABLE truth_{name} AS SELECT * FROM raw")
        con.execute("DROP TABLE raw")
        loaded.append(f"truth_{name}")
    return loaded
