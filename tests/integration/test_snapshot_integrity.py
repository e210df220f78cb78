"""A live snapshot edited on disk after its job wrote it (here: a person moved into another practice, which would
show them to that practice's coordinators) is not served: the service pauses the worklist and says why."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.homes import registry_copy

from phm.core.settings import Settings
from serving import queries
from serving.batch import store
from serving.queries import QueryError
from serving.state import ServiceState


@pytest.mark.slow
def test_the_service_does_not_serve_a_snapshot_edited_after_scoring(served_home, tmp_path: Path) -> None:
    s = registry_copy(served_home, tmp_path / "home", snapshots=True)
    assert ServiceState(Settings(home=s.home), background=False).bundle.snapshot_refusal is None
    folder = store.current_folder(s)
    scores = store.current(s)[1]
    practices = scores.practice_code.unique()
    moved = scores.practice_code == practices[0]
    scores.loc[moved.idxmax(), "practice_code"] = practices[1]
    scores.to_parquet(folder / "scores.parquet", index=False)
    st = ServiceState(Settings(home=s.home), background=False)
    assert "differ from those its job wrote (scores.parquet" in st.bundle.snapshot_refusal
    with pytest.raises(QueryError, match="The worklist is paused: snapshot .* not served") as refused:
        queries.snapshot(st)
    assert refused.value.status == 409
