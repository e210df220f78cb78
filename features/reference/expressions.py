"""Evaluate typed feature expressions on pandas columns, with SQL's handling of missing values.

A comparison with a missing operand is unknown (pandas' nullable "boolean", whose `|` and `&` follow
three-valued logic); a CASE branch is taken only where its condition is true; arithmetic with a missing
operand is missing; GREATEST skips missing arguments.
"""

from __future__ import annotations

import operator

import numpy as np
import pandas as pd

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

_COMPARE = {
    "<": operator.lt,
    "<=": operator.le,
    "=": operator.eq,
    "<>": operator.ne,
    ">=": operator.ge,
    ">": operator.gt,
}


def evaluate(node: Node, frame: pd.DataFrame) -> pd.Series:
    """The expression's value on every row of `frame` (columns by name), as a Series on its index."""
    match node:
        case Col():
            if node.name not in frame.columns:
                raise KeyError(f"expression reads {node.name!r}, which is not computed before it")
            return frame[node.name]
        case Const():
            return pd.Series([node.value] * len(frame), index=frame.index, dtype=object).infer_objects()
        case Compare():
            return _compare(node.op, evaluate(node.left, frame), evaluate(node.right, frame))
        case Or() | And():
            parts = [_truth(evaluate(a, frame)) for a in node.args]
            result = parts[0]
            for p in parts[1:]:
                result = (result | p) if isinstance(node, Or) else (result & p)
            return result
        case Add():
            parts = [_number(evaluate(a, frame)) for a in node.args]
            result = parts[0]
            for p in parts[1:]:
                result = result + p
            return result
        case Sub():
            return _number(evaluate(node.left, frame)) - _number(evaluate(node.right, frame))
        case Case():
            return _case(node, frame)
        case Greatest():
            return pd.concat([_number(evaluate(a, frame)) for a in node.args], axis=1).max(axis=1, skipna=True)
        case Substr():
            text = evaluate(node.arg, frame)
            return text.where(text.isna(), text.astype(str).str.slice(node.start - 1, node.start - 1 + node.length))
    raise TypeError(f"the reference engine cannot evaluate {type(node).__name__}")


def _number(s: pd.Series) -> pd.Series:
    """Numbers as float64 (missing as NaN) or, when every value is whole and present, int64."""
    values = pd.to_numeric(s, errors="raise").astype("float64")
    if values.notna().all() and np.all(np.mod(values.to_numpy(), 1) == 0):
        return values.astype("int64")
    return values


def _truth(s: pd.Series) -> pd.Series:
    if s.dtype != "boolean":
        raise TypeError("OR/AND/CASE need conditions (comparisons), not values")
    return s


def _compare(op: str, left: pd.Series, right: pd.Series) -> pd.Series:
    missing = left.isna().to_numpy() | right.isna().to_numpy()
    numeric = pd.api.types.is_numeric_dtype(left) and pd.api.types.is_numeric_dtype(right)
    a, b = (_number(left), _number(right)) if numeric else (left.astype(object), right.astype(object))
    result = pd.Series(False, index=left.index, dtype="boolean")
    ok = ~missing
    if ok.any():
        result[ok] = _COMPARE[op](a[ok], b[ok]).to_numpy(dtype=bool)
    result[missing] = pd.NA
    return result


def _case(node: Case, frame: pd.DataFrame) -> pd.Series:
    conditions = [_truth(evaluate(w.condition, frame)).fillna(False).to_numpy(dtype=bool) for w in node.whens]
    values = [evaluate(w.then, frame) for w in node.whens]
    otherwise = (
        evaluate(node.otherwise, frame)
        if node.otherwise is not None
        else pd.Series([None] * len(frame), index=frame.index, dtype=object)
    )
    result = otherwise.astype(object).to_numpy(copy=True)
    decided = np.zeros(len(frame), dtype=bool)
    for cond, value in zip(conditions, values):
        take = cond & ~decided
        result[take] = value.astype(object).to_numpy()[take]
        decided |= cond
    return pd.Series(result, index=frame.index, dtype=object).infer_objects()
