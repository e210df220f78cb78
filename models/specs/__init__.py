"""Model specifications, one module per model (see `models.specs.base`). Everything that names a model reads
it from here: `get(name)`, `SPECS`, the daily job's `worklist()` model and its `columns()`."""

from __future__ import annotations

from models.specs import acsc_admission, emergency_admission, flare_up
from models.specs.base import ModelSpec

SPECS: dict[str, ModelSpec] = {s.name: s for s in (emergency_admission.SPEC, flare_up.SPEC, acsc_admission.SPEC)}
NAMES: tuple[str, ...] = tuple(SPECS)


class UnknownModelError(KeyError):
    """A model name that no specification declares."""

    def __str__(self) -> str:
        return self.args[0]


def get(name: str) -> ModelSpec:
    """The specification of `name` (`emergency-admission` and `emergency_admission` both work)."""
    key = name.replace("-", "_")
    if key not in SPECS:
        raise UnknownModelError(f"unknown model {name!r}; choose from {', '.join(SPECS)}")
    return SPECS[key]


def worklist() -> ModelSpec:
    """The model that ranks the daily worklist."""
    return next(s for s in SPECS.values() if s.daily.kind == "worklist")


def columns() -> list[ModelSpec]:
    """Models whose risk the daily job adds beside the worklist's."""
    return [s for s in SPECS.values() if s.daily.kind == "column"]
