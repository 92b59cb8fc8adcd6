"""Health: is each backend (database, broker, storage) reachable, and is the job sweep running;
503 when one of them is not. Also when each periodic task last ran, by the database's clock.

Public: anyone gets each check's state and the periodic tasks' times. What went wrong (exception texts
name hosts, ports and paths; a periodic task's last error) goes only to a caller with the operator's
admin key, and to the log.
"""

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials

from arv.api.deps import bearer
from arv.config import get_settings
from arv.db.session import get_engine, session_scope
from arv.jobs import task_runs
from arv.jobs.sweep import SWEEP_TASK
from arv.services.auth import resolve_key
from arv.storage import get_storage
from arv.tasks.app import get_celery_app
from arv.tasks.broker import broker_connection

log = structlog.get_logger(__name__)
router = APIRouter(tags=["health"])
# What only the operator is shown: the words of a failed check, a periodic task's last error.
DETAILS = ("error", "last_error")

# The sweep counts as stopped once its last run is older than this many sweep intervals.
SWEEP_STALE_INTERVALS = 3


def _check_broker() -> None:
    with broker_connection(get_celery_app()):
        pass


def _failure(exc: Exception) -> dict[str, Any]:
    return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}


def _is_operator(credentials: HTTPAuthorizationCredentials | None) -> bool:
    """Whether the optional bearer key is an admin key; any other key, or none, is the public view
    (never a 401: load balancers probe without one). With the database down no key can be checked."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        return False
    try:
        with session_scope() as session:  # committed: a key's use is noted like anywhere else
            principal = resolve_key(session, credentials.credentials)
    except Exception:  # noqa: BLE001 - the database check reports the failure
        return False
    return principal is not None and principal.is_admin


def _public(section: dict[str, Any]) -> dict[str, Any]:
    return {name: {k: v for k, v in entry.items() if k not in DETAILS} for name, entry in section.items()}


# A check that failed answers 503 with the same body as 200, not an error's `detail`.
@router.get("/healthz", responses={503: {"description": "A check failed: the same fields as 200"}})
def healthz(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> JSONResponse:
    """200 or 503 with `checks` (database, broker, storage, sweep: `ok`, the sweep's `age_s`) and
    `periodic`; `error` and `last_error` only for the operator's admin key."""
    checks: dict[str, Any] = {}
    periodic: dict[str, Any] = {}
    try:
        with get_engine().connect() as connection:
            now, runs = task_runs.ages(connection)
        checks["database"] = {"ok": True}
    except Exception as exc:  # noqa: BLE001 - any failure is "down", with its words
        checks["database"] = _failure(exc)
        runs = {}
    for name, check in (("broker", _check_broker), ("storage", lambda: get_storage().check())):
        try:
            check()
            checks[name] = {"ok": True}
        except Exception as exc:  # noqa: BLE001
            checks[name] = _failure(exc)
    for name, run in runs.items():
        periodic[name] = {
            "last_started_at": run.last_started_at.isoformat() if run.last_started_at else None,
            "last_finished_at": run.last_finished_at.isoformat() if run.last_finished_at else None,
            "age_s": round((now - run.last_finished_at).total_seconds(), 1) if run.last_finished_at else None,
            "last_error": run.last_error,
        }
    if checks["database"]["ok"]:
        checks["sweep"] = _sweep_check(periodic.get(SWEEP_TASK))
    healthy = all(c["ok"] for c in checks.values())
    if not healthy:
        log.warning("health.degraded", **{name: c["error"] for name, c in checks.items() if not c["ok"]})
    if not _is_operator(credentials):
        checks, periodic = _public(checks), _public(periodic)
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", "checks": checks, "periodic": periodic},
        status_code=200 if healthy else 503,
    )


def _sweep_check(run: dict[str, Any] | None) -> dict[str, Any]:
    limit_s = SWEEP_STALE_INTERVALS * get_settings().sweep_interval_s
    if run is None or run["age_s"] is None:
        return {"ok": False, "error": "the job sweep has never run: start a worker (arv worker)"}
    if run["age_s"] > limit_s:
        return {
            "ok": False,
            "age_s": run["age_s"],
            "error": f"the job sweep last ran {run['age_s']:g} s ago (more than {limit_s:g} s): "
            "is any worker running?",
        }
    return {"ok": True, "age_s": run["age_s"]}
