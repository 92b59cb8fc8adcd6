"""The FastAPI application factory: routers, the upload size guard, errors as JSON."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from arv import __version__
from arv.api.routes import ar_content, companies, files, health, portraits, projects, tasks
from arv.api.uploads import ENVELOPE_BYTES, BodySizeLimit
from arv.config import get_settings
from arv.logging import configure_logging
from arv.storage import StorageError

ROUTERS = [
    companies.router,
    projects.router,
    portraits.router,
    ar_content.router,
    tasks.router,
    files.router,
    health.router,
]


def create_app() -> FastAPI:
    settings = get_settings()
    configure_logging(settings)
    app = FastAPI(
        title="ARV",
        version=__version__,
        description="Printed photos that play video in AR: uploads, markers, viewer.",
    )
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes + ENVELOPE_BYTES)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'] if p != 'body')}: {err['msg']}" for err in exc.errors()
        )
        return JSONResponse(
            {"detail": problems or "invalid request", "errors": exc.errors()}, status_code=422
        )

    @app.exception_handler(StorageError)
    async def _storage_error(_: Request, exc: StorageError) -> JSONResponse:
        return JSONResponse(
            {"detail": "storage is unavailable right now; try again in a moment"}, status_code=503
        )

    return app
