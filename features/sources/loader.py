"""Load source extracts into the linked, pseudonymised DuckDB warehouse.

For each table (reference tables first, then `patients`, then person-level sources) the loader
reads the file (Parquet natively; CSV as text), maps accepted column aliases to contract names,
checks every row against the contract in one SQL pass, replaces NHS numbers by keyed pseudonyms,
links rows to `patients`, and writes loaded rows to the table and every other row to
`quarantine` with the rule it broke, its source file and row number. Nothing is dropped
silently: read = loaded + quarantined for every table. A folder staged by a format mapping (Synthea,
OMOP) carries each row's provenance (`_source_file`, `_source_row`): its quarantined rows name the source
file and row a data manager would fix, not the staged file.

An optional `opt_outs` extract lists NHS numbers with a type 1 objection: those people's rows are removed
before anything is written (from every table, the quarantine and the ground truth) and only counted in the
load report (per table, and the people removed).

The warehouse is written to a temporary file and moved into place atomically, so a failed load
leaves the previous warehouse intact and loading the same extract twice gives the same result.

Reading a file (`raw_extract`), linking rows to people and judging them (`linkage`) and the synthetic ground truth
(`ground_truth`) live in their own modules; the row rules in `checks`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from datetime import date
from functools import cached_property
from pathlib import Path

import duckdb

from features.sources.checks import SQL_TYPES, checks, nhs_key, typed
from features.sources.checks import lit as _lit
from features.sources.checks import q as _q
from features.sources.contracts import CONTRACTS, TableContract
from features.sources.extracts import ContractError, find_extract, sha256_file
from features.sources.formats.common import MAPPING_QUARANTINE, SOURCE_NOTE, SYNTHETIC_MARKER
from features.sources.ground_truth import load_truth
from features.sources.linkage import judge, register_numbers
from features.sources.load_report import LoadReport, TableReport
from features.sources.opt_outs import OPT_OUTS, OptOutError, register, remove
from features.sources.pseudonymise import Pseudonymiser, key_changed, key_check, loaded_with, resolve_key
from features.sources.raw_extract import drop_raw, provenance, read_raw, resolve_columns
from features.sources.readable import first_line
from features.sources.shrink import LoadRefused, check_load
from phm.core.settings import Settings
from phm.core.writer_lock import WriterBusy, sole_writer

log = logging.getLogger("phm.load")


Progress = Callable[[str], None]


class Loader:
    """One load of one source folder into a new warehouse file."""

    def __init__(
        self,
        settings: Settings,
        src: Path,
        as_of: date | None = None,
        progress: Progress | None = None,
        allow_shrink: bool = False,
        new_key: bool = False,
    ):
        self.settings = settings
        self.allow_shrink = allow_shrink
        self.new_key = new_key
        self.src = src
        self.as_of = as_of or date.today()
        self.say = progress or (lambda _m: None)
        self.synthetic = (src / SYNTHETIC_MARKER).exists()
        key, self.demo_key = resolve_key(settings, self.synthetic)
        self.pseudo = Pseudonymiser(key)
        self.key_check = key_check(key)

    # ---- public ----------------------------------------------------------------------------
    def run(self, warehouse: Path) -> LoadReport:
        if not self.src.is_dir():
            raise ContractError(f"{self.src}: not a folder of extracts")
        for contract in CONTRACTS:
            if contract.required_table and find_extract(self.src, contract.name) is None:
                raise ContractError(f"{self.src}: missing required extract '{contract.name}' (.parquet or .csv)")
        warehouse.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(warehouse)
        tmp = warehouse.with_name(f".{warehouse.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            con = duckdb.connect(str(tmp))
            con.execute("SET enable_progress_bar = false")
            try:
                report = self._load_all(con, warehouse)
                report.shrink_allowed = self._guard(report, warehouse)
                con.execute("CHECKPOINT")
            finally:
                con.close()
            os.replace(tmp, warehouse)
        except (duckdb.IOException, duckdb.FatalException, OSError) as exc:  # e.g. a full or read-only disk
            raise ContractError(
                f"{warehouse}: the new warehouse could not be written ({first_line(exc)}); the previous warehouse "
                "was left as it was"
            ) from exc
        finally:
            tmp.unlink(missing_ok=True)
            Path(str(tmp) + ".wal").unlink(missing_ok=True)
        return report

    # ---- internals --------------------------------------------------------------------------
    def _guard(self, report: LoadReport, warehouse: Path) -> list[str]:
        """Refuse a load with no patient, one under another pseudonymisation key than the current warehouse's (unless
        `new_key`), or one that shrinks the current warehouse sharply (see `shrink`)."""
        before = loaded_with(warehouse)[1]
        if before is not None and before != self.key_check and not self.new_key:
            raise ContractError(
                key_changed("The warehouse was not changed. If the key was changed on purpose, load with --new-key.")
            )
        try:
            shrunk = check_load(
                warehouse,
                {t: r.rows_loaded for t, r in report.tables.items()},
                {t: (r.file, r.rows_read) for t, r in report.tables.items()},
                self.settings.load_shrink,
                self.allow_shrink,
                report.tables["patients"].quarantined_by_rule,
            )
        except LoadRefused as exc:
            raise ContractError(str(exc)) from exc
        if shrunk:
            log.warning("load of %s shrank the warehouse (allowed): %s", self.src, "; ".join(shrunk))
        return shrunk

    def _load_all(self, con: duckdb.DuckDBPyConnection, warehouse: Path) -> LoadReport:
        con.execute("SET preserve_insertion_order = true")
        con.execute("""CREATE TABLE quarantine (source_table VARCHAR, source_file VARCHAR, source_row BIGINT,
                       rule VARCHAR, column_name VARCHAR, person_id BIGINT, record JSON)""")
        con.execute("CREATE TEMP TABLE nhs_map (nhs_key BIGINT, person_id BIGINT)")
        opt_outs = self._opt_outs(con)
        mapped = self.src / MAPPING_QUARANTINE
        if mapped.exists():  # rows a format mapping (Synthea, OMOP) could not place, kept with their reason
            con.execute(f"""INSERT INTO quarantine SELECT source_table, source_file, source_row, rule, column_name,
                            NULL, CAST(record AS JSON) FROM read_parquet({_lit(str(mapped))})""")
        reports: dict[str, TableReport] = {}
        for contract in CONTRACTS:
            self.say(f"loading {contract.name}")
            try:
                reports[contract.name] = self._load_table(con, contract)
            except duckdb.Error as exc:  # e.g. a Parquet file with corrupt pages: one line, no values
                raise ContractError(
                    f"{find_extract(self.src, contract.name)}: cannot be loaded ({first_line(exc)})"
                ) from exc
            if contract.name == "patients":  # what linking needs, computed once
                con.execute("""CREATE TEMP TABLE person_dates AS SELECT person_id, date_of_death,
                               make_date(year_of_birth, month_of_birth, 1) AS birth FROM patients""")
        ids, distinct = con.execute("SELECT count(person_id), count(DISTINCT person_id) FROM nhs_map").fetchone()
        if ids != distinct:
            raise RuntimeError("pseudonym collision: two NHS numbers map to one person id")
        truth = load_truth(con, self.src, self.synthetic, self.pseudo, self.opting_out)
        if opt_outs is not None:
            opt_outs["people_removed"] = self._opted_out_people
        self._write_manifest(con, reports)
        ethnic = con.execute("""SELECT avg(CASE WHEN ethnic_category IS NULL OR ethnic_category IN ('Z','99')
                                THEN 0 ELSE 1 END) FROM patients""").fetchone()[0]
        imd = con.execute("""SELECT avg(CASE WHEN i.lsoa11 IS NULL THEN 0 ELSE 1 END)
                             FROM patients p LEFT JOIN imd i USING (lsoa11)""").fetchone()[0]
        note = self.source_note
        return LoadReport(
            source=str(self.src),
            warehouse=str(warehouse),
            as_of=self.as_of.isoformat(),
            synthetic=self.synthetic,
            demo_key=self.demo_key,
            tables=reports,
            ethnicity_known_share=round(float(ethnic or 0), 4),
            imd_linked_share=round(float(imd or 0), 4),
            truth_tables=truth,
            source_format=note.get("format", "phm"),
            source_notes=note.get("notes", []),
            mapping_rejected=note.get("rejected", {}),
            opt_outs=opt_outs,
        )

    @cached_property
    def source_note(self) -> dict:
        """What a format mapping recorded about the staged folder (empty for PHM extracts)."""
        path = self.src / SOURCE_NOTE
        return json.loads(path.read_text()) if path.exists() else {}

    def _load_table(self, con: duckdb.DuckDBPyConnection, contract: TableContract) -> TableReport:
        path = find_extract(self.src, contract.name)
        rep = TableReport(table=contract.name, file=path.name if path else None)
        out_cols = [c for c in contract.columns if not c.nhs_number]
        pcol = contract.person_column
        if path is None:
            schema = ([("person_id", "BIGINT")] if pcol else []) + [(c.name, SQL_TYPES[c.type]) for c in out_cols]
            con.execute(f"CREATE TABLE {_q(contract.name)} ({', '.join(f'{_q(n)} {t}' for n, t in schema)})")
            log.info("table %s: no extract supplied", contract.name)
            return rep
        rep.sha256 = sha256_file(path)
        read_raw(con, path)
        cols = resolve_columns(con, contract, path, rep)
        types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE raw)").fetchall())
        select, text = ["_row", *provenance(path, types)], {}
        for col in contract.columns:
            source = cols[col.name]
            raw_text, typed_sql = typed(col, source, types.get(source) if source else None)
            select.append(f"{typed_sql} AS v_{col.name}")
            if raw_text is None:
                text[col.name] = f"CAST(v_{col.name} AS VARCHAR)"
            else:
                select.append(f"{raw_text} AS t_{col.name}")
                text[col.name] = f"t_{col.name}"
            if col.nhs_number:
                select.append(f"{nhs_key(raw_text)} AS nhs_key")
        rules = checks(contract, cols, text, self.as_of)
        reason = (
            "CASE "
            + " ".join(f"WHEN {cond} THEN {_lit(rule + '|' + column)}" for rule, column, cond in rules)
            + " ELSE NULL END"
            if rules
            else "NULL"
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE staged AS SELECT *, {reason} AS _row_reason "
            f"FROM (SELECT {', '.join(select)} FROM raw) s"
        )
        drop_raw(con)
        if pcol:
            register_numbers(con, self.pseudo)
        judge(con, contract, cols, text)
        con.execute("DROP TABLE staged")
        rep.rows_read = con.execute("SELECT count(*) FROM judged").fetchone()[0]
        if self.opting_out and pcol:
            rep.rows_opted_out = self._remove_opted_out(con, "judged", contract.name == "patients")
        # loaded rows
        person = ["person_id"] if pcol else []
        values = [f"v_{c.name} AS {_q(c.name)}" for c in out_cols]
        con.execute(
            f"CREATE TABLE {_q(contract.name)} AS SELECT {', '.join(person + values)} "
            f"FROM judged WHERE _reason IS NULL ORDER BY _row"
        )
        # quarantined rows keep every field as text, except the NHS number (only its pseudonym, if valid)
        record = ", ".join(f"{_lit(c.name)}, {text[c.name]}" for c in out_cols)
        con.execute(f"""INSERT INTO quarantine SELECT {_lit(contract.name)}, _src_file, _src_row,
                        split_part(_reason, '|', 1), split_part(_reason, '|', 2), person_id,
                        json_object({record}) FROM judged WHERE _reason IS NOT NULL ORDER BY _row""")
        counts = dict(
            con.execute(
                "SELECT split_part(_reason, '|', 1), count(*) FROM judged "
                "WHERE _reason IS NOT NULL GROUP BY 1 ORDER BY 1"
            ).fetchall()
        )
        rep.rows_loaded = con.execute(f"SELECT count(*) FROM {_q(contract.name)}").fetchone()[0]
        rep.rows_quarantined = rep.rows_read - rep.rows_loaded - rep.rows_opted_out
        rep.quarantined_by_rule = counts
        rep.rows_unlinked = counts.get("unlinked", 0)
        if pcol and contract.name != "patients":
            linkable = rep.rows_loaded + sum(counts.get(r, 0) for r in ("unlinked", "after_death", "before_birth"))
            rep.linkage_rate = round((linkable - rep.rows_unlinked) / linkable, 4) if linkable else None
        if contract.event_date:
            lo, hi = con.execute(
                f"SELECT min({_q(contract.event_date)}), max({_q(contract.event_date)}) FROM {_q(contract.name)}"
            ).fetchone()
            rep.date_range = (str(lo)[:10], str(hi)[:10]) if lo is not None else None
        con.execute("DROP TABLE judged")
        log.info(
            "table %s: read %d, loaded %d, quarantined %d (unlinked %d)",
            contract.name,
            rep.rows_read,
            rep.rows_loaded,
            rep.rows_quarantined,
            rep.rows_unlinked,
        )
        return rep

    opting_out = False
    _opted_out_people = 0

    def _opt_outs(self, con: duckdb.DuckDBPyConnection) -> dict | None:
        """Temp table `opted_out` from the optional `opt_outs` extract (see `opt_outs.register`)."""
        path = find_extract(self.src, OPT_OUTS)
        if path is None:
            return None
        read_raw(con, path)
        try:
            found = register(con, path, self.pseudo)
        except OptOutError as exc:
            raise ContractError(str(exc)) from exc
        finally:
            drop_raw(con)
        self.opting_out = True
        return {**found, "sha256": sha256_file(path)}

    def _remove_opted_out(self, con: duckdb.DuckDBPyConnection, table: str, patients: bool = False) -> int:
        rows, people = remove(con, table)
        if patients:
            self._opted_out_people = people
        return rows

    def _write_manifest(self, con: duckdb.DuckDBPyConnection, reports: dict[str, TableReport]) -> None:
        rows = [
            (
                r.table,
                r.file,
                r.sha256,
                r.rows_read,
                r.rows_loaded,
                r.rows_quarantined,
                r.rows_unlinked,
                r.linkage_rate,
                json.dumps(r.quarantined_by_rule, sort_keys=True),
            )
            for r in reports.values()
        ]
        con.execute("""CREATE TABLE load_manifest (source_table VARCHAR, source_file VARCHAR, sha256 VARCHAR,
                       rows_read BIGINT, rows_loaded BIGINT, rows_quarantined BIGINT, rows_unlinked BIGINT,
                       linkage_rate DOUBLE, quarantined_by_rule JSON)""")
        con.executemany("INSERT INTO load_manifest VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        fmt = self.source_note.get("format", "phm")
        con.execute(f"""CREATE TABLE load_info AS SELECT {_lit(self.as_of.isoformat())}::DATE AS as_of,
                        {self.synthetic} AS synthetic, {self.demo_key} AS demo_key, {_lit(fmt)} AS source_format,
                        {_lit(self.key_check)} AS key_check""")


def _remove_stale(warehouse: Path) -> None:
    """Delete what loads that were killed half-way left (`.phm.duckdb.<pid>.tmp` and its WAL, whose process has
    ended); a load still running keeps its own."""
    for part in warehouse.parent.glob(f".{warehouse.name}.*.tmp*"):
        pid = part.name[len(warehouse.name) + 2 :].split(".")[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            part.unlink(missing_ok=True)
        except OSError:  # alive, another user's
            continue


def load(
    settings: Settings,
    src: Path,
    warehouse: Path | None = None,
    as_of: date | None = None,
    progress: Progress | None = None,
    allow_shrink: bool = False,
    new_key: bool = False,
) -> LoadReport:
    """Load `src` into the warehouse (default: the one under PHM_HOME) and save the JSON report. A load with no
    patient, or one shrinking the current warehouse beyond `settings.load_shrink`, is refused (ContractError)
    unless `allow_shrink`, and so is one under another pseudonymisation key unless `new_key`; the current warehouse
    is then left untouched. One writer at a time: a load or an absorb
    already writing the warehouse refuses this one (ContractError)."""
    target = warehouse or settings.warehouse_path
    try:
        with sole_writer(target, "a `phm data load`"):
            report = Loader(settings, src, as_of, progress, allow_shrink, new_key).run(target)
            out = settings.reports_dir / "load_report.json"
            part = out.with_name(f".{out.name}.{os.getpid()}.part")
            try:
                part.write_text(json.dumps(report.to_json(), indent=2, default=str))
                part.replace(out)
            except OSError as exc:
                part.unlink(missing_ok=True)
                raise ContractError(
                    f"{out}: the warehouse was loaded but its load report could not be saved ({exc})"
                ) from exc
    except WriterBusy as exc:
        raise ContractError(str(exc)) from exc
    return report
