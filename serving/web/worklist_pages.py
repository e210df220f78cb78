"""The Worklist page (care coordinators: their practices' people by risk, with filters) and its CSV download."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import Response

from serving import queries
from serving.access import record
from serving.schemas import Band, Sort, WorklistQuery
from serving.web import views
from serving.web.outcome_pages import OUTCOME_WORDS
from serving.web.signin import signed_in
from serving.web.templating import PREFIX, render


def filters(
    practice: Annotated[str, Query(max_length=20)] = "",
    segment: Annotated[str, Query(max_length=40)] = "",
    condition: Annotated[str, Query(max_length=40)] = "",
    band: Band = Band.raised,
    sort: Sort = "risk",
    top: Annotated[int, Query(ge=1, le=500)] = 100,
    new: Literal["", "week"] = "",
) -> dict:
    """The Worklist form's choices (the page and its CSV link take the same ones)."""
    return {
        "practice": practice,
        "segment": segment,
        "condition": condition,
        "band": band.value,
        "sort": sort,
        "top": top,
        "new": new,
    }


def worklist_query(f: dict) -> WorklistQuery:
    return WorklistQuery(
        practice=[f["practice"]] if f["practice"] else None,
        segment=f["segment"] or None,
        condition=f["condition"] or None,
        min_band=f["band"],
        sort=f["sort"],
        top=f["top"],
        new_within_days=7 if f["new"] == "week" else None,
    )


def register(app: FastAPI) -> None:
    """Add the Worklist page and its CSV download."""

    @app.get("/worklist")
    def worklist(request: Request, f: dict = Depends(filters)):
        st, u = signed_in(request, "worklist")
        result = queries.worklist(st, u, worklist_query(f))
        record(request, people=[r.person_id for r in result.rows], practices=result.practices)
        meta, scores = queries.snapshot(st)
        mine = scores[scores.practice_code.isin(u.practices)]
        return render(
            request,
            "worklist.html",
            user=u,
            title="Worklist",
            result=result,
            meta=meta,
            view=views.worklist_view(result, mine, meta),
            params=f,
            csv_href=f"{PREFIX}/worklist.csv?{urlencode(f)}",
            options=views.worklist_options(mine, u.practices, st.bundle.practices),
            outcomes=OUTCOME_WORDS,
        )

    @app.get("/worklist.csv")
    def worklist_csv(request: Request, f: dict = Depends(filters)):
        st, u = signed_in(request, "worklist")
        result = queries.worklist(st, u, worklist_query(f))
        record(request, people=[r.person_id for r in result.rows], practices=result.practices)
        return Response(
            queries.worklist_csv(result),
            media_type="text/csv",
            headers={
                "Content-Disposition": f"attachment; filename=worklist_{result.snapshot_date}.csv",
                "Cache-Control": "no-store",
            },
        )
