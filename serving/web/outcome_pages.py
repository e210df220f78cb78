"""The Worklist page's contact outcomes: the form on each row records an outcome (care coordinators, their practices
only; the person then leaves the worklist for the configured period) and the Hidden page lists who is hidden, why
and until when, with the notes (shown only within the coordinator's practices)."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import RedirectResponse

from phm.operational.outcomes import WORDS, Outcome
from serving import outcomes
from serving.access import record
from serving.queries import QueryError

PREFIX = "/ui"
OUTCOME_WORDS = [(o.value, WORDS[o]) for o in Outcome]


def register(app: FastAPI, render, signed_in, check_form) -> None:
    """Add the routes to the pages app, with its page helpers (render, sign-in check, form token check)."""

    @app.post("/worklist/outcome")
    async def record_outcome(request: Request):
        st, u = signed_in(request, "worklist")
        form = await request.form()
        check_form(request, form)
        person = str(form.get("person_id", "")).strip()
        note = str(form.get("note", ""))
        if len(note) > st.settings.outcomes.note_max:
            raise QueryError(422, f"The note is longer than {st.settings.outcomes.note_max} characters.")
        try:
            done = outcomes.record(
                st.settings, outcomes.service_locator(st), u, person, str(form.get("outcome", "")), note or None
            )
        except QueryError:
            record(request, asked=[person[:20]])
            raise
        record(request, people=[done.person_id], practices=[done.practice_code])
        return RedirectResponse(f"{PREFIX}/worklist/hidden?recorded={done.person_id}", status_code=303)

    @app.get("/worklist/hidden")
    def hidden(request: Request, recorded: Annotated[str, Query(max_length=20, pattern=r"^[0-9]*$")] = ""):
        st, u = signed_in(request, "worklist")
        rows = outcomes.hidden(st.settings, u)
        record(request, people=[r["person_id"] for r in rows], practices=u.practices)
        just = next((r for r in rows if r["person_id"] == recorded), None)
        return render(
            request,
            "hidden.html",
            user=u,
            title="Hidden from the worklist",
            rows=rows,
            just=just,
            hide=st.settings.outcomes.hide.model_dump(),
            words=dict(OUTCOME_WORDS),
        )
