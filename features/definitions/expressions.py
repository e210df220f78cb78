"""Typed feature expressions: what a derived feature (or an event feature's value) computes, as data.

A small, closed algebra of frozen nodes (columns, constants, comparisons, OR/AND, CASE, GREATEST, + and -,
substr) that every engine interprets in its own way: the SQL compiler renders it for DuckDB and Spark
(`features.engine.expressions`), the reference engine evaluates it on pandas (`features.reference`).
Nothing here is SQL; `formula` writes the canonical text that people read in `phm features list` and that
the definition hash covers.

Semantics (those of SQL, pinned by the spec tests): a comparison with a missing operand is unknown and a
CASE branch is taken only when its condition is true; `+`/`-` with a missing operand is missing; GREATEST
ignores missing arguments; substr counts from 1.

Build expressions with the helpers: `col("age").lt(18)`, `a | b`, `col("x") + col("y")`, `const(14) - col("d")`,
`case((cond, "then"), ..., otherwise="else")`, `greatest(a, b)`, `substr(col("bnf_code"), 1, 4)`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

Scalar = Union[str, int, float]
CompareOp = Literal["<", "<=", "=", "<>", ">=", ">"]
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Node(BaseModel):
    """An expression node: immutable, compared by value, serialised with its `kind`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # ---- builders (plain methods: pydantic keeps == for equality of definitions) ----------------------
    def lt(self, other: Expr | Scalar) -> Compare:
        return Compare(op="<", left=self, right=wrap(other))

    def le(self, other: Expr | Scalar) -> Compare:
        return Compare(op="<=", left=self, right=wrap(other))

    def eq(self, other: Expr | Scalar) -> Compare:
        return Compare(op="=", left=self, right=wrap(other))

    def ne(self, other: Expr | Scalar) -> Compare:
        return Compare(op="<>", left=self, right=wrap(other))

    def ge(self, other: Expr | Scalar) -> Compare:
        return Compare(op=">=", left=self, right=wrap(other))

    def gt(self, other: Expr | Scalar) -> Compare:
        return Compare(op=">", left=self, right=wrap(other))

    def __or__(self, other: Expr) -> Or:
        return Or(args=[*_flat(self, Or), *_flat(other, Or)])

    def __and__(self, other: Expr) -> And:
        return And(args=[*_flat(self, And), *_flat(other, And)])

    def __add__(self, other: Expr | Scalar) -> Add:
        return Add(args=[*_flat(self, Add), *_flat(wrap(other), Add)])

    def __sub__(self, other: Expr | Scalar) -> Sub:
        return Sub(left=self, right=wrap(other))

    def columns(self) -> set[str]:
        """The columns (or earlier features) the expression reads."""
        return set().union(*(c.columns() for c in self.children()))

    def children(self) -> list[Node]:
        return []


class Col(Node):
    """A column of the source table (event values) or an earlier feature (derived features)."""

    kind: Literal["col"] = "col"
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    def columns(self) -> set[str]:
        return {self.name}


class Const(Node):
    kind: Literal["const"] = "const"
    value: Scalar


class Compare(Node):
    kind: Literal["compare"] = "compare"
    op: CompareOp
    left: Expr
    right: Expr

    def children(self) -> list[Node]:
        return [self.left, self.right]


class Or(Node):
    """True if any argument is true (SQL OR)."""

    kind: Literal["or"] = "or"
    args: list[Expr] = Field(min_length=2)

    def children(self) -> list[Node]:
        return list(self.args)


class And(Node):
    """True if every argument is true (SQL AND)."""

    kind: Literal["and"] = "and"
    args: list[Expr] = Field(min_length=2)

    def children(self) -> list[Node]:
        return list(self.args)


