"""A protected release of linked count tables over a hierarchy of units (root > PCNs > practices).

Cells: each unit's total number of people, and its count per level of each dimension (risk band, segment,
age band, ...). They are linked by additive relations — a unit's total is the sum of its counts over the
levels of any one dimension, a parent's cell is the sum of its children's, and where each level of one dimension
lies within one level of another (ethnicity within broad ethnicity) the coarse cell is the sum of the fine ones —
which is exactly what a differencing attacker uses. `protect`:

1. hides small cells (1 to `suppress_max`: primary suppression);
2. hides more cells until no relation holds a single hidden cell, and hidden cells below a shown total add up
   to a publishable count (secondary suppression, smallest cells first to lose least);
3. audits the result by linear programming for each group of linked hidden cells, as an attacker who knows
   every shown cell *exactly* would (shown cells are in fact rounded, which only widens their ranges): a small
   cell is protected when its feasible range reaches a publishable count and is at least as wide as the
   rounding of shown counts (`protection_width`);
   where one is not, a neighbouring cell is hidden and the audit repeats;
4. rounds the shown counts and derives means from shown cells only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import linprog

ROOT = "root"


@dataclass(frozen=True)
class Shown:
    """One released cell: a rounded count (None when hidden) and the mean of its people (None when hidden)."""

    count: int | None
    mean: float | None

    @property
    def hidden(self) -> bool:
        return self.count is None


@dataclass
class Release:
    """Protected cells by unit: `total(unit)`, `breakdown(unit, dim)`, `children(unit, kind)`.

    Units are ("root", label), ("pcn", code) and ("practice", code)."""

    levels: dict[str, list[str]]
    parent: dict[tuple[str, str], tuple[str, str] | None]
    cells: dict[tuple, Shown]
    exact: dict[tuple, int] = field(repr=False, default_factory=dict)  # kept in memory only, for tests and audits
    hidden_primary: int = 0
    hidden_secondary: int = 0

    def has(self, unit: tuple[str, str]) -> bool:
        return unit in self.parent

    def total(self, unit: tuple[str, str]) -> Shown:
        return self.cells[(None, unit, None)]

    def breakdown(self, unit: tuple[str, str], dim: str) -> list[tuple[str, Shown]]:
        return [(level, self.cells[(dim, unit, level)]) for level in self.levels[dim]]

    def children(self, unit: tuple[str, str], kind: str) -> list[tuple[str, Shown]]:
        """The totals of the units of `kind` ("pcn" or "practice") within `unit` (a unit within itself)."""
        if unit[0] == kind:
            return [(unit[1], self.total(unit))]
        if kind == "pcn" and unit[0] == "practice":
            return [(self.parent[unit][1], self.total(unit))]  # one PCN holding just this practice's people
        found = [u for u in self.parent if u[0] == kind and self._within(u, unit)]
        return [(u[1], self.total(u)) for u in sorted(found)]

    def _within(self, unit: tuple[str, str], ancestor: tuple[str, str]) -> bool:
        while unit is not None:
            if unit == ancestor:
                return True
            unit = self.parent[unit]
        return False


def protect(
    frame: pd.DataFrame,
    dims: list[str],
    *,
    suppress_max: int = 7,
    round_to: int = 5,
    mean_decimals: int = 3,
    value: str = "risk",
    practice: str = "practice_code",
    pcn: str = "pcn_code",
    root_label: str = "ICS",
    levels: dict[str, list[str]] | None = None,
) -> Release:
    """Protect the counts of `frame` (one row a person) by unit and by each of `dims`, with the mean of `value`."""
    levels = {d: list(levels[d]) if levels and d in levels else sorted(frame[d].astype(str).unique()) for d in dims}
    practices = frame[[practice, pcn]].drop_duplicates().sort_values([pcn, practice])
    units: list[tuple[str, str]] = [(ROOT, root_label)]
    parent: dict[tuple[str, str], tuple[str, str] | None] = {units[0]: None}
    for code in practices[pcn].unique():
        parent[("pcn", str(code))] = units[0]
    for prac, code in zip(practices[practice], practices[pcn]):
        parent[("practice", str(prac))] = ("pcn", str(code))
    units = list(parent)
    index = {u: i for i, u in enumerate(units)}
    children: dict[int, list[int]] = {i: [] for i in range(len(units))}
    for u, p in parent.items():
        if p is not None:
            children[index[p]].append(index[u])

    # exact counts and sums at practice level, summed up the tree
    keys: list[tuple] = []
    counts: list[int] = []
    sums: list[float] = []
    cell_id: dict[tuple, int] = {}

    def add(key: tuple, n: int, s: float) -> None:
        cell_id[key] = len(keys)
        keys.append(key)
        counts.append(int(n))
        sums.append(float(s))

    order = sorted(range(len(units)), key=lambda i: -_depth(units[i], parent))  # leaves first
    prac_col = frame[practice].astype(str)
    by_practice = frame.groupby(prac_col, observed=True)[value].agg(["size", "sum"])
    tables = {
        d: frame.groupby([prac_col, frame[d].astype(str)], observed=True)[value].agg(["size", "sum"]) for d in dims
    }
    agg: dict[tuple, tuple[int, float]] = {}
    for i in order:
        u = units[i]
        for dim in [None, *dims]:
            for level in [None] if dim is None else levels[dim]:
                if u[0] == "practice":
                    src = by_practice if dim is None else tables[dim]
                    k = u[1] if dim is None else (u[1], level)
                    n, s = (int(src.at[k, "size"]), float(src.at[k, "sum"])) if k in src.index else (0, 0.0)
                else:
                    n = sum(agg[(dim, units[c], level)][0] for c in children[i])
                    s = sum(agg[(dim, units[c], level)][1] for c in children[i])
                agg[(dim, u, level)] = (n, s)
    for key, (n, s) in agg.items():
        add(key, n, s)

    relations: list[tuple[int, list[int]]] = []
    nested = _nested(frame, dims, levels)
    for i, u in enumerate(units):
        for dim in dims:
            relations.append((cell_id[(None, u, None)], [cell_id[(dim, u, lv)] for lv in levels[dim]]))
        for coarse, level, fine, parts in nested:
            relations.append((cell_id[(coarse, u, level)], [cell_id[(fine, u, lv)] for lv in parts]))
        if children[i]:
            for dim in [None, *dims]:
                for level in [None] if dim is None else levels[dim]:
                    relations.append((cell_id[(dim, u, level)], [cell_id[(dim, units[c], level)] for c in children[i]]))

    count = np.array(counts, dtype=np.int64)
    primary = (count > 0) & (count <= suppress_max)
    unit_total = np.array([k[0] is None for k in keys])
    hidden = primary.copy()
    _suppress(count, hidden, relations, suppress_max)
    for _ in range(10_000):
        failing = _audit(count, hidden, primary, relations, suppress_max, protection_width(suppress_max, round_to))
        if not failing:
            break
        for cell in failing:
            pick = _neighbour(cell, count, hidden, relations, unit_total)
            if pick is not None:
                hidden[pick] = True
        _suppress(count, hidden, relations, suppress_max)
    else:  # pragma: no cover - the loop hides a cell each round, so it ends long before this
        raise RuntimeError("disclosure control did not converge")

    cells = {}
    for cid, key in enumerate(keys):
        n = counts[cid]
        if hidden[cid]:
            cells[key] = Shown(None, None)
        else:
            shown = int(round_to * math.floor(n / round_to + 0.5))
            cells[key] = Shown(shown, round(sums[cid] / n, mean_decimals) if n else None)
    return Release(
        levels=levels,
        parent=parent,
        cells=cells,
        exact=dict(zip(keys, counts)),
        hidden_primary=int(primary.sum()),
        hidden_secondary=int(hidden.sum() - primary.sum()),
    )


def protection_width(suppress_max: int, round_to: int) -> int:
    """How wide an attacker's range for a small hidden cell must stay: at least the rounding of shown counts
    (so no hidden cell is known better than a shown one) and half the hidden range."""
    return max(round_to, math.ceil((suppress_max + 1) / 2))


def _nested(frame: pd.DataFrame, dims: list[str], levels: dict[str, list[str]]) -> list[tuple[str, str, str, list]]:
    """(coarse dim, its level, fine dim, the fine levels within it) for every dimension whose levels each lie
    within one level of another (ethnicity within broad ethnicity, ethnicity x Core20 within each): those cells
    add up to the coarse one, as an attacker knows."""
    out = []
    for fine in dims:
        for coarse in dims:
            if coarse == fine:
                continue
            pairs = frame[[fine, coarse]].astype(str).drop_duplicates()
            if pairs[fine].duplicated().any():
                continue  # a fine level spans several coarse levels: no such sum
            within = dict(zip(pairs[fine], pairs[coarse]))
            for level in levels[coarse]:
                parts = [lv for lv in levels[fine] if within.get(lv) == level]
                if parts:
                    out.append((coarse, level, fine, parts))
    return out


def _depth(unit: tuple[str, str], parent: dict) -> int:
    d = 0
    while parent[unit] is not None:
        unit, d = parent[unit], d + 1
    return d


def _suppress(count: np.ndarray, hidden: np.ndarray, relations: list[tuple[int, list[int]]], suppress_max: int) -> None:
    """Hide cells until every relation has no hidden cell or at least two, and the hidden cells below a shown
    total add up to more than `suppress_max`."""
    changed = True
    while changed:
        changed = False
        for total, members in relations:
            hidden_members = [m for m in members if hidden[m]]
            n_hidden = len(hidden_members) + int(hidden[total])
            if n_hidden == 0:
                continue
            small = not hidden[total] and 0 < sum(int(count[m]) for m in hidden_members) <= suppress_max
            if n_hidden == 1 or small:
                pick = _smallest_visible(members, count, hidden)
                if pick is None and not hidden[total] and count[total] > 0:
                    pick = total
                if pick is not None:
                    hidden[pick] = True
                    changed = True


def _smallest_visible(members: list[int], count: np.ndarray, hidden: np.ndarray) -> int | None:
    candidates = [m for m in members if not hidden[m] and count[m] > 0]
    return min(candidates, key=lambda m: (count[m], m)) if candidates else None


def _neighbour(
    cell: int, count: np.ndarray, hidden: np.ndarray, relations: list[tuple[int, list[int]]], unit_total: np.ndarray
) -> int | None:
    """The smallest shown cell sharing a relation with `cell`: a member of one of its relations if any is shown
    (breaking a total hides more), else a total."""
    members, totals = [], []
    for total, cells in relations:
        if cell == total:
            members += cells
        elif cell in cells:
            members += cells
            totals.append(total)
    pick = _smallest_visible(members, count, hidden)
    if pick is None:  # a unit's own total last: it is shared by every table of that unit
        shared = [t for t in totals if unit_total[t]]
        pick = _smallest_visible([t for t in totals if not unit_total[t]], count, hidden) or _smallest_visible(
            shared, count, hidden
        )
    return pick


def _audit(
    count: np.ndarray,
    hidden: np.ndarray,
    primary: np.ndarray,
    relations: list[tuple[int, list[int]]],
    suppress_max: int,
    width: int,
) -> list[int]:
    """Small hidden cells an attacker who knows every shown cell exactly could narrow too far."""
    ids = np.flatnonzero(hidden)
    if ids.size == 0:
        return []
    where = {int(c): k for k, c in enumerate(ids)}
    root = list(range(len(ids)))

    def find(a: int) -> int:
        while root[a] != a:
            root[a] = root[root[a]]
            a = root[a]
        return a

    equations = []  # (hidden cells with +1/-1, constant)
    for total, members in relations:
        terms = [(where[m], 1.0) for m in members if hidden[m]] + ([(where[total], -1.0)] if hidden[total] else [])
        if not terms:
            continue
        constant = (0 if hidden[total] else int(count[total])) - sum(int(count[m]) for m in members if not hidden[m])
        equations.append((terms, constant))
        for k, _ in terms[1:]:
            root[find(k)] = find(terms[0][0])
    groups: dict[int, list[int]] = {}
    for k in range(len(ids)):
        groups.setdefault(find(k), []).append(k)
    by_group: dict[int, list] = {}
    for terms, constant in equations:
        by_group.setdefault(find(terms[0][0]), []).append((terms, constant))
    failing = []
    for g, members in groups.items():
        small = [k for k in members if primary[ids[k]]]
        if not small:
            continue
        local = {k: j for j, k in enumerate(members)}
        rows = by_group.get(g, [])
        a = np.zeros((len(rows), len(members)))
        b = np.zeros(len(rows))
        for r, (terms, constant) in enumerate(rows):
            for k, coef in terms:
                a[r, local[k]] += coef
            b[r] = constant
        for k in small:
            lo, hi = _range(a, b, local[k], len(members))
            if hi < suppress_max + 1 or hi - lo < width:
                failing.append(int(ids[k]))
    return failing


def _range(a: np.ndarray, b: np.ndarray, j: int, n: int) -> tuple[float, float]:
    """Smallest and largest value of variable `j` with a x = b and x >= 1 (hidden cells are never empty)."""
    c = np.zeros(n)
    c[j] = 1.0
    out = []
    for sign in (1.0, -1.0):
        res = linprog(
            sign * c, A_eq=a if len(b) else None, b_eq=b if len(b) else None, bounds=[(1, None)] * n, method="highs"
        )
        if res.status == 3:  # unbounded
            out.append(math.inf if sign < 0 else -math.inf)
        elif res.status != 0:  # infeasible cannot happen for true counts; treat as fully known
            out.append(float("nan"))
        else:
            out.append(sign * res.fun)
    lo, hi = out[0], out[1]
    if lo != lo or hi != hi:
        return 0.0, 0.0
    return lo, hi
