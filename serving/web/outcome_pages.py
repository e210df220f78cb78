"""The Worklist page's contact outcomes: the form on each row records an outcome (care coordinators, their practices
only; the person then leaves the worklist for the configured period) and the Hidden page lists who is hidden, why
and until when, with the notes (shown only within the coordinator's practices), and a button on each row to withdraw
an outcome recorded by mistake (the one before it, if any, is then in force again)."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import RedirectResponse

from phm.operational.outcomes import HIDING, WORDS, Outcome
from serving import outcomes
from serving.access import record
from serving.queries import QueryError

PREFIX = "/ui"
OUTCOME_WORDS = [(o.value, WORDS[o]) for o in HIDING]  # the worklist form's choices


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
        withdraws = str(form.get("withdraws", "")).strip()
        if withdraws and not (withdraws.isdigit() and len(withdraws) <= 18):
            raise QueryError(422, "The outcome to withdraw is not valid.")
        try:
            done = outcomes.record(
                st.settings,
                outcomes.service_locator(st),
                u,
                person,
                str(form.get("outcome", "")),
                note or None,
                withdraws=int(withdraws) if withdraws else None,
            )
        except QueryError:
            record(request, asked=[person[:20]])
            raise
        record(request, people=[done.person_id], practices=[done.practice_code])
        said = "withdrawn" if done.outcome is Outcome.recorded_in_error else "recorded"
        return RedirectResponse(f"{PREFIX}/worklist/hidden?{said}={done.person_id}", status_code=303)

    @app.get("/worklist/hidden")
    def hidden(
        request: Request,
        recorded: Annotated[str, Query(max_length=20, pattern=r"^[0-9]*$")] = "",
        withdrawn: Annotated[str, Query(max_length=20, pattern=r"^[0-9]*$")] = "",
    ):
        st, u = signed_in(request, "worklist")
        rows = outcomes.hidden(st.settings, u)
        record(request, people=[r["person_id"] for r in rows], practices=u.practices)
        just = next((r for r in rows if r["person_id"] == recorded), None)
        # after a withdrawal: the outcome now hiding the person, if any (else back on the worklist if in a band)
        back = {"person_id": withdrawn, "now": next((r for r in rows if r["person_id"] == withdrawn), None)}
        return render(
            request,
            "hidden.html",
            user=u,
            title="Hidden from the worklist",
            rows=rows,
            just=just,
            withdrawn=back if withdrawn else None,
            hide=st.settings.outcomes.hide.model_dump(),
            words=dict(OUTCOME_WORDS),
            withdraw=Outcome.recorded_in_error.value,
        )