class When(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    condition: Expr
    then: Expr


class Case(Node):
    """The `then` of the first true condition, else `otherwise` (missing when there is none)."""

    kind: Literal["case"] = "case"
    whens: list[When] = Field(min_length=1)
    otherwise: Expr | None = None

    def children(self) -> list[Node]:
        return [x for w in self.whens for x in (w.condition, w.then)] + ([self.otherwise] if self.otherwise else [])


class Greatest(Node):
    """The largest non-missing argument."""

    kind: Literal["greatest"] = "greatest"
    args: list[Expr] = Field(min_length=2)

    def children(self) -> list[Node]:
        return list(self.args)


class Add(Node):
    kind: Literal["add"] = "add"
    args: list[Expr] = Field(min_length=2)

    def children(self) -> list[Node]:
        return list(self.args)


class Sub(Node):
    kind: Literal["sub"] = "sub"
    left: Expr
    right: Expr

    def children(self) -> list[Node]:
        return [self.left, self.right]


class Substr(Node):
    """`length` characters of text from position `start` (counting from 1)."""

    kind: Literal["substr"] = "substr"
    arg: Expr
    start: int = Field(ge=1)
    length: int = Field(ge=1)

    def children(self) -> list[Node]:
        return [self.arg]


Expr = Annotated[Union[Col, Const, Compare, Or, And, Case, Greatest, Add, Sub, Substr], Field(discriminator="kind")]
for _model in (Compare, Or, And, When, Case, Greatest, Add, Sub, Substr):
    _model.model_rebuild()


# ---- helpers ---------------------------------------------------------------------------------------
def wrap(value: Node | Scalar) -> Node:
    """A node as is; a Python value as a constant."""
    if isinstance(value, Node):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError(f"not an expression or a constant: {value!r}")
    return Const(value=value)


def _flat(node: Node, kind: type[Node]) -> list[Node]:
    return list(node.args) if isinstance(node, kind) else [node]  # type: ignore[attr-defined]


def col(name: str) -> Col:
    return Col(name=name)


def const(value: Scalar) -> Const:
    return Const(value=value)


def case(*branches: tuple[Node, Node | Scalar], otherwise: Node | Scalar | None = None) -> Case:
    return Case(
        whens=[When(condition=c, then=wrap(t)) for c, t in branches],
        otherwise=None if otherwise is None else wrap(otherwise),
    )


def greatest(*args: Node | Scalar) -> Greatest:
    return Greatest(args=[wrap(a) for a in args])


def add(*args: Node | Scalar) -> Add:
    return Add(args=[wrap(a) for a in args])


def substr(arg: Node, start: int, length: int) -> Substr:
    return Substr(arg=arg, start=start, length=length)


# ---- the canonical text -------------------------------------------------------------------------------
_PRECEDENCE = {Or: 1, And: 2, Compare: 3, Add: 4, Sub: 4}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def formula(node: Node) -> str:
    """The expression as one line of text (SQL-like: `CASE WHEN age < 18 THEN '0-17' ... END`)."""
    match node:
        case Col():
            return node.name
        case Const():
            return _quote(node.value) if isinstance(node.value, str) else repr(node.value)
        case Compare():
            return f"{_operand(node.left, node)} {node.op} {_operand(node.right, node, right=True)}"
        case Or() | And():
            word = " OR " if isinstance(node, Or) else " AND "
            return word.join(_operand(a, node) for a in node.args)
        case Add():
            return " + ".join(_operand(a, node) for a in node.args)
        case Sub():
            return f"{_operand(node.left, node)} - {_operand(node.right, node, right=True)}"
        case Case():
            whens = " ".join(f"WHEN {formula(w.condition)} THEN {formula(w.then)}" for w in node.whens)
            otherwise = "" if node.otherwise is None else f" ELSE {formula(node.otherwise)}"
            return f"CASE {whens}{otherwise} END"
        case Greatest():
            return f"GREATEST({', '.join(formula(a) for a in node.args)})"
        case Substr():
            return f"substr({formula(node.arg)}, {node.start}, {node.length})"
    raise TypeError(f"unknown expression node {type(node).__name__}")


def _operand(child: Node, parent: Node, right: bool = False) -> str:
    """A child's text, in parentheses when it binds less tightly than its parent (or equally, on the right)."""
    text = formula(child)
    mine, theirs = _PRECEDENCE.get(type(child), 9), _PRECEDENCE[type(parent)]
    same_kind = type(child) is type(parent) and isinstance(parent, (Or, And, Add))
    return f"({text})" if mine < theirs or (mine == theirs and (right or not same_kind)) else text
