"""PHM homes for tests: a copy of a session warehouse with its own MLflow store, and a quick model."""

from __future__ import annotations

import shutil
from pathlib import Path

from training.train_validate import RunResult, run
from phm.core.ledger_head import anchor_path
from phm.core.settings import Settings
from training.config import TuningGrid, default_config


def copied_home(source: Settings, root: Path) -> Settings:
    """A fresh PHM home under `root` holding a copy of `source`'s warehouse."""
    (root / "warehouse").mkdir(parents=True)
    shutil.copy(source.warehouse_path, root / "warehouse" / "phm.duckdb")
    return Settings(home=root)


def train_quickly(home: Settings, model: str = "emergency_admission") -> RunResult:
    """Train and register a model with one tuning point and few bootstrap draws (fast, still real)."""
    cfg = default_config(model).model_copy(
        update={"grid": TuningGrid(num_leaves=[15], min_child_samples=[100]), "bootstrap_draws": 20}
    )
    return run(cfg, home)


def trained_copy(source: Settings, root: Path) -> Settings:
    """A copy of `source`'s warehouse under `root` with version 1 of the worklist model trained quickly and
    registered (not audited)."""
    home = copied_home(source, root)
    train_quickly(home)
    return home


def registry_copy(source: Settings, root: Path, snapshots: bool = False) -> Settings:
    """A fresh PHM home holding copies of `source`'s warehouse, MLflow store (its champions) and safety case (the
    hazard log holding the approvals), so a test can score, audit and re-tag versions without touching `source`
    (artifacts are read from where they were logged); with `snapshots`, its daily snapshots too."""
    for part in ("warehouse/phm.duckdb", "mlflow/mlflow.db", "safety/hazard_log.jsonl"):
        if (source.home / part).exists():
            (root / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source.home / part, root / part)
    # the hazard log is signed: its key and signed head travel with it (other logs' heads do not: they start anew)
    for part in (
        "security/ledger.key",
        f"security/anchors/{anchor_path(source.home / 'safety/hazard_log.jsonl').name}",
    ):
        if (source.home / part).exists():
            (root / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source.home / part, root / part)
    if snapshots:
        shutil.copytree(source.home / "warehouse" / "snapshots", root / "warehouse" / "snapshots")
    return Settings(home=root)


def with_holdout(home: Settings, share: float, model: str = "emergency_admission") -> Settings:
    """`home` under an approved random holdout of `share` (the change reviewed by a safety officer, version 1)."""
    from phm.core.settings import OperatingPolicy
    from serving.governance.safety_case import review_change
    from training import tracking

    s = Settings(home=home.home, policy={model: OperatingPolicy(holdout_share=share)})
    tracking.configure(s)
    review_change(s, model, 1, "approved", "Dr Test", f"a {share:.0%} holdout so that retraining can learn safely")
    return s


def approved_champion(home: Settings, model: str = "emergency_admission") -> None:
    """Audit version 1, approve it as Dr Ada Jones and promote it as Dee Scientist (both users must exist), through
    the library."""
    from evaluation.fairness.config import AuditConfig
    from serving.governance.model_audit import audit_model
    from serving.governance.signoff import decide, promote

    out = audit_model(home, model, 1, AuditConfig(bootstrap_draws=50))
    decide(home, model, 1, "approved", "Dr Ada Jones", "controls in place", accept_flags=bool(out.result.flags))
    promote(home, model, 1, by="Dee Scientist")
