"""The third model end to end: trained, audited, approved and promoted like the others, scored by the daily job
beside the worklist's model, and the worklist ranked by it ("most likely to have a preventable admission")."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from evaluation.fairness.config import AuditConfig
from phm.core.settings import Settings
from serving import queries
from serving.batch.common import default_date
from serving.batch.daily import score_daily
from serving.governance.model_audit import audit_model
from serving.governance.signoff import decide, promote
from serving.schemas import Band, WorklistQuery
from serving.state import ServiceState
from serving.users import Role, User
from support.homes import registry_copy, train_quickly

pytestmark = pytest.mark.slow
MODEL = "acsc_admission"


@pytest.fixture(scope="module")
def st(served_home, tmp_path_factory) -> ServiceState:
    home = registry_copy(served_home, tmp_path_factory.mktemp("acsc_worklist"))
    version = train_quickly(home, MODEL).version
    out = audit_model(home, MODEL, version, AuditConfig(bootstrap_draws=50))
    decide(home, MODEL, version, "approved", "Dr Test", "test approval", accept_flags=bool(out.result.flags))
    promote(home, MODEL, version, by="tests")
    meta = score_daily(home, default_date(home.warehouse_path))
    assert meta["models"][MODEL]["role"] == "column" and meta["models"][MODEL]["column"] == "acsc_risk"
    return ServiceState(Settings(home=home.home))


def test_the_worklist_ranks_by_preventable_admission_risk(st) -> None:
    scores = st.bundle.scores
    u = User(
        name="Cy",
        role=Role.coordinator,
        practices=[scores.practice_code.mode()[0]],
        token_sha256="0" * 64,
        created="2026-01-01",
    )
    by_acsc = queries.worklist(st, u, WorklistQuery(sort="acsc_risk", min_band=Band.routine, top=300))
    acsc = [r.beside["acsc_risk"] for r in by_acsc.rows]
    assert None not in acsc and acsc == sorted(acsc, reverse=True)
    mine = scores[scores.practice_code == u.practices[0]]
    assert acsc[0] == pytest.approx(mine.acsc_risk.max())
    by_risk = queries.worklist(st, u, WorklistQuery(min_band=Band.routine, top=300))
    assert [r.person_id for r in by_risk.rows] != [r.person_id for r in by_acsc.rows]  # a different order
    # the people ranked first by preventable-admission risk carry more of it than those ranked by all-cause risk
    assert np.mean(acsc) > np.mean([r.beside["acsc_risk"] for r in by_risk.rows])
    table = pd.read_csv(io.StringIO(queries.worklist_csv(by_acsc)))
    assert list(table.columns[table.columns.get_loc("previous_risk") + 1 :][:2]) == ["flare_risk", "acsc_risk"]
    assert table.acsc_risk.iloc[0] == pytest.approx(acsc[0])
