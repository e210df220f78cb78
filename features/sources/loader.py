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
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from functools import cached_property
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

from features.sources.checks import SQL_TYPES, checks, nhs_key, typed
from features.sources.checks import lit as _lit
from features.sources.checks import q as _q
from features.sources.contracts import CONTRACTS, TableContract
from features.sources.extracts import ContractError, find_extract, sha256_file
from features.sources.formats.common import MAPPING_QUARANTINE, SOURCE_FILE, SOURCE_NOTE, SOURCE_ROW
from features.sources.load_report import LoadReport, TableReport
from features.sources.opt_outs import NOT_OPTED_OUT, OPT_OUTS, OptOutError, register, remove
from features.sources.pseudonymise import Pseudonymiser, resolve_key
from features.sources.readable import check_parquet, csv_error, first_line
from features.sources.shrink import LoadRefused, check_load
from phm.core.settings import Settings

log = logging.getLogger("phm.load")

SYNTHETIC_MARKER = "_synthetic.json"


Progress = Callable[[str], None]


class Loader:
    """One load of one source folder into a new warehouse file."""

    def __init__(self, settings: Settings, src: Path, as_of: date | None = None, progress: Progress | None = None,
                 allow_shrink: bool = False):
        self.settings = settings
        self.allow_shrink = allow_shrink
        self.src = src
        self.as_of = as_of or date.today()
        self.say = progress or (lambda _m: None)
        self.synthetic = (src / SYNTHETIC_MARKER).exists()
        key, self.demo_key = resolve_key(settings, self.synthetic)
        self.pseudo = Pseudonymiser(key)

    # ---- public ----------------------------------------------------------------------------
    def run(self, warehouse: Path) -> LoadReport:
        if not self.src.is_dir():
            raise ContractError(f"{self.src}: not a folder of extracts")
        for contract in CONTRACTS:
            if contract.required_table and find_extract(self.src, contract.name) is None:
                raise ContractError(f"{self.src}: missing required extract '{contract.name}' (.parquet or .csv)")
        warehouse.parent.mkdir(parents=True, exist_ok=True)
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
        finally:
            tmp.unlink(missing_ok=True)
            Path(str(tmp) + ".wal").unlink(missing_ok=True)
        return report

    # ---- internals --------------------------------------------------------------------------
    def _guard(self, report: LoadReport, warehouse: Path) -> list[str]:
        """Refuse a load with no patient, or one that shrinks the current warehouse sharply (see `shrink`)."""
        try:
            shrunk = check_load(warehouse, {t: r.rows_loaded for t, r in report.tables.items()},
                                {t: (r.file, r.rows_read) for t, r in report.tables.items()},
                                self.settings.load_shrink, self.allow_shrink)
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
                raise ContractError(f"{find_extract(self.src, contract.name)}: cannot be loaded "
                                    f"({first_line(exc)})") from exc
            if contract.name == "patients":  # what linking needs, computed once
                con.execute("""CREATE TEMP TABLE person_dates AS SELECT person_id, date_of_death,
                               make_date(year_of_birth, month_of_birth, 1) AS birth FROM patients""")
        ids, distinct = con.execute("SELECT count(person_id), count(DISTINCT person_id) FROM nhs_map").fetchone()
        if ids != distinct:
            raise RuntimeError("pseudonym collision: two NHS numbers map to one person id")
        truth = self._load_truth(con)
        if opt_outs is not None:
            opt_outs["people_removed"] = self._opted_out_people
        self._write_manifest(con, reports)
        ethnic = con.execute("""SELECT avg(CASE WHEN ethnic_category IS NULL OR ethnic_category IN ('Z','99')
                                THEN 0 ELSE 1 END) FROM patients""").fetchone()[0]
        imd = con.execute("""SELECT avg(CASE WHEN i.lsoa11 IS NULL THEN 0 ELSE 1 END)
                             FROM patients p LEFT JOIN imd i USING (lsoa11)""").fetchone()[0]
        note = self.source_note
        return LoadReport(source=str(self.src), warehouse=str(warehouse), as_of=self.as_of.isoformat(),
                          synthetic=self.synthetic, demo_key=self.demo_key, tables=reports,
                          ethnicity_known_share=round(float(ethnic or 0), 4),
                          imd_linked_share=round(float(imd or 0), 4), truth_tables=truth,
                          source_format=note.get("format", "phm"), source_notes=note.get("notes", []),
                          mapping_rejected=note.get("rejected", {}), opt_outs=opt_outs)

    @cached_property
    def source_note(self) -> dict:
        """What a format mapping recorded about the staged folder (empty for PHM extracts)."""
        path = self.src / SOURCE_NOTE
        return json.loads(path.read_text()) if path.exists() else {}

    def _read(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        """Expose the raw file as view `raw` with a 1-based `_row` in file order (no copy)."""
        if path.suffix == ".parquet":
            try:
                check_parquet(path)
            except ValueError as exc:
                raise ContractError(str(exc)) from exc
            con.execute(f"""CREATE OR REPLACE TEMP VIEW raw AS
                            SELECT * EXCLUDE (file_row_number), file_row_number + 1 AS _row
                            FROM read_parquet({_lit(str(path))}, file_row_number = true)""")
        else:
            try:
                names = pacsv.read_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16)).schema.names
                table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                    column_types={n: pa.string() for n in names}, strings_can_be_null=True))
            except (pa.ArrowInvalid, OSError) as exc:
                raise ContractError(csv_error(path, exc)) from exc
            table = table.append_column("_row", pa.array(range(1, table.num_rows + 1), pa.int64()))
            con.register("raw", table)

    def _resolve_columns(self, con, contract: TableContract, path: Path, rep: TableReport) -> dict[str, str | None]:
        present = [r[0] for r in con.execute("SELECT column_name FROM (DESCRIBE raw)").fetchall()
                   if r[0] not in ("_row", SOURCE_FILE, SOURCE_ROW)]
        lower = {p.lower(): p for p in present}
        found: dict[str, str | None] = {}
        for col in contract.columns:
            source = next((lower[n.lower()] for n in [col.name, *col.aliases] if n.lower() in lower), None)
            if source is None and col.required:
                raise ContractError(
                    f"{path}: missing column '{col.name}' required by the {contract.name} contract"
                    + (f" (also accepted: {', '.join(col.aliases)})" if col.aliases else ""))
            if source is None:
                rep.missing_optional_columns.append(col.name)
            found[col.name] = source
        used = {s for s in found.values() if s}
        rep.ignored_columns = [p for p in present if p not in used]
        return found

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
        self._read(con, path)
        cols = self._resolve_columns(con, contract, path, rep)
        types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE raw)").fetchall())
        select, text = ["_row", *self._provenance(path, types)], {}
        for col in contract.columns:
            source = cols[col.name]
            native = source is not None and types.get(source, "VARCHAR") != "VARCHAR"
            raw_text, typed_sql = typed(col, source, native)
            select.append(f"{typed_sql} AS v_{col.name}")
            if raw_text is None:
                text[col.name] = f"CAST(v_{col.name} AS VARCHAR)"
            else:
                select.append(f"{raw_text} AS t_{col.name}")
                text[col.name] = f"t_{col.name}"
            if col.nhs_number:
                select.append(f"{nhs_key(raw_text)} AS nhs_key")
        rules = checks(contract, cols, text, self.as_of)
        reason = "CASE " + " ".join(f"WHEN {cond} THEN {_lit(rule + '|' + column)}" for rule, column, cond in rules) \
            + " ELSE NULL END" if rules else "NULL"
        con.execute(f"CREATE OR REPLACE TEMP TABLE staged AS SELECT *, {reason} AS _row_reason "
                    f"FROM (SELECT {', '.join(select)} FROM raw) s")
        self._drop_raw(con)
        if pcol:
            self._register_numbers(con, pcol)
        self._judge(con, contract, cols, text)
        con.execute("DROP TABLE staged")
        rep.rows_read = con.execute("SELECT count(*) FROM judged").fetchone()[0]
        if self.opting_out and pcol:
            rep.rows_opted_out = self._remove_opted_out(con, "judged", contract.name == "patients")
        # loaded rows
        person = ["person_id"] if pcol else []
        values = [f"v_{c.name} AS {_q(c.name)}" for c in out_cols]
        con.execute(f"CREATE TABLE {_q(contract.name)} AS SELECT {', '.join(person + values)} "
                    f"FROM judged WHERE _reason IS NULL ORDER BY _row")
        # quarantined rows keep every field as text, except the NHS number (only its pseudonym, if valid)
        record = ", ".join(f"{_lit(c.name)}, {text[c.name]}" for c in out_cols)
        con.execute(f"""INSERT INTO quarantine SELECT {_lit(contract.name)}, _src_file, _src_row,
                        split_part(_reason, '|', 1), split_part(_reason, '|', 2), person_id,
                        json_object({record}) FROM judged WHERE _reason IS NOT NULL ORDER BY _row""")
        counts = dict(con.execute("SELECT split_part(_reason, '|', 1), count(*) FROM judged "
                                  "WHERE _reason IS NOT NULL GROUP BY 1 ORDER BY 1").fetchall())
        rep.rows_loaded = con.execute(f"SELECT count(*) FROM {_q(contract.name)}").fetchone()[0]
        rep.rows_quarantined = rep.rows_read - rep.rows_loaded - rep.rows_opted_out
        rep.quarantined_by_rule = counts
        rep.rows_unlinked = counts.get("unlinked", 0)
        if pcol and contract.name != "patients":
            linkable = rep.rows_loaded + sum(counts.get(r, 0) for r in ("unlinked", "after_death", "before_birth"))
            rep.linkage_rate = round((linkable - rep.rows_unlinked) / linkable, 4) if linkable else None
        if contract.event_date:
            lo, hi = con.execute(f"SELECT min({_q(contract.event_date)}), max({_q(contract.event_date)}) "
                                 f"FROM {_q(contract.name)}").fetchone()
            rep.date_range = (str(lo)[:10], str(hi)[:10]) if lo is not None else None
        con.execute("DROP TABLE judged")
        log.info("table %s: read %d, loaded %d, quarantined %d (unlinked %d)", contract.name, rep.rows_read,
                 rep.rows_loaded, rep.rows_quarantined, rep.rows_unlinked)
        return rep

    @staticmethod
    def _provenance(path: Path, types: dict[str, str]) -> list[str]:
        """Where each row came from: the source file and row a format mapping recorded, else this file and row."""
        if SOURCE_FILE in types and SOURCE_ROW in types:
            return [f"coalesce(CAST({_q(SOURCE_FILE)} AS VARCHAR), {_lit(path.name)}) AS _src_file",
                    f"coalesce(TRY_CAST({_q(SOURCE_ROW)} AS BIGINT), _row) AS _src_row"]
        return [f"{_lit(path.name)} AS _src_file", "_row AS _src_row"]

    @staticmethod
    def _drop_raw(con: duckdb.DuckDBPyConnection) -> None:
        try:
            con.execute("DROP VIEW IF EXISTS raw")
        except duckdb.CatalogException:
            con.unregister("raw")

    def _register_numbers(self, con: duckdb.DuckDBPyConnection, pcol: str) -> None:
        """Add 10-digit NHS numbers not seen before to `nhs_map` (number -> pseudonym; NULL when the
        check digit is wrong). Validity is checked once per distinct number, in integer arithmetic."""
        digit = lambda i: f"((k // {10 ** (10 - i)}) % 10)"  # noqa: E731  (digit i of 10, from the left)
        weighted = " + ".join(f"{digit(i)} * {11 - i}" for i in range(1, 10))
        rows = con.execute(f"""SELECT k, (11 - ({weighted}) % 11) % 11 = {digit(10)} FROM
                               (SELECT DISTINCT nhs_key AS k FROM staged WHERE nhs_key IS NOT NULL) s
                               WHERE NOT EXISTS (SELECT 1 FROM nhs_map m WHERE m.nhs_key = s.k) ORDER BY k""").fetchall()
        good = [f"{k:010d}" for k, ok in rows if ok]
        bad = [k for k, ok in rows if not ok]
        mapping = self.pseudo.mapping(good)
        keys = pa.array([int(n) for n in good] + bad, pa.int64())
        ids = pa.concat_arrays([mapping.column("person_id").combine_chunks(), pa.nulls(len(bad), pa.int64())])
        con.register("new_numbers", pa.table({"nhs_key": keys, "person_id": ids}))
        con.execute("INSERT INTO nhs_map SELECT * FROM new_numbers")
        con.unregister("new_numbers")

    opting_out = False
    _opted_out_people = 0

    def _opt_outs(self, con: duckdb.DuckDBPyConnection) -> dict | None:
        """Temp table `opted_out` from the optional `opt_outs` extract (see `opt_outs.register`)."""
        path = find_extract(self.src, OPT_OUTS)
        if path is None:
            return None
        self._read(con, path)
        try:
            found = register(con, path, self.pseudo)
        except OptOutError as exc:
            raise ContractError(str(exc)) from exc
        finally:
            self._drop_raw(con)
        self.opting_out = True
        return {**found, "sha256": sha256_file(path)}

    def _remove_opted_out(self, con: duckdb.DuckDBPyConnection, table: str, patients: bool = False) -> int:
        rows, people = remove(con, table)
        if patients:
            self._opted_out_people = people
        return rows

    def _judge(self, con: duckdb.DuckDBPyConnection, contract: TableContract, cols: dict[str, str | None],
               text: dict[str, str]) -> None:
        """Table `judged`: every staged row with its person_id and the first rule it breaks (or NULL).

        Order: invalid NHS number, row rules, duplicate key (first row in file order kept), then
        for person-level sources: unlinked, before birth, after death.
        """
        pcol = contract.person_column
        keys = [f"v_{k}" for k in contract.key] if contract.key and all(cols[k] for k in contract.key) else []
        if not keys:  # no usable key: whole-row duplicates
            keys = [text[c.name] if text[c.name].startswith("t_") else f"v_{c.name}"
                    for c in contract.columns if cols[c.name]]
            match = " AND ".join(f"d.{k} IS NOT DISTINCT FROM s.{k}" for k in keys)
            not_null = "TRUE"
        else:
            match = " AND ".join(f"d.{k} = s.{k}" for k in keys)
            not_null = " AND ".join(f"s.{k} IS NOT NULL" for k in keys)
        valid_person = " JOIN nhs_map m ON m.nhs_key = s.nhs_key AND m.person_id IS NOT NULL" if pcol else ""
        con.execute(f"""CREATE OR REPLACE TEMP TABLE dups AS SELECT {', '.join(f's.{k}' for k in keys)},
                        min(s._row) AS first_row FROM staged s{valid_person}
                        WHERE s._row_reason IS NULL AND {not_null} GROUP BY ALL HAVING count(*) > 1""")
        key_label = contract.key[0] if contract.key else "*"
        whens = ["WHEN s._row_reason IS NOT NULL THEN s._row_reason",
                 f"WHEN d.first_row IS NOT NULL THEN 'duplicate_key|{key_label}'"]
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
                        SELECT s.*, {person} AS person_id, CASE {' '.join(whens)} END AS _reason
                        FROM staged s {' '.join(joins)}""")
        con.execute("DROP TABLE dups")

    def _load_truth(self, con: duckdb.DuckDBPyConnection) -> list[str]:
        """Ground truth shipped with synthetic data, keyed by pseudonym like everything else: the tables the folder's
        marker lists under `warehouse_truth` (every table of `truth/` when it lists none)."""
        folder = self.src / "truth"
        if not (self.synthetic and folder.is_dir()):
            return []
        marker = json.loads((self.src / SYNTHETIC_MARKER).read_text() or "{}")
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
                con.register("pseudonyms", self.pseudo.mapping(nums))
                kept = f"WHERE m.{NOT_OPTED_OUT}" if self.opting_out else ""
                con.execute(f"""CREATE TABLE truth_{name} AS SELECT m.person_id, r.* EXCLUDE (nhs_number)
                                FROM raw r JOIN pseudonyms m USING (nhs_number) {kept} ORDER BY ALL""")
                con.unregister("pseudonyms")
            else:
                con.execute(f"CREATE TABLE truth_{name} AS SELECT * FROM raw")
            con.execute("DROP TABLE raw")
            loaded.append(f"truth_{name}")
        return loaded

    def _write_manifest(self, con: duckdb.DuckDBPyConnection, reports: dict[str, TableReport]) -> None:
        rows = [(r.table, r.file, r.sha256, r.rows_read, r.rows_loaded, r.rows_quarantined, r.rows_unlinked,
                 r.linkage_rate, json.dumps(r.quarantined_by_rule, sort_keys=True)) for r in reports.values()]
        con.execute("""CREATE TABLE load_manifest (source_table VARCHAR, source_file VARCHAR, sha256 VARCHAR,
                       rows_read BIGINT, rows_loaded BIGINT, rows_quarantined BIGINT, rows_unlinked BIGINT,
                       linkage_rate DOUBLE, quarantined_by_rule JSON)""")
        con.executemany("INSERT INTO load_manifest VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        fmt = self.source_note.get("format", "phm")
        con.execute(f"""CREATE TABLE load_info AS SELECT {_lit(self.as_of.isoformat())}::DATE AS as_of,
                        {self.synthetic} AS synthetic, {self.demo_key} AS demo_key, {_lit(fmt)} AS source_format""")


def load(settings: Settings, src: Path, warehouse: Path | None = None, as_of: date | None = None,
         progress: Progress | None = None, allow_shrink: bool = False) -> LoadReport:
    """Load `src` into the warehouse (default: the one under PHM_HOME) and save the JSON report. A load with no
    patient, or one shrinking the current warehouse beyond `settings.load_shrink`, is refused (ContractError)
    unless `allow_shrink`; the current warehouse is then left untouched."""
    target = warehouse or settings.warehouse_path
    report = Loader(settings, src, as_of, progress, allow_shrink).run(target)
    out = settings.reports_dir / "load_report.json"
    out.write_text(json.dumps(report.to_json(), indent=2, default=str))
    return report
