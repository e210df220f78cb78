"""Typed feature expressions: the catalogue holds no SQL text, their canonical text is the SQL the engines
used to run (so compiled SQL and definition hashes did not change), and bad definitions fail clearly."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from features.definitions.expressions import Node, add, case, col, const, formula, greatest
from features.definitions.model import DerivedFeature, EventFeature, FeatureSet
from features.engine.dialect import DIALECTS
from features.engine.expressions import to_sql
from models import specs


def _features():
    return [f for s in specs.SPECS.values() for f in s.features.features]


def test_the_catalogue_holds_typed_expressions_only() -> None:
    derived = [f for f in _features() if isinstance(f, DerivedFeature)]
    assert derived and all(isinstance(f.expression, Node) for f in derived)
    assert all(f.value is None or isinstance(f.value, Node) for f in _features() if isinstance(f, EventFeature))


def test_canonical_text_is_the_sql_each_dialect_runs() -> None:
    by_name = {f.name: f for f in _features()}
    assert formula(by_name["age_band"].expression) == (
        "CASE WHEN age < 18 THEN '0-17' WHEN age < 40 THEN '18-39' WHEN age < 55 THEN '40-54' WHEN age < 65 "
        "THEN '55-64' WHEN age < 75 THEN '65-74' WHEN age < 85 THEN '75-84' ELSE '85+' END"
    )
    assert formula(by_name["segment"].expression).startswith(
        "CASE WHEN palliative_care_12m = 1 THEN 'end_of_life' WHEN frailty_deficits >= 4 OR ltc_dementia = 1 THEN"
    )
    assert formula(by_name["hm_missing_days_7d"].expression) == "7 - hm_reading_days_7d"
    assert by_name["medicine_classes_12m"].value_text == "substr(bnf_code, 1, 4)"
    for f in _features():
        expr = f.expression if isinstance(f, DerivedFeature) else getattr(f, "value", None)
        if expr is not None:
            assert {to_sql(expr, d) for d in DIALECTS.values()} == {formula(expr)}, f.name


def test_operands_are_parenthesised_only_where_needed() -> None:
    a, b, c = col("a"), col("b"), col("c")
    assert formula(a - (b - c)) == "a - (b - c)" and formula((a - b) + c) == "(a - b) + c"
    assert formula(add(a, b, c)) == "a + b + c" and formula(a + b + c) == "a + b + c"
    assert formula((a.eq(1) | b.eq(2)) & c.eq(3)) == "(a = 1 OR b = 2) AND c = 3"
    assert formula(case(((a + b).ge(4), "x"))) == "CASE WHEN a + b >= 4 THEN 'x' END"
    assert formula(const("o'k")) == "'o''k'" and formula(greatest(a, 0)) == "GREATEST(a, 0)"


def test_feature_sets_round_trip_through_json_with_the_same_hash() -> None:
    for spec in specs.SPECS.values():
        fs = spec.features
        again = FeatureSet.model_validate_json(fs.model_dump_json())
        assert again == fs and again.definition_hash() == fs.definition_hash()


def test_bad_definitions_fail_clearly() -> None:
    with pytest.raises(ValidationError, match="column name or a typed expression"):
        EventFeature(
            name="x",
            description="",
            family="",
            source="prescriptions",
            date="issue_date",
            aggregation="count_distinct",
            value="substr(bnf_code, 1, 4)",
        )
    with pytest.raises(ValidationError, match=r"reads \['b'\], not in depends_on"):
        DerivedFeature(name="x", description="", family="", depends_on=["a"], expression=col("a") + col("b"))
    with pytest.raises(ValidationError, match="its default must be 0"):
        EventFeature(
            name="x",
            description="",
            family="",
            source="housing",
            date="recorded_date",
            aggregation="exists",
            default=None,
        )
    with pytest.raises(TypeError, match="not an expression or a constant"):
        col("a").eq(True)


@pytest.mark.parametrize(
    "field, text",
    [
        ("name", "n, (SELECT count(*) FROM read_text('/etc/hostname')) AS leaked"),
        ("name", "n --"),
        ("source", "apc_spells e, patients"),
        ("date", "admission_date) OR (1 = 1"),
        ("end", "discharge_date; DROP TABLE patients"),
    ],
)
def test_names_that_reach_sql_are_identifiers_never_sql_text(field: str, text: str) -> None:
    """A definition file (a BuildConfig's features) is data: a name that is SQL text is refused, naming the field."""
    good = dict(name="x", description="", family="", source="apc_spells", date="admission_date", end="discharge_date")
    with pytest.raises(ValidationError, match=field):
        EventFeature(**{**good, field: text})
    with pytest.raises(ValidationError, match="column"):
        EventFeature(**good, where=[{"column": "admission_method IS NOT NULL OR 1", "values": ["21"]}])
    with pytest.raises(ValidationError, match="name"):
        DerivedFeature(name=text + " x", description="", family="", depends_on=["a"], expression=col("a"))
