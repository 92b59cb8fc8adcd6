"""Auth first: a request for a route that needs a key is refused before the app reads its body.

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
depend on `get_principal`.
"""

from __future__ import annotations

import structlog
from fastapi import HTTPException, status
from fastapi.dependencies.models import Dependant
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from arv.api.deps import DATABASE_UNAVAILABLE, authenticate, get_principal

log = structlog.get_logger(__name__)


def depends_on(dependant: Dependant, call: object) -> bool:
    """Whether `call` is among the dependencies of `dependant`, at any depth."""
    return any(dep.call is call or depends_on(dep, call) for dep in dependant.dependencies)


class AuthenticateBeforeBody:
    """ASGI middleware: no body reaches a route that depends on `get_principal` before its key is valid."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # id(route) -> whether it needs a key; routes live as long as the app.
        self._needs_key: dict[int, bool] = {}

    def needs_key(self, route: object) -> bool:
        known = self._needs_key.get(id(route))
        if known is None:
            dependant = getattr(route, "dependant", None)
            known = isinstance(dependant, Dependant) and depends_on(dependant, get_principal)
            self._needs_key[id(route)] = known
        return known

    @staticmethod
    async def authenticate(scope: Scope) -> None:
        # FastAPI answers an HTTPException raised while it reads the body as it is; anything else
        # it answers "error parsing the body" (400), so a database down is turned into its 503 here.
        try:
            await run_in_threadpool(authenticate, scope, body_pending=True)
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
                if route is not None and self.needs_key(route):
                    await self.authenticate(scope)  # raises on a bad key: no body is handed on
                checked = True
            return await receive()

        await self.app(scope, receive_once_authenticated, send)
