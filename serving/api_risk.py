"""The API's risk routes: score people (coordinators by pseudonymised id within their practices, data scientists
by feature records), the worklist (JSON or CSV) with its contact outcomes (`serving.outcome_routes`), and the
cohort summary under disclosure control."""

from __future__ import annotations

from typing import Annotated, Literal

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from models import specs
from models.explain import reasons
from serving import outcome_routes, queries
from serving.access import record
from serving.api_deps import allow, state, user
from serving.batch.store import worklist_version
from serving.holdout_view import HELD_OUT_NOTE, HoldoutUnknown
from serving.queries import parse_reasons
from serving.schemas import (
    MAX_ON_DEMAND_REASONS,
    Band,
    Reason,
    ScoredPerson,
    ScoreRequest,
    ScoreResponse,
    Sort,
    Summary,
    Worklist,
    WorklistQuery,
)
from serving.state import ServiceState
from serving.users import Role, User


def router() -> APIRouter:
    """The risk routes, the worklist's outcome routes among them."""
    router = APIRouter()

    @router.post("/score", tags=["risk"], response_model=ScoreResponse)
    async def score(
        request: Request,
        body: ScoreRequest,
        st: ServiceState = Depends(state),
        u: User = Depends(allow(Role.coordinator, Role.data_scientist)),
    ):
        """Score people by pseudonymised id (coordinators, their practices only) or feature records."""
        worklist_model = specs.worklist().name
        champ = st.bundle.champions.get(worklist_model)
        if champ is None:
            raise HTTPException(
                409, st.bundle.refusals.get(worklist_model) or f"no {worklist_model} champion is deployed"
            )
        if body.records:
            names = list(champ.model.feature_names_in_)
            unknown = sorted({k for r in body.records for k in r} - set(names))
            if unknown:
                raise HTTPException(422, f"unknown predictor(s) {unknown[:10]}; see `phm features list`")
            X = pd.DataFrame(body.records, columns=names).astype("float64")
            risk = champ.model.predict_proba(X)[:, 1]
            expl = reasons(champ.model, X) if body.explain else [[] for _ in range(len(X))]
            results = [ScoredPerson(risk=float(r), reasons=[Reason(**x) for x in e]) for r, e in zip(risk, expl)]
            return ScoreResponse(model=worklist_model, version=champ.version, snapshot_date=None, results=results)
        if u.role != Role.coordinator:
            raise HTTPException(403, "person-level reads are for care coordinators, within their practices")
        meta, scores = queries.snapshot(st)
        ids = list(dict.fromkeys(int(p) for p in body.person_ids))
        rows = [st.bundle.position.get(i) for i in ids]
        cols = st.bundle.columns
        practice_col = cols["practice_code"]
        allowed = set(u.practices)
        ok = [r for r in rows if r is not None and practice_col[r] in allowed]
        if len(ok) < len(ids):
            record(request, asked=ids)
            raise HTTPException(404, f"{len(ids) - len(ok)} of {len(ids)} person id(s) not found in your practices")
        need = [
            int(cols["person_id"][r])
            for r in ok
            if body.explain and (cols["reasons"][r] is None or cols["reasons"][r] != cols["reasons"][r])
        ]
        try:
            held = st.held_out.ids()
        except HoldoutUnknown as exc:
            record(request, asked=ids)
            raise HTTPException(503, str(exc)) from None
        need = [p for p in need if p not in held]
        extra = queries.explain(st, need[:MAX_ON_DEMAND_REASONS]) if need else {}
        results = []
        for r in ok:
            pid = int(cols["person_id"][r])
            if pid in held:  # the snapshot says `routine`, which is not true: say what is, and withhold the score
                results.append(
                    ScoredPerson(
                        person_id=str(pid), practice_code=str(practice_col[r]), held_out=True, note=HELD_OUT_NOTE
                    )
                )
                continue
            why = (parse_reasons(cols["reasons"][r]) or extra.get(pid, [])) if body.explain else []
            results.append(
                ScoredPerson(
                    person_id=str(pid),
                    risk=float(cols["risk"][r]),
                    band=cols["band"][r],
                    rank=int(cols["rank"][r]),
                    practice_code=str(practice_col[r]),
                    reasons=why,
                )
            )
        record(request, people=ids, practices=[str(practice_col[r]) for r in ok])
        answer = ScoreResponse(
            model=worklist_model, version=worklist_version(meta), snapshot_date=meta["date"], results=results
        )
        return Response(answer.model_dump_json(), media_type="application/json")  # built typed; no second pass

    @router.get("/worklist", tags=["risk"], response_model=Worklist)
    def worklist(
        request: Request,
        st: ServiceState = Depends(state),
        u: User = Depends(allow(Role.coordinator)),
        practice: Annotated[list[str] | None, Query(max_length=50)] = None,
        pcn: Annotated[str | None, Query(max_length=20)] = None,
        age_band: Annotated[str | None, Query(max_length=10)] = None,
        segment: Annotated[str | None, Query(max_length=40)] = None,
        condition: Annotated[str | None, Query(max_length=40)] = None,
        min_band: Band = Band.raised,
        top: Annotated[int, Query(ge=1, le=10_000)] = 100,
        sort: Sort = "risk",
        new_within_days: Annotated[int | None, Query(ge=1, le=366)] = None,
        format: Literal["json", "csv"] = "json",
    ):
        """Today's highest-risk people in the coordinator's practices, filtered and sorted; CSV on request."""
        q = WorklistQuery(
            practice=practice,
            pcn=pcn,
            age_band=age_band,
            segment=segment,
            condition=condition,
            min_band=min_band,
            top=top,
            sort=sort,
            new_within_days=new_within_days,
        )
        result = queries.worklist(st, u, q)
        record(request, people=[r.person_id for r in result.rows], practices=result.practices)
        if format == "csv":
            return Response(
                queries.worklist_csv(result),
                media_type="text/csv",
                headers={"Content-Disposition": f"attachment; filename=worklist_{result.snapshot_date}.csv"},
            )
        return result

    router.include_router(outcome_routes.router(state, allow(Role.coordinator)))

    @router.get("/cohort/summary", tags=["risk"])
    def cohort_summary(
        st: ServiceState = Depends(state),
        u: User = Depends(user),
        by: Literal["practice", "pcn", "segment", "band", "age_band"] = "band",
        practice: Annotated[list[str] | None, Query(max_length=50)] = None,
        pcn: Annotated[str | None, Query(max_length=20)] = None,
    ) -> Summary:
        """People and mean risk by group for the ICS, a PCN or one practice, under the disclosure-control policy
        (small counts hidden, the rest rounded, more hidden where a small one could be worked out). Coordinators
        see only their own practices."""
        return queries.cohort_summary(st, u, by, practice, pcn)

    return router
