"""Disclosure control: the one policy that every aggregate leaving the service passes (API, pages, scenarios,
published reports).

The rules (defaults as NHS England's published statistics; configurable in `[disclosure]` of phm.toml):
- **small cells hidden**: a count of 1 to `suppress_max` (7) people is not shown (0 is shown: nobody to protect);
- **the rest rounded** to the nearest `round_to` (5), each on its own (rounded cells need not add up);
- **secondary suppression**: further cells are hidden so that no hidden cell can be worked out from the totals
  it adds up to, nor from any other table of the same release (practice rows against PCN and ICS totals, bands
  against age bands, ...). Every release is audited by linear programming as an attacker would, assuming
  the attacker knows every shown cell *exactly* (stronger than reality, where shown cells are rounded), and
  more cells are hidden until each small cell's possible range reaches a count publishable on its own and is
  at least as wide as the rounding of shown counts (no hidden cell is known better than a shown one);
- **means and rates only from shown cells**, rounded (`mean_decimals`);
- **groups chosen by size** (planning scenarios: "the top k% by risk") must hold at least `suppress_max + 1`
  people, and their size is moved to a multiple of `step` (10 by default), so two overlapping groups always
  differ by at least that many people and their difference describes a group that could be shown too.

Daily activity counts per site (admissions and occupied beds, the forecast history) are published without
suppression, as NHS England publishes its daily situation reports: they carry no attribute of any person and
no user-chosen filter, so there is nothing to difference. `EXEMPT` records that decision for readers.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from evaluation.disclosure.tables import Release, Shown, protect

__all__ = ["DisclosureError", "EXEMPT", "Policy", "Release", "Shown", "protect"]

EXEMPT = (
    "Daily activity counts per site (emergency admissions, occupied beds) and the forecasts made from "
    "them: system-level figures with no attribute of any person and no user-chosen filter, published as "
    "NHS England publishes daily situation reports."
)


class DisclosureError(ValueError):
    """An aggregate that cannot be released under the policy (a group below the threshold)."""


class Policy(BaseModel):
    """Small-number suppression, rounding and group sizes (one instance for the whole service)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suppress_max: int = Field(7, ge=0, le=1000, description="Counts from 1 to this many people are hidden.")
    round_to: int = Field(5, ge=1, le=1000, description="Shown counts are rounded to the nearest multiple of this.")
    mean_decimals: int = Field(3, ge=1, le=8, description="Decimal places of shown means and rates (0.001 = 0.1%).")

    @classmethod
    def from_settings(cls, settings) -> Policy:
        """The policy configured for an installation (`settings.disclosure`)."""
        return cls.model_validate(settings.disclosure.model_dump())

    @property
    def min_shown(self) -> int:
        """The smallest count shown."""
        return self.suppress_max + 1

    @property
    def step(self) -> int:
        """Group sizes move in steps of the smallest multiple of `round_to` that could be shown on its own."""
        return self.round_to * math.ceil(self.min_shown / self.round_to)

    def rounded(self, n: int) -> int:
        return int(self.round_to * math.floor(n / self.round_to + 0.5))

    def count(self, n: int) -> int | None:
        """A count as released on its own: None when hidden, else rounded."""
        return None if 0 < n <= self.suppress_max else self.rounded(int(n))

    def mean(self, value: float | None) -> float | None:
        return None if value is None or not math.isfinite(value) else round(float(value), self.mean_decimals)

    def group_size(self, raw: int, what: str = "group") -> int:
        """The size used for a group chosen by a share (at least the threshold, moved to a multiple of `step`)."""
        if raw < self.min_shown:
            raise DisclosureError(
                f"the {what} would hold {'fewer than ' + str(self.min_shown) if raw else 'no'} "
                f"people; groups under {self.min_shown} people are not released (disclosure "
                "control): choose a larger share"
            )
        return max(self.step, self.step * round(raw / self.step))

    def words(self) -> str:
        """The policy in one sentence for pages and reports."""
        return (
            f"Counts of 1 to {self.suppress_max} people are hidden (*), other counts are rounded to the nearest "
            f"{self.round_to}, and further cells are hidden (*) where a small count could otherwise be worked "
            "out from totals; averages are shown only for shown counts."
        )

    def describe(self) -> dict:
        return {"hidden_counts": f"1-{self.suppress_max}", "rounded_to": self.round_to, "group_step": self.step}

    def release(self, frame, dims: list[str], **kw) -> Release:
        """`protect` under this policy (see `evaluation.disclosure.tables`)."""
        return protect(
            frame, dims, suppress_max=self.suppress_max, round_to=self.round_to, mean_decimals=self.mean_decimals, **kw
        )
