"""A differencing attacker, written apart from the product's disclosure code: it collects every aggregate a
user can get from the real service (every `by` of /api/cohort/summary for the whole population, every PCN and
every practice), links them as the hierarchy and the definitions say they must add up, and asks a linear
program how far each hidden count can be narrowed, knowing that shown counts are rounded to 5 (so lie within
2 of the truth), that shown counts are at least 8 unless 0, and that hidden counts are at least 1."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import httpx
import numpy as np
from scipy.optimize import linprog

DIMS = ("band", "segment", "age_band")
BY = ("practice", "pcn", *DIMS)


@dataclass
class Collected:
    """Everything one user saw: cell -> shown count (None when hidden), and the hierarchy it learned."""

    cells: dict[tuple, int | None] = field(default_factory=dict)
    means: dict[tuple, float | None] = field(default_factory=dict)
    children: dict[tuple, set] = field(default_factory=dict)  # unit -> child units
    levels: dict[str, set] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)  # the same cell shown differently by two requests
    requests: int = 0

    def see(self, key: tuple, count: int | None, mean: float | None) -> None:
        if key in self.cells and self.cells[key] != count:
            self.conflicts.append(f"{key}: {self.cells[key]} vs {count}")
        self.cells[key] = count
        self.means[key] = mean


def collect(url: str, token: str) -> Collected:
    """Every cohort summary this token may read, for the root, each PCN and each practice it can name."""
    out = Collected()
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def get(by: str, **unit) -> dict:
        out.requests += 1
        r = client.get("/api/cohort/summary", params={"by": by, **unit})
        assert r.status_code == 200, (by, unit, r.status_code, r.text[:300])
        return r.json()

    root = ("root",)
    pcns = [row["group"] for row in get("pcn")["rows"]]
    units: list[tuple[tuple, dict]] = [(root, {})]
    for k in pcns:
        units.append((("pcn", k), {"pcn": k}))
        practices = [row["group"] for row in get("practice", pcn=k)["rows"]]
        out.children.setdefault(("pcn", k), set()).update(("practice", p) for p in practices)
        out.children.setdefault(root, set()).add(("pcn", k))
        units += [(("practice", p), {"practice": p}) for p in practices]
    for unit, params in units:
        for by in BY:
            body = get(by, **params)
            out.see(("T", unit), body["people"], None)
            for row in body["rows"]:
                g = row["group"]
                if by in DIMS:
                    out.levels.setdefault(by, set()).add(g)
                    key = (by, unit, g)
                elif by == "practice":
                    key = ("T", ("practice", g))
                else:
                    key = ("T", unit if unit[0] == "practice" else ("pcn", g))
                out.see(key, row["people"], row["mean_risk"])
    return out


def relations(c: Collected) -> list[tuple[tuple, list[tuple]]]:
    """(total, parts) that must add up: a unit's people over each dimension's levels, a parent over children."""
    rels = []
    units = {k[1] for k in c.cells if k[0] == "T"}
    for unit in units:
        for dim in DIMS:
            rels.append((("T", unit), [(dim, unit, lv) for lv in sorted(c.levels.get(dim, ()))]))
        kids = sorted(c.children.get(unit, ()))
        if kids:
            rels.append((("T", unit), [("T", k) for k in kids]))
            for dim in DIMS:
                for lv in sorted(c.levels.get(dim, ())):
                    rels.append(((dim, unit, lv), [(dim, k, lv) for k in kids]))
    return rels


def ranges(c: Collected, half_round: int = 2, min_shown: int = 8) -> dict[tuple, tuple[float, float]]:
    """For every hidden cell, the smallest and largest count consistent with everything seen."""
    rels = relations(c)
    keys = sorted({k for t, parts in rels for k in [t, *parts]} | set(c.cells), key=str)
    index = {k: i for i, k in enumerate(keys)}
    a = np.zeros((len(rels), len(keys)))
    for r, (total, parts) in enumerate(rels):
        a[r, index[total]] -= 1
        for p in parts:
            a[r, index[p]] += 1
    bounds = []
    for k in keys:
        v = c.cells.get(k, None) if k in c.cells else None
        if k in c.cells and v is not None:
            bounds.append((0, 0) if v == 0 else (max(v - half_round, min_shown), v + half_round))
        else:
            bounds.append((1, None))
    out = {}
    for k, v in c.cells.items():
        if v is not None:
            continue
        j = index[k]
        found = []
        for sign in (1.0, -1.0):
            cost = np.zeros(len(keys))
            cost[j] = sign
            res = linprog(cost, A_eq=a, b_eq=np.zeros(len(rels)), bounds=bounds, method="highs")
            assert res.status in (0, 3), (k, res.message)  # the truth is feasible, so never infeasible
            found.append(math.inf if res.status == 3 else sign * res.fun)
        out[k] = (found[0], found[1])
    return out
