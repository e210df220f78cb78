"""Render typed feature expressions (`features.definitions.expressions`) as SQL for one dialect.

Every node has one SQL form on DuckDB and Spark today (the text equals the definitions' canonical `formula`,
so compiled SQL is unchanged from when definitions held SQL strings); a dialect that spells a node
differently would add a `Dialect` hook and call it here.
"""

from __future__ import annotations

from features.definitions.expressions import (
    Add,
    And,
    Case,
    Col,
    Compare,
    Const,
    Greatest,
    Node,
    Or,
    Sub,
    Substr,
)
from features.engine.dialect import Dialect
from phm.core.sql import literal

_PRECEDENCE = {Or: 1, And: 2, Compare: 3, Add: 4, Sub: 4}


def to_sql(node: Node, dialect: Dialect, prefix: str = "") -> str:
    """SQL for `node`; `prefix` qualifies column names (e.g. `e.`)."""

    def render(n: Node) -> str:
        match n:
            case Col():
                return prefix + n.name
            case Const():
                return literal(n.value) if isinstance(n.value, str) else repr(n.value)
            case Compare():
                return f"{operand(n.left, n)} {n.op} {operand(n.right, n, right=True)}"
            case Or() | And():
                return (" OR " if isinstance(n, Or) else " AND ").join(operand(a, n) for a in n.args)
            case Add():
                return " + ".join(operand(a, n) for a in n.args)
            case Sub():
                return f"{operand(n.left, n)} - {operand(n.right, n, right=True)}"
            case Case():
                whens = " ".join(f"WHEN {render(w.condition)} THEN {render(w.then)}" for w in n.whens)
                otherwise = "" if n.otherwise is None else f" ELSE {render(n.otherwise)}"
                return f"CASE {whens}{otherwise} END"
            case Greatest():
                return f"GREATEST({', '.join(render(a) for a in n.args)})"
            case Substr():
                return f"substr({render(n.arg)}, {n.start}, {n.length})"
        raise TypeError(f"the SQL compiler cannot render {type(n).__name__}")

    def operand(child: Node, parent: Node, right: bool = False) -> str:
        text = render(child)
        mine, theirs = _PRECEDENCE.get(type(child), 9), _PRECEDENCE[type(parent)]
        same_kind = type(child) is type(parent) and isinstance(parent, (Or, And, Add))
        return f"({text})" if mine < theirs or (mine == theirs and (right or not same_kind)) else text

    return render(node)
