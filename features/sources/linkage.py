"""Linking staged rows to people: new NHS numbers checked (check digit) and given keyed pseudonymous ids in
`nhs_map`, then the first rule each staged row breaks (invalid NHS number, the contract's row rules, duplicate
key, and for person-level sources: unlinked, before birth, after death) in the temp table `judged`."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from features.sources.contracts import TableContract
from features.sources.pseudonymise import Pseudonymiser


def register_numbers(con: duckdb.DuckDBPyConnection, pseudo: Pseudonymiser) -> None:
    """Add 10-digit NHS numbers not seen before to `nhs_map` (number -> pseudonym; NULL when the
    check digit is wrong). Validity is checked once per distinct number, in integer arithmetic."""
    digit = lambda i: f"((k // {10 ** (10 - i)}) % 10)"  # noqa: E731  (digit i of 10, from the left)
    weighted = " + ".join(f"{digit(i)} * {11 - i}" for i in range(1, 10))
    rows = con.execute(f"""SELECT k, (11 - ({weighted}) % 11) % 11 = {digit(10)} FROM
                           (SELECT DISTINCT nhs_key AS k FROM staged WHERE nhs_key IS NOT NULL) s
                           WHERE NOT EXISTS (SELECT 1 FROM nhs_map m WHERE m.nhs_key = s.k) ORDER BY k""").fetchall()
    good = [f"{k:010d}" for k, ok in rows if ok]
    bad = [k for k, ok in rows if not ok]
    mapping = pseudo.mapping(good)
    keys = pa.array([int(n) for n in good] + bad, pa.int64())
    ids = pa.concat_arrays([mapping.column("person_id").combine_chunks(), pa.nulls(len(bad), pa.int64())])
    con.register("new_numbers", pa.table({"nhs_key": keys, "person_id": ids}))
    con.execute("INSERT INTO nhs_map SELECT * FROM new_numbers")
    con.unregister("new_numbers")


def judge(
    con: duckdb.DuckDBPyConnection, contract: TableContract, cols: dict[str, str | None], text: dict[str, str]
) -> None:
    """Table `judged`: every staged row with its person_id and the first rule it breaks (or NULL).

    Order: invalid NHS number, row rules, duplicate key (first row in file order kept), then
    for person-level sources: unlinked, before birth, after death.
    """
    pcol = contract.person_column
    keys = [f"v_{k}" for k in contract.key] if contract.key and all(cols[k] for k in contract.key) else []
    if not keys:  # no usable key: whole-row duplicates
        keys = [
            text[c.name] if text[c.name].startswith("t_") else f"v_{c.name}" for c in contract.columns if cols[c.name]
        ]
        match = " AND ".join(f"d.{k} IS NOT DISTINCT FROM s.{k}" for k in keys)
        not_null = "TRUE"
    else:
        match = " AND ".join(f"d.{k} = s.{k}" for k in keys)
        not_null = " AND ".join(f"s.{k} IS NOT NULL" for k in keys)
    valid_person = " JOIN nhs_map m ON m.nhs_key = s.nhs_key AND m.person_id IS NOT NULL" if pcol else ""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE dups AS SELECT {", ".join(f"s.{k}" for k in keys)},
                    min(s._row) AS first_row FROM staged s{valid_person}
                    WHERE s._row_reason IS NULL AND {not_null} GROUP BY ALL HAVING count(*) > 1""")
    key_label = contract.key[0] if contract.key else "*"
    whens = [
        "WHEN s._row_reason IS NOT NULL THEN s._row_reason",
        f"WHEN d.first_row IS NOT NULL THEN 'duplicate_key|{key_label}'",
    ]
    joins = [f"LEFT JOIN dups d ON {match} AND s._row > d.first_row"]
    person = "NULL::BIGINT"
    if pcol:
        whens.insert(0, f"WHEN s.t_{pcol} IS NOT NULL AND m.person_id IS NULL THEN 'invalid_nhs_number|{pcol}'")
        joins.insert(0, "LEFT JOIN nhs_map m ON m.nhs_key = s.nhs_key")
        person = "m.person_id"
        if contract.name != "patients":
            joins.append("LEFT JOIN person_dates p ON p.person_id = m.person_id")
            whens.append("WHEN p.person_id IS NULL THEN 'unlinked|nhs_number'")
            if contract.event_date:
                day, col = f"CAST(s.v_{contract.event_date} AS DATE)", contract.event_date
                whens.append(f"WHEN {day} < p.birth THEN 'before_birth|{col}'")
                whens.append(f"WHEN {day} > p.date_of_death THEN 'after_death|{col}'")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE judged AS
                    SELECT s.*, {person} AS person_id, CASE {" ".join(whens)} END AS _reason
                    FROM staged s {" ".join(joins)}""")
    con.execute("DROP TABLE dups")
