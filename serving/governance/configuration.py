"""The configuration a clinical safety officer approves, and how two configurations differ.

A deployed model behaves as its *configuration* says: the model version, what its features compute (the
feature definition hash, computation only), the band cut-offs and the share acted on (the operating policy,
`models.specs.policy`), the random holdout among the people it would list (`holdout_share`, its size a safety
officer's decision; `evaluation.programme.holdout`), the population it scores (cohort) and the outcome it predicts, and the data source.
An approval covers one configuration (`Configuration.fingerprint`); the daily job and the service compare the
current configuration with the approved one and name every difference (`differences`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import Field

from features.definitions.model import FeatureSet
from models import specs
from models.specs import policy
from phm.core.config import Document
from phm.core.settings import Settings


class Configuration(Document):
    """What a safety officer approves for one model version (recorded in the hazard log and each snapshot)."""

    model: str
    version: int = Field(ge=1)
    feature_hash: str = Field(description="Hash of what the features compute now (descriptions excluded).")
    features: dict[str, str] = Field(description="Each feature's own computation hash (names what changed).")
    trained_feature_hash: str | None = Field(description="The feature hash the version was trained on (registry).")
    top_share: float = Field(gt=0, lt=1, description="Operating policy: the share of people acted on.")
    bands: dict[str, float] | None = Field(description="Worklist band cut-offs (the worklist model only).")
    holdout_share: float = Field(
        0.0,
        ge=0,
        lt=0.5,
        description="Share of the people the worklist model would list "
        "that are held out at random, never listed (the worklist model only).",
    )
    cohort: dict[str, Any] = Field(description="Who is scored (the population's rules).")
    outcome: dict[str, Any] = Field(description="What is predicted (the label's rules).")
    data_source: str = Field(description="Where the warehouse's data came from.")

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON: what an approval, a snapshot and a change review refer to."""
        # without a holdout the fingerprint is what it was before holdouts existed (approvals and snapshots keep matching)
        body = json.dumps(
            self.model_dump(mode="json", exclude={"holdout_share"} if not self.holdout_share else None),
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(body.encode()).hexdigest()


def feature_hashes(fs: FeatureSet) -> dict[str, str]:
    """Each feature's computation hash, by the same rule as the set's (`FeatureSet.definition_hash`)."""
    return {
        f.name: FeatureSet.model_construct(name=fs.name, description="", features=[f], carried=[]).definition_hash()
        for f in fs.features
    }


def data_source(settings: Settings) -> str:
    """Where the warehouse's data came from, as the loader recorded it ("synthetic ICS", "Synthea export ...")."""
    import duckdb

    from features.sources.extracts import warehouse_source

    if not settings.warehouse_path.exists():
        return "no warehouse"
    try:
        con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    except duckdb.Error:
        return "warehouse unreadable"
    try:
        return warehouse_source(con)
    finally:
        con.close()


def holdout_share(settings: Settings, spec) -> float:
    """The approved-to-be holdout share of `spec` in this installation (`[policy.<model>] holdout_share`; 0 by
    default); only the worklist model lists people, so only it can hold people out."""
    given = next((p for k, p in settings.policy.items() if k.replace("-", "_") == spec.name), None)
    share = given.holdout_share if given is not None and given.holdout_share is not None else 0.0
    if share and spec.daily.kind != "worklist":
        raise policy.PolicyError(
            f"policy.{spec.name}.holdout_share: {spec.name} lists nobody (it is shown beside "
            "the worklist), so it has no holdout"
        )
    return float(share)


def current(
    settings: Settings, name: str, version: int, trained_feature_hash: str | None, source: str | None = None
) -> Configuration:
    """The configuration `name` version `version` would run under now, in this installation."""
    spec = specs.get(name)
    pol = policy.resolve(settings, spec)
    return Configuration(
        model=spec.name,
        version=int(version),
        feature_hash=spec.features.definition_hash(),
        features=feature_hashes(spec.features),
        trained_feature_hash=trained_feature_hash,
        top_share=pol.top_share,
        bands=dict(pol.bands) if pol.bands else None,
        holdout_share=holdout_share(settings, spec),
        cohort=spec.cohort.model_dump(mode="json"),
        outcome=spec.label.rules(),
        data_source=source if source is not None else data_source(settings),
    )


def _pct(share: float | None) -> str:
    return "none" if share is None else f"{100 * share:.4g}%"


def _changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    keys = list(dict.fromkeys([*before, *after]))
    return [f"{k} {before.get(k)!r} → {after.get(k)!r}" for k in keys if before.get(k) != after.get(k)]


def differences(approved: Configuration, now: Configuration) -> list[str]:
    """Every way `now` differs from `approved`, in words (empty when they are the same configuration)."""
    out = []
    if (approved.model, approved.version) != (now.model, now.version):
        out.append(f"model: {approved.model} version {approved.version} → {now.model} version {now.version}")
    if approved.bands != now.bands:
        a, b = approved.bands or {}, now.bands or {}
        moved = [
            f"{n} top {_pct(a.get(n))} → {_pct(b.get(n))}" for n in dict.fromkeys([*a, *b]) if a.get(n) != b.get(n)
        ]
        out.append("band cut-offs: " + "; ".join(moved))
    if approved.top_share != now.top_share:
        out.append(f"operating policy: acts on the top {_pct(approved.top_share)} → the top {_pct(now.top_share)}")
    if approved.holdout_share != now.holdout_share:
        out.append(
            f"random holdout: {_pct(approved.holdout_share or None)} → {_pct(now.holdout_share or None)} of "
            "the people the model would list"
        )
    if approved.feature_hash != now.feature_hash or approved.features != now.features:
        a, b = approved.features, now.features
        parts = [
            f"{verb} {', '.join(names)}"
            for verb, names in (
                ("changed", [n for n in b if n in a and a[n] != b[n]]),
                ("added", [n for n in b if n not in a]),
                ("removed", [n for n in a if n not in b]),
            )
            if names
        ]
        out.append(
            f"feature definitions ({approved.feature_hash} → {now.feature_hash}): "
            + ("; ".join(parts) or "the order of the features changed")
        )
    if approved.cohort != now.cohort:
        out.append("population: " + "; ".join(_changes(approved.cohort, now.cohort)))
    if approved.outcome != now.outcome:
        out.append("outcome: " + "; ".join(_changes(approved.outcome, now.outcome)))
    if approved.data_source != now.data_source:
        out.append(f"data source: {approved.data_source} → {now.data_source}")
    if not out and approved.fingerprint() != now.fingerprint():
        out.append("the recorded configuration differs (trained feature hash or schema)")
    return out
