"""A model's operating policy as deployed: its specification's defaults (`DailyUse.bands`, `DailyUse.top_share`)
with an installation's overrides (`[policy.<model>]` in phm.toml, `Settings.policy`).

The policy is part of the configuration a clinical safety officer approves (`serving.governance.configuration`):
the daily job ranks with these band cut-offs, and the bias report must have judged fairness at this top share.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from models.specs import SPECS, get
from models.specs.base import ModelSpec
from phm.core.settings import Settings


class PolicyError(ValueError):
    """An operating policy in the settings that cannot apply (unknown model, wrong band names, ...)."""


@dataclass(frozen=True)
class Policy:
    """The resolved policy: the share acted on, and (worklist model) the band cut-offs, highest band first."""

    top_share: float
    bands: tuple[tuple[str, float], ...] = ()

    def as_dict(self) -> dict:
        return {"top_share": self.top_share, "bands": dict(self.bands) if self.bands else None}


def check(settings: Settings) -> None:
    """Every `[policy.<model>]` names a specified model (the nearest name is suggested for a misspelling)."""
    for key in settings.policy:
        if key.replace("-", "_") not in SPECS:
            close = difflib.get_close_matches(key.replace("-", "_"), list(SPECS), n=1, cutoff=0.6)
            raise PolicyError(
                f"policy.{key}: unknown model"
                + (f" (did you mean policy.{close[0]}?)" if close else f"; choose from {', '.join(SPECS)}")
            )


def resolve(settings: Settings, spec: ModelSpec | str) -> Policy:
    """The policy `spec` runs under in this installation."""
    spec = get(spec) if isinstance(spec, str) else spec
    check(settings)
    given = next((p for k, p in settings.policy.items() if k.replace("-", "_") == spec.name), None)
    where = f"policy.{spec.name}"
    if spec.daily.kind == "worklist":
        bands = tuple(spec.daily.bands)
        if given is not None and given.bands is not None:
            names = [n for n, _ in spec.daily.bands]
            if list(given.bands) != names:
                raise PolicyError(
                    f"{where}.bands: name the bands {', '.join(names)} in that order "
                    f"(got {', '.join(given.bands) or 'none'})"
                )
            bands = tuple(given.bands.items())
        top = given.top_share if given is not None and given.top_share is not None else bands[-1][1]
        if top > bands[-1][1]:
            raise PolicyError(
                f"{where}.top_share {top:g} reaches beyond the last band ({bands[-1][0]}, top "
                f"{bands[-1][1]:g}): people acted on must be on the worklist"
            )
        return Policy(top_share=float(top), bands=tuple((n, float(s)) for n, s in bands))
    if given is not None and given.bands is not None:
        raise PolicyError(f"{where}.bands: {spec.name} has no worklist bands (it is shown beside the worklist)")
    top = given.top_share if given is not None and given.top_share is not None else spec.daily.top_share
    if top is None:
        raise PolicyError(f"{where}.top_share: the share acted on is not set (the specification has no default)")
    return Policy(top_share=float(top))
