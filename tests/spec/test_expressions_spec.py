"""Spec: what each kind of feature expression gives, missing values included, on every engine (the reference
engine's pandas evaluation, and the SQL the compiler renders run on DuckDB and on Spark).

    row  a     b     s            | SQL semantics pinned
    0    1     1     'F'          | a comparison with a missing operand is unknown: a CASE branch is not taken,
    1    2     -     -            |   unknown OR true is true, unknown OR false is unknown (not taken)
    2    -     3     'M'          | + and - with a missing operand are missing
    3    4     0     'F'          | GREATEST skips missing arguments (missing only when all are)
    4    0     5     'x'          | CASE without ELSE gives missing when no branch is taken
    5    -     -     '0301011R0'  | substr counts from 1 and keeps missing text missing
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from support.engines import ENGINES

from features.definitions.expressions import add, case, col, const, greatest, substr
from features.engine.dialect import DIALECTS
from features.engine.expressions import to_sql
from features.reference.expressions import evaluate

ROWS = [
    (0, 1, 1, "F"),
    (1, 2, None, None),
    (2, None, 3, "M"),
    (3, 4, 0, "F"),
    (4, 0, 5, "x"),
    (5, None, None, "0301011R0"),
]
A, B, S = col("a"), col("b"), col("s")
SPEC = {  # name: (expression, expected value per row; None is missing)
    "bands": (
        case((A.lt(2), "low"), (A.lt(4), "mid"), otherwise="high"),
        ["low", "mid", "high", "high", "low", "high"],
    ),
    "no_else": (case((A.ge(2), 1)), [None, 1, None, 1, None, None]),
    "flag": (case((S.eq("F"), 1), otherwise=0), [1, 0, 0, 1, 0, 0]),
    "not_equal": (case((S.ne("F"), 1), otherwise=0), [0, 0, 1, 0, 1, 1]),
    "either": (case((A.eq(1) | B.eq(3), "yes"), otherwise="no"), ["yes", "no", "yes", "no", "no", "no"]),
    "both": (case((A.gt(0) & B.gt(0), 1), otherwise=0), [1, 0, 0, 0, 0, 0]),
    "greatest": (greatest(A, B), [1, 2, 3, 4, 5, None]),
    "sum": (add(A, B, 1), [3, None, None, 5, 6, None]),
    "nested_minus": (const(10) - (A - B), [10, None, None, 6, 15, None]),
    "sum_compared": (case(((A + B).ge(4), 1), otherwise=0), [0, 0, 0, 1, 1, 0]),
    "substr": (substr(S, 1, 4), ["F", None, "M", "F", "x", "0301"]),
}


def values(engine: str, request: pytest.FixtureRequest) -> dict[str, list]:
    frame = pd.DataFrame(ROWS, columns=["_i", "a", "b", "s"]).astype({"a": "Int64", "b": "Int64"})
    if engine == "reference":
        return {name: evaluate(expr, frame).tolist() for name, (expr, _) in SPEC.items()}
    dialect = DIALECTS[engine]
    select = ", ".join(f"{to_sql(expr, dialect)} AS {name}" for name, (expr, _) in SPEC.items())
    if engine == "duckdb":
        con = duckdb.connect()
        con.register("t", frame)
        out = con.execute(f"SELECT {select} FROM t ORDER BY _i").df()
    else:
        spark = request.getfixturevalue("spark")
        spark.createDataFrame(ROWS, "_i INT, a BIGINT, b BIGINT, s STRING").createOrReplaceTempView("t")
        out = spark.sql(f"SELECT {select} FROM t ORDER BY _i").toPandas()
    return {name: out[name].tolist() for name in SPEC}


def _plain(v):
    return None if v is None or pd.isna(v) else (float(v) if not isinstance(v, str) else v)


@pytest.mark.parametrize("engine", ENGINES)
def test_every_kind_of_expression_on_every_engine(engine: str, request: pytest.FixtureRequest) -> None:
    got = values(engine, request)
    wrong = {
        name: got[name]
        for name, (_, expected) in SPEC.items()
        if [_plain(v) for v in got[name]] != [_plain(v) for v in expected]
    }
    assert not wrong, wrong
