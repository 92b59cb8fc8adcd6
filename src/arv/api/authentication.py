"""Auth first: a request for a route that needs a caller is refused before the app reads its body.

FastAPI reads a request's body (a form, a 40 MB upload) before it solves the route's dependencies, so
`get_principal` alone would answer 401 only once the whole upload was in. This guard sits between the
server and the app and holds back the body: the first time the route asks for it, the key is checked
(in a worker thread; the lookup is a query), and a missing or bad key is answered 401 with
`Connection: close` without a byte of the body handed on. The principal found is kept in the
request's state, where `get_principal` takes it instead of looking the key up again.

Which routes need a key has one source, the routes themselves: a route needs a key exactly when its
dependencies include `get_principal` (directly, or through `require_admin` and the like), which is
also what refuses it without one. The route is the one the router picked (`scope["route"]`, set
before the route reads its body), so no list of public paths or prefixes is kept here to drift from
the routes: the viewer, `/healthz`, downloads, `/docs` and any later public page simply do not
depend on `get_principal`. The console's routes are guarded the same way through their own
dependency, `current_visitor` (a signed-in session cookie instead of a key).
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from fastapi import HTTPException, status
from fastapi.dependencies.models import Dependant
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from arv.api.console.visitors import authenticate_visitor, current_visitor
from arv.api.deps import DATABASE_UNAVAILABLE, authenticate, get_principal

log = structlog.get_logger(__name__)


def depends_on(dependant: Dependant, call: object) -> bool:
    """Whether `call` is among the dependencies of `dependant`, at any depth."""
    return any(dep.call is call or depends_on(dep, call) for dep in dependant.dependencies)


def _api_key(scope: Scope) -> None:
    authenticate(scope, body_pending=True)


# Each dependency that names a caller, and how its caller is checked from the request's headers.
GUARDS: tuple[tuple[object, Callable[[Scope], None]], ...] = (
    (get_principal, _api_key),
    (current_visitor, authenticate_visitor),
)


class AuthenticateBeforeBody:
    """ASGI middleware: no body reaches a route that depends on `get_principal` (or the console's
    `current_visitor`) before its caller is known."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # A route's endpoint -> how its caller is checked, or None. Keyed by the endpoint, not the
        # route: FastAPI may hand a request a route object made for it, whose id a later one reuses.
        self._guards: dict[object, Callable[[Scope], None] | None] = {}

    def guard_of(self, route: object) -> Callable[[Scope], None] | None:
        endpoint = getattr(route, "endpoint", None)
        if endpoint not in self._guards:
            dependant = getattr(route, "dependant", None)
            self._guards[endpoint] = next(
                (
                    check
                    for call, check in GUARDS
                    if isinstance(dependant, Dependant) and depends_on(dependant, call)
                ),
                None,
            )
        return self._guards[endpoint]

    @staticmethod
    async def authenticate(scope: Scope, check: Callable[[Scope], None]) -> None:
        # FastAPI answers an HTTPException raised while it reads the body as it is; anything else
        # it answers "error parsing the body" (400), so a database down is turned into its 503 here.
        try:
            await run_in_threadpool(check, scope)
        except DBAPIError as exc:
            log.warning("api.database_error", error=f"{type(exc.orig).__name__}: {exc.orig}"[:300])
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                DATABASE_UNAVAILABLE,
                headers={"Retry-After": "2", "Connection": "close"},
            ) from exc

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        checked = False

        async def receive_once_authenticated() -> Message:
            nonlocal checked
            if not checked:
                route = scope.get("route")
                check = self.guard_of(route) if route is not None else None
                if check is not None:
                    await self.authenticate(scope, check)  # raises on a bad caller: no body is handed on
                checked = True
            return await receive()

        await self.app(scope, receive_once_authenticated, send)
