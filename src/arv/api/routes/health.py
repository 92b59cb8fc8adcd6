"""Health: is each backend (database, broker, storage) reachable; 503 when one is not."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from arv.db.session import get_engine
from arv.storage import get_storage
from arv.tasks.app import broker_connection

router = APIRouter(tags=["health"])


def _check_database() -> None:
    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))


def _check_broker() -> None:
    with broker_connection():
        pass


@router.get("/healthz")
def healthz() -> JSONResponse:
    checks: dict[str, Any] = {}
    for name, check in (
        ("database", _check_database),
        ("broker", _check_broker),
        ("storage", lambda: get_storage().check()),
    ):
        try:
            check()
            checks[name] = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - any failure is "down", with its words
            checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    healthy = all(c["ok"] for c in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", "checks": checks}, status_code=200 if healthy else 503
    )
