"""The API's request dependencies: the service state, the user of the request's bearer token (every signed
request is noted for the access log) and role checks. Dependencies are async: they are cheap, and a sync one costs
a thread hop per request."""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request

from serving.access import record
from serving.state import ServiceState, UsersUnavailable
from serving.users import Role, User, authenticate


async def state(request: Request) -> ServiceState:
    found = getattr(request.app.state, "phm", None)
    if found is None:
        raise HTTPException(503, "the service is starting")
    found.maybe_refresh()
    return found


def bearer(request: Request, st: ServiceState) -> User | None:
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    try:
        return authenticate(st.users.by_digest, token)
    except UsersUnavailable as exc:
        raise HTTPException(
            503,
            "the service cannot read its user list, so it refuses every signed request "
            "until an administrator fixes it (the service log says why)",
        ) from exc


async def user(request: Request, st: ServiceState = Depends(state)) -> User:
    found = bearer(request, st)
    if found is None:
        raise HTTPException(
            401,
            "a valid bearer token is needed (create one with `phm users add`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    record(request, user=found)
    if found.role == Role.data_feed:  # a feed's token posts events (serving.api_events) and reads nothing
        raise HTTPException(403, "the data_feed role can only post events")
    return found


def allow(*roles: Role):
    async def check(u: User = Depends(user)) -> User:
        if u.role not in roles:
            raise HTTPException(403, f"the {u.role.value} role cannot use this endpoint")
        return u

    return check
