"""The web console: server-rendered pages for studios and the operator, on the API's own operations.

`router` holds every console route; `install` adds it to the app with what the pages need besides
(their static files, the sign-in redirect, HTML error pages under /console).
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, FastAPI, HTTPException, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from arv.api.console.pages import STATIC_DIR, STATIC_ROUTE, render, words_for
from arv.api.console.routes import account, contents, operator, projects, studio
from arv.api.console.visitors import SignInRequired, find_visitor, login_location

# Each part's routes; `router` holds them all, with the console's own root and static files.
PARTS = (account.router, projects.router, contents.router, studio.router, operator.router)
router = APIRouter(include_in_schema=False)
for part in PARTS:
    router.include_router(part)

_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css"}


@router.get("/console")
def console_root() -> Response:
    return RedirectResponse("/console/", status_code=status.HTTP_308_PERMANENT_REDIRECT)


@router.get(STATIC_ROUTE + "{name}")
def console_static(name: str) -> Response:
    """The console's own script and style sheet (no build step: served as written)."""
    path = (STATIC_DIR / name).resolve()
    if (
        not path.is_relative_to(STATIC_DIR.resolve())
        or not path.is_file()
        or path.suffix not in _STATIC_TYPES
    ):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"there is no console file {name!r}")
    return FileResponse(path, media_type=_STATIC_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})


_HEADINGS = {
    status.HTTP_404_NOT_FOUND: "not_found_title",
    status.HTTP_403_FORBIDDEN: "forbidden_title",
}


def _is_page(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/console") and not path.endswith(("/status", ".png", ".svg", ".jpg", ".pdf"))


async def _sign_in_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    return RedirectResponse(login_location(exc.path), status_code=status.HTTP_303_SEE_OTHER)


def is_console_page(request: Request) -> bool:
    """Whether a refusal of this request is answered with a console page (not the API's JSON): a
    console address that is not a file, a status poll or the console script's own request."""
    return _is_page(request) and "x-arv-console" not in request.headers


async def error_page(
    request: Request, status_code: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """A refusal as a console page in the visitor's words (the API's sentence as its message)."""
    visitor = await run_in_threadpool(find_visitor, request.scope)
    words = words_for(request, visitor)
    heading = words[_HEADINGS.get(status_code, "error_title")]
    response = render(request, "error.html", visitor, status_code=status_code, heading=heading,
                      message=message, error=None)  # fmt: skip
    for name, value in (headers or {}).items():
        response.headers.setdefault(name, value)
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    """Under /console a refusal is a page in the visitor's words; elsewhere the API's JSON."""
    assert isinstance(exc, StarletteHTTPException)
    if not is_console_page(request):
        return await http_exception_handler(request, exc)
    return await error_page(request, exc.status_code, str(exc.detail), exc.headers)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.add_exception_handler(SignInRequired, _sign_in_required)
    app.add_exception_handler(StarletteHTTPException, _http_error)
