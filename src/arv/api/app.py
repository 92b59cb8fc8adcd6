"""The FastAPI application factory: routers, the upload size guard, errors as JSON."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError

from arv import __version__
from arv.api import console
from arv.api.authentication import AuthenticateBeforeBody
from arv.api.deps import DATABASE_UNAVAILABLE
from arv.api.routes import (
    ar_content,
    companies,
    content_views,
    files,
    health,
    keys,
    metrics,
    notifications,
    portraits,
    previews,
    projects,
    qr_codes,
    rotation,
    tasks,
    viewer,
)
from arv.api.schemas import ERROR_RESPONSES
from arv.api.security import SecurityHeaders
from arv.api.slow_clients import BodyReadTimeout
from arv.api.uploads import ENVELOPE_BYTES, BodySizeLimit
from arv.config import get_settings
from arv.logging import configure_logging
from arv.metrics import HTTP_REQUESTS, HTTP_SECONDS
from arv.services.quotas import QuotaExceeded
from arv.storage import StorageError
from arv.tasks.app import get_celery_app

log = structlog.get_logger(__name__)

ROUTERS = [
    companies.router,
    projects.router,
    portraits.router,
    ar_content.router,
    qr_codes.router,
    previews.router,
    content_views.router,
    viewer.router,
    rotation.router,
    tasks.router,
    notifications.router,
    keys.router,
    files.router,
    health.router,
    metrics.router,
]


async def count_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    started = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    # The route's template, not the path: one series per endpoint, whatever the ids.
    template = getattr(route, "path", "unmatched")
    HTTP_REQUESTS.labels(request.method, template, str(response.status_code)).inc()
    HTTP_SECONDS.labels(request.method, template).observe(time.perf_counter() - started)
    return response


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Each problem of a refused request as plain JSON values, whatever pydantic put in it (its
    `ctx` can hold the exception a validator raised; the input is not echoed back)."""
    found = []
    for err in exc.errors():
        loc = [p if isinstance(p, int) else str(p) for p in err.get("loc", ())]
        msg = str(err.get("msg", "invalid"))
        # A validator's own sentence ("must be one line ...") reads after the field's name.
        ours = msg.startswith("Value error, ")
        found.append(
            {
                "loc": loc,
                "field": ".".join(str(p) for p in loc if p not in ("body", "query", "path", "header")),
                "msg": msg.removeprefix("Value error, "),
                "type": str(err.get("type", "invalid")),
                "ours": ours,
            }
        )
    return found


def create_app() -> FastAPI:
    settings = get_settings()
    configure_logging(settings)
    app = FastAPI(
        title="ARV",
        version=__version__,
        description="Printed photos that play video in AR: uploads, markers, viewer.",
        responses=ERROR_RESPONSES,
    )
    for router in ROUTERS:
        app.include_router(router)
    console.install(app)
    # Innermost of the middlewares: it needs the route the router picked, and its 401s are counted.
    app.add_middleware(AuthenticateBeforeBody)
    app.middleware("http")(count_requests)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes + ENVELOPE_BYTES)
    # Hardening (issue 11): headers on every answer, whoever made it (a 401, a 413 included).
    app.add_middleware(BodyReadTimeout, timeout_s=settings.http_body_timeout_s)
    app.add_middleware(SecurityHeaders)
    # The broker's Celery app, built now: through it the job layer publishes the API's wake-ups.
    get_celery_app()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = validation_errors(exc)
        problems = "; ".join(
            f"{err['field']}{' ' if err['ours'] else ': '}{err['msg']}" if err["field"] else err["msg"]
            for err in errors
        )
        if console.is_console_page(request):
            return await console.error_page(request, 422, problems or "invalid request")
        listed = [{"loc": err["loc"], "msg": err["msg"], "type": err["type"]} for err in errors]
        return JSONResponse({"detail": problems or "invalid request", "errors": listed}, status_code=422)

    @app.exception_handler(DBAPIError)
    async def _database_error(_: Request, exc: DBAPIError) -> JSONResponse:
        # A dropped connection or a server restart: nothing was committed, and the pool has replaced
        # the connection by now, so the same request can simply be sent again.
        log.warning("api.database_error", error=f"{type(exc.orig).__name__}: {exc.orig}"[:300])
        return JSONResponse(
            {"detail": DATABASE_UNAVAILABLE},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(StorageError)
    async def _storage_error(_: Request, exc: StorageError) -> JSONResponse:
        return JSONResponse(
            {"detail": "storage is unavailable right now; try again in a moment"}, status_code=503
        )

    @app.exception_handler(QuotaExceeded)
    async def _quota_exceeded(request: Request, exc: QuotaExceeded) -> JSONResponse:
        log.info("api.quota_exceeded", quota=exc.quota, limit=exc.limit, path=request.url.path)
        return JSONResponse(
            {"detail": str(exc), "quota": exc.quota, "limit": exc.limit, "retry_after_s": exc.retry_after_s},
            status_code=429,
            headers={"Retry-After": str(exc.retry_after_s)},
        )

    return app
